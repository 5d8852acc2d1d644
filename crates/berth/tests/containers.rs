//! The container commands through the real binary, as root, with real
//! containers: run (foreground and detached), ps, logs, exec, stop, kill,
//! rm, wait, inspect, restart policies, bad input, concurrency, and a
//! monitor killed under a running container.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, output_via_files, parent_of, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A private store with the busybox image imported as `busybox`.
type Berth = berth_testkit::store::Store;

fn berth() -> Berth {
    Berth::with_busybox(BIN, &[])
}

/// A berth cgroup of this container exists in some v1 hierarchy.
fn cgroup_exists(id: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .any(|h| h.path().join("berth").join(id).exists())
}

#[test]
fn foreground_run_passes_output_exit_code_and_rm_leaves_nothing() {
    let b = berth();
    let cidfile = b.root.path().join("fg.cid");
    let o = b.run(&[
        "run",
        "--rm",
        "--cidfile",
        cidfile.to_str().unwrap(),
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    expect_code(&o, 3, "run --rm");
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert_eq!(b.ok(&["ps", "-aq"]), "", "--rm removed the row");
    assert_eq!(
        std::fs::read_dir(b.root.path().join("containers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(b.mounts(), 0);
    // Its files went to the store's trash in one rename, and a child left
    // behind deletes them once berth has answered: the trash empties (a
    // sweep that never runs, or skips entries, would fill the disk).
    let deadline = Instant::now() + Duration::from_secs(30);
    while berth_engine::trash::has_litter(b.root.path()) {
        assert!(Instant::now() < deadline, "the trash was never swept");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its cgroups went with the runtime's state into the trash (their
    // rmdirs off the answer's path): the sweep removed them too.
    let id = std::fs::read_to_string(&cidfile).unwrap();
    assert_eq!(id.len(), 64, "{id:?}");
    assert!(!cgroup_exists(&id), "cgroup of {id} left after the sweep");

    // the image's CMD, env, hostname, docker's default capabilities
    let o = b.run(&[
        "run",
        "--name",
        "kept",
        "-e",
        "A=1",
        "-h",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $A $(hostname); grep CapEff /proc/self/status; cat /proc/self/uid_map | wc -l",
    ]);
    expect_code(&o, 0, "run");
    let out = stdout(&o);
    assert!(out.starts_with("1 box\n"), "{out}");
    assert!(
        out.contains("CapEff:\t00000000a80425fb"),
        "docker's 14 capabilities: {out}"
    );
    // the log has what was printed; the stopped container keeps its row
    assert!(b.ok(&["logs", "kept"]).starts_with("1 box\n"));
    assert_eq!(
        b.inspect("kept", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    let id = b.inspect("kept", "{{.Id}}");
    b.ok(&["rm", "kept"]);
    assert!(!cgroup_exists(&id));
    assert_eq!(b.mounts(), 0);
}

#[test]
fn detached_lifecycle_logs_exec_stop_and_rm() {
    let b = berth();
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 0' USR1; echo ready; while :; do sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    b.wait_for("web", "{{.State.Status}}", "running");
    let ps = b.ok(&["ps"]);
    assert!(
        ps.contains(&id[..12]) && ps.contains("web") && ps.contains("Up "),
        "{ps}"
    );
    assert_eq!(
        b.ok(&["ps", "-q", "--filter", "name=web"]).trim(),
        &id[..12]
    );
    // logs arrive through the monitor
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.ok(&["logs", "web"]).contains("ready") {
        assert!(Instant::now() < deadline, "no `ready` in the log");
        std::thread::sleep(Duration::from_millis(50));
    }
    // exec: output, exit code, the container's hostname and env
    let o = b.run(&[
        "exec",
        "-e",
        "X=2",
        "web",
        "sh",
        "-c",
        "echo $X $(hostname); exit 5",
    ]);
    expect_code(&o, 5, "exec");
    assert_eq!(stdout(&o), format!("2 {}\n", &id[..12]));
    assert!(cgroup_exists(id));
    // top lists the container's processes (from the host's ps)
    let top = b.ok(&["top", "web"]);
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");
    assert!(top.contains("sleep 0.1") || top.contains("sh -c"), "{top}");
    // diff and export see what the container changed
    b.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo x > /new; ln /new /linked; rm /etc/group; echo y >> /etc/passwd",
    ]);
    let diff = b.ok(&["diff", "web"]);
    for want in ["A /new", "D /etc/group", "C /etc/passwd", "C /etc"] {
        assert!(
            diff.lines().any(|l| l == want),
            "{want} missing in:\n{diff}"
        );
    }
    let tar = b.root.path().join("web.tar");
    b.ok(&["export", "-o", tar.to_str().unwrap(), "web"]);
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let names: Vec<&str> = list.lines().map(|l| l.trim_start_matches("./")).collect();
    assert!(
        names.contains(&"new") && names.contains(&"bin/busybox"),
        "{list}"
    );
    assert!(
        !names.contains(&"etc/group"),
        "a deleted file is not exported"
    );
    // A second name of a file is a hard link in the archive, not a copy.
    let verbose = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&tar)
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&verbose.stdout);
    assert!(
        verbose
            .lines()
            .any(|l| l.ends_with("new link to linked") || l.ends_with("linked link to new")),
        "{verbose}"
    );
    // pause freezes it, unpause thaws it
    b.ok(&["pause", "web"]);
    assert_eq!(
        b.inspect("web", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    b.ok(&["unpause", "web"]);
    assert_eq!(b.inspect("web", "{{.State.Status}}"), "running");
    assert_ne!(b.run(&["unpause", "web"]).status.code(), Some(0));
    // stop sends the STOPSIGNAL; the trap exits 0 (a stop that waited
    // for its timeout would have killed it: 137)
    b.ok(&["stop", "-t", "120", "web"]);
    assert_eq!(
        b.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    assert!(b.ok(&["logs", "web"]).contains("got usr1"));
    let o = b.run(&["exec", "web", "true"]);
    assert_ne!(o.status.code(), Some(0), "exec into a stopped container");
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1);
    // a running container is not removed without -f
    b.ok(&["start", "web"]);
    b.wait_for("web", "{{.State.Status}}", "running");
    let o = b.run(&["rm", "web"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("You cannot remove a running container"),
        "{}",
        stderr(&o)
    );
    b.ok(&["rm", "-f", "web"]);
    assert!(!cgroup_exists(id));
    assert_eq!(b.mounts(), 0);
    assert!(!Path::new("/run/berth/runtime").join(id).exists());
}

#[test]
fn stop_kills_after_the_timeout() {
    let b = berth();
    // TERM is ignored: stop must fall back to SIGKILL after 1 s.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
    ]);
    b.wait_for("stubborn", "{{.State.Status}}", "running");
    let t = Instant::now();
    b.ok(&["stop", "-t", "1", "stubborn"]);
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(b.inspect("stubborn", "{{.State.ExitCode}}"), "137");
    // kill -s
    b.ok(&["start", "stubborn"]);
    b.wait_for("stubborn", "{{.State.Status}}", "running");
    b.ok(&["kill", "-s", "KILL", "stubborn"]);
    b.wait_for("stubborn", "{{.State.Status}}", "exited");
    assert_eq!(b.ok(&["wait", "stubborn"]).trim(), "137");
}

#[test]
fn restart_on_failure_restarts_n_times() {
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "crashy",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 7",
    ]);
    assert_eq!(b.ok(&["wait", "crashy"]).trim(), "7");
    b.wait_for("crashy", "{{.State.Status}}", "exited");
    assert_eq!(b.inspect("crashy", "{{.RestartCount}}"), "2");
    assert_eq!(
        b.ok(&["logs", "crashy"]).matches("run").count(),
        3,
        "first run and 2 restarts"
    );
}

#[test]
fn bad_input_is_one_line_and_creates_nothing() {
    let b = berth();
    // Each refused for its own reason, in one line (docker's usage hint
    // aside), with docker's code: 125 for run, 1 for the others.
    let bad: &[(&[&str], &str, i32)] = &[
        (
            &["run", "--bogus-flag", "busybox"],
            "unknown flag: --bogus-flag",
            125,
        ),
        (
            &["run", "--pull=never", "no-such-image"],
            "Unable to find image 'no-such-image' locally",
            125,
        ),
        (
            &["run", "--pull=sometimes", "busybox"],
            "invalid --pull \"sometimes\"",
            125,
        ),
        (
            &["run", "--memory", "lots", "busybox", "true"],
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'",
            125,
        ),
        // (-v makes a missing host directory, as docker's; --mount does not)
        (
            &[
                "run",
                "--mount",
                "type=bind,source=/does/not/exist,target=/x",
                "busybox",
                "true",
            ],
            "bind source path does not exist: /does/not/exist",
            125,
        ),
        (
            &["run", "--restart", "sometimes", "busybox", "true"],
            "invalid restart policy 'sometimes'",
            125,
        ),
        (
            &["run", "--name", "bad/name", "busybox", "true"],
            "Invalid container name (bad/name), only",
            125,
        ),
        (
            &["run", "-p", "70000:80", "busybox", "true"],
            "\"70000\" is not a port",
            125,
        ),
        (
            &["run", "-p", "80/sctp", "busybox", "true"],
            "protocol \"sctp\": use tcp or udp",
            125,
        ),
        (
            &["run", "--network", "no-such-net", "busybox", "true"],
            "network no-such-net not found",
            125,
        ),
        (
            &[
                "run",
                "--network",
                "host",
                "--mac-address",
                "02:42:ac:11:00:02",
                "busybox",
                "true",
            ],
            "conflicting options: mac-address and the network mode",
            125,
        ),
        (&["exec", "nobody", "true"], "No such container: nobody", 1),
        // what berth does not have says so
        (
            &["exec", "-it", "--detach-keys", "ctrl-a", "nobody", "true"],
            "exec --detach-keys is not implemented",
            1,
        ),
        (
            &["network", "connect", "--ip6", "::1", "nonet", "nobody"],
            "--ip6 is not implemented",
            1,
        ),
        (&["rm", "nobody"], "No such container: nobody", 1),
    ];
    for (args, why, code) in bad {
        let o = b.run(args);
        expect_code(&o, *code, &args.join(" "));
        let err = stderr(&o);
        assert!(err.contains(why), "{args:?}: wanted {why:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            berth_testkit::error_lines(&err),
            1,
            "{args:?}: one line expected: {err}"
        );
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing was created");
    assert!(!std::path::Path::new("/does/not/exist").exists());
    // a missing image is pulled first (as docker does): docker's two lines
    // then the registry's one-line reason (no network here)
    let o = b.run(&["run", "no-such-image"]);
    expect_code(&o, 125, "run of an image nobody has");
    let err = stderr(&o);
    assert!(
        err.starts_with("Unable to find image 'no-such-image' locally\n"),
        "{err}"
    );
    // docker's form for run: "docker: <error>." and a hint
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("berth: Error response from daemon: "))
            .count(),
        1,
        "{err}"
    );
    assert!(err.ends_with("\nSee 'berth run --help'.\n"), "{err}");
    assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing half-created");
    // a name in use
    b.ok(&["create", "--name", "taken", "busybox", "true"]);
    let o = b.run(&["create", "--name", "taken", "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
    // a command that does not exist: docker's 127
    let o = b.run(&["run", "--rm", "busybox", "/no/such/program"]);
    expect_code(&o, 127, "missing program");
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
    assert_eq!(b.mounts(), 0);
}

#[test]
fn healthcheck_status_transitions() {
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /ok && echo fine",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "60",
    ]);
    b.wait_for("hc", "{{.State.Health.Status}}", "unhealthy");
    assert!(b
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(unhealthy)"));
    b.ok(&["exec", "hc", "touch", "/ok"]);
    b.wait_for("hc", "{{.State.Health.Status}}", "healthy");
    // the healthcheck keeps berth's own monitor (berth-monitor runs none)
    // (its exe is a read-only clone of berth's binary: see berth_runtime::exe)
    let ppid = parent_of(b.inspect("hc", "{{.State.Pid}}").parse().unwrap());
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap();
    assert_eq!(
        cmdline.split(|&c| c == 0).nth(1),
        Some(berth_engine::monitor::MONITOR_ARG.as_bytes()),
        "the monitor is berth's own"
    );
    assert_eq!(b.inspect("hc", "{{.State.Health.FailingStreak}}"), "0");
    assert!(
        b.inspect("hc", "{{json .State.Health.Log}}")
            .contains("fine"),
        "the probe's output is kept"
    );
    assert!(b.ok(&["ps"]).contains("(healthy)"));
    b.ok(&["exec", "hc", "rm", "/ok"]);
    b.wait_for("hc", "{{.State.Health.Status}}", "unhealthy");
    // before its first probe (an interval away: no deadline a loaded host
    // could miss) a container is starting
    b.ok(&[
        "run",
        "-d",
        "--name",
        "hc-later",
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(
        b.inspect("hc-later", "{{.State.Health.Status}}"),
        "starting"
    );
    // a container without a check has no health
    b.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "60"]);
    assert_eq!(b.inspect("plain", "{{json .State.Health}}"), "null");
    let o = b.run(&[
        "run",
        "--health-cmd",
        "true",
        "--health-interval",
        "soon",
        "busybox",
        "true",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--health-interval"), "{}", stderr(&o));
}

/// podman's `--health-on-failure`: once unhealthy, kill leaves the
/// container exited even with a restart policy, stop stops it (its stop
/// signal, SIGKILL after the stop timeout), restart brings it back with
/// the restart count up; none (the default) only reports. A value podman
/// does not know is a one-line error.
#[test]
fn health_on_failure_kills_stops_or_restarts() {
    let b = berth();
    let run = |name: &str, action: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--health-cmd",
            "test -f /ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "--stop-timeout",
            "1",
        ];
        if !action.is_empty() {
            args.extend_from_slice(&["--health-on-failure", action]);
        }
        args.extend_from_slice(extra);
        // A first life marks itself, so a second one is seen.
        args.extend_from_slice(&["busybox", "sh", "-c", "echo life; exec sleep 60"]);
        b.ok(&args);
    };
    run("hk", "kill", &["--restart", "always"]);
    run("hs", "stop", &[]);
    run("hr", "restart", &[]);
    run("hn", "", &[]);
    b.wait_for("hk", "{{.State.Status}} {{.State.ExitCode}}", "exited 137");
    b.wait_for("hs", "{{.State.Status}}", "exited");
    b.wait_for("hr", "{{.RestartCount}}", "1");
    assert_eq!(
        b.inspect("hk", "{{.RestartCount}}"),
        "0",
        "kill: no restart"
    );
    assert_eq!(
        b.inspect("hr", "{{.Config.HealthcheckOnFailureAction}}"),
        "restart"
    );
    // The restarted container runs its program again.
    b.wait_for("hr", "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.ok(&["logs", "hr"]).matches("life").count() < 2 {
        assert!(Instant::now() < deadline, "hr never ran a second time");
        std::thread::sleep(Duration::from_millis(50));
    }
    // none: unhealthy, and left running (its status was seen after the
    // others acted on theirs).
    b.wait_for("hn", "{{.State.Health.Status}}", "unhealthy");
    assert_eq!(b.inspect("hn", "{{.State.Status}}"), "running");
    assert_eq!(b.inspect("hn", "{{.RestartCount}}"), "0");
    let o = b.run(&["run", "--health-on-failure", "sometimes", "busybox", "true"]);
    expect_code(&o, 125, "a bad --health-on-failure");
    assert!(
        stderr(&o).contains("invalid --health-on-failure \"sometimes\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 4);
}

/// The static release build (`scripts/build-release.sh`, which the test
/// script runs first): `--init` bind-mounts berth itself into the image,
/// and only a static binary runs there.
fn static_berth() -> std::path::PathBuf {
    let target = berth_testkit::target_dir();
    std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("release/berth"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no static berth under {}/<host>/release: run scripts/build-release.sh",
                target.display()
            )
        })
}

#[test]
fn init_reaps_orphans_and_forwards_signals() {
    let b = berth();
    let bin = static_berth();
    let run = |args: &[&str]| {
        output_via_files(
            Command::new(&bin)
                .arg("--root")
                .arg(b.root.path())
                .args(args),
        )
    };
    // An orphan that exits is reaped by the init: its /proc entry goes
    // (a zombie nobody reaps keeps it, state Z, until the deadline).
    let o = run(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "ps -o pid,comm | grep -q '^ *1 berth-init'; echo $?; \
         (sleep 0.1 & echo $! > /tmp/orphan); p=$(cat /tmp/orphan); \
         for i in $(seq 100); do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); \
         [ -z \"$s\" ] && break; sleep 0.1; done; echo ${s:-reaped}",
    ]);
    expect_code(&o, 0, "run --init");
    assert_eq!(
        stdout(&o),
        "0\nreaped\n",
        "pid 1 is berth-init; the orphaned sleep was reaped"
    );
    // stop's TERM reaches the command through the init: sleep as pid 1
    // would ignore it and be killed at the timeout (137), which is long
    // enough that a loaded host never reaches it.
    let o = run(&[
        "run", "-d", "--name", "inited", "--init", "busybox", "sleep", "600",
    ]);
    expect_code(&o, 0, "run -d --init");
    expect_code(&run(&["stop", "-t", "120", "inited"]), 0, "stop");
    assert_eq!(b.inspect("inited", "{{.State.ExitCode}}"), "143");
    // the container cannot write the init (a read-only bind of berth)
    let o = run(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo x > /sbin/berth-init",
    ]);
    assert_ne!(o.status.code(), Some(0));
    // a dynamically linked berth says why it cannot
    let o = b.run(&["run", "--rm", "--init", "busybox", "true"]);
    if o.status.code() != Some(0) {
        assert!(stderr(&o).contains("static"), "{}", stderr(&o));
    }
}

#[test]
fn update_stats_and_prune() {
    let b = berth();
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let id = id.trim();
    b.wait_for("busy", "{{.State.Status}}", "running");
    let st = b.ok(&["stats", "--no-stream"]);
    let row = st
        .lines()
        .find(|l| l.contains("busy"))
        .unwrap_or_else(|| panic!("{st}"));
    assert!(row.contains("/ 64.00MiB"), "{st}");
    let cpu: f64 = row
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 10.0, "a busy loop uses CPU: {st}");
    b.ok(&["update", "--memory", "128m", "--pids-limit", "50", "busy"]);
    let read = |ctl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/berth/{id}/{file}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory", "memory.limit_in_bytes"), "134217728");
    assert_eq!(read("pids", "pids.max"), "50");
    assert_eq!(b.inspect("busy", "{{.HostConfig.Memory}}"), "134217728");
    assert_ne!(
        b.run(&["update", "--memory", "lots", "busy"]).status.code(),
        Some(0)
    );
    b.ok(&["rm", "-f", "busy"]);
    b.ok(&["run", "--name", "done1", "busybox", "true"]);
    b.ok(&["create", "--name", "new1", "busybox", "true"]);
    b.ok(&["run", "-d", "--name", "alive", "busybox", "sleep", "60"]);
    let out = b.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(
        b.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(),
        "alive"
    );
}

#[test]
fn named_and_anonymous_volumes() {
    let b = berth();
    assert_eq!(
        b.ok(&["volume", "create", "--label", "k=v", "data"]).trim(),
        "data"
    );
    // an empty volume is filled from the image at its mount point
    let o = b.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/etc",
        "busybox",
        "sh",
        "-c",
        "cat /etc/group >/dev/null && echo kept > /etc/mine",
    ]);
    assert_eq!(o, "");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/x:ro",
            "busybox",
            "cat",
            "/x/mine"
        ]),
        "kept\n"
    );
    let o = b.run(&[
        "run",
        "--rm",
        "-v",
        "data:/x:ro",
        "busybox",
        "touch",
        "/x/no",
    ]);
    assert_ne!(o.status.code(), Some(0), "read-only volume");
    let mp = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    assert!(Path::new(mp.trim()).join("group").exists(), "{mp}");
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "label=k=v"])
            .trim(),
        "data"
    );
    // in use: not removed
    b.ok(&[
        "run", "-d", "--name", "user", "-v", "data:/x", "busybox", "sleep", "60",
    ]);
    let o = b.run(&["volume", "rm", "data"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    b.ok(&["rm", "-f", "user"]);
    b.ok(&["volume", "rm", "data"]);
    // anonymous: made for -v /path, removed by rm -v (and by --rm)
    b.ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo a > /scratch/f",
    ]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]).lines().count(), 1);
    b.ok(&["rm", "-v", "anon"]);
    b.ok(&["run", "--rm", "-v", "/scratch", "busybox", "true"]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    // bad names are refused before anything is made
    let o = b.run(&["run", "--rm", "-v", "bad name!:/x", "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn commit_makes_an_image_of_the_changes() {
    let b = berth();
    b.ok(&[
        "run",
        "--name",
        "src",
        "-e",
        "FOO=bar",
        "busybox",
        "sh",
        "-c",
        "echo made > /made; rm /etc/group",
    ]);
    let id = b.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "-m",
        "from a test",
        "src",
        "made:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        b.ok(&["run", "--rm", "made:1"]),
        "made\n",
        "the new CMD and the file"
    );
    let o = b.ok(&[
        "run",
        "--rm",
        "made:1",
        "sh",
        "-c",
        "echo $FOO; test -e /etc/group || echo gone",
    ]);
    assert_eq!(
        o, "bar\ngone\n",
        "the container's env, and the deletion, are in the image"
    );
    let h = b.ok(&["history", "made:1"]);
    assert!(h.contains("from a test"), "{h}");
    let layers = b.ok(&["image", "inspect", "made:1"]);
    let v: serde_json::Value = serde_json::from_str(&layers).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // the container's image is still in use; the new one is not
    b.ok(&["rm", "src"]);
    b.ok(&["rmi", "made:1"]);
}

#[test]
fn images_in_use_are_not_removed() {
    let b = berth();
    b.ok(&["tag", "busybox", "bb:two"]);
    b.ok(&["create", "--name", "user", "busybox", "true"]);
    // untagging one of two tags is fine
    b.ok(&["rmi", "bb:two"]);
    // deleting the image a container uses is not, forced or not, by any
    // name (docker's words; forced, docker would, berth cannot: the
    // image's layers are the container's rootfs)
    let id = b.ok(&["images", "-q"]).trim().to_string();
    for (args, says) in [
        (&["rmi", "busybox"][..], "(must force) - container "),
        (&["rmi", "-f", "busybox"], "(cannot be forced) - image "),
        (
            &["rmi", &id],
            "(must be forced) - image is being used by stopped container ",
        ),
    ] {
        let o = b.run(args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&o).starts_with("Error response from daemon: conflict: unable to ")
                && stderr(&o).contains(says),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    b.ok(&["tag", "busybox", "bb:two"]);
    b.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        b.ok(&["images", "-q"]).lines().count() == 1,
        "prune -a kept the used image"
    );
    // the container still runs from it
    b.ok(&["start", "-a", "user"]);
    b.ok(&["rm", "user"]);
    b.ok(&["rmi", "bb:two"]);
    b.ok(&["rmi", "busybox"]);
    assert_eq!(b.ok(&["images", "-q"]), "");
}

#[test]
fn many_concurrent_runs_and_removals() {
    let b = berth();
    let n = 50;
    let spawn = |args: Vec<String>| {
        let mut c = b.cmd();
        c.args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let children: Vec<_> = (0..n)
        .map(|i| {
            spawn(vec![
                "run".into(),
                "-d".into(),
                "--name".into(),
                format!("c{i}"),
                "busybox".into(),
                "sleep".into(),
                "60".into(),
            ])
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(b.ok(&["ps", "-q"]).lines().count(), n);
    let ids: Vec<String> = b
        .ok(&["ps", "-q", "--no-trunc"])
        .lines()
        .map(String::from)
        .collect();
    let children: Vec<_> = (0..n)
        .map(|i| spawn(vec!["rm".into(), "-f".into(), format!("c{i}")]))
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.mounts(), 0);
    for id in &ids {
        assert!(!cgroup_exists(id), "cgroup of {id} left");
    }
}

#[test]
fn killed_monitor_leaves_a_truthful_state() {
    let b = berth();
    b.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "60"]);
    b.wait_for("orphan", "{{.State.Status}}", "running");
    let id = b.inspect("orphan", "{{.Id}}");
    let pid: i32 = b.inspect("orphan", "{{.State.Pid}}").parse().unwrap();
    // the monitor is the init's parent
    let ppid = parent_of(pid);
    // berth-monitor: with nothing else to do (no healthcheck, nobody
    // attached), berth's monitor handed the waiting to the small binary
    assert_eq!(
        std::fs::read_link(format!("/proc/{ppid}/exe")).unwrap(),
        Path::new(BIN).with_file_name("berth-monitor")
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ppid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // the container itself still runs: that is what ps says
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.inspect("orphan", "{{.State.Status}}"), "running");
    // once it is gone too, it is exited (code unknown), and rm cleans all
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.inspect("orphan", "{{.State.Status}}") != "exited" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ok(&["rm", "orphan"]);
    assert!(!cgroup_exists(&id));
    assert_eq!(b.mounts(), 0);
}

/// berth with `args` on a terminal of its own.
fn on_pty(b: &Berth, args: &[&str], rows: u16, cols: u16) -> berth_testkit::pty::PtyChild {
    let mut c = b.cmd();
    c.args(args);
    berth_testkit::pty::PtyChild::spawn(c, rows, cols)
}

/// `run -it`, `attach` and the detach keys, on a real terminal.
#[test]
fn interactive_terminal_attach_and_detach_keys() {
    let b = berth();
    let t = Duration::from_secs(20);
    let mut run = on_pty(&b, &["run", "-it", "--name", "it", "busybox", "sh"], 30, 90);
    run.expect("/ # ", t);
    run.send(b"stty size; echo $((6*7))\r");
    run.expect("30 90", t);
    run.expect("42", t);
    // ctrl-p ctrl-q: back to us, the shell runs on
    run.send(b"\x10\x11");
    assert_eq!(run.wait(t).code(), Some(0));
    assert_eq!(b.inspect("it", "{{.State.Status}}"), "running");

    // attach again, with other keys: typing them detaches again
    let mut a = on_pty(&b, &["attach", "--detach-keys", "ctrl-x,y", "it"], 24, 80);
    a.send(b"echo again-$((2+2))\r");
    a.expect("again-4", t);
    // ctrl-x followed by something else is typed through
    a.send(b"\x18z\x18y");
    assert_eq!(a.wait(t).code(), Some(0));
    assert_eq!(b.inspect("it", "{{.State.Status}}"), "running");

    // and once more: the shell's exit code is attach's
    let mut a = on_pty(&b, &["attach", "it"], 24, 80);
    // (the "z" typed before is still on the shell's line)
    a.send(b"\rstty size\r");
    a.expect("24 80", t);
    a.send(b"exit 7\r");
    assert_eq!(a.wait(t).code(), Some(7));
    b.wait_for("it", "{{.State.ExitCode}}", "7");

    // run -it --rm: the exit code, and nothing left once it returns
    let mut run = on_pty(
        &b,
        &["run", "-it", "--rm", "busybox", "sh", "-c", "tty; exit 3"],
        24,
        80,
    );
    assert_eq!(run.wait(t).code(), Some(3));
    assert!(String::from_utf8_lossy(&run.seen).contains("/dev/pts/0"));
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1, "only `it` is left");

    // attaching to what is not running is refused in one line
    let o = b.run(&["attach", "it"]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(
        stderr(&o).trim(),
        "You cannot attach to a stopped container, start it first"
    );
    let o = b.run(&["run", "-it", "--detach-keys", "ctrl-", "busybox", "true"]);
    expect_code(&o, 125, "bad detach keys");
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));
}

/// `attach` without a terminal: stdout and stderr apart, stdin through,
/// the exit code passed on.
#[test]
fn attach_without_terminal_keeps_streams_apart() {
    let b = berth();
    b.ok(&["run", "-d", "-i", "--name", "pipe", "busybox", "sh"]);
    let mut c = b.cmd();
    c.args(["attach", "pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"echo out; echo err >&2; exit 4\n")
            .unwrap();
        // stdin stays open: the exit comes from the container
        std::thread::sleep(Duration::from_millis(200));
        let o = child.wait_with_output().unwrap();
        drop(stdin);
        expect_code(&o, 4, "attach");
        assert_eq!(stdout(&o), "out\n");
        assert_eq!(stderr(&o), "err\n");
    }
    // logs have what went by, too
    let o = b.run(&["logs", "pipe"]);
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
}

/// `cp` both ways with docker's rules, on running and stopped containers;
/// symlinks and hostile archives never reach outside the container.
#[test]
fn cp_follows_dockers_rules_and_stays_inside() {
    let b = berth();
    let host = tempfile::tempdir().unwrap();
    let h = |p: &str| host.path().join(p);
    let hs = |p: &str| h(p).to_str().unwrap().to_string();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cpc",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo hello > /data/a && echo deep > /data/sub/b \
         && chown 7:8 /data/a && ln -s /etc /data/etclink && echo inside > /etc/marker \
         && touch /ready && sleep 1000",
    ]);
    b.wait_for("cpc", "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .run(&["exec", "cpc", "test", "-e", "/ready"])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "the container never got ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // container → host: a file into a directory, a directory to a new name,
    // a directory's content with `/.`
    b.ok(&["cp", "cpc:/data/a", &hs("")]);
    assert_eq!(std::fs::read_to_string(h("a")).unwrap(), "hello\n");
    b.ok(&["cp", "cpc:/data", &hs("copy")]);
    assert_eq!(std::fs::read_to_string(h("copy/sub/b")).unwrap(), "deep\n");
    assert_eq!(
        std::fs::read_link(h("copy/etclink")).unwrap(),
        Path::new("/etc"),
        "a symlink is copied as a link"
    );
    std::fs::create_dir(h("into")).unwrap();
    b.ok(&["cp", "cpc:/data/.", &hs("into")]);
    assert!(h("into/sub/b").exists() && !h("into/data").exists());
    // a path through the container's symlink is the container's /etc
    b.ok(&["cp", "cpc:/data/etclink/marker", &hs("marker")]);
    assert_eq!(std::fs::read_to_string(h("marker")).unwrap(), "inside\n");
    // host → container: the file's owner is kept, -a or not (Docker
    // 20.10's daemon, compared in tests/compat/everyday.txt)
    std::fs::write(h("up.txt"), "up\n").unwrap();
    std::os::unix::fs::chown(h("up.txt"), Some(1234), Some(5678)).unwrap();
    b.ok(&["cp", &hs("up.txt"), "cpc:/data/sub/"]);
    b.ok(&["cp", "-a", &hs("up.txt"), "cpc:/data/kept.txt"]);
    assert_eq!(
        b.ok(&[
            "exec",
            "cpc",
            "stat",
            "-c",
            "%u:%g %n",
            "/data/sub/up.txt",
            "/data/kept.txt"
        ]),
        "1234:5678 /data/sub/up.txt\n1234:5678 /data/kept.txt\n"
    );
    // writing through the container's symlink to /etc stays in the container
    b.ok(&["cp", &hs("up.txt"), "cpc:/data/etclink/escaped"]);
    assert!(!Path::new("/etc/escaped").exists());
    assert_eq!(b.ok(&["exec", "cpc", "cat", "/etc/escaped"]), "up\n");
    // a hostile archive on stdin: `..`, absolute names, a link then a path
    // through it
    let evil = h("evil.tar");
    {
        use berth_testkit::raw_tar_entry;
        use tar::EntryType::{Regular, Symlink};
        let mut t = tar::Builder::new(Vec::new());
        let escape = format!("../../../../../..{}", hs("escaped-by-dotdot"));
        raw_tar_entry(&mut t, &escape, Regular, b"x", "", 0o644);
        raw_tar_entry(&mut t, "/tmp/berth-cp-absolute", Regular, b"x", "", 0o644);
        raw_tar_entry(&mut t, "lnk", Symlink, b"", &hs(""), 0o777);
        raw_tar_entry(&mut t, "lnk/via-link", Regular, b"y", "", 0o644);
        std::fs::write(&evil, t.into_inner().unwrap()).unwrap();
    }
    let o = output_via_files(
        b.cmd()
            .args(["cp", "-", "cpc:/data"])
            .stdin(std::fs::File::open(&evil).unwrap()),
    );
    expect_code(&o, 0, "cp - (hostile archive)");
    assert!(!h("escaped-by-dotdot").exists());
    assert!(!h("via-link").exists());
    assert!(!Path::new("/tmp/berth-cp-absolute").exists());
    // a tar stream out
    let o = b.run(&["cp", "cpc:/data/sub", "-"]);
    let mut names: Vec<String> = tar::Archive::new(&o.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // a directory's name ends in a slash, as in docker's archives
    assert_eq!(names, ["sub/", "sub/b", "sub/up.txt"]);
    // a stopped container: its rootfs, mounted for the while
    b.ok(&["stop", "-t", "0", "cpc"]);
    let mounts = b.mounts();
    b.ok(&["cp", &hs("up.txt"), "cpc:/stopped.txt"]);
    b.ok(&["cp", "cpc:/stopped.txt", &hs("back.txt")]);
    assert_eq!(std::fs::read_to_string(h("back.txt")).unwrap(), "up\n");
    assert_eq!(b.mounts(), mounts, "cp unmounted what it mounted");
    // bad input: one line each
    for (args, want) in [
        (
            vec!["cp", "cpc:/nonexistent", hs("").leak() as &str],
            "No such container:path: cpc:/nonexistent",
        ),
        (
            vec!["cp", hs("up.txt").leak(), "cpc:/no/such/dir/x"],
            "No such container:path: cpc:/no/such/dir",
        ),
        (
            vec!["cp", hs("copy").leak(), "cpc:/stopped.txt"],
            "cannot copy a directory to a file",
        ),
        (vec!["cp", "a", "b"], "must specify at least one container"),
        (
            vec!["cp", "nosuch:/x", "."],
            "No such container:path: nosuch:/x",
        ),
    ] {
        let o = b.run(&args);
        // docker's client: 1 for every failure but run's.
        expect_code(&o, 1, &args.join(" "));
        let e = stderr(&o);
        assert!(
            e.contains(want) && berth_testkit::error_lines(&e) == 1,
            "{args:?}: {e}"
        );
    }
}

/// An `--until` that takes the events of this second in: docker counts
/// it in whole seconds (`0s` is this second's start).
fn until_now() -> String {
    (time_now_secs() + 1).to_string()
}

/// `events` from the journal (past and followed, filtered, formatted),
/// OOMKilled recorded, and the BLOCK I/O column of stats.
#[test]
fn events_journal_oom_and_block_io() {
    let b = berth();
    let t0 = (time_now_secs() - 1).to_string();
    let o = b.run(&[
        "run", "--rm", "--name", "ev", "busybox", "sh", "-c", "exit 2",
    ]);
    expect_code(&o, 2, "run");
    let lines = b.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until_now(),
        "--filter",
        "container=ev",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(
        lines,
        "container create ev\ncontainer start ev\ncontainer die ev\ncontainer destroy ev\n"
    );
    let die = b.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until_now(),
        "--filter",
        "event=die",
        "--filter",
        "container=ev",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(die, "2\n");

    // the kernel's OOM killer: exit 137, OOMKilled, an oom event
    let o = b.run(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    expect_code(&o, 137, "run out of memory");
    assert_eq!(b.inspect("oom", "{{.State.OOMKilled}}"), "true");
    let oom = b.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until_now(),
        "--filter",
        "container=oom",
        "--filter",
        "event=oom",
        "--filter",
        "event=die",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(oom, "oom\ndie\n");
    b.ok(&["run", "--name", "fine", "busybox", "true"]);
    assert_eq!(b.inspect("fine", "{{.State.OOMKilled}}"), "false");

    // followed: a new event shows up while `events` runs
    let mut follow = b
        .cmd()
        .args([
            "events",
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    b.ok(&[
        "run",
        "-d",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/f bs=1M count=8 oflag=direct 2>/dev/null; sleep 100",
    ]);
    let got = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(got.as_deref(), Ok("later"), "followed event");

    // stats has docker's BLOCK I/O column
    let stats = b.ok(&["stats", "--no-stream", "later"]);
    let header = stats.lines().next().unwrap();
    assert!(
        header.contains("NET I/O") && header.contains("BLOCK I/O"),
        "{stats}"
    );
    let row = stats.lines().nth(1).unwrap();
    assert!(!row.contains("--"), "{stats}");

    let o = b.run(&["events", "--filter", "colour=red", "--until", "0s"]);
    expect_code(&o, 1, "bad filter");
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: Invalid filter 'colour'"
    );
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1);
}

fn time_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// SIGKILL of a foreground `berth run` at points all through its setup:
/// `ps` tells the truth after each, and `rm -f` leaves no row, mount,
/// cgroup or process.
#[test]
fn killed_run_mid_setup_leaves_a_truthful_state() {
    let b = berth();
    for (i, delay_ms) in [0u64, 2, 5, 8, 12, 20, 40, 80].into_iter().enumerate() {
        let name = format!("cut{i}");
        let mut child = b
            .cmd()
            .args(["run", "--name", &name, "busybox", "sleep", "30"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let o = b.run(&[
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.State}}",
        ]);
        expect_code(&o, 0, "ps after a killed run");
        for line in stdout(&o).lines() {
            let mut f = line.split_whitespace();
            let (id, n, state) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            assert_eq!(n, name, "{line}");
            let pid: i32 = b.inspect(id, "{{.State.Pid}}").parse().unwrap();
            match state {
                // the container outlived its monitor: its init is there
                "running" => assert!(pid > 0 && Path::new(&format!("/proc/{pid}")).exists()),
                "created" | "exited" => assert_eq!(pid, 0, "{line}"),
                other => panic!("after a kill {delay_ms} ms in: {other} ({line})"),
            }
            b.ok(&["rm", "-f", id]);
            assert!(!cgroup_exists(id), "cgroup of {id} left");
        }
        assert_eq!(b.ok(&["ps", "-aq"]), "");
        assert_eq!(b.mounts(), 0, "mounts left after a kill {delay_ms} ms in");
    }
    let root = b.root.path().to_string_lossy().into_owned();
    let left = Command::new("pgrep").args(["-f", &root]).output().unwrap();
    assert_eq!(stdout(&left), "", "processes left");
}

/// A frozen container's processes die only once thawed: rm -f of a paused
/// container used to wait forever.
#[test]
fn rm_force_removes_a_paused_container() {
    let b = berth();
    b.ok(&["run", "-d", "--name", "frozen", "busybox", "sleep", "1000"]);
    b.ok(&["pause", "frozen"]);
    let mut cmd = b.cmd();
    cmd.args(["rm", "-f", "frozen"]);
    let o = output_via_files(
        Command::new("timeout")
            .arg("60")
            .arg(cmd.get_program())
            .args(cmd.get_args()),
    );
    expect_code(&o, 0, "rm -f of a paused container");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// The capability sets of `grep Cap /proc/self/status` (or of another
/// status file) as name → mask.
fn cap_sets(status: &str) -> std::collections::BTreeMap<String, u64> {
    status
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let mask = u64::from_str_radix(v.trim(), 16).ok()?;
            k.starts_with("Cap").then(|| (k.to_string(), mask))
        })
        .collect()
}

/// `exec --privileged` gives the process every capability berth itself
/// holds (docker's "all", which runc fails to apply on a host whose root
/// lacks one), even in a container started with `--cap-drop ALL`; and no
/// more: nothing inheritable or ambient, nothing beyond berth's own
/// bounding set. The engine's CAP_ names once failed to parse and the
/// process got no capability at all.
#[test]
fn exec_privileged_gets_every_capability_berth_holds() {
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "nocaps",
        "--cap-drop",
        "ALL",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let ours = cap_sets(&std::fs::read_to_string("/proc/self/status").unwrap());
    let held = ours["CapBnd"];
    assert_ne!(held, 0, "the test itself holds no capability");
    let got = cap_sets(&b.ok(&[
        "exec",
        "--privileged",
        "nocaps",
        "grep",
        "Cap",
        "/proc/self/status",
    ]));
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(got[set], held, "{set} of exec --privileged: {got:x?}");
    }
    assert_eq!(got["CapInh"], 0, "{got:x?}");
    assert_eq!(got["CapAmb"], 0, "{got:x?}");
    b.ok(&["rm", "-f", "nocaps"]);
}

/// Attack: a process of a `--cap-drop ALL` container, exec'd without
/// `--privileged` (before and after a privileged exec), must hold no
/// capability; nor may a privileged exec hand any to the container's init.
#[test]
fn attack_plain_exec_in_a_cap_drop_all_container_has_no_capability() {
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "nocaps2",
        "--cap-drop",
        "ALL",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let none = |what: &str, status: &str| {
        let sets = cap_sets(status);
        assert_eq!(sets.len(), 5, "{what}: {status}");
        assert!(sets.values().all(|m| *m == 0), "{what}: {sets:x?}");
    };
    none(
        "a plain exec",
        &b.ok(&["exec", "nocaps2", "grep", "Cap", "/proc/self/status"]),
    );
    b.ok(&["exec", "--privileged", "nocaps2", "true"]);
    none(
        "a plain exec after a privileged one",
        &b.ok(&["exec", "nocaps2", "grep", "Cap", "/proc/self/status"]),
    );
    none(
        "the container's init after a privileged exec",
        &b.ok(&["exec", "nocaps2", "grep", "Cap", "/proc/1/status"]),
    );
    none(
        "a plain exec as root with -u 0",
        &b.ok(&[
            "exec",
            "-u",
            "0",
            "nocaps2",
            "grep",
            "Cap",
            "/proc/self/status",
        ]),
    );
    b.ok(&["rm", "-f", "nocaps2"]);
}

/// A relative `--root`/`--runroot` is taken from where berth was started:
/// their paths go into specs and into the monitor's command line, which
/// another directory would read differently (a detached container, whose
/// monitor runs elsewhere, too).
#[test]
fn relative_store_paths_are_made_absolute() {
    if !berth_testkit::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "needs root, and CI is set"
        );
        eprintln!("skipped relative_store_paths_are_made_absolute: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tar = berth_testkit::busybox_tar(dir.path());
    let run = |args: &[&str]| {
        let o = output_via_files(
            Command::new(BIN)
                .current_dir(dir.path())
                .args(["--root", "store", "--runroot", "run"])
                .args(args),
        );
        expect_code(&o, 0, &args.join(" "));
        stdout(&o)
    };
    run(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "rel:1",
    ]);
    let out = run(&["run", "--rm", "--network", "none", "rel:1", "echo", "ran"]);
    assert_eq!(out.trim(), "ran");
    let id = run(&["run", "-d", "--network", "none", "rel:1", "sleep", "60"]);
    let id = id.trim();
    let logs = run(&["exec", id, "echo", "exec-ran"]);
    assert_eq!(logs.trim(), "exec-ran");
    run(&["rm", "-f", id]);
    run(&["rmi", "rel:1"]);
}

/// `--log-driver none` keeps nothing: no log file grows, `logs` says so in
/// docker's words, and an attached run still prints what the container
/// writes. `local` keeps a log that `logs` reads back.
#[test]
fn log_driver_none_keeps_nothing_and_local_keeps_a_log() {
    let b = berth();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--log-driver",
            "none",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done",
        ])
        .trim()
        .to_string();
    b.ok(&["wait", &id]);
    let log = b.path().join("containers").join(&id).join("ctr.log");
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size, 0, "{} holds {size} bytes", log.display());
    let o = b.run(&["logs", &id]);
    expect_code(&o, 1, "logs of a none-driver container");
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: configured logging driver does not support reading"
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "--log-driver",
        "none",
        "--network",
        "none",
        "busybox",
        "echo",
        "attached",
    ]);
    assert_eq!(out.trim(), "attached");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--log-driver",
            "local",
            "--network",
            "none",
            "busybox",
            "echo",
            "kept",
        ])
        .trim()
        .to_string();
    b.ok(&["wait", &id]);
    assert_eq!(b.ok(&["logs", &id]).trim(), "kept");
}

/// `--log-opt max-size` counts in thousands, as docker's json-file driver
/// reads it (FromHumanSize: dockerd 20.10 rotates `max-size=3k` at 3000
/// bytes): a rotated file of `10k` holds at most 10000 bytes, where a
/// binary reading would let it grow past 10000 up to 10240.
#[test]
fn log_max_size_counts_in_thousands_as_json_file() {
    let b = berth();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--log-opt",
            "max-size=10k",
            "--log-opt",
            "max-file=2",
            "busybox",
            "sh",
            "-c",
            // ~74-byte log lines: two rotations' worth.
            "i=0; while [ $i -lt 400 ]; do echo $i; i=$((i+1)); done",
        ])
        .trim()
        .to_string();
    b.ok(&["wait", &id]);
    let rotated = b.path().join("containers").join(&id).join("ctr.log.1");
    let size = std::fs::metadata(&rotated)
        .unwrap_or_else(|e| panic!("{}: {e}", rotated.display()))
        .len();
    // Filled to within a line of the bound, never past it.
    assert!(
        (9_800..=10_000).contains(&size),
        "ctr.log.1 is {size} bytes"
    );
    let o = b.run(&["run", "--rm", "--log-opt", "max-size=0", "busybox", "true"]);
    expect_code(&o, 125, "max-size=0");
    assert!(
        stderr(&o).contains("max-size must be a positive number"),
        "{}",
        stderr(&o)
    );
}

/// `run --rm` mounts the container's overlay volatile (podman does too: its
/// end need not sync the store's disk), a kept container's stays synced;
/// and a disposable container whose `run` was killed starts again,
/// although overlayfs left its "volatile" marker in the work directory
/// and refuses to mount over it.
#[test]
fn rm_container_overlay_is_volatile_and_starts_again_after_a_killed_run() {
    let b = berth();
    let root_line = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("no root mount in {}", stdout(o)))
            .to_string()
    };
    let o = b.run(&["run", "--rm", "busybox", "cat", "/proc/self/mountinfo"]);
    expect_code(&o, 0, "run --rm");
    let line = root_line(&o);
    assert!(
        line.contains(" - overlay ") && line.contains("volatile"),
        "{line}"
    );
    let o = b.run(&[
        "run",
        "--name",
        "kept",
        "busybox",
        "cat",
        "/proc/self/mountinfo",
    ]);
    expect_code(&o, 0, "run");
    let line = root_line(&o);
    assert!(
        line.contains(" - overlay ") && !line.contains("volatile"),
        "{line}"
    );
    b.ok(&["rm", "kept"]);

    // The foreground run dies with the container running: the container
    // outlives it, then exits, and keeps its row (nobody removed it).
    let mut child = b
        .cmd()
        .args([
            "run",
            "--rm",
            "--name",
            "again",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Its first line says it runs (an end of file instead: the run failed,
    // and the assertion says so rather than waiting).
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "hi\n");
    child.kill().unwrap();
    child.wait().unwrap();
    b.wait_for("again", "{{.State.Status}}", "exited");
    let id = b.inspect("again", "{{.Id}}");
    let marker = b
        .root
        .path()
        .join("containers")
        .join(&id)
        .join("fs/work/work/incompat/volatile");
    assert!(
        marker.exists(),
        "overlayfs's marker at {}",
        marker.display()
    );
    let o = b.run(&["start", "-a", "again"]);
    expect_code(&o, 0, "start -a of the disposable container again");
    assert_eq!(stdout(&o), "hi\n");
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "--rm removed it after its second life"
    );
    assert_eq!(b.mounts(), 0);
}
