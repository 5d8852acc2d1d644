//! Links, addresses and routes through rtnetlink, synchronously: one
//! request, read until its acknowledgement (or the end of a dump).
//!
//! A socket belongs to the network namespace it was opened in, for its whole
//! life: [`Netlink::open_in`] opens one inside a container's namespace from a
//! short-lived thread (setns changes only the calling thread), so the caller
//! never leaves its own namespace.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A link as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: String,
    pub mtu: u32,
    /// "bridge", "veth", ... (empty when the kernel gives no kind).
    pub kind: String,
    /// The bridge it is a port of, if any.
    pub master: Option<u32>,
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    pub oif: Option<u32>,
}

/// An rtnetlink socket.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl AsRawFd for Netlink {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

impl Netlink {
    /// A socket in our own network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors come back with the request's own sequence number.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink { socket, seq: 0 })
    }

    /// A socket in the network namespace `netns` (an open
    /// `/proc/<pid>/ns/net`), opened by a thread that joins it and ends.
    pub fn open_in(netns: &File) -> io::Result<Netlink> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                Netlink::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = flags | NLM_F_REQUEST;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Sends a request and reads the replies: the messages of a dump, or
    /// nothing once acknowledged.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, flags | NLM_F_ACK)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&buf[offset..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = usize::try_from(msg.header.length).unwrap_or(0);
                if msg.header.sequence_number == seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out),
                                Some(_) => Err(e.to_io()),
                            }
                        }
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(&l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, if there is one.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(&l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge, up, with `alias` (who made it) and `mtu`. Returns
    /// false when it existed already.
    pub fn create_bridge(&mut self, name: &str, mtu: u32, alias: &str) -> io::Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        // A MAC of its own, as docker gives its bridges: without one the
        // bridge takes its lowest port's, and changes it when that member
        // leaves; the others' ARP entries for the gateway then point at a
        // MAC nobody has, and they reach neither the gateway (its
        // resolver) nor the outside for seconds, until they ask again.
        msg.attributes
            .push(LinkAttribute::Address(random_mac()?.to_vec()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(false),
            Err(e) => return Err(e),
        }
        // IFLA_IFALIAS is refused at creation by some kernels: set after.
        if let Some(l) = self.link(name)? {
            let mut msg = LinkMessage::default();
            msg.header.index = l.index;
            msg.attributes
                .push(LinkAttribute::IfAlias(alias.to_string()));
            self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        }
        Ok(true)
    }

    /// Creates a veth pair: `host` here, up, a port of bridge `master`;
    /// its peer `peer` straight in the namespace `peer_ns` (with `mac` if
    /// given), still down.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: &File,
        master: u32,
        mtu: u32,
        mac: Option<[u8; 6]>,
    ) -> io::Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        if let Some(mac) = mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Controller(master));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        Ok(())
    }

    /// Deletes a link (a veth's peer goes with it). Gone already is fine.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets a link's MTU (on a bridge this also stops the kernel from
    /// retuning it to its ports' smallest, or to 1500 when it has none).
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        Ok(())
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        Ok(())
    }

    /// Takes a link down (a link must be down to be renamed).
    pub fn set_down(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        Ok(())
    }

    /// Renames a (down) link and clears its alias, in one request.
    pub fn rename_clearing_alias(&mut self, index: u32, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        // An empty alias is the kernel's way to remove one.
        msg.attributes.push(LinkAttribute::IfAlias(String::new()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        Ok(())
    }

    /// Removes `ip/prefix` from a link; not there is fine.
    pub fn delete_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip.into()));
        msg.attributes.push(AddressAttribute::Address(ip.into()));
        match self.request(RouteNetlinkMessage::DelAddress(msg), 0) {
            Err(e) if e.raw_os_error() != Some(libc::EADDRNOTAVAIL) => Err(e),
            _ => Ok(()),
        }
    }

    /// Adds `ip/prefix` to a link; there already is fine.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip.into()));
        msg.attributes.push(AddressAttribute::Address(ip.into()));
        let bcast = u32::from(ip) | u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        msg.attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
            _ => Ok(()),
        }
    }

    /// Adds the default route via `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.table == RouteHeader::RT_TABLE_MAIN =>
                {
                    let mut route = Route {
                        destination: Ipv4Addr::UNSPECIFIED,
                        prefix: r.header.destination_prefix_length,
                        oif: None,
                    };
                    for a in &r.attributes {
                        match a {
                            RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                                route.destination = *d;
                            }
                            RouteAttribute::Oif(i) => route.oif = Some(*i),
                            _ => {}
                        }
                    }
                    Some(route)
                }
                _ => None,
            })
            .collect())
    }
}

fn link_of(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        alias: String::new(),
        mtu: 0,
        kind: String::new(),
        master: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::IfAlias(n) => link.alias.clone_from(n),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// A random unicast, locally administered MAC address.
fn random_mac() -> io::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut mac)?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A fresh network namespace held by a sleeping child (unshare -n),
    /// killed on drop.
    struct Netns {
        child: std::process::Child,
        file: File,
    }

    impl Netns {
        fn new() -> Netns {
            let child = std::process::Command::new("unshare")
                .args(["-n", "sleep", "60"])
                .spawn()
                .unwrap();
            let path = format!("/proc/{}/ns/net", child.id());
            let own = std::fs::read_link("/proc/self/ns/net").unwrap();
            // unshare(2) happens just after the fork: wait for the switch.
            for _ in 0..500 {
                if std::fs::read_link(&path).is_ok_and(|l| l != own) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let file = File::open(&path).unwrap();
            Netns { child, file }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn bridge_veth_address_route_inside_a_namespace() {
        if !root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: needs root");
            return;
        }
        // Everything happens in a namespace of our own ("host") and one in
        // it ("container"): nothing touches the real host.
        let host = Netns::new();
        let ctr = Netns::new();
        let mut nl = Netlink::open_in(&host.file).unwrap();
        assert!(nl.create_bridge("tbr0", 1400, "test").unwrap());
        assert!(!nl.create_bridge("tbr0", 1400, "test").unwrap());
        let br = nl.link("tbr0").unwrap().unwrap();
        assert_eq!(
            (br.kind.as_str(), br.mtu, br.alias.as_str()),
            ("bridge", 1400, "test")
        );
        nl.add_address(br.index, Ipv4Addr::new(10, 1, 0, 1), 24)
            .unwrap();
        nl.add_address(br.index, Ipv4Addr::new(10, 1, 0, 1), 24)
            .unwrap();
        nl.create_veth(
            "tveth0",
            "eth0",
            &ctr.file,
            br.index,
            1400,
            Some([2, 0, 0, 0, 0, 9]),
        )
        .unwrap();
        let v = nl.link("tveth0").unwrap().unwrap();
        assert_eq!(v.master, Some(br.index));
        let mut inside = Netlink::open_in(&ctr.file).unwrap();
        let eth0 = inside.link("eth0").unwrap().unwrap();
        inside
            .add_address(eth0.index, Ipv4Addr::new(10, 1, 0, 2), 24)
            .unwrap();
        inside.set_up(eth0.index).unwrap();
        inside
            .add_default_route(Ipv4Addr::new(10, 1, 0, 1))
            .unwrap();
        let routes = inside.routes().unwrap();
        assert!(routes.iter().any(|r| r.prefix == 0), "{routes:?}");
        assert!(routes
            .iter()
            .any(|r| r.prefix == 24 && r.destination == Ipv4Addr::new(10, 1, 0, 0)));
        // The MTU holds once no port is left (see Networks::make_bridge).
        nl.set_mtu(br.index, 1399).unwrap();
        nl.set_mtu(br.index, 1400).unwrap();
        assert!(nl.delete_link("tveth0").unwrap());
        assert_eq!(nl.link("tbr0").unwrap().unwrap().mtu, 1400);
        assert!(!nl.delete_link("tveth0").unwrap());
        assert!(inside.link("eth0").unwrap().is_none(), "the peer goes too");
    }
}
