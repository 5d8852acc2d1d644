//! `berth compose` through the real binary, as root, with busybox
//! services: depends_on waiting for a healthcheck, scale, recreation only
//! of what changed, `down -v` leaving nothing, interpolation and `.env`,
//! profiles, secrets, services resolving each other by name over the
//! project network's DNS; and bad files, each one line naming the file and
//! the key. Each test has a project name of its own, so they run in
//! parallel. compose_config.rs compares `config` with docker-compose.

#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, root_or_skip, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// A command that ends on SIGTERM at once (busybox's sh as pid 1 would
/// otherwise ignore it and wait out the stop timeout).
const IDLE: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

/// A project directory holding `files` (name, contents).
fn project_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).expect("write a project file");
    }
    d
}

/// A project name of this test's own.
fn unique(test: &str) -> String {
    format!("{test}{}", std::process::id())
}

fn compose(b: &Berth, dir: &Path, project: &str, args: &[&str]) -> Output {
    let mut c = b.cmd();
    c.current_dir(dir)
        .args(["compose", "-p", project])
        .args(args);
    berth_testkit::output_via_files(&mut c)
}

fn compose_ok(b: &Berth, dir: &Path, project: &str, args: &[&str]) -> String {
    let o = compose(b, dir, project, args);
    expect_code(&o, 0, &format!("compose {}", args.join(" ")));
    stdout(&o)
}

/// Polls `compose logs SERVICE` until it holds `want` (30 s at most).
fn logs_until(b: &Berth, dir: &Path, project: &str, service: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = compose_ok(b, dir, project, &["logs", "--no-log-prefix", service]);
        if got.contains(want) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{service}'s logs never held {want:?}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ps -a --format {{.Names}}` lines, and the same for networks and volumes.
fn names(b: &Berth, what: &[&str]) -> Vec<String> {
    b.ok(what).lines().map(String::from).collect()
}

#[test]
fn depends_on_waits_for_the_healthcheck() {
    if !root_or_skip("depends_on_waits_for_the_healthcheck") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("health");
    // db becomes healthy only once it made /shared/ready, a second after
    // it starts; web looks for the file the moment it starts.
    let file = format!(
        r#"services:
  db:
    image: busybox
    command: sh -c "sleep 1; touch /shared/ready; {IDLE}"
    volumes: [shared:/shared]
    healthcheck:
      test: ["CMD", "test", "-f", "/shared/ready"]
      interval: 100ms
      retries: 100
  web:
    image: busybox
    command: sh -c "if test -f /shared/ready; then echo db-was-ready; else echo too-early; fi; {IDLE}"
    volumes: [shared:/shared]
    depends_on:
      db:
        condition: service_healthy
volumes:
  shared:
"#
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let out = logs_until(&b, d.path(), &p, "web", "\n");
    assert_eq!(
        out.trim(),
        "db-was-ready",
        "web started before db was healthy"
    );
    compose_ok(&b, d.path(), &p, &["down", "-v", "-t", "1"]);

    // A dependency that never gets healthy: up fails, naming it, and the
    // dependent, made (as Compose v2 creates every container first) and
    // its start prepared while db was checked, never runs; down leaves
    // no mount behind.
    let bad = format!(
        "services:\n  db:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    healthcheck:\n      test: [\"CMD\", \"false\"]\n      interval: 100ms\n      retries: 2\n  web:\n    image: busybox\n    command: sh -c \"echo web-ran; {IDLE}\"\n    depends_on:\n      db: {{condition: service_healthy}}\n"
    );
    let d = project_dir(&[("compose.yaml", &bad)]);
    let o = compose(&b, d.path(), &p, &["up", "-d"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "up with an unhealthy dependency succeeded"
    );
    assert!(
        stderr(&o).contains(&format!("{p}-db-1 is unhealthy")),
        "{}",
        stderr(&o)
    );
    let web = format!("{p}-web-1");
    assert_eq!(
        b.inspect(&web, "{{.State.Status}} {{.State.StartedAt}}"),
        "created 0001-01-01T00:00:00Z",
        "web was started"
    );
    // Its held start called off: no program, no runtime container left
    // (a second start works).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.inspect(&web, "{{.State.Error}}").contains("called off") {
        assert!(Instant::now() < deadline, "web's held start never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.ok(&["logs", &web]), "", "web's program ran");
    b.ok(&["start", &web]);
    logs_until(&b, d.path(), &p, "web", "web-ran");
    compose_ok(&b, d.path(), &p, &["down", "-t", "0"]);
    assert_eq!(b.mounts(), 0, "down left mounts");
}

/// The held starts begin once what they wait on runs, before the rest of
/// its level has reported: when a sibling of the dependency then fails to
/// start, up fails naming it, the held start is called off (the dependent
/// never runs) and down leaves no container, network or mount behind.
#[test]
fn a_failure_beside_the_dependency_calls_the_held_start_off() {
    if !root_or_skip("a_failure_beside_the_dependency_calls_the_held_start_off") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("heldoff");
    let file = format!(
        "services:\n  db:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 100ms\n  bad:\n    image: busybox\n    command: /no/such/program\n  web:\n    image: busybox\n    command: sh -c \"echo web-ran; {IDLE}\"\n    depends_on:\n      db: {{condition: service_healthy}}\n"
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    let o = compose(&b, d.path(), &p, &["up", "-d"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "up -d with a service that cannot start"
    );
    let err = stderr(&o);
    assert!(err.contains(&format!("{p}-bad-1")), "{err}");
    assert_eq!(
        b.inspect(&format!("{p}-db-1"), "{{.State.Status}}"),
        "running"
    );
    let web = format!("{p}-web-1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.inspect(&web, "{{.State.Error}}").contains("called off") {
        assert!(
            Instant::now() < deadline,
            "web's held start never ended: {err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        b.inspect(&web, "{{.State.Status}} {{.State.StartedAt}}"),
        "created 0001-01-01T00:00:00Z",
        "web was started"
    );
    assert_eq!(b.ok(&["logs", &web]), "", "web's program ran");
    compose_ok(&b, d.path(), &p, &["down", "-t", "0"]);
    let label = format!("label=com.docker.compose.project={p}");
    assert_eq!(
        names(&b, &["ps", "-aq", "--filter", &label]),
        Vec::<String>::new()
    );
    assert!(
        !b.ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|n| n.starts_with(&p)),
        "down left the project's network"
    );
    assert_eq!(b.mounts(), 0, "down left mounts");
}

/// A held start (web, created and its start prepared while db is not yet
/// healthy) has its address on the network, but its name does not lead
/// there until it runs, as docker resolves a container only once it
/// started: neither the network's DNS nor a peer's /etc/hosts knows it
/// while it waits; both do once `up` released it.
#[test]
fn a_held_start_is_named_once_it_runs() {
    if !root_or_skip("a_held_start_is_named_once_it_runs") {
        return;
    }
    // Names the resolver does not know fail at once (nothing on port 9)
    // instead of waiting on the host's resolvers.
    let b = Berth::with_busybox(BIN, &[]).env("BERTH_DNS_UPSTREAM", "127.0.0.1:9");
    let p = unique("heldname");
    let file = format!(
        "services:\n  db:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/go\"]\n      interval: 100ms\n      retries: 1000\n  web:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    depends_on:\n      db: {{condition: service_healthy}}\n  peer:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n"
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    let log = tempfile::tempfile().unwrap();
    let mut up = b
        .cmd()
        .current_dir(d.path())
        .args(["compose", "-p", &p, "up", "-d"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap();
    let (web, peer) = (format!("{p}-web-1"), format!("{p}-peer-1"));
    let web_ip = || {
        let o = b.run(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &web,
        ]);
        stdout(&o).trim().to_string()
    };
    // web's held start attached its network (its address shows), and the
    // peer runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ip = loop {
        let ip = web_ip();
        if !ip.is_empty() && b.inspect(&peer, "{{.State.Status}}") == "running" {
            break ip;
        }
        assert!(Instant::now() < deadline, "web's held start never attached");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(b.inspect(&web, "{{.State.Status}}"), "created");
    for name in ["web", web.as_str()] {
        let o = b.run(&["exec", &peer, "nslookup", name]);
        assert_ne!(
            o.status.code(),
            Some(0),
            "{name} resolved while held: {}",
            stdout(&o)
        );
    }
    let hosts = b.ok(&["exec", &peer, "cat", "/etc/hosts"]);
    assert!(
        !hosts.contains(&ip),
        "held web in the peer's hosts: {hosts}"
    );
    // db healthy: up releases web and ends.
    b.ok(&["exec", &format!("{p}-db-1"), "touch", "/go"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = up.kill();
            let _ = up.wait();
            panic!("up never ended once db was healthy");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "up failed: {}", {
        use std::io::{Read, Seek};
        let mut f = log;
        let mut t = String::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut t).unwrap();
        t
    });
    assert_eq!(b.inspect(&web, "{{.State.Status}}"), "running");
    for name in ["web", web.as_str()] {
        let got = b.ok(&["exec", &peer, "nslookup", name]);
        assert!(got.contains(&ip), "{name} resolved as {got:?}, web is {ip}");
    }
    let hosts = b.ok(&["exec", &peer, "cat", "/etc/hosts"]);
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&format!("{ip}\t")) && l.contains(&web)),
        "web not in the peer's hosts: {hosts}"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "0"]);
}

#[test]
fn scale_up_and_down() {
    if !root_or_skip("scale_up_and_down") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("scale");
    let d = project_dir(&[(
        "compose.yaml",
        &format!("services:\n  web:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n"),
    )]);
    compose_ok(&b, d.path(), &p, &["up", "-d", "--scale", "web=3"]);
    let running = |b: &Berth| {
        let mut n = names(b, &["ps", "--format", "{{.Names}}"]);
        n.sort();
        n
    };
    assert_eq!(running(&b), [1, 2, 3].map(|i| format!("{p}-web-{i}")));
    let labels = b.inspect(&format!("{p}-web-2"), r#"{{index .Config.Labels "com.docker.compose.service"}} {{index .Config.Labels "com.docker.compose.container-number"}} {{index .Config.Labels "com.docker.compose.project"}}"#);
    assert_eq!(labels, format!("web 2 {p}"));
    compose_ok(&b, d.path(), &p, &["up", "-d", "--scale", "web=1"]);
    assert_eq!(running(&b), [format!("{p}-web-1")]);
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn recreate_keeps_anonymous_volumes() {
    if !root_or_skip("recreate_keeps_anonymous_volumes") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("anonvol");
    let file = |v: &str| {
        format!("services:\n  a:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    volumes: [/data]\n    environment: {{V: '{v}'}}\n")
    };
    let d = project_dir(&[("compose.yaml", &file("1"))]);
    let a = format!("{p}-a-1");
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let (id1, vols1) = (b.inspect(&a, "{{.Id}}"), b.ok(&["volume", "ls", "-q"]));
    b.ok(&["exec", &a, "sh", "-c", "echo kept > /data/f"]);
    std::fs::write(d.path().join("compose.yaml"), file("2")).unwrap();
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    assert_ne!(
        b.inspect(&a, "{{.Id}}"),
        id1,
        "a changed and was not recreated"
    );
    // The same volume, with its data; none left behind or made anew.
    assert_eq!(b.ok(&["exec", &a, "cat", "/data/f"]).trim(), "kept");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), vols1);
    compose_ok(&b, d.path(), &p, &["down", "-v", "-t", "1"]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]).trim(), "");
}

#[test]
fn independent_services_start_together_and_a_failure_is_named() {
    if !root_or_skip("independent_services_start_together_and_a_failure_is_named") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("together");
    let d = project_dir(&[(
        "compose.yaml",
        &format!("services:\n  a:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n  bad:\n    image: busybox\n    command: /no/such/program\n  c:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n"),
    )]);
    let o = compose(&b, d.path(), &p, &["up", "-d"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "up -d with a service that cannot start"
    );
    let err = stderr(&o);
    assert!(err.contains(&format!("{p}-bad-1")), "{err}");
    // Its neighbours of the same level started all the same.
    for s in ["a", "c"] {
        assert_eq!(
            b.inspect(&format!("{p}-{s}-1"), "{{.State.Status}}"),
            "running"
        );
    }
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn include_brings_an_application_with_its_own_directory_and_env() {
    let b = Berth::empty(BIN);
    let p = unique("include");
    let d = project_dir(&[(
        "compose.yaml",
        "include:\n  - sub/compose.yaml\nservices:\n  web:\n    image: busybox\n    depends_on: [db]\n",
    )]);
    let sub = d.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // Its own .env, and relative paths from its own directory.
    std::fs::write(sub.join(".env"), "DBCMD=sleep 5\n").unwrap();
    let sub_file = "services:\n  db:\n    image: busybox\n    command: ${DBCMD}\n    volumes: [data:/d, ./x:/x]\nvolumes:\n  data: {}\n";
    std::fs::write(sub.join("compose.yaml"), sub_file).unwrap();
    let out = compose_ok(&b, d.path(), &p, &["config", "--format", "json"]);
    let m: serde_json::Value = serde_json::from_str(&out).expect("config is JSON");
    let db = &m["services"]["db"];
    assert_eq!(db["command"], serde_json::json!(["sleep", "5"]), "{out}");
    assert_eq!(
        db["volumes"][1]["source"],
        sub.join("x").display().to_string(),
        "{out}"
    );
    // The project's resources, named after the including project.
    assert_eq!(m["volumes"]["data"]["name"], format!("{p}_data"), "{out}");
    assert!(m["services"]["web"].is_object(), "{out}");
    // A service both define differently: one line naming the file and key.
    std::fs::write(
        d.path().join("compose.yaml"),
        "include:\n  - sub/compose.yaml\nservices:\n  db:\n    image: busybox\n    command: \"true\"\n",
    )
    .unwrap();
    let o = compose(&b, d.path(), &p, &["config"]);
    expect_code(&o, 1, "config with a conflicting include");
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("compose.yaml: services.db: conflicts with"),
        "{err}"
    );
    // A file including itself: an error, not a loop.
    std::fs::write(
        sub.join("compose.yaml"),
        format!("{sub_file}include:\n  - ../compose.yaml\n"),
    )
    .unwrap();
    std::fs::write(
        d.path().join("compose.yaml"),
        "include:\n  - sub/compose.yaml\n",
    )
    .unwrap();
    let o = compose(&b, d.path(), &p, &["config"]);
    expect_code(&o, 1, "config with an include cycle");
    assert!(stderr(&o).contains("nest more than"), "{}", stderr(&o));
}

#[test]
fn scale_wait_cp_and_attach() {
    if !root_or_skip("scale_wait_cp_and_attach") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("v2cmds");
    let d = project_dir(&[(
        "compose.yaml",
        &format!("services:\n  web:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n  job:\n    image: busybox\n    command: sh -c 'while [ ! -f /tmp/stop ]; do echo tick; sleep 0.1; done; exit 7'\n"),
    )]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let web1 = b.inspect(&format!("{p}-web-1"), "{{.Id}}");
    // scale: one more replica, the first left as it is.
    compose_ok(&b, d.path(), &p, &["scale", "web=2"]);
    assert_eq!(b.inspect(&format!("{p}-web-1"), "{{.Id}}"), web1);
    assert_eq!(
        b.inspect(&format!("{p}-web-2"), "{{.State.Status}}"),
        "running"
    );
    // cp to a service: every replica; from one: the --index asked.
    std::fs::write(d.path().join("f"), "to-all\n").unwrap();
    compose_ok(&b, d.path(), &p, &["cp", "f", "web:/tmp/f"]);
    for i in [1, 2] {
        let got = b.ok(&["exec", &format!("{p}-web-{i}"), "cat", "/tmp/f"]);
        assert_eq!(got, "to-all\n", "replica {i}");
    }
    b.ok(&[
        "exec",
        &format!("{p}-web-2"),
        "sh",
        "-c",
        "echo second > /tmp/g",
    ]);
    compose_ok(&b, d.path(), &p, &["cp", "--index", "2", "web:/tmp/g", "g"]);
    assert_eq!(
        std::fs::read_to_string(d.path().join("g")).unwrap(),
        "second\n"
    );
    let o = compose(&b, d.path(), &p, &["cp", "--index", "3", "web:/tmp/g", "g"]);
    expect_code(&o, 1, "cp from a replica that is not there");
    assert!(
        stderr(&o).contains("no container with index 3"),
        "{}",
        stderr(&o)
    );
    // attach: the container's output, then its exit code once it ends.
    let mut c = b.cmd();
    c.current_dir(d.path())
        .args(["compose", "-p", &p, "attach", "--no-stdin", "job"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().expect("compose attach");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("attach relayed nothing");
    assert_eq!(line, "tick");
    // wait: blocks until job ends, says how, exits with its code.
    let mut w = b.cmd();
    w.current_dir(d.path())
        .args(["compose", "-p", &p, "wait", "job"]);
    let waiter = std::thread::spawn(move || berth_testkit::output_via_files(&mut w));
    b.ok(&["exec", &format!("{p}-job-1"), "touch", "/tmp/stop"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "attach did not end with the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(7), "attach's exit code");
    let o = waiter.join().unwrap();
    expect_code(&o, 7, "compose wait job");
    let job = b.inspect(&format!("{p}-job-1"), "{{.Id}}");
    assert_eq!(
        stdout(&o),
        format!("container \"{job}\" exited with status code 7\n")
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn only_changed_services_are_recreated() {
    if !root_or_skip("only_changed_services_are_recreated") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("recreate");
    let file = |v: &str| {
        format!("services:\n  a:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n  b:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    environment: {{V: '{v}'}}\n")
    };
    let d = project_dir(&[("compose.yaml", &file("1"))]);
    let id = |b: &Berth, s: &str| b.inspect(&format!("{p}-{s}-1"), "{{.Id}}");
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let (a1, b1) = (id(&b, "a"), id(&b, "b"));
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    assert_eq!(
        (id(&b, "a"), id(&b, "b")),
        (a1.clone(), b1.clone()),
        "nothing changed, yet a container was recreated"
    );
    std::fs::write(d.path().join("compose.yaml"), file("2")).unwrap();
    compose_ok(&b, d.path(), &p, &["up", "-d", "--no-recreate"]);
    assert_eq!(id(&b, "b"), b1, "--no-recreate recreated");
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let b2 = id(&b, "b");
    assert_eq!(id(&b, "a"), a1, "a did not change, yet was recreated");
    assert_ne!(b2, b1, "b changed and was not recreated");
    assert_eq!(
        b.inspect(&format!("{p}-b-1"), "{{.State.Status}}"),
        "running"
    );
    compose_ok(&b, d.path(), &p, &["up", "-d", "--force-recreate"]);
    assert_ne!(id(&b, "a"), a1, "--force-recreate kept a");
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn down_v_leaves_nothing() {
    if !root_or_skip("down_v_leaves_nothing") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("downv");
    let file = format!(
        "services:\n  a:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    volumes: [named:/n, /anon]\n    networks: [front, default]\n  b:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    networks: [front]\nnetworks:\n  front: {{}}\nvolumes:\n  named: {{}}\n"
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let mine = |list: Vec<String>| {
        list.into_iter()
            .filter(|n| n.contains(&p))
            .collect::<Vec<_>>()
    };
    let mut nets = mine(names(&b, &["network", "ls", "--format", "{{.Name}}"]));
    nets.sort();
    assert_eq!(nets, [format!("{p}_default"), format!("{p}_front")]);
    assert_eq!(
        mine(names(&b, &["volume", "ls", "--format", "{{.Name}}"])),
        [format!("{p}_named")]
    );
    let all_volumes = names(&b, &["volume", "ls", "-q"]).len();
    assert_eq!(all_volumes, 2, "the anonymous volume and the named one");
    compose_ok(&b, d.path(), &p, &["down", "-v", "-t", "1"]);
    assert!(names(&b, &["ps", "-a", "-q"]).is_empty(), "containers left");
    assert!(
        mine(names(&b, &["network", "ls", "--format", "{{.Name}}"])).is_empty(),
        "networks left"
    );
    assert!(
        names(&b, &["volume", "ls", "-q"]).is_empty(),
        "volumes left"
    );
    assert_eq!(b.mounts(), 0, "mounts left under the store");
}

#[test]
fn interpolation_dotenv_and_the_callers_environment() {
    if !root_or_skip("interpolation_dotenv_and_the_callers_environment") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[])
        .env("FROM_CALLER", "caller")
        .env("BOTH", "caller-wins");
    let p = unique("interp");
    let file = format!(
        "services:\n  a:\n    image: ${{IMAGE}}\n    command: sh -c \"echo $${{GREETING}} ${{FROM_CALLER}} ${{BOTH}} ${{UNSET:-dflt}} ${{EMPTY-keep}}; {IDLE}\"\n    environment:\n      GREETING: ${{GREETING_TEXT:?set GREETING_TEXT}}\n"
    );
    let d = project_dir(&[
        ("compose.yaml", &file),
        (
            ".env",
            "IMAGE=busybox\nGREETING_TEXT=\"hello world\"\nBOTH=dotenv\nEMPTY=\n",
        ),
    ]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let out = logs_until(&b, d.path(), &p, "a", "\n");
    assert_eq!(out.trim(), "hello world caller caller-wins dflt");
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
    // --env-file replaces .env: without GREETING_TEXT the file is refused,
    // in one line naming the file, the key and the message.
    std::fs::write(d.path().join("other.env"), "IMAGE=busybox\n").unwrap();
    let o = compose(&b, d.path(), &p, &["--env-file", "other.env", "up", "-d"]);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert_eq!(berth_testkit::error_lines(&e), 1, "{e}");
    assert!(
        e.contains("compose.yaml: services.a.environment.GREETING: required variable GREETING_TEXT is missing a value: set GREETING_TEXT"),
        "{e}"
    );
}

#[test]
fn profiles_choose_services() {
    if !root_or_skip("profiles_choose_services") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("profiles");
    let file = format!("services:\n  app:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n  debug:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    profiles: [tools]\n");
    let d = project_dir(&[("compose.yaml", &file)]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let running = |b: &Berth| {
        let mut n = names(b, &["ps", "--format", "{{.Names}}"]);
        n.sort();
        n
    };
    assert_eq!(running(&b), [format!("{p}-app-1")]);
    assert_eq!(
        compose_ok(&b, d.path(), &p, &["config", "--services"]),
        "app\n"
    );
    compose_ok(&b, d.path(), &p, &["--profile", "tools", "up", "-d"]);
    assert_eq!(running(&b), [format!("{p}-app-1"), format!("{p}-debug-1")]);
    // Without the profile, debug's container is not an orphan: up leaves
    // it (and says nothing of orphans), down removes it with the rest.
    let o = compose(&b, d.path(), &p, &["up", "-d"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("orphan"), "{}", stderr(&o));
    assert_eq!(running(&b), [format!("{p}-app-1"), format!("{p}-debug-1")]);
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
    assert!(
        names(&b, &["ps", "-a", "-q"]).is_empty(),
        "down left a profile's container"
    );
}

#[test]
fn secrets_from_a_file_and_the_environment() {
    if !root_or_skip("secrets_from_a_file_and_the_environment") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]).env("API_TOKEN", "tok-from-env");
    let p = unique("secrets");
    let file = format!(
        "services:\n  a:\n    image: busybox\n    command: sh -c \"cat /run/secrets/db_password /run/secrets/token /etc/app.conf; echo; {IDLE}\"\n    secrets: [db_password, {{source: api, target: token}}]\n    configs: [{{source: conf, target: /etc/app.conf}}]\nsecrets:\n  db_password:\n    file: ./pw.txt\n  api:\n    environment: API_TOKEN\nconfigs:\n  conf:\n    content: conf-inline\n"
    );
    let d = project_dir(&[("compose.yaml", &file), ("pw.txt", "pw-from-file;")]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let out = logs_until(&b, d.path(), &p, "a", "\n");
    assert_eq!(out.trim(), "pw-from-file;tok-from-envconf-inline");
    // Read-only in the container.
    let ro = b.inspect(
        &format!("{p}-a-1"),
        r#"{{range .Mounts}}{{if eq .Destination "/run/secrets/token"}}{{.RW}}{{end}}{{end}}"#,
    );
    assert_eq!(ro, "false");
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn services_resolve_each_other_by_name_and_alias() {
    if !root_or_skip("services_resolve_each_other_by_name_and_alias") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("dns");
    // nslookup asks DNS only (never /etc/hosts): the network's resolver.
    let look = |name: &str| {
        format!("for i in $$(seq 100); do nslookup {name} >/tmp/o 2>&1 && break; sleep 0.1; done; grep -A1 '^Name:' /tmp/o | tail -1")
    };
    let file = format!(
        "services:\n  a:\n    image: busybox\n    command: sh -c \"{}; {IDLE}\"\n  b:\n    image: busybox\n    command: sh -c \"{}; {IDLE}\"\n    networks:\n      default:\n        aliases: [bee]\n",
        look("b"),
        look("a"),
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let ip = |s: &str| {
        b.inspect(
            &format!("{p}-{s}-1"),
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        )
    };
    let (ip_a, ip_b) = (ip("a"), ip("b"));
    assert!(!ip_a.is_empty() && ip_a != ip_b, "{ip_a} {ip_b}");
    let from_a = logs_until(&b, d.path(), &p, "a", "Address");
    assert!(
        from_a.contains(&ip_b),
        "a resolved b as {from_a:?}, b is {ip_b}"
    );
    let from_b = logs_until(&b, d.path(), &p, "b", "Address");
    assert!(
        from_b.contains(&ip_a),
        "b resolved a as {from_b:?}, a is {ip_a}"
    );
    // The alias, from a second container of a's service (run by exec-less
    // means: scale a to 2, whose new container looks up bee).
    let alias = file.replacen(&look("b"), &look("bee"), 1);
    std::fs::write(d.path().join("compose.yaml"), alias).unwrap();
    compose_ok(&b, d.path(), &p, &["up", "-d", "a"]);
    let via_alias = logs_until(&b, d.path(), &p, "a", "Address");
    assert!(
        via_alias.contains(&ip_b),
        "a resolved bee as {via_alias:?}, b is {ip_b}"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn bad_files_are_one_line_naming_file_and_key() {
    // Loading needs no container: no root either (the store is a temp dir).
    let b = Berth::empty(BIN);
    let cases: &[(&str, &str, &str)] = &[
        (
            "services:\n  web:\n    image: busybox\n    imagee: x\n",
            "services.web",
            "\"imagee\"",
        ),
        (
            "services:\n  web:\n    image: busybox\n    cap_add: ALL\n",
            "services.web.cap_add",
            "array",
        ),
        (
            "services:\n  web:\n    image: busybox\n    volumes: [data:/d]\n",
            "services.web.volumes.0",
            "undefined volume data",
        ),
        (
            "services:\n  web:\n    image: busybox\n    depends_on: [db]\n",
            "services.web.depends_on.db",
            "undefined service \"db\"",
        ),
        (
            "services:\n  web:\n    image: busybox\n    networks: [front]\n",
            "services.web.networks.front",
            "undefined network front",
        ),
        (
            "services:\n  web:\n    image: busybox\n    ports: [\"x:80\"]\n",
            "services.web.ports.0",
            "invalid port",
        ),
        (
            "services:\n  web:\n    image: ${NOPE:?needed}\n",
            "services.web.image",
            "required variable NOPE",
        ),
        (
            "services:\n  web:\n    image: $\n",
            "services.web.image",
            "invalid interpolation",
        ),
        ("services:\n  web: [\n", "", "compose.yaml: "),
        ("servics:\n  web: {}\n", "(top level)", "\"servics\""),
        (
            "services:\n  web:\n    command: echo\n",
            "services.web.image",
            "needs an image or a build",
        ),
    ];
    for (text, path, problem) in cases {
        let d = project_dir(&[("compose.yaml", text)]);
        let o = compose(&b, d.path(), "bad", &["config"]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{text}: {e}");
        assert_eq!(berth_testkit::error_lines(&e), 1, "{text}: {e}");
        let file = d.path().join("compose.yaml").display().to_string();
        assert!(
            e.contains(&format!("{file}: {path}")),
            "{text}: {e} lacks {file}: {path}"
        );
        assert!(e.contains(problem), "{text}: {e} lacks {problem}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // No file at all.
    let d = tempfile::tempdir().unwrap();
    let o = compose(&b, d.path(), "bad", &["config"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no configuration file provided"),
        "{}",
        stderr(&o)
    );
    // A bad project name.
    let d = project_dir(&[("compose.yaml", "services: {}\n")]);
    let o = compose(&b, d.path(), "Bad Name", &["config"]);
    assert!(
        stderr(&o).contains("invalid project name \"Bad Name\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exec_and_run_one_off_containers() {
    if !root_or_skip("exec_and_run_one_off_containers") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("execrun");
    let file = format!("services:\n  a:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    environment: {{FROM_FILE: f}}\n");
    let d = project_dir(&[("compose.yaml", &file)]);
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    let o = compose(
        &b,
        d.path(),
        &p,
        &[
            "exec",
            "-T",
            "-e",
            "X=7",
            "a",
            "sh",
            "-c",
            "echo $FROM_FILE; exit $X",
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "f\n");
    let o = compose(
        &b,
        d.path(),
        &p,
        &["run", "--rm", "a", "sh", "-c", "echo one-off $FROM_FILE"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one-off f\n");
    let o = compose(
        &b,
        d.path(),
        &p,
        &["run", "-e", "V=3", "a", "sh", "-c", "exit $V"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let mut all = names(&b, &["ps", "-a", "--format", "{{.Names}}"]);
    all.sort();
    assert_eq!(
        all.len(),
        2,
        "--rm left its container, or the other is gone: {all:?}"
    );
    assert_eq!(all[0], format!("{p}-a-1"));
    assert!(all[1].starts_with(&format!("{p}-a-run-")), "{all:?}");
    assert_eq!(
        b.inspect(
            &all[1],
            r#"{{index .Config.Labels "com.docker.compose.oneoff"}}"#
        ),
        "True"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
    assert!(
        names(&b, &["ps", "-a", "-q"]).is_empty(),
        "down left the one-off"
    );
}

#[test]
fn attached_up_prefixes_output_and_aborts_on_exit() {
    if !root_or_skip("attached_up_prefixes_output_and_aborts_on_exit") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("attached");
    let file = format!(
        "services:\n  a:\n    image: busybox\n    command: sh -c \"echo hello from a; {IDLE}\"\n  b:\n    image: busybox\n    command: sh -c \"sleep 0.5; echo bye; exit 4\"\n"
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    let o = compose(
        &b,
        d.path(),
        &p,
        &["up", "--no-color", "--exit-code-from", "b"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let out = stdout(&o);
    let (na, nb) = (format!("{p}-a-1"), format!("{p}-b-1"));
    let w = na.len();
    assert!(
        out.contains(&format!("{na:<w$}  | hello from a\n")),
        "{out}"
    );
    assert!(out.contains(&format!("{nb:<w$}  | bye\n")), "{out}");
    assert_eq!(
        b.inspect(&na, "{{.State.Status}}"),
        "exited",
        "a was not stopped when b exited"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn attached_up_stops_everything_on_ctrl_c() {
    if !root_or_skip("attached_up_stops_everything_on_ctrl_c") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("ctrlc");
    let file = format!("services:\n  a:\n    image: busybox\n    command: sh -c \"echo ready; {IDLE}\"\n  b:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n");
    let d = project_dir(&[("compose.yaml", &file)]);
    let out = d.path().join("out");
    let mut c = b.cmd();
    c.current_dir(d.path())
        .args(["compose", "-p", &p, "up", "--no-color"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("| ready")
    {
        assert!(Instant::now() < deadline, "no output from the attached up");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "up did not end after ctrl-c");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    for s in ["a", "b"] {
        assert_eq!(
            b.inspect(&format!("{p}-{s}-1"), "{{.State.Status}}"),
            "exited"
        );
    }
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}

#[test]
fn up_wait_returns_once_healthy() {
    if !root_or_skip("up_wait_returns_once_healthy") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("wait");
    let file = format!(
        "services:\n  a:\n    image: busybox\n    command: sh -c \"sleep 1; touch /tmp/ok; {IDLE}\"\n    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]\n      interval: 100ms\n      retries: 100\n  b:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n"
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    compose_ok(&b, d.path(), &p, &["up", "-d", "--wait"]);
    assert_eq!(
        b.inspect(&format!("{p}-a-1"), "{{.State.Health.Status}}"),
        "healthy"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
    let never = file
        .replace("\"test\", \"-f\", \"/tmp/ok\"", "\"false\"")
        .replace("retries: 100", "retries: 2");
    std::fs::write(d.path().join("compose.yaml"), never).unwrap();
    let o = compose(&b, d.path(), &p, &["up", "-d", "--wait"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains(&format!("{p}-a-1 is unhealthy")),
        "{}",
        stderr(&o)
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "0"]);
}

#[test]
fn build_then_down_rmi_local() {
    if !root_or_skip("build_then_down_rmi_local") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("build");
    let d = project_dir(&[(
        "compose.yaml",
        "services:\n  app:\n    build:\n      context: ./app\n      args: {GREETING: built-by-compose}\n",
    )]);
    std::fs::create_dir(d.path().join("app")).unwrap();
    std::fs::write(
        d.path().join("app/Dockerfile"),
        "FROM busybox\nARG GREETING=none\nRUN echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
    )
    .unwrap();
    let out = compose_ok(&b, d.path(), &p, &["up", "--no-color"]);
    let name = format!("{p}-app-1");
    assert!(
        out.contains(&format!("{name}  | built-by-compose\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{name} exited with code 0\n")),
        "{out}"
    );
    let image = format!("{p}-app");
    assert_eq!(b.inspect(&name, "{{.Config.Image}}"), image);
    compose_ok(&b, d.path(), &p, &["down", "--rmi", "local"]);
    let o = b.run(&["image", "inspect", &image]);
    assert_ne!(o.status.code(), Some(0), "down --rmi local kept {image}");
}

/// `stop`, `rm -s` and `down` stop a service before what it depends on (web's
/// stop takes half a second, so stopping both at once would write db's
/// line first); `restart` goes the other way, db restarted before web.
/// Each service notes its start and stop in a file on the host.
#[test]
fn stop_down_and_restart_follow_the_dependencies() {
    if !root_or_skip("stop_down_and_restart_follow_the_dependencies") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("order");
    let svc = |name: &str, pause: &str| {
        format!(
            "    image: busybox\n    volumes: [\"./shared:/shared\"]\n    command: sh -c \"echo {name}-up >> /shared/order; trap '{pause}echo {name}-down >> /shared/order; exit 0' TERM; sleep 3600 & wait\"\n"
        )
    };
    let file = format!(
        "services:\n  db:\n{}  web:\n{}    depends_on: [db]\n",
        svc("db", ""),
        svc("web", "sleep 0.5; ")
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    std::fs::create_dir(d.path().join("shared")).unwrap();
    let order = d.path().join("shared/order");
    // The lines written since the last look.
    let mut seen = 0;
    let mut next = |want: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&order).unwrap_or_default();
            let lines: Vec<String> = text.lines().skip(seen).map(String::from).collect();
            if lines.len() >= want {
                seen += lines.len();
                return lines;
            }
            assert!(Instant::now() < deadline, "only {lines:?} of {want} lines");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    assert_eq!(next(2), ["db-up", "web-up"]);
    compose_ok(&b, d.path(), &p, &["stop", "-t", "5"]);
    assert_eq!(next(2), ["web-down", "db-down"], "stop's order");
    compose_ok(&b, d.path(), &p, &["start"]);
    assert_eq!(next(2), ["db-up", "web-up"]);
    compose_ok(&b, d.path(), &p, &["restart", "-t", "5"]);
    assert_eq!(
        next(4),
        ["db-down", "db-up", "web-down", "web-up"],
        "restart's order"
    );
    // rm -s stops as stop does (docker-compose 1.29's rm -s is its
    // project.stop), then removes.
    compose_ok(&b, d.path(), &p, &["rm", "-s", "-f"]);
    assert_eq!(next(2), ["web-down", "db-down"], "rm -s's order");
    assert_eq!(compose_ok(&b, d.path(), &p, &["ps", "-a", "-q"]), "");
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    assert_eq!(next(2), ["db-up", "web-up"]);
    compose_ok(&b, d.path(), &p, &["down", "-t", "5"]);
    assert_eq!(next(2), ["web-down", "db-down"], "down's order");
}

/// The lines of `file` once it has `want` of them (30 s at most).
fn lines_when(file: &Path, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= want {
            return lines;
        }
        assert!(Instant::now() < deadline, "only {lines:?} of {want} lines");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One side of a comparison: `compose ARGS` with `input` on stdin, its
/// exit code, stdout and stderr.
type Peer<'a> = dyn Fn(&str, &str) -> (i32, String, String) + 'a;

/// The rm scenario on one peer: `rm -s` with no answer (stopped in
/// reverse dependency order, asked about, nothing removed), `rm` answered
/// y (removed), `rm` of nothing. Returns the services' start and stop
/// lines and the three outputs, names in Compose v2's form and in order.
fn rm_scenario(run: &Peer<'_>, order: &Path) -> (Vec<String>, Vec<String>) {
    let ok = |args: &str, input: &str| {
        let (code, out, err) = run(args, input);
        assert_eq!(code, 0, "compose {args}: {out}{err}");
        // docker-compose 1.29 joins with _, Compose v2 with -; the order
        // of the names it lists is not the point.
        let out = out.replace('_', "-");
        out.lines()
            .map(|l| match l.strip_prefix("Going to remove ") {
                Some(names) => {
                    let mut names: Vec<&str> = names.split(", ").collect();
                    names.sort_unstable();
                    format!("Going to remove {}", names.join(", "))
                }
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let count = || ok("ps -a -q", "").lines().filter(|l| !l.is_empty()).count();
    ok("up -d", "");
    lines_when(order, 2);
    let asked = ok("rm -s", "");
    let lines = lines_when(order, 4);
    assert_eq!(count(), 2, "rm with no answer removed something");
    let removed = ok("rm", "y\n");
    assert_eq!(count(), 0, "rm answered y left something");
    let nothing = ok("rm", "");
    (lines, vec![asked, removed, nothing])
}

/// `rm` as Debian's docker-compose 1.29 does it against a private dockerd
/// (the same project, each service noting its start and stop in a file):
/// `-s` stops a service before what it depends on; without `-f` it names
/// what it would remove and asks, removing only on y; with nothing to
/// remove it says so.
#[test]
fn rm_stops_in_order_and_asks_as_docker_compose_1_29_does() {
    let test = "rm_stops_in_order_and_asks_as_docker_compose_1_29_does";
    if !root_or_skip(test) {
        return;
    }
    if !berth_testkit::snippet::installed("docker-compose") {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: docker-compose needed, and CI is set"
        );
        eprintln!("skipped {test}: docker-compose is not installed");
        return;
    }
    let Some(dockerd) = berth_testkit::dockerd::Dockerd::start(&[]) else {
        return;
    };
    let svc = |name: &str, pause: &str| {
        format!(
            "    image: ${{IMG}}\n    network_mode: none\n    volumes: [\"./shared:/shared\"]\n    command: sh -c \"echo {name}-up >> /shared/order; trap '{pause}echo {name}-down >> /shared/order; exit 0' TERM; sleep 3600 & wait\"\n"
        )
    };
    let file = format!(
        "services:\n  db:\n{}  web:\n{}    depends_on: [db]\n",
        svc("db", ""),
        svc("web", "sleep 0.5; ")
    );
    let p = unique("rms");

    let d = project_dir(&[("docker-compose.yml", &file)]);
    std::fs::create_dir(d.path().join("shared")).unwrap();
    let dc = |args: &str, input: &str| {
        let out = dockerd.sh(&format!(
            "cd {} && printf '{input}' | IMG=bb:1 DOCKER_HOST=${{D##* }} docker-compose -p {p} {args}",
            d.path().display()
        ));
        (out.code(), out.stdout, out.stderr)
    };
    let theirs = rm_scenario(&dc, &d.path().join("shared/order"));
    dc("down", "");

    let b = Berth::with_busybox(BIN, &[]).env("IMG", "busybox");
    let d = project_dir(&[("docker-compose.yml", &file)]);
    std::fs::create_dir(d.path().join("shared")).unwrap();
    let berth = |args: &str, input: &str| {
        use std::io::Write;
        let mut child = b
            .cmd()
            .current_dir(d.path())
            .args(["compose", "-p", &p])
            .args(args.split_whitespace())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A command that does not read its input closes the pipe first.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        let o = child.wait_with_output().unwrap();
        (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
    };
    let ours = rm_scenario(&berth, &d.path().join("shared/order"));
    assert_eq!(
        theirs.0,
        ["db-up", "web-up", "web-down", "db-down"],
        "docker-compose 1.29's order"
    );
    assert_eq!(ours, theirs, "berth (left), docker-compose 1.29 (right)");
}

#[test]
fn lifecycle_commands_ports_and_events() {
    if !root_or_skip("lifecycle_commands_ports_and_events") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("life");
    let port = berth_testkit::registry::free_port();
    let file = format!(
        "services:\n  web:\n    image: busybox\n    command: sh -c \"trap 'exit 0' TERM; echo ok > /www/index.html; httpd -f -p 80 -h /www & wait\"\n    tmpfs: [/www]\n    ports: [\"127.0.0.1:{port}:80\"]\n  other:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n"
    );
    let d = project_dir(&[("compose.yaml", &file)]);
    // The project's events, from before it exists.
    let events = d.path().join("events");
    let mut c = b.cmd();
    c.current_dir(d.path())
        .args(["compose", "-p", &p, "events", "--json", "web"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&events).unwrap())
        .stderr(std::process::Stdio::null());
    let watcher = c.spawn().unwrap();
    // The stream begins where the journal is when it opens the store:
    // `up` waits until it has (else its first events may come before).
    let fds = format!("/proc/{}/fd", watcher.id());
    let _watcher = KillOnDrop(watcher);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&fds)
        .into_iter()
        .flatten()
        .flatten()
        .any(|f| {
            std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy().contains("berth.db"))
        })
    {
        assert!(
            Instant::now() < deadline,
            "compose events never opened the store"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    assert_eq!(
        compose_ok(&b, d.path(), &p, &["port", "web", "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    // The published port answers from the host.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            if r.contains("200") {
                break r;
            }
        }
        assert!(Instant::now() < deadline, "nothing answered on {port}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body.ends_with("ok\n"), "{body}");
    let state = |b: &Berth, s: &str| b.inspect(&format!("{p}-{s}-1"), "{{.State.Status}}");
    compose_ok(&b, d.path(), &p, &["stop", "other"]);
    assert_eq!(
        (state(&b, "web"), state(&b, "other")),
        ("running".into(), "exited".into())
    );
    let ps = compose_ok(&b, d.path(), &p, &["ps", "--services"]);
    assert_eq!(ps, "web\n", "ps without -a shows running services only");
    let ps = compose_ok(
        &b,
        d.path(),
        &p,
        &["ps", "-a", "--format", "{{.Service}} {{.State}}"],
    );
    assert_eq!(ps, "other exited\nweb running\n");
    compose_ok(&b, d.path(), &p, &["start"]);
    assert_eq!(state(&b, "other"), "running");
    let started = b.inspect(&format!("{p}-web-1"), "{{.State.StartedAt}}");
    compose_ok(&b, d.path(), &p, &["restart", "web"]);
    assert_ne!(
        b.inspect(&format!("{p}-web-1"), "{{.State.StartedAt}}"),
        started,
        "restart did not restart"
    );
    compose_ok(&b, d.path(), &p, &["pause", "other"]);
    assert_eq!(state(&b, "other"), "paused");
    compose_ok(&b, d.path(), &p, &["unpause", "other"]);
    compose_ok(&b, d.path(), &p, &["kill", "other"]);
    // A signal sent; its end is recorded by the container's monitor.
    b.wait_for(&format!("{p}-other-1"), "{{.State.Status}}", "exited");
    compose_ok(&b, d.path(), &p, &["rm", "-f", "other"]);
    assert!(
        b.run(&["inspect", &format!("{p}-other-1")]).status.code() != Some(0),
        "rm left other"
    );
    let ls = compose_ok(&b, d.path(), &p, &["ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&p) && l.contains("running(1)")),
        "{ls}"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
    // web's start, restart and stop were seen, and nothing of other's.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let actions: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .inspect(|v| assert_eq!(v["service"], "web", "{v}"))
            .map(|v| v["action"].as_str().unwrap_or("").to_string())
            .collect();
        if ["create", "start", "restart", "destroy"]
            .iter()
            .all(|a| actions.iter().any(|x| x == a))
        {
            break;
        }
        assert!(Instant::now() < deadline, "events seen: {actions:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child ended with the test, even a failed one (an `events` left
/// running would outlive it).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn declared_networks_fixed_addresses_external_and_orphans() {
    if !root_or_skip("declared_networks_fixed_addresses_external_and_orphans") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let p = unique("nets");
    let ext = format!("{p}-ext");
    b.ok(&["network", "create", &ext]);
    // A subnet no other test (each in 10.196/16 to 10.198/16, or the
    // default pools from 10.199) or host route holds: tried in turn, as
    // the other tests do, since they run at once.
    let base = std::process::id() % 250;
    let mut chosen = None;
    let mut last = String::new();
    for i in 0..50 {
        let subnet = format!("10.195.{}.0/24", (base + i * 7) % 250);
        let fixed = subnet.replace(".0/24", ".77");
        let file = format!(
            "services:\n  a:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n    networks:\n      front: {{ipv4_address: {fixed}, aliases: [fa]}}\n      outside: {{aliases: [oa]}}\n  b:\n    image: busybox\n    command: sh -c \"{IDLE}\"\nnetworks:\n  front:\n    internal: true\n    ipam:\n      config: [{{subnet: {subnet}}}]\n  outside:\n    external: true\n    name: {ext}\n"
        );
        let d = project_dir(&[("compose.yaml", &file)]);
        let o = compose(&b, d.path(), &p, &["up", "-d"]);
        if o.status.success() {
            chosen = Some((d, file, fixed));
            break;
        }
        last = stderr(&o);
        assert!(last.contains("overlaps"), "compose up -d: {last}");
    }
    let (d, file, fixed) = chosen.unwrap_or_else(|| panic!("no free subnet: {last}"));
    let a = format!("{p}-a-1");
    assert_eq!(
        b.inspect(
            &a,
            &format!("{{{{(index .NetworkSettings.Networks \"{p}_front\").IPAddress}}}}")
        ),
        fixed
    );
    let nets = b.inspect(
        &a,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    );
    assert_eq!(nets, format!("{ext} {p}_front"));
    // Each network its own aliases (the service's name on both).
    let id = b.inspect(&a, "{{.Id}}");
    let aliases = b.inspect(
        &a,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.Aliases}}; {{end}}",
    );
    assert_eq!(
        aliases,
        format!(
            "{ext} [a oa {}]; {p}_front [a fa {}];",
            &id[..12],
            &id[..12]
        )
    );
    let front = |f: &str| {
        b.ok(&["network", "inspect", "-f", f, &format!("{p}_front")])
            .trim()
            .to_string()
    };
    assert_eq!(front("{{.Internal}}"), "true");
    assert_eq!(
        front(r#"{{index .Labels "com.docker.compose.network"}}"#),
        "front"
    );
    // b leaves the file: its container is an orphan, said and kept, then
    // removed with --remove-orphans.
    let without_b = file.replace(
        &format!("  b:\n    image: busybox\n    command: sh -c \"{IDLE}\"\n"),
        "",
    );
    std::fs::write(d.path().join("compose.yaml"), without_b).unwrap();
    let o = compose(&b, d.path(), &p, &["up", "-d"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("orphan containers ([{p}-b-1])")),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        b.inspect(&format!("{p}-b-1"), "{{.State.Status}}"),
        "running"
    );
    compose_ok(&b, d.path(), &p, &["up", "-d", "--remove-orphans"]);
    assert!(
        b.run(&["inspect", &format!("{p}-b-1")]).status.code() != Some(0),
        "the orphan is still there"
    );
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
    // The external network is the user's: down leaves it.
    assert_eq!(
        b.ok(&["network", "inspect", "-f", "{{.Name}}", &ext])
            .trim(),
        ext
    );
    assert!(
        b.run(&["network", "inspect", &format!("{p}_front")])
            .status
            .code()
            != Some(0),
        "down left front"
    );
}

#[test]
fn up_pulls_a_missing_image_and_pull_policy_never_refuses() {
    if !root_or_skip("up_pulls_a_missing_image_and_pull_policy_never_refuses") {
        return;
    }
    let reg = berth_testkit::registry::Registry::start("", "");
    let image = format!("{}/compose/bb:1", reg.addr());
    // Pushed by compose push from one store, pulled by compose up into
    // another.
    let pusher = Berth::with_busybox(BIN, &[]);
    pusher.ok(&["tag", "busybox", &image]);
    let b = Berth::empty(BIN);
    let p = unique("pull");
    let file = |policy: &str| {
        format!("services:\n  a:\n    image: {image}\n    pull_policy: {policy}\n    command: sh -c \"echo pulled-and-ran; {IDLE}\"\n")
    };
    let d = project_dir(&[("compose.yaml", &file("never"))]);
    compose_ok(&pusher, d.path(), &p, &["push", "-q"]);
    let o = compose(&b, d.path(), &p, &["up", "-d"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not found locally"), "{}", stderr(&o));
    std::fs::write(d.path().join("compose.yaml"), file("missing")).unwrap();
    compose_ok(&b, d.path(), &p, &["up", "-d"]);
    logs_until(&b, d.path(), &p, "a", "pulled-and-ran");
    compose_ok(&b, d.path(), &p, &["down", "-t", "1"]);
}
