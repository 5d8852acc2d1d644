//! cgroup v1 (and the hybrid layout): one directory per mounted hierarchy.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{devices, rmdir_retrying, write};
use crate::error::{Context, Result};

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the host mounts it (`/sys/fs/cgroup/memory`).
    pub mount_point: String,
    /// Root of the mount inside the hierarchy (usually `/`).
    pub root: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Controller options for a fresh v1 mount (`memory`, `name=systemd`).
    pub options: String,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.fstype == "cgroup" && self.options.split(',').any(|o| o == controller)
    }
}

/// The cgroup hierarchies in our mount namespace, from /proc/self/mountinfo.
pub fn host_hierarchies() -> Vec<Hierarchy> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let options = post[2]
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro"))
            .filter(|o| !o.starts_with("clone_children") && !o.starts_with("release_agent"))
            .collect::<Vec<_>>()
            .join(",");
        out.push(Hierarchy {
            mount_point: pre[4].to_string(),
            root: pre[3].to_string(),
            fstype: fstype.to_string(),
            options,
        });
    }
    out
}

/// Our process's cgroup in a hierarchy, from the text of /proc/self/cgroup.
pub fn own_cgroup(h: &Hierarchy, proc_self_cgroup: &str) -> Option<String> {
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.fstype == "cgroup2" {
            ctrls.is_empty()
        } else {
            !ctrls.is_empty()
                && ctrls
                    .split(',')
                    .all(|c| h.options.split(',').any(|o| o == c))
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

/// One directory of the container per hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dir {
    /// Controllers of the hierarchy (`memory`; `name=systemd`; empty for
    /// the hybrid cgroup2).
    pub controllers: Vec<String>,
    /// The hierarchy's mount point.
    pub mount_point: PathBuf,
    /// The container's directory.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manager {
    pub dirs: Vec<Dir>,
}

impl Manager {
    /// `path_for(own)` maps our own cgroup path in a hierarchy to the
    /// container's.
    pub fn new(path_for: impl Fn(&Path) -> Result<PathBuf>) -> Result<Manager> {
        Manager::new_in(&host_hierarchies(), path_for)
    }

    /// [`Manager::new`] with the hierarchies the caller read already.
    pub fn new_in(
        hierarchies: &[Hierarchy],
        path_for: impl Fn(&Path) -> Result<PathBuf>,
    ) -> Result<Manager> {
        let mut dirs = Vec::new();
        let own_text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        for h in hierarchies {
            if !h.mount_point.starts_with(super::ROOT) {
                continue;
            }
            let own = own_cgroup(h, &own_text).unwrap_or_else(|| "/".into());
            let own = own
                .strip_prefix(h.root.as_str())
                .unwrap_or(&own)
                .to_string();
            let rel = path_for(Path::new(if own.is_empty() { "/" } else { &own }))?;
            let controllers = if h.fstype == "cgroup2" {
                Vec::new()
            } else {
                h.options.split(',').map(String::from).collect()
            };
            let path = Path::new(&h.mount_point).join(rel.strip_prefix("/").unwrap_or(&rel));
            dirs.push(Dir {
                controllers,
                mount_point: PathBuf::from(&h.mount_point),
                path,
            });
        }
        Ok(Manager { dirs })
    }

    fn dir(&self, controller: &str) -> Option<&Dir> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
    }

    pub fn prepare(&self, resources: Option<&LinuxResources>) -> Result<()> {
        for d in &self.dirs {
            std::fs::create_dir_all(&d.path)
                .ctx(|| format!("create cgroup {}", d.path.display()))?;
            if d.controllers.iter().any(|c| c == "cpuset") {
                init_cpuset(&d.mount_point, &d.path)?;
            }
        }
        if let Some(r) = resources {
            self.write_resources(r, true)?;
        }
        Ok(())
    }

    /// Writes the limits; `devices` also rewrites the device rules (not on
    /// update: rewriting starts from deny-all, which would cut running
    /// processes off their devices for a moment; runc skips them too).
    pub fn write_resources(&self, r: &LinuxResources, devices: bool) -> Result<()> {
        if let (Some(p), Some(d)) = (r.pids(), self.dir("pids")) {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(&d.path, "pids.max", &v)?;
        }
        if let (Some(m), Some(d)) = (r.memory(), self.dir("memory")) {
            if let Some(v) = m.reservation() {
                write(&d.path, "memory.soft_limit_in_bytes", &v.to_string())?;
            }
            match (m.limit(), m.swap()) {
                (Some(limit), Some(swap)) => {
                    // The limit may never exceed memory+swap: which file goes
                    // first depends on whether the limits grow or shrink.
                    if write(&d.path, "memory.limit_in_bytes", &limit.to_string()).is_err() {
                        write(&d.path, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                        write(&d.path, "memory.limit_in_bytes", &limit.to_string())?;
                    } else {
                        write(&d.path, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                    }
                }
                (Some(limit), None) => write(&d.path, "memory.limit_in_bytes", &limit.to_string())?,
                (None, Some(swap)) => {
                    write(&d.path, "memory.memsw.limit_in_bytes", &swap.to_string())?
                }
                (None, None) => {}
            }
            if let Some(s) = m.swappiness() {
                write(&d.path, "memory.swappiness", &s.to_string())?;
            }
            if m.disable_oom_killer() == Some(true) {
                write(&d.path, "memory.oom_control", "1")?;
            }
            // memory.kernel and kernelTCP are deprecated by the spec and
            // may be ignored; kernels >= 5.16 no longer have them.
        }
        if let Some(c) = r.cpu() {
            if let Some(d) = self.dir("cpu") {
                if let Some(s) = c.shares() {
                    write(&d.path, "cpu.shares", &s.to_string())?;
                    // The kernel clamps a value out of its range (2 to
                    // 262144) without an error; runc reads it back and
                    // refuses, in these words.
                    let set = std::fs::read_to_string(d.path.join("cpu.shares"))
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    match set {
                        Some(k) if s < k => {
                            return Err(crate::Error::Cgroup(format!(
                                "the minimum allowed cpu-shares is {k}"
                            )))
                        }
                        Some(k) if s > k => {
                            return Err(crate::Error::Cgroup(format!(
                                "the maximum allowed cpu-shares is {k}"
                            )))
                        }
                        _ => {}
                    }
                }
                if let Some(p) = c.period() {
                    write(&d.path, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = c.quota() {
                    write(&d.path, "cpu.cfs_quota_us", &q.to_string())?;
                }
            }
            if let Some(d) = self.dir("cpuset") {
                if let Some(cpus) = c.cpus() {
                    write(&d.path, "cpuset.cpus", cpus)?;
                }
                if let Some(mems) = c.mems() {
                    write(&d.path, "cpuset.mems", mems)?;
                }
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(d) = self.dir("cpu") {
                // Period before runtime: the runtime may not exceed it.
                if let Some(p) = c.realtime_period() {
                    write(&d.path, "cpu.rt_period_us", &p.to_string())?;
                }
                if let Some(rt) = c.realtime_runtime() {
                    write(&d.path, "cpu.rt_runtime_us", &rt.to_string())?;
                }
            }
        }
        if let Some(b) = r.block_io() {
            let d = self.dir("blkio").ok_or_else(|| {
                crate::error::Error::SpecInvalid("no blkio cgroup hierarchy is mounted".into())
            })?;
            let weight_files = ["blkio.bfq.weight", "blkio.weight"];
            if let Some(w) = b.weight() {
                super::write_first(&d.path, &weight_files, &w.to_string(), "blockIO.weight")?;
            }
            if let Some(w) = b.leaf_weight() {
                super::write_first(
                    &d.path,
                    &["blkio.leaf_weight"],
                    &w.to_string(),
                    "blockIO.leafWeight",
                )?;
            }
            for wd in b.weight_device().iter().flatten() {
                if let Some(w) = wd.weight() {
                    let line = format!("{} {w}", super::dev(wd.major(), wd.minor()));
                    super::write_first(
                        &d.path,
                        &["blkio.bfq.weight_device", "blkio.weight_device"],
                        &line,
                        "blockIO.weightDevice",
                    )?;
                }
            }
            for (rules, file) in [
                (
                    b.throttle_read_bps_device(),
                    "blkio.throttle.read_bps_device",
                ),
                (
                    b.throttle_write_bps_device(),
                    "blkio.throttle.write_bps_device",
                ),
                (
                    b.throttle_read_iops_device(),
                    "blkio.throttle.read_iops_device",
                ),
                (
                    b.throttle_write_iops_device(),
                    "blkio.throttle.write_iops_device",
                ),
            ] {
                for t in rules.iter().flatten() {
                    write(
                        &d.path,
                        file,
                        &format!("{} {}", super::dev(t.major(), t.minor()), t.rate()),
                    )?;
                }
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            self.write_hugetlb(h.page_size(), h.limit())?;
        }
        if let Some(d) = self.dir("devices").filter(|_| devices) {
            let rules = devices::rules(r.devices().as_deref().unwrap_or_default(), &[]);
            // Each file opened once for all the rules (a container has a
            // score of them): every write(2) is one rule to the kernel.
            let mut deny = RuleFile::open(&d.path, "devices.deny")?;
            deny.write("a")?;
            let mut allow = None;
            for rule in rules {
                let f = if rule.allow {
                    match &mut allow {
                        Some(f) => f,
                        None => allow.insert(RuleFile::open(&d.path, "devices.allow")?),
                    }
                } else {
                    &mut deny
                };
                f.write(&rule.line())?;
            }
        }
        Ok(())
    }

    /// Moves the calling single-threaded process into the v1 hierarchies
    /// by writing 0 to `tasks`: a thread moving itself skips the kernel's
    /// threadgroup lock, whose first write-lock waits out an RCU grace
    /// period (7–10 ms measured here) when another process is migrated
    /// through `cgroup.procs`. The cgroup2 hierarchy of a hybrid host is
    /// left to `clone_into` (threads cannot change domain cgroups there).
    pub fn join_self(&self) -> Result<()> {
        for d in self.dirs.iter().filter(|d| !d.controllers.is_empty()) {
            write(&d.path, "tasks", "0")?;
        }
        Ok(())
    }

    /// The `tasks` files of the hierarchies [`Manager::join_self`] joins,
    /// opened for writing: a process that gets them (over the create's
    /// channel) joins by writing 0 to each, even from inside a user
    /// namespace of its own, since the kernel checks the credentials they
    /// were opened with (ours, the host's root).
    pub fn open_join_files(&self) -> Result<Vec<std::fs::File>> {
        self.dirs
            .iter()
            .filter(|d| !d.controllers.is_empty())
            .map(|d| {
                let p = d.path.join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .ctx(|| format!("open {}", p.display()))
            })
            .collect()
    }

    /// The cgroup2 directory (hybrid hosts), for `CLONE_INTO_CGROUP`.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.is_empty())
            .map(|d| d.path.as_path())
    }

    /// hugetlb in a v1 hierarchy, or (hybrid hosts, like this one) in the
    /// cgroup2 tree, where the controller is enabled down the path.
    fn write_hugetlb(&self, size: &str, limit: i64) -> Result<()> {
        if let Some(d) = self.dir("hugetlb") {
            return write(
                &d.path,
                &format!("hugetlb.{size}.limit_in_bytes"),
                &limit.to_string(),
            );
        }
        let unified = self.dirs.iter().find(|d| d.controllers.is_empty());
        let Some(u) = unified.filter(|u| {
            std::fs::read_to_string(u.mount_point.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == "hugetlb"))
        }) else {
            return Err(crate::error::Error::SpecInvalid(
                "hugepageLimits: no hugetlb cgroup controller on this host".into(),
            ));
        };
        let rel = u
            .path
            .strip_prefix(&u.mount_point)
            .unwrap_or(&u.path)
            .to_path_buf();
        let mut cur = u.mount_point.clone();
        for comp in rel.components() {
            let enabled =
                std::fs::read_to_string(cur.join("cgroup.subtree_control")).unwrap_or_default();
            if !enabled.split_whitespace().any(|x| x == "hugetlb") {
                write(&cur, "cgroup.subtree_control", "+hugetlb")?;
            }
            cur.push(comp);
        }
        write(&u.path, &format!("hugetlb.{size}.max"), &limit.to_string())
    }

    pub fn join(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            write(&d.path, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Freezes (or thaws) every process of the cgroup, waiting until the
    /// kernel reports the state reached.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let Some(d) = self.dir("freezer") else {
            return Err(crate::error::Error::Cgroup(
                "no freezer cgroup hierarchy is mounted".into(),
            ));
        };
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..2000 {
            write(&d.path, "freezer.state", want)?;
            let now = std::fs::read_to_string(d.path.join("freezer.state"))
                .ctx(|| "read freezer.state".into())?;
            if now.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(crate::error::Error::Cgroup(format!(
            "cgroup {} did not become {want}",
            d.path.display()
        )))
    }

    pub fn is_frozen(&self) -> bool {
        self.dir("freezer").is_some_and(|d| {
            std::fs::read_to_string(d.path.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN")
        })
    }

    /// The processes of the container (from the pids hierarchy, or any).
    /// Every process in any of the container's hierarchies. Normally each
    /// is in all of them; a create killed while its process was joining
    /// them one by one leaves it in some only, and it must still be found
    /// (and killed) for the cgroups to be removable.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for d in self.dirs.iter().filter(|d| d.path.exists()) {
            for pid in super::read_pids(&d.path)? {
                if !all.contains(&pid) {
                    all.push(pid);
                }
            }
        }
        Ok(all)
    }

    pub fn remove(&self) -> Result<()> {
        for d in &self.dirs {
            rmdir_retrying(&d.path)?;
        }
        Ok(())
    }
}

/// A new cpuset cgroup starts with no cpus and no memory nodes, and no
/// process can join it until they are set: copy them down from the parent.
fn init_cpuset(mount_point: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(mount_point).unwrap_or(dir);
    let mut cur = mount_point.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
            if v.trim().is_empty() {
                let pv = std::fs::read_to_string(parent.join(f))
                    .ctx(|| format!("read {}", parent.join(f).display()))?;
                write(&cur, f, pv.trim())?;
            }
        }
    }
    Ok(())
}

/// A v1 devices file kept open while rules are written to it one by one.
struct RuleFile {
    file: std::fs::File,
    path: PathBuf,
}

impl RuleFile {
    fn open(dir: &Path, name: &str) -> Result<RuleFile> {
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| crate::error::Error::Io {
                context: format!("open {}", path.display()),
                source: e,
            })?;
        Ok(RuleFile { file, path })
    }

    /// One rule, in one write(2) (the kernel parses one rule per write).
    fn write(&mut self, rule: &str) -> Result<()> {
        use std::io::Write as _;
        self.file
            .write_all(rule.as_bytes())
            .map_err(|e| crate::error::Error::Io {
                context: format!("write {rule:?} to {}", self.path.display()),
                source: e,
            })
    }
}
