//! cgroup v2: one directory in the unified hierarchy.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{rmdir_retrying, write, ROOT};
use crate::error::{Context, Error, Result};

/// Our own cgroup in the unified hierarchy (`0::/path`).
pub fn own_path() -> Result<PathBuf> {
    let text =
        std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup".into())?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
        .ok_or_else(|| Error::Cgroup("no cgroup v2 entry in /proc/self/cgroup".into()))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manager {
    /// The container's directory.
    pub path: PathBuf,
}

/// cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), the
/// conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

impl Manager {
    pub fn new(rel: PathBuf) -> Manager {
        Manager {
            path: Path::new(ROOT).join(rel.strip_prefix("/").unwrap_or(&rel)),
        }
    }

    pub fn prepare(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let wanted = ["cpu", "cpuset", "memory", "pids", "io", "hugetlb"];
        // Enable the controllers from the root down to our parent.
        let rel = self
            .path
            .strip_prefix(ROOT)
            .unwrap_or(&self.path)
            .to_path_buf();
        let mut cur = PathBuf::from(ROOT);
        for comp in rel.components() {
            let available =
                std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
            let enable: Vec<String> = wanted
                .iter()
                .filter(|c| available.split_whitespace().any(|a| a == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !enable.is_empty() {
                write(&cur, "cgroup.subtree_control", &enable.join(" "))?;
            }
            cur.push(comp);
            std::fs::create_dir_all(&cur).ctx(|| format!("create cgroup {}", cur.display()))?;
        }
        if let Some(r) = resources {
            self.write_resources(r)?;
            if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
                super::bpf_devices::attach(&self.path, &super::devices::rules(rules, &[]))?;
            }
        }
        Ok(())
    }

    pub fn write_resources(&self, r: &LinuxResources) -> Result<()> {
        let d = &self.path;
        if let Some(p) = r.pids() {
            write(
                d,
                "pids.max",
                &if p.limit() > 0 {
                    p.limit().to_string()
                } else {
                    "max".into()
                },
            )?;
        }
        if let Some(m) = r.memory() {
            if let Some(v) = m.reservation() {
                write(d, "memory.low", &v.to_string())?;
            }
            if let Some(limit) = m.limit() {
                write(
                    d,
                    "memory.max",
                    &if limit < 0 {
                        "max".into()
                    } else {
                        limit.to_string()
                    },
                )?;
                // v1's swap is memory+swap; v2's swap.max is swap alone.
                if let Some(swap) = m.swap() {
                    let v = if swap < 0 {
                        "max".to_string()
                    } else {
                        (swap - limit).max(0).to_string()
                    };
                    write(d, "memory.swap.max", &v)?;
                }
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares() {
                write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let quota = match c.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                write(
                    d,
                    "cpu.max",
                    &format!("{quota} {}", c.period().unwrap_or(100_000)),
                )?;
            }
            if let Some(cpus) = c.cpus() {
                write(d, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(d, "cpuset.mems", mems)?;
            }
            if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
                return Err(Error::SpecInvalid(
                    "cpu.realtimeRuntime has no cgroup v2 counterpart".into(),
                ));
            }
        }
        if let Some(b) = r.block_io() {
            if let Some(w) = b.weight() {
                // blkio weight 10..1000 to io weight 1..10000, as runc.
                let w = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
                super::write_first(
                    d,
                    &["io.bfq.weight", "io.weight"],
                    &format!("default {w}"),
                    "blockIO.weight",
                )?;
            }
            for wd in b.weight_device().iter().flatten() {
                if let Some(w) = wd.weight() {
                    let line = format!("{} {w}", super::dev(wd.major(), wd.minor()));
                    super::write_first(
                        d,
                        &["io.bfq.weight", "io.weight"],
                        &line,
                        "blockIO.weightDevice",
                    )?;
                }
            }
            for (rules, key) in [
                (b.throttle_read_bps_device(), "rbps"),
                (b.throttle_write_bps_device(), "wbps"),
                (b.throttle_read_iops_device(), "riops"),
                (b.throttle_write_iops_device(), "wiops"),
            ] {
                for t in rules.iter().flatten() {
                    write(
                        d,
                        "io.max",
                        &format!("{} {key}={}", super::dev(t.major(), t.minor()), t.rate()),
                    )?;
                }
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            write(
                d,
                &format!("hugetlb.{}.max", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        for (k, v) in r.unified().iter().flatten() {
            write(d, k, v)?;
        }
        Ok(())
    }

    pub fn join(&self, pid: i32) -> Result<()> {
        write(&self.path, "cgroup.procs", &pid.to_string())
    }

    /// Freezes (or thaws) the cgroup and waits for `cgroup.events` to say so.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        write(&self.path, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..2000 {
            let events = std::fs::read_to_string(self.path.join("cgroup.events"))
                .ctx(|| "read cgroup.events".into())?;
            if events.lines().any(|l| l == want) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Cgroup(format!(
            "cgroup {} did not reach {want}",
            self.path.display()
        )))
    }

    pub fn is_frozen(&self) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.events"))
            .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        super::read_pids(&self.path)
    }

    pub fn remove(&self) -> Result<()> {
        rmdir_retrying(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
