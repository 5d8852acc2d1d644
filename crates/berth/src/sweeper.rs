//! Deleting what a command trashed (a foreground `run --rm`'s container
//! directory, see `berth_engine::trash`) after the command has given its
//! answer: in a child of its own, so that the user's shell (or script)
//! has the exit code while the disk still works.

use std::path::Path;

/// Called as a command ends: when it trashed something, a detached child
/// sweeps the store's trash. Never fails the command: a sweep that cannot
/// start leaves the trash to the next one.
pub(crate) fn after_command(root: &Path) {
    if !berth_engine::trash::trashed_by_this_process() {
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
            detach_from_caller();
            let code = i32::from(berth_engine::trash::sweep(root).is_err());
            // SAFETY: _exit ends this process at once; nothing of the
            // parent's is flushed or closed twice.
            unsafe { libc::_exit(code) }
        }
        // The parent goes on to exit; the child is reparented and reaped
        // by the system. A failed fork leaves the trash for the next one.
        Ok(nix::unistd::ForkResult::Parent { .. }) | Err(_) => {}
    }
}

/// Lets go of everything that ties the child to whoever ran berth: its
/// session (a terminal's hangup or ^C), and every descriptor, so that a
/// caller reading berth's output to its end (`$(berth run --rm ...)`, a
/// pipe) is not kept waiting for the sweep.
fn detach_from_caller() {
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
    // SAFETY: close_range(2) closes descriptors 3 and up of this (forked,
    // single-threaded) process; no Rust object of the child uses them
    // afterwards (it only walks the trash by path and exits).
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}
