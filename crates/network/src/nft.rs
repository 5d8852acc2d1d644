//! NAT and filtering in one nftables table, `ip berth`, driven through
//! `nft -j -f -` (the JSON interface; each batch is one transaction).
//! A network's own elements, once the rules are loaded, go through
//! nfnetlink from the process instead (nft_elements.rs says why).
//!
//! The rules never change: they look things up in sets and maps, and what
//! networks and containers add or remove are elements, by key. So there is
//! no rule handle to find before a delete, and concurrent commands (and
//! several berth roots on one host) only ever add and delete their own
//! elements.
//!
//! ```text
//! subnets      every berth subnet            nat_subnets  those with outbound NAT
//! internal     --internal subnets            {tcp,udp}_{any,ip}_{a,p}  published ports:
//!   key port (any host address) or host address . port; value container
//!   address (_a) and port (_p) (nft 1.0.6 crashes on one map to a concatenation)
//! prerouting/output (dnat):  to a local address, a published port → the container
//! postrouting (masquerade):  subnet → outside; 127/8 → container (published on
//!   loopback, with route_localnet on the bridge); dnat'ed subnet → subnet (hairpin)
//! forward (filter):          internal subnets reach nothing beyond their bridge;
//!   one subnet reaches another only through a published port (same_net: pairs
//!   subnet . subnet of each network)
//! input (filter):           port 53 of a local address (a network's resolver)
//!   only from that network's own subnet
//! localnet (filter, prerouting at raw priority): nothing that arrives on
//!   an interface other than lo is to or from 127.0.0.0/8
//! ```
//!
//! Why localnet: the bridges have route_localnet=1 (a port published on
//! 127.0.0.1 is DNAT-ed to a container with its loopback source), and with it
//! the kernel no longer drops packets that arrive on the bridge addressed to
//! 127.0.0.0/8 as martians. A container with CAP_NET_RAW (a default one)
//! writes such a frame to the gateway's MAC and reaches whatever the host
//! bound to loopback only (CVE-2020-8558, the same hole in kube-proxy); with
//! a 127.0.0.2 source it passes for a local client of a host service that
//! trusts loopback. And on any interface, a neighbour's frame to 127.0.0.1
//! is DNAT-ed by prerouting to a port published on 127.0.0.1 before the
//! kernel could call it a martian (moby/moby#41872). The chain runs before
//! NAT (raw priority), where the legitimate packets still carry container,
//! gateway and host addresses: the host's own connections to 127.0.0.1
//! come from lo, the replies to a port published on 127.0.0.1 only become
//! 127.0.0.1-addressed in NAT's prerouting (the masquerade undone), after
//! this check, and hairpin traffic is addressed to a host address. It
//! matches every interface but lo, not a list of berth's bridges: no
//! element to keep per bridge, nothing missed for bridges made by an older
//! berth or another root, and where route_localnet is off the kernel drops
//! such packets anyway.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::ports::{PortMapping, Proto};
use crate::subnet::Subnet;

pub const TABLE: &str = "berth";

/// An nft failure: what kind, and what nft said.
#[derive(Debug, thiserror::Error)]
#[error("nftables: {message}")]
pub struct NftError {
    pub kind: NftErrorKind,
    pub message: String,
}

/// What the kernel refused in an nft batch, for callers that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftErrorKind {
    /// An object the batch names is not there (ENOENT: the table was
    /// flushed).
    Missing,
    /// An element the batch adds is already there (EEXIST: a published
    /// port another container holds).
    Exists,
    /// nft could not be run, or said something else.
    Other,
}

impl NftError {
    fn other(message: String) -> Self {
        NftError {
            kind: NftErrorKind::Other,
            message,
        }
    }

    /// nft reports the kernel's errno only as its strerror text on stderr
    /// (its JSON mode has no error object), so this is the one place that
    /// reads that text, and it compares with the C library's own strings
    /// for the errno values it acts on.
    fn from_stderr(first_line: String) -> Self {
        let says = |errno: nix::errno::Errno| first_line.ends_with(errno.desc());
        let kind = if says(nix::errno::Errno::ENOENT) {
            NftErrorKind::Missing
        } else if says(nix::errno::Errno::EEXIST) {
            NftErrorKind::Exists
        } else {
            NftErrorKind::Other
        };
        NftError {
            kind,
            message: first_line,
        }
    }
}

fn obj(kind: &str, mut v: Value) -> Value {
    v["family"] = json!("ip");
    v["table"] = json!(TABLE);
    json!({ kind: v })
}

fn payload(proto: &str, field: &str) -> Value {
    json!({"payload": {"protocol": proto, "field": field}})
}

fn set_match(field: &str, op: &str, set: &str) -> Value {
    json!({"match": {"op": op, "left": payload("ip", field), "right": format!("@{set}")}})
}

fn local_daddr() -> Value {
    json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": obj("rule", json!({"chain": chain, "expr": expr}))})
}

fn map_name(proto: Proto, by_ip: bool, part: char) -> String {
    format!(
        "{}_{}_{part}",
        proto.as_str(),
        if by_ip { "ip" } else { "any" }
    )
}

/// The table, its sets, maps and chains (created if missing), and its
/// rules (replaced: each chain flushed and filled in the same
/// transaction), as commands that can run any number of times.
pub fn skeleton() -> Vec<Value> {
    let mut cmds = vec![json!({"add": {"table": {"family": "ip", "name": TABLE}}})];
    for set in ["subnets", "nat_subnets", "internal"] {
        cmds.push(json!({"add": obj("set", json!({"name": set, "type": "ipv4_addr", "flags": ["interval"]}))}));
    }
    cmds.push(json!({"add": obj("set", json!({
        "name": "same_net", "type": ["ipv4_addr", "ipv4_addr"], "flags": ["interval"],
    }))}));
    for proto in [Proto::Tcp, Proto::Udp] {
        for by_ip in [false, true] {
            let key = if by_ip {
                json!(["ipv4_addr", "inet_service"])
            } else {
                json!("inet_service")
            };
            for (part, value) in [('a', "ipv4_addr"), ('p', "inet_service")] {
                cmds.push(json!({"add": obj("map", json!({
                    "name": map_name(proto, by_ip, part), "type": key, "map": value,
                }))}));
            }
        }
    }
    for (name, typ, hook, prio) in [
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
        ("localnet", "filter", "prerouting", -300),
        ("input", "filter", "input", 0),
    ] {
        cmds.push(json!({"add": obj("chain", json!({
            "name": name, "type": typ, "hook": hook, "prio": prio, "policy": "accept",
        }))}));
        cmds.push(json!({"flush": obj("chain", json!({"name": name}))}));
    }
    for chain in ["prerouting", "output"] {
        for proto in [Proto::Tcp, Proto::Udp] {
            for by_ip in [false, true] {
                let key = if by_ip {
                    json!({"concat": [payload("ip", "daddr"), payload(proto.as_str(), "dport")]})
                } else {
                    payload(proto.as_str(), "dport")
                };
                let lookup = |part| json!({"map": {"key": key, "data": format!("@{}", map_name(proto, by_ip, part))}});
                cmds.push(rule(
                    chain,
                    vec![
                        local_daddr(),
                        json!({"dnat": {"addr": lookup('a'), "port": lookup('p')}}),
                    ],
                ));
            }
        }
    }
    let masquerade = json!({"masquerade": null});
    cmds.push(rule(
        "postrouting",
        vec![
            set_match("saddr", "==", "nat_subnets"),
            set_match("daddr", "!=", "subnets"),
            masquerade.clone(),
        ],
    ));
    cmds.push(rule(
        "postrouting",
        vec![
            json!({"match": {"op": "==", "left": payload("ip", "saddr"),
                             "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}),
            set_match("daddr", "==", "subnets"),
            masquerade.clone(),
        ],
    ));
    cmds.push(rule(
        "postrouting",
        vec![
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            set_match("saddr", "==", "subnets"),
            set_match("daddr", "==", "subnets"),
            masquerade,
        ],
    ));
    for field in ["daddr", "saddr"] {
        cmds.push(rule(
            "localnet",
            vec![
                json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}),
                json!({"match": {"op": "==", "left": payload("ip", field),
                                 "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}),
                json!({"drop": null}),
            ],
        ));
    }
    for field in ["saddr", "daddr"] {
        cmds.push(rule(
            "forward",
            vec![set_match(field, "==", "internal"), json!({"drop": null})],
        ));
    }
    // A network's resolver (resolver.rs) listens on its gateway: only
    // its own subnet may ask it, so a container cannot learn the members
    // of a network it is not on (the gateway of another network is a
    // local address, reached through input, not forward).
    cmds.push(rule(
        "input",
        vec![
            json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}},
                             "right": {"set": ["tcp", "udp"]}}}),
            json!({"match": {"op": "==", "left": payload("th", "dport"), "right": 53}}),
            set_match("saddr", "==", "subnets"),
            json!({"match": {"op": "!=", "left": {"concat": [payload("ip", "saddr"), payload("ip", "daddr")]},
                             "right": "@same_net"}}),
            json!({"drop": null}),
        ],
    ));
    // Networks are isolated from each other (as docker's): routed from
    // one berth subnet to another is dropped, unless a published port
    // was the way in.
    cmds.push(rule(
        "forward",
        vec![
            set_match("saddr", "==", "subnets"),
            set_match("daddr", "==", "subnets"),
            json!({"match": {"op": "!=", "left": {"concat": [payload("ip", "saddr"), payload("ip", "daddr")]},
                             "right": "@same_net"}}),
            json!({"match": {"op": "!", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            json!({"drop": null}),
        ],
    ));
    cmds
}

/// Where a host records that this build's rules are loaded (until the next
/// boot empties /run, and the table with it): named after the rules, so a
/// newer berth's rules (the localnet chain, for bridges made before it) are
/// loaded at its first container start even though the bridges exist.
fn stamp() -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    json!({"nftables": skeleton()}).to_string().hash(&mut h);
    let name = format!("berth-nft-{:016x}", h.finish());
    // Rootless: the namespace's own, in the user's run state.
    crate::netns::state_dir().map_or_else(
        || std::path::Path::new("/run").join(&name),
        |d| d.join(&name),
    )
}

/// Whether this build's rules were loaded since boot.
pub fn is_current() -> bool {
    stamp().exists()
}

/// Loads the skeleton and `extra` in one batch, and records that it did.
pub fn install(extra: Vec<Value>) -> Result<(), NftError> {
    let mut cmds = skeleton();
    cmds.extend(extra);
    apply(&cmds)?;
    // Only a cache: without it the rules are loaded again next time.
    let _ = std::fs::write(stamp(), b"");
    Ok(())
}

fn prefix(s: Subnet) -> Value {
    json!({"prefix": {"addr": s.addr.to_string(), "len": s.prefix}})
}

fn element(verb: &str, set: &str, elem: Value) -> Value {
    json!({verb: obj("element", json!({"name": set, "elem": [elem]}))})
}

/// A network's subnet in the sets (`add`) or out of them (`delete`).
pub fn network(verb: &str, subnet: Subnet, internal: bool) -> Vec<Value> {
    let mut cmds = vec![
        element(verb, "subnets", prefix(subnet)),
        element(
            verb,
            "same_net",
            json!({"concat": [prefix(subnet), prefix(subnet)]}),
        ),
    ];
    cmds.push(element(
        verb,
        if internal { "internal" } else { "nat_subnets" },
        prefix(subnet),
    ));
    cmds
}

/// A published port's elements: `create` (fails if the host port is
/// taken) or `delete`.
pub fn port(verb: &str, p: &PortMapping) -> Vec<Value> {
    let by_ip = p.host_ip.is_some();
    let key = match p.host_ip {
        Some(ip) => json!({"concat": [ip.to_string(), p.host_port]}),
        None => json!(p.host_port),
    };
    let (a, pp) = (map_name(p.proto, by_ip, 'a'), map_name(p.proto, by_ip, 'p'));
    if verb == "delete" {
        return vec![element(verb, &a, key.clone()), element(verb, &pp, key)];
    }
    vec![
        element(verb, &a, json!([key, p.container_ip.to_string()])),
        element(verb, &pp, json!([key, p.container_port])),
    ]
}

/// Runs one batch.
pub fn apply(cmds: &[Value]) -> Result<(), NftError> {
    if cmds.is_empty() {
        return Ok(());
    }
    let text = json!({"nftables": cmds}).to_string();
    let mut child = crate::netns::command("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NftError::other(format!(
                "cannot run nft ({e}): install nftables (apt-get install nftables)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NftError::other(format!("write to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError::other(format!("wait for nft: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("failed")
        .trim_start_matches("internal:0:0-0: ")
        .to_string();
    Err(NftError::from_stderr(first))
}

/// A published port as the table has it: protocol, host address (None:
/// any), host port, container address.
pub type Published = (Proto, Option<Ipv4Addr>, u16, Ipv4Addr);

/// The table's published-port elements: (proto, host address, host port,
/// container address), for `system check`.
pub fn published() -> Result<Vec<Published>, NftError> {
    let out = crate::netns::command("nft")
        .args(["-j", "list", "table", "ip", TABLE])
        .output()
        .map_err(|e| NftError::other(format!("cannot run nft: {e}")))?;
    if !out.status.success() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| NftError::other(format!("nft output: {e}")))?;
    let mut found = Vec::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        let Some(m) = o.get("map") else { continue };
        let name = m["name"].as_str().unwrap_or("");
        let Some(proto) = name.split('_').next().and_then(Proto::parse) else {
            continue;
        };
        if !name.ends_with("_a") {
            continue;
        }
        for e in m["elem"].as_array().into_iter().flatten() {
            let (k, val) = (&e[0], &e[1]);
            let ctr: Option<Ipv4Addr> = val.as_str().and_then(|s| s.parse().ok());
            let (ip, port) = match k.get("concat") {
                Some(c) => (c[0].as_str().and_then(|s| s.parse().ok()), c[1].as_u64()),
                None => (None, k.as_u64()),
            };
            if let (Some(ctr), Some(port)) = (ctr, port.and_then(|p| u16::try_from(p).ok())) {
                found.push((proto, ip, port, ctr));
            }
        }
    }
    Ok(found)
}

/// For tests that run the real nft: moves the calling thread into a
/// network namespace of its own (nft inherits it; the host's ruleset is
/// not touched). False, said, when root or nft is missing, which fails
/// under CI.
#[cfg(test)]
pub(crate) fn in_a_network_namespace_of_its_own() -> bool {
    if !nix::unistd::geteuid().is_root()
        || std::process::Command::new("nft")
            .arg("-v")
            .output()
            .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test needs root and nft"
        );
        eprintln!("skipped: needs root and nft");
        return false;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn port_elements_name_their_maps() {
        let p = PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 1, 0, 2),
            container_port: 80,
            proto: Proto::Udp,
        };
        let c = port("create", &p);
        assert_eq!(c[0]["create"]["element"]["name"], "udp_ip_a");
        assert_eq!(
            c[0]["create"]["element"]["elem"][0][0]["concat"],
            json!(["127.0.0.1", 8080])
        );
        assert_eq!(c[1]["create"]["element"]["elem"][0][1], json!(80));
        let d = port("delete", &PortMapping { host_ip: None, ..p });
        assert_eq!(d[1]["delete"]["element"]["name"], "udp_any_p");
        assert_eq!(d[1]["delete"]["element"]["elem"][0], json!(8080));
    }

    /// The whole ruleset loads in a namespace of our own (nft's JSON
    /// parser is picky: this pins what 1.0.6 accepts).
    #[test]
    fn skeleton_loads_twice_and_takes_elements() {
        if !nix::unistd::geteuid().is_root() || Command::new("nft").arg("-v").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "this test needs root and nft"
            );
            eprintln!("skipped: needs root and nft");
            return;
        }
        let mut cmds = skeleton();
        cmds.extend(network("add", Subnet::parse("10.1.0.0/16").unwrap(), false));
        let p = PortMapping {
            host_ip: None,
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 1, 0, 2),
            container_port: 80,
            proto: Proto::Tcp,
        };
        cmds.extend(port("create", &p));
        let batch = json!({"nftables": cmds}).to_string();
        let script = format!(
            "set -e; echo '{batch}' | nft -j -f -; echo '{}' | nft -j -f -; \
             ! echo '{}' | nft -j -f - 2>/dev/null; nft list table ip berth",
            json!({"nftables": skeleton()}),
            json!({"nftables": port("create", &p)}),
        );
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("8080 : 10.1.0.2"), "{text}");
        assert!(
            text.contains("iifname != \"lo\" ip daddr 127.0.0.0/8 drop")
                && text.contains("iifname != \"lo\" ip saddr 127.0.0.0/8 drop"),
            "loopback closed to the bridges: {text}"
        );
        assert!(
            text.contains("th dport 53 ip saddr @subnets ip saddr . ip daddr != @same_net drop"),
            "resolvers closed to other networks: {text}"
        );
        assert_eq!(
            text.matches("masquerade").count(),
            3,
            "rules are not doubled: {text}"
        );
    }

    /// The store decides on nft's failures by kind (a flushed table is
    /// loaded again, a taken port is "port is already allocated"): the
    /// kinds come from what the real nft says, in a network namespace of
    /// this test's thread (nft inherits it; the host's ruleset is not
    /// touched).
    #[test]
    fn nft_failures_have_kinds() {
        if !in_a_network_namespace_of_its_own() {
            return;
        }
        let p = PortMapping {
            host_ip: None,
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 1, 0, 2),
            container_port: 80,
            proto: Proto::Tcp,
        };
        let missing = apply(&port("create", &p)).unwrap_err();
        assert_eq!(missing.kind, NftErrorKind::Missing, "{missing}");
        // Not install(): its stamp in /run is the host's.
        let mut table = skeleton();
        table.extend(network("add", Subnet::parse("10.1.0.0/16").unwrap(), false));
        apply(&table).unwrap();
        apply(&port("create", &p)).unwrap();
        let taken = apply(&port("create", &p)).unwrap_err();
        assert_eq!(taken.kind, NftErrorKind::Exists, "{taken}");
        let bad = apply(&[json!({"add": {"bogus": {}}})]).unwrap_err();
        assert_eq!(bad.kind, NftErrorKind::Other, "{bad}");
    }
}
