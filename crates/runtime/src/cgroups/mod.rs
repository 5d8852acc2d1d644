//! cgroups: where a container's processes are accounted and limited.
//!
//! One interface, two implementations: [`v1`] writes one directory per
//! hierarchy (the controllers of a v1 or hybrid host), [`v2`] one directory
//! in the unified tree. The container's cgroup is created and the init
//! placed in it by the runtime before the init goes on with its setup, so
//! everything the container does is accounted from the start; `exec` joins
//! the same cgroups; `delete` removes them.
//!
//! Implemented now: placement, and the pids, memory, cpu/cpuset and (v1)
//! devices controllers. Other resources are refused with an error that
//! says so rather than ignored.

pub mod bpf_devices;
pub mod devices;
pub mod stats;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxResources, Spec};

use crate::error::{Error, Result};

/// The cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// cgroup2 at /sys/fs/cgroup.
    Unified,
    /// v1 hierarchies at /sys/fs/cgroup/<controller> (perhaps with an empty
    /// cgroup2 at /sys/fs/cgroup/unified: the hybrid layout).
    Legacy,
}

pub const ROOT: &str = "/sys/fs/cgroup";

pub fn host_layout() -> Layout {
    match nix::sys::statfs::statfs(ROOT) {
        Ok(st) if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => Layout::Unified,
        _ => Layout::Legacy,
    }
}

/// The container's cgroups.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Manager {
    V1(v1::Manager),
    V2(v2::Manager),
}

/// The cgroup path a container uses, relative to each hierarchy's root:
/// an absolute `cgroupsPath` as is; a relative one, or none, under the
/// caller's own cgroup (as runc does).
pub fn container_path(spec: &Spec, id: &str, own: &Path) -> Result<PathBuf> {
    let given = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let rel = match given {
        Some(p) if p.is_absolute() => return clean(&p),
        Some(p) if p.to_string_lossy().contains(':') => {
            return Err(Error::SpecInvalid(format!(
            "cgroupsPath {:?} is a systemd path; the systemd cgroup driver is not supported yet",
            p
        )))
        }
        Some(p) => p,
        None => PathBuf::from(id),
    };
    clean(&own.join(rel))
}

/// Refuses `..` so a cgroup path cannot climb out of the hierarchy.
fn clean(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            _ => {
                return Err(Error::SpecInvalid(format!(
                    "cgroupsPath {} must not contain '..'",
                    p.display()
                )))
            }
        }
    }
    Ok(out)
}

/// The container's cgroups, or none for a rootless container that asks
/// for no limit: an ordinary user may create no cgroup outside a subtree
/// delegated to them (none at all under cgroup v1), and without limits
/// the container needs none (runc's and crun's rootless mode do the
/// same). A limit asked for is tried, and fails with the kernel's word.
pub fn unless_rootless_unlimited(cgroups: Manager, spec: &Spec) -> Option<Manager> {
    if !saferoot::idmap::in_unprivileged_user_namespace() {
        return Some(cgroups);
    }
    let limits = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .map(without_unset)
        .is_some_and(|r| has_limits(&r));
    limits.then_some(cgroups)
}

/// Whether `r` (unset values already taken out) limits anything; device
/// rules are not limits (a rootless container's devices are binds of the
/// host's nodes, which the user may open or not as on the host).
fn has_limits(r: &LinuxResources) -> bool {
    r.memory()
        .as_ref()
        .is_some_and(|m| *m != Default::default())
        || r.cpu().as_ref().is_some_and(|c| *c != Default::default())
        || r.pids().is_some_and(|p| p.limit() > 0)
        || r.block_io()
            .as_ref()
            .is_some_and(|b| *b != Default::default())
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.rdma().as_ref().is_some_and(|m| !m.is_empty())
        || r.unified().as_ref().is_some_and(|m| !m.is_empty())
}

/// Limit files an update may change (v1 and v2 names), in an order that
/// restores cleanly (memory+swap before memory on v1: the limit may never
/// exceed it, which [`restore`]'s second pass settles).
const UPDATABLE: &[&str] = &[
    "pids.max",
    "memory.memsw.limit_in_bytes",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.swappiness",
    "memory.low",
    "memory.high",
    "memory.max",
    "memory.swap.max",
    "cpu.shares",
    "cpu.cfs_period_us",
    "cpu.cfs_quota_us",
    "cpu.rt_period_us",
    "cpu.rt_runtime_us",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "blkio.weight",
    "blkio.bfq.weight",
    "io.weight",
    "io.bfq.weight",
];

/// Writes back what [`Manager::snapshot`] read, twice over, so that
/// values that constrain each other (memory and memory+swap, CFS period
/// and quota) all land whatever the order. Best effort: the update's own
/// error is what the caller reports.
fn restore(saved: &[(PathBuf, String)]) {
    for _ in 0..2 {
        for (p, v) in saved {
            if std::fs::read_to_string(p).is_ok_and(|now| now.trim_end() == v) {
                continue;
            }
            // v1 shows an unlimited quota as -1 and takes it back; v2's
            // files take what they show.
            let _ = std::fs::write(p, v);
        }
    }
}

/// The resources with the values clients send to mean "not set" taken
/// out: 0 for shares, CFS and realtime periods and quotas, memory limits,
/// pids, blkio weights; "" for cpusets. Docker sends
/// `"cpu":{"shares":0}` and `"blockIO":{"weight":0}` for every container,
/// and zeros for every limit `docker update` leaves alone; written, they
/// would give each container the lowest CPU weight (shares 0 becomes the
/// kernel's minimum 2), fail where blkio weights do not exist, and reset
/// limits (runc skips them too).
pub fn without_unset(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    let nz = |v: Option<u64>| v.filter(|v| *v != 0);
    let nzi = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(mut c) = r.cpu().clone() {
        c.set_shares(nz(c.shares()));
        c.set_period(nz(c.period()));
        c.set_quota(nzi(c.quota()));
        c.set_realtime_period(nz(c.realtime_period()));
        c.set_realtime_runtime(nzi(c.realtime_runtime()));
        c.set_cpus(c.cpus().clone().filter(|s| !s.is_empty()));
        c.set_mems(c.mems().clone().filter(|s| !s.is_empty()));
        r.set_cpu(Some(c));
    }
    if let Some(mut m) = *r.memory() {
        m.set_limit(nzi(m.limit()));
        m.set_reservation(nzi(m.reservation()));
        m.set_swap(nzi(m.swap()));
        m.set_kernel(nzi(m.kernel()));
        m.set_kernel_tcp(nzi(m.kernel_tcp()));
        r.set_memory(Some(m));
    }
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(mut b) = r.block_io().clone() {
        b.set_weight(b.weight().filter(|w| *w != 0));
        b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
        let empty = b.weight().is_none()
            && b.leaf_weight().is_none()
            && b.weight_device().as_ref().is_none_or(|v| v.is_empty())
            && b.throttle_read_bps_device()
                .as_ref()
                .is_none_or(|v| v.is_empty())
            && b.throttle_write_bps_device()
                .as_ref()
                .is_none_or(|v| v.is_empty())
            && b.throttle_read_iops_device()
                .as_ref()
                .is_none_or(|v| v.is_empty())
            && b.throttle_write_iops_device()
                .as_ref()
                .is_none_or(|v| v.is_empty());
        r.set_block_io((!empty).then_some(b));
    }
    r
}

/// Refuses resources this runtime cannot apply yet, before anything is made.
pub fn check_supported(r: &LinuxResources, layout: Layout) -> Result<()> {
    let unsupported = |what: &str| {
        Err(Error::SpecInvalid(format!(
            "linux.resources.{what} is not supported yet"
        )))
    };
    if r.network().is_some() {
        return unsupported("network");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return unsupported("rdma");
    }
    if let Some(u) = r.unified().as_ref().filter(|m| !m.is_empty()) {
        if layout != Layout::Unified {
            return Err(Error::SpecInvalid(
                "linux.resources.unified needs a cgroup v2 host".into(),
            ));
        }
        if let Some(k) = u.keys().find(|k| k.contains('/') || !k.contains('.')) {
            return Err(Error::SpecInvalid(format!(
                "linux.resources.unified: invalid file name {k:?}"
            )));
        }
    }
    Ok(())
}

impl Manager {
    /// Works out the container's cgroups (nothing is created yet).
    pub fn for_container(spec: &Spec, id: &str) -> Result<Manager> {
        Manager::for_container_in(spec, id, &v1::host_hierarchies())
    }

    /// [`Manager::for_container`] with the host's cgroup mounts read
    /// already (`create` reads them once, for the init's /sys/fs/cgroup
    /// too).
    pub fn for_container_in(
        spec: &Spec,
        id: &str,
        hierarchies: &[v1::Hierarchy],
    ) -> Result<Manager> {
        let layout = host_layout();
        if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            check_supported(r, layout)?;
        }
        Ok(match layout {
            Layout::Unified => {
                let own = v2::own_path()?;
                Manager::V2(v2::Manager::new(container_path(spec, id, &own)?))
            }
            Layout::Legacy => Manager::V1(v1::Manager::new_in(hierarchies, |own| {
                container_path(spec, id, own)
            })?),
        })
    }

    /// Creates the cgroups and writes the limits. Done while the
    /// intermediate process creates the namespaces, on the other core.
    pub fn prepare(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let resources = resources.map(without_unset);
        match self {
            Manager::V1(m) => m.prepare(resources.as_ref()),
            Manager::V2(m) => m.prepare(resources.as_ref()),
        }
    }

    /// Moves `pid` into the cgroups made by `prepare` (the init; exec).
    pub fn join(&self, pid: i32) -> Result<()> {
        match self {
            Manager::V1(m) => m.join(pid),
            Manager::V2(m) => m.join(pid),
        }
    }

    /// Moves the calling (single-threaded) process into every hierarchy it
    /// cheaply can; see `v1::Manager::join_self`. The cgroup2 part is
    /// joined by the child at birth: `clone_into_dir`.
    pub fn join_self(&self) -> Result<()> {
        match self {
            Manager::V1(m) => m.join_self(),
            Manager::V2(_) => Ok(()),
        }
    }

    /// Makes only the directory a child is forked into
    /// ([`Manager::clone_into_dir`]); [`Manager::prepare`] makes the rest.
    pub fn make_birthplace(&self) -> Result<()> {
        match self.clone_into_dir() {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                context: format!("create cgroup {}", dir.display()),
                source,
            }),
            None => Ok(()),
        }
    }

    /// See `v1::Manager::open_join_files`; none for cgroup2 (joined at
    /// birth, `clone_into_dir`).
    pub fn open_join_files(&self) -> Result<Vec<std::fs::File>> {
        match self {
            Manager::V1(m) => m.open_join_files(),
            Manager::V2(_) => Ok(Vec::new()),
        }
    }

    /// Moves the calling single-threaded process into the cgroups whose
    /// `tasks` files `files` are (from [`Manager::open_join_files`]).
    pub fn join_self_through(files: Vec<std::os::fd::OwnedFd>) -> Result<()> {
        use std::io::Write;
        for f in files {
            std::fs::File::from(f)
                .write_all(b"0")
                .map_err(|source| Error::Io {
                    context: "join a cgroup".into(),
                    source,
                })?;
        }
        Ok(())
    }

    /// The cgroup2 directory a child should be born in.
    pub fn clone_into_dir(&self) -> Option<&Path> {
        match self {
            Manager::V1(m) => m.unified_dir(),
            Manager::V2(m) => Some(m.path.as_path()),
        }
    }

    /// Changes the limits of a running container (`update`).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let layout = match self {
            Manager::V1(_) => Layout::Legacy,
            Manager::V2(_) => Layout::Unified,
        };
        let mut r = without_unset(r);
        r.set_devices(None);
        check_supported(&r, layout)?;
        // All or nothing, as runc: a limit the kernel refuses half way
        // (EINVAL, EBUSY for a memory limit below usage) puts back every
        // file already written.
        let saved = self.snapshot();
        let written = match self {
            Manager::V1(m) => m.write_resources(&r, false),
            Manager::V2(m) => m.write_resources(&r),
        };
        if written.is_err() {
            restore(&saved);
        }
        written
    }

    /// The current values of every limit file `update` may write.
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let dirs: Vec<&Path> = match self {
            Manager::V1(m) => m.dirs.iter().map(|d| d.path.as_path()).collect(),
            Manager::V2(m) => vec![m.path.as_path()],
        };
        let mut saved = Vec::new();
        for d in dirs {
            for f in UPDATABLE {
                let p = d.join(f);
                if let Ok(v) = std::fs::read_to_string(&p) {
                    saved.push((p, v.trim_end().to_string()));
                }
            }
        }
        saved
    }

    /// Freezes or thaws every process of the container (pause, resume).
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match self {
            Manager::V1(m) => m.freeze(frozen),
            Manager::V2(m) => m.freeze(frozen),
        }
    }

    pub fn is_frozen(&self) -> bool {
        match self {
            Manager::V1(m) => m.is_frozen(),
            Manager::V2(m) => m.is_frozen(),
        }
    }

    /// Host pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        match self {
            Manager::V1(m) => m.pids(),
            Manager::V2(m) => m.pids(),
        }
    }

    /// Removes the cgroups if they hold no process, at one rmdir each and
    /// without waiting; false when one is still busy (or cannot be
    /// removed), left for [`Manager::remove`] after its processes are
    /// killed. A cgroup with a process in it is never removed, so the
    /// processes are never cut loose.
    pub fn remove_if_empty(&self) -> bool {
        let dirs: Vec<&Path> = match self {
            Manager::V1(m) => m.dirs.iter().map(|d| d.path.as_path()).collect(),
            Manager::V2(m) => vec![m.path.as_path()],
        };
        dirs.into_iter().all(|d| match std::fs::remove_dir(d) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        })
    }

    /// Removes the cgroups (their processes must be gone).
    pub fn remove(&self) -> Result<()> {
        match self {
            Manager::V1(m) => m.remove(),
            Manager::V2(m) => m.remove(),
        }
    }
}

/// Writes the first of `files` that exists in `dir`; none: an error that
/// names what the kernel lacks.
pub(crate) fn write_first(dir: &Path, files: &[&str], value: &str, what: &str) -> Result<()> {
    match files.iter().find(|f| dir.join(f).exists()) {
        Some(f) => write(dir, f, value),
        None => Err(Error::SpecInvalid(format!(
            "{what} is not available on this kernel (none of {} in {})",
            files.join(", "),
            dir.display()
        ))),
    }
}

/// `major:minor` of a block device rule.
pub(crate) fn dev(major: i64, minor: i64) -> String {
    format!("{major}:{minor}")
}

/// The pids listed in a cgroup's `cgroup.procs`.
pub(crate) fn read_pids(dir: &Path) -> Result<Vec<i32>> {
    let p = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::Io {
        context: format!("read {}", p.display()),
        source: e,
    })?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Writes a control file, naming it in the error.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| Error::Io {
        context: format!("write {value:?} to {}", p.display()),
        source: e,
    })
}

/// rmdir with retries: the kernel frees a cgroup a moment after its last
/// process is reaped.
pub(crate) fn rmdir_retrying(dir: &Path) -> Result<()> {
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("remove cgroup {}", dir.display()),
                    source: e,
                })
            }
        }
    }
    Err(Error::Cgroup(format!(
        "cgroup {} stays busy",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: Option<&str>) -> Spec {
        let mut s = crate::template::default_spec(false);
        let mut linux = s.linux().clone().unwrap();
        linux.set_cgroups_path(path.map(PathBuf::from));
        s.set_linux(Some(linux));
        s
    }

    #[test]
    fn dockers_zeros_mean_unset() {
        // What Docker 20.10 sends for `docker run` without limits and for
        // `docker update --memory 64m`.
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "reservation": 0, "swap": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "", "mems": ""},
            "pids": {"limit": 0},
            "blockIO": {"weight": 0}
        }))
        .unwrap();
        let r = without_unset(&r);
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(67108864));
        assert_eq!((m.reservation(), m.swap()), (None, None));
        let c = r.cpu().clone().unwrap();
        assert_eq!((c.shares(), c.quota(), c.period()), (None, None, None));
        assert_eq!((c.realtime_runtime(), c.realtime_period()), (None, None));
        assert_eq!((c.cpus().clone(), c.mems().clone()), (None, None));
        assert!(r.pids().is_none());
        assert!(r.block_io().is_none(), "nothing left to ask of blkio");
        // Real values stay, -1 (unlimited) included.
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"shares": 512, "quota": -1}, "pids": {"limit": -1},
            "blockIO": {"weight": 300}
        }))
        .unwrap();
        let r = without_unset(&r);
        assert_eq!(r.cpu().clone().unwrap().shares(), Some(512));
        assert_eq!(r.cpu().clone().unwrap().quota(), Some(-1));
        assert_eq!(r.pids().unwrap().limit(), -1);
        assert_eq!(r.block_io().clone().unwrap().weight(), Some(300));
    }

    /// A busy cgroup refuses rmdir as a directory with an entry does: it
    /// stays, and the answer is false so that its processes get killed
    /// first; empty and already removed ones count as removed.
    #[test]
    fn remove_if_empty_keeps_what_is_busy() {
        let t = tempfile::tempdir().unwrap();
        let dir = |name: &str, busy: bool| {
            let path = t.path().join(name);
            std::fs::create_dir(&path).unwrap();
            if busy {
                std::fs::write(path.join("cgroup.procs"), "42\n").unwrap();
            }
            v1::Dir {
                controllers: vec![name.to_string()],
                mount_point: t.path().to_path_buf(),
                path,
            }
        };
        let gone = v1::Dir {
            controllers: vec!["pids".to_string()],
            mount_point: t.path().to_path_buf(),
            path: t.path().join("gone"),
        };
        let idle = Manager::V1(v1::Manager {
            dirs: vec![dir("memory", false), gone.clone()],
        });
        assert!(idle.remove_if_empty());
        assert!(!t.path().join("memory").exists());
        let busy = Manager::V1(v1::Manager {
            dirs: vec![dir("cpu", false), dir("freezer", true), dir("blkio", false)],
        });
        assert!(!busy.remove_if_empty());
        assert!(t.path().join("freezer/cgroup.procs").exists());
        let v2 = Manager::V2(v2::Manager {
            path: t.path().join("freezer"),
        });
        assert!(!v2.remove_if_empty());
    }

    #[test]
    fn paths_absolute_relative_and_default() {
        let own = Path::new("/user.slice/me");
        assert_eq!(
            container_path(&spec(Some("/a/b")), "x", own).unwrap(),
            PathBuf::from("/a/b")
        );
        assert_eq!(
            container_path(&spec(Some("a/b")), "x", own).unwrap(),
            PathBuf::from("/user.slice/me/a/b")
        );
        assert_eq!(
            container_path(&spec(None), "x", own).unwrap(),
            PathBuf::from("/user.slice/me/x")
        );
        assert!(container_path(&spec(Some("/a/../../etc")), "x", own).is_err());
        assert!(container_path(&spec(Some("system.slice:berth:x")), "x", own).is_err());
    }
}
