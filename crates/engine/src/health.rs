//! Healthchecks (`--health-cmd` or the image's HEALTHCHECK): the monitor
//! runs the test in the container every interval (through the runtime's
//! exec, detached, so its poll loop keeps relaying output), kills it past
//! the timeout, and turns results into docker's states: `starting` until
//! the first success (failures inside the start period do not count),
//! `healthy`, and `unhealthy` after `retries` failures in a row.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

/// How the container is checked (docker's HealthConfig, durations in ns).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthConfig {
    /// `["CMD-SHELL", "cmd"]`, `["CMD", "prog", "arg"...]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub retries: u32,
    pub start_period_ns: u64,
}

impl HealthConfig {
    /// The docker defaults where a value is 0.
    fn interval(&self) -> Duration {
        Duration::from_nanos(if self.interval_ns == 0 {
            30_000_000_000
        } else {
            self.interval_ns
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_nanos(if self.timeout_ns == 0 {
            30_000_000_000
        } else {
            self.timeout_ns
        })
    }

    fn retries(&self) -> u32 {
        if self.retries == 0 {
            3
        } else {
            self.retries
        }
    }

    /// The program to exec, or None for no check.
    pub fn args(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((k, rest)) if k == "CMD-SHELL" && !rest.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            _ => None,
        }
    }
}

/// What the monitor does once the container turns unhealthy: podman's
/// `--health-on-failure` (docker only reports the status). `kube play`
/// gives a livenessProbe `Restart`, the kubelet's answer to a failing one.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Only the status changes.
    #[default]
    None,
    /// SIGKILL; the container stays exited, as after `kill`.
    Kill,
    /// Stopped (its stop signal, SIGKILL after its stop timeout) and
    /// started again, whatever its restart policy: the restart count goes
    /// up.
    Restart,
    /// Stopped as by `stop`: no restart policy brings it back.
    Stop,
}

impl OnFailure {
    /// podman's names: none, kill, restart, stop.
    pub fn parse(s: &str) -> Option<OnFailure> {
        match s {
            "none" => Some(OnFailure::None),
            "kill" => Some(OnFailure::Kill),
            "restart" => Some(OnFailure::Restart),
            "stop" => Some(OnFailure::Stop),
            _ => None,
        }
    }

    /// For serde's skip_serializing_if: the default leaves rows as they were.
    pub fn is_none(&self) -> bool {
        *self == OnFailure::None
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::None => "none",
            OnFailure::Kill => "kill",
            OnFailure::Restart => "restart",
            OnFailure::Stop => "stop",
        }
    }
}

/// One check's result, as `inspect` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Probe {
    #[serde(rename = "Start")]
    pub start: String,
    #[serde(rename = "End")]
    pub end: String,
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    #[serde(rename = "Output")]
    pub output: String,
}

/// The container's health, stored with its row.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "FailingStreak")]
    pub failing_streak: u32,
    #[serde(rename = "Log")]
    pub log: Vec<Probe>,
    /// The readiness check's state (`ContainerConfig::readiness`), kept
    /// beside the healthcheck's: `State.Health.Readiness` in inspect.
    #[serde(rename = "Readiness", default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Box<Health>>,
}

impl Health {
    /// Takes a result: the streak, the status, the last 5 probes.
    pub fn record(&mut self, probe: Probe, in_start_period: bool, retries: u32) {
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if !(in_start_period && self.status == "starting") {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(probe);
        if self.log.len() > 5 {
            self.log.remove(0);
        }
    }
}

/// Most bytes of a check's output kept (docker's limit); the rest is read
/// and dropped, and the output ends in "..." as docker's does.
const MAX_OUTPUT: usize = 4096;

/// A check in flight.
#[derive(Debug)]
struct Running {
    pid: i32,
    started: Instant,
    start: String,
    /// Our end of the check's stdout and stderr (non-blocking), until its
    /// end of file: then the poll loop stops watching it.
    pipe: Option<OwnedFd>,
    output: Vec<u8>,
    truncated: bool,
}

impl Running {
    /// Takes what the pipe holds now, 64 KiB at most: a process the check
    /// left behind may write as fast as we read, and the monitor has other
    /// work (the relay, the next check, stop).
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            let Some(pipe) = &self.pipe else {
                return;
            };
            match nix::unistd::read(pipe.as_raw_fd(), &mut buf) {
                Ok(0) => self.pipe = None,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(self.output.len());
                    self.output.extend_from_slice(&buf[..n.min(room)]);
                    self.truncated |= n > room;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => self.pipe = None,
            }
        }
    }
}

/// The monitor's side of healthchecks.
#[derive(Debug)]
pub struct Checker {
    config: HealthConfig,
    args: Vec<String>,
    container_started: Instant,
    next: Instant,
    running: Option<Running>,
    pub health: Health,
}

impl Checker {
    /// A checker, or None when the container has no check.
    pub fn new(config: &HealthConfig) -> Option<Checker> {
        let args = config.args()?;
        let now = Instant::now();
        Some(Checker {
            config: config.clone(),
            args,
            container_started: now,
            next: now + config.interval(),
            running: None,
            health: Health {
                status: "starting".into(),
                ..Health::default()
            },
        })
    }

    /// How long the poll loop may sleep before the checker needs a turn.
    pub fn due_in(&self) -> Duration {
        let at = match &self.running {
            Some(r) => r.started + self.config.timeout(),
            None => self.next,
        };
        at.saturating_duration_since(Instant::now())
    }

    /// Starts a check if one is due (and none runs).
    pub fn tick(&mut self, container: &berth_runtime::Container) -> Option<Health> {
        let now = Instant::now();
        if let Some(r) = &self.running {
            if now >= r.started + self.config.timeout() {
                let _ = berth_runtime::signal::send(r.pid, libc::SIGKILL);
                let r = self.running.take()?;
                return Some(self.finish(
                    r.start,
                    -1,
                    format!(
                        "Health check exceeded timeout ({:?})",
                        self.config.timeout()
                    ),
                ));
            }
            return None;
        }
        if now < self.next {
            return None;
        }
        self.next = now + self.config.interval();
        let start = crate::now_nanos();
        match self.spawn(container) {
            Ok((pid, pipe)) => {
                self.running = Some(Running {
                    pid,
                    started: now,
                    start,
                    pipe: Some(pipe),
                    output: Vec::new(),
                    truncated: false,
                });
                None
            }
            Err(e) => Some(self.finish(start, -1, e.to_string())),
        }
    }

    /// The exec'd check, detached: its pid, and our end of the one pipe
    /// that is its stdout and stderr. A pipe, not a file on the host: the
    /// check (code from the image) could reopen a file through
    /// /proc/self/fd, and read its host path there.
    fn spawn(&self, container: &berth_runtime::Container) -> Result<(i32, OwnedFd)> {
        let mut process = container.state.config.process().clone().unwrap_or_default();
        process.set_args(Some(self.args.clone()));
        process.set_terminal(Some(false));
        let mut pipes = crate::stdio::Pipes::merged()?;
        let (ours, _) = pipes
            .streams
            .pop()
            .ok_or_else(|| crate::Error::Process("the health check has no output pipe".into()))?;
        nix::fcntl::fcntl(
            ours.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .ctx(|| "make the health check's pipe non-blocking".into())?;
        let pid = crate::launch::exec(
            container,
            crate::launch::Exec {
                process,
                stdio: Some(pipes.take_stdio()?),
                console_socket: None,
            },
        )?;
        Ok((pid, ours))
    }

    /// A child was reaped: the check's result, if it was the check.
    pub fn reaped(&mut self, pid: i32, code: i32) -> Option<Health> {
        if self.running.as_ref().is_none_or(|r| r.pid != pid) {
            return None;
        }
        let mut r = self.running.take()?;
        // What it wrote before it ended; a process it left behind holding
        // the pipe is not waited for.
        r.drain();
        let mut output = String::from_utf8_lossy(&r.output).into_owned();
        if r.truncated {
            output.push_str("...");
        }
        Some(self.finish(r.start, code, output))
    }

    /// The running check's output pipe, for the poll loop: read as it
    /// comes, so that a check writing more than a pipe holds never blocks.
    pub fn output_fd(&self) -> Option<BorrowedFd<'_>> {
        self.running
            .as_ref()
            .and_then(|r| r.pipe.as_ref())
            .map(AsFd::as_fd)
    }

    /// The output pipe has something to read.
    pub fn output_ready(&mut self) {
        if let Some(r) = &mut self.running {
            r.drain();
        }
    }

    fn finish(&mut self, start: String, exit_code: i32, output: String) -> Health {
        // Docker's schedule: the next check one interval after this one
        // ended (its monitor waits the interval, then runs the check to
        // its end), not after it began.
        self.next = Instant::now() + self.config.interval();
        let in_start =
            self.container_started.elapsed() < Duration::from_nanos(self.config.start_period_ns);
        self.health.record(
            Probe {
                start,
                end: crate::now_nanos(),
                exit_code,
                output,
            },
            in_start,
            self.config.retries(),
        );
        self.health.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    /// The next check is one interval after the last one ended, as
    /// Docker's monitor waits: a check that took 80 ms of a 100 ms
    /// interval leaves the whole interval before the next, not 20 ms.
    #[test]
    fn the_next_check_comes_an_interval_after_the_last_ended() {
        let mut c = Checker::new(&HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval_ns: 100_000_000,
            ..HealthConfig::default()
        })
        .unwrap();
        let began = Instant::now() - Duration::from_millis(80);
        c.next = began + c.config.interval();
        c.running = Some(Running {
            pid: 42,
            started: began,
            start: String::new(),
            pipe: None,
            output: Vec::new(),
            truncated: false,
        });
        let ended = Instant::now();
        let h = c.reaped(42, 0).unwrap();
        assert_eq!(h.status, "healthy");
        assert!(
            c.next >= ended + c.config.interval(),
            "next check {:?} after the last one ended: counted from its start",
            c.next.saturating_duration_since(ended)
        );
    }

    #[test]
    fn states_follow_docker() {
        let mut h = Health {
            status: "starting".into(),
            ..Health::default()
        };
        h.record(probe(1), true, 2);
        assert_eq!(
            (h.status.as_str(), h.failing_streak),
            ("starting", 0),
            "start period"
        );
        h.record(probe(1), false, 2);
        assert_eq!(h.status, "starting");
        h.record(probe(1), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        h.record(probe(0), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        for _ in 0..10 {
            h.record(probe(0), false, 2);
        }
        assert_eq!(h.log.len(), 5);
        let c = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            ..HealthConfig::default()
        };
        assert_eq!(c.args().unwrap(), vec!["/bin/sh", "-c", "test -f /ok"]);
        assert!(HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        }
        .args()
        .is_none());
    }
}
