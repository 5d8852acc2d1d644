//! `stats`: containers' resource usage as typed samples. CPU comes from
//! two readings of the cgroup's usage over a known interval, memory and
//! pids from the cgroups, network from the container's namespace.

use std::time::{Duration, Instant};

use crate::stream::{self, StopHandle};
use crate::{Engine, Error, Record, Result, Status};

/// Which containers `stats` samples, and how often.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct StatsOptions {
    /// These containers (names, ids or id prefixes); empty: every running
    /// or paused one (every one with `all`).
    pub containers: Vec<String>,
    /// With no names, stopped containers too.
    pub all: bool,
    /// Reports until stopped (docker's default), not one.
    pub stream: bool,
    /// The stream ends here at the latest.
    pub deadline: Option<Instant>,
}

/// What the cgroups say of a container (absent when they cannot be read:
/// not running, or gone meanwhile).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// CPU time over the sampling interval, in percent of one CPU (absent
    /// when the first reading failed).
    pub cpu_percent: Option<f64>,
    /// Memory in use, without the inactive page cache (docker's figure).
    pub memory_used: u64,
    /// The memory limit, or the host's memory when none is lower.
    pub memory_limit: u64,
    pub pids: u64,
    pub block_read: u64,
    pub block_written: u64,
}

impl Usage {
    /// Memory in use, in percent of the limit.
    pub fn memory_percent(&self) -> f64 {
        self.memory_used as f64 / self.memory_limit.max(1) as f64 * 100.0
    }
}

/// One container's sample.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    pub usage: Option<Usage>,
    /// Bytes received and sent on its interfaces (loopback aside).
    pub net_rx: u64,
    pub net_tx: u64,
}

/// Reports, one per interval: a sample of each container chosen.
#[derive(Debug)]
pub struct StatsStream<'a> {
    engine: &'a Engine,
    opts: StatsOptions,
    mem_total: u64,
    /// The containers and their first CPU reading of this interval.
    before: Vec<(Record, Option<CpuReading>)>,
    stop: StopHandle,
    done: bool,
    /// Choosing the next report's containers failed: returned after the
    /// report already made.
    failed: Option<crate::Error>,
}

/// A cgroup's CPU usage (ns) and when it was read.
type CpuReading = (u64, Instant);

/// The interval of a streamed report; a one-shot report takes half.
const STREAM_INTERVAL: Duration = Duration::from_secs(1);
const ONE_SHOT_INTERVAL: Duration = Duration::from_millis(500);

impl Engine {
    /// Samples of containers' usage: one report, or (with `stream`) one
    /// per second. A named container that does not exist is an error now.
    pub fn container_stats(&self, opts: &StatsOptions) -> Result<StatsStream<'_>> {
        let mut s = StatsStream {
            engine: self,
            opts: opts.clone(),
            mem_total: mem_total(),
            before: Vec::new(),
            stop: StopHandle::default(),
            done: false,
            failed: None,
        };
        s.before = s.first_readings()?;
        Ok(s)
    }
}

impl Engine {
    /// Resource usage from the container's cgroups.
    pub fn stats(&self, r: &Record) -> Result<berth_runtime::cgroups::stats::Stats> {
        let c = berth_runtime::Container::load(&self.runtime_root(), &r.id)?;
        let cg = c
            .state
            .cgroups
            .as_ref()
            .ok_or_else(|| Error::NoCgroups(r.name.clone()))?;
        Ok(cg.stats())
    }
}

impl StatsStream<'_> {
    /// A handle that ends the stream from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    fn pick(&self) -> Result<Vec<Record>> {
        let e = self.engine;
        if self.opts.containers.is_empty() {
            Ok(e.list()?
                .into_iter()
                .filter(|r| self.opts.all || matches!(r.status, Status::Running | Status::Paused))
                .collect())
        } else {
            self.opts.containers.iter().map(|n| e.find(n)).collect()
        }
    }

    fn first_readings(&self) -> Result<Vec<(Record, Option<CpuReading>)>> {
        Ok(self
            .pick()?
            .into_iter()
            .map(|r| {
                let cpu = self
                    .engine
                    .stats(&r)
                    .ok()
                    .map(|s| (s.cpu.usage.total, Instant::now()));
                (r, cpu)
            })
            .collect())
    }

    fn sample(&self, r: &Record, before: Option<CpuReading>) -> ContainerStats {
        let s = self.engine.stats(r).ok();
        let usage = s.map(|s| {
            let limit = if s.memory.usage.limit == 0 || s.memory.usage.limit > self.mem_total {
                self.mem_total
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
            let (block_read, block_written) = s.blkio.totals();
            Usage {
                cpu_percent: before.map(|(u0, t0)| {
                    let dt = t0.elapsed().as_nanos().max(1) as f64;
                    s.cpu.usage.total.saturating_sub(u0) as f64 / dt * 100.0
                }),
                memory_used: s.memory.usage.usage.saturating_sub(cache),
                memory_limit: limit,
                pids: s.pids.current,
                block_read,
                block_written,
            }
        });
        let (net_rx, net_tx) = if r.pid > 0 { net_io(r.pid) } else { (0, 0) };
        ContainerStats {
            id: r.id.clone(),
            name: r.name.clone(),
            usage,
            net_rx,
            net_tx,
        }
    }
}

impl Iterator for StatsStream<'_> {
    type Item = Result<Vec<ContainerStats>>;

    fn next(&mut self) -> Option<Result<Vec<ContainerStats>>> {
        if let Some(e) = self.failed.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let interval = if self.opts.stream {
            STREAM_INTERVAL
        } else {
            ONE_SHOT_INTERVAL
        };
        // A deadline cuts the wait short but not the report: a caller
        // asking for one sample gets it.
        if !stream::pause(interval, self.opts.deadline, &self.stop) && self.stop.is_stopped() {
            self.done = true;
            return None;
        }
        let report: Vec<ContainerStats> = self
            .before
            .iter()
            .map(|(r, before)| self.sample(r, *before))
            .collect();
        let past_deadline = self.opts.deadline.is_some_and(|d| Instant::now() >= d);
        if !self.opts.stream || past_deadline {
            self.done = true;
            return Some(Ok(report));
        }
        match self.first_readings() {
            Ok(b) => self.before = b,
            Err(e) => self.failed = Some(e),
        }
        Some(Ok(report))
    }
}

/// The host's memory, the limit of a container without one.
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib * 1024)
}

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
