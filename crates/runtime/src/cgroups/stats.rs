//! Resource usage of a container, read from its cgroups, in runc's
//! `events` shape (what `runc events --stats` prints under "data").

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::Manager;

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
}

/// Bytes read and written per device, as runc's `events --stats` gives
/// them.
#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// `Read` or `Write`.
    pub op: String,
    pub value: u64,
}

impl Blkio {
    /// Total bytes (read, written) over all devices.
    pub fn totals(&self) -> (u64, u64) {
        self.io_service_bytes_recursive
            .iter()
            .fold((0, 0), |(r, w), e| match e.op.as_str() {
                "Read" => (r + e.value, w),
                "Write" => (r, w + e.value),
                _ => (r, w),
            })
    }

    /// cgroup v1's `blkio.throttle.io_service_bytes_recursive`: `MAJ:MIN
    /// Op value` lines, and a `Total` line.
    fn from_v1(text: &str) -> Blkio {
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let (dev, op, value) = (it.next()?, it.next()?, it.next()?);
                let (major, minor) = dev.split_once(':')?;
                matches!(op, "Read" | "Write").then_some(())?;
                Some(BlkioEntry {
                    major: major.parse().ok()?,
                    minor: minor.parse().ok()?,
                    op: op.to_string(),
                    value: value.parse().ok()?,
                })
            })
            .collect();
        Blkio {
            io_service_bytes_recursive: entries,
        }
    }

    /// cgroup v2's `io.stat`: `MAJ:MIN rbytes=N wbytes=N ...` lines.
    fn from_v2(text: &str) -> Blkio {
        let mut entries = Vec::new();
        for l in text.lines() {
            let mut it = l.split_whitespace();
            let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
                continue;
            };
            for kv in it {
                let (op, v) = match kv.split_once('=') {
                    Some(("rbytes", v)) => ("Read", v),
                    Some(("wbytes", v)) => ("Write", v),
                    _ => continue,
                };
                if let Ok(value) = v.parse() {
                    entries.push(BlkioEntry {
                        major,
                        minor,
                        op: op.into(),
                        value,
                    });
                }
            }
        }
        Blkio {
            io_service_bytes_recursive: entries,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    pub periods: u64,
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    pub current: u64,
    pub limit: u64,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `max` reads as u64::MAX, as the kernel's "no limit".
fn limit(dir: &Path, file: &str) -> u64 {
    match read(dir, file).as_deref().map(str::trim) {
        Some("max") => u64::MAX,
        Some(v) => v.parse().unwrap_or(0),
        None => 0,
    }
}

impl Manager {
    pub fn stats(&self) -> Stats {
        match self {
            Manager::V1(m) => {
                let dir = |c: &str| {
                    m.dirs
                        .iter()
                        .find(|d| d.controllers.iter().any(|x| x == c))
                        .map(|d| d.path.clone())
                };
                let mut s = Stats::default();
                if let Some(d) = dir("cpuacct") {
                    s.cpu.usage.total = num(&d, "cpuacct.usage");
                    s.cpu.usage.percpu = read(&d, "cpuacct.usage_percpu")
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect();
                    // cpuacct.stat is in USER_HZ ticks.
                    // SAFETY: sysconf reads a constant.
                    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
                        .unwrap_or(100)
                        .max(1);
                    let st = keyed(&d, "cpuacct.stat");
                    s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * 1_000_000_000 / hz;
                    s.cpu.usage.kernel =
                        st.get("system").copied().unwrap_or(0) * 1_000_000_000 / hz;
                }
                if let Some(d) = dir("cpu") {
                    let st = keyed(&d, "cpu.stat");
                    s.cpu.throttling = Throttling {
                        periods: st.get("nr_periods").copied().unwrap_or(0),
                        throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                        throttled_time: st.get("throttled_time").copied().unwrap_or(0),
                    };
                }
                if let Some(d) = dir("memory") {
                    let entry = |p: &str| MemoryEntry {
                        limit: num(&d, &format!("{p}.limit_in_bytes")),
                        usage: num(&d, &format!("{p}.usage_in_bytes")),
                        max: num(&d, &format!("{p}.max_usage_in_bytes")),
                        failcnt: num(&d, &format!("{p}.failcnt")),
                    };
                    s.memory.usage = entry("memory");
                    s.memory.swap = entry("memory.memsw");
                    s.memory.raw = keyed(&d, "memory.stat");
                }
                if let Some(d) = dir("pids") {
                    s.pids = Pids {
                        current: num(&d, "pids.current"),
                        limit: limit(&d, "pids.max"),
                    };
                }
                if let Some(d) = dir("blkio") {
                    s.blkio = Blkio::from_v1(
                        &read(&d, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default(),
                    );
                }
                s
            }
            Manager::V2(m) => {
                let d = &m.path;
                let cpu = keyed(d, "cpu.stat");
                let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
                Stats {
                    cpu: Cpu {
                        usage: CpuUsage {
                            total: get("usage_usec") * 1000,
                            percpu: Vec::new(),
                            kernel: get("system_usec") * 1000,
                            user: get("user_usec") * 1000,
                        },
                        throttling: Throttling {
                            periods: get("nr_periods"),
                            throttled_periods: get("nr_throttled"),
                            throttled_time: get("throttled_usec") * 1000,
                        },
                    },
                    memory: Memory {
                        usage: MemoryEntry {
                            limit: limit(d, "memory.max"),
                            usage: num(d, "memory.current"),
                            max: num(d, "memory.peak"),
                            failcnt: keyed(d, "memory.events").get("max").copied().unwrap_or(0),
                        },
                        swap: MemoryEntry {
                            limit: limit(d, "memory.swap.max"),
                            usage: num(d, "memory.swap.current"),
                            max: num(d, "memory.swap.peak"),
                            failcnt: 0,
                        },
                        raw: keyed(d, "memory.stat"),
                    },
                    pids: Pids {
                        current: num(d, "pids.current"),
                        limit: limit(d, "pids.max"),
                    },
                    blkio: Blkio::from_v2(&read(d, "io.stat").unwrap_or_default()),
                }
            }
        }
    }

    /// How many times the kernel's OOM killer acted in the container.
    pub fn oom_kills(&self) -> u64 {
        match self {
            Manager::V1(m) => m
                .dirs
                .iter()
                .find(|d| d.controllers.iter().any(|c| c == "memory"))
                .map(|d| {
                    keyed(&d.path, "memory.oom_control")
                        .get("oom_kill")
                        .copied()
                        .unwrap_or(0)
                })
                .unwrap_or(0),
            Manager::V2(m) => keyed(&m.path, "memory.events")
                .get("oom_kill")
                .copied()
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod blkio_tests {
    use super::*;

    #[test]
    fn block_io_parses_both_versions() {
        let v1 =
            Blkio::from_v1("8:0 Read 4096\n8:0 Write 512\n8:0 Sync 1\n8:16 Read 10\nTotal 4618\n");
        assert_eq!(v1.totals(), (4106, 512));
        assert_eq!(v1.io_service_bytes_recursive.len(), 3);
        let v2 = Blkio::from_v2(
            "8:0 rbytes=100 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2\n",
        );
        assert_eq!(v2.totals(), (101, 22));
        assert_eq!(
            v2.io_service_bytes_recursive[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 100
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::v1;

    #[test]
    fn v1_files_become_stats() {
        let root = tempfile::tempdir().unwrap();
        let mk = |ctrl: &str, files: &[(&str, &str)]| {
            let d = root.path().join(ctrl).join("c");
            std::fs::create_dir_all(&d).unwrap();
            for (f, v) in files {
                std::fs::write(d.join(f), v).unwrap();
            }
            v1::Dir {
                controllers: vec![ctrl.to_string()],
                mount_point: root.path().join(ctrl),
                path: d,
            }
        };
        let m = Manager::V1(v1::Manager {
            dirs: vec![
                mk("pids", &[("pids.current", "3\n"), ("pids.max", "max\n")]),
                mk(
                    "memory",
                    &[
                        ("memory.usage_in_bytes", "4096\n"),
                        ("memory.stat", "cache 10\nrss 20\n"),
                        (
                            "memory.oom_control",
                            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                        ),
                    ],
                ),
                mk(
                    "cpuacct",
                    &[
                        ("cpuacct.usage", "123\n"),
                        ("cpuacct.usage_percpu", "100 23 \n"),
                    ],
                ),
            ],
        });
        let s = m.stats();
        assert_eq!((s.pids.current, s.pids.limit), (3, u64::MAX));
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.raw.get("rss"), Some(&20));
        assert_eq!(s.cpu.usage.percpu, vec![100, 23]);
        assert_eq!(m.oom_kills(), 2);
    }
}
