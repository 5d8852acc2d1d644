//! Writing container logs in Docker's json-file format: one JSON object per
//! line, `{"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`,
//! rotated to `ctr.log.1`, `.2`... past `max-size`. (Reading them is the
//! engine's: it has serde.)
//!
//! The JSON is written by hand: this crate stays free of serde so that the
//! monitor that links it stays small.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Lines longer than this are split, as docker does (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Appends entries to a container's log, rotating it by size.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    /// 0: unbounded.
    max_size: u64,
    max_file: u32,
    /// Partial lines per stream (stdout, stderr).
    pending: [Vec<u8>; 2],
    json: Vec<u8>,
    /// Bytes offered since the free space was last looked at.
    since_check: u64,
    /// The filesystem is down to its reserve: lines are dropped.
    holding_back: bool,
}

/// How often (in bytes offered) the log's filesystem's free space is
/// looked at: one fstatvfs per 64 KiB costs nothing next to the writes.
const CHECK_EVERY: u64 = 64 * 1024;

/// What a log leaves free on its filesystem: the store's database and
/// removals need a little room (SQLite regrows its WAL index at each
/// command's first open, and a full disk fails that), so a container that
/// prints without end must not take the last of it. 1% of the filesystem,
/// at least 1 MiB, at most 64 MiB. Returns how much of it is taken.
fn short_of_reserve(f: &File) -> Option<u64> {
    let st = nix::sys::statvfs::fstatvfs(f).ok()?;
    let size = st.blocks().saturating_mul(st.fragment_size());
    let free = st.blocks_available().saturating_mul(st.fragment_size());
    let keep = (size / 100).clamp(1 << 20, 64 << 20);
    Some(keep.saturating_sub(free))
}

impl Writer {
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> io::Result<Writer> {
        let file = open_log(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file,
            pending: [Vec::new(), Vec::new()],
            json: Vec::new(),
            since_check: CHECK_EVERY,
            holding_back: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rotation settings: (max size, max files).
    pub fn limits(&self) -> (u64, u32) {
        (self.max_size, self.max_file)
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
                // Keep the buffer's room for the next line.
                self.pending[stream] = line;
                self.pending[stream].clear();
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
        let mut json = std::mem::take(&mut self.json);
        json.clear();
        json.extend_from_slice(b"{\"log\":");
        escape_into(&String::from_utf8_lossy(line), &mut json);
        json.extend_from_slice(if stream == 0 {
            b",\"stream\":\"stdout\",\"time\":\""
        } else {
            b",\"stream\":\"stderr\",\"time\":\""
        });
        json.extend_from_slice(crate::clock::rfc3339_nanos().as_bytes());
        json.extend_from_slice(b"\"}\n");
        if self.max_size > 0 && self.size + json.len() as u64 > self.max_size && self.size > 0 {
            self.rotate();
        }
        self.since_check += json.len() as u64;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.holding_back = short_of_reserve(&self.file).is_some_and(|short| short > 0);
        }
        // A full disk loses log lines, never the container.
        if !self.holding_back && self.file.write_all(&json).is_ok() {
            self.size += json.len() as u64;
        }
        self.json = json;
    }

    fn rotate(&mut self) {
        let keep = self.max_file.max(1);
        if keep == 1 {
            let _ = self.file.set_len(0);
            self.size = 0;
            return;
        }
        for i in (1..keep - 1).rev() {
            let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
        }
        let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        if let Ok(f) = open_log(&self.path) {
            self.file = f;
            self.size = 0;
        }
    }
}

/// Opens a log for appending, created 0600: what a container prints
/// (tokens, passwords in a failed command's output) is for root's eyes.
fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The n-th rotated file of the log at `path` (`ctr.log.n`).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// `s` as a JSON string, quotes included.
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        escape_into("a\"b\\c\n\u{1}é", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001é\""
        );
        let now = crate::clock::rfc3339_nanos();
        assert_eq!(now.len(), 30, "{now}");
        assert!(now.ends_with('Z'));
    }

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
        let text = std::fs::read_to_string(&path).unwrap();
        let logs: Vec<&str> = text
            .lines()
            .map(|l| &l[..l.find(",\"time\"").unwrap()])
            .collect();
        assert_eq!(
            logs,
            [
                r#"{"log":"one\n","stream":"stdout""#,
                r#"{"log":"err\n","stream":"stderr""#,
                r#"{"log":"two\n","stream":"stdout""#,
                r#"{"log":"tail","stream":"stdout""#,
            ]
        );
        for i in 0..50 {
            w.write(0, format!("line {i}\n").as_bytes());
        }
        assert!(rotated(&path, 1).exists());
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        let long = vec![b'x'; MAX_LINE + 10];
        let mut w = Writer::open(&dir.path().join("long.log"), 0, 1).unwrap();
        w.write(0, &long);
        w.flush();
        let text = std::fs::read_to_string(dir.path().join("long.log")).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
