//! berth's OCI runtime library: turns an OCI bundle (runtime-spec 1.2) into an
//! isolated process, and manages it through the lifecycle
//! create → start → state → kill → delete.
//!
//! The library never prints and never exits; binaries own the terminal.
//!
//! # How a container is made
//!
//! With nothing to join and no time namespace (the usual case), the init
//! is cloned straight into its new user and pid namespaces
//! (`process::intermediate::direct`):
//!
//! ```text
//! caller (create)                        init (clone, pid 1)
//!  | socketpair, fifo, cgroup2 dir          |
//!  |-- clone3(NEWUSER|NEWPID, INTO_CGROUP)->| unshare(other new ns)
//!  | make the v1 cgroups, open their tasks  |
//!  | write uid_map/gid_map, idmap binds     |
//!  |-- MappingsWritten + tasks fds -------->| join the cgroups, setuid 0
//!  |   (CgroupsReady without a user ns)     | unshare(NEWCGROUP)
//!  |-- Continue (only with hooks) --------->| rootfs, pivot_root,
//!  |<- Ready -------------------------------| process setup
//!  | write the init record, return          | open(exec.fifo, W)
//! start: open(exec.fifo, R), read --------> execve
//! ```
//!
//! With a namespace to join (a path in the spec: `--net container:`,
//! `exec`) or a time namespace, an intermediate process comes between: it
//! joins what is to be joined before it makes a user namespace, unshares
//! the rest, and forks the init (pid 1 of the new pid namespace):
//!
//! ```text
//! caller (create)           intermediate (fork)            init (fork, pid 1)
//!  | socketpair, fifo          |                              |
//!  |-- fork ------------------>| setns(user path) or          |
//!  |<- UserNsReady ------------|   unshare(NEWUSER)           |
//!  | write uid_map/gid_map     |                              |
//!  |-- MappingsWritten ------->| setns(other paths)           |
//!  |                           | unshare(other new ns)        |
//!  |                           |-- fork --------------------->|
//!  |<- InitPid(pid) -----------| exit                         |
//!  | (cgroups are joined here) |                              |
//!  |-- Continue ------------------------------------------->  | rootfs, pivot_root,
//!  |<- Ready ------------------------------------------------ | process setup
//!  | write state.json, exit                                   | open(exec.fifo, W)
//! start: open(exec.fifo, R), read ---------------------------> execve
//! ```
//!
//! The runtime forks without re-executing itself between create and
//! execve. The one re-exec is earlier, once per command that starts
//! container processes: the binary runs itself again from a read-only
//! clone of its file ([`exe`]), so that no container can write it
//! (CVE-2019-5736); the library refuses to start a container process
//! from an unprotected binary. The caller is a child subreaper so that an
//! init orphaned by its intermediate is reparented to it (and from there
//! to the caller's own subreaper, such as conmon).

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod bundle;
pub mod cgroups;
pub mod channel;
pub mod container;
pub mod error;
pub mod exe;
pub mod hooks;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod state;
pub mod syscall;
pub mod sysctl;
pub mod template;
pub mod terminal;

pub use container::{Container, CreateOptions, ExecOptions, ExecOutcome};
pub use error::{ChildFailure, Error, ErrorKind, Result};
pub use process::stdio::Stdio;
pub use state::{ContainerState, Status};

/// The OCI runtime-spec version this library implements.
pub const OCI_VERSION: &str = "1.2.0";

/// An annotation of berth's: with "true", the container's program starts
/// with every signal blocked (a program that expects it unblocks them once
/// it handles them, as berth-init does). A pid-namespace init drops the
/// signals it has no handler for; blocked ones wait.
pub const EXEC_SIGNALS_BLOCKED: &str = "run.berth.exec-signals-blocked";
