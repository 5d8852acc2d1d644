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
    let out = env.sh(&format!(
        r#"script -qec "stty rows 33 cols 101; timeout 120 podman --runtime berth-runtime run --rm -it {IMAGE} sh -c 'sleep 0.3; tty; stty size'" /dev/null"#
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
        r#"script -qec "stty rows 33 cols 101; timeout 120 podman exec -it {name} sh -c 'tty; stty size; exit 7'" /dev/null"#
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
