//! `/etc/hosts` and `/etc/resolv.conf` as a container sees them.

use std::net::Ipv4Addr;

/// What `--dns`, `--dns-search`, `--dns-option` ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Docker's fallback when the host has only loopback resolvers (which a
/// container in its own network namespace cannot reach).
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

fn is_loopback(ns: &str) -> bool {
    ns.parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_loopback())
}

/// resolv.conf from the host's: its nameservers (loopback ones dropped
/// when the container has its own network), search and options, each
/// replaced by what the flags give.
pub fn resolv_conf(host: &str, dns: &DnsConfig, own_netns: bool) -> String {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    let mut options = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ns) = words.next() {
                    if !(own_netns && is_loopback(ns)) {
                        servers.push(ns.to_string());
                    }
                }
            }
            Some("search" | "domain") => search = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    if !dns.servers.is_empty() {
        servers.clone_from(&dns.servers);
    } else if servers.is_empty() && own_netns {
        servers = FALLBACK.iter().map(|s| (*s).to_string()).collect();
    }
    if !dns.search.is_empty() {
        search.clone_from(&dns.search);
    }
    if !dns.options.is_empty() {
        options.clone_from(&dns.options);
    }
    let mut out = String::new();
    if !search.is_empty() && search != ["."] {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// resolv.conf of a container on a user network with an embedded
/// resolver at `server`: the host's (or the flags') search and options,
/// with `ndots:0` unless an ndots is given, as docker writes it for its
/// 127.0.0.11 (a name with no dot is tried as it is first, and a
/// member's name is answered before any search domain is tried).
pub fn embedded_resolv_conf(host: &str, dns: &DnsConfig, server: Ipv4Addr) -> String {
    let mut search = Vec::new();
    let mut options = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("search" | "domain") => search = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    if !dns.search.is_empty() {
        search.clone_from(&dns.search);
    }
    if !dns.options.is_empty() {
        options.clone_from(&dns.options);
    }
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut out = String::new();
    if !search.is_empty() && search != ["."] {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    out.push_str(&format!("nameserver {server}\n"));
    out.push_str(&format!("options {}\n", options.join(" ")));
    out
}

/// One line of /etc/hosts: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: String,
    pub names: Vec<String>,
}

/// /etc/hosts: localhost, `--add-host`s, the container's own address and
/// hostname, then its peers on user networks.
pub fn hosts(
    extra: &[HostEntry],
    own: Option<(Ipv4Addr, &str)>,
    hostname: &str,
    peers: &[HostEntry],
) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for e in extra {
        out.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
    }
    match own {
        Some((ip, name)) => out.push_str(&format!("{ip}\t{name}\n")),
        None if !hostname.is_empty() => out.push_str(&format!("127.0.1.1\t{hostname}\n")),
        None => {}
    }
    for p in peers {
        out.push_str(&format!("{}\t{}\n", p.ip, p.names.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_dropped_in_a_namespace() {
        let host = "nameserver 127.0.0.53\nsearch lan\noptions edns0\n";
        let r = resolv_conf(host, &DnsConfig::default(), true);
        assert_eq!(
            r,
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n"
        );
        let r = resolv_conf(host, &DnsConfig::default(), false);
        assert!(r.contains("nameserver 127.0.0.53"));
        let dns = DnsConfig {
            servers: vec!["1.1.1.1".into()],
            search: vec!["a.example".into(), "b.example".into()],
            options: vec!["ndots:2".into()],
        };
        let r = resolv_conf("nameserver 10.0.0.1\n", &dns, true);
        assert_eq!(
            r,
            "search a.example b.example\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
        let r = resolv_conf("nameserver 10.0.0.1\n", &DnsConfig::default(), true);
        assert_eq!(r, "nameserver 10.0.0.1\n");
    }

    #[test]
    fn embedded_resolver_keeps_search_and_adds_ndots() {
        let gw = Ipv4Addr::new(10, 199, 3, 1);
        let host = "nameserver 10.0.0.1\nsearch lan\noptions edns0\n";
        assert_eq!(
            embedded_resolv_conf(host, &DnsConfig::default(), gw),
            "search lan\nnameserver 10.199.3.1\noptions edns0 ndots:0\n"
        );
        let dns = DnsConfig {
            options: vec!["ndots:2".into()],
            ..Default::default()
        };
        assert_eq!(
            embedded_resolv_conf("", &dns, gw),
            "nameserver 10.199.3.1\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_list_self_and_peers() {
        let peers = [HostEntry {
            ip: "10.1.0.3".into(),
            names: vec!["web".into(), "www".into()],
        }];
        let extra = [HostEntry {
            ip: "1.2.3.4".into(),
            names: vec!["db".into()],
        }];
        let h = hosts(
            &extra,
            Some((Ipv4Addr::new(10, 1, 0, 2), "abc")),
            "abc",
            &peers,
        );
        assert!(
            h.contains("1.2.3.4\tdb\n10.1.0.2\tabc\n10.1.0.3\tweb www\n"),
            "{h}"
        );
        let h = hosts(&[], None, "abc", &[]);
        assert!(h.ends_with("127.0.1.1\tabc\n"));
    }
}
