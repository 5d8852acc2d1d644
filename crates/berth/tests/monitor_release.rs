//! The berth-monitor that ships: the static release build, linked without
//! PIE (scripts/build-release.sh), which the other tests never run (they
//! drive the debug build, a PIE on glibc's dynamic loader). It is started
//! by glibc's start code with no std runtime (`#![no_main]`) and drops its
//! code mappings before its loop, so that its first wake-up maps its code
//! back from the file; a mistake in either (a wrong segment dropped, the
//! arguments misread) shows only in this build. docs/monitor-memory.md
//! says why it does both.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::store::Store;
use berth_testkit::{expect_code, parent_of, stderr, stdout};

/// A container left to the release berth-monitor, then attached to: what
/// the client types reaches it, its output reaches the client and the
/// log apart, and its exit code is recorded by the berth the monitor
/// execs at the end.
#[test]
fn release_monitor_relays_input_output_and_exit_after_going_idle() {
    let test = "release_monitor_relays_input_output_and_exit_after_going_idle";
    if !berth_testkit::root_or_skip(test) {
        return;
    }
    let (Some(berth), Some(monitor)) = (
        berth_testkit::static_bin_or_skip("berth", test),
        berth_testkit::static_bin_or_skip("berth-monitor", test),
    ) else {
        return;
    };
    assert_eq!(
        berth.parent(),
        monitor.parent(),
        "berth finds its monitor beside it"
    );
    // as /proc/PID/exe names it (the target directory's path has a `..`)
    let monitor = std::fs::canonicalize(&monitor).unwrap();
    let s = Store::empty(berth.to_str().unwrap());
    s.import_busybox("busybox", &[]);
    s.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "idle",
        "--network",
        "none",
        "busybox",
        "sh",
    ]);
    let pid: i32 = s.inspect("idle", "{{.State.Pid}}").parse().unwrap();
    let parent = parent_of(pid);
    // berth's monitor execs the release berth-monitor in place: the same
    // process, the container's parent, once nothing else needs berth
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_link(format!("/proc/{parent}/exe"))
        .ok()
        .as_deref()
        != Some(&*monitor)
    {
        assert!(
            Instant::now() < deadline,
            "the container's parent {parent} never became {}",
            monitor.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // It may still be starting: its loop runs whenever the attach below
    // wakes it, after its code was dropped either way.
    let mut client = s
        .cmd()
        .args(["attach", "idle"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin
        .write_all(b"echo out; echo err >&2; exit 7\n")
        .unwrap();
    let o = client.wait_with_output().unwrap();
    drop(stdin);
    expect_code(&o, 7, "attach");
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // the exit recorded by the berth it execs with its arguments
    s.wait_for("idle", "{{.State.Status}} {{.State.ExitCode}}", "exited 7");
    let logs = s.run(&["logs", "idle"]);
    assert_eq!(stdout(&logs), "out\n");
    assert_eq!(stderr(&logs), "err\n");
}
