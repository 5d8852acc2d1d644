//! Pods through the real binary, as root: members sharing localhost, the
//! hostname and SysV IPC; ports published on the pod reaching a member;
//! `pod rm` leaving no mount, namespace file, veth, lease or rule; the
//! lifecycle verbs; bad input as one-line errors; podman's words and exit
//! codes where podman is installed.
//!
//! Each test has its own store (so its own default bridge and subnet) and
//! host ports asked of the kernel, so they run in parallel.

#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, free_port, http_get, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

fn berth() -> Berth {
    Berth::with_busybox(BIN, &[])
}

/// A unique name for this test's objects.
fn unique(what: &str) -> String {
    format!("{what}-{}", std::process::id())
}

/// A detached busybox httpd in the pod, serving `body` on `addr` (an
/// address:port or port, as busybox httpd's -p takes it).
fn httpd_in(b: &Berth, pod: &str, addr: &str, body: &str) -> String {
    let script = format!(
        "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {addr} -h /www"
    );
    b.ok(&["run", "-d", "--pod", pod, "busybox", "sh", "-c", &script])
        .trim()
        .to_string()
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

fn links() -> String {
    let o = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn members_share_localhost_hostname_and_sysv_ipc() {
    if !berth_testkit::root_or_skip("members_share_localhost_hostname_and_sysv_ipc") {
        return;
    }
    let b = berth();
    let tools = tempfile::tempdir().unwrap();
    berth_testkit::build_helper("sysv-shm", &tools.path().join("sysv-shm"));
    let bind = format!("{}:/tools:ro", tools.path().display());
    let pod = unique("share");
    b.ok(&["pod", "create", "--name", &pod, "--hostname", "podhost"]);
    // Listening on loopback only: reachable from the pod's members alone.
    httpd_in(&b, &pod, "127.0.0.1:8080", "from-the-other-member");
    let script = "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1";
    let got = b.ok(&["run", "--rm", "--pod", &pod, "busybox", "sh", "-c", script]);
    assert_eq!(got.trim(), "from-the-other-member");
    // A container outside the pod has a loopback of its own.
    let outside = b.run(&[
        "run",
        "--rm",
        "busybox",
        "wget",
        "-qO-",
        "-T",
        "2",
        "http://127.0.0.1:8080/",
    ]);
    assert_ne!(
        outside.status.code(),
        Some(0),
        "reached the pod's loopback from outside"
    );

    let host = b.ok(&["run", "--rm", "--pod", &pod, "busybox", "hostname"]);
    assert_eq!(host.trim(), "podhost");

    // A segment made by one member (which then exits) is there for the next.
    b.ok(&[
        "run",
        "--rm",
        "--pod",
        &pod,
        "-v",
        &bind,
        "busybox",
        "/tools/sysv-shm",
        "put",
        "4242",
        "shared-segment",
    ]);
    let seen = b.ok(&[
        "run",
        "--rm",
        "--pod",
        &pod,
        "-v",
        &bind,
        "busybox",
        "/tools/sysv-shm",
        "get",
        "4242",
    ]);
    assert_eq!(seen.trim(), "shared-segment");
    let other = b.run(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "/tools/sysv-shm",
        "get",
        "4242",
    ]);
    expect_code(
        &other,
        2,
        "a container outside the pod reads the pod's segment",
    );

    // The members' hosts file names the pod and its members.
    let hosts = b.ok(&[
        "run",
        "--rm",
        "--pod",
        &pod,
        "--name",
        &unique("lister"),
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts.contains(&pod) && hosts.contains(&unique("lister")),
        "{hosts}"
    );
}

#[test]
fn ports_published_on_the_pod_reach_a_member() {
    if !berth_testkit::root_or_skip("ports_published_on_the_pod_reach_a_member") {
        return;
    }
    let b = berth();
    let port = free_port();
    let pod = unique("ports");
    b.ok(&["pod", "create", "--name", &pod, "-p", &format!("{port}:80")]);
    httpd_in(&b, &pod, "80", "published-on-the-pod");
    let answer = http_get(&format!("127.0.0.1:{port}"), "/").unwrap();
    assert!(answer.contains("published-on-the-pod"), "{answer}");
    let inspect: serde_json::Value =
        serde_json::from_str(&b.ok(&["pod", "inspect", &pod])).unwrap();
    assert_eq!(
        inspect["InfraConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        port.to_string()
    );
    // A member shows the pod's ports as its own, as podman's do: in
    // `port`, `ps` and inspect.
    let member = httpd_in(&b, &pod, "8080", "second");
    assert_eq!(
        b.ok(&["port", &member]).trim(),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    assert_eq!(
        b.ok(&["port", &member, "80"]).trim(),
        format!("0.0.0.0:{port}")
    );
    let ps = b.ok(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Ports}}"]);
    assert!(
        ps.lines()
            .any(|l| l == format!("{member} 0.0.0.0:{port}->80/tcp")),
        "{ps}"
    );
    assert_eq!(
        b.inspect(&member, "{{json .NetworkSettings.Ports}}"),
        format!(r#"{{"80/tcp":[{{"HostIp":"0.0.0.0","HostPort":"{port}"}}]}}"#)
    );
    // A container outside the pod has none of them.
    b.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{pod}-out"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(b.ok(&["port", &format!("{pod}-out")]).trim(), "");
    // A member may not publish ports of its own: they are the pod's.
    let o = b.run(&["run", "--rm", "--pod", &pod, "-p", "81", "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("must be defined when the pod is created"),
        "{}",
        stderr(&o)
    );
}

/// /dev/shm/note as `exec NAME cat` reads it, once it is there (10 s at
/// most).
fn read_note(b: &Berth, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = b.run(&["exec", name, "cat", "/dev/shm/note"]);
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{name} never saw /dev/shm/note: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Members sharing the pod's IPC namespace share its /dev/shm too (POSIX
/// shared memory is files there; podman mounts its infra's into every
/// member): what one writes the other reads, a container outside the pod
/// and a member of a pod that does not share IPC do not see it; its size
/// is the pod's `--shm-size`.
#[test]
fn members_share_one_dev_shm() {
    if !berth_testkit::root_or_skip("members_share_one_dev_shm") {
        return;
    }
    let b = berth();
    let pod = unique("shm");
    let id = b.ok(&["pod", "create", "--name", &pod]).trim().to_string();
    b.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{pod}-a"),
        "--pod",
        &pod,
        "busybox",
        "sh",
        "-c",
        "echo from-a > /dev/shm/note; exec sleep 60",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{pod}-b"),
        "--pod",
        &pod,
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(read_note(&b, &format!("{pod}-b")), "from-a");
    // The mount is a tmpfs with the options of a container's own.
    let mounts = b.ok(&[
        "exec",
        &format!("{pod}-b"),
        "grep",
        " /dev/shm ",
        "/proc/self/mounts",
    ]);
    assert!(
        mounts.starts_with("shm /dev/shm tmpfs rw,nosuid,nodev,noexec"),
        "{mounts}"
    );
    let o = b.run(&["run", "--rm", "busybox", "cat", "/dev/shm/note"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "a container outside the pod sees it"
    );
    let apart = unique("shm-apart");
    b.ok(&["pod", "create", "--name", &apart, "--share", "net,uts"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{apart}-a"),
        "--pod",
        &apart,
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/shm/note; exec sleep 60",
    ]);
    // Written (its own /dev/shm has it) before the other looks.
    assert_eq!(read_note(&b, &format!("{apart}-a")), "x");
    let o = b.run(&[
        "run",
        "--rm",
        "--pod",
        &apart,
        "busybox",
        "cat",
        "/dev/shm/note",
    ]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "a pod not sharing IPC shares /dev/shm"
    );
    // --shm-size as podman's, a bad one a one-line error.
    let sized = unique("shm-sized");
    b.ok(&["pod", "create", "--name", &sized, "--shm-size", "10m"]);
    let mounts = b.ok(&[
        "run",
        "--rm",
        "--pod",
        &sized,
        "busybox",
        "grep",
        " /dev/shm ",
        "/proc/self/mounts",
    ]);
    assert!(mounts.contains("size=10240k"), "{mounts}");
    let o = b.run(&["pod", "create", "--shm-size", "lots"]);
    expect_code(&o, 125, "pod create --shm-size lots");
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("--shm-size"), "{}", stderr(&o));
    // Gone with the pod.
    b.ok(&["pod", "rm", "-f", &pod]);
    assert!(
        !mountinfo().contains(&id),
        "the pod's /dev/shm is still mounted"
    );
}

#[test]
fn pod_rm_leaves_no_mount_namespace_file_veth_rule_or_lease() {
    if !berth_testkit::root_or_skip("pod_rm_leaves_no_mount_namespace_file_veth_rule_or_lease") {
        return;
    }
    let b = berth();
    let port = free_port();
    let pod = unique("rm");
    let id = b
        .ok(&["pod", "create", "--name", &pod, "-p", &format!("{port}:80")])
        .trim()
        .to_string();
    let dir = Path::new("/run/berth/pods").join(&id);
    let veth = format!("vb{}0", &id[..10]);
    assert!(
        mountinfo().contains(&id),
        "the pod's namespaces are not mounted"
    );
    assert!(links().contains(&veth), "the pod has no veth");
    httpd_in(&b, &pod, "80", "x");
    b.ok(&["run", "-d", "--pod", &pod, "busybox", "sleep", "60"]);
    http_get(&format!("127.0.0.1:{port}"), "/").unwrap();

    let o = b.run(&["pod", "rm", &pod]);
    expect_code(&o, 125, "pod rm of a pod with running containers");
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));

    assert_eq!(b.ok(&["pod", "rm", "-f", &pod]).trim(), id);
    assert!(
        !mountinfo().contains(&id),
        "a namespace file is still mounted"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    let deadline = Instant::now() + Duration::from_secs(5);
    while links().contains(&veth) {
        assert!(Instant::now() < deadline, "veth {veth} is left");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        b.ok(&["ps", "-aq"]).trim(),
        "",
        "the pod's containers are left"
    );
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    let o = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&format!(" {port} ")),
        "a rule for port {port} is left"
    );
    let check = b.ok(&["system", "check"]);
    assert!(check.contains("network leftovers removed: 0"), "{check}");
    // The pod's lease went: the next container gets the first address.
    let next = b
        .ok(&["run", "-d", "busybox", "sleep", "30"])
        .trim()
        .to_string();
    let ip = b.inspect(&next, "{{.NetworkSettings.IPAddress}}");
    assert!(
        ip.ends_with(".0.2"),
        "the pod's lease is still held: the next address is {ip}"
    );
}

#[test]
fn stop_start_restart_kill_and_status() {
    if !berth_testkit::root_or_skip("stop_start_restart_kill_and_status") {
        return;
    }
    let b = berth();
    let pod = unique("life");
    b.ok(&["pod", "create", "--name", &pod, "--label", "tier=test"]);
    let status = || {
        b.ok(&[
            "pod",
            "ps",
            "--filter",
            &format!("name={pod}"),
            "--format",
            "{{.Status}} {{.NumberOfContainers}}",
        ])
        .trim()
        .to_string()
    };
    assert_eq!(status(), "Created 0");
    let a = b
        .ok(&["run", "-d", "--pod", &pod, "busybox", "sleep", "60"])
        .trim()
        .to_string();
    b.ok(&["create", "--pod", &pod, "busybox", "sleep", "60"]);
    assert_eq!(status(), "Degraded 2");
    b.ok(&["pod", "start", &pod]);
    assert_eq!(status(), "Running 2");
    let top = b.ok(&["pod", "top", &pod]);
    assert_eq!(
        top.lines().filter(|l| l.contains("sleep 60")).count(),
        2,
        "{top}"
    );
    b.ok(&["pod", "stop", "-t", "1", &pod]);
    assert_eq!(status(), "Exited 2");
    b.ok(&["pod", "restart", &pod]);
    assert_eq!(status(), "Running 2");
    b.ok(&["pod", "kill", &pod]);
    // A kill does not wait for the exits (as podman's): they are recorded
    // by the members' monitors.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status() != "Exited 2" {
        assert!(Instant::now() < deadline, "after pod kill: {}", status());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.inspect(&a, "{{.State.Running}}"), "false");
    assert_eq!(
        b.ok(&[
            "pod",
            "ps",
            "--filter",
            "label=tier=test",
            "--format",
            "{{.Name}}"
        ])
        .trim(),
        pod
    );
    b.ok(&[
        "run",
        "--pod",
        &pod,
        "busybox",
        "sh",
        "-c",
        "echo logged-line",
    ]);
    let logs = b.ok(&["pod", "logs", &pod]);
    assert!(logs.lines().any(|l| l.ends_with(" logged-line")), "{logs}");
    let pruned = b.ok(&["pod", "prune", "-f"]);
    assert_eq!(pruned.lines().count(), 1, "{pruned}");
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
}

#[test]
fn bad_input_is_one_line_and_a_code() {
    if !berth_testkit::root_or_skip("bad_input_is_one_line_and_a_code") {
        return;
    }
    let b = berth();
    let pod = unique("bad");
    b.ok(&["pod", "create", "--name", &pod]);
    for (args, code, words) in [
        (vec!["pod", "create", "--name", &pod], 125, "already exists"),
        (
            vec!["pod", "create", "--share", "pid,net"],
            125,
            "--share pid",
        ),
        (
            vec!["pod", "create", "--share", "mnt"],
            125,
            "unknown namespace",
        ),
        (
            vec!["pod", "create", "--share", "ipc", "-p", "80"],
            125,
            "share its network",
        ),
        (
            vec!["pod", "create", "--network", "no-such-net"],
            125,
            "no-such-net",
        ),
        (
            vec!["pod", "rm", "no-such-pod"],
            1,
            "no pod with name or ID no-such-pod found",
        ),
        (vec!["pod", "start", "no-such-pod"], 125, "no such pod"),
        (vec!["pod", "inspect", "no-such-pod"], 125, "no such pod"),
        (
            vec!["run", "--rm", "--pod", "no-such-pod", "busybox", "true"],
            125,
            "no such pod",
        ),
        (
            vec![
                "run",
                "--rm",
                "--pod",
                &pod,
                "--hostname",
                "x",
                "busybox",
                "true",
            ],
            125,
            "hostname",
        ),
    ] {
        let o = b.run(&args);
        expect_code(&o, code, &args.join(" "));
        let err = stderr(&o);
        assert!(err.contains(words), "{}: {err}", args.join(" "));
        assert_eq!(
            berth_testkit::error_lines(&err),
            1,
            "{}: {err}",
            args.join(" ")
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // -f: a missing pod is no error.
    expect_code(
        &b.run(&["pod", "rm", "-f", "no-such-pod"]),
        0,
        "pod rm -f of a missing pod",
    );
}

#[test]
fn namespaces_lost_with_the_run_directory_are_made_again_at_start() {
    if !berth_testkit::root_or_skip(
        "namespaces_lost_with_the_run_directory_are_made_again_at_start",
    ) {
        return;
    }
    let b = berth();
    let port = free_port();
    let pod = unique("reboot");
    let id = b
        .ok(&[
            "pod",
            "create",
            "--name",
            &pod,
            "--hostname",
            "again",
            "-p",
            &format!("{port}:80"),
        ])
        .trim()
        .to_string();
    httpd_in(&b, &pod, "80", "after-a-reboot");
    http_get(&format!("127.0.0.1:{port}"), "/").unwrap();
    b.ok(&["pod", "stop", "-t", "0", &pod]);
    // What a reboot does to the run directory (a tmpfs): the files and
    // their namespaces gone, the veth and the pod's /dev/shm with them
    // (and the pod's user namespace, when it has one of its own).
    let dir = Path::new("/run/berth/pods").join(&id);
    for ns in ["net", "ipc", "uts", "shm", "user"] {
        if ns == "user" && !dir.join(ns).exists() {
            continue;
        }
        let st = Command::new("umount").arg(dir.join(ns)).status().unwrap();
        assert!(st.success(), "umount {ns}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    b.ok(&["pod", "start", &pod]);
    let answer = http_get(&format!("127.0.0.1:{port}"), "/").unwrap();
    assert!(answer.contains("after-a-reboot"), "{answer}");
    let host = b.ok(&["run", "--rm", "--pod", &pod, "busybox", "hostname"]);
    assert_eq!(host.trim(), "again");
    assert!(mountinfo().contains(&id));
}

#[test]
fn system_check_releases_what_a_killed_pod_rm_left() {
    if !berth_testkit::root_or_skip("system_check_releases_what_a_killed_pod_rm_left") {
        return;
    }
    let b = berth();
    let pod = unique("killed");
    let id = b.ok(&["pod", "create", "--name", &pod]).trim().to_string();
    let veth = format!("vb{}0", &id[..10]);
    // A pod rm killed after the row went: its namespaces and endpoint
    // are what is left.
    let db = rusqlite::Connection::open(b.path().join("berth.db")).unwrap();
    db.execute("DELETE FROM pods WHERE id = ?1", [&id]).unwrap();
    drop(db);
    // Another store's pod in the same run directory is not touched.
    let other = berth();
    let other_pod = other
        .ok(&["pod", "create", "--name", &unique("other")])
        .trim()
        .to_string();

    let check = b.ok(&["system", "check"]);
    assert!(
        check.contains(&format!("released the namespaces of removed pod {id}")),
        "{check}"
    );
    assert!(
        !mountinfo().contains(&id),
        "the namespaces are still mounted"
    );
    assert!(!links().contains(&veth), "veth {veth} is left");
    assert!(
        mountinfo().contains(&other_pod),
        "system check took another store's pod"
    );
    let again = b.ok(&["system", "check"]);
    assert!(again.contains("network leftovers removed: 0"), "{again}");
}

/// The same commands of podman and berth on pods that do not exist, or
/// names taken: the same exit codes and error lines.
#[test]
fn missing_pods_and_taken_names_in_podman_s_words() {
    if !berth_testkit::snippet::installed("podman") {
        assert!(
            std::env::var_os("CI").is_none(),
            "podman is missing (install-deps.sh)"
        );
        eprintln!("skipped missing_pods_and_taken_names_in_podman_s_words: podman not installed");
        return;
    }
    if !berth_testkit::root_or_skip("missing_pods_and_taken_names_in_podman_s_words") {
        return;
    }
    let b = berth();
    let env = tempfile::tempdir().unwrap();
    let taken = unique("taken");
    b.ok(&["pod", "create", "--infra=false", "--name", &taken]);
    let script = format!(
        "source {}/podman-env.sh {} >/dev/null || exit 99; podman pod create --infra=false --name {taken} >/dev/null",
        berth_testkit::snippet::tests_dir().display(),
        env.path().display()
    );
    let setup = berth_testkit::snippet::capture(
        {
            let mut c = berth_testkit::snippet::bash();
            c.arg(&script);
            c
        },
        &script,
    );
    assert_eq!(setup.code(), 0, "{setup}");
    for args in [
        vec!["pod", "start", "nope"],
        vec!["pod", "stop", "nope"],
        vec!["pod", "restart", "nope"],
        vec!["pod", "kill", "nope"],
        vec!["pod", "rm", "nope"],
        vec!["pod", "rm", "-f", "nope"],
        vec!["pod", "inspect", "nope"],
        vec!["pod", "top", "nope"],
        vec!["pod", "create", "--infra=false", "--name", &taken],
    ] {
        let line = args.join(" ");
        let script = format!(
            "source {}/podman-env.sh {} >/dev/null || exit 99; podman {line}",
            berth_testkit::snippet::tests_dir().display(),
            env.path().display()
        );
        let podman = berth_testkit::snippet::capture(
            {
                let mut c = berth_testkit::snippet::bash();
                c.arg(&script);
                c
            },
            &script,
        );
        let ours = b.run(&args);
        assert_eq!(ours.status.code(), podman.code, "{line}: {podman}");
        assert_eq!(stderr(&ours).trim(), podman.stderr.trim(), "{line}");
    }
    let cleanup = format!(
        "source {}/podman-env.sh {} >/dev/null && podman pod rm -f {taken} >/dev/null; podman_env_cleanup",
        berth_testkit::snippet::tests_dir().display(),
        env.path().display()
    );
    let mut c = berth_testkit::snippet::bash();
    c.arg(&cleanup);
    berth_testkit::snippet::capture(c, &cleanup);
}

#[test]
fn a_pod_on_a_user_network_is_found_by_name_and_holds_the_network() {
    if !berth_testkit::root_or_skip(
        "a_pod_on_a_user_network_is_found_by_name_and_holds_the_network",
    ) {
        return;
    }
    let b = berth();
    let net = unique("podnet");
    let base = std::process::id() % 200;
    let mut made = false;
    for i in 0..50 {
        let subnet = format!("10.197.{}.0/24", (base + i * 7) % 250);
        if b.run(&["network", "create", "--subnet", &subnet, &net])
            .status
            .success()
        {
            made = true;
            break;
        }
    }
    assert!(made, "no free subnet for the test's network");
    let pod = unique("named");
    b.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--network",
        &net,
        "--network-alias",
        "podalias",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&b.ok(&["pod", "inspect", &pod])).unwrap();
    let ip = inspect["InfraConfig"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // A container outside the pod, on the same network, finds the pod by
    // its name and alias: over the network's resolver (busybox's nslookup
    // asks DNS only; its wget would go through static glibc's NSS) and in
    // its hosts file.
    for name in [pod.as_str(), "podalias"] {
        let got = b.ok(&[
            "run",
            "--rm",
            "--network",
            &net,
            "busybox",
            "nslookup",
            name,
        ]);
        assert!(got.contains(&format!("Address: {ip}")), "{name}: {got}");
    }
    let hosts = b.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&ip) && l.contains(&pod) && l.contains("podalias")),
        "{hosts}"
    );
    let o = b.run(&["network", "rm", &net]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "network rm took the pod's network"
    );
    assert!(stderr(&o).contains(&pod), "{}", stderr(&o));
    b.ok(&["pod", "rm", "-f", &pod]);
    b.ok(&["network", "rm", &net]);
}
