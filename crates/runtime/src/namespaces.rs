//! Which namespaces a container gets: new ones to create, existing ones to
//! join by path, and the order both must happen in.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::error::{Context, Result};

/// `CLONE_NEWTIME`, which nix 0.29 does not name.
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

/// The `/proc/<pid>/ns/<name>` file name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Join order: the user namespace first (it grants the rights to join the
/// others), the mount namespace last (paths stop meaning host paths).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// A namespace to join, already opened.
#[derive(Debug)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
}

/// What the intermediate process does with namespaces.
#[derive(Debug)]
pub struct NamespacePlan {
    /// Namespaces to create (user and cgroup are handled apart, see below).
    pub new: CloneFlags,
    /// Create a user namespace (then the parent writes the maps).
    pub new_user: bool,
    /// Create a cgroup namespace: done by the init itself after it was
    /// placed in its cgroup, so the namespace is rooted there.
    pub new_cgroup: bool,
    /// Namespaces joined by path, in `JOIN_ORDER`.
    pub joins: Vec<Join>,
    /// Every type the container has, new or joined.
    pub types: Vec<LinuxNamespaceType>,
}

impl NamespacePlan {
    pub fn from_spec(linux: &Linux) -> Result<NamespacePlan> {
        let mut plan = NamespacePlan {
            new: CloneFlags::empty(),
            new_user: false,
            new_cgroup: false,
            joins: Vec::new(),
            types: Vec::new(),
        };
        let nss = linux.namespaces().clone().unwrap_or_default();
        for t in JOIN_ORDER {
            let Some(ns) = nss.iter().find(|n| n.typ() == t) else {
                continue;
            };
            plan.types.push(t);
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    plan.joins.push(Join {
                        typ: t,
                        fd: open_ns(path, t)?,
                    });
                }
                _ => match t {
                    LinuxNamespaceType::User => plan.new_user = true,
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    _ => plan.new |= clone_flag(t),
                },
            }
        }
        Ok(plan)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.types.contains(&t)
    }

    /// The container has a user namespace (new or joined).
    pub fn has_user(&self) -> bool {
        self.has(LinuxNamespaceType::User)
    }
}

fn open_ns(path: &Path, t: LinuxNamespaceType) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {} namespace {}", proc_name(t), path.display()))?;
    // SAFETY: a fresh descriptor from open, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the namespaces of a running process that differ from the caller's,
/// in `JOIN_ORDER`: what `exec` joins.
pub fn open_of_process(pid: i32, types: &[LinuxNamespaceType]) -> Result<Vec<Join>> {
    let mut joins = Vec::new();
    for t in JOIN_ORDER {
        if !types.contains(&t) {
            continue;
        }
        let theirs = format!("/proc/{pid}/ns/{}", proc_name(t));
        let ours = format!("/proc/self/ns/{}", proc_name(t));
        if let (Ok(a), Ok(b)) = (std::fs::read_link(&theirs), std::fs::read_link(&ours)) {
            if a == b {
                continue;
            }
        }
        joins.push(Join {
            typ: t,
            fd: open_ns(Path::new(&theirs), t)?,
        });
    }
    Ok(joins)
}

/// Joins namespaces in order.
pub fn join_all(joins: &[Join]) -> Result<()> {
    for j in joins {
        nix::sched::setns(&j.fd, clone_flag(j.typ)).ctx(|| {
            format!(
                "join {} namespace (fd {})",
                proc_name(j.typ),
                j.fd.as_raw_fd()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_new_and_joined() {
        let linux: Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"network","path":"/proc/self/ns/net"},
                {"type":"pid"},{"type":"mount"},{"type":"user"},{"type":"cgroup"}]}"#,
        )
        .unwrap();
        let plan = NamespacePlan::from_spec(&linux).unwrap();
        assert!(plan.new_user && plan.new_cgroup);
        assert_eq!(plan.new, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS);
        assert_eq!(plan.joins.len(), 1);
        assert_eq!(plan.joins[0].typ, LinuxNamespaceType::Network);
    }

    #[test]
    fn missing_namespace_path_is_named() {
        let linux: Linux =
            serde_json::from_str(r#"{"namespaces":[{"type":"network","path":"/nonexistent/ns"}]}"#)
                .unwrap();
        let err = NamespacePlan::from_spec(&linux).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ns"), "{err}");
    }
}
