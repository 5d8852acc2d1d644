//! What the container sees: each namespace, the process attributes the spec
//! sets, terminals, passed fds.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::Command;

use berth_testkit::{expect_code, output_via_files, stdout, Bundle, Runtime};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn run(rt: &Runtime, b: &Bundle, id: &str) -> String {
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), id]);
    expect_code(&o, 0, "run");
    stdout(&o)
}

#[test]
fn new_namespaces_are_private() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; echo pid $$; ip -o link | wc -l; readlink /proc/self/ns/ipc"]);
    b.config["hostname"] = json!("iso-host");
    b.config["domainname"] = json!("iso.example");
    let out = run(&rt, &b, "ns");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "iso-host");
    assert_eq!(lines[1], "iso.example");
    assert_eq!(lines[2], "pid 1");
    assert_eq!(lines[3].trim(), "1", "only lo in a new network namespace");
    assert_ne!(
        lines[4],
        std::fs::read_link("/proc/self/ns/ipc")
            .unwrap()
            .to_str()
            .unwrap()
    );
}

#[test]
fn user_namespace_with_several_ranges() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::private(&["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/made-by-root; touch /tmp/made-by-1500 && chown 1500:1500 /tmp/made-by-1500"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": 100000, "size": 1000},
        {"containerID": 1000, "hostID": 300000, "size": 1000}
    ]);
    b.config["linux"]["gidMappings"] = b.config["linux"]["uidMappings"].clone();
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_CHOWN"));
    }
    // The rootfs belongs to host root, which is unmapped: let the container
    // write its /tmp.
    std::os::unix::fs::chown(b.rootfs().join("tmp"), Some(100000), Some(100000)).unwrap();
    let out = run(&rt, &b, "userns");
    let words: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(words[0], ["0", "100000", "1000"], "{out}");
    assert_eq!(words[1], ["1000", "300000", "1000"], "{out}");
    assert_eq!(words[4], ["0"], "root inside: {out}");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(b.rootfs().join("tmp/made-by-root")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (100000, 100000),
        "root inside is 100000 outside"
    );
    let m = std::fs::metadata(b.rootfs().join("tmp/made-by-1500")).unwrap();
    assert_eq!((m.uid(), m.gid()), (300500, 300500), "second range maps");
}

#[test]
fn joins_a_namespace_by_path() {
    let rt = Runtime::new(BIN);
    let mut holder = Command::new("unshare")
        .args(["--net", "--uts", "sleep", "1000"])
        .spawn()
        .unwrap();
    let pid = holder.id();
    let ns = |p: String| std::fs::read_link(p).map(|l| l.to_string_lossy().into_owned());
    let own_net = ns("/proc/self/ns/net".into()).unwrap();
    let own_uts = ns("/proc/self/ns/uts".into()).unwrap();
    // The holder's namespaces, read while it lives: once unshare has made
    // them (until then /proc/<pid>/ns/* are still ours).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (want_net, want_uts) = loop {
        let net = ns(format!("/proc/{pid}/ns/net"));
        let uts = ns(format!("/proc/{pid}/ns/uts"));
        if let (Ok(net), Ok(uts)) = (&net, &uts) {
            if *net != own_net && *uts != own_uts {
                break (net.clone(), uts.clone());
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = holder.kill();
            panic!("unshare made no namespaces in 10s: {net:?} {uts:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut b = Bundle::shared(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/net; readlink /proc/self/ns/uts",
    ]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
        if ns["type"] == "uts" {
            ns["path"] = json!(format!("/proc/{pid}/ns/uts"));
        }
    }
    b.config.as_object_mut().unwrap().remove("hostname");
    let out = run(&rt, &b, "join");
    let _ = holder.kill();
    let _ = holder.wait();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [want_net.as_str(), want_uts.as_str()],
        "joined the holder's namespaces"
    );
}

#[test]
fn time_namespace_offsets_apply() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sh", "-c", "cut -d. -f1 /proc/uptime"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 10_000_000, "nanosecs": 0}});
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = run(&rt, &b, "time");
    let secs: f64 = out.trim().parse().unwrap();
    // The host's uptime plus the offset (a host up for 115 days would pass
    // a bare `>= 10_000_000`).
    assert!(
        secs >= host + 10_000_000.0 - 1.0,
        "uptime {secs}, host {host}"
    );
}

#[test]
fn process_attributes_from_the_spec() {
    let rt = Runtime::new(BIN);
    let script = "ulimit -n; umask; id; grep -E '^(CapEff|CapAmb|NoNewPrivs)' /proc/self/status; echo HOME=$HOME; pwd; \
                  cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj; touch /readonly 2>/dev/null || echo ro-root";
    let mut b = Bundle::private(&["sh", "-c", script]);
    let p = &mut b.config["process"];
    p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 65534], "umask": 63});
    p["capabilities"] = json!({
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    p["noNewPrivileges"] = json!(true);
    p["cwd"] = json!("/work/dir");
    p["oomScoreAdj"] = json!(500);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["root"]["readonly"] = json!(true);
    let out = run(&rt, &b, "attrs");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "256", "{out}");
    assert_eq!(lines[1], "0077", "{out}");
    assert!(
        lines[2].starts_with("uid=1000 gid=1000 groups=5(tty),65534(nogroup)")
            || lines[2].contains("groups=5"),
        "{out}"
    );
    assert_eq!(lines[3], "CapEff:\t0000000000000400", "{out}");
    assert_eq!(lines[4], "CapAmb:\t0000000000000400", "{out}");
    assert_eq!(lines[5], "NoNewPrivs:\t1", "{out}");
    assert_eq!(lines[6], "HOME=/", "{out}");
    assert_eq!(lines[7], "/work/dir", "{out}");
    assert_eq!(lines[8], "1", "{out}");
    assert_eq!(lines[9], "500", "{out}");
    assert_eq!(lines[10], "ro-root", "{out}");
}

#[test]
fn devices_from_the_spec_are_created() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&[
        "sh",
        "-c",
        "ls -ln /dev/kmsg-copy | cut -c1-10; stat -c '%t:%T %u:%g' /dev/kmsg-copy",
    ]);
    b.config["linux"]["devices"] = json!([{"path": "/dev/kmsg-copy", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600, "uid": 7, "gid": 8}]);
    let out = run(&rt, &b, "dev");
    assert_eq!(out, "crw-------\n1:b 7:8\n");
}

#[test]
fn preserve_fds_passes_fds_and_nothing_else() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&[
        "sh",
        "-c",
        "cat <&3; ls /proc/self/fd/4 2>/dev/null && echo LEAKED; true",
    ]);
    b.write();
    let o = output_via_files(Command::new("bash").args([
        "-c",
        &format!(
            "exec 3< <(echo passed-through) 4</ ; exec {BIN} --root {} run --preserve-fds 1 --bundle {} pfd",
            rt.root.path().display(),
            b.path().display()
        ),
    ]));
    expect_code(&o, 0, "run");
    assert_eq!(stdout(&o), "passed-through\n");
}

#[test]
fn no_pivot_uses_chroot() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&["sh", "-c", "ls /bin/busybox && echo ok"]);
    b.write();
    let o = rt.run(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.path().to_str().unwrap(),
        "np",
    ]);
    expect_code(&o, 0, "run --no-pivot");
    assert!(stdout(&o).ends_with("ok\n"), "{}", stdout(&o));
}

/// Receives the pty master that the runtime sends over the console socket.
fn receive_fd(listener: &UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received and belongs to us alone.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn terminal_through_the_console_socket() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sh", "-c", "tty; stty size; read line; echo got:$line"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    b.write();
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut create = rt
        .cmd()
        .args([
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.path().to_str().unwrap(),
            "tty",
        ])
        .spawn()
        .unwrap();
    let master = receive_fd(&listener);
    assert!(create.wait().unwrap().success());
    expect_code(&rt.run(&["start", "tty"]), 0, "start");
    let mut master = std::fs::File::from(master);
    master.write_all(b"hello\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Reading the master fails with EIO once the container's side closes.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("got:") {
            break;
        }
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("33 101"), "{out}");
    assert!(out.contains("got:hello"), "{out}");
}

/// The init is born in its cgroups (clone3 into the cgroup2 part, the v1
/// part joined by the intermediate), exec'd processes join them, the limits
/// hold, and delete removes them.
#[test]
fn cgroups_hold_the_container_and_its_limits() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sleep", "1000"]);
    let name = format!("berth-test-{}", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}/c"));
    b.config["linux"]["resources"]["pids"] = json!({"limit": 50});
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67_108_864});
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "cg"]),
        0,
        "run -d",
    );
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists();
    let (pids_dir, limits) = if v1 {
        (
            format!("/sys/fs/cgroup/pids/{name}/c"),
            "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes",
        )
    } else {
        (
            format!("/sys/fs/cgroup/{name}/c"),
            "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max",
        )
    };
    let procs = || std::fs::read_to_string(format!("{pids_dir}/cgroup.procs")).unwrap();
    assert_eq!(procs().lines().count(), 1, "the init: {}", procs());
    let o = rt.run(&[
        "exec",
        "cg",
        "sh",
        "-c",
        &format!(
            "{limits}; cat {}/cgroup.procs 2>/dev/null | wc -l",
            if v1 {
                "/sys/fs/cgroup/pids"
            } else {
                "/sys/fs/cgroup"
            }
        ),
    ]);
    expect_code(&o, 0, "exec");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "50", "{out}");
    assert_eq!(lines[1], "67108864", "{out}");
    // init, sh, cat and wc: the exec'd processes are in the container's cgroup.
    assert!(lines[2].trim().parse::<u32>().unwrap() >= 3, "{out}");
    expect_code(&rt.run(&["delete", "--force", "cg"]), 0, "delete");
    assert!(
        !std::path::Path::new(&pids_dir).exists(),
        "cgroup left after delete"
    );
    for h in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified", "",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}/{name}"));
    }
}

/// `run` and `exec -t` in the foreground with no console socket: the
/// runtime relays the pty itself (runc does too), under a real terminal.
#[test]
fn foreground_terminal_without_console_socket() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sh"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let script = |cmd: &str, input: &str| {
        output_via_files(Command::new("bash").args([
            "-c",
            &format!("(sleep 0.5; printf '{input}') | timeout 60 script -qec '{cmd}' /dev/null"),
        ]))
    };
    let o = script(
        &format!(
            "{BIN} --root {} run --bundle {} ftty",
            rt.root.path().display(),
            b.path().display()
        ),
        "echo typed-$((6*7)); tty\\nexit 3\\n",
    );
    let out = stdout(&o);
    assert!(out.contains("typed-42"), "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert_eq!(o.status.code(), Some(3), "{out}");

    let mut d = Bundle::shared(&["sleep", "1000"]);
    d.config["process"]["terminal"] = json!(false);
    d.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", d.path().to_str().unwrap(), "fexec"]),
        0,
        "run -d",
    );
    let o = script(
        &format!("{BIN} --root {} exec -t fexec sh", rt.root.path().display()),
        "tty; exit 4\\n",
    );
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/"), "{out}");
    assert_eq!(o.status.code(), Some(4), "{out}");
}

/// blkio throttles, hugetlb and realtime cpu reach their cgroup files (on
/// this hybrid host hugetlb lives in the cgroup2 tree).
#[test]
fn block_io_hugetlb_and_realtime_limits() {
    if !std::path::Path::new("/sys/fs/cgroup/blkio/cgroup.procs").exists() {
        assert!(std::env::var_os("CI").is_none(), "not a cgroup v1 host");
        eprintln!("SKIPPED: not a cgroup v1 host");
        return;
    }
    // A whole disk (throttles apply to disks, not partitions).
    let disk = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram"))
        .expect("a block device");
    let mm = std::fs::read_to_string(format!("/sys/block/{disk}/dev")).unwrap();
    let (major, minor) = mm.trim().split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sleep", "1000"]);
    // Directly under the root: a nested cgroup gets realtime time only from
    // a parent that has some (the kernel's rule), and intermediate ones
    // have none.
    let cg = format!("/berth-more-{}", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(cg);
    b.config["linux"]["resources"]["blockIO"] = json!({
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1_048_576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
    });
    let huge = std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
        && std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .is_ok_and(|c| c.contains("hugetlb"));
    if !huge {
        assert!(
            std::env::var_os("CI").is_none(),
            "no 2MB hugetlb controller"
        );
        eprintln!("SKIPPED (hugetlb part): no 2MB hugetlb controller in the cgroup2 tree");
    }
    if huge {
        b.config["linux"]["resources"]["hugepageLimits"] =
            json!([{"pageSize": "2MB", "limit": 4_194_304}]);
    }
    b.config["linux"]["resources"]["cpu"] =
        json!({"realtimePeriod": 1_000_000, "realtimeRuntime": 10_000});
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "more"]),
        0,
        "run -d",
    );
    let read = |p: String| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let blk = format!("/sys/fs/cgroup/blkio{cg}");
    assert!(read(format!("{blk}/blkio.throttle.read_bps_device"))
        .contains(&format!("{major}:{minor} 1048576")));
    assert!(read(format!("{blk}/blkio.throttle.write_iops_device"))
        .contains(&format!("{major}:{minor} 100")));
    assert_eq!(
        read(format!("/sys/fs/cgroup/cpu{cg}/cpu.rt_runtime_us")).trim(),
        "10000"
    );
    if huge {
        assert_eq!(
            read(format!("/sys/fs/cgroup/unified{cg}/hugetlb.2MB.max")).trim(),
            "4194304"
        );
    }
    expect_code(&rt.run(&["delete", "--force", "more"]), 0, "delete");
    for h in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}{cg}"));
    }
}
