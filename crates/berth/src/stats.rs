//! `stats`: containers' resource usage.

use std::io::Write;

use anyhow::Result;
use berth_engine::{Engine, Record, Status};

use crate::format;
use crate::ps::short;
/// Bytes received and sent on the container's interfaces (loopback aside),
/// from its network namespace's /proc/<pid>/net/dev.
fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

/// `docker stats`: CPU from two samples of the cgroup's usage, memory and
/// pids from the cgroups, network from the container's namespace.
pub(crate) fn stats(
    engine: &Engine,
    all: bool,
    no_stream: bool,
    no_trunc: bool,
    format: Option<&str>,
    names: &[String],
) -> Result<()> {
    let fmt = format::ListFormat::new(
        format,
        r"table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
    )?;
    let header = format::header(&[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ]);
    let pick = || -> Result<Vec<Record>> {
        if names.is_empty() {
            Ok(engine
                .list()?
                .into_iter()
                .filter(|r| all || matches!(r.status, Status::Running | Status::Paused))
                .collect())
        } else {
            names.iter().map(|n| Ok(engine.find(n)?)).collect()
        }
    };
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib * 1024);
    let sample = |list: &[Record]| -> Vec<Option<(u64, std::time::Instant)>> {
        list.iter()
            .map(|r| {
                engine
                    .stats(r)
                    .ok()
                    .map(|s| (s.cpu.usage.total, std::time::Instant::now()))
            })
            .collect()
    };
    let mut list = pick()?;
    let mut before = sample(&list);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(if no_stream {
            500
        } else {
            1000
        }));
        let mut rows = Vec::new();
        for (r, prev) in list.iter().zip(&before) {
            let s = engine.stats(r).ok();
            let cpu = match (s.as_ref(), prev) {
                (Some(s), Some((u0, t0))) => {
                    let dt = t0.elapsed().as_nanos().max(1) as f64;
                    format!(
                        "{:.2}%",
                        (s.cpu.usage.total.saturating_sub(*u0)) as f64 / dt * 100.0
                    )
                }
                _ => "--".into(),
            };
            let (mem, mem_pct, pids) = match &s {
                Some(s) => {
                    let limit = if s.memory.usage.limit == 0 || s.memory.usage.limit > mem_total {
                        mem_total
                    } else {
                        s.memory.usage.limit
                    };
                    // docker's usage: without the inactive page cache
                    let cache = s
                        .memory
                        .raw
                        .get("total_inactive_file")
                        .or_else(|| s.memory.raw.get("inactive_file"))
                        .copied()
                        .unwrap_or(0);
                    let used = s.memory.usage.usage.saturating_sub(cache);
                    (
                        format!("{} / {}", binary_size(used), binary_size(limit)),
                        format!("{:.2}%", used as f64 / limit.max(1) as f64 * 100.0),
                        s.pids.current.to_string(),
                    )
                }
                None => ("--".into(), "--".into(), "--".into()),
            };
            let (rx, tx) = if r.pid > 0 { net_io(r.pid) } else { (0, 0) };
            let block = match &s {
                Some(s) => {
                    let (read, written) = s.blkio.totals();
                    format!("{} / {}", format::size(read), format::size(written))
                }
                None => "--".into(),
            };
            use berth_template::Value as V;
            // Docker's `.Container` is the container as the command line
            // named it (its id when none was named).
            let given = names
                .iter()
                .find(|n| r.id.starts_with(n.as_str()) || r.name == **n)
                .cloned()
                .unwrap_or_else(|| short(&r.id, no_trunc));
            rows.push(format::context(
                "*container.statsContext",
                vec![
                    ("BlockIO", V::from(block)),
                    ("CPUPerc", V::from(cpu)),
                    ("Container", V::from(given)),
                    ("ID", V::from(short(&r.id, no_trunc))),
                    ("MemPerc", V::from(mem_pct)),
                    ("MemUsage", V::from(mem)),
                    ("Name", V::from(r.name.as_str())),
                    (
                        "NetIO",
                        V::from(format!("{} / {}", format::size(rx), format::size(tx))),
                    ),
                    ("PIDs", V::from(pids)),
                ],
            ));
        }
        let mut out = std::io::stdout().lock();
        if !no_stream {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        fmt.write(&header, rows, &mut out)?;
        out.flush()?;
        if no_stream {
            return Ok(());
        }
        list = pick()?;
        before = sample(&list);
    }
}

/// `1.5MiB`: binary units, as docker prints memory.
fn binary_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", units[u])
    }
}
