//! The embedded DNS of user networks through the real binary, as root:
//! busybox's `nslookup` in containers (it asks DNS only, never
//! /etc/hosts) for members, aliases and ids; leavers and other networks'
//! members not found; other names forwarded to an upstream this test runs
//! on loopback (the resolver's upstream set with BERTH_DNS_UPSTREAM: no
//! query leaves the machine); SERVFAIL when the upstream is not there; a
//! killed resolver started again; malformed packets not answered with a
//! crash.

#![allow(clippy::tests_outside_test_module)]

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// The address the fake upstream answers for its own names.
const EXTERNAL: &str = "192.0.2.77";

/// A DNS server on 127.0.0.1 that answers A queries for names ending in
/// `.upstream.test` with [`EXTERNAL`] and NXDOMAIN for the rest, for a
/// minute at most.
fn fake_upstream() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            if n < 17 {
                continue;
            }
            // The question: labels from offset 12 up to the zero byte.
            let mut at = 12;
            let mut name = Vec::new();
            while at < n && buf[at] != 0 {
                let l = usize::from(buf[at]);
                name.push(String::from_utf8_lossy(&buf[at + 1..(at + 1 + l).min(n)]).into_owned());
                at += 1 + l;
            }
            let qend = (at + 5).min(n);
            let qtype = u16::from_be_bytes([buf[at + 1], buf[at + 2]]);
            let ours = name.join(".").ends_with(".upstream.test");
            let mut r = buf[..qend].to_vec();
            r[2] = 0x81;
            r[3] = if ours { 0x80 } else { 0x83 };
            r[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
            if ours && qtype == 1 {
                r[7] = 1;
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
                let ip: Ipv4Addr = EXTERNAL.parse().unwrap();
                r.extend_from_slice(&ip.octets());
            }
            let _ = s.send_to(&r, from);
        }
    });
    port
}

/// A store whose resolvers forward to `upstream` (127.0.0.1:PORT).
fn berth(upstream: &str) -> Berth {
    Berth::with_busybox(BIN, &[]).env("BERTH_DNS_UPSTREAM", upstream)
}

/// A user network with a subnet of its own; returns its gateway.
fn network(b: &Berth, name: &str) -> String {
    let base = std::process::id() % 200;
    for i in 0..50 {
        let subnet = format!("10.197.{}.0/24", (base + i * 11) % 250);
        let o = b.run(&["network", "create", "--subnet", &subnet, name]);
        if o.status.success() {
            return subnet.replace(".0/24", ".1");
        }
        assert!(
            berth_testkit::stderr(&o).contains("overlaps"),
            "{}",
            berth_testkit::stderr(&o)
        );
    }
    panic!("no free subnet for {name}");
}

/// `nslookup NAME` in container `from` (its resolv.conf's server): the
/// output and whether it succeeded.
fn lookup(b: &Berth, from: &str, name: &str) -> (bool, String) {
    let o = b.run(&[
        "exec",
        from,
        "nslookup",
        "-type=a",
        "-timeout=2",
        "-retry=1",
        name,
    ]);
    let text = format!("{}{}", berth_testkit::stdout(&o), berth_testkit::stderr(&o));
    (o.status.success(), text)
}

fn resolves_to(b: &Berth, from: &str, name: &str, ip: &str) {
    let (ok, out) = lookup(b, from, name);
    assert!(
        ok && out.contains(&format!("Address: {ip}")),
        "{name} from {from}: want {ip}: {out}"
    );
}

fn not_found(b: &Berth, from: &str, name: &str) {
    let (ok, out) = lookup(b, from, name);
    assert!(
        !ok && out.contains("NXDOMAIN"),
        "{name} from {from}: want NXDOMAIN: {out}"
    );
}

fn ip_of(b: &Berth, name: &str, net: &str) -> String {
    b.inspect(
        name,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    )
}

fn sleeper(b: &Berth, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sleep", "300"]);
    b.ok(&args).trim().to_string()
}

#[test]
fn members_resolve_by_name_alias_and_id_until_they_leave() {
    if !berth_testkit::root_or_skip("members_resolve_by_name_alias_and_id_until_they_leave") {
        return;
    }
    let up = format!("127.0.0.1:{}", fake_upstream());
    let b = berth(&up);
    let pid = std::process::id();
    let (net, other) = (format!("dnsa-{pid}"), format!("dnsb-{pid}"));
    let gw = network(&b, &net);
    network(&b, &other);
    let web = sleeper(&b, "web", &["--network", &net, "--network-alias", "www"]);
    sleeper(&b, "cli", &["--network", &net]);
    sleeper(&b, "stranger", &["--network", &other]);
    let conf = b.ok(&["exec", "cli", "cat", "/etc/resolv.conf"]);
    assert!(
        conf.contains(&format!("nameserver {gw}\n")) && conf.contains("ndots:0"),
        "{conf}"
    );
    let ip = ip_of(&b, "web", &net);
    // (A full id is one label of 64 bytes, over DNS's 63: no client can
    // ask for it.)
    for name in ["web", "WEB", "www", &web[..12], &format!("web.{net}")] {
        resolves_to(&b, "cli", name, &ip);
    }
    // Not in cli's hosts file: an alias given after both started.
    b.ok(&["network", "connect", "--alias", "late", &other, "web"]);
    let hosts = b.ok(&["exec", "cli", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("late"), "{hosts}");
    resolves_to(&b, "stranger", "late", &ip_of(&b, "web", &other));
    // Its own name, and a name of another network: not known.
    resolves_to(&b, "cli", "cli", &ip_of(&b, "cli", &net));
    not_found(&b, "cli", "stranger");
    // Each network its own aliases, also once web starts again (with one
    // list for all, "late" reached net and "www" other).
    b.ok(&["restart", "-t", "0", "web"]);
    let ip = ip_of(&b, "web", &net);
    resolves_to(&b, "cli", "www", &ip);
    not_found(&b, "cli", "late");
    resolves_to(&b, "stranger", "late", &ip_of(&b, "web", &other));
    not_found(&b, "stranger", "www");
    // Anything else goes upstream.
    resolves_to(&b, "cli", "svc.upstream.test", EXTERNAL);
    not_found(&b, "cli", "nothing.example");
    // Reverse lookups of members.
    let rev: Vec<&str> = ip.split('.').rev().collect();
    let rev = format!("{}.in-addr.arpa", rev.join("."));
    let o = b.ok(&["exec", "cli", "nslookup", "-type=ptr", &rev]);
    assert!(o.contains(&format!("web.{net}")), "{o}");
    // Gone from the moment it is removed.
    b.ok(&["rm", "-f", "web"]);
    not_found(&b, "cli", "web");
    not_found(&b, "cli", "www");
    not_found(&b, "stranger", "late");
}

/// The pids of the resolvers of this store's root.
fn resolvers(b: &Berth) -> Vec<i32> {
    let root = b.path().to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&c| c == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).is_some_and(|a| a == "__dns")
            && args.get(2).is_some_and(|a| a.starts_with(&root))
        {
            pids.push(pid);
        }
    }
    pids
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn resolver_lives_with_members_restarts_after_a_kill_and_fails_fast_without_upstream() {
    if !berth_testkit::root_or_skip("resolver_lives_with_members") {
        return;
    }
    // Nothing listens on this port: forwarding is refused at once.
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let up = closed.local_addr().unwrap().to_string();
    drop(closed);
    let b = berth(&up);
    let net = format!("dnsl-{}", std::process::id());
    let gw = network(&b, &net);
    // The default bridge has no embedded DNS (as docker's).
    let conf = b.ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(!conf.contains("ndots:0"), "{conf}");
    assert!(
        resolvers(&b).is_empty(),
        "no resolver for the default bridge"
    );
    sleeper(&b, "ca", &["--network", &net]);
    // Its port is bound when the start returns; its program (what this
    // lists) may still be being executed.
    wait_until("the resolver runs", || !resolvers(&b).is_empty());
    let first = resolvers(&b);
    assert_eq!(first.len(), 1, "one resolver for the network");
    // Listening on the gateway's port 53 and nowhere else.
    let ss = std::process::Command::new("ss")
        .arg("-Hlnptu")
        .output()
        .unwrap();
    let ss: String = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={},", first[0])))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines: Vec<&str> = ss.lines().collect();
    assert_eq!(lines.len(), 2, "{ss}");
    assert!(
        lines.iter().all(|l| l.contains(&format!("{gw}:53 "))),
        "{ss}"
    );
    let (ok, out) = lookup(&b, "ca", "away.example");
    assert!(!ok && out.contains("SERVFAIL"), "{out}");
    // The detached resolver has no stderr: why it failed is in its log
    // under the run directory, a line with its time.
    let log = resolver_log(&b, &net);
    let text = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("the resolver's log {}: {e}", log.display()));
    let line = text
        .lines()
        .find(|l| l.contains("away.example"))
        .unwrap_or_else(|| panic!("no line about away.example in {}:\n{text}", log.display()));
    assert!(
        line.contains(" warning: ") && line.contains("SERVFAIL") && line.contains(&up),
        "{line}"
    );
    assert!(line.starts_with("20") && line.contains('Z'), "{line}");
    resolves_to(&b, "ca", "ca", &ip_of(&b, "ca", &net));
    // Killed: the next member's start brings another.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first[0]),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    wait_until("the resolver is gone", || resolvers(&b).is_empty());
    // system check starts it again...
    let fixed = b.ok(&["system", "check"]);
    assert!(
        fixed.contains(&format!("started the resolver of network {net}")),
        "{fixed}"
    );
    wait_until("the resolver runs again", || !resolvers(&b).is_empty());
    let again = resolvers(&b);
    assert_eq!(again.len(), 1);
    resolves_to(&b, "ca", "ca", &ip_of(&b, "ca", &net));
    // ... and so does the next member's start.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(again[0]),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    wait_until("the resolver is gone", || resolvers(&b).is_empty());
    sleeper(&b, "cb", &["--network", &net]);
    wait_until("the resolver runs once more", || !resolvers(&b).is_empty());
    assert_eq!(resolvers(&b).len(), 1);
    resolves_to(&b, "cb", "ca", &ip_of(&b, "ca", &net));
    // Malformed packets from the host: no crash, and a non-member is
    // refused.
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let dst = format!("{gw}:53");
    let mut q = vec![
        0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
    ];
    for bad in [
        vec![],
        vec![1, 2, 3],
        vec![
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ],
        vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a'],
        vec![0xff; 600],
    ] {
        s.send_to(&bad, &dst).unwrap();
    }
    s.send_to(&q, &dst).unwrap();
    let mut buf = [0u8; 512];
    let mut refused = false;
    while let Ok(n) = s.recv(&mut buf) {
        if n >= 4 && buf[..2] == q[..2] && buf[3] & 0x0f == 5 && buf[5] == 1 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the host (not a member) is refused");
    // Over TCP (length-prefixed): the same answer, and a truncated
    // message ends the connection without harm.
    {
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(&dst).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let len = u16::try_from(q.len()).unwrap().to_be_bytes();
        t.write_all(&len).unwrap();
        t.write_all(&q).unwrap();
        let mut n = [0u8; 2];
        t.read_exact(&mut n).unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(n))];
        t.read_exact(&mut reply).unwrap();
        assert_eq!((&reply[..2], reply[3] & 0x0f), (&q[..2], 5), "{reply:?}");
        t.write_all(&[0, 40, 1, 2]).unwrap();
    }
    q.clear();
    resolves_to(&b, "cb", "ca", &ip_of(&b, "ca", &net));
    // The last member gone: the resolver ends.
    b.ok(&["rm", "-f", "ca", "cb"]);
    assert_eq!(
        resolvers(&b),
        Vec::<i32>::new(),
        "ended with the last member"
    );
    b.ok(&["network", "rm", &net]);
    for f in [
        log.clone(),
        log.with_extension("live"),
        log.with_extension("start"),
    ] {
        assert!(!f.exists(), "{} is left after network rm", f.display());
    }
}

/// Where the resolver of network `net` logs: RUNROOT/dns/ID.log (the run
/// directory berth's own default or BERTH_RUNROOT, as the commands use).
fn resolver_log(b: &Berth, net: &str) -> std::path::PathBuf {
    let id = b.ok(&["network", "inspect", "-f", "{{.Id}}", net]);
    let runroot = std::env::var_os("BERTH_RUNROOT").unwrap_or_else(|| "/run/berth".into());
    std::path::Path::new(&runroot)
        .join("dns")
        .join(format!("{}.log", id.trim()))
}
