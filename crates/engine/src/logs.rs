//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`,
//! in `containers/<id>/ctr.log`, rotated to `ctr.log.1`, `.2`... past
//! `max-size`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::LogConfig;
use crate::error::{Context, Result};

/// Lines longer than this are split, as docker does (16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// One log entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends entries to a container's log, rotating it by size.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    config: LogConfig,
    /// Partial lines per stream (stdout, stderr).
    pending: [Vec<u8>; 2],
}

impl Writer {
    pub fn open(path: &Path, config: &LogConfig) -> Result<Writer> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ctx(|| format!("open log {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            config: config.clone(),
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes bytes the container wrote on `stream` (0 stdout, 1 stderr);
    /// complete lines are logged, the rest waits for its newline.
    pub fn write(&mut self, stream: usize, mut data: &[u8]) {
        while !data.is_empty() {
            let room = MAX_LINE - self.pending[stream].len();
            let take = match data.iter().position(|&b| b == b'\n') {
                Some(i) if i < room => i + 1,
                _ => room.min(data.len()),
            };
            self.pending[stream].extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending[stream].ends_with(b"\n") || self.pending[stream].len() >= MAX_LINE {
                let line = std::mem::take(&mut self.pending[stream]);
                self.emit(stream, &line);
            }
        }
    }

    /// Logs what is pending (the container exited mid-line).
    pub fn flush(&mut self) {
        for s in 0..2 {
            if !self.pending[s].is_empty() {
                let line = std::mem::take(&mut self.pending[s]);
                self.emit(s, &line);
            }
        }
    }

    fn emit(&mut self, stream: usize, line: &[u8]) {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.into(),
            time: crate::now_nanos(),
        };
        let Ok(mut json) = serde_json::to_vec(&entry) else {
            return;
        };
        json.push(b'\n');
        if self.config.max_size > 0
            && self.size + json.len() as u64 > self.config.max_size
            && self.size > 0
        {
            self.rotate();
        }
        // A full disk loses log lines, never the container.
        if self.file.write_all(&json).is_ok() {
            self.size += json.len() as u64;
        }
    }

    fn rotate(&mut self) {
        let keep = self.config.max_file.max(1);
        if keep == 1 {
            let _ = self.file.set_len(0);
            self.size = 0;
            return;
        }
        for i in (1..keep - 1).rev() {
            let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
        }
        let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        if let Ok(f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            self.file = f;
            self.size = 0;
        }
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

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
        let mut w = Writer::open(
            &path,
            &LogConfig {
                max_size: 300,
                max_file: 3,
            },
        )
        .unwrap();
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
        let long = vec![b'x'; MAX_LINE + 10];
        let mut w = Writer::open(&dir.path().join("long.log"), &LogConfig::default()).unwrap();
        w.write(0, &long);
        w.flush();
        let e = read_all(&dir.path().join("long.log"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].log.len(), MAX_LINE);
    }
}
