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

use berth_testkit::core_pattern::{HostCorePattern, PATH as CORE_PATTERN};

/// Writes a pipe-program core_pattern into every file a container could
/// have been given in place of a host sysctl.
const WRITE_EVERYWHERE: &str = r#"
    for f in /proc/kcore /proc/keys /proc/timer_list /proc/latency_stats /proc/sched_debug \
             /proc/timer_stats /dev/null /dev/console /dev/zero /dev/tty /etc/hosts /data/x \
             /proc/sys/kernel/core_pattern; do
        [ -e $f ] && echo '|/pwned-by-berth-test %p' > $f
    done
    echo done
"#;

/// Runs `b` and checks the attack got nowhere: the host's core_pattern is
/// as it was, and the runtime either refused with an error containing
/// `refusal` or ran the container (`refusal` empty).
fn attack(rt: &Runtime, b: &Bundle, id: &str, host: &HostCorePattern, refusal: &str) {
    let o = run(rt, b, id);
    host.assert_untouched(id);
    if refusal.is_empty() {
        expect_code(&o, 0, id);
        assert!(stdout(&o).contains("done"), "{id}: {}", stdout(&o));
    } else {
        assert_ne!(o.status.code(), Some(0), "{id} ran: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains(refusal), "{id}: want {refusal:?} in:\n{err}");
        assert_eq!(err.trim().lines().count(), 1, "{id}: one line: {err}");
        assert!(!err.contains("panicked"), "{id}: {err}");
    }
}

/// A bundle whose /dev is a bind of `dev` (what a `VOLUME /dev` is): the
/// runtime then makes no device nodes and uses what the directory has.
fn with_dev_volume(args: &[&str], dev: &Path) -> Bundle {
    let mut b = Bundle::shared(args);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev", "type": "bind", "source": dev, "options": ["rbind", "rw"]
    }));
    b
}

/// Makes a hostile /dev/null at the path given.
type Plant<'a> = &'a dyn Fn(&Path);

/// A symlink planted in the rootfs: where, and what it points at.
type Link<'a> = (&'a str, &'a str);

/// CVE-2025-31133: the masks bind "/dev/null" over /proc/kcore and the
/// others. An image that brings its own /dev makes dev/null a symlink to
/// /proc/sys/kernel/core_pattern (or anything else): the "masks" would be
/// writable binds of the host's sysctl. Every variant must be refused, and
/// a real null device must still work.
#[test]
fn masks_never_bind_a_planted_dev_null() {
    let host = HostCorePattern::save();
    let rt = Runtime::new(BIN);
    let variants: [(&str, Plant); 6] = [
        ("abs", &|p| {
            std::os::unix::fs::symlink(CORE_PATTERN, p).unwrap()
        }),
        ("rel", &|p| {
            std::os::unix::fs::symlink("../proc/sys/kernel/core_pattern", p).unwrap()
        }),
        ("up", &|p| {
            std::os::unix::fs::symlink("../../../../../proc/sys/kernel/core_pattern", p).unwrap()
        }),
        ("self", &|p| {
            std::os::unix::fs::symlink("/proc/self/root/proc/sys/kernel/core_pattern", p).unwrap()
        }),
        ("file", &|p| std::fs::write(p, "").unwrap()),
        ("zero", &|p| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 5),
            )
            .unwrap()
        }),
    ];
    for (name, plant) in variants {
        let dev = tempfile::tempdir().unwrap();
        plant(&dev.path().join("null"));
        let b = with_dev_volume(&["sh", "-c", WRITE_EVERYWHERE], dev.path());
        attack(&rt, &b, &format!("null-{name}"), &host, "/dev/null");
    }
    // The symlink swapped in for /dev itself, with no /dev mount at all:
    // device nodes would be made in, and masks bound from, procfs.
    let mut b = Bundle::private(&["sh", "-c", WRITE_EVERYWHERE]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    std::fs::remove_dir(b.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink("proc/sys/kernel", b.rootfs().join("dev")).unwrap();
    attack(&rt, &b, "dev-dir-link", &host, "inside /proc or /sys");
    // A /dev that has the real null device works, and its masks hold.
    let dev = tempfile::tempdir().unwrap();
    nix::sys::stat::mknod(
        &dev.path().join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let b = with_dev_volume(
        &[
            "sh",
            "-c",
            "echo x > /proc/keys; cat /proc/keys; grep ' /proc/keys ' /proc/self/mountinfo | cut -d' ' -f6; echo done",
        ],
        dev.path(),
    );
    let o = run(&rt, &b, "null-real");
    expect_code(&o, 0, "null-real");
    // Writes to a null device succeed into nothing, even on a read-only
    // mount; the mask is read-only all the same (runc's fix).
    let out = stdout(&o);
    assert!(
        out.starts_with("ro,") && out.ends_with("\ndone\n"),
        "the mask is read-only and empty: {out}"
    );
    host.assert_untouched("null-real");
}

/// Sysctls: a host-global one is refused outright, and a namespaced one is
/// written through the container's procfs only, never through a symlink
/// the rootfs plants where /proc/sys would be.
#[test]
fn sysctls_reach_only_the_containers_own_namespaced_files() {
    let host = HostCorePattern::save();
    let rt = Runtime::new(BIN);
    for key in [
        "kernel.core_pattern",
        "kernel/core_pattern",
        "net/../kernel/core_pattern",
        "net.ipv4/../../kernel.core_pattern",
    ] {
        let mut b = Bundle::shared(&["sh", "-c", "echo done"]);
        b.config["linux"]["sysctl"] = json!({ key: "|/pwned-by-berth-test %p" });
        attack(&rt, &b, "sysctl-global", &host, "sysctl");
    }
    // net.* without a network namespace of its own is the host's.
    let mut b = Bundle::shared(&["sh", "-c", "echo done"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    attack(&rt, &b, "sysctl-host-net", &host, "network namespace");

    // No procfs on /proc: the image's own proc/sys/net/ipv4/ip_forward is a
    // symlink to a host file bound into the container.
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("x"), "HOST FILE").unwrap();
    let mut b = Bundle::private(&["sh", "-c", "echo done"]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": victim.path(), "options": ["rbind", "rw"]
    }));
    std::fs::create_dir_all(b.rootfs().join("proc/sys/net/ipv4")).unwrap();
    std::os::unix::fs::symlink("/data/x", b.rootfs().join("proc/sys/net/ipv4/ip_forward")).unwrap();
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    attack(&rt, &b, "sysctl-no-procfs", &host, "procfs");
    assert_eq!(
        std::fs::read_to_string(victim.path().join("x")).unwrap(),
        "HOST FILE"
    );

    // A volume planted under /proc/sys, its files symlinks to core_pattern.
    let vol = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(CORE_PATTERN, vol.path().join("ip_forward")).unwrap();
    let mut b = Bundle::shared(&["sh", "-c", "echo done"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/net/ipv4", "type": "bind", "source": vol.path(), "options": ["rbind", "rw"]
    }));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "|/pwned-by-berth-test %p"});
    attack(&rt, &b, "sysctl-volume", &host, "inside /proc");

    // The legitimate use still works: the container's own net sysctl.
    let mut b = Bundle::shared(&["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; echo done"]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let o = run(&rt, &b, "sysctl-ok");
    expect_code(&o, 0, "sysctl-ok");
    assert_eq!(stdout(&o), "1\ndone\n");
}

/// Spec mounts on /, in /proc or in /sys (as written, or once a symlink in
/// the rootfs is followed) are refused: a volume there would stand in for
/// the kernel's files the runtime masks and writes.
#[test]
fn spec_mounts_cannot_cover_the_root_proc_or_sys() {
    let host = HostCorePattern::save();
    let rt = Runtime::new(BIN);
    let vol = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(CORE_PATTERN, vol.path().join("core_pattern")).unwrap();
    let file = vol.path().join("plain");
    std::fs::write(&file, "plain\n").unwrap();
    let v = vol.path().to_str().unwrap();
    let f = file.to_str().unwrap();
    let cases: [(&str, serde_json::Value, Option<Link>); 9] = [
        (
            "root",
            json!({"destination": "/", "type": "bind", "source": v, "options": ["rbind"]}),
            None,
        ),
        (
            "proc-tmpfs",
            json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}),
            None,
        ),
        (
            "proc-bind",
            json!({"destination": "/proc", "type": "bind", "source": v, "options": ["rbind"]}),
            None,
        ),
        (
            "proc-sys",
            json!({"destination": "/proc/sys/kernel", "type": "bind", "source": v, "options": ["rbind"]}),
            None,
        ),
        (
            "proc-file",
            json!({"destination": "/proc/cpuinfo", "type": "bind", "source": f, "options": ["bind"]}),
            None,
        ),
        (
            "sys-kernel",
            json!({"destination": "/sys/kernel", "type": "bind", "source": v, "options": ["rbind"]}),
            None,
        ),
        (
            "sys-tmpfs",
            json!({"destination": "/sys/fs/cgroup", "type": "tmpfs", "source": "tmpfs"}),
            None,
        ),
        // Through a symlinked directory and a symlinked file of the image.
        (
            "via-dir",
            json!({"destination": "/data", "type": "bind", "source": v, "options": ["rbind"]}),
            Some(("data", "proc/sys/kernel")),
        ),
        (
            "via-file",
            json!({"destination": "/etc/hosts", "type": "bind", "source": f, "options": ["bind"]}),
            Some(("etc/hosts", "/proc/sys/kernel/core_pattern")),
        ),
    ];
    for (name, mount, link) in cases {
        let mut b = Bundle::private(&["sh", "-c", WRITE_EVERYWHERE]);
        b.config["mounts"].as_array_mut().unwrap().push(mount);
        if let Some((at, to)) = link {
            let _ = std::fs::remove_file(b.rootfs().join(at));
            std::os::unix::fs::symlink(to, b.rootfs().join(at)).unwrap();
        }
        attack(&rt, &b, name, &host, "mount destination");
    }
    // A symlink that stays out of /proc and /sys is followed, as runc
    // does: /etc/resolv.conf -> ../run/resolv.conf gets the bind.
    let mut b = Bundle::private(&["sh", "-c", "cat /etc/resolv.conf; echo done"]);
    std::os::unix::fs::symlink("../run/resolv.conf", b.rootfs().join("etc/resolv.conf")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": f, "options": ["bind"]}),
    );
    let o = run(&rt, &b, "resolv-link");
    expect_code(&o, 0, "resolv-link");
    assert_eq!(stdout(&o), "plain\ndone\n");
}

/// After pivot_root the runtime mounts through /proc/self/fd: without its
/// procfs on /proc those magic links are whatever the image put there
/// (`proc/self/fd/4 -> /data/x`), so masking is refused rather than done
/// through them.
#[test]
fn masks_need_the_runtimes_procfs() {
    let host = HostCorePattern::save();
    let rt = Runtime::new(BIN);
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("x"), "HOST FILE").unwrap();
    let mut b = Bundle::private(&["sh", "-c", WRITE_EVERYWHERE]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": vol.path(), "options": ["rbind", "rw"]
    }));
    let fds = b.rootfs().join("proc/self/fd");
    std::fs::create_dir_all(&fds).unwrap();
    for n in 0..64 {
        std::os::unix::fs::symlink("/data/x", fds.join(n.to_string())).unwrap();
    }
    attack(&rt, &b, "no-procfs", &host, "needs the runtime's procfs");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("x")).unwrap(),
        "HOST FILE"
    );
}

/// CVE-2025-52565: the pty is bound on /dev/console. An image /dev whose
/// console is a symlink into /proc must not get the bind there, and its
/// ptmx must not stand in for the real one.
#[test]
fn console_bind_lands_on_the_containers_own_dev_console() {
    if !berth_testkit::snippet::installed("script") {
        assert!(
            std::env::var_os("CI").is_none(),
            "script (util-linux) is missing"
        );
        eprintln!("SKIPPED: script (util-linux) is not installed");
        return;
    }
    let host = HostCorePattern::save();
    let rt = Runtime::new(BIN);
    let foreground = |b: &Bundle, id: &str| {
        b.write();
        output_via_files(Command::new("bash").args([
            "-c",
            &format!(
                "timeout 60 script -qec '{BIN} --root {} run --bundle {} {id}' /dev/null </dev/null",
                rt.root.path().display(),
                b.path().display()
            ),
        ]))
    };
    let script = "ls -l /dev/console; echo '|/pwned-by-berth-test %p' > /dev/console; echo done";
    // The image's /dev (a volume): console a symlink to core_pattern, a real
    // null and the host's pts/ptmx layout.
    let dev = tempfile::tempdir().unwrap();
    nix::sys::stat::mknod(
        &dev.path().join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    std::os::unix::fs::symlink(CORE_PATTERN, dev.path().join("console")).unwrap();
    std::fs::create_dir(dev.path().join("pts")).unwrap();
    std::os::unix::fs::symlink("pts/ptmx", dev.path().join("ptmx")).unwrap();
    let mut b = with_dev_volume(&["sh", "-c", script], dev.path());
    b.config["process"]["terminal"] = json!(true);
    // The devpts goes on the volume's pts, after the volume.
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev/pts", "type": "devpts", "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    }));
    let o = foreground(&b, "console-link");
    host.assert_untouched("console-link");
    let out = stdout(&o);
    assert!(out.contains("done"), "{out}\n{}", stderr(&o));
    assert!(
        !out.contains("/dev/console ->"),
        "the symlink is replaced: {out}"
    );
    // The image's ptmx a symlink to core_pattern: no pty is made from it.
    std::fs::remove_file(dev.path().join("ptmx")).unwrap();
    std::os::unix::fs::symlink(CORE_PATTERN, dev.path().join("ptmx")).unwrap();
    let o = foreground(&b, "ptmx-link");
    host.assert_untouched("ptmx-link");
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("/dev/ptmx is not the pty multiplexer"),
        "{all}"
    );
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

/// A file at the host's root with a random content, removed when dropped:
/// what a container process that reached the host would read.
struct HostMarker {
    path: std::path::PathBuf,
    token: String,
}

impl HostMarker {
    fn plant(name: &str) -> HostMarker {
        let token = format!("HOST-MARKER-{}-{:x}", std::process::id(), rand_u64());
        let path = Path::new("/").join(format!("{name}-{}", std::process::id()));
        std::fs::write(&path, &token).unwrap();
        HostMarker { path, token }
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    u64::from_ne_bytes(b)
}

/// CVE-2024-21626: a cwd of /proc/self/fd/<n>, where n is a directory fd
/// the runtime still holds (leaked by its caller or opened by itself),
/// put the process in the host's filesystem, from where `../..` reaches
/// the host's root. Every fd number the runtime could hold is tried, with
/// the caller leaking the host's `/` on 3 to 9, and the container tries to
/// read a marker planted at the host's root.
#[test]
fn cwd_through_a_leaked_fd_cannot_reach_the_host() {
    let marker = HostMarker::plant("berth-cve-2024-21626");
    let rt = Runtime::new(BIN);
    let up = "../".repeat(40);
    let script = format!(
        "pwd; cat {up}{name} 2>&1; cat /proc/self/cwd/{up}{name} 2>&1; echo done",
        name = marker.name()
    );
    for fd in 3..32 {
        let mut b = Bundle::shared(&["sh", "-c", &script]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        b.write();
        let o = output_via_files(Command::new("bash").args([
            "-c",
            &format!(
                "exec 3</ 4</ 5</ 6</ 7</ 8</ 9</ ; exec {BIN} --root {} run --bundle {} cwd{fd}",
                rt.root.path().display(),
                b.path().display()
            ),
        ]));
        let out = stdout(&o);
        assert!(
            !out.contains(&marker.token),
            "fd {fd}: the container read the host's root:\n{out}"
        );
        // Either refused, or the cwd is inside the container and the walk
        // up stopped at its root.
        if o.status.success() {
            assert!(out.contains("No such file"), "fd {fd}: {out}");
            assert!(out.ends_with("done\n"), "fd {fd}: {out}");
        } else {
            assert!(stderr(&o).contains("cwd"), "fd {fd}: {}", stderr(&o));
        }
    }
    // The probe can see the marker when it is where it looks: the host's
    // root, walked up to from a cwd on the host.
    let o = output_via_files(Command::new("sh").args(["-c", &script]).current_dir("/tmp"));
    assert!(stdout(&o).contains(&marker.token), "{}", stdout(&o));
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
    // `command exec`: a failed redirection of the special builtin exec
    // would end the shell (POSIX), and with it the container, when a
    // process it tries is gone or not readable (the test then failed on
    // "cannot exec in a stopped container", testing nothing).
    let attacker = r#"
        while :; do
          for p in /proc/[0-9]*; do
            l=$(readlink $p/exe 2>/dev/null) || continue
            case "$l" in *busybox*) continue;; esac
            if command exec 3<$p/exe 2>/dev/null; then
              echo "opened $p $l" >> /tmp/attack.log
              i=0
              while [ $i -lt 20 ]; do
                if echo PWNED 2>/dev/null >> /proc/self/fd/3; then
                  echo WROTE >> /tmp/attack.log; break
                fi
                sleep 0.1; i=$((i+1))
              done
              exec 3<&-
            fi
          done
        done
    "#;
    let mut b = Bundle::shared(&["sh", "-c", attacker]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]
    }));
    // CAP_SYS_PTRACE reaches even non-dumpable processes: the runtime's
    // exec'd processes are opened before their execve, and only the
    // read-only binary (berth_runtime::exe) stands between them and the host.
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_PTRACE"));
    }
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
    // The attacker keeps trying to write for 2 s after it opened a
    // binary: once no runtime process executes it (no more ETXTBSY), only
    // the protection stops the write.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let log = stdout(&rt.run(&[
        "exec",
        "cve",
        "sh",
        "-c",
        "cat /tmp/attack.log 2>/dev/null; true",
    ]));
    expect_code(&rt.run(&["delete", "--force", "cve"]), 0, "delete");
    assert!(
        log.contains("opened"),
        "the attacker never reached a runtime process: the test proves nothing\n{log}"
    );
    assert!(
        !log.contains("WROTE"),
        "the runtime's exe was written:\n{log}"
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

/// A node made with mknod inside the container (CAP_MKNOD granted) for a
/// device the host opens freely but the container's device list does not
/// allow (the block device /dev/loop0, 7:0): the device cgroup must refuse
/// to open it.
#[test]
fn device_cgroup_denies_nodes_made_with_mknod() {
    if let Err(e) = std::fs::File::open("/dev/loop0") {
        // Without a device the host can open, a refused open proves nothing.
        assert!(std::env::var_os("CI").is_none(), "open /dev/loop0: {e}");
        eprintln!("SKIPPED: the host cannot open /dev/loop0: {e}");
        return;
    }
    let rt = Runtime::new(BIN);
    // On a tmpfs that allows device nodes (the rootfs's filesystem may be
    // nodev, which would refuse the open whatever the cgroup says).
    let script = "mknod /nodes/loop b 7 0 && (exec 3</nodes/loop) && echo OPENED-LOOP; head -c 1 /dev/zero | wc -c";
    let mut b = Bundle::shared(&["sh", "-c", script]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/nodes", "type": "tmpfs", "source": "tmpfs", "options": ["dev"]
    }));
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    let o = run(&rt, &b, "mknod");
    expect_code(&o, 0, "run");
    assert!(!stdout(&o).contains("OPENED-LOOP"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "the open was refused: {}",
        stderr(&o)
    );
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
