//! Container logs in Docker's json-file format (written by
//! [`berth_relay::jsonlog`], read here): one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`,
//! in `containers/<id>/ctr.log`, rotated to `ctr.log.1`, `.2`... past
//! `max-size`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One log entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

pub use berth_relay::jsonlog::{rotated, Writer};

/// Every entry of the log, oldest first (rotated files included).
pub fn read_all(path: &Path) -> Vec<Entry> {
    let mut files: Vec<PathBuf> = (1..100)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        if let Ok(file) = File::open(&f) {
            read_entries(BufReader::new(file), &mut out);
        }
    }
    out
}

/// Parses json-file lines; a torn last line (being written) is skipped.
pub fn read_entries(r: impl BufRead, out: &mut Vec<Entry>) -> u64 {
    let mut consumed = 0;
    for line in r.split(b'\n') {
        let Ok(line) = line else { break };
        consumed += line.len() as u64 + 1;
        if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
            out.push(e);
        }
    }
    consumed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_read_oldest_first_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let line =
            |log: &str| format!("{{\"log\":\"{log}\\n\",\"stream\":\"stdout\",\"time\":\"t\"}}\n");
        std::fs::write(rotated(&path, 2), line("oldest")).unwrap();
        std::fs::write(rotated(&path, 1), line("older")).unwrap();
        std::fs::write(&path, format!("{}{{\"log\":\"tor", line("newest"))).unwrap();
        let logs: Vec<String> = read_all(&path).into_iter().map(|e| e.log).collect();
        assert_eq!(logs, ["oldest\n", "older\n", "newest\n"]);
        // what the writer writes, the reader reads
        let mut w = Writer::open(&dir.path().join("w.log"), 0, 1).unwrap();
        w.write(1, b"err \"quoted\"\n");
        let e = read_all(&dir.path().join("w.log"));
        assert_eq!(
            (e[0].stream.as_str(), e[0].log.as_str()),
            ("stderr", "err \"quoted\"\n")
        );
    }
}
