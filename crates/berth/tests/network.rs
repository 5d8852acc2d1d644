//! Networking through the real binary, as root: published ports answering
//! on the host (loopback, a host address, from another container), user
//! networks resolving names and aliases, --internal, restarts, parallel
//! starts, 100 cycles without leaks, and bad input.
//!
//! Tests share the host's nft table and run in parallel: each has its own
//! root (so its own default bridge and subnet), its own host ports (asked
//! of the kernel) and network names and subnets of its own.

#![allow(clippy::tests_outside_test_module)]

use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, free_port, http_get, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// A private store with busybox (EXPOSE 80) imported as `busybox`.
fn berth() -> Berth {
    Berth::with_busybox(BIN, &["EXPOSE 80"])
}

/// What these tests ask of a store beyond the shared harness.
trait NetStore {
    fn httpd(&self, extra: &[&str], body: &str) -> String;
    fn subnet_of_default(&self) -> String;
    fn network(&self, name: &str, extra: &[&str]) -> String;
}

impl NetStore for Berth {
    /// A detached busybox httpd answering `body` on port 80.
    fn httpd(&self, extra: &[&str], body: &str) -> String {
        let script = format!(
            "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", &script]);
        self.ok(&args).trim().to_string()
    }

    fn subnet_of_default(&self) -> String {
        let o = self.ok(&["network", "inspect", "bridge"]);
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        v[0]["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A user network with a subnet no other test (or host route) uses.
    fn network(&self, name: &str, extra: &[&str]) -> String {
        let base = std::process::id() % 200;
        for i in 0..50 {
            let subnet = format!("10.198.{}.0/24", (base + i * 7) % 250);
            let mut args = vec!["network", "create", "--subnet", &subnet];
            args.extend_from_slice(extra);
            args.push(name);
            let o = self.run(&args);
            if o.status.success() {
                return subnet;
            }
            assert!(stderr(&o).contains("overlaps"), "{}", stderr(&o));
        }
        panic!("no free subnet for {name}");
    }
}

/// From inside a container: GET / of host:port with busybox nc; the body
/// or an error line.
fn get_from(b: &Berth, args: &[&str], host: &str, port: &str) -> String {
    fetch_from(b, args, host, port, 10)
}

/// [`get_from`] for what should fail: two tries, not ten.
fn unreachable_from(b: &Berth, args: &[&str], host: &str, port: &str) -> bool {
    fetch_from(b, args, host, port, 2).starts_with("unreachable")
}

fn fetch_from(b: &Berth, args: &[&str], host: &str, port: &str, tries: u32) -> String {
    let script = format!(
        "for i in $(seq {tries}); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} 2>&1) && [ -n \"$r\" ] && {{ echo \"$r\" | tail -1; exit 0; }}; sleep 0.2; done; echo unreachable: $r; exit 1"
    );
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["busybox", "sh", "-c", &script]);
    stdout(&b.run(&a)).trim().to_string()
}

/// The map as nft lists it. It must exist: a check that an entry is gone
/// proves nothing if nft could not list the map at all.
fn nft_map(name: &str) -> String {
    let o = Command::new("nft")
        .args(["list", "map", "ip", "berth", name])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "nft list map ip berth {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn links() -> String {
    let o = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether the veth is gone within 5 s (the kernel deletes a container's
/// veth with its network namespace, in a worker, after the exit).
fn veth_gone(id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while links().contains(&veth_of(id)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The container's veth on the host, as berth names it.
fn veth_of(id: &str) -> String {
    format!("vb{}0", &id[..10])
}

#[test]
fn published_port_answers_on_loopback_host_address_and_hairpin_and_after_restart() {
    let b = berth();
    let port = free_port();
    let p = port.to_string();
    let id = b.httpd(&["--name", "web", "-p", &format!("{p}:80")], "hello");
    assert!(http_get(&format!("127.0.0.1:{p}"), "/")
        .unwrap()
        .contains("hello"));
    // A host address: the bridge's gateway is one.
    let gw = b.inspect("web", "{{.NetworkSettings.Gateway}}");
    assert!(http_get(&format!("{gw}:{p}"), "/")
        .unwrap()
        .contains("hello"));
    // Hairpin: another container on the bridge through the host's port.
    assert_eq!(get_from(&b, &[], &gw, &p), "hello");
    assert_eq!(
        b.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 0.0.0.0:{p}")
    );
    assert_eq!(b.ok(&["port", "web", "80"]).trim(), format!("0.0.0.0:{p}"));
    let ps = b.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{p}->80/tcp"));
    assert_eq!(
        b.inspect("web", "{{json .NetworkSettings.Ports}}"),
        format!("{{\"80/tcp\":[{{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"{p}\"}}]}}")
    );
    let ip = b.inspect("web", "{{.NetworkSettings.IPAddress}}");
    assert!(!ip.is_empty());
    // The default bridge has no name resolution, as docker's.
    assert!(unreachable_from(&b, &[], "web", "80"));
    b.ok(&["restart", "-t", "1", "web"]);
    assert!(
        http_get(&format!("127.0.0.1:{p}"), "/")
            .unwrap()
            .contains("hello"),
        "after a restart"
    );
    b.ok(&["stop", "-t", "1", "web"]);
    assert!(
        !nft_map("tcp_any_a").contains(&format!("{p} :")),
        "a stopped container publishes nothing"
    );
    assert!(veth_gone(&id));
    b.ok(&["start", "web"]);
    assert!(
        http_get(&format!("127.0.0.1:{p}"), "/")
            .unwrap()
            .contains("hello"),
        "after stop and start"
    );
    b.ok(&["rm", "-f", "web"]);
    assert!(!nft_map("tcp_any_a").contains(&format!("{p} :")));
    assert!(veth_gone(&id));
    // -p containerPort, -p ip:hostPort:containerPort, -P.
    let id = b.httpd(
        &["-p", "80", "-p", &format!("127.0.0.1:{}:80", free_port())],
        "two",
    );
    let shown = b.ok(&["port", &id]);
    assert_eq!(shown.lines().count(), 2, "{shown}");
    for line in shown.lines() {
        let host = line.split(" -> ").nth(1).unwrap();
        let host = host.replace("0.0.0.0", "127.0.0.1");
        assert!(http_get(&host, "/").unwrap().contains("two"), "{line}");
    }
    let id = b.httpd(&["-P"], "exposed");
    let host = b
        .ok(&["port", &id, "80/tcp"])
        .trim()
        .replace("0.0.0.0", "127.0.0.1");
    assert!(http_get(&host, "/").unwrap().contains("exposed"));
}

#[test]
fn twenty_published_containers_started_in_parallel() {
    let b = berth();
    // free_port() may hand out a port twice (it is free again once its
    // probe closes): draw until there are twenty different ones.
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 20 {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    std::thread::scope(|s| {
        for (i, port) in ports.iter().enumerate() {
            let b = &b;
            s.spawn(move || {
                b.httpd(&["-p", &format!("{port}:80")], &format!("c{i}"));
            });
        }
    });
    for (i, port) in ports.iter().enumerate() {
        let body = http_get(&format!("127.0.0.1:{port}"), "/").unwrap();
        assert!(body.contains(&format!("c{i}")), "{port}: {body}");
    }
    let ips: std::collections::BTreeSet<String> = stdout(&b.run(&["ps", "-q"]))
        .lines()
        .map(|id| b.inspect(id, "{{.NetworkSettings.IPAddress}}"))
        .collect();
    assert_eq!(ips.len(), 20, "one address each");
}

#[test]
fn user_networks_resolve_names_and_aliases_in_any_order() {
    let b = berth();
    let (n1, n2) = (
        format!("t-a-{}", std::process::id()),
        format!("t-b-{}", std::process::id()),
    );
    b.network(&n1, &[]);
    b.network(&n2, &[]);
    // The client first, the server after: the client's hosts file learns.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        &n1,
        "busybox",
        "sleep",
        "60",
    ]);
    b.httpd(
        &["--name", "srv", "--network", &n1, "--network-alias", "api"],
        "from-srv",
    );
    b.httpd(&["--name", "other", "--network", &n2], "from-other");
    let nc = |target: &str| {
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} 80 | tail -1");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = stdout(&b.run(&["exec", "client", "sh", "-c", &script]))
                .trim()
                .to_string();
            if !out.is_empty() || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(nc("srv"), "from-srv");
    assert_eq!(nc("api"), "from-srv");
    // Another network: not by name.
    let hosts = b.ok(&["exec", "client", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("other"), "{hosts}");
    assert!(unreachable_from(&b, &["--network", &n2], "srv", "80"));
    // Nor by address: networks are isolated from each other.
    let srv_ip = b.inspect("srv", "{{.NetworkSettings.IPAddress}}");
    assert!(unreachable_from(&b, &["--network", &n2], &srv_ip, "80"));
    assert_eq!(
        get_from(&b, &["--network", &n2], "other", "80"),
        "from-other"
    );
    // srv goes: its names go from the client's hosts file; it comes back.
    b.ok(&["stop", "-t", "1", "srv"]);
    let hosts = b.ok(&["exec", "client", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("srv"), "{hosts}");
    b.ok(&["start", "srv"]);
    assert_eq!(nc("api"), "from-srv");
    // In use: refused, nothing changes; free: removed.
    let o = b.run(&["network", "rm", &n1]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("active endpoints"), "{}", stderr(&o));
    let ls = b.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.contains(&n1));
    b.ok(&["rm", "-f", "client", "srv"]);
    b.ok(&["network", "rm", &n1]);
    assert!(!b.ok(&["network", "ls"]).contains(&n1));
    // connect/disconnect a stopped container.
    b.ok(&[
        "create",
        "--name",
        "late",
        "--network",
        &n2,
        "busybox",
        "sleep",
        "60",
    ]);
    b.ok(&["network", "disconnect", &n2, "late"]);
    // As docker: the mode stays, on no network; started, loopback only.
    assert_eq!(
        b.inspect(
            "late",
            "{{.HostConfig.NetworkMode}} {{len .NetworkSettings.Networks}}"
        ),
        format!("{n2} 0")
    );
    b.ok(&["start", "late"]);
    let links = b.ok(&["exec", "late", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");
    b.ok(&["rm", "-f", "late"]);
}

#[test]
fn internal_networks_have_no_way_out_and_bridges_do() {
    let b = berth();
    // "Outside": a namespace of our own behind a veth pair on the host, on
    // a /30 of 198.51.100.0/24 of this run's own (a leftover pair of a
    // killed run must not take the route; attack_network.rs has .4/30).
    let id = std::process::id();
    let tag = format!("{:05}", id % 100_000);
    let (host_if, out_if) = (format!("to{tag}"), format!("ou{tag}"));
    let base = (id % 62 + 2) * 4;
    let (host_ip, out_ip) = (
        format!("198.51.100.{}", base + 1),
        format!("198.51.100.{}", base + 2),
    );
    let holder = Command::new("unshare")
        .args(["-n", "sleep", "120"])
        .spawn()
        .unwrap();
    // The pair and the namespace go however the test ends.
    struct Outside {
        holder: std::process::Child,
        server: Option<std::process::Child>,
        host_if: String,
    }
    impl Drop for Outside {
        fn drop(&mut self) {
            for c in self.server.iter_mut().chain([&mut self.holder]) {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = Command::new("ip")
                .args(["link", "del", &self.host_if])
                .status();
        }
    }
    let mut outside = Outside {
        holder,
        server: None,
        host_if: host_if.clone(),
    };
    let pid = outside.holder.id().to_string();
    std::thread::sleep(Duration::from_millis(200));
    let sh = |cmd: &str| {
        let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh(&format!(
        "ip link add {host_if} type veth peer name {out_if} netns {pid} && \
         ip addr add {host_ip}/30 dev {host_if} && ip link set {host_if} up && \
         nsenter -t {pid} -n sh -c 'ip addr add {out_ip}/30 dev {out_if} && \
         ip link set {out_if} up && ip link set lo up && ip route add default via {host_ip}'"
    ));
    let www = b.root.path().join("outside-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "outside\n").unwrap();
    outside.server = Some(
        Command::new("nsenter")
            .args(["-t", &pid, "-n", "busybox", "httpd", "-f", "-p"])
            .arg(format!("{out_ip}:9000"))
            .arg("-h")
            .arg(&www)
            .spawn()
            .unwrap(),
    );
    let net = format!("t-int-{id}");
    b.network(&net, &["--internal"]);
    let bridged = get_from(&b, &[], &out_ip, "9000");
    let internal = fetch_from(&b, &["--network", &net], &out_ip, "9000", 2);
    drop(outside);
    assert_eq!(
        bridged, "outside",
        "the default bridge reaches out (masquerade)"
    );
    assert!(internal.starts_with("unreachable"), "{internal}");
}

#[test]
fn hundred_cycles_leak_no_veth_rule_or_lease() {
    let b = berth();
    let subnet = b.subnet_of_default();
    let prefix: String = subnet.split('.').take(2).collect::<Vec<_>>().join(".") + ".";
    let mut ids = Vec::new();
    for i in 0..100 {
        let id = b
            .ok(&["create", "-p", "80", "busybox", "sleep", "30"])
            .trim()
            .to_string();
        b.ok(&["start", &id]);
        if i % 10 == 0 {
            assert!(links().contains(&veth_of(&id)));
        }
        b.ok(&["rm", "-f", &id]);
        ids.push(id);
    }
    for id in &ids {
        assert!(veth_gone(id), "veth of {id} left");
    }
    for map in ["tcp_any_a", "tcp_ip_a"] {
        assert!(!nft_map(map).contains(&prefix), "{map}: {}", nft_map(map));
    }
    let check = b.ok(&["system", "check"]);
    assert!(check.contains("network leftovers removed: 0"), "{check}");
    // The next container gets the first address again: every lease went.
    let id = b
        .ok(&["run", "-d", "busybox", "sleep", "30"])
        .trim()
        .to_string();
    let ip = b.inspect(&id, "{{.NetworkSettings.IPAddress}}");
    assert_eq!(ip, format!("{prefix}0.2"));
}

#[test]
fn a_killed_monitor_leaves_nothing_after_system_check() {
    let b = berth();
    let port = free_port();
    let id = b.httpd(&["-p", &format!("{port}:80")], "x");
    http_get(&format!("127.0.0.1:{port}"), "/").unwrap();
    // Kill the container and its monitor at once: nobody records the exit.
    let pid: i32 = b.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let monitor: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    );
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    // Any command reconciles: the exit is recorded, the network released.
    b.ok(&["ps", "-a"]);
    assert!(!nft_map("tcp_any_a").contains(&format!("{port} :")));
    assert!(veth_gone(&id));
    let check = b.ok(&["system", "check"]);
    assert!(check.contains("network leftovers removed: 0"), "{check}");
}

#[test]
fn bad_network_input_is_one_line_and_configures_nothing() {
    let b = berth();
    // A port the host holds.
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let o = b.run(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    expect_code(&o, 125, "port in use");
    let err = stderr(&o);
    assert!(err.contains("port is already allocated"), "{err}");
    // one line: docker gives no usage hint for what failed at start
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(b.inspect("busy", "{{.State.Status}}"), "created");
    assert_eq!(b.inspect("busy", "{{.NetworkSettings.IPAddress}}"), "");
    assert!(veth_gone(&b.inspect("busy", "{{.Id}}")));
    // A port another container of ours holds.
    let p2 = free_port();
    b.ok(&[
        "run",
        "-d",
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    let o = b.run(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{p2}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    expect_code(&o, 125, "port taken by a container");
    assert!(
        stderr(&o).contains("port is already allocated"),
        "{}",
        stderr(&o)
    );
    // Overlapping subnets, bad specs, a network in use.
    let net = format!("t-bad-{}", std::process::id());
    let subnet = b.network(&net, &[]);
    let o = b.run(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        &format!("{net}-2"),
    ]);
    expect_code(&o, 1, "overlap");
    assert!(stderr(&o).contains("overlaps"), "{}", stderr(&o));
    let o = b.run(&["network", "create", &net]);
    expect_code(&o, 1, "exists");
    // Docker discards ports published on the host's network, and says so.
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "80",
        "busybox",
        "true",
    ]);
    expect_code(&o, 0, "-p on the host's network");
    assert!(
        stderr(&o).contains("WARNING: Published ports are discarded when using host network mode"),
        "{}",
        stderr(&o)
    );
    for bad in [
        vec!["run", "-p", "8080:80:90:1", "busybox", "true"],
        vec!["run", "-p", "abc", "busybox", "true"],
        vec![
            "run",
            "--network",
            "host",
            "--mac-address",
            "02:42:ac:11:00:02",
            "busybox",
            "true",
        ],
        vec!["run", "--ip", "10.0.0.300", "busybox", "true"],
        vec!["run", "--ip", "10.1.2.3", "busybox", "true"],
        vec!["run", "--mac-address", "zz", "busybox", "true"],
        vec!["network", "create", "--subnet", "10.0.0.1/8", "x1"],
        vec!["network", "create", "--subnet", "300.0.0.0/8", "x2"],
        vec!["network", "create", "bad/name"],
        vec!["network", "rm", "bridge"],
        vec!["network", "rm", "no-such-network"],
    ] {
        let o = b.run(&bad);
        assert_ne!(o.status.code(), Some(0), "{bad:?}");
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
        assert!(berth_testkit::error_lines(&err) <= 1, "{bad:?}: {err}");
    }
    b.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        &net,
        "busybox",
        "sleep",
        "30",
    ]);
    let o = b.run(&["network", "rm", &net]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("active endpoints"), "{}", stderr(&o));
    drop(held);
}

#[test]
fn members_started_at_once_all_know_each_other() {
    let b = berth();
    let net = format!("t-par-{}", std::process::id());
    b.network(&net, &[]);
    std::thread::scope(|s| {
        for i in 0..6 {
            let (b, net) = (&b, &net);
            s.spawn(move || {
                b.ok(&[
                    "run",
                    "-d",
                    "--name",
                    &format!("m{i}"),
                    "--network",
                    net,
                    "busybox",
                    "sleep",
                    "60",
                ]);
            });
        }
    });
    for i in 0..6 {
        let hosts = b.ok(&["exec", &format!("m{i}"), "cat", "/etc/hosts"]);
        for j in (0..6).filter(|j| *j != i) {
            assert!(
                hosts.contains(&format!("\tm{j} ")),
                "m{i} misses m{j}: {hosts}"
            );
        }
    }
}

#[test]
fn running_containers_connect_and_disconnect() {
    let b = berth();
    let (n1, n2) = (
        format!("t-c1-{}", std::process::id()),
        format!("t-c2-{}", std::process::id()),
    );
    b.network(&n1, &[]);
    b.network(&n2, &[]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "roamer",
        "--network",
        &n1,
        "busybox",
        "sleep",
        "60",
    ]);
    b.httpd(&["--name", "far", "--network", &n2], "far-away");
    let fetch = |tries: u32| {
        let script = format!(
            "for i in $(seq {tries}); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 far 80 2>&1) && [ -n \"$r\" ] && {{ echo \"$r\" | tail -1; exit 0; }}; sleep 0.2; done; echo unreachable"
        );
        stdout(&b.run(&["exec", "roamer", "sh", "-c", &script]))
            .trim()
            .to_string()
    };
    assert_eq!(fetch(2), "unreachable");
    b.ok(&["network", "connect", "--alias", "wanderer", &n2, "roamer"]);
    assert_eq!(fetch(10), "far-away");
    let far_hosts = b.ok(&["exec", "far", "cat", "/etc/hosts"]);
    assert!(far_hosts.contains("roamer wanderer"), "{far_hosts}");
    let ifs = b.ok(&["exec", "roamer", "ip", "-o", "link"]);
    assert!(ifs.contains("eth1"), "{ifs}");
    let o = b.run(&["network", "connect", &n2, "roamer"]);
    assert_ne!(o.status.code(), Some(0), "connected twice");
    b.ok(&["network", "disconnect", &n2, "roamer"]);
    assert_eq!(fetch(2), "unreachable");
    assert!(!b
        .ok(&["exec", "far", "cat", "/etc/hosts"])
        .contains("roamer"));
    assert!(!b
        .ok(&["exec", "roamer", "ip", "-o", "link"])
        .contains("eth1"));
    // The next start remembers neither: n1 only.
    b.ok(&["restart", "-t", "1", "roamer"]);
    assert_eq!(fetch(2), "unreachable");
}

#[test]
fn dns_flags_hosts_mac_fixed_ip_and_a_shared_namespace() {
    let b = berth();
    let out = b.ok(&[
        "run",
        "--rm",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "db:192.0.2.9",
        "--hostname",
        "box",
        "--mac-address",
        "02:11:22:33:44:55",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf /etc/hosts; ip link show eth0",
    ]);
    assert!(
        out.contains("search example.test\nnameserver 192.0.2.53\noptions ndots:3\n"),
        "{out}"
    );
    assert!(out.contains("192.0.2.9\tdb\n"), "{out}");
    assert!(out.contains("\tbox\n"), "{out}");
    assert!(out.contains("02:11:22:33:44:55"), "{out}");
    let net = format!("t-ip-{}", std::process::id());
    let subnet = b.network(&net, &[]);
    let ip = subnet.replace(".0/24", ".77");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        &net,
        "--ip",
        &ip,
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(b.inspect("fixed", "{{.NetworkSettings.IPAddress}}"), ip);
    let o = b.run(&[
        "run",
        "-d",
        "--network",
        &net,
        "--ip",
        &ip,
        "busybox",
        "sleep",
        "60",
    ]);
    assert_ne!(o.status.code(), Some(0), "an address in use");
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    // --network container:X shares X's interfaces.
    let shared = b.ok(&[
        "run",
        "--rm",
        "--network",
        "container:fixed",
        "busybox",
        "ip",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(shared.contains(&format!("inet {ip}/24")), "{shared}");
    // Host mode: the host's nameservers as they are (loopback ones too).
    let host = b.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    for l in std::fs::read_to_string("/etc/resolv.conf").unwrap().lines() {
        if l.starts_with("nameserver") {
            assert!(host.contains(l), "{l} missing: {host}");
        }
    }
}

/// The bridge took its lowest port's MAC and changed it when that member
/// left: the remaining members' ARP entries for the gateway went stale,
/// and for seconds they reached neither the gateway (its resolver) nor
/// the outside.
#[test]
fn the_gateway_keeps_its_mac_when_members_come_and_go() {
    if !berth_testkit::root_or_skip("the_gateway_keeps_its_mac_when_members_come_and_go") {
        return;
    }
    let b = berth();
    let net = format!("t-mac-{}", std::process::id());
    let subnet = b.network(&net, &[]);
    let gw = subnet.replace(".0/24", ".1");
    // The bridge is the link holding the gateway's address.
    let addrs = Command::new("ip")
        .args(["-4", "-br", "addr"])
        .output()
        .unwrap();
    let bridge = stdout(&addrs)
        .lines()
        .find(|l| l.contains(&format!(" {gw}/")))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .expect("the bridge of the new network");
    let mac = || {
        let o = Command::new("cat")
            .arg(format!("/sys/class/net/{bridge}/address"))
            .output()
            .unwrap();
        stdout(&o).trim().to_string()
    };
    let made = mac();
    for name in ["first", "second"] {
        b.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &net,
            "busybox",
            "sleep",
            "60",
        ]);
        assert_eq!(mac(), made, "after {name} joined");
    }
    b.ok(&["exec", "second", "ping", "-c1", "-W2", &gw]);
    b.ok(&["rm", "-f", "first"]);
    assert_eq!(mac(), made, "after first left");
    let o = b.run(&["exec", "second", "ping", "-c1", "-W1", &gw]);
    assert_eq!(o.status.code(), Some(0), "gateway unreachable");
    b.ok(&["rm", "-f", "second"]);
}

/// Several roots creating and removing networks from the shared pool at
/// once: a subnet one root lets go may be taken by another at once, and
/// neither may delete the set elements the other's network now needs (a
/// removal once deleted them outside the host lock: the other network
/// lost its NAT, and its own removal failed with "element does not
/// exist").
#[test]
fn roots_sharing_the_pool_keep_each_others_rules() {
    let roots: Vec<Berth> = (0..4).map(|_| Berth::empty(BIN)).collect();
    let pid = std::process::id();
    std::thread::scope(|s| {
        for (r, b) in roots.iter().enumerate() {
            s.spawn(move || {
                for i in 0..12 {
                    let name = format!("pool-{pid}-{r}-{i}");
                    b.ok(&["network", "create", &name]);
                    let subnet = b.ok(&[
                        "network",
                        "inspect",
                        "-f",
                        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                        &name,
                    ]);
                    let subnet = subnet.trim();
                    let set = Command::new("nft")
                        .args(["list", "set", "ip", "berth", "subnets"])
                        .output()
                        .unwrap();
                    let set = String::from_utf8_lossy(&set.stdout);
                    assert!(set.contains(subnet), "{name}: {subnet} not in {set}");
                    let o = b.run(&["network", "rm", &name]);
                    expect_code(&o, 0, "network rm");
                    assert_eq!(stderr(&o), "", "network rm {name}");
                }
            });
        }
    });
}

/// The index of link `name`, if there is one.
fn link_index(name: &str) -> Option<u64> {
    let o = Command::new("ip")
        .args(["-j", "link", "show", "dev", name])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v[0]["ifindex"].as_u64()
}

/// Whether a link with this index exists (under whatever name).
fn index_exists(index: u64) -> bool {
    let o = Command::new("ip").args(["-j", "link"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .any(|l| l["ifindex"].as_u64() == Some(index))
}

/// Whether the link of this index is gone within 10 s.
fn index_gone(index: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while index_exists(index) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `network rm` leaves the bridge's deletion (which waits for the kernel's
/// RCU grace periods) to a detached sweep: when it returns, the bridge's
/// name, its route and the network's name and subnet must all be free
/// already, and the device itself must go soon after; a bridge left by a
/// sweep that was killed goes with the next one.
#[test]
fn a_removed_network_frees_name_and_subnet_at_once_and_its_bridge_soon() {
    let b = berth();
    let name = format!("rmfast-{}", std::process::id());
    // A trash bridge such as a killed sweep leaves (down, no address).
    let litter = format!("berthx-{:08x}", std::process::id());
    let o = Command::new("ip")
        .args(["link", "add", &litter, "type", "bridge"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ip link add {litter}: {o:?}");
    // None: a parallel test's sweep took it already (what is checked).
    let litter_index = link_index(&litter);
    let subnet = b.network(&name, &[]);
    let bridge = b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
        &name,
    ]);
    let bridge = bridge.trim().to_string();
    let index = link_index(&bridge).unwrap_or_else(|| panic!("no bridge {bridge}"));
    let o = b.run(&["network", "rm", &name]);
    expect_code(&o, 0, "network rm");
    assert!(link_index(&bridge).is_none(), "{bridge} still there");
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "exact", &subnet])
        .output()
        .unwrap();
    assert_eq!(stdout(&routes), "", "a route of {subnet} is left");
    assert!(!b.ok(&["network", "ls"]).contains(&name));
    // The same name and subnet at once; its bridge up with the gateway.
    b.ok(&["network", "create", "--subnet", &subnet, &name]);
    let again = b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
        &name,
    ]);
    let again = again.trim();
    let gateway = subnet.replace(".0/24", ".1/24");
    let addr = Command::new("ip")
        .args(["-br", "addr", "show", "dev", again])
        .output()
        .unwrap();
    assert!(stdout(&addr).contains(&gateway), "{}", stdout(&addr));
    b.ok(&["network", "rm", &name]);
    assert!(
        index_gone(index),
        "the removed bridge {bridge} was never deleted"
    );
    assert!(
        litter_index.is_none_or(index_gone),
        "the litter bridge {litter} was never swept"
    );
    // `system check` deletes such litter too, before it returns.
    let litter = format!("berthx-{:08x}", std::process::id().wrapping_add(1));
    let o = Command::new("ip")
        .args(["link", "add", &litter, "type", "bridge"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ip link add {litter}: {o:?}");
    b.ok(&["system", "check"]);
    assert!(link_index(&litter).is_none(), "system check left {litter}");
}
