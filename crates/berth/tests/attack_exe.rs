//! CVE-2019-5736 through berth: a container that gets berth's own binary
//! executed inside it (a file starting with `#!/proc/self/exe`, run by
//! `exec`, or by a health check with no admin action at all) must not be
//! able to write that binary.
//!
//! Each test attacks a private copy of the static berth (a dynamic one
//! cannot run inside a busybox image: it has no loader) and of
//! berth-monitor beside it, so that no monitor keeps executing the copy
//! and masks the attack with ETXTBSY. `BERTH_STATIC_DIR=DIR` runs the
//! tests against another build (a build without the protection fails
//! them). The attacker (tests/helpers/exe-attacker.c) waits for the
//! script to be executed, catches the process it became, and tries to
//! write its exe; the test judges what it reports.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_testkit::store::Store;
use berth_testkit::{expect_code, stderr, stdout};

/// A private copy of berth and berth-monitor, and a store driving it with
/// an image holding the attacker, the script, and (exec form) a health
/// check running the script.
struct Setup {
    store: Store,
    bin: PathBuf,
    original: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn setup(env: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("berth");
    for name in ["berth", "berth-monitor"] {
        let from = berth_testkit::static_bin(name);
        std::fs::copy(&from, dir.path().join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    let original = std::fs::read(&bin).unwrap();
    let mut store = Store::empty(bin.to_str().unwrap());
    for (k, v) in env {
        store = store.env(*k, *v);
    }
    store.import_busybox("busybox", &[]);
    let ctx = tempfile::tempdir().unwrap();
    berth_testkit::exe_attack::build_attacker(&ctx.path().join("attacker"));
    std::fs::write(ctx.path().join("evil"), berth_testkit::exe_attack::SCRIPT).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\n\
         COPY --chmod=755 attacker /bin/attacker\n\
         COPY --chmod=755 evil /evil\n\
         HEALTHCHECK --interval=1s --timeout=5s CMD [\"/evil\"]\n",
    )
    .unwrap();
    store.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "evil",
        ctx.path().to_str().unwrap(),
    ]);
    Setup {
        store,
        bin,
        original,
        _dir: dir,
    }
}

impl Setup {
    /// Starts the attacker as the container's program; returns once it
    /// watches the script.
    fn start_attacker(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "evil",
            "sh",
            "-c",
            // 15 s to outlast a busy binary: an unprotected one is
            // writable once the host stops executing it, which a loaded
            // machine may take seconds to do (a verdict of "Text file
            // busy" proves nothing either way).
            "attacker /evil /tmp/result 15; sleep 1000",
        ]);
        self.store.ok(&args);
        self.read(name, "/tmp/result.ready");
    }

    /// A file of the container, waited for (60 s at most: the attacker's
    /// own window is 15 s).
    fn read(&self, name: &str, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let o = self.store.run(&["exec", name, "cat", path]);
            if o.status.success() {
                return stdout(&o);
            }
            assert!(
                Instant::now() < deadline,
                "{path} never appeared in {name}: {}",
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn judge(&self, verdict: &str, ran: &str) {
        berth_testkit::exe_attack::judge(&self.bin, &self.original, verdict, ran);
    }
}

/// The attack through `exec` into a container started with `run_args`;
/// returns the attacker's verdict (already judged).
fn exec_attack(env: &[(&str, &str)], run_args: &[&str]) -> String {
    let s = setup(env);
    s.start_attacker("att", run_args);
    // Again until the attacker reports (it may miss a short-lived victim
    // on a busy machine).
    let mut ran = String::new();
    for _ in 0..20 {
        let o = s.store.run(&["exec", "att", "/evil"]);
        ran = format!("{}{}", stdout(&o), stderr(&o));
        if s.store
            .run(&["exec", "att", "test", "-e", "/tmp/result"])
            .status
            .success()
        {
            break;
        }
    }
    let verdict = s.read("att", "/tmp/result");
    s.judge(&verdict, &ran);
    s.store.ok(&["rm", "-f", "att"]);
    verdict
}

/// A container in the host's user namespace (its root is the host's):
/// only the read-only view of the binary stops the write.
#[test]
fn exec_of_a_proc_self_exe_script_cannot_write_berth() {
    if !berth_testkit::root_or_skip("attack_exe") {
        return;
    }
    let verdict = exec_attack(&[], &["--userns=host"]);
    assert!(verdict.contains("Read-only file system"), "{verdict}");
}

/// A container with a user namespace of its own (berth's default): berth
/// enters it from its binary as installed, with no read-only view (the
/// protection's cost saved), and the attacker's write is refused by the
/// binary's owner, unmapped in the container's namespace. The verdict
/// shows the write was tried on the installed file itself.
#[test]
fn exec_into_a_container_with_its_own_user_namespace_cannot_write_berth() {
    if !berth_testkit::root_or_skip("attack_exe") {
        return;
    }
    let verdict = exec_attack(&[], &[]);
    assert!(verdict.contains("Permission denied"), "{verdict}");
}

/// The fallback protection (a sealed in-memory copy, used where read-only
/// mount clones are not possible) holds as well.
#[test]
fn exec_through_the_sealed_copy_cannot_write_berth() {
    if !berth_testkit::root_or_skip("attack_exe") {
        return;
    }
    let verdict = exec_attack(&[("BERTH_EXE_PROTECTION", "memfd")], &["--userns=host"]);
    assert!(verdict.contains("Operation not permitted"), "{verdict}");
}

/// No admin action at all: the image's own HEALTHCHECK runs the script.
#[test]
fn health_check_of_a_proc_self_exe_script_cannot_write_berth() {
    if !berth_testkit::root_or_skip("attack_exe") {
        return;
    }
    let s = setup(&[]);
    s.start_attacker("health", &[]);
    let verdict = s.read("health", "/tmp/result");
    let inspect: serde_json::Value =
        serde_json::from_str(&s.store.ok(&["inspect", "health"])).unwrap();
    let log = inspect[0]["State"]["Health"]["Log"].to_string();
    s.judge(&verdict, &log);
    s.store.ok(&["rm", "-f", "health"]);
}

/// Every berth command that starts container processes runs from a
/// read-only view of its binary: a process it starts in a container sees
/// /proc/self/exe (before its execve) on a read-only mount. Checked from
/// the host, on the exec'd process's parent chain: the monitor of a
/// detached container is berth too.
#[test]
fn the_monitor_runs_from_a_read_only_binary() {
    if !berth_testkit::root_or_skip("attack_exe") {
        return;
    }
    let s = setup(&[]);
    // A health check keeps berth itself as the monitor.
    s.store
        .ok(&["run", "-d", "--name", "mon", "evil", "sleep", "1000"]);
    let pid = s.store.inspect("mon", "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    let exe = format!("/proc/{ppid}/exe");
    let target = std::fs::read_link(&exe).unwrap();
    // (A write would be refused with ETXTBSY while it runs: that is not
    // protection, the container waits for the monitor to end.)
    let st = nix::sys::statvfs::statvfs(exe.as_str()).unwrap();
    assert!(
        st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the monitor's binary ({}) is not on a read-only mount",
        target.display()
    );
    expect_code(&s.store.run(&["rm", "-f", "mon"]), 0, "rm -f");
}

/// A rootless berth needs no protected copy of a binary that no process of
/// the user's namespace can write (owner unmapped there, no write for group
/// or others, no ACL), and skips it; any other binary keeps the copy. The
/// attack, as the user, against a private static berth of the given owner
/// and mode; returns the binary's directory, its original bytes, the
/// verdict and what the script's exec printed. None when skipped.
fn rootless_exec_attack(
    test: &str,
    owned_by_user: bool,
    mode: u32,
) -> Option<(tempfile::TempDir, Vec<u8>, String, String)> {
    use berth_testkit::rootless::{ensure_user, ready_or_skip, RootlessBerth};
    use std::os::unix::fs::PermissionsExt;
    if !ready_or_skip(test) {
        return None;
    }
    let user = ensure_user("berth-rootless-test", true);
    // The binaries where the user can reach them (a temp dir is 0700).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["berth", "berth-monitor"] {
        let from = berth_testkit::static_bin(name);
        let to = dir.path().join(name);
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        if owned_by_user {
            std::os::unix::fs::chown(&to, Some(user.uid), Some(user.gid)).unwrap();
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let bin = dir.path().join("berth");
    let original = std::fs::read(&bin).unwrap();
    let b = RootlessBerth::new(&user, bin.to_str().unwrap());
    b.import_busybox("busybox");
    let ctx = b.dir().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    berth_testkit::exe_attack::build_attacker(&ctx.join("attacker"));
    std::fs::write(ctx.join("evil"), berth_testkit::exe_attack::SCRIPT).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         COPY --chmod=755 attacker /bin/attacker\n\
         COPY --chmod=755 evil /evil\n",
    )
    .unwrap();
    for f in ["attacker", "evil", "Dockerfile"] {
        std::fs::set_permissions(ctx.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    b.ok(&["build", "-q", "-t", "evil", ctx.to_str().unwrap()]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "att",
        "--network",
        "none",
        "evil",
        "sh",
        "-c",
        // 15 s to outlast a busy binary (see start_attacker).
        "attacker /evil /tmp/result 15; sleep 1000",
    ]);
    let read = |path: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let o = b.run(&["exec", "att", "cat", path]);
            if o.status.success() {
                return stdout(&o);
            }
            assert!(
                Instant::now() < deadline,
                "{path} never appeared: {}",
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    read("/tmp/result.ready");
    let mut ran = String::new();
    for _ in 0..20 {
        let o = b.run(&["exec", "att", "/evil"]);
        ran = format!("{}{}", stdout(&o), stderr(&o));
        if b.run(&["exec", "att", "test", "-e", "/tmp/result"])
            .status
            .success()
        {
            break;
        }
    }
    let verdict = read("/tmp/result");
    eprintln!("{test}: {}", verdict.trim());
    b.ok(&["rm", "-f", "att"]);
    drop(b);
    Some((dir, original, verdict, ran))
}

/// The skipped case: root owns the binary (unmapped in the user's
/// namespace), 0755. berth runs it as installed, and the attacker's write
/// is refused for good.
#[test]
fn rootless_exec_cannot_write_a_root_owned_berth_run_without_a_copy() {
    let Some((dir, original, verdict, ran)) = rootless_exec_attack(
        "rootless_exec_cannot_write_a_root_owned_berth_run_without_a_copy",
        false,
        0o755,
    ) else {
        return;
    };
    berth_testkit::exe_attack::judge(&dir.path().join("berth"), &original, &verdict, &ran);
}

/// The user owns the binary: the container's root is the user, so
/// skipping the protection would hand the binary over. It must be kept
/// (a build that skipped on mode alone fails here).
#[test]
fn rootless_exec_cannot_write_a_berth_the_user_owns() {
    let Some((dir, original, verdict, ran)) = rootless_exec_attack(
        "rootless_exec_cannot_write_a_berth_the_user_owns",
        true,
        0o755,
    ) else {
        return;
    };
    berth_testkit::exe_attack::judge(&dir.path().join("berth"), &original, &verdict, &ran);
}

/// Root owns the binary but others may write it: the protection must be
/// kept (a build that skipped on the owner alone fails here).
#[test]
fn rootless_exec_cannot_write_a_root_owned_berth_others_may_write() {
    let Some((dir, original, verdict, ran)) = rootless_exec_attack(
        "rootless_exec_cannot_write_a_root_owned_berth_others_may_write",
        false,
        0o757,
    ) else {
        return;
    };
    berth_testkit::exe_attack::judge(&dir.path().join("berth"), &original, &verdict, &ran);
}
