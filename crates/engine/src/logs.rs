//! Container logs in Docker's json-file format (written by
//! [`berth_relay::jsonlog`], read here): one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`,
//! in `containers/<id>/ctr.log`, rotated to `ctr.log.1`, `.2`... past
//! `max-size`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::error::Context;
use crate::stream::{self, StopHandle};
use crate::{Engine, Result};

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
    read_all_and_where(path).0
}

/// [`read_all`], and how many bytes of the live file it read: where a
/// follower goes on from (the file's length, read apart, may already
/// hold a line written meanwhile that was not read).
fn read_all_and_where(path: &Path) -> (Vec<Entry>, u64) {
    let mut files: Vec<PathBuf> = (1..100)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    let mut out = Vec::new();
    for f in files {
        if let Ok(file) = File::open(&f) {
            read_entries(BufReader::new(file), &mut out);
        }
    }
    let live = File::open(path).map_or(0, |f| read_entries(BufReader::new(f), &mut out));
    (out, live)
}

/// Parses json-file lines; a torn last line (being written) is skipped.
pub fn read_entries(mut r: impl BufRead, out: &mut Vec<Entry>) -> u64 {
    let mut consumed = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            // A line without its newline is still being written: not
            // consumed, so that a follower reads it whole next time.
            Ok(n) if n > 0 && line.ends_with(b"\n") => {
                consumed += n as u64;
                if let Ok(e) = serde_json::from_slice::<Entry>(&line[..n - 1]) {
                    out.push(e);
                }
            }
            _ => break,
        }
    }
    consumed
}

/// What `logs` reads, and how.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct LogOptions {
    /// After what is there, what the container writes until it stops.
    pub follow: bool,
    /// Only entries at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Only entries at or before this time.
    pub until: Option<time::OffsetDateTime>,
    /// Only the last n entries of what is there (`None`: all).
    pub tail: Option<usize>,
    /// Each line written with its entry's time before it.
    pub timestamps: bool,
    /// With `follow`, the stream ends here at the latest.
    pub deadline: Option<Instant>,
}

impl Entry {
    /// Whether the entry was written from the container's stderr.
    pub fn is_stderr(&self) -> bool {
        self.stream == "stderr"
    }

    /// The entry as `docker logs` prints it: the line as the container
    /// wrote it, after its time with `timestamps`.
    pub fn text(&self, timestamps: bool) -> String {
        if timestamps {
            format!("{} {}", self.time, self.log)
        } else {
            self.log.clone()
        }
    }

    /// Writes the entry to `out` or `err` by the stream it came from.
    pub fn write_to(
        &self,
        timestamps: bool,
        out: &mut impl Write,
        err: &mut impl Write,
    ) -> std::io::Result<()> {
        let text = self.text(timestamps);
        if self.is_stderr() {
            err.write_all(text.as_bytes())
        } else {
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }

    fn within(&self, opts: &LogOptions) -> bool {
        let Ok(t) = time::OffsetDateTime::parse(&self.time, &Rfc3339) else {
            return true;
        };
        opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t <= u)
    }
}

/// A container's log entries, oldest first: those there when it was
/// opened, then (with `follow`) those written after, polled until the
/// container is no longer running, the deadline passes or the caller
/// stops it.
#[derive(Debug)]
pub struct LogStream<'a> {
    engine: &'a Engine,
    id: String,
    path: PathBuf,
    opts: LogOptions,
    pending: VecDeque<Entry>,
    /// How far the live file has been read (followed).
    pos: u64,
    done: bool,
    stop: StopHandle,
    output_lost: bool,
}

/// How often a followed log is read for what was appended.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

impl Engine {
    /// The log of the container `key` (a name, an id or an id's prefix).
    pub fn container_logs(&self, key: &str, opts: &LogOptions) -> Result<LogStream<'_>> {
        let r = self.find(key)?;
        if r.config.log.driver == crate::config::LogDriver::None {
            return Err(crate::Error::LogsNotKept);
        }
        let path = self.log_path(&r.id);
        let (entries, pos) = read_all_and_where(&path);
        let entries: Vec<Entry> = entries.into_iter().filter(|e| e.within(opts)).collect();
        let skip = opts.tail.map_or(0, |n| entries.len().saturating_sub(n));
        Ok(LogStream {
            engine: self,
            id: r.id.clone(),
            path,
            opts: opts.clone(),
            pending: entries.into_iter().skip(skip).collect(),
            pos,
            done: !opts.follow,
            stop: StopHandle::default(),
            output_lost: r.error == crate::OUTPUT_LOST,
        })
    }
}

impl LogStream<'_> {
    /// A handle that ends the stream from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Whether the container's monitor died while its init ran on: what it
    /// printed since is not in the log.
    pub fn output_lost(&self) -> bool {
        self.output_lost
    }

    /// Reads what was appended to the live log since the last read.
    fn read_appended(&mut self) -> Result<()> {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if len < self.pos {
            self.pos = 0; // rotated
        }
        if len > self.pos {
            let mut f = File::open(&self.path).ctx(|| format!("open {}", self.path.display()))?;
            f.seek(SeekFrom::Start(self.pos))
                .ctx(|| format!("seek {}", self.path.display()))?;
            let mut out = Vec::new();
            self.pos += read_entries(BufReader::new(f), &mut out);
            let opts = &self.opts;
            self.pending
                .extend(out.into_iter().filter(|e| e.within(opts)));
        }
        Ok(())
    }
}

impl Iterator for LogStream<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if self.stop.is_stopped() {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            // Whether it runs is read before the file: what it wrote
            // before it stopped is then in the file when we read it. The
            // row is reconciled with the processes: a container whose
            // monitor and init were killed ends the stream instead of
            // holding it open forever.
            let now = self
                .engine
                .db
                .get(&self.id)
                .and_then(|r| r.map(|r| self.engine.reconcile(r)).transpose());
            let active = match now {
                Ok(r) => r.is_some_and(|x| x.status.is_active()),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if let Err(e) = self.read_appended() {
                self.done = true;
                return Some(Err(e));
            }
            if !self.pending.is_empty() {
                continue;
            }
            if !active || !stream::pause(FOLLOW_POLL, self.opts.deadline, &self.stop) {
                self.done = true;
            }
        }
    }
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

    /// A follower goes on from what was read whole: a line still being
    /// written is neither returned nor counted, so it is read whole later
    /// (counting it lost the rest of it once it was finished).
    #[test]
    fn a_torn_last_line_is_not_consumed() {
        let whole = "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n";
        let torn = "{\"log\":\"b";
        let mut out = Vec::new();
        let n = read_entries(format!("{whole}{torn}").as_bytes(), &mut out);
        assert_eq!(n, whole.len() as u64);
        assert_eq!(out.len(), 1);
        let rest = "\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n";
        let mut more = Vec::new();
        read_entries(format!("{torn}{rest}").as_bytes(), &mut more);
        assert_eq!(more[0].log, "b\n");
    }

    #[test]
    fn since_until_and_timestamps_as_docker_logs_takes_them() {
        let at = |time: &str| Entry {
            log: "x\n".into(),
            stream: "stdout".into(),
            time: time.into(),
        };
        let t = |s: &str| time::OffsetDateTime::parse(s, &Rfc3339).unwrap();
        let opts = LogOptions {
            since: Some(t("2026-01-01T00:00:10Z")),
            until: Some(t("2026-01-01T00:00:20Z")),
            ..LogOptions::default()
        };
        assert!(!at("2026-01-01T00:00:09.999999999Z").within(&opts));
        assert!(at("2026-01-01T00:00:10Z").within(&opts));
        assert!(at("2026-01-01T00:00:20Z").within(&opts));
        assert!(!at("2026-01-01T00:00:20.000000001Z").within(&opts));
        // an entry whose time cannot be read is shown, not lost
        assert!(at("garbled").within(&opts));
        let e = at("2026-01-01T00:00:10Z");
        assert_eq!(e.text(false), "x\n");
        assert_eq!(e.text(true), "2026-01-01T00:00:10Z x\n");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stderr = e.clone();
        stderr.stream = "stderr".into();
        stderr.log = "e\n".into();
        e.write_to(false, &mut out, &mut err).unwrap();
        stderr.write_to(false, &mut out, &mut err).unwrap();
        assert_eq!((out.as_slice(), err.as_slice()), (&b"x\n"[..], &b"e\n"[..]));
    }
}
