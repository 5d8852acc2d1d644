//! A user namespace of its own for every container, as root (issue 18):
//! the container's root seen from the host, files written through idmapped
//! volumes and binds, the pool of id ranges, and what the container's root
//! can no longer do that the host's root could. Each attack is run once
//! with `--userns=host` too, where it must succeed: a probe that cannot
//! tell the two apart proves nothing.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::os::unix::fs::MetadataExt;

use berth_testkit::{expect_code, host_uids, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// A store with busybox, whose containers get the default user namespace
/// whatever the host's configuration says; None (after saying so) when
/// the test cannot run here.
fn store(test: &str) -> Option<Berth> {
    if !berth_testkit::root_or_skip(test) {
        return None;
    }
    // Idmapped overlay layers go to the kernel as descriptors (6.13).
    let release = nix::sys::utsname::uname().unwrap();
    let release = release.release().to_string_lossy().into_owned();
    let v: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    if (v[0], v[1]) < (6, 13) {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: needs Linux 6.13, and CI is set"
        );
        eprintln!("skipped {test}: needs Linux 6.13 (this is {release})");
        return None;
    }
    let b = Berth::empty(BIN).env("BERTH_USERNS", "private");
    b.import_busybox("busybox", &[]);
    Some(b)
}

/// The first line of `/proc/PID/uid_map`: inside, outside, count.
fn uid_map(pid: &str) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let f: Vec<u64> = text
        .split_whitespace()
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    (f[0], f[1], f[2])
}

fn mountpoint(b: &Berth, volume: &str) -> String {
    b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume])
        .trim()
        .to_string()
}

fn pid_of(b: &Berth, name: &str) -> String {
    b.inspect(name, "{{.State.Pid}}")
}

#[test]
fn container_root_runs_as_an_unprivileged_host_uid() {
    let Some(b) = store("container_root_runs_as_an_unprivileged_host_uid") else {
        return;
    };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ur-private",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ur-host",
        "--network",
        "none",
        "--userns=host",
        "busybox",
        "sleep",
        "60",
    ]);
    // Root inside, as the container sees itself.
    assert_eq!(b.ok(&["exec", "ur-private", "id", "-u"]).trim(), "0");
    let private = host_uids(&pid_of(&b, "ur-private"));
    assert_eq!(private.len(), 4, "{private:?}");
    for uid in &private {
        assert!(
            *uid >= 65_536,
            "the container's root is host uid {uid}: {private:?}"
        );
    }
    let (inside, outside, count) = uid_map(&pid_of(&b, "ur-private"));
    assert_eq!((inside, count), (0, 65_536));
    assert_eq!(u64::from(private[0]), outside);
    // The opt-out is the host's root: the same probe sees 0 there.
    assert_eq!(host_uids(&pid_of(&b, "ur-host")), vec![0, 0, 0, 0]);
    b.ok(&["rm", "-f", "ur-private", "ur-host"]);
}

#[test]
fn files_written_through_volumes_and_binds_are_the_host_roots() {
    let Some(b) = store("files_written_through_volumes_and_binds_are_the_host_roots") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("bind");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "h").unwrap();
    let bind = format!("{}:/bind", host.display());
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "uv-data:/data",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo v > /data/new && echo b > /bind/new && stat -c '%u:%g' /bind/from-host /data/new",
    ]);
    // The host's root-owned file is the container root's; its own file too.
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0:0", "0:0"]);
    let vol = mountpoint(&b, "uv-data");
    for f in [host.join("new"), std::path::Path::new(&vol).join("new")] {
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0), "{}", f.display());
    }
    // A volume filled from the image keeps the image's owners on disk (not
    // the container's shifted ones, which would be nobody inside).
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "uv-etc:/etc",
        "busybox",
        "stat",
        "-c",
        "%u",
        "/etc/passwd",
    ]);
    assert_eq!(out.trim(), "0");
    let etc = mountpoint(&b, "uv-etc");
    let m = std::fs::metadata(std::path::Path::new(&etc).join("passwd")).unwrap();
    assert_eq!(m.uid(), 0);
}

#[test]
fn two_containers_get_disjoint_ranges_and_sharers_share() {
    let Some(b) = store("two_containers_get_disjoint_ranges_and_sharers_share") else {
        return;
    };
    for n in ["ud-a", "ud-b"] {
        b.ok(&[
            "run",
            "-d",
            "--name",
            n,
            "--network",
            "none",
            "busybox",
            "sleep",
            "60",
        ]);
    }
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ud-c",
        "--network",
        "container:ud-a",
        "busybox",
        "sleep",
        "60",
    ]);
    let (_, a, an) = uid_map(&pid_of(&b, "ud-a"));
    let (_, bb, bn) = uid_map(&pid_of(&b, "ud-b"));
    assert!(
        a + an <= bb || bb + bn <= a,
        "ranges overlap: {a}+{an} and {bb}+{bn}"
    );
    // A container joining another's namespaces is in its user namespace.
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/ns/user", pid_of(&b, "ud-c"))).unwrap(),
        std::fs::read_link(format!("/proc/{}/ns/user", pid_of(&b, "ud-a"))).unwrap()
    );
    // ud-a's range is not free while ud-c holds it: a new container gets
    // another one.
    b.ok(&["rm", "-f", "ud-a"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ud-d",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let (_, d, _) = uid_map(&pid_of(&b, "ud-d"));
    assert_ne!(d, a, "ud-c's range was given again while it runs");
    b.ok(&["rm", "-f", "ud-b", "ud-c", "ud-d"]);
}

fn ranges(b: &Berth) -> Vec<(String, i64, i64)> {
    let c = rusqlite::Connection::open(b.root.path().join("berth.db")).unwrap();
    let mut st = c
        .prepare("SELECT container_id, offset, size FROM userns_ranges ORDER BY container_id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_hundred_containers_leave_the_pool_as_it_was() {
    let Some(b) = store("a_hundred_containers_leave_the_pool_as_it_was") else {
        return;
    };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "up-keep",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let before = ranges(&b);
    assert_eq!(before.len(), 1, "{before:?}");
    for i in 0..100 {
        let o = b.run(&["run", "--rm", "--network", "none", "busybox", "true"]);
        expect_code(&o, 0, &format!("run --rm #{i}"));
    }
    // Removed by `rm` (not `--rm`) and by `rm -f` of a running one too.
    b.ok(&["create", "--name", "up-c", "busybox", "true"]);
    b.ok(&["rm", "up-c"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "up-r",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    b.ok(&["rm", "-f", "up-r"]);
    assert_eq!(ranges(&b), before);
    // A range whose container is gone (a hand-edited store; the trigger
    // frees them with the row) is freed by `system check`.
    let c = rusqlite::Connection::open(b.root.path().join("berth.db")).unwrap();
    c.execute(
        "INSERT INTO userns_ranges (container_id, offset, size) VALUES ('gone', 999999, 1)",
        [],
    )
    .unwrap();
    let out = b.ok(&["system", "check"]);
    assert!(
        out.contains("user namespace ids held for the gone container gone"),
        "{out}"
    );
    assert_eq!(ranges(&b), before);
    b.ok(&["rm", "-f", "up-keep"]);
    assert_eq!(ranges(&b), vec![]);
}

/// Runs `script` as the container's root with `caps` added, in the
/// container's own user namespace and in the host's: the attack must work
/// in the host's (so the probe is real) and fail in its own.
fn attack(b: &Berth, caps: &[&str], script: &str, worked: &str) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    for c in caps {
        args.extend_from_slice(&["--cap-add", c]);
    }
    for (userns, should_work) in [("--userns=host", true), ("--userns=auto", false)] {
        let mut a = args.clone();
        a.extend_from_slice(&[userns, "busybox", "sh", "-c", script]);
        let o = b.run(&a);
        let out = stdout(&o);
        assert_eq!(
            out.contains(worked),
            should_work,
            "{userns}: {script}\nstdout: {out}\nstderr: {}",
            stderr(&o)
        );
    }
}

#[test]
fn attack_mount_a_kernel_filesystem_with_cap_sys_admin() {
    let Some(b) = store("attack_mount_a_kernel_filesystem_with_cap_sys_admin") else {
        return;
    };
    // debugfs shows the host kernel's internals and no user namespace but
    // the host's may mount it.
    attack(
        &b,
        &["SYS_ADMIN"],
        "mkdir -p /mnt/d && mount -t debugfs debugfs /mnt/d && echo MOUNTED",
        "MOUNTED",
    );
}

#[test]
fn attack_write_a_host_wide_sysctl() {
    let Some(b) = store("attack_write_a_host_wide_sysctl") else {
        return;
    };
    // /proc/sys is read-only in the container; with CAP_SYS_ADMIN the
    // host's root remounts it and writes a host-wide sysctl (its own value
    // back here, so nothing changes on the host running the test).
    attack(
        &b,
        &["SYS_ADMIN"],
        "mount -o remount,rw /proc/sys 2>/dev/null; v=$(cat /proc/sys/vm/stat_interval) && \
         echo $v > /proc/sys/vm/stat_interval && echo WROTE",
        "WROTE",
    );
}

#[test]
fn what_needs_the_hosts_user_namespace_says_so() {
    let Some(b) = store("what_needs_the_hosts_user_namespace_says_so") else {
        return;
    };
    // Asked for explicitly, a namespace of its own refuses what cannot work
    // in it, and says what to do.
    for opt in [&["--device", "/dev/null:/dev/n"][..], &["--pid", "host"]] {
        let mut a = vec!["run", "--rm", "--userns=auto"];
        a.extend_from_slice(opt);
        a.extend_from_slice(&["busybox", "true"]);
        let o = b.run(&a);
        expect_code(&o, 125, &a.join(" "));
        let e = stderr(&o);
        assert!(
            e.contains("use --userns=host") && e.lines().count() <= 2,
            "{e}"
        );
    }
    // The default gives way to options that ask for the host's namespaces
    // or devices: their container is in the host's.
    for opt in [&["--device", "/dev/null:/dev/n"][..], &["--pid", "host"]] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(opt);
        a.extend_from_slice(&["busybox", "cat", "/proc/self/uid_map"]);
        let o = b.ok(&a);
        assert_eq!(o.split_whitespace().nth(1), Some("0"), "{opt:?}: {o}");
    }
    // A pod in the host's user namespace: its namespaces belong to the
    // host's, so a member is refused one of its own and by default is in
    // the host's.
    b.ok(&["pod", "create", "--userns=host", "--name", "userns-pod"]);
    let o = b.run(&[
        "run",
        "--rm",
        "--userns=auto",
        "--pod",
        "userns-pod",
        "busybox",
        "true",
    ]);
    expect_code(&o, 125, "run --userns=auto --pod");
    assert!(stderr(&o).contains("use --userns=host"), "{}", stderr(&o));
    let o = b.ok(&[
        "run",
        "--rm",
        "--pod",
        "userns-pod",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(o.split_whitespace().nth(1), Some("0"), "--pod: {o}");
    b.ok(&["pod", "rm", "-f", "userns-pod"]);
    let o = b.run(&["pod", "create", "--userns=bogus", "--name", "userns-bad"]);
    expect_code(&o, 125, "pod create --userns=bogus");
    for bad in ["--userns=bogus", "--userns=auto:size=x", "--userns=keep-id"] {
        let o = b.run(&["run", "--rm", bad, "busybox", "true"]);
        expect_code(&o, 125, bad);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn cp_and_export_keep_the_containers_own_owners() {
    let Some(b) = store("cp_and_export_keep_the_containers_own_owners") else {
        return;
    };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "uc",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo a > /f && chown 33:44 /f && sleep 60",
    ]);
    b.wait_for("uc", "{{.State.Running}}", "true");
    let dir = tempfile::tempdir().unwrap();
    // Out: the owner the container gave, not its shifted host id.
    let out = dir.path().join("f");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while b.run(&["exec", "uc", "stat", "-c", "%u", "/f"]).stdout != b"33\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "/f never got its owner"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = b.cmd().args(["cp", "uc:/f", "-"]).output().unwrap();
    assert!(o.status.success());
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (e.header().uid().unwrap(), e.header().gid().unwrap()),
        (33, 44)
    );
    // Onto the host: ours, -a or not, as docker's client writes files.
    b.ok(&["cp", "-a", "uc:/f", out.to_str().unwrap()]);
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    // In: written as the container's root (the host's root cannot be
    // represented through its idmapped mounts), with the archive's owner.
    std::os::unix::fs::chown(&out, Some(55), Some(66)).unwrap();
    b.ok(&["cp", "-a", out.to_str().unwrap(), "uc:/g"]);
    assert_eq!(
        b.ok(&["exec", "uc", "stat", "-c", "%u:%g", "/g"]).trim(),
        "55:66"
    );
    let o = b.cmd().args(["export", "uc"]).output().unwrap();
    assert!(o.status.success());
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let f = ar
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().as_os_str() == "f")
        .expect("f in the export");
    let h = f.header();
    assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (33, 44));
    b.ok(&["rm", "-f", "uc"]);
}

/// A process in the container's own user namespace reopens its stdout and
/// stderr (`/dev/stdout`, where nginx's image sends its logs): the pipes
/// are given to its user, not left the host root's (unmapped there, so
/// "Permission denied"). For run and for exec.
#[test]
fn its_own_stdout_can_be_reopened() {
    let Some(b) = store("its_own_stdout_can_be_reopened") else {
        return;
    };
    let script = "echo out > /dev/stdout && echo err > /dev/stderr";
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    expect_code(&o, 0, "run");
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("out\n", "err\n")
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "so",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let o = b.run(&["exec", "-u", "nobody", "so", "sh", "-c", script]);
    expect_code(&o, 0, "exec -u nobody");
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("out\n", "err\n")
    );
    b.ok(&["rm", "-f", "so"]);
}

/// The inode of namespace `ns` of process `pid`, as /proc names it.
fn ns_of(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A pod owns one user namespace (podman's `pod create --userns=auto`):
/// its members run in it, as an unprivileged host uid, and share the pod's
/// network, IPC and UTS namespaces, which that user namespace owns (a
/// member could not join namespaces of the host's). A member in the
/// host's user namespace joins the same network namespace. The pod's
/// range is held while the pod is, and freed with it.
#[test]
fn a_pod_has_one_user_namespace_its_members_share() {
    let Some(b) = store("a_pod_has_one_user_namespace_its_members_share") else {
        return;
    };
    b.ok(&["pod", "create", "--name", "upod"]);
    for m in ["upod-a", "upod-b"] {
        b.ok(&[
            "run", "-d", "--name", m, "--pod", "upod", "busybox", "sleep", "60",
        ]);
    }
    b.ok(&[
        "run",
        "-d",
        "--name",
        "upod-h",
        "--pod",
        "upod",
        "--userns=host",
        "busybox",
        "sleep",
        "60",
    ]);
    let (a, m, h) = (
        pid_of(&b, "upod-a"),
        pid_of(&b, "upod-b"),
        pid_of(&b, "upod-h"),
    );
    let host_user = ns_of("self", "user");
    assert_ne!(ns_of(&a, "user"), host_user, "upod-a is in the host's");
    for ns in ["user", "net", "ipc", "uts"] {
        assert_eq!(ns_of(&a, ns), ns_of(&m, ns), "{ns} of the two members");
    }
    assert_eq!(ns_of(&h, "net"), ns_of(&a, "net"), "the host-userns member");
    assert_eq!(ns_of(&h, "user"), host_user);
    let (inside, outside, count) = uid_map(&a);
    assert_eq!((inside, count), (0, 65_536));
    assert!(outside >= 65_536, "the pod's root is host uid {outside}");
    assert_eq!(u64::from(host_uids(&a)[0]), outside);
    // The pod's hostname and network, set up inside its namespaces.
    assert_eq!(b.ok(&["exec", "upod-a", "hostname"]).trim(), "upod");
    let addr = b.ok(&["exec", "upod-b", "ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("inet "), "no address on eth0: {addr}");
    // One range, held under the pod's id and by each private member.
    let held = ranges(&b);
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(held.iter().all(|r| (r.1, r.2) == (held[0].1, held[0].2)));
    b.ok(&["pod", "rm", "-f", "upod"]);
    assert_eq!(ranges(&b), vec![]);
}

/// `inspect` shows `HostConfig.UsernsMode` as docker does: "" for the
/// default (whatever namespace it gave), what `--userns` said otherwise.
#[test]
fn inspect_shows_the_userns_mode_as_asked() {
    let Some(b) = store("inspect_shows_the_userns_mode_as_asked") else {
        return;
    };
    for (flag, want) in [
        (None, ""),
        (Some("--userns=host"), "host"),
        (Some("--userns=auto:size=1000"), "auto:size=1000"),
    ] {
        let mut a = vec!["create"];
        a.extend(flag);
        a.push("busybox");
        let id = b.ok(&a);
        let got = b.inspect(id.trim(), "{{json .HostConfig.UsernsMode}}");
        assert_eq!(got, format!("{want:?}"), "{flag:?}");
        b.ok(&["rm", id.trim()]);
    }
}

/// With nothing said (no `--userns`, no BERTH_USERNS, no berth.conf
/// setting), a container's root is not the host's: the default is a
/// namespace of its own (issue 18), and `--privileged` still opts out.
#[test]
fn the_default_is_a_namespace_of_its_own() {
    let test = "the_default_is_a_namespace_of_its_own";
    let Some(b) = store(test) else { return };
    let conf = std::fs::read_to_string("/etc/berth/berth.conf").unwrap_or_default();
    if conf.lines().any(|l| l.trim_start().starts_with("userns")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: /etc/berth/berth.conf sets userns, and CI is set"
        );
        eprintln!("skipped {test}: /etc/berth/berth.conf sets userns");
        return;
    }
    let b = b.env_remove("BERTH_USERNS");
    let map = |extra: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "cat", "/proc/self/uid_map"]);
        let o = b.ok(&a);
        o.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_ne!(map(&[]), "0", "the default container's root is the host's");
    assert_eq!(map(&["--privileged"]), "0");
}

/// With the host's setting asking for it (BERTH_USERNS=private here), a
/// build's RUN step runs in a user namespace of its own too (without it,
/// in the host's, as Docker's builder: a Dockerfile may mknod device
/// nodes into its image): its root is an unprivileged host id, yet
/// the layer it makes keeps the owners the step gave (not shifted host
/// ids), and the step's range is given back when it ends.
#[test]
fn a_build_run_step_has_a_namespace_of_its_own() {
    let Some(b) = store("a_build_run_step_has_a_namespace_of_its_own") else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN cat /proc/self/uid_map > /map && echo x > /owned && chown 33:44 /owned\n",
    )
    .unwrap();
    b.ok(&["build", "-t", "ub-img", ctx.path().to_str().unwrap()]);
    let o = b.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "--network",
        "none",
        "ub-img",
        "sh",
        "-c",
        "cat /map; stat -c %u:%g /owned",
    ]);
    let mut lines = o.lines();
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!((map[0], map[2]), ("0", "65536"), "{o}");
    assert!(
        map[1].parse::<u64>().unwrap() >= 65_536,
        "the step's root was host uid {}",
        map[1]
    );
    assert_eq!(lines.next(), Some("33:44"), "{o}");
    assert_eq!(ranges(&b), vec![]);
}

/// A foreground `run` of a container with a user namespace of its own
/// starts from berth's binary as installed (its namespace keeps the binary
/// out of reach); the options that make the default the host's namespace
/// (a device, the host's pid or ipc namespace, an OOM score, --privileged,
/// --userns=host) must still re-execute from a protected view first, or
/// the runtime refuses the start. Each must run.
#[test]
fn foreground_runs_in_the_hosts_namespace_by_their_options_still_start() {
    let Some(b) = store("foreground_runs_in_the_hosts_namespace_by_their_options_still_start")
    else {
        return;
    };
    for flags in [
        &[][..],
        &["--device", "/dev/null:/dev/mynull"],
        &["--pid", "host"],
        &["--ipc", "host"],
        &["--oom-score-adj", "10"],
        &["--privileged"],
        &["--userns=host"],
    ] {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let o = b.run(&args);
        expect_code(&o, 0, &format!("run {flags:?}"));
    }
}
