//! Waiting for a process we are the parent (or subreaper) of, forwarding
//! signals to it meanwhile: what a foreground `run` or `exec` does.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// The shell's convention: the exit code, or 128 + the killing signal.
// berth-relay has the same few lines for the monitor, which links nothing
// of the runtime (its memory per idle container is measured).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Blocks every forwardable signal, relays each one to `pid`, and returns
/// its exit code once it ends. Other children that end meanwhile (orphans
/// reparented to us as subreaper) are reaped.
pub fn wait_forwarding_signals(pid: Pid) -> Result<i32> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals".into())?;
    loop {
        // Reap first: the process may have ended before we blocked.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(st) => {
                    if st.pid() == Some(pid) {
                        if let Some(code) = exit_code(st) {
                            return Ok(code);
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::ECHILD) => return Ok(255),
                Err(e) => return Err(e).ctx(|| "wait for the container".into()),
            }
        }
        let sig = set.wait().ctx(|| "wait for signals".into())?;
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }
}
