//! IPv4 subnets: parsing, overlap, the addresses in them.

use std::net::Ipv4Addr;

/// An IPv4 network, `addr/prefix`, with `addr` its first address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// `10.88.0.0/16`; the address must be the network's first one.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (a, p) = s
            .split_once('/')
            // Docker's words.
            .ok_or_else(|| format!("Invalid subnet {s} : invalid CIDR address: {s}"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| {
            if a.contains(':') {
                format!("invalid subnet {s:?}: IPv6 networks are not supported yet")
            } else {
                format!("invalid subnet {s:?}: bad IPv4 address")
            }
        })?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 30)
            .ok_or_else(|| format!("invalid subnet {s:?}: the prefix must be 0 to 30"))?;
        let net = Subnet { addr, prefix };
        if net.network() != addr {
            return Err(format!(
                "invalid subnet {s:?}: not a network address (did you mean {}?)",
                Subnet {
                    addr: net.network(),
                    prefix
                }
            ));
        }
        Ok(net)
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`th address (0 is the network address).
    pub fn host(self, n: u32) -> Option<Ipv4Addr> {
        let ip = u32::from(self.network()).checked_add(n)?;
        let ip = Ipv4Addr::from(ip);
        (self.contains(ip) && ip != self.broadcast()).then_some(ip)
    }

    /// Usable addresses: not the network's, not the broadcast.
    pub fn usable(self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network() && ip != self.broadcast()
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// As its text (`10.1.0.0/24`), as it is kept in the database.
impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Subnet::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_contains_overlap() {
        let s = Subnet::parse("10.88.0.0/16").unwrap();
        assert!(s.contains(Ipv4Addr::new(10, 88, 255, 1)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert_eq!(s.host(1), Some(Ipv4Addr::new(10, 88, 0, 1)));
        assert_eq!(s.host(65535), None);
        assert!(s.overlaps(Subnet::parse("10.88.3.0/24").unwrap()));
        assert!(Subnet::parse("10.0.0.0/8").unwrap().overlaps(s));
        assert!(!s.overlaps(Subnet::parse("10.89.0.0/24").unwrap()));
        assert!(Subnet::parse("10.88.0.1/16")
            .unwrap_err()
            .contains("10.88.0.0/16"));
        assert!(Subnet::parse("10.88.0.0").is_err());
        assert!(Subnet::parse("10.88.0.0/31").is_err());
        assert!(Subnet::parse("fd00::/64").unwrap_err().contains("IPv6"));
        assert!(Subnet::parse("0.0.0.0/0").is_ok());
    }
}
