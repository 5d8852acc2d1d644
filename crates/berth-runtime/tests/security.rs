//! Attacks tried from inside (and around) a container; each must fail.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::Command;

use berth_testkit::{expect_code, output_via_files, stderr, stdout, Bundle, Runtime};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn run(rt: &Runtime, b: &Bundle, id: &str) -> std::process::Output {
    b.write();
    rt.run(&["run", "--bundle", b.path().to_str().unwrap(), id])
}

#[test]
fn masked_and_read_only_proc_paths_cannot_be_read_or_written() {
    let rt = Runtime::new(BIN);
    // /proc/kcore and /proc/sysrq-trigger only exist on kernels built with
    // them (not this CI's); the other masked paths stand in for them.
    let script = r#"
        for f in /proc/kcore /proc/keys /proc/timer_list; do
            [ -e $f ] || continue
            n=$(head -c 64 $f 2>/dev/null | wc -c); echo "read $f $n"
        done
        ls /sys/firmware | wc -l | sed 's/^/firmware entries /'
        for f in /proc/sysrq-trigger /proc/sys/kernel/panic; do
            [ -e $f ] || continue
            if echo 0 > $f 2>/dev/null; then echo "WROTE $f"; else echo "refused $f"; fi
        done
    "#;
    let b = Bundle::shared(&["sh", "-c", script]);
    let o = run(&rt, &b, "masked");
    expect_code(&o, 0, "run");
    let out = stdout(&o);
    assert!(!out.contains("WROTE"), "{out}");
    assert!(out.contains("refused /proc/sys/kernel/panic"), "{out}");
    for line in out.lines().filter(|l| l.starts_with("read ")) {
        assert!(line.ends_with(" 0"), "masked file readable: {line}");
    }
    assert!(out.contains("read /proc/keys 0"), "{out}");
    assert!(out.contains("firmware entries 0"), "{out}");
    if Path::new("/proc/sysrq-trigger").exists() {
        assert!(out.contains("refused /proc/sysrq-trigger"), "{out}");
    }
}

#[test]
fn mount_needs_cap_sys_admin() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&["sh", "-c", "mount -t tmpfs none /tmp && echo MOUNTED; mount --bind / /mnt 2>&1 && echo MOUNTED; exit 0"]);
    let o = run(&rt, &b, "mount");
    expect_code(&o, 0, "run");
    assert!(!stdout(&o).contains("MOUNTED"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("ermission denied") || stderr(&o).contains("not permitted"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_runtime_fd_reaches_the_container() {
    let rt = Runtime::new(BIN);
    // The caller leaks a directory fd (7, no close-on-exec) into the
    // runtime: it must not reach the container, neither the init nor an
    // exec'd process. The init is `sleep` itself, its fds read from the host.
    let b = Bundle::shared(&["sleep", "1000"]);
    b.write();
    let cmd = format!(
        "exec 7</ ; exec {BIN} --root {} run -d --bundle {} fds",
        rt.root.path().display(),
        b.path().display()
    );
    let o = output_via_files(Command::new("bash").args(["-c", &cmd]));
    expect_code(&o, 0, "run -d");
    let st: serde_json::Value = serde_json::from_slice(&rt.run(&["state", "fds"]).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "init fds");
    // The exec'd process too: a detached `sleep`, its fds read from the host.
    let pid_file = b.path().join("exec.pid");
    let o = output_via_files(Command::new("bash").args([
        "-c",
        &format!(
            "exec 7</ ; exec {BIN} --root {} exec --detach --pid-file {} fds sleep 1000",
            rt.root.path().display(),
            pid_file.display()
        ),
    ]));
    expect_code(&o, 0, "exec --detach");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "exec'd process fds");
}

/// CVE-2024-21626: a cwd of /proc/self/fd/<leaked host dir fd> put the
/// process in the host's filesystem.
#[test]
fn cwd_through_a_leaked_fd_cannot_reach_the_host() {
    let rt = Runtime::new(BIN);
    for fd in 3..9 {
        let mut b = Bundle::shared(&[
            "sh",
            "-c",
            "pwd; ls ../../../etc/hostname-of-host 2>/dev/null; cat /etc/passwd | head -1",
        ]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        b.write();
        let o = output_via_files(Command::new("bash").args([
            "-c",
            &format!(
                "exec 3</ 4</ 5</ 6</ 7</ 8</ ; exec {BIN} --root {} run --bundle {} cwd{fd}",
                rt.root.path().display(),
                b.path().display()
            ),
        ]));
        // Either refused, or the cwd is inside the container: never the host.
        if o.status.success() {
            assert!(!stdout(&o).contains("(unreachable)"), "{}", stdout(&o));
        } else {
            assert!(stderr(&o).contains("cwd"), "{}", stderr(&o));
        }
    }
}

/// CVE-2019-5736: a container process reopens the runtime binary through
/// /proc/<pid>/exe while the runtime stands in the container's namespaces
/// (during an exec), and writes to it once the runtime has exec'd away.
#[test]
fn runtime_binary_cannot_be_overwritten_through_proc_exe() {
    // Attack a copy, so a successful attack cannot break other tests.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("berth-runtime");
    std::fs::copy(BIN, &bin).unwrap();
    let before = std::fs::read(&bin).unwrap();
    let rt = Runtime::new(bin.to_str().unwrap());
    let attacker = r#"
        while :; do
          for p in /proc/[0-9]*; do
            l=$(readlink $p/exe 2>/dev/null) || continue
            case "$l" in *busybox*) continue;; esac
            if exec 3<$p/exe 2>/dev/null; then
              echo "opened $p $l" >> /tmp/attack.log
              sleep 0.2
              echo PWNED >> /proc/self/fd/3 && echo WROTE >> /tmp/attack.log
              exec 3<&-
            fi
          done
        done
    "#;
    let mut b = Bundle::shared(&["sh", "-c", attacker]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]
    }));
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "cve"]),
        0,
        "run -d",
    );
    for _ in 0..30 {
        let o = rt.run(&["exec", "cve", "true"]);
        expect_code(&o, 0, "exec");
    }
    let log = stdout(&rt.run(&[
        "exec",
        "cve",
        "sh",
        "-c",
        "cat /tmp/attack.log 2>/dev/null; true",
    ]));
    expect_code(&rt.run(&["delete", "--force", "cve"]), 0, "delete");
    assert!(
        !log.contains("opened"),
        "the runtime's exe was reachable:\n{log}"
    );
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        before,
        "the runtime binary was modified"
    );
}

/// A device or mount destination that is a symlink in the rootfs must be
/// resolved inside the rootfs, never followed to the host.
#[test]
fn rootfs_symlinks_cannot_redirect_devices_or_mounts_to_the_host() {
    let rt = Runtime::new(BIN);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "HOSTSECRET").unwrap();
    let mut b = Bundle::private(&[
        "sh",
        "-c",
        "cat /etc/leak 2>&1; ls /evil/sub >/dev/null && echo sub-inside; true",
    ]);
    let rootfs = b.rootfs();
    let hp = host.path().to_str().unwrap();
    std::os::unix::fs::symlink(host.path().join("secret"), rootfs.join("etc/leak")).unwrap();
    std::os::unix::fs::symlink(host.path().join("planted"), rootfs.join("devlink")).unwrap();
    std::os::unix::fs::symlink(hp, rootfs.join("evil")).unwrap();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/leak"));
    // A device whose path walks through a symlink to the host: without /dev
    // as a tmpfs the rootfs's own /dev is used.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| {
        m["destination"] != "/dev" && !m["destination"].as_str().unwrap().starts_with("/dev/")
    });
    std::fs::remove_dir(rootfs.join("dev")).unwrap();
    std::os::unix::fs::symlink(hp, rootfs.join("dev")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"
    }));
    let o = run(&rt, &b, "symlinks");
    expect_code(&o, 0, "run");
    assert!(!stdout(&o).contains("HOSTSECRET"), "{}", stdout(&o));
    // Nothing was created on the host: no device nodes, no mount point.
    let entries: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("secret")],
        "host dir changed"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("secret")).unwrap(),
        "HOSTSECRET"
    );
    // They were made inside the rootfs instead.
    assert!(rootfs
        .join(hp.trim_start_matches('/'))
        .join("null")
        .exists());
}

#[test]
fn device_cgroup_denies_nodes_made_with_mknod() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::private(&["sh", "-c", "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk >/dev/null 2>&1 && echo READ-DISK; head -c 1 /dev/zero | wc -c"]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    let o = run(&rt, &b, "mknod");
    expect_code(&o, 0, "run");
    assert!(!stdout(&o).contains("READ-DISK"), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("1\n"),
        "default devices work: {}",
        stdout(&o)
    );
}

/// A local user reads a container's state (its whole spec, the
/// environment's secrets) from the runtime's state root (issue 13, item 5):
/// the root is made 0700 when missing, an existing open one is tightened
/// (with a notice) at the next command, and state.json is 0600.
#[test]
fn local_user_cannot_read_the_runtime_state() {
    let have_tools =
        Path::new("/usr/bin/setpriv").exists() && Path::new(berth_testkit::BUSYBOX).exists();
    if !have_tools {
        assert!(
            std::env::var_os("CI").is_none(),
            "setpriv and busybox are needed"
        );
        eprintln!("skipped: setpriv or busybox missing");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let as_nobody_cat = |p: &Path| {
        output_via_files(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(berth_testkit::BUSYBOX)
                .arg("cat")
                .arg(p),
        )
    };
    // Under a directory everyone may enter, as /run is.
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = parent.path().join("state");
    let mut b = Bundle::shared(&["sleep", "600"]);
    b.config["process"]["env"] = json!(["TOKEN=hunter2-runtime-secret"]);
    b.write();
    let rt =
        |args: &[&str]| output_via_files(Command::new(BIN).arg("--root").arg(&root).args(args));
    let bundle = b.path().to_str().unwrap();
    let o = rt(&["create", "--bundle", bundle, "secret"]);
    expect_code(&o, 0, "create");
    let state = root.join("secret/state.json");
    assert_eq!(mode(&root), 0o700, "a new root");
    assert_eq!(mode(&state), 0o600, "state.json");
    assert!(std::fs::read_to_string(&state)
        .unwrap()
        .contains("hunter2-runtime-secret"));
    assert!(
        !as_nobody_cat(&state).status.success(),
        "nobody read the state"
    );

    // As an older runtime left it: everything open.
    for (p, m) in [
        (&root, 0o755),
        (&root.join("secret"), 0o755),
        (&state, 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    assert!(
        as_nobody_cat(&state).status.success(),
        "the open root leaks (so this test can tell)"
    );
    let o = rt(&["state", "secret"]);
    expect_code(&o, 0, "state");
    let notice = stderr(&o);
    assert_eq!(notice.lines().count(), 1, "one line of notice: {notice}");
    assert!(
        notice.contains(&*root.to_string_lossy()) && notice.contains("0755"),
        "{notice}"
    );
    assert_eq!(mode(&root), 0o700, "the tightened root");
    assert!(
        !as_nobody_cat(&state).status.success(),
        "nobody read the state"
    );
    let o = rt(&["state", "secret"]);
    assert_eq!(stderr(&o), "", "no notice for a closed root");
    expect_code(&rt(&["delete", "--force", "secret"]), 0, "delete");
}
