//! `-p` specs: `[ip:][hostPort[-end]:]containerPort[-end][/tcp|/udp]`.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// tcp or udp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One published port as asked for: `host_port` 0 means any free port;
/// `host_port_end` above `host_port`, any free one of the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// None: every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub host_port_end: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// A port as published: the host's side fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// `0.0.0.0:8080`, as `port` prints it.
    pub fn host_display(&self) -> String {
        format!(
            "{}:{}",
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port
        )
    }
}

fn port(spec: &str, s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port spec {spec:?}: {s:?} is not a port (1-65535)"))
}

fn range(spec: &str, s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(spec, a)?, port(spec, b)?);
            if b < a {
                return Err(format!(
                    "invalid port spec {spec:?}: range {s} ends before it starts"
                ));
            }
            Ok((a, b))
        }
        None => {
            let p = port(spec, s)?;
            Ok((p, p))
        }
    }
}

/// Parses one `-p` value into one spec per container port.
pub fn parse(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (
            r,
            Proto::parse(p).ok_or_else(|| {
                format!("invalid port spec {spec:?}: protocol {p:?}: use tcp or udp")
            })?,
        ),
        None => (spec, Proto::Tcp),
    };
    if rest.starts_with('[') {
        return Err(format!(
            "invalid port spec {spec:?}: IPv6 host addresses are not supported yet"
        ));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
        _ => {
            return Err(format!(
                "invalid port spec {spec:?}: expected [ip:][hostPort:]containerPort[/proto]"
            ))
        }
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => {
            let a: Ipv4Addr = ip.parse().map_err(|_| {
                format!("invalid port spec {spec:?}: {ip:?} is not an IPv4 address")
            })?;
            (!a.is_unspecified()).then_some(a)
        }
    };
    let (c0, c1) = range(spec, ctr)?;
    let (h0, h1) = match host {
        None => (0, 0),
        Some(h) => range(spec, h)?,
    };
    let n = c1 - c0;
    if host.is_some() && h1 - h0 != n && n != 0 {
        return Err(format!(
            "invalid port spec {spec:?}: the host and container ranges differ in size"
        ));
    }
    Ok((0..=n)
        .map(|i| {
            let (host_port, host_port_end) = match (host, n) {
                (None, _) => (0, 0),
                // One container port, a range of host ports: any free one.
                (Some(_), 0) => (h0, h1),
                (Some(_), _) => (h0 + i, h0 + i),
            };
            PortSpec {
                host_ip,
                host_port,
                host_port_end,
                container_port: c0 + i,
                proto,
            }
        })
        .collect())
}

/// `EXPOSE`d ports (`80/tcp`, `53/udp`) as `-P` publishes them: each to
/// any free host port.
pub fn from_exposed(exposed: &[String]) -> Result<Vec<PortSpec>, String> {
    let mut out = Vec::new();
    for e in exposed {
        for mut p in parse(e)? {
            p.host_port = 0;
            p.host_port_end = 0;
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_docker() {
        let p = parse("8080:80").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].host_port, p[0].container_port, p[0].proto),
            (8080, 80, Proto::Tcp)
        );
        assert_eq!(p[0].host_ip, None);
        let p = parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p[0].proto, Proto::Udp);
        let p = parse("80").unwrap();
        assert_eq!((p[0].host_port, p[0].container_port), (0, 80));
        let p = parse("127.0.0.1::80").unwrap();
        assert_eq!(
            (p[0].host_port, p[0].host_ip),
            (0, Some(Ipv4Addr::LOCALHOST))
        );
        let p = parse("9000-9002:80-82").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].host_port, p[2].container_port), (9002, 82));
        let p = parse("9000-9009:80").unwrap();
        assert_eq!((p[0].host_port, p[0].host_port_end), (9000, 9009));
        let p = parse("0.0.0.0:8080:80").unwrap();
        assert_eq!(p[0].host_ip, None);
        for bad in [
            "",
            "x",
            "0",
            "70000",
            "80/sctp",
            "1:2:3:4",
            "9000-9001:80-85",
            "a.b:1:2",
            "[::1]:80:80",
            "90-80",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("invalid port spec"), "{bad}: {e}");
        }
    }

    #[test]
    fn exposed_ports_get_any_host_port() {
        let p = from_exposed(&["80/tcp".into(), "53/udp".into()]).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|p| p.host_port == 0));
        assert_eq!(p[1].proto, Proto::Udp);
    }
}
