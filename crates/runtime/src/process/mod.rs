//! The container's process: preparing what execve needs, the last
//! per-process steps (rlimits, user, capabilities, cwd, fds), and the
//! processes forked to get there.

pub mod console;
pub mod fork;
pub mod init;
pub mod intermediate;
pub mod lsm;
pub mod rlimits;
pub mod stdio;
pub mod user;

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use crate::error::{Context, Error, Result};
use crate::syscall;

/// PATH used when the process's environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything execve needs, resolved inside the container.
#[derive(Debug)]
pub struct Exec {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::SpecInvalid(format!("{what} {s:?} contains a NUL byte")))
}

/// Resolves the program (PATH search in the process's own environment) and
/// builds argv and envp. Must run inside the container's root. The error
/// texts are runc's, which podman turns into exit codes 127 and 126.
pub fn prepare_exec(process: &Process) -> Result<Exec> {
    let args = process.args().clone().unwrap_or_default();
    let program = args
        .first()
        .ok_or_else(|| Error::SpecInvalid("process.args is empty".into()))?;
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_of(process.user().uid())));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let resolved = look_path(program, &path_var)?;
    Ok(Exec {
        path: cstring(&resolved.to_string_lossy(), "program")?,
        argv: args
            .iter()
            .map(|a| cstring(a, "argument"))
            .collect::<Result<_>>()?,
        envp: env
            .iter()
            .map(|e| cstring(e, "environment entry"))
            .collect::<Result<_>>()?,
    })
}

fn is_executable(p: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(p)?;
    Ok(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn look_path(program: &str, path_var: &str) -> Result<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return match is_executable(&p) {
            Ok(true) => Ok(p),
            Ok(false) => Err(Error::NotExecutable(program.to_string())),
            Err(source) => Err(Error::ExecutableStat {
                program: program.to_string(),
                source,
            }),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(program);
        if is_executable(&cand).unwrap_or(false) {
            return Ok(cand);
        }
    }
    Err(Error::ExecutableNotFound(program.to_string()))
}

/// Everything a process needs just before it becomes the container's
/// program: run by the init and by exec'd processes alike, inside the
/// container's root and namespaces.
#[derive(Debug)]
pub struct Finish<'a> {
    pub process: &'a Process,
    /// fds 3..3+preserve_fds reach the program.
    pub preserve_fds: i32,
    /// Descriptors still needed until execve (they are close-on-exec).
    pub keep: Vec<RawFd>,
    /// The container's seccomp filter, compiled by the runtime beforehand.
    pub seccomp: Option<&'a crate::seccomp::Program>,
}

/// A seccomp filter still to load, right before execve.
#[derive(Debug)]
pub struct LateSeccomp<'a>(Option<&'a crate::seccomp::Program>);

impl LateSeccomp<'_> {
    pub fn load(self) -> Result<()> {
        match self.0 {
            Some(p) => p.load(),
            None => Ok(()),
        }
    }
}

impl<'a> Finish<'a> {
    /// Runs the last steps; returns the seccomp filter the caller loads
    /// just before execve (with no_new_privs; without it the filter is
    /// loaded here, while CAP_SYS_ADMIN still allows that).
    pub fn run(&self) -> Result<LateSeccomp<'a>> {
        let p = self.process;
        let filter = self.seccomp;
        let nnp = p.no_new_privileges().unwrap_or(false);
        rlimits::apply(p.rlimits().as_deref().unwrap_or_default())?;
        if let Some(adj) = p.oom_score_adj() {
            crate::rootfs::guard::ProcFs::open_current()
                .and_then(|proc| proc.write_own("oom_score_adj", &adj.to_string()))
                .map_err(|e| Error::ProcFs {
                    what: format!("set oom_score_adj {adj}"),
                    reason: e.to_string(),
                })?;
        }
        // Close what the runtime had open before touching the cwd, so no
        // descriptor of the host (such as a directory: CVE-2024-21626) can
        // be reached through /proc/self/fd.
        let first = 3 + self.preserve_fds;
        syscall::close_fds_from(first, &self.keep, false)?;
        for fd in 0..first {
            syscall::clear_cloexec(fd)?;
        }
        user::drop_bounding(p.capabilities().as_ref())?;
        nix::unistd::chdir(p.cwd()).map_err(|errno| Error::Chdir {
            path: p.cwd().to_path_buf(),
            errno,
        })?;
        // Checked here, before a filter is loaded: the container's filter
        // may deny getcwd (runtime-tools' linux_seccomp does; runc then
        // fails to create), and nothing below moves the cwd.
        verify_cwd(p.cwd())?;
        let late = match filter {
            Some(f) if !nnp => {
                f.load()?;
                None
            }
            other => other,
        };
        lsm::apply_apparmor(p.apparmor_profile().as_ref())?;
        user::switch_user(p)?;
        if nnp {
            // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
            let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            nix::errno::Errno::result(rc).ctx(|| "set no_new_privs".into())?;
        }
        let mask = p.user().umask().unwrap_or(0o022);
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        Ok(LateSeccomp(late))
    }
}

/// The working directory must be inside the container's root: getcwd
/// reports "(unreachable)" (or fails) for a directory outside it.
fn verify_cwd(expected: &Path) -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(cwd) if cwd.is_absolute() && !cwd.to_string_lossy().starts_with("(unreachable)") => {
            Ok(())
        }
        Ok(cwd) => Err(Error::UnsafeRootfs(format!(
            "cwd {} resolves outside the container ({})",
            expected.display(),
            cwd.display()
        ))),
        Err(e) => Err(e).ctx(|| format!("cwd {} is outside the container", expected.display())),
    }
}

/// Resets signal handling inherited from the runtime: every signal back to
/// its default (Rust ignores SIGPIPE, and an ignored signal stays ignored
/// across execve) and nothing blocked.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no memory effects.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// Replaces the process with the container's program.
pub fn execve(e: &Exec) -> Error {
    match nix::unistd::execve(&e.path, &e.argv, &e.envp) {
        Ok(never) => match never {},
        Err(err) => Error::Execve {
            program: e.path.to_string_lossy().into_owned(),
            source: std::io::Error::from(err),
        },
    }
}

/// Ends a forked child without running the parent's exit handlers.
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; nothing is touched.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_path_names_the_failure_like_runc() {
        let err = look_path("surely-not-a-program", "/nonexistent").unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"surely-not-a-program\": executable file not found in $PATH"
        );
        assert_eq!(err.kind(), crate::ErrorKind::ExecutableNotFound);
        let err = look_path("/nonexistent/x", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"/nonexistent/x\": stat /nonexistent/x: no such file or directory"
        );
        assert_eq!(err.kind(), crate::ErrorKind::ExecutableNotFound);
        // A file without any execute bit: docker's 126, not 127.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let err = look_path(plain.to_str().unwrap(), "").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotExecutable);
        assert!(err.to_string().ends_with("\": permission denied"), "{err}");
        assert_eq!(
            look_path("sh", "/nonexistent:/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
    }
}
