//! containerd drives berth-runtime: a private containerd (socket, state and
//! root in a temp dir) per test, and `ctr run --runc-binary <berth-runtime>`
//! through containerd's runc v2 shim.
//!
//! Needs root and containerd (with ctr and containerd-shim-runc-v2) and
//! busybox-static.  A test is skipped only when containerd or ctr is not
//! installed.
//!
//! Set BERTH_TEST_KEEP=1 to keep the directory of a failed test.

// An integration test crate is test-only code as a whole.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::snippet::{bash, capture, installed, remove_test_dir, tests_dir, Out};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The freshly built runtime under test.
const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
/// Built by `busybox_oci_archive` and imported into every containerd.
const IMAGE: &str = "localhost/berth-busybox:latest";

/// A private containerd; dropping it kills containerd, its shims and
/// leftover containers, unmounts what is left under its directory and
/// removes the directory.
#[derive(Debug)]
struct Containerd {
    dir: PathBuf,
    /// containerd namespace: unique, because the cgroupsPath of a container
    /// is /<namespace>/<id> on the (shared) host cgroup hierarchy
    ns: String,
    child: Option<Child>,
}

impl Containerd {
    /// Start containerd and import the busybox image; `None` (after printing
    /// why) when containerd is not installed.
    fn start(test: &str) -> Option<Self> {
        for tool in ["containerd", "ctr"] {
            if !installed(tool) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{tool} is missing (install-deps.sh)"
                );
                eprintln!("skipped: {tool} not installed");
                return None;
            }
        }
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the containerd tests must run as root"
        );
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("berth-containerd-{test}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["root", "state", "fifo", "runc-root"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let d = dir.display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd-ttrpc.sock"

[debug]
  address = "{d}/containerd-debug.sock"
  level = "debug"
"#
        );
        std::fs::write(dir.join("config.toml"), config).expect("writing config.toml");
        let log =
            std::fs::File::create(dir.join("containerd.log")).expect("creating containerd.log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let mut c = Containerd {
            dir,
            ns: format!("berth-{test}-{pid}"),
            child: Some(child),
        };
        c.wait_ready();

        let out = c.sh(&format!(
            r#"source "$TESTS/podman-env.sh" "$D/podman-env" >/dev/null &&
               busybox_oci_archive "$D/busybox.tar" {IMAGE} &&
               timeout 120 $CTR image import "$D/busybox.tar""#
        ));
        c.check(out.code() == 0, &out, "importing the busybox image failed");
        Some(c)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Wait until containerd answers on its socket (or has died).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.sh("$CTR version");
            if out.code() == 0 {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "containerd did not come up ({exited:?})\n{out}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run `snippet` with bash; it gets $CTR (`ctr` on this containerd and
    /// namespace), $RUN_FLAGS for `ctr run` (`--runc-binary <berth-runtime>
    /// --runc-root $RUNC_ROOT` and a private fifo dir), $EXEC_FLAGS for `ctr
    /// task exec` (the fifo dir), $RUNC_ROOT, $D (the directory), $TESTS and
    /// $BERTH_RUNTIME.
    fn sh(&self, snippet: &str) -> Out {
        let d = &self.dir;
        let mut cmd = bash();
        cmd.arg(snippet)
            .env(
                "CTR",
                format!(
                    "ctr --address {} --namespace {}",
                    self.socket().display(),
                    self.ns
                ),
            )
            .env(
                "RUN_FLAGS",
                format!(
                    "--runc-binary {RUNTIME} --runc-root {} --fifo-dir {}",
                    d.join("runc-root").display(),
                    d.join("fifo").display()
                ),
            )
            .env(
                "EXEC_FLAGS",
                format!("--fifo-dir {}", d.join("fifo").display()),
            )
            .env("RUNC_ROOT", d.join("runc-root"))
            .env("D", d)
            .env("TESTS", tests_dir())
            .env("BERTH_RUNTIME", RUNTIME)
            .env("TMPDIR", d);
        capture(cmd, snippet)
    }

    /// Panic with `what`, the snippet's output and the logs unless `ok`.
    fn check(&self, ok: bool, out: &Out, what: &str) {
        if !ok {
            panic!("{what}\n{out}\n{}", self.diagnostics());
        }
    }

    /// The runtime's log files (the shim has it write `<bundle>/log.json`)
    /// and the end of containerd's log.
    fn diagnostics(&self) -> String {
        let out = self.sh(r#"find "$D/state" -name log.json -size +0 2>/dev/null |
                 while read -r f; do echo "== $f"; tail -c 4000 "$f"; echo; done
               echo "== containerd.log (last 40 lines)"; tail -n 40 "$D/containerd.log""#);
        out.stdout
    }

    /// Best-effort teardown; every step runs even if earlier ones failed.
    fn teardown(&mut self) {
        let ns = &self.ns;
        // Through containerd first: kill and delete tasks, remove containers.
        if self.child.is_some() {
            let _ = self.sh(r#"for t in $(timeout 30 $CTR task ls -q 2>/dev/null); do
                       timeout 30 $CTR task kill -a -s KILL "$t"
                       timeout 30 $CTR task rm -f "$t"
                   done >/dev/null 2>&1
                   for c in $(timeout 30 $CTR container ls -q 2>/dev/null); do
                       timeout 30 $CTR container rm "$c"
                   done >/dev/null 2>&1"#);
        }
        // containerd itself: TERM, then KILL.
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims of this containerd (they outlive it), then any container the
        // runtime still knows about, then mounts (rootfs) under the directory.
        let out = self.sh(&format!(
            r#"for p in /proc/[0-9]*; do
                   cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
                   case "$cmd" in
                       *containerd-shim*"-address $D/containerd.sock "*) kill -9 "${{p#/proc/}}" ;;
                   esac
               done
               if [ -d "$RUNC_ROOT/{ns}" ]; then
                   for s in "$RUNC_ROOT/{ns}"/*; do
                       [ -e "$s" ] || continue
                       timeout 30 "$BERTH_RUNTIME" --root "$RUNC_ROOT/{ns}" delete --force "${{s##*/}}"
                   done
               fi
               awk -v d="$D" '{{ gsub(/\\040/, " ", $5); if (index($5, d "/") == 1) print $5 }}' /proc/self/mountinfo |
                   sort -r | while read -r mp; do umount -l "$mp"; done
               for c in /sys/fs/cgroup/*/{ns} /sys/fs/cgroup/{ns} /sys/fs/cgroup/unified/{ns}; do
                   [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {{}} + 2>/dev/null
               done
               true"#
        ));
        if out.code() != 0 {
            eprintln!("containerd teardown:\n{out}");
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
        remove_test_dir(&self.dir);
    }
}

#[test]
fn ctr_run_rm_propagates_output_and_exit_code() {
    let Some(ctd) = Containerd::start("run") else {
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
    let Some(ctd) = Containerd::start("exec") else {
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
    let Some(ctd) = Containerd::start("memory") else {
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
