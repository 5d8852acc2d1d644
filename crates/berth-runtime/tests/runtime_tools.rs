//! opencontainers/runtime-tools' validation suite, run against Debian's runc
//! and berth-runtime by `scripts/runtime-tools.sh` (which builds the suite
//! offline; see its head). berth-runtime must pass every assertion runc
//! passes, file by file, and at least as many in total.
//!
//! What counts: a file's assertions count only when the file exited 0. A
//! file that exits non-zero failed as a whole, and its "ok" lines may be the
//! checks of a container that must not have been created at all
//! (process_capabilities_fail: runc accepts the unknown capability CAP_TEST,
//! runs the container, the 307 checks inside it pass, and the file fails).
//!
//! Some files race with the container they test, whatever the runtime
//! (pidfile kills a container running `true` that may have exited already;
//! killsig signals a shell, pid 1 of its namespace, that may not have set
//! its trap yet, and the signal is dropped): on this loaded 2-core machine
//! each passes clean in about half the runs, for runc as for berth. A file
//! where berth misses one of runc's assertions is run again for berth,
//! alone, up to five more times, and passes if one run has them all. Each
//! retry is printed.
//!
//! Needs root, runc, busybox-static, golang-go and Debian's runtime-tools
//! library package (install-deps.sh); takes 75 s on a quiet 2-core machine,
//! 140 s under a load of 15 (the first build of the suite adds one to two
//! minutes).

// An integration test crate is test-only code as a whole.
#![allow(clippy::tests_outside_test_module)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::snippet::installed;
use berth_testkit::{root_or_skip, target_dir};

/// The freshly built runtime under test.
const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
/// Tries of a file berth misses assertions in, after the first run.
const RETRIES: usize = 5;

/// One file's run against one runtime.
#[derive(Debug, Default, Clone)]
struct FileRun {
    rc: i32,
    /// Assertions as (description, occurrence) → passed. The description is
    /// what follows "ok N" (" - name" or " # SKIP why"); the occurrence
    /// tells apart assertions a file repeats under one name.
    assertions: HashMap<(String, usize), bool>,
}

impl FileRun {
    fn read(dir: &Path, name: &str) -> FileRun {
        let rc_file = dir.join(format!("{name}.rc"));
        let rc = std::fs::read_to_string(&rc_file)
            .unwrap_or_else(|e| panic!("{}: {e}", rc_file.display()))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", rc_file.display()));
        let tap = std::fs::read_to_string(dir.join(format!("{name}.tap"))).unwrap_or_default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut assertions = HashMap::new();
        for line in tap.lines() {
            let (passed, rest) = if let Some(r) = line.strip_prefix("ok ") {
                (true, r)
            } else if let Some(r) = line.strip_prefix("not ok ") {
                (false, r)
            } else {
                continue;
            };
            let desc = rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim()
                .to_string();
            let n = seen.entry(desc.clone()).or_default();
            *n += 1;
            assertions.insert((desc, *n), passed);
        }
        FileRun { rc, assertions }
    }

    /// Exited 0 with no failed assertion.
    fn clean(&self) -> bool {
        self.rc == 0 && self.assertions.values().all(|&ok| ok)
    }

    /// The passed assertions that count (none when the file failed).
    fn credited(&self) -> Vec<&(String, usize)> {
        if self.rc != 0 {
            return Vec::new();
        }
        let mut v: Vec<_> = self
            .assertions
            .iter()
            .filter(|(_, &ok)| ok)
            .map(|(k, _)| k)
            .collect();
        v.sort();
        v
    }

    /// What `self` (berth) lacks of `peer` (runc): assertions the peer
    /// passed that we did not, and whether the peer passed clean and we
    /// did not.
    fn missing(&self, peer: &FileRun) -> Vec<String> {
        let ours: Vec<_> = self.credited();
        let mut missing: Vec<String> = peer
            .credited()
            .into_iter()
            .filter(|k| !ours.contains(k))
            .map(|(d, n)| format!("{d} (#{n})"))
            .collect();
        if peer.clean() && !self.clean() {
            missing.push(format!(
                "the file passed clean for runc, not for berth (exit {})",
                self.rc
            ));
        }
        missing
    }
}

/// Runs the script for `runtimes` (label=path) over `only` (all if empty)
/// into `out`; returns its output.
fn run_suite(out: &Path, runtimes: &[String], only: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/runtime-tools.sh");
    let mut cmd = Command::new("timeout");
    // The whole run's deadline; each file has its own (120 s) inside.
    cmd.args(["-k", "10", "1200"])
        .arg(&script)
        .arg("run")
        .arg("--out")
        .arg(out);
    if !only.is_empty() {
        cmd.arg("--only").arg(only.join(","));
    }
    cmd.args(runtimes);
    let o = cmd.output().expect("run scripts/runtime-tools.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "scripts/runtime-tools.sh failed ({}):\n{text}",
        o.status
    );
    text
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rc"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Whether what the suite needs is here; under CI it must be.
fn tools_or_skip() -> bool {
    let missing: Vec<&str> = [
        ("go", installed("go")),
        ("runc", installed("runc")),
        ("timeout", installed("timeout")),
        ("unshare", installed("unshare")),
        ("/bin/busybox", Path::new("/bin/busybox").exists()),
        (
            "golang-github-opencontainers-runtime-tools-dev",
            Path::new("/usr/share/gocode/src/github.com/opencontainers/runtime-tools").exists(),
        ),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "runtime-tools suite: {missing:?} missing (scripts/install-deps.sh), and CI is set"
    );
    eprintln!("skipped the runtime-tools suite: {missing:?} missing (scripts/install-deps.sh)");
    false
}

#[test]
fn berth_passes_what_runc_passes_in_runtime_tools_suite() {
    if !root_or_skip("runtime-tools suite") || !tools_or_skip() {
        return;
    }
    let base = target_dir().join("runtime-tools");
    std::fs::create_dir_all(&base).expect("create target/runtime-tools");
    let out = tempfile::Builder::new()
        .prefix("test-run.")
        .tempdir_in(&base)
        .expect("temp dir for the results");
    let runc = which("runc");
    let table = run_suite(
        out.path(),
        &[
            format!("runc={}", runc.display()),
            format!("berth={RUNTIME}"),
        ],
        &[],
    );
    eprintln!("{table}");

    let names = file_names(&out.path().join("runc"));
    let runc: HashMap<String, FileRun> = names
        .iter()
        .map(|n| (n.clone(), FileRun::read(&out.path().join("runc"), n)))
        .collect();
    let mut berth: HashMap<String, FileRun> = names
        .iter()
        .map(|n| (n.clone(), FileRun::read(&out.path().join("berth"), n)))
        .collect();

    // The suite really ran: its plainest file, a container checking its
    // own default config from inside, passes for runc with its ~300 checks.
    let default = &runc["default"];
    assert!(
        default.clean() && default.credited().len() > 100,
        "the suite did not run (runc fails default.t: exit {}):\n{table}",
        default.rc
    );

    let mut failures = Vec::new();
    for name in &names {
        let mut missing = berth[name].missing(&runc[name]);
        for attempt in 1..=RETRIES {
            if missing.is_empty() {
                break;
            }
            eprintln!("retry {attempt} of {name} for berth: missing {missing:?}");
            let dir = out.path().join(format!("retry-{name}-{attempt}"));
            run_suite(&dir, &[format!("berth={RUNTIME}")], &[name]);
            let again = FileRun::read(&dir.join("berth"), name);
            missing = again.missing(&runc[name]);
            if missing.is_empty() {
                berth.insert(name.clone(), again);
            }
        }
        if !missing.is_empty() {
            failures.push(format!("{name}: {missing:?}"));
        }
    }
    let total = |runs: &HashMap<String, FileRun>| -> usize {
        runs.values().map(|r| r.credited().len()).sum()
    };
    let (runc_ok, berth_ok) = (total(&runc), total(&berth));
    eprintln!("assertions passed (files that exited 0): runc {runc_ok}, berth {berth_ok}");
    assert!(
        failures.is_empty(),
        "berth-runtime fails what runc passes:\n{}\n(results in {})",
        failures.join("\n"),
        out.keep().display()
    );
    assert!(
        berth_ok >= runc_ok,
        "berth-runtime passes {berth_ok} assertions, runc {runc_ok}"
    );
}

fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{tool} not on PATH"))
}
