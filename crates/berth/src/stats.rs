//! `stats`: containers' resource usage.

use std::io::Write;

use anyhow::Result;
use berth_engine::stats::{ContainerStats, StatsOptions};
use berth_engine::Engine;

use crate::format;
use crate::ps::short;

/// `docker stats`: the engine's samples as docker's table, redrawn each
/// second, or once with `--no-stream`.
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
    let mut opts = StatsOptions::default();
    opts.containers = names.to_vec();
    opts.all = all;
    opts.stream = !no_stream;
    for report in engine.container_stats(&opts)? {
        let rows: Vec<_> = report?.iter().map(|s| row(s, names, no_trunc)).collect();
        let mut out = std::io::stdout().lock();
        if !no_stream {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        fmt.write(&header, rows, &mut out)?;
        out.flush()?;
    }
    Ok(())
}

/// Docker's `*container.statsContext` of one sample.
fn row(s: &ContainerStats, names: &[String], no_trunc: bool) -> berth_template::Value {
    use berth_template::Value as V;
    let dashes = || "--".to_string();
    let u = s.usage.as_ref();
    let cpu = u
        .and_then(|u| u.cpu_percent)
        .map_or_else(dashes, |p| format!("{p:.2}%"));
    let mem = u.map_or_else(dashes, |u| {
        format!(
            "{} / {}",
            binary_size(u.memory_used),
            binary_size(u.memory_limit)
        )
    });
    let mem_pct = u.map_or_else(dashes, |u| format!("{:.2}%", u.memory_percent()));
    let pids = u.map_or_else(dashes, |u| u.pids.to_string());
    let block = u.map_or_else(dashes, |u| {
        format!(
            "{} / {}",
            format::size(u.block_read),
            format::size(u.block_written)
        )
    });
    // Docker's `.Container` is the container as the command line
    // named it (its id when none was named).
    let given = names
        .iter()
        .find(|n| s.id.starts_with(n.as_str()) || s.name == **n)
        .cloned()
        .unwrap_or_else(|| short(&s.id, no_trunc));
    format::context(
        "*container.statsContext",
        vec![
            ("BlockIO", V::from(block)),
            ("CPUPerc", V::from(cpu)),
            ("Container", V::from(given)),
            ("ID", V::from(short(&s.id, no_trunc))),
            ("MemPerc", V::from(mem_pct)),
            ("MemUsage", V::from(mem)),
            ("Name", V::from(s.name.as_str())),
            (
                "NetIO",
                V::from(format!(
                    "{} / {}",
                    format::size(s.net_rx),
                    format::size(s.net_tx)
                )),
            ),
            ("PIDs", V::from(pids)),
        ],
    )
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
