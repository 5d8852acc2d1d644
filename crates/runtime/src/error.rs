//! The library's error type. Messages are lowercase, name the thing that
//! failed, and have no final period. Each variant's doc comment is its
//! message; [`Error::kind`] says what happened for callers that decide on
//! it (exit codes, retries), so nobody needs to read the text.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Result alias used across the runtime library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, for callers that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The container (or its state) does not exist.
    NotFound,
    /// A container with that id already exists.
    AlreadyExists,
    /// The request or the spec is wrong.
    InvalidArgument,
    /// The container's status does not allow the operation.
    WrongState,
    /// The container's program does not exist (docker's and podman's 127).
    ExecutableNotFound,
    /// The container's program exists but cannot be executed (their 126).
    NotExecutable,
    /// The kernel refused an operation (EACCES, EPERM).
    PermissionDenied,
    /// The rootfs is laid out to redirect what the runtime touches.
    UnsafeRootfs,
    /// The filesystem is full.
    NoSpace,
    /// Anything else: the host, the kernel, the runtime itself.
    Internal,
}

/// A forked process's failure (the intermediate, the init, an exec'd
/// process) as it crosses the sync channel to the runtime: its kind
/// survives the process boundary, not only its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildFailure {
    pub kind: ErrorKind,
    pub message: String,
}

impl ChildFailure {
    pub fn of(e: &Error) -> Self {
        ChildFailure {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// runc's words for an I/O failure of execve or stat, which docker's
/// client and podman read.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Everything that can go wrong in the runtime library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// bundle {0}: config.json not found
    #[error("bundle {0}: config.json not found")]
    ConfigMissing(PathBuf),
    /// bundle {path}: invalid config.json: {reason}
    #[error("bundle {path}: invalid config.json: {reason}")]
    ConfigInvalid { path: PathBuf, reason: String },
    /// invalid spec: {0}
    #[error("invalid spec: {0}")]
    SpecInvalid(String),
    /// rootfs {0} does not exist or is not a directory
    #[error("rootfs {0} does not exist or is not a directory")]
    RootfsMissing(PathBuf),
    /// container "{0}" already exists
    #[error("container \"{0}\" already exists")]
    ContainerExists(String),
    /// container "{0}" does not exist
    #[error("container \"{0}\" does not exist")]
    ContainerNotFound(String),
    /// invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId(String),
    /// container "{id}" is {status}: {action} needs it {needed}
    #[error("container \"{id}\" is {status}: {action} needs it {needed}")]
    BadStatus {
        id: String,
        status: String,
        action: &'static str,
        needed: &'static str,
    },
    /// The status forbids the operation, in runc's words ("cannot exec in a
    /// paused container", "container not paused").
    #[error("{0}")]
    WrongState(&'static str),
    /// cannot delete container {id} that is not stopped: {status}
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: String },
    /// container not running
    #[error("container not running")]
    NotRunning,
    /// {context}: {source}
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// exec: "{0}": executable file not found in $PATH
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    ExecutableNotFound(String),
    /// exec: "{program}": stat {program}: {source} (a program named by
    /// its path)
    #[error("exec: \"{program}\": stat {program}: {}", io_text(.source))]
    ExecutableStat {
        program: String,
        source: std::io::Error,
    },
    /// exec: "{0}": permission denied
    #[error("exec: \"{0}\": permission denied")]
    NotExecutable(String),
    /// exec: "{program}": {source} (execve itself failed)
    #[error("exec: \"{program}\": {}", io_text(.source))]
    Execve {
        program: String,
        source: std::io::Error,
    },
    /// unable to start container process: {0} (the init failed before it
    /// was ready)
    #[error("unable to start container process: {0}")]
    StartProcess(ChildFailure),
    /// {0} (a forked process failed while it was set up)
    #[error("{0}")]
    Child(ChildFailure),
    /// The sync channel between the runtime and a process it forked broke
    /// its protocol: "{0}".
    #[error("{0}")]
    Protocol(String),
    /// encode {what}: {source}
    #[error("encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// {what}: {reason} (a capability the process cannot get or drop)
    #[error("{what}: {reason}")]
    Capability { what: String, reason: String },
    /// {what}: {reason} (the container's procfs could not be opened)
    #[error("{what}: {reason}")]
    ProcFs { what: String, reason: String },
    /// {point} hook {path}: {reason}
    #[error("{point} hook {path}: {reason}")]
    Hook {
        point: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// cwd {path}: {source} (the process's working directory could not be
    /// made)
    #[error("cwd {}: {source}", path.display())]
    Cwd { path: PathBuf, source: Box<Error> },
    /// chdir to cwd ("{path}") set in config.json failed: {errno} (runc's
    /// words, the errno as Go spells it)
    #[error("chdir to cwd ({:?}) set in config.json failed: {}", path.display().to_string(), go_errno(*errno))]
    Chdir {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    /// A cgroup that is missing or does not do what it is told: "{0}".
    #[error("{0}")]
    Cgroup(String),
    /// The kernel refused a security setting (seccomp filter, AppArmor
    /// profile, device program): "{0}".
    #[error("{0}")]
    Security(String),
    /// ps failed listing the container's processes: "{0}".
    #[error("{0}")]
    Ps(String),
    /// A container process that would not die: "container {0} did not die
    /// after SIGKILL".
    #[error("container {0} did not die after SIGKILL")]
    Unkillable(String),
    /// The runtime's own binary could not be protected or re-executed
    /// (CVE-2019-5736): "{0}".
    #[error("{0}")]
    Exe(String),
    /// The rootfs (or a volume in it) is laid out to redirect what the
    /// runtime mounts or writes: refused rather than followed.
    #[error("unsafe rootfs: {0}")]
    UnsafeRootfs(String),
    /// unknown signal {0:?}
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// The process would start a container process while its own binary
    /// is writable from inside the container (CVE-2019-5736).
    #[error("the runtime binary is not protected from the container: call berth_runtime::exe::ensure_protected at start-up")]
    ExeUnprotected,
    /// state of container "{id}" is corrupt: {reason}
    #[error("state of container \"{id}\" is corrupt: {reason}")]
    StateCorrupt { id: String, reason: String },
    /// no pty master received on the console socket
    #[error("no pty master received on the console socket")]
    NoPtyMaster,
}

impl Error {
    /// What happened, for callers that decide on it.
    pub fn kind(&self) -> ErrorKind {
        let errno = |e: nix::Error| match e {
            nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT => ErrorKind::NoSpace,
            nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => ErrorKind::PermissionDenied,
            _ => ErrorKind::Internal,
        };
        match self {
            Error::ContainerNotFound(_) | Error::ConfigMissing(_) | Error::RootfsMissing(_) => {
                ErrorKind::NotFound
            }
            Error::ContainerExists(_) => ErrorKind::AlreadyExists,
            Error::ConfigInvalid { .. }
            | Error::SpecInvalid(_)
            | Error::InvalidId(_)
            | Error::UnknownSignal(_) => ErrorKind::InvalidArgument,
            Error::BadStatus { .. }
            | Error::WrongState(_)
            | Error::NotStopped { .. }
            | Error::NotRunning => ErrorKind::WrongState,
            Error::ExecutableNotFound(_) => ErrorKind::ExecutableNotFound,
            Error::ExecutableStat { source, .. } | Error::Execve { source, .. } => {
                match source.kind() {
                    std::io::ErrorKind::NotFound => ErrorKind::ExecutableNotFound,
                    std::io::ErrorKind::PermissionDenied => ErrorKind::NotExecutable,
                    _ => ErrorKind::Internal,
                }
            }
            Error::NotExecutable(_) => ErrorKind::NotExecutable,
            Error::StartProcess(f) | Error::Child(f) => f.kind,
            Error::Cwd { source, .. } => source.kind(),
            Error::UnsafeRootfs(_) => ErrorKind::UnsafeRootfs,
            Error::Sys { source, .. } => errno(*source),
            Error::Chdir { errno: e, .. } => errno(*e),
            Error::Io { source, .. } => match source.raw_os_error() {
                Some(n) => errno(nix::errno::Errno::from_raw(n)),
                None => ErrorKind::Internal,
            },
            Error::Protocol(_)
            | Error::Encode { .. }
            | Error::Capability { .. }
            | Error::ProcFs { .. }
            | Error::Hook { .. }
            | Error::Cgroup(_)
            | Error::Security(_)
            | Error::Ps(_)
            | Error::Unkillable(_)
            | Error::Exe(_)
            | Error::ExeUnprotected
            | Error::StateCorrupt { .. }
            | Error::NoPtyMaster => ErrorKind::Internal,
        }
    }
}

/// Adds a context string to low-level errors, like anyhow's `.context()` but
/// typed.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
/// An errno in Go's words: the C library's description, lowercased.
pub(crate) fn go_errno(e: nix::errno::Errno) -> String {
    let d = e.desc();
    let mut c = d.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}
