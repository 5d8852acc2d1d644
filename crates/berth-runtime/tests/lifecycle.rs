//! The lifecycle through the real binary, as a client such as containerd
//! drives it: create → state → start → kill → delete, and `run`.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::time::{Duration, Instant};

use berth_testkit::{expect_code, output_via_files, stderr, stdout, Bundle, Runtime};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn state(rt: &Runtime, id: &str) -> Value {
    let o = rt.run(&["state", id]);
    expect_code(&o, 0, "state");
    serde_json::from_slice(&o.stdout).expect("state is JSON")
}

fn wait_status(rt: &Runtime, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = rt.run(&["state", id]);
        let s: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if s["status"] == want {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} never became {want}: {s} {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_kill_delete() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.05; done",
    ]);
    b.write();
    let pid_file = b.path().join("init.pid");
    let o = rt.run(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    expect_code(&o, 0, "create");
    let s = state(&rt, "c1");
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["ociVersion"], "1.2.0");
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(s["pid"], pid, "{s}");
    assert_eq!(
        s["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );

    expect_code(&rt.run(&["start", "c1"]), 0, "start");
    wait_status(&rt, "c1", "running");
    let o = rt.run(&["start", "c1"]);
    expect_code(&o, 1, "second start");
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));

    let o = rt.run(&["delete", "c1"]);
    expect_code(&o, 1, "delete of a running container");
    assert!(stderr(&o).contains("not stopped"), "{}", stderr(&o));

    let list = stdout(&rt.run(&["list"]));
    assert!(list.starts_with("ID"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("c1 ") && l.contains("running")),
        "{list}"
    );
    let json: Value =
        serde_json::from_slice(&rt.run(&["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(json[0]["id"], "c1");
    assert_eq!(stdout(&rt.run(&["list", "-q"])).trim(), "c1");

    expect_code(&rt.run(&["kill", "c1", "TERM"]), 0, "kill");
    let s = wait_status(&rt, "c1", "stopped");
    assert_eq!(s["pid"], 0);
    let o = rt.run(&["kill", "c1", "KILL"]);
    expect_code(&o, 1, "kill of a stopped container");
    assert!(
        stderr(&o).contains("container not running"),
        "{}",
        stderr(&o)
    );

    expect_code(&rt.run(&["delete", "c1"]), 0, "delete");
    let o = rt.run(&["state", "c1"]);
    expect_code(&o, 1, "state after delete");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(rt.ids().is_empty());
}

#[test]
fn run_returns_the_exit_code_and_cleans_up() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&["sh", "-c", "echo out; echo err >&2; exit 42"]);
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), "r1"]);
    expect_code(&o, 42, "run");
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert!(rt.ids().is_empty(), "run leaves no state: {:?}", rt.ids());
}

#[test]
fn killed_by_signal_reports_128_plus_signal() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&["sleep", "1000"]);
    b.write();
    // A foreground `run`, killed from outside: pid 1 of a pid namespace
    // cannot be SIGKILLed from inside it.
    let mut child = rt
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), "sig"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_status(&rt, "sig", "running");
    expect_code(&rt.run(&["kill", "sig", "KILL"]), 0, "kill");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137), "{status:?}");
}

#[test]
fn run_detached_then_delete_force() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&["sleep", "1000"]);
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "d1"]),
        0,
        "run -d",
    );
    let s = wait_status(&rt, "d1", "running");
    let pid = s["pid"].as_i64().unwrap();
    expect_code(&rt.run(&["delete", "--force", "d1"]), 0, "delete --force");
    assert!(rt.ids().is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        if stat.contains(") Z ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "container process {pid} survived delete --force"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A forced delete of what is not there succeeds, as runc's does.
    expect_code(
        &rt.run(&["delete", "--force", "d1"]),
        0,
        "delete --force of nothing",
    );
}

#[test]
fn kill_all_reaches_every_process() {
    let rt = Runtime::new(BIN);
    // The init ignores TERM; its child does not.
    let b = Bundle::shared(&["sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"]);
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "k1"]),
        0,
        "run -d",
    );
    let s = wait_status(&rt, "k1", "running");
    let init = s["pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    let child: i64 = children
        .split_whitespace()
        .next()
        .expect("a child")
        .parse()
        .unwrap();
    expect_code(
        &rt.run(&["kill", "--all", "k1", "SIGUSR1"]),
        0,
        "kill --all",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "child {child} survived kill --all"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_runs_in_the_container() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sleep", "1000"]);
    b.config["hostname"] = "exec-host".into();
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "e1"]),
        0,
        "run -d",
    );
    let o = rt.run(&[
        "exec",
        "--env",
        "X=from-exec",
        "e1",
        "sh",
        "-c",
        "echo $X $(hostname) $$; ls /proc | grep -c '^[0-9]'; exit 3",
    ]);
    expect_code(&o, 3, "exec");
    let out = stdout(&o);
    assert!(out.starts_with("from-exec exec-host "), "{out}");

    // --process with a process.json, detached, with a pid file: the pid
    // named is the process of the json, alive, in the container's pid and
    // mount namespaces, with the json's cwd and environment.
    let p = b.path().join("p.json");
    std::fs::write(
        &p,
        serde_json::json!({"cwd": "/proc", "args": ["sleep", "31"],
                            "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin", "MARK=detached-exec"]})
        .to_string(),
    )
    .unwrap();
    let pidf = b.path().join("exec.pid");
    let o = rt.run(&[
        "exec",
        "--process",
        p.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pidf.to_str().unwrap(),
        "e1",
    ]);
    expect_code(&o, 0, "exec --process --detach");
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&stdout(&rt.run(&["state", "e1"]))).unwrap();
    let init = state["pid"].as_i64().unwrap();
    let proc = |pid: i64, what: &str| std::fs::read(format!("/proc/{pid}/{what}")).unwrap();
    let link = |pid: i64, what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).unwrap();
    let pid = i64::from(pid);
    assert_eq!(
        proc(pid, "cmdline"),
        b"sleep\x0031\x00",
        "the json's process"
    );
    assert_eq!(
        link(pid, "ns/pid"),
        link(init, "ns/pid"),
        "the container's pid ns"
    );
    assert_eq!(
        link(pid, "ns/mnt"),
        link(init, "ns/mnt"),
        "the container's mount ns"
    );
    assert_eq!(
        link(pid, "cwd"),
        std::path::PathBuf::from("/proc"),
        "the json's cwd"
    );
    let environ = String::from_utf8_lossy(&proc(pid, "environ")).into_owned();
    assert!(
        environ.split('\0').any(|e| e == "MARK=detached-exec"),
        "{environ}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::SIGKILL,
    );
    let o = rt.run(&["exec", "--user", "65534:65534", "e1", "id"]);
    expect_code(&o, 0, "exec --user");
    assert_eq!(stdout(&o).trim(), "uid=65534(nobody) gid=65534(nogroup)");

    let o = rt.run(&["exec", "e1", "nosuchprog"]);
    expect_code(&o, 1, "exec of a missing program");
    assert!(
        stderr(&o).contains("executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let rt = Runtime::new(BIN);
    let b = Bundle::shared(&["true"]);
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "s1"]),
        0,
        "run -d",
    );
    wait_status(&rt, "s1", "stopped");
    let o = rt.run(&["exec", "s1", "true"]);
    expect_code(&o, 1, "exec");
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
}

#[test]
fn pause_resume_ps_and_delete_while_paused() {
    let rt = Runtime::new(BIN);
    // A counter that only advances while the container runs.
    let b = Bundle::shared(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/n; sleep 0.01; done",
    ]);
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "p1"]),
        0,
        "run -d",
    );
    let s = wait_status(&rt, "p1", "running");
    let init = s["pid"].as_i64().unwrap();

    let o = rt.run(&["ps", "--format", "json", "p1"]);
    expect_code(&o, 0, "ps json");
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pids.contains(&init), "{pids:?}");
    let o = rt.run(&["ps", "p1"]);
    expect_code(&o, 0, "ps table");
    let table = stdout(&o);
    assert!(table.lines().next().unwrap().contains("PID"), "{table}");
    assert!(
        table
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(&init.to_string())),
        "{table}"
    );

    expect_code(&rt.run(&["pause", "p1"]), 0, "pause");
    assert_eq!(state(&rt, "p1")["status"], "paused");
    // exec refuses a paused container
    let o = rt.run(&["exec", "p1", "true"]);
    expect_code(&o, 1, "exec while paused");
    assert!(stderr(&o).contains("paused"), "{}", stderr(&o));
    let counter = || {
        std::fs::read_to_string(format!("/proc/{init}/root/dev/shm/n"))
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    let a = counter();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(), a, "the counter moved while paused");
    let o = rt.run(&["resume", "p1"]);
    expect_code(&o, 0, "resume");
    assert_eq!(state(&rt, "p1")["status"], "running");
    // Polled: a read can land between the shell's truncation of the file
    // and its write (an empty read counts 0), and a loaded machine may
    // take a while to run the thawed loop.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counter() <= a {
        assert!(
            std::time::Instant::now() < deadline,
            "the counter did not move after resume"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_code(
        &rt.run(&["resume", "p1"]),
        1,
        "resume of a running container",
    );

    expect_code(&rt.run(&["pause", "p1"]), 0, "pause again");
    expect_code(
        &rt.run(&["delete", "--force", "p1"]),
        0,
        "delete --force while paused",
    );
    assert!(rt.ids().is_empty());
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sleep", "1000"]);
    let cg = format!("/berth-update-{}", std::process::id());
    b.config["linux"]["cgroupsPath"] = serde_json::json!(format!("{cg}/c"));
    b.config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 50});
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "u1"]),
        0,
        "run -d",
    );
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists();
    let file = |ctrl: &str, f: &str| {
        let p = if v1 {
            format!("/sys/fs/cgroup/{ctrl}{cg}/c/{f}")
        } else {
            format!("/sys/fs/cgroup{cg}/c/{f}")
        };
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    };
    expect_code(
        &rt.run(&["update", "--memory", "64m", "--pids-limit", "77", "u1"]),
        0,
        "update flags",
    );
    assert_eq!(file("pids", "pids.max"), "77");
    assert_eq!(
        file(
            "memory",
            if v1 {
                "memory.limit_in_bytes"
            } else {
                "memory.max"
            }
        ),
        "67108864"
    );
    let r = b.path().join("r.json");
    std::fs::write(&r, r#"{"pids": {"limit": 88}}"#).unwrap();
    expect_code(
        &rt.run(&["update", "--resources", r.to_str().unwrap(), "u1"]),
        0,
        "update -r",
    );
    assert_eq!(file("pids", "pids.max"), "88");
    // The stored config follows: pids changed, memory kept.
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rt.root.path().join("u1/state.json")).unwrap())
            .unwrap();
    assert_eq!(st["config"]["linux"]["resources"]["pids"]["limit"], 88);
    assert_eq!(
        st["config"]["linux"]["resources"]["memory"]["limit"],
        67108864
    );
    let o = rt.run(&["update", "--memory", "lots", "u1"]);
    expect_code(&o, 1, "bad size");
    assert!(stderr(&o).contains("invalid size"), "{}", stderr(&o));
    // All or nothing: the kernel refuses the cpuset after the memory limit
    // and the pids were written; both are put back.
    let mem = if v1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    let o = rt.run(&[
        "update",
        "--memory",
        "32m",
        "--pids-limit",
        "99",
        "--cpuset-cpus",
        "4095",
        "u1",
    ]);
    expect_code(&o, 1, "an update the kernel refuses");
    assert_eq!(file("memory", mem), "67108864", "memory limit put back");
    assert_eq!(file("pids", "pids.max"), "88", "pids limit put back");
    // Zeros are "not set" (Docker sends them for what it leaves alone).
    std::fs::write(
        &r,
        r#"{"memory": {"limit": 0, "reservation": 0}, "cpu": {"shares": 0, "period": 0, "quota": 0}, "pids": {"limit": 0}, "blockIO": {"weight": 0}}"#,
    )
    .unwrap();
    expect_code(
        &rt.run(&["update", "--resources", r.to_str().unwrap(), "u1"]),
        0,
        "update of zeros",
    );
    assert_eq!(file("memory", mem), "67108864");
    assert_eq!(file("pids", "pids.max"), "88");
    expect_code(&rt.run(&["delete", "--force", "u1"]), 0, "delete");
    for h in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified", "",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}{cg}"));
    }
}

#[test]
fn events_report_usage_and_ooms() {
    let rt = Runtime::new(BIN);
    // After a second the shell builds a 50 MB string past its 16 MiB limit.
    let mut b = Bundle::shared(&[
        "sh",
        "-c",
        "sleep 1; x=$(head -c 50000000 /dev/zero | tr '\\0' a); sleep 1000",
    ]);
    b.config["linux"]["resources"]["memory"] =
        serde_json::json!({"limit": 16_777_216, "swap": 16_777_216});
    b.config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 30});
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "ev"]),
        0,
        "run -d",
    );
    let o = rt.run(&["events", "--stats", "ev"]);
    expect_code(&o, 0, "events --stats");
    let line: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["type"], "stats");
    assert_eq!(line["id"], "ev");
    assert!(
        line["data"]["pids"]["current"].as_u64().unwrap() >= 1,
        "{line}"
    );
    assert_eq!(line["data"]["pids"]["limit"], 30);
    assert_eq!(line["data"]["memory"]["usage"]["limit"], 16_777_216);
    // The stream runs until the OOM killer ends the container.
    let o = output_via_files(rt.cmd().args(["events", "--interval", "100ms", "ev"]));
    expect_code(&o, 0, "events");
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v == serde_json::json!({"type": "oom", "id": "ev"}))
        }),
        "no oom event in {out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.contains(r#""type":"stats""#))
            .count()
            >= 2,
        "{out}"
    );
}

/// A capability the runtime itself does not hold cannot be granted: the
/// runtime-spec says to fail (runc fails), not to start the process with
/// less than it asked for. The runtime runs with CAP_SYS_MODULE out of its
/// bounding set (setpriv) and the spec asks for it.
#[test]
fn a_capability_the_runtime_lacks_fails_the_start() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["true"]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("CAP_SYS_MODULE"));
    }
    b.write();
    let o = output_via_files(
        std::process::Command::new("setpriv")
            .args([
                "--bounding-set",
                "-sys_module",
                "--inh-caps",
                "-sys_module",
                "--",
            ])
            .arg(BIN)
            .arg("--root")
            .arg(rt.root.path())
            .args(["run", "--bundle", b.path().to_str().unwrap(), "lacking"]),
    );
    assert_ne!(o.status.code(), Some(0), "started without CAP_SYS_MODULE");
    assert!(
        stderr(&o).contains("CAP_SYS_MODULE cannot be granted"),
        "{}",
        stderr(&o)
    );
    // Held, it is granted (the same spec, the runtime unrestricted).
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), "held"]);
    expect_code(&o, 0, "run with a capability the runtime holds");
}

/// Confinement asked for and not available is refused, never ignored: on
/// a host without AppArmor (this one), a profile fails the create; the
/// same for SELinux labels without SELinux.
#[test]
fn security_labels_the_host_cannot_apply_are_refused() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    if apparmor || selinux {
        assert!(
            std::env::var_os("CI").is_none(),
            "this host has an LSM: the refusal cannot be tested here"
        );
        eprintln!("skipped: this host has AppArmor or SELinux");
        return;
    }
    let rt = Runtime::new(BIN);
    for (field, value, needle) in [
        (
            "apparmorProfile",
            "docker-default",
            "AppArmor is not enabled",
        ),
        (
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            "SELinux is not enabled",
        ),
    ] {
        let mut b = Bundle::shared(&["true"]);
        b.config["process"][field] = serde_json::json!(value);
        b.write();
        let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), "lsm"]);
        assert_ne!(o.status.code(), Some(0), "{field} ignored");
        assert!(stderr(&o).contains(needle), "{field}: {}", stderr(&o));
    }
    let mut b = Bundle::shared(&["true"]);
    b.config["linux"]["mountLabel"] = serde_json::json!("system_u:object_r:container_file_t:s0");
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), "lsm"]);
    assert!(
        stderr(&o).contains("SELinux is not enabled"),
        "{}",
        stderr(&o)
    );
    assert!(rt.ids().is_empty(), "nothing left of refused creates");
}

/// Mount points at or below `dir` in our mount namespace (the host's).
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// The propagation fields (shared:N, master:N) of the mount at `dir`.
fn propagation_of(dir: &std::path::Path) -> String {
    let dir = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dir.as_str()))
        .map(|l| {
            let head = l.split(" - ").next().unwrap_or_default();
            head.split(' ').skip(6).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default()
}

/// A shared mount of a temp dir of its own, taken down on drop: what the
/// host's / is on many machines (systemd makes it shared), made here where
/// nothing else depends on it.
struct SharedMount(tempfile::TempDir);

impl SharedMount {
    fn new() -> SharedMount {
        let dir = tempfile::tempdir().unwrap();
        for args in [&["--bind"][..], &["--make-shared"][..]] {
            let st = std::process::Command::new("mount")
                .args(args)
                .args(if args[0] == "--bind" {
                    vec![dir.path(), dir.path()]
                } else {
                    vec![dir.path()]
                })
                .status()
                .expect("run mount");
            assert!(st.success(), "mount {args:?} {}", dir.path().display());
        }
        SharedMount(dir)
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The spec says a namespace the config does not list is inherited from the
/// runtime; berth refused a config without a mount namespace (runtime-tools'
/// linux_ns_itype). Its mounts are then the host's: they must not change the
/// propagation of the host's mounts (runc makes every one a slave, from /
/// down) and must be gone after delete (runc leaves them), or after a create
/// that failed half way.
#[test]
fn a_container_without_a_mount_namespace_mounts_in_the_hosts_and_cleans_up() {
    let rt = Runtime::new(BIN);
    // The rootfs sits on a shared mount of its own: its propagation is what
    // the container must leave alone. (A private copy, too: its mounts are
    // in the host's namespace, where other tests' containers would see them
    // on the shared fixture.)
    let shared = SharedMount::new();
    let rootfs = shared.0.path().join("rootfs");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(berth_testkit::busybox_rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success(), "copy rootfs");
    let mut b = Bundle::shared(&["sleep", "1000"]);
    b.config["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != "mount");
    b.write();
    let before = propagation_of(shared.0.path());
    assert!(
        before.contains("shared:"),
        "the test mount is shared: {before:?}"
    );
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), "nomnt1"]);
    expect_code(&o, 0, "create without a mount namespace");
    let pid = state(&rt, "nomnt1")["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "the init inherits the runtime's mount namespace"
    );
    assert!(
        mounts_under(&rootfs)
            .iter()
            .any(|m| m.ends_with("/rootfs/proc")),
        "the spec's mounts are in the host's namespace: {:?}",
        mounts_under(&rootfs)
    );
    assert_eq!(
        propagation_of(shared.0.path()),
        before,
        "the host's mounts keep their propagation"
    );
    expect_code(&rt.run(&["start", "nomnt1"]), 0, "start");
    // exec enters the container's root, whose /proc is the container's.
    let o = rt.run(&["exec", "nomnt1", "sh", "-c", "ls /; cat /proc/1/comm"]);
    expect_code(&o, 0, "exec");
    assert!(stdout(&o).contains("bin\n"), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("sleep\n"), "{}", stdout(&o));
    expect_code(&rt.run(&["delete", "--force", "nomnt1"]), 0, "delete");
    assert_eq!(
        mounts_under(&rootfs),
        Vec::<String>::new(),
        "delete leaves no mount"
    );

    // A create that fails after the rootfs was bound (a mount of an unknown
    // file system type) leaves none either.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "/mnt", "type": "nosuchfs", "source": "x"}));
    b.write();
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), "nomnt2"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "create with a bad mount must fail"
    );
    assert_eq!(
        mounts_under(&rootfs),
        Vec::<String>::new(),
        "a failed create leaves no mount"
    );
}
