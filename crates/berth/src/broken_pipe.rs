//! SIGPIPE as a command line tool should take it: a reader of our output
//! that goes away ends us quietly, wherever we were writing.

/// A reader of our stdout or stderr that goes away (`berth ps | head -1`,
/// `berth logs c | true`) ends us quietly, as SIGPIPE ends cat or docker,
/// wherever we were writing: no panic in println, no "Broken pipe" error.
/// A broken pipe elsewhere (a child's stdin, a container's input, a
/// monitor's socket) stays an EPIPE error for the code at hand, which must
/// clean up; and the relays, which must outlive their caller's pipe to
/// reap and record the container, ignore SIGPIPE while they run.
pub(crate) fn quiet_on_broken_stdio() {
    extern "C" fn on_sigpipe(_: libc::c_int) {
        let mut fds = [1, 2].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        });
        // SAFETY: poll and signal are async-signal-safe; fds is a valid
        // array of two pollfd.
        unsafe {
            // POLLERR: a pipe without readers; POLLHUP: a socket whose
            // peer closed.
            if libc::poll(fds.as_mut_ptr(), 2, 0) > 0
                && fds
                    .iter()
                    .any(|f| f.revents & (libc::POLLERR | libc::POLLHUP) != 0)
            {
                // Delivered as the handler returns: the default action,
                // death by SIGPIPE (141 in a shell).
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
    }
    let act = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_sigpipe),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only makes async-signal-safe calls; no other
    // thread exists yet.
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGPIPE, &act) };
}

/// Dies as SIGPIPE's default would: after a foreground container whose
/// output lost its reader (`berth run img yes | head -1`), the exit status
/// docker's client leaves (141 in a shell), once the container is reaped
/// and recorded.
pub(crate) fn die_of_broken_pipe() -> ! {
    // SAFETY: restoring the default disposition and raising the signal
    // touch no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}
