//! Attacks on the host's loopback from containers on berth bridges (issue
//! 13, item 6). The bridges have route_localnet=1 (for ports published on
//! 127.0.0.1), so the kernel would route a packet that arrives on a bridge
//! addressed to 127.0.0.1 to whatever the host bound to loopback only. A
//! container with the default CAP_NET_RAW writes such frames straight to
//! the gateway's MAC (tests/helpers/localnet-probe.c, CVE-2020-8558's
//! attack), with its own source address or a loopback one, and ones with a
//! loopback source to the gateway's address (a host service that trusts
//! loopback by source: the kernel drops 127.0.0.1 itself, not 127.0.0.2);
//! it also tries the plain ways (the gateway's
//! address, a route through the gateway). From the default bridge and from
//! an --internal network: all must fail, while ports published on
//! 127.0.0.1 still answer the host and hairpin still works.

#![allow(clippy::tests_outside_test_module)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, http_get, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// One test at a time, across processes too (nextest runs each test in
/// its own): one of them removes the localnet chain for a while (as an
/// older berth's table lacks it), which the others rely on.
fn table() -> nix::fcntl::Flock<std::fs::File> {
    let f = std::fs::File::create("/run/berth-test-localnet.lock").expect("create the test lock");
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock")
}

/// Whether the tools the attack needs are here (a missing one fails under
/// CI, and is said otherwise).
fn tools() -> bool {
    tools_also(&[])
}

fn tools_also(extra: &[&'static str]) -> bool {
    let missing: Vec<&str> = ["cc", "nft", "ip", "busybox"]
        .into_iter()
        .chain(extra.iter().copied())
        .filter(|t| !berth_testkit::snippet::installed(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "missing {missing:?} (apt-get install gcc libc6-dev nftables iproute2 busybox-static util-linux)"
    );
    eprintln!("skipped: missing {missing:?}");
    false
}

/// The probe, built statically into `dir`.
fn build_probe(dir: &Path) -> PathBuf {
    let out = dir.join("localnet-probe");
    berth_testkit::build_helper("localnet-probe", &out);
    out
}

/// A user network with a subnet no other test uses.
fn network(b: &Berth, name: &str, extra: &[&str]) {
    let base = std::process::id() % 200;
    for i in 0..50 {
        let subnet = format!("10.197.{}.0/24", (base + i * 7) % 250);
        let mut args = vec!["network", "create", "--subnet", &subnet];
        args.extend_from_slice(extra);
        args.push(name);
        let o = b.run(&args);
        if o.status.success() {
            return;
        }
        assert!(stderr(&o).contains("overlaps"), "{}", stderr(&o));
    }
    panic!("no free subnet for {name}");
}

/// The network's gateway: as docker's, inspect shows none for a subnet
/// given without one, which then is the subnet's first address.
fn gateway(b: &Berth, net: &str) -> String {
    let o = b.ok(&["network", "inspect", net]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let config = &v[0]["IPAM"]["Config"][0];
    if let Some(g) = config["Gateway"].as_str() {
        return g.to_string();
    }
    let subnet = config["Subnet"].as_str().unwrap();
    let (addr, _) = subnet.split_once('/').unwrap();
    let first = u32::from(addr.parse::<std::net::Ipv4Addr>().unwrap()) + 1;
    std::net::Ipv4Addr::from(first).to_string()
}

/// Datagrams received on `s` until it stays quiet for half a second (or 5 s
/// pass): (source, payload).
fn drain(s: &UdpSocket) -> Vec<(std::net::SocketAddr, String)> {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => got.push((from, String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(_) => break,
        }
    }
    got
}

/// What a container on `net` gets through to the host's loopback-only
/// services: the payloads each listener received, and the container's own
/// report.
struct Attempt {
    on_loopback: Vec<(std::net::SocketAddr, String)>,
    on_any: Vec<(std::net::SocketAddr, String)>,
    tcp_accepted: bool,
    report: String,
}

fn attack_from(b: &Berth, net: &str, probe: &Path) -> Attempt {
    // The host's services: UDP and TCP on loopback only, and UDP on every
    // address for one that trusts a loopback source.
    let lo_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let any_udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let lo_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    lo_tcp.set_nonblocking(true).unwrap();
    let lo_port = lo_udp.local_addr().unwrap().port();
    let any_port = any_udp.local_addr().unwrap().port();
    let tcp_port = lo_tcp.local_addr().unwrap().port();
    let gw = gateway(b, net);
    let script = format!(
        r#"
        me=$(ip -4 addr show eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p')
        ping -c1 -W2 {gw} >/dev/null 2>&1
        /probe eth0 {gw} $me 127.0.0.1 {lo_port} own-source-to-loopback
        /probe eth0 {gw} 127.0.0.1 127.0.0.1 {lo_port} loopback-source-to-loopback
        /probe eth0 {gw} 127.0.0.2 127.0.0.1 {lo_port} other-loopback-source
        /probe eth0 {gw} 127.0.0.1 {gw} {any_port} loopback-source-to-gateway
        /probe eth0 {gw} 127.0.0.2 {gw} {any_port} other-loopback-source-to-gateway
        /probe eth0 {gw} $me {gw} {any_port} control-own-source-to-gateway
        nc -w 2 {gw} {tcp_port} </dev/null && echo TCP-VIA-GATEWAY
        ip route add 127.0.0.0/8 via {gw} dev eth0 2>&1 && echo ROUTE-ADDED
        ip route add 127.0.0.5/32 via {gw} dev eth0 2>&1 && echo ROUTE-ADDED
        ip neigh replace 127.0.0.5 lladdr 02:00:00:00:00:01 dev eth0 2>&1 && echo NEIGH-ADDED
        nc -w 2 127.0.0.5 {tcp_port} </dev/null && echo TCP-VIA-ROUTE
        exit 0
        "#
    );
    let probe_mount = format!("{}:/probe:ro", probe.display());
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        net,
        "-v",
        &probe_mount,
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    expect_code(&o, 0, "the attacker's container");
    let report = format!("{}{}", stdout(&o), stderr(&o));
    let tcp_accepted = lo_tcp.accept().is_ok();
    Attempt {
        on_loopback: drain(&lo_udp),
        on_any: drain(&any_udp),
        tcp_accepted,
        report,
    }
}

fn check(net: &str, a: &Attempt) {
    // Not vacuous: the probe's frames reach the host, and it sent them all.
    assert_eq!(
        a.report.matches("sent").count(),
        6,
        "{net}: the probe could not send: {}",
        a.report
    );
    assert!(
        a.on_any
            .iter()
            .any(|(_, p)| p == "control-own-source-to-gateway"),
        "{net}: the control datagram never arrived, so nothing is tested: {:?}\n{}",
        a.on_any,
        a.report
    );
    assert!(
        a.on_loopback.is_empty(),
        "{net}: reached a service bound to 127.0.0.1: {:?}",
        a.on_loopback
    );
    let spoofed: Vec<_> = a
        .on_any
        .iter()
        .filter(|(from, _)| from.ip().is_loopback())
        .collect();
    assert!(
        spoofed.is_empty(),
        "{net}: passed for a loopback client: {spoofed:?}"
    );
    assert!(!a.tcp_accepted, "{net}: a TCP connection reached loopback");
    for marker in [
        "TCP-VIA-GATEWAY",
        "ROUTE-ADDED",
        "NEIGH-ADDED",
        "TCP-VIA-ROUTE",
    ] {
        assert!(!a.report.contains(marker), "{net}: {marker}\n{}", a.report);
    }
}

#[test]
fn containers_cannot_reach_host_loopback_through_the_bridge() {
    if !tools() {
        return;
    }
    let _table = table();
    let b = Berth::with_busybox(BIN, &["EXPOSE 80"]);
    let work = tempfile::tempdir().unwrap();
    let probe = build_probe(work.path());
    let internal = format!("t-lo-int-{}", std::process::id());
    network(&b, &internal, &["--internal"]);
    for net in ["bridge", internal.as_str()] {
        let a = attack_from(&b, net, &probe);
        check(net, &a);
    }
    // A host where an older berth made the bridges and loaded its rules,
    // without the localnet chain: the next container start loads it.
    let st = Command::new("nft")
        .args(["delete", "chain", "ip", "berth", "localnet"])
        .status()
        .unwrap();
    assert!(st.success(), "delete the localnet chain");
    for e in std::fs::read_dir("/run").unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("berth-nft-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let a = attack_from(&b, "bridge", &probe);
    check("bridge, rules of an older berth", &a);
}

/// What the localnet rules must not break: a port published on 127.0.0.1
/// answers the host (its replies become 127.0.0.1-addressed only in NAT,
/// after the check), and a container reaches another's published port
/// through the gateway (hairpin).
#[test]
fn ports_published_on_loopback_and_hairpin_still_work() {
    if !tools() {
        return;
    }
    let _table = table();
    let b = Berth::with_busybox(BIN, &["EXPOSE 80"]);
    let (lo_port, any_port) = {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpListener::bind("0.0.0.0:0").unwrap();
        (
            a.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        )
    };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{lo_port}:80"),
        "-p",
        &format!("{any_port}:80"),
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let body = http_get(&format!("127.0.0.1:{lo_port}"), "/").unwrap();
    assert!(body.contains("hello"), "{body}");
    let gw = gateway(&b, "bridge");
    let script = format!(
        "for i in $(seq 20); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {gw} {any_port}) && [ -n \"$r\" ] && {{ echo \"$r\" | tail -1; exit 0; }}; sleep 0.2; done; exit 1"
    );
    let o = b.run(&["run", "--rm", "busybox", "sh", "-c", &script]);
    expect_code(&o, 0, "hairpin");
    assert_eq!(stdout(&o).trim(), "hello");
}

/// A neighbour on the host's network (a namespace of our own behind a veth
/// pair) writes a frame to 127.0.0.1 at the host's MAC: prerouting's DNAT
/// would send it to a port published on 127.0.0.1 only (moby/moby#41872),
/// before the kernel could call it a martian. Only the host's address and a
/// port published on every address may answer it.
#[test]
fn a_neighbour_cannot_reach_ports_published_on_loopback() {
    if !tools_also(&["nsenter", "unshare"]) {
        return;
    }
    let _table = table();
    let b = Berth::with_busybox(BIN, &["EXPOSE 80"]);
    let work = tempfile::tempdir().unwrap();
    let probe = build_probe(work.path());
    let tag = format!("{:05}", std::process::id() % 100_000);
    let (host_if, out_if) = (format!("ln{tag}"), format!("nb{tag}"));
    let mut holder = Command::new("unshare")
        .args(["-n", "sleep", "120"])
        .spawn()
        .unwrap();
    let pid = holder.id().to_string();
    let sh = |cmd: &str| {
        Command::new("timeout")
            .args(["-k", "5", "30", "sh", "-c", cmd])
            .output()
            .unwrap()
    };
    // The namespace exists once nsenter can enter it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sh(&format!("nsenter -t {pid} -n true")).status.success() {
        assert!(
            Instant::now() < deadline,
            "the neighbour's namespace never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = sh(&format!(
        "ip link add {host_if} type veth peer name {out_if} netns {pid} && \
         ip addr add 198.51.100.5/30 dev {host_if} && ip link set {host_if} up && \
         nsenter -t {pid} -n sh -c 'ip addr add 198.51.100.6/30 dev {out_if} && \
         ip link set {out_if} up && ip link set lo up'"
    ));
    let cleanup = |holder: &mut std::process::Child| {
        let _ = Command::new("ip").args(["link", "del", &host_if]).status();
        let _ = holder.kill();
        let _ = holder.wait();
    };
    if !o.status.success() {
        cleanup(&mut holder);
        panic!(
            "veth to the neighbour: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (lo_port, any_port) = {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("0.0.0.0:0").unwrap();
        (
            a.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        )
    };
    let probe_mount = format!("{}:/probe:ro", probe.display());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "-p",
        &format!("127.0.0.1:{lo_port}:5000/udp"),
        "-p",
        &format!("{any_port}:5000/udp"),
        "-v",
        &probe_mount,
        "busybox",
        "/probe",
        "listen",
        "5000",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.ok(&["logs", "target"]).contains("listening") {
        assert!(Instant::now() < deadline, "the target never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let probe = probe.display();
    let o = sh(&format!(
        "nsenter -t {pid} -n sh -c 'busybox ping -c1 -W2 198.51.100.5 >/dev/null 2>&1; \
         {probe} {out_if} 198.51.100.5 198.51.100.6 127.0.0.1 {lo_port} to-loopback-port; \
         {probe} {out_if} 198.51.100.5 198.51.100.6 198.51.100.5 {any_port} control'"
    ));
    let report = format!("{}{}", stdout_of(&o), String::from_utf8_lossy(&o.stderr));
    // The control's datagrams arrive: then the other's had their chance.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logs = b.ok(&["logs", "target"]);
    while !logs.contains("got control") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        logs = b.ok(&["logs", "target"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let logs = b.ok(&["logs", "target"]);
    cleanup(&mut holder);
    assert_eq!(report.matches("sent").count(), 2, "{report}");
    assert!(
        logs.contains("got control"),
        "the control never arrived, so nothing is tested: {logs}\n{report}"
    );
    assert!(
        !logs.contains("to-loopback-port"),
        "a neighbour reached a port published on 127.0.0.1: {logs}"
    );
}

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network's embedded resolver (on its gateway, port 53) answers its own
/// members only: a container of another network, or of the default
/// bridge, asking it for a member's name gets nothing (nft drops the
/// query; without that rule the resolver itself would say REFUSED, which
/// tells the attacker the resolver is there), over UDP or TCP, while its
/// own network's resolver answers it.
#[test]
fn a_container_cannot_query_another_networks_resolver() {
    if !berth_testkit::root_or_skip("a_container_cannot_query_another_networks_resolver")
        || !tools()
    {
        return;
    }
    let _t = table();
    // Forwarding goes to a loopback port nobody listens on: no query
    // leaves the machine.
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let up = closed.local_addr().unwrap().to_string();
    drop(closed);
    let b = Berth::with_busybox(BIN, &[]).env("BERTH_DNS_UPSTREAM", &up);
    let pid = std::process::id();
    let (a, other) = (format!("dnsatk-a-{pid}"), format!("dnsatk-b-{pid}"));
    network(&b, &a, &[]);
    network(&b, &other, &[]);
    let (gw_a, gw_b) = (gateway(&b, &a), gateway(&b, &other));
    b.ok(&[
        "run",
        "-d",
        "--name",
        "secret",
        "--network",
        &a,
        "--network-alias",
        "hidden",
        "busybox",
        "sleep",
        "300",
    ]);
    let secret_ip = b.inspect(
        "secret",
        &format!("{{{{(index .NetworkSettings.Networks \"{a}\").IPAddress}}}}"),
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "spy",
        "--network",
        &other,
        "busybox",
        "sleep",
        "300",
    ]);
    b.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "300"]);
    // The spy's own resolver answers it (the port is open to members).
    let own = b.run(&["exec", "spy", "nslookup", "-timeout=2", "spy", &gw_b]);
    assert!(stdout(&own).contains("Address: "), "{}", stdout(&own));
    for from in ["spy", "plain"] {
        for name in ["secret", "hidden"] {
            let o = b.run(&[
                "exec",
                from,
                "nslookup",
                "-type=a",
                "-timeout=1",
                "-retry=1",
                name,
                &gw_a,
            ]);
            let text = format!("{}{}", stdout(&o), stderr(&o));
            assert!(
                !o.status.success(),
                "{from} asked {gw_a} for {name}: {text}"
            );
            assert!(!text.contains(&secret_ip), "{from} learnt {name}: {text}");
            assert!(
                text.contains("timed out") && !text.contains("REFUSED"),
                "the query from {from} is dropped before the resolver: {text}"
            );
        }
        // TCP too: the connection itself does not succeed.
        let o = b.run(&[
            "exec",
            from,
            "sh",
            "-c",
            &format!("nc -w 1 {gw_a} 53 </dev/null && echo connected || echo failed"),
        ]);
        assert!(stdout(&o).contains("failed"), "{from}: {}", stdout(&o));
    }
    b.ok(&["rm", "-f", "secret", "spy", "plain"]);
}
