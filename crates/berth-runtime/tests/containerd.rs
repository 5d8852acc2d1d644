//! containerd drives berth-runtime: a private containerd (socket, state and
//! root in a temp dir) per test, and `ctr run --runc-binary <berth-runtime>`
//! through containerd's runc v2 shim.
//!
//! Needs root and containerd (with ctr and containerd-shim-runc-v2) and
//! busybox-static.  A test is skipped only when containerd or ctr is not
//! installed.  The private containerd is berth_testkit::containerd's.
//!
//! Set BERTH_TEST_KEEP=1 to keep the directory of a failed test.

// An integration test crate is test-only code as a whole.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::containerd::{Containerd, IMAGE};

use std::path::Path;

/// The freshly built runtime under test.
const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn start(test: &str) -> Option<Containerd> {
    Containerd::start(test, Path::new(RUNTIME))
}

#[test]
fn ctr_run_rm_propagates_output_and_exit_code() {
    let Some(ctd) = start("run") else {
        return;
    };
    let out = ctd.sh(&format!(
        "timeout 120 $CTR run --rm $RUN_FLAGS {IMAGE} t1 sh -c 'echo hi; exit 3'"
    ));
    ctd.check(
        out.code() == 3,
        &out,
        "expected exit code 3 from the container",
    );
    ctd.check(out.stdout.trim() == "hi", &out, "expected `hi` on stdout");

    let out = ctd.sh(r#"timeout 120 $CTR container ls -q && find "$RUNC_ROOT" -mindepth 2"#);
    ctd.check(
        out.code() == 0 && out.stdout.trim().is_empty(),
        &out,
        "after `ctr run --rm` no container should be left (in containerd or berth-runtime's --root)",
    );
}

#[test]
fn ctr_detached_task_exec() {
    let Some(ctd) = start("exec") else {
        return;
    };
    let ns = &ctd.ns;

    let out = ctd.sh(&format!(
        r#"timeout 120 $CTR run -d $RUN_FLAGS {IMAGE} t2 \
               sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done'"#
    ));
    ctd.check(out.code() == 0, &out, "`ctr run -d` failed");

    // it is berth-runtime's container (state in the --runc-root given to ctr)
    let out = ctd.sh(&format!(
        r#"timeout 30 "$BERTH_RUNTIME" --root "$RUNC_ROOT/{ns}" state t2"#
    ));
    ctd.check(
        out.code() == 0,
        &out,
        "berth-runtime should know t2 in its --runc-root",
    );
    let state: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    ctd.check(
        state["status"] == "running",
        &out,
        "berth-runtime should report t2 as running",
    );

    let out = ctd.sh("timeout 120 $CTR task exec $EXEC_FLAGS --exec-id e1 t2 sh -c 'echo x'");
    ctd.check(out.code() == 0, &out, "`ctr task exec` should exit 0");
    ctd.check(
        out.stdout.trim() == "x",
        &out,
        "expected `x` on stdout of `ctr task exec`",
    );

    let out =
        ctd.sh("timeout 120 $CTR task exec $EXEC_FLAGS --exec-id e2 t2 sh -c 'echo y; exit 4'");
    ctd.check(
        out.code() == 4,
        &out,
        "`ctr task exec` should pass on exit code 4",
    );
    ctd.check(
        out.stdout.trim() == "y",
        &out,
        "expected `y` on stdout of `ctr task exec`",
    );

    // SIGTERM: the trap makes the task exit; then delete task and container
    let out = ctd.sh(r#"timeout 120 $CTR task kill t2 &&
           timeout 120 sh -c 'until $CTR task ls | grep -q "^t2 .*STOPPED"; do sleep 0.1; done' &&
           timeout 120 $CTR task rm t2 && timeout 120 $CTR container rm t2"#);
    ctd.check(out.code() == 0, &out, "stopping and removing t2 failed");
    ctd.check(
        !out.stderr.contains("exit with non-zero exit code"),
        &out,
        "t2 should have exited with 0 from its TERM trap",
    );
    let out = ctd.sh(&format!(r#"ls -A "$RUNC_ROOT/{ns}""#));
    ctd.check(
        out.stdout.trim().is_empty(),
        &out,
        "berth-runtime's --runc-root should be empty after `ctr task rm`",
    );
}

#[test]
fn ctr_memory_limit_and_exec() {
    let Some(ctd) = start("memory") else {
        return;
    };
    let ns = &ctd.ns;
    let cgroup = format!("/sys/fs/cgroup/memory/{ns}/t3");

    let out = ctd.sh(&format!(
        "timeout 120 $CTR run -d $RUN_FLAGS --memory-limit 67108864 {IMAGE} t3 sleep 1000"
    ));
    ctd.check(out.code() == 0, &out, "`ctr run -d --memory-limit` failed");

    let out = ctd.sh(&format!(
        r#"echo "limit=$(cat {cgroup}/memory.limit_in_bytes)"
           pid=$(timeout 120 $CTR task ls | awk '$1 == "t3" {{ print $2 }}')
           echo "pid=$pid"
           grep -qx "$pid" {cgroup}/cgroup.procs && echo init-in-cgroup"#
    ));
    ctd.check(out.code() == 0, &out, "reading t3's memory cgroup failed");
    ctd.check(
        out.stdout.contains("limit=67108864"),
        &out,
        &format!("{cgroup}/memory.limit_in_bytes should be 67108864"),
    );
    ctd.check(
        out.stdout.contains("init-in-cgroup"),
        &out,
        &format!("t3's init should be in {cgroup}"),
    );

    let out = ctd.sh(
        "timeout 120 $CTR task exec $EXEC_FLAGS --exec-id e1 t3 sh -c 'cat /proc/self/cgroup; echo exec-ok'",
    );
    ctd.check(out.code() == 0, &out, "`ctr task exec` should exit 0");
    ctd.check(
        out.stdout.lines().any(|l| l == "exec-ok"),
        &out,
        "expected `exec-ok` on stdout of `ctr task exec`",
    );
    ctd.check(
        out.stdout
            .lines()
            .any(|l| l.ends_with(&format!(":memory:/{ns}/t3"))),
        &out,
        "the exec'd process should be in t3's memory cgroup",
    );

    let out = ctd.sh(&format!(
        r#"timeout 120 $CTR task kill -s KILL t3 &&
           timeout 120 sh -c 'until $CTR task ls | grep -q "^t3 .*STOPPED"; do sleep 0.1; done' &&
           timeout 120 $CTR task rm t3 && timeout 120 $CTR container rm t3 &&
           ls -d /sys/fs/cgroup/*/{ns}/t3 2>/dev/null; true"#
    ));
    ctd.check(out.code() == 0, &out, "stopping and removing t3 failed");
    ctd.check(
        out.stdout.trim().is_empty(),
        &out,
        "t3's cgroups should be gone after `ctr task rm`",
    );
}
