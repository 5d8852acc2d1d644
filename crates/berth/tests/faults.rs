//! Commands killed at random points: afterwards `system check` leaves no
//! process, cgroup, mount or runtime state that no container accounts
//! for, and `rm -f` of what is left leaves nothing at all.
//!
//! The rounds are few here (CI); `scripts/kill-storm.sh` runs the same
//! storm with many.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testkit::store::Store;
use berth_testkit::{expect_code, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A store with a runroot of its own, so the census sees only its state.
fn store() -> (Store, PathBuf) {
    let run = tempfile::tempdir().unwrap();
    let runroot = run.path().to_path_buf();
    let s = Store::empty(BIN).flag("--runroot").flag(&runroot).keep(run);
    s.import_busybox("busybox", &[]);
    (s, runroot)
}

/// A cheap pseudo-random sequence (no dependency, reproducible by seed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Starts `args`, kills it with SIGKILL after `ms` milliseconds.
fn kill_after(s: &Store, args: &[&str], ms: u64) {
    let mut child = s
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// What berth holds for this store on the host.
#[derive(Default)]
struct Census {
    runtime_dirs: Vec<String>,
    cgroups: Vec<String>,
    mounts: usize,
    /// Processes in this store's containers' cgroups.
    processes: Vec<i32>,
}

impl std::fmt::Debug for Census {
    /// Counts and a few names: a storm can leave hundreds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let few = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        write!(
            f,
            "{} runtime dirs ({}), {} cgroups ({}), {} mounts, {} processes",
            self.runtime_dirs.len(),
            few(&self.runtime_dirs),
            self.cgroups.len(),
            few(&self.cgroups),
            self.mounts,
            self.processes.len()
        )
    }
}

fn census(s: &Store, runroot: &Path) -> Census {
    let mut c = Census::default();
    let ids: Vec<String> = std::fs::read_dir(runroot.join("runtime"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('@'))
                .collect()
        })
        .unwrap_or_default();
    c.runtime_dirs = ids.clone();
    let rows = stdout(&s.run(&["ps", "-aq", "--no-trunc"]));
    let known: Vec<&str> = rows.lines().chain(ids.iter().map(String::as_str)).collect();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for id in &known {
            let dir = h.path().join("berth").join(id);
            if dir.exists() {
                c.cgroups.push(dir.display().to_string());
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for p in procs.lines().filter_map(|l| l.parse().ok()) {
                    if !c.processes.contains(&p) {
                        c.processes.push(p);
                    }
                }
            }
        }
    }
    c.mounts = s.mounts();
    c
}

#[test]
fn killed_runs_and_removals_leave_nothing_after_system_check() {
    let (s, runroot) = store();
    let rounds: u64 = std::env::var("BERTH_STORM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut rng = Lcg(0x5eed);
    for i in 0..rounds {
        let name = format!("storm{i}");
        match i % 3 {
            0 => kill_after(
                &s,
                &["run", "--rm", "--network", "none", "busybox", "sleep", "30"],
                rng.below(120),
            ),
            1 => kill_after(
                &s,
                &[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--network",
                    "none",
                    "busybox",
                    "sleep",
                    "30",
                ],
                rng.below(120),
            ),
            _ => {
                s.ok(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--network",
                    "none",
                    "busybox",
                    "sleep",
                    "30",
                ]);
                kill_after(&s, &["rm", "-f", &name], rng.below(60));
            }
        }
    }
    let o = s.run(&["system", "check"]);
    expect_code(&o, 0, "system check after the storm");
    // Every runtime state left belongs to a container that runs; every
    // process in a container's cgroups is such a container's.
    let running = stdout(&s.run(&["ps", "-q", "--no-trunc"]));
    let running: Vec<&str> = running.lines().collect();
    let c = census(&s, &runroot);
    for id in &c.runtime_dirs {
        assert!(
            running.contains(&id.as_str()),
            "runtime state of {id} left with no running container: {c:?}\n{}\n{}",
            stdout(&o),
            stdout(&s.run(&["ps", "-a", "--no-trunc"]))
        );
    }
    for cg in &c.cgroups {
        assert!(
            running.iter().any(|id| cg.ends_with(id)),
            "cgroup {cg} left with no running container: {c:?}"
        );
    }
    // Then everything goes.
    for id in stdout(&s.run(&["ps", "-aq"])).lines() {
        let o = Command::new("timeout")
            .arg("60")
            .arg(BIN)
            .arg("--root")
            .arg(s.path())
            .arg("--runroot")
            .arg(&runroot)
            .args(["rm", "-f", id])
            .output()
            .unwrap();
        expect_code(&o, 0, &format!("rm -f {id}"));
    }
    let c = census(&s, &runroot);
    assert!(
        c.runtime_dirs.is_empty()
            && c.cgroups.is_empty()
            && c.processes.is_empty()
            && c.mounts == 0,
        "left after rm -f of everything: {c:?}"
    );
}
