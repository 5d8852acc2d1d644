//! Docker drives berth-runtime: a real `dockerd` (Debian's docker.io 20.10,
//! with the containerd it manages and containerd-shim-runc-v2), private to
//! the test (data root, exec root, socket), started with
//! `--add-runtime berth=<berth-runtime>`. Every scenario runs once with
//! Docker's own runc and once with berth-runtime; the results must be the
//! same, and where the scenario has a known right answer, that answer.
//!
//! Needs root, docker.io (`dockerd`, `/usr/bin/docker`) and busybox-static.
//! Without them the test fails under CI and says it was skipped otherwise.
//! BERTH_TEST_KEEP=1 keeps the directory (and dockerd's log) of a failure.

// An integration test crate is test-only code as a whole.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::dockerd::Dockerd;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// (name, snippet, expected output or None): `$A` holds the run flags
/// with `--runtime`, `$RT` the runtime's name.
const SCENARIOS: &[(&str, &str, Option<&str>)] = &[
    (
        "exit code and output",
        "e=$(mktemp); $D run $A bb:1 sh -c 'echo out; echo err >&2; exit 3' 2>$e; echo rc=$?; cat $e; rm $e",
        Some("out\nrc=3\nerr\n"),
    ),
    (
        "detached, exec, logs, top, stop, rm",
        "n=d-$RT; $D run -d --name $n $A_KEEP bb:1 sh -c 'echo started; trap \"exit 4\" TERM; sleep 1000 & wait' >/dev/null
         $D exec $n echo exec-ok; $D exec $n sh -c 'exit 7'; echo exec-rc=$?
         $D logs $n; $D top $n -o pid,comm | tail -n +2 | awk '{print $2}' | sort | tr '\\n' ' '; echo
         $D stop -t 5 $n >/dev/null; $D inspect -f '{{.State.ExitCode}}' $n; $D rm $n >/dev/null; echo rm=$?",
        Some("exec-ok\nexec-rc=7\nstarted\nsh sleep \n4\nrm=0\n"),
    ),
    (
        "memory limit and OOM kill",
        "n=o-$RT; $D run --name $n $A_KEEP --memory 16m bb:1 sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 100000000 /dev/zero | tr \"\\0\" a)'
         echo rc=$?; $D inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' $n; $D rm $n >/dev/null",
        Some("16777216\nrc=137\ntrue 137\n"),
    ),
    (
        "no limits: Docker's zeros mean unset",
        "$D run $A bb:1 sh -c 'cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max'",
        Some("1024\n-1\nmax\n"),
    ),
    (
        "pids limit and cpus",
        "$D run $A --pids-limit 20 --cpus 0.5 bb:1 sh -c 'cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us; for i in $(seq 30); do sleep 5 & done 2>&1 | grep -c fork'",
        Some("20\n50000\n1\n"),
    ),
    (
        "pause and unpause",
        "n=p-$RT; $D run -d --name $n $A_KEEP bb:1 sleep 1000 >/dev/null
         $D pause $n >/dev/null; $D inspect -f '{{.State.Status}}' $n
         $D exec $n true 2>&1 | grep -c paused
         $D unpause $n >/dev/null; $D exec $n echo back; $D rm -f $n >/dev/null",
        Some("paused\n1\nback\n"),
    ),
    (
        "update of every limit, then a refused one changes nothing",
        "n=u-$RT; $D run -d --name $n $A_KEEP --memory 64m --cpu-shares 700 bb:1 sleep 1000 >/dev/null
         $D update --memory 32m --memory-swap 64m --memory-reservation 16m --cpu-shares 300 --cpus 0.25 --pids-limit 40 $n >/dev/null
         $D exec $n sh -c 'cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes cpu/cpu.shares cpu/cpu.cfs_quota_us pids/pids.max'
         $D update --memory 1m $n >/dev/null 2>&1; echo refused=$?
         $D exec $n sh -c 'cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes cpu/cpu.shares'
         $D rm -f $n >/dev/null",
        Some("33554432\n16777216\n300\n25000\n40\nrefused=1\n33554432\n300\n"),
    ),
    (
        "stats",
        "n=s-$RT; $D run -d --name $n $A_KEEP --memory 64m bb:1 sleep 1000 >/dev/null
         $D stats --no-stream --format '{{.PIDs}} {{.MemUsage}}' $n | sed 's/^\\([0-9]*\\) .* \\/ /\\1 /'
         $D rm -f $n >/dev/null",
        Some("1 64MiB\n"),
    ),
    (
        "read-only, no capabilities, no new privileges, a user",
        "$D run $A --read-only bb:1 touch /x 2>&1; echo rc=$?
         $D run $A --cap-drop ALL bb:1 grep CapEff /proc/self/status
         $D run $A --security-opt no-new-privileges bb:1 grep NoNewPrivs /proc/self/status
         $D run $A --user 65534:65534 bb:1 id",
        Some("touch: /x: Read-only file system\nrc=1\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"),
    ),
    (
        "--init",
        "$D run $A --init bb:1 sh -c 'cat /proc/1/comm'",
        Some("docker-init\n"),
    ),
    (
        "a terminal",
        "script -qec \"$D run -it $A bb:1 sh -c 'tty; exit 5'\" /dev/null </dev/null | tr -d '\\r\\0' | sed 's/\\^@//g'; echo rc=${PIPESTATUS[0]}",
        Some("/dev/pts/0\nrc=5\n"),
    ),
];

#[test]
fn docker_runs_containers_on_berth_runtime_as_on_runc() {
    let Some(d) = Dockerd::start(&["--add-runtime", &format!("berth={RUNTIME}")]) else {
        return;
    };
    let mut failures = Vec::new();
    for (name, snippet, want) in SCENARIOS {
        let run = |rt: &str| {
            let s = format!(
                "RT={rt}; A='--rm --network none --runtime {rt}'; A_KEEP='--network none --runtime {rt}'\n{snippet}"
            );
            d.sh(&s)
        };
        let runc = run("runc");
        let berth = run("berth");
        if let Some(want) = want {
            if runc.stdout != *want {
                failures.push(format!(
                    "{name}: runc gave what the test did not expect (fix the test)\n{runc}"
                ));
            }
        }
        if berth.stdout != runc.stdout || berth.code() != runc.code() {
            failures.push(format!(
                "{name}: berth-runtime differs from runc\n-- runc --\n{runc}\n-- berth --\n{berth}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n== dockerd log ==\n{}",
        failures.join("\n\n"),
        d.log()
    );
}
