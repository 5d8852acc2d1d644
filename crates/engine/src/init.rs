//! `--init`: berth's own binary bind-mounted read-only into the container
//! as `/sbin/berth-init` and run as its pid 1, as docker runs tini: it
//! starts the command as its child, forwards the signals it gets to it,
//! reaps every orphan the kernel hands to pid 1, and exits with the
//! command's status.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// Where the init appears in the container.
pub const PATH: &str = "/sbin/berth-init";

/// Whether the ELF executable at `path` needs a dynamic loader (has a
/// PT_INTERP program header): such a berth cannot run inside an image.
pub fn needs_loader(path: &std::path::Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        head.get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    if head.get(..4) != Some(b"\x7fELF") || head.get(4) != Some(&2) {
        return Err(std::io::Error::other("not a 64-bit ELF executable"));
    }
    let bad = || std::io::Error::other("truncated ELF header");
    let phoff = usize::try_from(u64_at(0x20).ok_or_else(bad)?).map_err(|_| bad())?;
    let phentsize = usize::from(u16_at(0x36).ok_or_else(bad)?);
    let phnum = usize::from(u16_at(0x38).ok_or_else(bad)?);
    for i in 0..phnum {
        // PT_INTERP = 3
        if u32_at(phoff + i * phentsize).ok_or_else(bad)? == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether this process was started as the init (by its argv\[0\]).
pub fn is_init(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0).file_name() == Some(std::ffi::OsStr::new("berth-init"))
}

/// Why the init could not run the command. The binary prints it (on the
/// container's stderr, prefixed `berth-init: `) and exits with
/// [`InitError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// usage: berth-init -- COMMAND [ARG...]
    #[error("usage: berth-init -- COMMAND [ARG...]")]
    Usage,
    /// cannot block signals
    #[error("cannot block signals")]
    BlockSignals,
    /// fork: {0}
    #[error("fork: {0}")]
    Fork(nix::Error),
    /// signalfd
    #[error("signalfd")]
    SignalFd,
    /// exec {program}: {source} (returned in the forked child, which the
    /// binary ends with 127, the shell's code for it)
    #[error("exec {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

impl InitError {
    /// The init's exit code for it.
    pub fn exit_code(&self) -> i32 {
        match self {
            InitError::Usage => 2,
            InitError::Exec { .. } => 127,
            _ => 1,
        }
    }
}

/// Runs the init: `berth-init -- CMD ARGS...`; returns the command's exit
/// code.
pub fn main(args: &[std::ffi::OsString]) -> Result<i32, InitError> {
    let cmd: Vec<std::ffi::CString> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .filter_map(|a| std::ffi::CString::new(a.as_encoded_bytes().to_vec()).ok())
        .collect();
    if cmd.is_empty() {
        return Err(InitError::Usage);
    }
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    all.remove(Signal::SIGSTOP);
    if nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None).is_err() {
        return Err(InitError::BlockSignals);
    }
    // SAFETY: single-threaded here; the child only resets its mask and
    // execs (or exits).
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::sys::signal::sigprocmask(
                SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            );
            let e = nix::unistd::execvp(&cmd[0], &cmd).unwrap_err();
            return Err(InitError::Exec {
                program: cmd[0].to_string_lossy().into_owned(),
                source: std::io::Error::from(e),
            });
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(InitError::Fork(e)),
    };
    let Ok(sfd) = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC) else {
        return Err(InitError::SignalFd);
    };
    loop {
        // Reap everything that ended; the command's end ends us.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == child => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == child => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Ok(Some(info)) = sfd.read_signal() {
            let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
            if sig != libc::SIGCHLD {
                let _ = berth_runtime::signal::send(child.as_raw(), sig);
            }
        }
    }
}
