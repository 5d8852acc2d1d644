//! Container logs in Docker's json-file format (written by
//! [`relay::jsonlog`], read here): one JSON object per line,
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

pub use relay::jsonlog::{rotated, Writer};

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
    fn lines_are_split_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut w = Writer::open(&path, 300, 3).unwrap();
        w.write(0, b"one\ntw");
        w.write(1, b"err\n");
        w.write(0, b"o\n");
        w.write(0, b"tail");
        w.flush();
        let e = read_all(&path);
        let logs: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(
            logs,
            vec![
                ("stdout", "one\n"),
                ("stderr", "err\n"),
                ("stdout", "two\n"),
                ("stdout", "tail")
            ]
        );
        for i in 0..50 {
            w.write(0, format!("line {i}\n").as_bytes());
        }
        assert!(path.with_extension("log.1").exists());
        assert!(path.with_extension("log.2").exists());
        assert!(!path.with_extension("log.3").exists());
        let e = read_all(&path);
        assert_eq!(e.last().unwrap().log, "line 49\n");
        assert!(e.len() < 54, "old files were dropped");
        let long = vec![b'x'; relay::jsonlog::MAX_LINE + 10];
        let mut w = Writer::open(&dir.path().join("long.log"), 0, 1).unwrap();
        w.write(0, &long);
        w.flush();
        let e = read_all(&dir.path().join("long.log"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].log.len(), relay::jsonlog::MAX_LINE);
    }
}
