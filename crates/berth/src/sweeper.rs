//! Deleting what a command trashed (a foreground `run --rm`'s container
//! directory, see `berth_engine::trash`; a removed network's bridge, see
//! `berth_network::bridge_trash`) after the command has given its
//! answer: in a child of its own, so that the user's shell (or script)
//! has the exit code while the disk still works.

use std::path::Path;

/// Called as a command ends: when it trashed something, a detached child
/// sweeps the store's trash. Never fails the command: a sweep that cannot
/// start leaves the trash to the next one.
pub(crate) fn after_command(root: &Path) {
    let trash = berth_engine::trash::trashed_by_this_process();
    let bridges = berth_network::bridge_trash::retired_by_this_process();
    if !trash && !bridges {
        return;
    }
    // SAFETY: fork(2) in a process whose other threads (if any) hold no
    // lock the child takes: the child only makes system calls and
    // std::fs's directory walk (glibc's allocator is reset for the child
    // by fork), and ends with _exit, running no destructor or atexit
    // handler of the parent's state (the SQLite connection, buffered
    // stdout).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // The socket is opened before the descriptors go: for rootless
            // berth it is opened in the user's network namespace, through
            // a descriptor that detaching closes.
            let sweeper = bridges
                .then(berth_network::bridge_trash::Sweeper::open)
                .and_then(Result::ok);
            detach_from_caller(sweeper.as_ref().map(|s| s.fd()));
            yield_to_others();
            let mut code = 0;
            if let Some(s) = sweeper {
                code |= i32::from(s.sweep().is_err());
            }
            if trash {
                code |= i32::from(berth_engine::trash::sweep(root).is_err());
            }
            // SAFETY: _exit ends this process at once; nothing of the
            // parent's is flushed or closed twice.
            unsafe { libc::_exit(code) }
        }
        // The parent goes on to exit; the child is reparented and reaped
        // by the system. A failed fork leaves the trash for the next one.
        Ok(nix::unistd::ForkResult::Parent { .. }) | Err(_) => {}
    }
}

/// The sweep runs on CPU time nobody else wants (SCHED_IDLE): commands run
/// back to back (a script's `run --rm`s, compose starting its services) are
/// not slowed by the deletions of the one before. Best effort: a sweep left
/// at normal priority still sweeps.
fn yield_to_others() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on this process (pid 0) with a valid
    // policy and a parameter it only reads.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
}

/// Lets go of everything that ties the child to whoever ran berth: its
/// session (a terminal's hangup or ^C), and every descriptor, so that a
/// caller reading berth's output to its end (`$(berth run --rm ...)`, a
/// pipe) is not kept waiting for the sweep.
fn detach_from_caller(keep: Option<std::os::fd::RawFd>) {
    let _ = nix::unistd::setsid();
    if let Ok(null) = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    ) {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null, fd);
        }
    }
    let keep = keep
        .and_then(|fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= 3);
    let ranges = match keep {
        Some(k) => [(3, k.saturating_sub(1)), (k.saturating_add(1), u32::MAX)],
        None => [(3, u32::MAX), (1, 0)],
    };
    for (first, last) in ranges.into_iter().filter(|(f, l)| f <= l) {
        // SAFETY: close_range(2) closes descriptors of this (forked,
        // single-threaded) process; no Rust object of the child uses them
        // afterwards (it walks the trash by path, and the sweeper's socket,
        // `keep`, is left open).
        unsafe {
            libc::syscall(libc::SYS_close_range, first, last, 0u32);
        }
    }
}
