//! berth run by an ordinary user, no sudo anywhere (issue 18): each test
//! makes (once per machine) an unprivileged user with subordinate ids and
//! runs berth as that user with XDG directories of its own, then checks
//! what the host sees: the container's root is the user, files keep the
//! user's ids, -p is reachable from the host's loopback, one user's
//! containers are invisible to another.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;

use berth_testkit::rootless::{ensure_user, first_subuid, ready_or_skip, RootlessBerth, User};
use berth_testkit::{expect_code, host_uids, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// The test user with subordinate ranges.
const USER: &str = "berth-rootless-test";
/// A second user, for isolation between users.
const OTHER: &str = "berth-rootless-other";
/// A user without subordinate ranges.
const NO_IDS: &str = "berth-rootless-noids";

fn user(test: &str) -> Option<User> {
    ready_or_skip(test).then(|| ensure_user(USER, true))
}

/// A fresh store for the test user with busybox in it.
fn berth(test: &str) -> Option<RootlessBerth> {
    let u = user(test)?;
    // Any run with a network (`--network host` included) starts pasta, which
    // needs /dev/net/tun: opened here, not left to whichever test ran first.
    berth_testkit::rootless::open_tun_to_users();
    let b = RootlessBerth::new(&u, BIN);
    b.import_busybox("busybox");
    Some(b)
}

#[test]
fn run_exec_logs_ps_stop_rm_as_an_ordinary_user() {
    let Some(b) = berth("run_exec_logs_ps_stop_rm_as_an_ordinary_user") else {
        return;
    };
    // The store and run state are the user's XDG ones, the user's own.
    let store = b.data_home().join("berth");
    assert_eq!(std::fs::metadata(&store).unwrap().uid(), b.user.uid);
    assert!(b.runtime_dir().join("berth").is_dir());
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "hi"]),
        "hi\n"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "host", "busybox", "id", "-u"]),
        "0\n"
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]);
    assert_eq!(
        b.ok(&["exec", "c1", "cat", "/proc/1/cmdline"]),
        "sleep\x00300\x00"
    );
    assert_eq!(b.ok(&["logs", "c1"]), "started\n");
    assert_eq!(
        b.ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
            .split(' ')
            .next(),
        Some("c1")
    );
    b.ok(&["stop", "-t", "1", "c1"]);
    let st = b.ok(&["inspect", "-f", "{{.State.Status}}", "c1"]);
    assert_eq!(st.trim(), "exited");
    b.ok(&["rm", "c1"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // Every command after the first joined the one namespace.
    let pause = b.pause_pid().expect("a pause process");
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "readlink",
        "/proc/self/ns/user",
    ]);
    assert_eq!(out.trim(), ns(&pause.to_string()).to_string_lossy());
}

#[test]
fn parallel_first_commands_make_one_namespace() {
    let Some(b) = berth("parallel_first_commands_make_one_namespace") else {
        return;
    };
    // The import made a namespace: gone, as after a reboot, so that the
    // next commands are each the first.
    let old = b.pause_pid().expect("a pause process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{old}/cmdline")).exists()
        && std::fs::read(format!("/proc/{old}/cmdline")).is_ok_and(|c| !c.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "pause process {old} lives on"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Four at once: one makes the namespace (under the lock), the others
    // wait and join it; each container says which namespace it is in.
    let out = b.sh(
        "for i in 1 2 3 4; do $BERTH run --rm --network none busybox readlink /proc/self/ns/user \
         > ns.$i & done; wait; cat ns.*",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Vec<String> = berth_testkit::stdout(&out)
        .lines()
        .map(String::from)
        .collect();
    let pause = b.pause_pid().expect("a new pause process");
    assert_ne!(pause, old);
    let ns = std::fs::read_link(format!("/proc/{pause}/ns/user")).unwrap();
    assert_eq!(seen, vec![ns.to_string_lossy().into_owned(); 4]);
    let dir = b.dir().to_string_lossy().into_owned();
    let pauses = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let read = |f: &str| std::fs::read(e.path().join(f)).unwrap_or_default();
            String::from_utf8_lossy(&read("cmdline")).contains("__rootless-pause")
                && String::from_utf8_lossy(&read("environ")).contains(&dir)
        })
        .count();
    assert_eq!(pauses, 1, "one pause process for the user's store");
}

#[test]
fn container_root_is_the_user_and_other_ids_are_subordinate_ones() {
    let Some(b) = berth("container_root_is_the_user_and_other_ids_are_subordinate_ones") else {
        return;
    };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "rr",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "uu",
        "--network",
        "none",
        "--user",
        "1000",
        "busybox",
        "sleep",
        "300",
    ]);
    let pid = |n: &str| {
        b.ok(&["inspect", "-f", "{{.State.Pid}}", n])
            .trim()
            .to_string()
    };
    assert_eq!(
        host_uids(&pid("rr")),
        vec![b.user.uid; 4],
        "root is the user"
    );
    let sub = first_subuid(&b.user);
    assert_eq!(
        host_uids(&pid("uu")),
        vec![sub + 999; 4],
        "uid 1000 is a subordinate id"
    );
    assert_ne!(b.user.uid, 0);
}

#[test]
fn resource_limits_are_refused_with_the_reason_on_cgroup_v1() {
    let Some(b) = berth("resource_limits_are_refused_with_the_reason_on_cgroup_v1") else {
        return;
    };
    if berth_runtime::cgroups::host_layout() != berth_runtime::cgroups::Layout::Legacy {
        eprintln!("skipped the refusal: this host has cgroup v2, where delegation decides");
        return;
    }
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "16m",
        "busybox",
        "true",
    ]);
    expect_code(&o, 125, "a memory limit rootless on cgroup v1");
    let e = stderr(&o);
    assert!(e.contains("memory") && e.contains("cgroup v1"), "{e}");
    // Without limits no cgroup is needed, and the run works.
    b.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
}

/// An HTTP GET of `path` at 127.0.0.1:`port` from the host; the body.
fn http_get(port: u16, path: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if r.contains("\r\n\r\n") => return r.split("\r\n\r\n").nth(1).unwrap().into(),
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => panic!("GET 127.0.0.1:{port}{path}: {other:?}"),
        }
    }
}

#[test]
fn published_port_reaches_the_container_and_it_reaches_the_hosts_loopback() {
    let Some(b) = berth("published_port_reaches_the_container_and_it_reaches_the_hosts_loopback")
    else {
        return;
    };
    let port = berth_testkit::free_port();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        "echo served-by-container > /tmp/i; exec httpd -f -p 80 -h /tmp",
    ]);
    assert_eq!(http_get(port, "/i"), "served-by-container\n");
    // Outbound: a service on the host's 127.0.0.1 answers at the gateway.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = [0u8; 1024];
        let _ = s.read(&mut req);
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nfrom-host\n")
            .unwrap();
    });
    let out = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("wget -qO- http://$(ip route | awk '/default/ {{print $3}}'):{host_port}/"),
    ]);
    assert_eq!(out, "from-host\n");
    server.join().unwrap();
    // The network stack ends with its container: none of this store's is
    // left once the containers are gone.
    assert_eq!(pastas_of(&b).len(), 1, "the running container's pasta");
    b.ok(&["rm", "-f", "web"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pastas_of(&b).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "pasta outlived its container: {:?}",
            pastas_of(&b)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The pasta processes of `b`'s containers (their pid files are in its
/// store or run state, whose paths are on their command lines).
fn pastas_of(b: &RootlessBerth) -> Vec<String> {
    let dir = b.dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("pasta") && cmd.contains(&dir)).then_some(cmd)
        })
        .collect()
}

/// The links of the user's rootless network namespace, `ip -o link`'s
/// names (bridges `br-*`, the containers' veths `vb*`).
/// The links of the user's network namespace once at most `veths`
/// container veths are left (10 s at most): a removed container's veth
/// goes with its network namespace, which the kernel cleans up after the
/// command returned (a deferred work item).
fn user_netns_links_with_veths(b: &RootlessBerth, veths: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let links = user_netns_links(b);
        let left = links.iter().filter(|l| l.starts_with("vb")).count();
        if left <= veths || std::time::Instant::now() >= deadline {
            return links;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn user_netns_links(b: &RootlessBerth) -> Vec<String> {
    let o = b.in_user_netns(&["ip", "-o", "link"]);
    assert!(o.status.success(), "{}", stderr(&o));
    berth_testkit::stdout(&o)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[test]
fn two_containers_reach_each_other_by_name_and_alias_on_a_user_network() {
    let Some(b) = berth("two_containers_reach_each_other_by_name_and_alias_on_a_user_network")
    else {
        return;
    };
    b.ok(&["network", "create", "front"]);
    b.ok(&["network", "create", "back"]);
    assert_eq!(
        b.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "back\nfront\nhost\nnone\n"
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        "busybox",
        "sh",
        "-c",
        "echo from-web > /tmp/i; exec httpd -f -p 80 -h /tmp",
    ]);
    let ip = b.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.front.IPAddress}}",
        "web",
    ]);
    let ip = ip.trim();
    assert!(ip.starts_with("10."), "{ip}");
    // By name and by alias, through /etc/hosts (wget) and through the
    // network's resolver (nslookup asks DNS only: it fails without one).
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "sh",
        "-c",
        "wget -qO- http://web/i && wget -qO- http://www/i && nslookup www && nslookup web",
    ]);
    assert_eq!(out.matches("from-web").count(), 2, "{out}");
    assert_eq!(out.matches(&format!("Address: {ip}")).count(), 2, "{out}");
    // Another network neither resolves its names nor reaches its address.
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "sh",
        "-c",
        &format!(
            "nslookup web >/dev/null 2>&1; echo nslookup=$?; \
             timeout 3 wget -qO- http://{ip}/i; echo wget=$?"
        ),
    ]);
    let out = berth_testkit::stdout(&o);
    assert!(!out.contains("from-web"), "{out}");
    assert!(out.contains("nslookup=1"), "{out}");
    assert!(!out.contains("wget=0"), "{out}");
    // Connected live to the other network, with an alias there: found on
    // it; disconnected, gone from it.
    b.ok(&["network", "connect", "--alias", "api", "back", "web"]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "sh",
        "-c",
        "wget -qO- http://api/i && nslookup web",
    ]);
    assert!(out.contains("from-web"), "{out}");
    b.ok(&["network", "disconnect", "back", "web"]);
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", berth_testkit::stdout(&o));
    // The containers' veths are in the user's namespace, the bridges
    // stay when the last container goes (as root's), and network rm takes
    // them.
    let links = user_netns_links_with_veths(&b, 1);
    assert_eq!(
        links.iter().filter(|l| l.starts_with("br-")).count(),
        2,
        "{links:?}"
    );
    assert_eq!(
        links.iter().filter(|l| l.starts_with("vb")).count(),
        1,
        "{links:?}"
    );
    b.ok(&["rm", "-f", "web"]);
    let links = user_netns_links_with_veths(&b, 0);
    assert_eq!(
        links.iter().filter(|l| l.starts_with("br-")).count(),
        2,
        "{links:?}"
    );
    assert!(!links.iter().any(|l| l.starts_with("vb")), "{links:?}");
    b.ok(&["network", "rm", "front", "back"]);
    assert_eq!(
        b.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "host\nnone\n"
    );
    let links = user_netns_links(&b);
    assert!(!links.iter().any(|l| l.starts_with("br-")), "{links:?}");
    // What is still refused says so, on one line.
    for (args, words) in [
        (
            &["run", "--rm", "--network", "nosuch", "busybox", "true"][..],
            "nosuch",
        ),
        (
            &["run", "--rm", "--network-alias", "x", "busybox", "true"][..],
            "user defined networks only",
        ),
    ] {
        let o = b.run(args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains(words), "{args:?}: {e}");
        assert_eq!(berth_testkit::error_lines(&e), 1, "{e}");
    }
}

#[test]
fn published_port_of_a_container_on_a_user_network_is_reachable_from_the_host() {
    let Some(b) =
        berth("published_port_of_a_container_on_a_user_network_is_reachable_from_the_host")
    else {
        return;
    };
    b.ok(&["network", "create", "pub"]);
    let (lo_port, any_port) = (berth_testkit::free_port(), berth_testkit::free_port());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "pub",
        "-p",
        &format!("127.0.0.1:{lo_port}:80"),
        "-p",
        &format!("{any_port}:80"),
        "busybox",
        "sh",
        "-c",
        "echo on-user-net > /tmp/i; exec httpd -f -p 80 -h /tmp",
    ]);
    assert_eq!(http_get(lo_port, "/i"), "on-user-net\n");
    assert_eq!(http_get(any_port, "/i"), "on-user-net\n");
    let ports = b.ok(&["port", "web"]);
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{lo_port}")),
        "{ports}"
    );
    // UDP: each client's datagrams reach the container and its replies
    // come back to that client (busybox has no UDP server: a static one).
    let h = b.dir().join("h");
    std::fs::create_dir(&h).unwrap();
    berth_testkit::build_helper("udp-echo", &h.join("udp-echo"));
    std::fs::set_permissions(&h, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let udp_port = berth_testkit::free_port();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "--network",
        "pub",
        "-v",
        &format!("{}:/h:ro", h.display()),
        "-p",
        &format!("127.0.0.1:{udp_port}:7/udp"),
        "busybox",
        "/h/udp-echo",
        "7",
    ]);
    for client in ["one", "two"] {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut buf = [0u8; 64];
        let got = loop {
            // Resent until the server in the container is up.
            s.send_to(client.as_bytes(), ("127.0.0.1", udp_port))
                .unwrap();
            if let Ok(n) = s.recv(&mut buf) {
                break String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no UDP answer");
        };
        assert_eq!(got, format!("echo:{client}"));
    }
    // A port taken is refused with docker's words, and nothing is left.
    let o = b.run(&[
        "run",
        "-d",
        "--name",
        "clash",
        "--network",
        "pub",
        "-p",
        &format!("127.0.0.1:{lo_port}:80"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("port is already allocated"),
        "{}",
        stderr(&o)
    );
    // The forwarder ends with its container, and the port is free again.
    b.ok(&["rm", "-f", "web", "clash", "echo"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpListener::bind(("127.0.0.1", lo_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "port {lo_port} still held after the container went"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn compose_services_reach_each_other_by_name_rootless() {
    let Some(b) = berth("compose_services_reach_each_other_by_name_rootless") else {
        return;
    };
    let proj = b.dir().join("shop");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        "services:\n  api:\n    image: busybox\n    command: sh -c 'echo from-api > /tmp/i; exec httpd -f -p 8080 -h /tmp'\n  \
         client:\n    image: busybox\n    command: sleep 300\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&proj, Some(b.user.uid), None).unwrap();
    let up = b.sh("cd shop && $BERTH compose up -d");
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(b
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("shop_default"));
    let got = b.sh("cd shop && $BERTH compose exec client wget -qO- http://api:8080/i");
    assert_eq!(
        berth_testkit::stdout(&got),
        "from-api\n",
        "{}",
        stderr(&got)
    );
    let down = b.sh("cd shop && $BERTH compose down");
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(
        b.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "host\nnone\n"
    );
}

#[test]
fn one_user_cannot_see_or_touch_another_users_networks() {
    let Some(b) = berth("one_user_cannot_see_or_touch_another_users_networks") else {
        return;
    };
    let other = RootlessBerth::new(&ensure_user(OTHER, true), BIN);
    b.ok(&["network", "create", "mine"]);
    let subnet = |who: &RootlessBerth, n: &str| {
        who.ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            n,
        ])
    };
    let mine = subnet(&b, "mine");
    assert_eq!(
        other.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "host\nnone\n"
    );
    for args in [
        &["network", "rm", "mine"][..],
        &["network", "inspect", "mine"][..],
    ] {
        let o = other.run(args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(stderr(&o).contains("mine"), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(subnet(&b, "mine"), mine, "still there");
    // Each user's subnets are private to their namespace: the same pool,
    // the same first subnet.
    other.ok(&["network", "create", "theirs"]);
    assert_eq!(subnet(&other, "theirs"), mine);
}

#[test]
fn multi_stage_build_with_run_steps() {
    let Some(b) = berth("multi_stage_build_with_run_steps") else {
        return;
    };
    let ctx = b.dir().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS first\n\
         RUN echo built > /made && chown 1000:1000 /made && mkdir /gone && rm -r /gone\n\
         FROM busybox\n\
         COPY --from=first /made /made\n\
         RUN cat /made > /copied\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&ctx, Some(b.user.uid), None).unwrap();
    b.ok(&["build", "-q", "-t", "staged", &ctx.display().to_string()]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "staged",
        "sh",
        "-c",
        "cat /copied; stat -c %u /made",
    ]);
    assert_eq!(out, "built\n1000\n");
}

#[test]
fn push_and_pull_against_the_loopback_registry() {
    let Some(b) = berth("push_and_pull_against_the_loopback_registry") else {
        return;
    };
    let reg = berth_testkit::registry::Registry::start("", "");
    let name = format!("{}/rootless/busybox:1", reg.addr());
    b.ok(&["tag", "busybox", &name]);
    b.ok(&["push", "--tls-verify=false", &name]);
    b.ok(&["rmi", &name, "busybox"]);
    assert_eq!(b.ok(&["images", "-q"]), "");
    b.ok(&["pull", "--tls-verify=false", &name]);
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", &name, "echo", "pulled"]),
        "pulled\n"
    );
}

#[test]
fn volume_files_keep_the_users_ids_on_the_host() {
    let Some(b) = berth("volume_files_keep_the_users_ids_on_the_host") else {
        return;
    };
    b.ok(&["volume", "create", "vol"]);
    b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vol:/data",
        "busybox",
        "sh",
        "-c",
        "echo a > /data/by-root && echo b > /data/b && chown 1000 /data/b",
    ]);
    let dir = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"]);
    let dir = std::path::Path::new(dir.trim());
    assert!(dir.starts_with(b.data_home()), "{}", dir.display());
    assert_eq!(
        std::fs::metadata(dir.join("by-root")).unwrap().uid(),
        b.user.uid
    );
    assert_eq!(
        std::fs::metadata(dir.join("b")).unwrap().uid(),
        first_subuid(&b.user) + 999
    );
    // Another container sees what the first wrote.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "vol:/d",
            "busybox",
            "cat",
            "/d/by-root"
        ]),
        "a\n"
    );
}

#[test]
fn one_user_cannot_see_or_touch_another_users_containers() {
    let Some(a) = berth("one_user_cannot_see_or_touch_another_users_containers") else {
        return;
    };
    let o = ensure_user(OTHER, true);
    let other = RootlessBerth::new(&o, BIN);
    other.import_busybox("busybox");
    a.ok(&[
        "run",
        "-d",
        "--name",
        "mine",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let id = a.ok(&["inspect", "-f", "{{.Id}}", "mine"]);
    assert_eq!(other.ok(&["ps", "-aq"]), "");
    for verb in ["kill", "rm"] {
        let r = other.run(&[verb, id.trim()]);
        assert_ne!(
            r.status.code(),
            Some(0),
            "the other user's {verb} worked on a's container"
        );
    }
    // Not even by the path: a's store is closed to others.
    let peek = other.sh(&format!("ls {}", a.data_home().join("berth").display()));
    assert_ne!(
        peek.status.code(),
        Some(0),
        "the other user listed a's store"
    );
    assert_eq!(a.ok(&["ps", "-q", "--no-trunc"]).trim(), id.trim());
    assert_ne!(a.pause_pid(), other.pause_pid());
}

#[test]
fn without_subordinate_ids_the_users_id_alone_and_the_fix_named() {
    if !ready_or_skip("without_subordinate_ids_the_users_id_alone_and_the_fix_named") {
        return;
    }
    let u = ensure_user(NO_IDS, false);
    let b = RootlessBerth::new(&u, BIN);
    let tar = berth_testkit::busybox_tar(b.dir());
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = b.run(&["import", &tar.display().to_string(), "busybox"]);
    expect_code(&o, 0, "import with the single-id map");
    let e = stderr(&o);
    assert!(e.contains("usermod --add-subuids"), "{e}");
    let map = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, ["0", &u.uid.to_string(), "1"]);
}
