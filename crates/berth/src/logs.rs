//! `logs`: a container's json-file log.

use std::io::Write;

use anyhow::Result;
use berth_engine::Engine;

use crate::events::parse_time;
pub(crate) fn logs(
    engine: &Engine,
    container: &str,
    follow: bool,
    tail: &str,
    timestamps: bool,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<()> {
    let r = engine.find(container)?;
    if r.error == berth_engine::OUTPUT_LOST {
        eprintln!(
            "warning: container {}: its monitor died, so what it printed since is not in its log",
            r.name
        );
    }
    let path = engine.log_path(&r.id);
    let since = since.map(parse_time).transpose()?;
    let until = until.map(parse_time).transpose()?;
    let tail: Option<usize> = match tail {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: a number or \"all\""))?,
        ),
    };
    let in_range = |e: &berth_engine::logs::Entry| {
        let Ok(t) =
            time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
        else {
            return true;
        };
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    let print = |e: &berth_engine::logs::Entry| {
        let line = if timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        if e.stream == "stderr" {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(line.as_bytes());
            let _ = o.flush();
        }
    };
    let entries: Vec<_> = berth_engine::logs::read_all(&path)
        .into_iter()
        .filter(|e| in_range(e))
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        print(e);
    }
    if !follow {
        return Ok(());
    }
    // Follow: read what is appended until the container is no longer running.
    use std::io::{BufReader, Seek, SeekFrom};
    let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    loop {
        let active = engine.db.get(&r.id)?.is_some_and(|x| x.status.is_active());
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // rotated
        }
        if len > pos {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(pos))?;
            let mut out = Vec::new();
            let used = berth_engine::logs::read_entries(BufReader::new(f), &mut out);
            pos += used;
            for e in out.iter().filter(|e| in_range(e)) {
                print(e);
            }
        }
        if !active {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
