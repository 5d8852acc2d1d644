//! podman drives berth-runtime: `podman --runtime berth-runtime ...` in an
//! isolated podman environment (tests/podman-env.sh) per test.
//!
//! Needs root and podman, conmon, busybox-static (plus netavark or
//! containernetworking-plugins, and `script` from bsdutils for the pty tests).
//! A test is skipped only when podman itself is not installed.
//!
//! Set BERTH_TEST_KEEP=1 to keep the environment directory of a failed test.

// An integration test crate is test-only code as a whole.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::snippet::{bash, capture, installed, remove_test_dir, tests_dir, Out};

use std::path::{Path, PathBuf};

/// The freshly built runtime under test.
const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
/// berth-runtime's state directory when no `--root` is given (podman passes
/// none when running as root).
const STATE_ROOT: &str = "/run/berth-runtime";
/// Imported in every environment by `podman_import_busybox berth-busybox`.
const IMAGE: &str = "localhost/berth-busybox:latest";

/// One isolated podman environment (storage, run state, configs) in its own
/// directory, removed (after `podman_env_cleanup`) when dropped.
#[derive(Debug)]
struct PodmanEnv {
    dir: PathBuf,
}

impl PodmanEnv {
    /// Set up the environment and import the busybox image; `None` (after
    /// printing why) when podman is not installed.
    fn new(test: &str) -> Option<Self> {
        if !installed("podman") {
            assert!(
                std::env::var_os("CI").is_none(),
                "podman is missing (install-deps.sh)"
            );
            eprintln!("skipped: podman not installed");
            return None;
        }
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the podman tests must run as root"
        );
        let dir = std::env::temp_dir().join(format!("berth-podman-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let env = PodmanEnv { dir };
        let out = env.sh("podman_import_busybox berth-busybox");
        env.check(
            out.code() == 0,
            &out,
            "setting up the podman environment failed",
        );
        Some(env)
    }

    /// Run `snippet` with bash after sourcing tests/podman-env.sh for this
    /// environment (BERTH_RUNTIME is the runtime under test).
    fn sh(&self, snippet: &str) -> Out {
        let script = tests_dir().join("podman-env.sh");
        let mut cmd = bash();
        cmd.arg(r#"source "$0" "$1" >/dev/null || exit 99; eval "$2""#)
            .arg(&script)
            .arg(&self.dir)
            .arg(snippet)
            .env("BERTH_RUNTIME", RUNTIME)
            .env("TMPDIR", &self.dir)
            // conmon 2.1.6 writes its `oom` file relative to its working
            // directory, which it inherits from podman: keep it in the env.
            .current_dir(&self.dir);
        capture(cmd, snippet)
    }

    /// Poll the bash condition `cond` (10 times a second, for at most 120
    /// seconds) until it holds; panic with `what` if it never does.
    fn wait_until(&self, cond: &str, what: &str) {
        let out = self.sh(&format!(
            r#"deadline=$((SECONDS + 120))
               until {cond}; do
                   if [ "$SECONDS" -ge "$deadline" ]; then echo "timed out" >&2; exit 1; fi
                   sleep 0.1
               done"#
        ));
        self.check(out.code() == 0, &out, what);
    }

    /// `podman run -d` with berth-runtime (`args` before the image, then
    /// `cmd`); returns the container id.
    fn run_detached(&self, args: &str, cmd: &str) -> String {
        let out = self.sh(&format!(
            "timeout 120 podman --runtime berth-runtime run -d {args} {IMAGE} {cmd}"
        ));
        self.check(out.code() == 0, &out, "`podman run -d` failed");
        let id = out.stdout.trim().to_string();
        self.check(
            id.len() == 64,
            &out,
            "`podman run -d` should print the container id",
        );
        id
    }

    /// `podman rm -f -t 0` the container, then check that berth-runtime
    /// removed its cgroups (/libpod_parent/libpod-<id> in every hierarchy).
    fn remove_and_check_cgroups(&self, name: &str, id: &str) {
        let out = self.sh(&format!("timeout 120 podman rm -f -t 0 {name}"));
        self.check(out.code() == 0, &out, "`podman rm -f` failed");
        let out = self.sh(&format!(
            "ls -d /sys/fs/cgroup/*/libpod_parent/libpod-{id} 2>/dev/null; true"
        ));
        self.check(
            out.stdout.trim().is_empty(),
            &out,
            "the container's cgroups should be gone after `podman rm`",
        );
    }

    /// Panic with `what`, the snippet's output and the runtime logs unless `ok`.
    fn check(&self, ok: bool, out: &Out, what: &str) {
        if !ok {
            panic!("{what}\n{out}\n{}", self.diagnostics());
        }
    }

    /// The runtime's log files (podman has it write `<bundle>/oci-log`) still
    /// present in the environment.
    fn diagnostics(&self) -> String {
        let out = self.sh(
            r#"find "$PODMAN_ENV_DIR/storage" -name oci-log -size +0 2>/dev/null |
               while read -r f; do echo "== $f"; tail -c 4000 "$f"; echo; done"#,
        );
        if out.stdout.trim().is_empty() {
            "(no runtime log files left in the environment)".to_string()
        } else {
            format!("runtime log files:\n{}", out.stdout)
        }
    }
}

impl Drop for PodmanEnv {
    fn drop(&mut self) {
        let out = self.sh("podman_env_cleanup");
        if out.code() != 0 {
            eprintln!("podman_env_cleanup failed:\n{out}");
        }
        remove_test_dir(&self.dir);
    }
}

#[test]
fn podman_run_rm_propagates_output_and_exit_code() {
    let Some(env) = PodmanEnv::new("run") else {
        return;
    };
    let out = env.sh(&format!(
        "timeout 120 podman --runtime berth-runtime run --rm {IMAGE} sh -c 'echo hi; exit 3'"
    ));
    env.check(
        out.code() == 3,
        &out,
        "expected exit code 3 from the container",
    );
    env.check(out.stdout.trim() == "hi", &out, "expected `hi` on stdout");
}

#[test]
fn podman_run_it_gets_a_terminal() {
    let Some(env) = PodmanEnv::new("tty") else {
        return;
    };
    if !installed("script") {
        panic!("`script` (bsdutils) is needed to run podman under a pty");
    }
    // `script` runs podman on a fresh pty (sized 33x101 first: a 0x0 pty makes
    // `stty size` fail); podman must hand the container a pty of its own.
    // `timeout --foreground`: a plain timeout puts podman in a background
    // process group of that pty, where its raw-mode tcsetattr stops it with
    // SIGTTOU (seen in CI under a bare environment; not every shell shows it).
    let out = env.sh(&format!(
        r#"script -qec "stty rows 33 cols 101; timeout --foreground -k 10 120 podman --runtime berth-runtime run --rm -it {IMAGE} sh -c 'sleep 0.3; tty; stty size'" /dev/null"#
    ));
    env.check(
        out.code() == 0,
        &out,
        "expected exit code 0 from `podman run -it`",
    );
    env.check(
        out.stdout.contains("/dev/pts/"),
        &out,
        "`tty` in the container should print /dev/pts/N",
    );
    env.check(
        out.stdout.contains("33 101"),
        &out,
        "the container's terminal should have podman's size (33 101)",
    );
}

#[test]
fn podman_detached_exec_stop_rm() {
    let Some(env) = PodmanEnv::new("detach") else {
        return;
    };
    let name = format!("berth-detach-{}", std::process::id());

    let out = env.sh(&format!(
        r#"timeout 120 podman --runtime berth-runtime run -d --name {name} {IMAGE} \
               sh -c 'trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done'"#
    ));
    env.check(out.code() == 0, &out, "`podman run -d` failed");
    let id = out.stdout.trim().to_string();
    env.check(
        id.len() == 64,
        &out,
        "`podman run -d` should print the container id",
    );

    // it is berth-runtime's container
    let out = env.sh(&format!(
        "podman inspect --format '{{{{.OCIRuntime}}}}' {name}"
    ));
    env.check(
        out.stdout.trim() == "berth-runtime",
        &out,
        "the container's OCI runtime should be berth-runtime",
    );
    let state = Path::new(STATE_ROOT).join(&id);
    env.check(
        state.exists(),
        &out,
        &format!("berth-runtime should keep state in {}", state.display()),
    );

    // the TERM trap is installed once `ready` is in the log
    let out = env.sh(&format!(
        "timeout 120 sh -c 'until podman logs {name} 2>&1 | grep -q ready; do sleep 0.1; done'"
    ));
    env.check(out.code() == 0, &out, "the container never printed `ready`");

    let out = env.sh(&format!(
        "timeout 120 podman exec {name} sh -c 'echo in; exit 5'"
    ));
    env.check(
        out.code() == 5,
        &out,
        "expected exit code 5 from `podman exec`",
    );
    env.check(
        out.stdout.trim() == "in",
        &out,
        "expected `in` on stdout of `podman exec`",
    );

    let out = env.sh(&format!(
        r#"script -qec "stty rows 33 cols 101; timeout --foreground -k 10 120 podman exec -it {name} sh -c 'tty; stty size; exit 7'" /dev/null"#
    ));
    env.check(
        out.code() == 7,
        &out,
        "expected exit code 7 from `podman exec -it`",
    );
    env.check(
        out.stdout.contains("/dev/pts/"),
        &out,
        "`tty` in `podman exec -it` should print /dev/pts/N",
    );
    env.check(
        out.stdout.contains("33 101"),
        &out,
        "the exec terminal should have podman's size (33 101)",
    );

    let out = env.sh(&format!("timeout 120 podman stop -t 2 {name}"));
    env.check(out.code() == 0, &out, "`podman stop` failed");
    let out = env.sh(&format!(
        "podman inspect --format '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}' {name}"
    ));
    env.check(
        out.stdout.trim() == "exited 0",
        &out,
        "the container should have exited with 0 from its TERM trap (137 means it needed SIGKILL)",
    );

    let out = env.sh(&format!("timeout 120 podman rm {name}"));
    env.check(out.code() == 0, &out, "`podman rm` failed");

    let out = env.sh("timeout 120 podman ps -a --no-trunc --format '{{.ID}} {{.Names}}'");
    env.check(out.code() == 0, &out, "`podman ps -a` failed");
    env.check(
        !out.stdout.contains(&id) && !out.stdout.contains(&name),
        &out,
        "`podman ps -a` still lists the removed container",
    );
    let out = env.sh(&format!(
        r#"ls -la "{STATE_ROOT}/{id}" 2>&1; "$BERTH_RUNTIME" state {id}"#
    ));
    env.check(
        !state.exists(),
        &out,
        &format!("{} should be gone after `podman rm`", state.display()),
    );
    env.check(
        out.code() != 0,
        &out,
        "`berth-runtime state` should not find the removed container",
    );
}

#[test]
fn podman_run_missing_program_exits_127() {
    let Some(env) = PodmanEnv::new("enoent") else {
        return;
    };
    let out = env.sh(&format!(
        "timeout 120 podman --runtime berth-runtime run --rm {IMAGE} nosuchprog"
    ));
    env.check(
        out.code() == 127,
        &out,
        "expected exit code 127 for a missing program",
    );
    env.check(
        out.stderr.contains("executable file not found"),
        &out,
        "expected an error mentioning `executable file not found`",
    );
}

#[test]
fn podman_memory_limit_oom_kills() {
    let Some(env) = PodmanEnv::new("oom") else {
        return;
    };
    let name = format!("berth-oom-{}", std::process::id());

    // `tail /dev/zero` buffers an endless line: past 32 MiB the kernel's
    // memory cgroup OOM-kills it (there is no swap to fall back on).
    // conmon registers for the OOM event on the container's memory cgroup
    // (cgroup.event_control + memory.oom_control of the init's memory
    // cgroup) and, on the event, creates `oom` in its working directory,
    // which it inherits from podman (conmon 2.1.6 is not given a
    // --persist-dir by podman 4.3).
    let out = env.sh(&format!(
        r#"mkdir cwd-run && cd cwd-run &&
           timeout 120 podman --runtime berth-runtime run --name {name} --memory 32m {IMAGE} tail /dev/zero
           echo "exit=$?"
           test -e oom && echo "conmon-saw-oom"
           podman inspect --format 'state={{{{.State.ExitCode}}}}' {name}"#
    ));
    env.check(
        out.stdout.contains("exit=137"),
        &out,
        "`podman run --memory 32m tail /dev/zero` should exit with 137 (SIGKILL by the OOM killer)",
    );
    env.check(
        out.stdout.contains("state=137"),
        &out,
        "`podman inspect` should record exit code 137",
    );
    env.check(
        out.stdout.contains("conmon-saw-oom"),
        &out,
        "conmon should have received the OOM event of the container's memory cgroup (its `oom` file)",
    );

    // podman 4.3 sets State.OOMKilled only if `<bundle>/oom` exists, i.e.
    // if conmon's working directory is the bundle (userdata) directory:
    // create the container, then start it from there.
    let name2 = format!("{name}-2");
    let out = env.sh(&format!(
        r#"timeout 120 podman --runtime berth-runtime create --name {name2} --memory 32m {IMAGE} tail /dev/zero >/dev/null &&
           cd "$(podman inspect --format '{{{{.StaticDir}}}}' {name2})" &&
           timeout 120 podman start -a {name2}
           echo "exit=$?"
           podman inspect --format 'oomkilled={{{{.State.OOMKilled}}}} state={{{{.State.ExitCode}}}}' {name2}"#
    ));
    env.check(
        out.stdout.contains("exit=137"),
        &out,
        "`podman start -a` of the OOM container should exit with 137",
    );
    env.check(
        out.stdout.contains("oomkilled=true state=137"),
        &out,
        "`podman inspect` should report OOMKilled=true and exit code 137",
    );
}

#[test]
fn podman_pids_limit_contains_fork_bomb() {
    let Some(env) = PodmanEnv::new("pids") else {
        return;
    };
    let name = format!("berth-pids-{}", std::process::id());
    // A subshell forks 100 sleepers; forks fail at the limit (the subshell
    // gives up with `can't fork`), then the init execs (no fork) a sleep.
    let id = env.run_detached(
        &format!("--name {name} --pids-limit 20"),
        r#"sh -c '(for i in $(seq 1 100); do sleep 1000 & done); echo bomb-finished; exec sleep 1000'"#,
    );
    env.wait_until(
        &format!("podman logs {name} 2>/dev/null | grep -q bomb-finished"),
        "the fork bomb never finished",
    );
    let out = env.sh(&format!(
        r#"podman logs {name} 2>&1
           c=/sys/fs/cgroup/pids/libpod_parent/libpod-{id}
           echo "max=$(cat $c/pids.max)"
           echo "current=$(cat $c/pids.current)"
           echo "procs=$(wc -l <$c/cgroup.procs)"
           echo "events=$(cat $c/pids.events)"
           pid=$(podman inspect --format '{{{{.State.Pid}}}}' {name})
           grep -qx "$pid" $c/cgroup.procs && echo init-in-cgroup"#
    ));
    env.check(out.code() == 0, &out, "reading the pids cgroup failed");
    let value = |key: &str| -> i64 {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    };
    env.check(
        value("max=") == 20,
        &out,
        "pids.max of the container's cgroup should be 20",
    );
    let current = value("current=");
    env.check(
        (1..=20).contains(&current),
        &out,
        "pids.current should be at most 20",
    );
    env.check(
        value("procs=") == current,
        &out,
        "every process of the container should be in its pids cgroup",
    );
    env.check(
        value("events=max ") > 0,
        &out,
        "pids.events should count forks refused at the limit",
    );
    env.check(
        out.stdout.contains("init-in-cgroup"),
        &out,
        "the container's init should be in /libpod_parent/libpod-<id>",
    );
    env.check(
        out.stdout
            .contains("can't fork: Resource temporarily unavailable"),
        &out,
        "forks past the limit should fail with EAGAIN",
    );
    env.remove_and_check_cgroups(&name, &id);
}

#[test]
fn podman_cpus_sets_cfs_quota() {
    let Some(env) = PodmanEnv::new("cpus") else {
        return;
    };
    let name = format!("berth-cpus-{}", std::process::id());
    let id = env.run_detached(&format!("--name {name} --cpus 0.5"), "sleep 1000");
    let out = env.sh(&format!(
        r#"c=/sys/fs/cgroup/cpu/libpod_parent/libpod-{id}
           echo "quota=$(cat $c/cpu.cfs_quota_us) period=$(cat $c/cpu.cfs_period_us)"
           pid=$(podman inspect --format '{{{{.State.Pid}}}}' {name})
           grep -qx "$pid" $c/cgroup.procs && echo init-in-cgroup
           timeout 120 podman exec {name} cat /proc/self/cgroup"#
    ));
    env.check(out.code() == 0, &out, "reading the cpu cgroup failed");
    env.check(
        out.stdout.contains("quota=50000 period=100000"),
        &out,
        "--cpus 0.5 should give cpu.cfs_quota_us 50000 and cpu.cfs_period_us 100000",
    );
    env.check(
        out.stdout.contains("init-in-cgroup"),
        &out,
        "the container's init should be in its cpu cgroup",
    );
    env.check(
        out.stdout
            .lines()
            .any(|l| l.ends_with(&format!(":cpu:/libpod_parent/libpod-{id}"))),
        &out,
        "`podman exec` should run in the container's cpu cgroup",
    );
    env.remove_and_check_cgroups(&name, &id);
}

#[test]
fn podman_device_passed_and_others_denied() {
    let Some(env) = PodmanEnv::new("device") else {
        return;
    };
    let name = format!("berth-device-{}", std::process::id());
    // /dev/fuse (10:229) is passed: present and openable.  Devices not
    // passed are absent, and a node made for one (1:11, /dev/kmsg) is
    // refused by the devices cgroup (podman's /dev is a tmpfs without nodev).
    let out = env.sh(&format!(
        r#"timeout 120 podman --runtime berth-runtime run --rm --name {name} --device /dev/fuse {IMAGE} sh -c '
               test -c /dev/fuse && head -c0 /dev/fuse && echo fuse-opened
               test -e /dev/net/tun || echo tun-absent
               test -e /dev/kmsg || echo kmsg-absent
               mknod /dev/kmsg2 c 1 11 && echo mknod-ok
               head -c0 /dev/kmsg2 && echo kmsg2-opened
               true'"#
    ));
    env.check(out.code() == 0, &out, "`podman run --device` failed");
    for line in ["fuse-opened", "tun-absent", "kmsg-absent", "mknod-ok"] {
        env.check(
            out.stdout.lines().any(|l| l == line),
            &out,
            &format!("expected `{line}`"),
        );
    }
    env.check(
        !out.stdout.contains("kmsg2-opened")
            && out.stderr.contains("/dev/kmsg2: Operation not permitted"),
        &out,
        "the devices cgroup should refuse to open a device that was not passed (1:11)",
    );

    // without --device, /dev/fuse is absent and 10:229 is refused
    let out = env.sh(&format!(
        r#"timeout 120 podman --runtime berth-runtime run --rm --name {name}-2 {IMAGE} sh -c '
               test -e /dev/fuse || echo fuse-absent
               mknod /dev/fuse2 c 10 229 && echo mknod-ok
               head -c0 /dev/fuse2 && echo fuse2-opened
               true'"#
    ));
    env.check(out.code() == 0, &out, "`podman run` failed");
    env.check(
        out.stdout.lines().any(|l| l == "fuse-absent")
            && out.stdout.lines().any(|l| l == "mknod-ok"),
        &out,
        "/dev/fuse should be absent without --device (and mknod allowed)",
    );
    env.check(
        !out.stdout.contains("fuse2-opened")
            && out.stderr.contains("/dev/fuse2: Operation not permitted"),
        &out,
        "without --device /dev/fuse the devices cgroup should refuse 10:229",
    );
}

#[test]
fn podman_pause_unpause_freezes_the_container() {
    let Some(env) = PodmanEnv::new("pause") else {
        return;
    };
    let name = format!("berth-pause-{}", std::process::id());
    // one byte per tick, appended (never truncated), read from the host
    // through /proc/<init pid>/root
    let id = env.run_detached(
        &format!("--name {name}"),
        r#"sh -c 'while :; do echo -n . >>/tmp/ticks; sleep 0.1; done'"#,
    );
    let out = env.sh(&format!(
        "podman inspect --format '{{{{.State.Pid}}}}' {name}"
    ));
    let pid = out.stdout.trim().to_string();
    env.check(
        pid.parse::<u32>().is_ok_and(|p| p > 0),
        &out,
        "`podman inspect` should give the init's pid",
    );
    let ticks = format!("/proc/{pid}/root/tmp/ticks");
    let freezer = format!("/sys/fs/cgroup/freezer/libpod_parent/libpod-{id}/freezer.state");
    env.wait_until(&format!("test -s {ticks}"), "the counter never started");

    let out = env.sh(&format!(
        r#"timeout 120 podman pause {name} || exit 1
           echo "ps=$(podman ps -a --filter name={name} --format '{{{{.Status}}}}')"
           echo "state=$(podman inspect --format '{{{{.State.Status}}}}' {name})"
           echo "freezer=$(cat {freezer})"
           echo "a=$(wc -c <{ticks})"
           sleep 3
           echo "b=$(wc -c <{ticks})""#
    ));
    env.check(out.code() == 0, &out, "`podman pause` failed");
    env.check(
        out.stdout.contains("ps=Paused"),
        &out,
        "`podman ps` should show the container as Paused",
    );
    env.check(
        out.stdout.contains("state=paused"),
        &out,
        "`podman inspect` should show the container as paused",
    );
    env.check(
        out.stdout.contains("freezer=FROZEN"),
        &out,
        "the container's freezer cgroup should be FROZEN",
    );
    let value = |key: &str| -> Option<u64> {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    let (a, b) = (value("a="), value("b="));
    env.check(
        a.is_some() && a == b,
        &out,
        "the counter should not advance while the container is paused",
    );
    let frozen_at = a.unwrap_or(0);

    let out = env.sh(&format!(
        r#"timeout 120 podman unpause {name} || exit 1
           echo "ps=$(podman ps --filter name={name} --format '{{{{.Status}}}}')"
           echo "state=$(podman inspect --format '{{{{.State.Status}}}}' {name})"
           echo "freezer=$(cat {freezer})""#
    ));
    env.check(out.code() == 0, &out, "`podman unpause` failed");
    env.check(
        out.stdout.contains("ps=Up"),
        &out,
        "`podman ps` should show the container as Up again",
    );
    env.check(
        out.stdout.contains("state=running"),
        &out,
        "`podman inspect` should show the container as running again",
    );
    env.check(
        out.stdout.contains("freezer=THAWED"),
        &out,
        "the container's freezer cgroup should be THAWED",
    );
    env.wait_until(
        &format!(r#"[ "$(wc -c <{ticks})" -gt {frozen_at} ]"#),
        "the counter should advance again after `podman unpause`",
    );
    env.remove_and_check_cgroups(&name, &id);
}

#[test]
fn podman_stats_and_top() {
    let Some(env) = PodmanEnv::new("stats") else {
        return;
    };
    let name = format!("berth-stats-{}", std::process::id());
    let id = env.run_detached(
        &format!("--name {name} --memory 64m"),
        r#"sh -c 'sleep 1000 & sleep 2000 & wait'"#,
    );
    env.wait_until(
        &format!(r#"[ "$(cat /sys/fs/cgroup/pids/libpod_parent/libpod-{id}/pids.current)" = 3 ]"#),
        "the container never had its 3 processes",
    );

    let out = env.sh(&format!(
        "timeout 120 podman stats --no-stream --format '{{{{.MemUsage}}}} {{{{.PIDs}}}}' {name}"
    ));
    env.check(out.code() == 0, &out, "`podman stats` failed");
    // e.g. `806.9kB / 67.11MB 3`
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    env.check(
        fields.len() == 4,
        &out,
        "`podman stats` should print `<usage> / <limit> <pids>`",
    );
    env.check(
        fields.get(3) == Some(&"3"),
        &out,
        "`podman stats` should count the container's 3 processes",
    );
    env.check(
        fields.get(2) == Some(&"67.11MB"),
        &out,
        "`podman stats` should show the 64 MiB memory limit",
    );
    env.check(
        fields
            .first()
            .is_some_and(|u| u.starts_with(|c: char| c.is_ascii_digit()) && *u != "0B"),
        &out,
        "`podman stats` should show a nonzero memory usage",
    );

    let out = env.sh(&format!("timeout 120 podman top {name}"));
    env.check(out.code() == 0, &out, "`podman top` failed");
    for cmd in [
        "sh -c sleep 1000 & sleep 2000 & wait",
        "sleep 1000",
        "sleep 2000",
    ] {
        env.check(
            out.stdout.lines().any(|l| l.trim_end().ends_with(cmd)),
            &out,
            &format!("`podman top` should list `{cmd}`"),
        );
    }
    env.check(
        out.stdout.lines().count() == 4,
        &out,
        "`podman top` should list a header and the 3 processes",
    );
    env.remove_and_check_cgroups(&name, &id);
}
