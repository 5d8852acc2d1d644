//! The engine's error type: one line each, naming the thing that failed, in
//! docker's words where docker has some (scripts match on them). Each
//! variant's doc comment is its message; [`Error::kind`] says what
//! happened, and front ends decide on the kind (exit codes, docker's
//! framing), never on the text.

use serde::{Deserialize, Serialize};

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What happened, for front ends that act on it: the command line maps it
/// to exit codes (docker's 125, 126 and 127 for `run`), an HTTP front end
/// would map it to statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The named object (container, image, volume, network, path) does not
    /// exist.
    NotFound,
    /// The request contradicts the object's state or another object (a
    /// name taken, a container already paused, an endpoint already there).
    Conflict,
    /// The request itself is wrong (a flag, a name, a spec value).
    InvalidArgument,
    /// The object is used by another one (a volume by a container, an
    /// image by a container, a network by its endpoints).
    InUse,
    /// The container must be running for this.
    NotRunning,
    /// The container's program does not exist (docker's 127).
    ExecutableNotFound,
    /// A file or device starting the container needed does not exist (the
    /// kernel's ENOENT, as a volume's `--opt device=` gives it): docker's
    /// client exits 127 for any start failure in those words.
    FileNotFound,
    /// The container's program exists but cannot be executed (docker's
    /// 126).
    NotExecutable,
    /// The operation was refused for lack of privilege.
    PermissionDenied,
    /// The filesystem is full.
    NoSpace,
    /// The operation was interrupted (a build's Ctrl-C).
    Interrupted,
    /// Anything else: the host, the kernel, the engine itself.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container: {0}
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// No such volume: {0}
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    /// no pod with name or ID {0} found: no such pod (podman's words)
    #[error("no pod with name or ID {0} found: no such pod")]
    NoSuchPod(String),
    /// No such network: {0}
    #[error("No such network: {0}")]
    NoSuchNetwork(String),
    /// network {0} not found (what `run` and `create` say of a network
    /// they are given)
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// multiple containers match {0:?}: use more of the id
    #[error("multiple containers match {0:?}: use more of the id")]
    Ambiguous(String),
    /// Conflict. The container name "/{name}" is already in use by
    /// container "{holder}". You have to remove (or rename) that container
    /// to be able to reuse that name.
    #[error("{}", name_in_use(name, holder))]
    NameInUse { name: String, holder: String },
    /// Error when allocating new name: Conflict. The container name ...
    /// (a rename onto a taken name, in docker's daemon's words)
    #[error("Error when allocating new name: {}", name_in_use(name, holder))]
    NewNameInUse { name: String, holder: String },
    /// Renaming a container with the same name as its current name
    #[error("Renaming a container with the same name as its current name")]
    SameName,
    /// Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are
    /// allowed
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// An image the store does not hold and may not pull, in words of its
    /// own: "{0}" (`build --pull=never`).
    #[error("{0}")]
    NotInStore(String),
    /// An image could not be pulled: "{0}".
    #[error("{0}")]
    Pull(String),
    /// Unable to find image '{0}' locally
    #[error("Unable to find image '{0}' locally")]
    ImageNotFound(String),
    /// A flag, option or spec value the caller gave is wrong: "{0}", in
    /// docker's words ("invalid ulimit type: x", "No command specified").
    #[error("{0}")]
    InvalidOption(String),
    /// A user or group of `--user`/`--group-add` the image does not have:
    /// "unable to find user x: no matching entries in passwd file".
    #[error("{0}")]
    NoSuchUser(String),
    /// The object is used by another one: "{0}" ("remove v: volume is in
    /// use - [id]").
    #[error("{0}")]
    InUse(String),
    /// The request contradicts another object: "{0}" ("endpoint with name
    /// x already exists in network y").
    #[error("{0}")]
    Conflict(String),
    /// Container {0} is not running
    #[error("Container {0} is not running")]
    NotRunning(String),
    /// Container {0} is already paused
    #[error("Container {0} is already paused")]
    AlreadyPaused(String),
    /// Container {0} is not paused
    #[error("Container {0} is not paused")]
    NotPaused(String),
    /// Container {0} is paused, unpause the container before exec
    #[error("Container {0} is paused, unpause the container before exec")]
    ExecPaused(String),
    /// You cannot attach to a paused container, unpause it first
    #[error("You cannot attach to a paused container, unpause it first")]
    AttachPaused,
    /// You cannot attach to a stopped container, start it first
    #[error("You cannot attach to a stopped container, start it first")]
    AttachStopped,
    /// container {0} has no cgroups (it is not running)
    #[error("container {0} has no cgroups")]
    NoCgroups(String),
    /// configured logging driver does not support reading (the `none`
    /// log driver keeps nothing)
    #[error("configured logging driver does not support reading")]
    LogsNotKept,
    /// You cannot remove a {status} container {id}. Stop the container
    /// before attempting removal or force remove (Docker 20.10's words; a
    /// paused one is to be unpaused and then stopped)
    #[error("You cannot remove a {status} container {id}. {}the container before attempting removal or force remove", if status == "paused" { "Unpause and then stop " } else { "Stop " })]
    RemoveActive { id: String, status: String },
    /// container {name} is still {status}: {stuck} (berth system check
    /// cleans up)
    #[error("container {name} is still {status}: {stuck} (berth system check cleans up)")]
    Stuck {
        name: String,
        status: String,
        stuck: String,
    },
    /// A `--filter` the verb refuses (Docker's words).
    #[error(transparent)]
    Filter(#[from] crate::filters::FilterError),
    /// A volume's `--opt` mount failed when a container started: "{message}"
    /// (Docker's words); `errno` is the kernel's answer, if it gave one.
    #[error("{message}")]
    VolumeMount { message: String, errno: Option<i32> },
    /// container {name} is still {status} at the wait's deadline
    #[error("container {name} is still {status} at the wait's deadline")]
    WaitDeadline { name: String, status: String },
    /// The container's program could not be started, as its monitor (a
    /// separate process) reported it: "{message}"; the kind crossed the
    /// process boundary with it.
    #[error("{message}")]
    StartFailed { kind: ErrorKind, message: String },
    /// The container's monitor failed or broke its protocol: "{0}".
    #[error("{0}")]
    Monitor(String),
    /// invalid output path: directory "{0}" does not exist (`cp` onto
    /// the host under a directory that is not there)
    #[error("invalid output path: directory {0:?} does not exist")]
    NoOutputDirectory(std::path::PathBuf),
    /// `cp`: a source or destination path that does not exist: "{0}"
    /// ("Could not find the file /x in container c").
    #[error("{0}")]
    PathNotFound(String),
    /// `cp`: a copy that cannot be made as asked: "{0}" ("cannot copy a
    /// directory to a file: ...").
    #[error("{0}")]
    CopyRefused(String),
    /// `cp`: the copy itself failed: "{0}".
    #[error("{0}")]
    CopyFailed(String),
    /// A path or argument holds a NUL byte: "{0}".
    #[error("{0}")]
    Nul(String),
    /// A device of `--device` that cannot be used: "{0}".
    #[error("{0}")]
    Device(String),
    /// Rootless berth's own machinery (its user-mode network stack) could
    /// not do its part: "{0}".
    #[error("{0}")]
    Rootless(String),
    /// The container's user namespace: its id range, its idmapped
    /// mounts, or an option that needs the host's namespace: "{0}".
    #[error("{0}")]
    UserNamespace(String),
    /// The image's rootfs could not be prepared for the container (its
    /// /etc files, its init layer): "{0}".
    #[error("{0}")]
    Rootfs(String),
    /// `--init`: berth's own binary cannot serve as the container's init:
    /// "{0}".
    #[error("{0}")]
    InitBinary(String),
    /// A Dockerfile that cannot be built as written: "{0}" (a syntax
    /// error, a stage cycle, no FROM).
    #[error("{0}")]
    Dockerfile(String),
    /// A build that failed on the way: "{0}" (a step's command failing, a
    /// stage's builder dying).
    #[error("{0}")]
    Build(String),
    /// A COPY or ADD step that cannot be done: "{file}:{line}: {keyword}:
    /// {source}" (front ends that speak Docker's words read the source).
    #[error("{file}:{line}: {keyword}: {source}")]
    BuildCopy {
        file: String,
        line: usize,
        keyword: &'static str,
        source: Box<berth_build::copy::CopyError>,
    },
    /// build interrupted
    #[error("build interrupted")]
    Interrupted,
    /// A health check or build step's process could not be run: "{0}".
    #[error("{0}")]
    Process(String),
    /// A process of berth's own (the monitor) called with a wrong command
    /// line: "{0}".
    #[error("{0}")]
    Usage(String),
    /// encode {what}: {source}
    #[error("encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// build the OCI spec ({what}): {source}
    #[error("build the OCI spec ({what}): {source}")]
    SpecBuild {
        what: &'static str,
        source: oci_spec::OciSpecError,
    },
    #[error(transparent)]
    Network(berth_network::Error),
    #[error(transparent)]
    Image(#[from] berth_image::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] berth_image::snapshot::SnapshotError),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// database: {0}
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// {context}: {source}
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
}

impl Error {
    /// What happened, for front ends that decide on it.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::NoSuchContainer(_)
            | Error::NoSuchVolume(_)
            | Error::NoSuchNetwork(_)
            | Error::NoSuchPod(_)
            | Error::NetworkNotFound(_)
            | Error::ImageNotFound(_)
            | Error::NotInStore(_)
            | Error::PathNotFound(_)
            | Error::NoOutputDirectory(_) => K::NotFound,
            Error::Ambiguous(_)
            | Error::InvalidName(_)
            | Error::SameName
            | Error::InvalidOption(_)
            | Error::NoSuchUser(_)
            | Error::CopyRefused(_)
            | Error::Nul(_)
            | Error::Device(_)
            | Error::Dockerfile(_)
            | Error::Usage(_)
            | Error::Filter(_) => K::InvalidArgument,
            Error::VolumeMount { errno, .. } => match *errno {
                Some(libc::ENOENT) => K::FileNotFound,
                Some(libc::EACCES | libc::EPERM) => K::PermissionDenied,
                _ => K::Internal,
            },
            Error::NameInUse { .. }
            | Error::NewNameInUse { .. }
            | Error::Conflict(_)
            | Error::AlreadyPaused(_)
            | Error::NotPaused(_)
            | Error::ExecPaused(_)
            | Error::AttachPaused
            | Error::LogsNotKept
            | Error::RemoveActive { .. }
            | Error::Stuck { .. }
            | Error::WaitDeadline { .. } => K::Conflict,
            Error::InUse(_) => K::InUse,
            Error::NotRunning(_) | Error::NoCgroups(_) | Error::AttachStopped => K::NotRunning,
            Error::StartFailed { kind, .. } => *kind,
            Error::Interrupted => K::Interrupted,
            Error::Monitor(_)
            | Error::CopyFailed(_)
            | Error::Rootfs(_)
            | Error::UserNamespace(_)
            | Error::Rootless(_)
            | Error::InitBinary(_)
            | Error::Build(_)
            | Error::BuildCopy { .. }
            | Error::Pull(_)
            | Error::Process(_)
            | Error::Encode { .. }
            | Error::SpecBuild { .. }
            | Error::Snapshot(_) => K::Internal,
            Error::Image(e) => image_kind(e),
            Error::Network(e) => network_kind(e),
            Error::Runtime(e) => runtime_kind(e.kind()),
            Error::Db(_) | Error::Io { .. } | Error::Sys { .. } if self.is_disk_full() => {
                K::NoSpace
            }
            Error::Db(_) => K::Internal,
            Error::Io { source, .. } => errno_kind(source.raw_os_error().unwrap_or(0)),
            Error::Sys { source, .. } => errno_kind(*source as i32),
        }
    }

    /// The error as a process reports it to the one that started it (the
    /// monitor to `run`/`start`, over its report pipe or an attached
    /// client's socket): its kind and its message, so that the exit code
    /// across the process boundary still comes from the kind.
    pub fn to_report(&self) -> String {
        let report = Report {
            kind: self.kind(),
            message: self.to_string(),
        };
        serde_json::to_string(&report).unwrap_or(report.message)
    }

    /// The error a [`Error::to_report`] carried; anything else (a process
    /// that died before it could report) is the monitor's failure, in its
    /// own words.
    pub fn from_report(bytes: &[u8]) -> Error {
        match serde_json::from_slice::<Report>(bytes) {
            Ok(r) => Error::StartFailed {
                kind: r.kind,
                message: r.message,
            },
            Err(_) => Error::Monitor(String::from_utf8_lossy(bytes).trim_end().to_string()),
        }
    }

    /// Whether the error is the filesystem's being full (SQLite's own
    /// code, or ENOSPC from a write).
    pub fn is_disk_full(&self) -> bool {
        let io_full = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOSPC);
        match self {
            Error::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            Error::Io { source, .. } => io_full(source),
            Error::Sys { source, .. } => *source == nix::errno::Errno::ENOSPC,
            Error::Runtime(e) => e.kind() == berth_runtime::ErrorKind::NoSpace,
            _ => false,
        }
    }
}

/// An error crossing a process boundary: see [`Error::to_report`].
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    kind: ErrorKind,
    message: String,
}

/// The engine's kind of a network failure.
pub fn network_kind(e: &berth_network::Error) -> ErrorKind {
    use berth_network::Error as N;
    match e {
        N::NotFound(_) => ErrorKind::NotFound,
        N::Exists(_) | N::Conflict(_) | N::PortInUse(_) => ErrorKind::Conflict,
        N::InvalidOption(_) | N::Ambiguous(_) | N::Usage(_) => ErrorKind::InvalidArgument,
        N::InUse(_) => ErrorKind::InUse,
        N::Io { source, .. } => errno_kind(source.raw_os_error().unwrap_or(0)),
        N::Exhausted(_) | N::Host(_) | N::Damaged(_) | N::Resolver(_) | N::Nft(_) | N::Db(_) => {
            ErrorKind::Internal
        }
    }
}

/// The engine's kind of a runtime failure.
pub fn runtime_kind(k: berth_runtime::ErrorKind) -> ErrorKind {
    use berth_runtime::ErrorKind as R;
    match k {
        R::NotFound => ErrorKind::NotFound,
        R::AlreadyExists => ErrorKind::Conflict,
        R::InvalidArgument | R::UnsafeRootfs => ErrorKind::InvalidArgument,
        R::WrongState => ErrorKind::Conflict,
        R::ExecutableNotFound => ErrorKind::ExecutableNotFound,
        R::NotExecutable => ErrorKind::NotExecutable,
        R::NoSpace => ErrorKind::NoSpace,
        R::PermissionDenied => ErrorKind::PermissionDenied,
        R::Internal => ErrorKind::Internal,
    }
}

/// The engine's kind of an image store failure.
pub fn image_kind(e: &berth_image::store::StoreError) -> ErrorKind {
    use berth_image::store::StoreError as S;
    match e {
        S::NotFound(_) => ErrorKind::NotFound,
        S::Malformed(_) | S::InvalidOption(_) => ErrorKind::InvalidArgument,
        S::Conflict(_) => ErrorKind::Conflict,
        S::Io { source, .. } => errno_kind(source.raw_os_error().unwrap_or(0)),
        S::Blob(_) | S::Layer(_) | S::Db(_) | S::Database(_) | S::Damaged(_) | S::Fetch(_) => {
            ErrorKind::Internal
        }
        S::Encode(_) => ErrorKind::Internal,
    }
}

fn errno_kind(errno: i32) -> ErrorKind {
    match errno {
        libc::ENOSPC | libc::EDQUOT => ErrorKind::NoSpace,
        libc::EACCES | libc::EPERM => ErrorKind::PermissionDenied,
        _ => ErrorKind::Internal,
    }
}

/// Adds context to low-level errors.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context(),
            source,
        })
    }
}

/// Docker's daemon's words for a container name another container holds.
fn name_in_use(name: &str, holder: &str) -> String {
    format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `run`'s 127 for a missing program depends on the kind surviving
    /// the monitor's report (a pipe, or an attached client's socket).
    #[test]
    fn a_start_failure_keeps_its_kind_across_the_report() {
        let init = berth_runtime::Error::ExecutableNotFound("nope".into());
        let failure = berth_runtime::ChildFailure::of(&init);
        let e = Error::Runtime(berth_runtime::Error::StartProcess(failure));
        assert_eq!(e.kind(), ErrorKind::ExecutableNotFound);
        let back = Error::from_report(e.to_report().as_bytes());
        assert_eq!(back.kind(), ErrorKind::ExecutableNotFound);
        assert_eq!(back.to_string(), e.to_string());
        assert_eq!(
            back.to_string(),
            "unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );

        let denied = berth_runtime::Error::NotExecutable("/etc/passwd".into());
        let back = Error::from_report(Error::Runtime(denied).to_report().as_bytes());
        assert_eq!(back.kind(), ErrorKind::NotExecutable);
    }

    /// A monitor that died before it could report says so in its own
    /// words, as an internal failure (125), not as a made-up kind.
    #[test]
    fn a_report_that_is_not_one_is_the_monitors_failure() {
        let e = Error::from_report(b"cannot execute the monitor");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.to_string(), "cannot execute the monitor");
    }

    #[test]
    fn kinds_of_what_users_meet_most() {
        assert_eq!(
            Error::NoSuchContainer("x".into()).kind(),
            ErrorKind::NotFound
        );
        let taken = Error::NameInUse {
            name: "x".into(),
            holder: "0".repeat(64),
        };
        assert_eq!(taken.kind(), ErrorKind::Conflict);
        assert_eq!(Error::NotRunning("x".into()).kind(), ErrorKind::NotRunning);
        assert_eq!(Error::InUse("v".into()).kind(), ErrorKind::InUse);
        let full = Error::Io {
            context: "write".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(full.kind(), ErrorKind::NoSpace);
        let net = Error::Network(berth_network::Error::PortInUse("0.0.0.0:80".into()));
        assert_eq!(net.kind(), ErrorKind::Conflict);
    }
}
