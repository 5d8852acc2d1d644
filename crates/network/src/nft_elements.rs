//! A network's subnet added to (or deleted from) the sets of the `ip berth`
//! table through nfnetlink, from this process: one batch (one
//! transaction) of `NFT_MSG_NEWSETELEM` / `NFT_MSG_DELSETELEM` messages.
//!
//! Why not `nft`: running it (a program that loads its JSON parser and
//! reads the kernel's ruleset into a cache before it sends anything) costs
//! 10 to 25 ms, once in every `network create` and once in every `network
//! rm`, both on the path of `compose up` and `compose down`. The rules
//! themselves (nft.rs's skeleton) are still loaded by `nft`, once per boot
//! and build: they are many and rarely loaded; the elements are four and
//! come with every network.
//!
//! The elements are what `nft add element` sends for the same subnet
//! (checked against `nft --debug=netlink`, and by the test below against
//! the sets `nft` lists): an interval set (rbtree) holds a prefix as two
//! elements, its first address and, flagged as an interval's end, the
//! first address after it; a set of concatenations (pipapo) holds it as
//! one element with a key and an inclusive key end.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::nft::{NftError, NftErrorKind, TABLE};
use crate::subnet::Subnet;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_IPV4: u8 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_ERROR: u16 = 2;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;

/// How long the kernel may take to answer a batch.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// Add or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Delete,
}

/// One set element: a key, and either an interval's-end flag (rbtree) or
/// a key end (pipapo).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    key: Vec<u8>,
    end_flag: bool,
    key_end: Option<Vec<u8>>,
}

/// The elements of one set, in the order nft sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetElements {
    set: &'static str,
    elements: Vec<Element>,
}

/// What nft.rs's `network` commands say, as nfnetlink elements.
fn network_elements(subnet: Subnet, internal: bool) -> Vec<SetElements> {
    let first = u32::from(subnet.addr);
    let last = first | u32::MAX.checked_shr(u32::from(subnet.prefix)).unwrap_or(0);
    let ip = |v: u32| Ipv4Addr::from(v).octets().to_vec();
    // A prefix in an interval set: its start, and its end (the first
    // address after it) unless it runs to the end of the address space.
    let interval = || {
        let mut e = vec![Element {
            key: ip(first),
            end_flag: false,
            key_end: None,
        }];
        if let Some(after) = last.checked_add(1) {
            e.push(Element {
                key: ip(after),
                end_flag: true,
                key_end: None,
            });
        }
        e
    };
    let pair = |v: u32| [ip(v), ip(v)].concat();
    vec![
        SetElements {
            set: "subnets",
            elements: interval(),
        },
        SetElements {
            set: "same_net",
            elements: vec![Element {
                key: pair(first),
                end_flag: false,
                key_end: Some(pair(last)),
            }],
        },
        SetElements {
            set: if internal { "internal" } else { "nat_subnets" },
            elements: interval(),
        },
    ]
}

/// A netlink message being written: header, nfgenmsg, attributes.
struct Message {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Message {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Message {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn string(&mut self, kind: u16, s: &str) {
        self.attr(kind, &[s.as_bytes(), &[0]].concat());
    }

    fn begin(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.pad();
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The batch: begin, one message per set, end. Its messages' sequence
/// numbers are `seq + 1 ..`.
fn batch(verb: Verb, sets: &[SetElements], seq: u32) -> Vec<u8> {
    let subsys = NFNL_SUBSYS_NFTABLES;
    let mut out = Message::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, subsys).finish();
    let (kind, flags) = match verb {
        Verb::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
        Verb::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
    };
    for (i, s) in sets.iter().enumerate() {
        let n = u32::try_from(i).unwrap_or(0) + 1;
        let mut m = Message::new((subsys << 8) | kind, flags, seq + n, NFPROTO_IPV4, 0);
        m.string(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        m.string(NFTA_SET_ELEM_LIST_SET, s.set);
        m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for e in &s.elements {
            m.begin(NFTA_LIST_ELEM);
            m.begin(NFTA_SET_ELEM_KEY);
            m.attr(NFTA_DATA_VALUE, &e.key);
            m.end();
            if let Some(end) = &e.key_end {
                m.begin(NFTA_SET_ELEM_KEY_END);
                m.attr(NFTA_DATA_VALUE, end);
                m.end();
            }
            if e.end_flag {
                m.attr(
                    NFTA_SET_ELEM_FLAGS,
                    &NFT_SET_ELEM_INTERVAL_END.to_be_bytes(),
                );
            }
            m.end();
        }
        m.end();
        out.extend(m.finish());
    }
    let n = u32::try_from(sets.len()).unwrap_or(0) + 1;
    out.extend(Message::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq + n, 0, subsys).finish());
    out
}

/// The kernel's answer to a message: its sequence number and errno (0:
/// done).
fn answers(buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let word = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let len = usize::try_from(word(off)).unwrap_or(0);
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let seq = word(off + 8);
        if kind == NLMSG_ERROR && off + 20 <= buf.len() {
            let code =
                i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
            out.push((seq, -code));
        }
        if len < 16 {
            break;
        }
        off += (len + 3) & !3;
    }
    out
}

fn failure(kind: NftErrorKind, message: String) -> NftError {
    NftError { kind, message }
}

/// Adds (`Verb::Add`: there already is fine) or deletes a network's
/// subnet in the table's sets, in one transaction. Fails with
/// [`NftErrorKind::Missing`] when the table or a set is not there (flushed
/// by someone: the caller loads the rules and tries again).
pub fn network(verb: Verb, subnet: Subnet, internal: bool) -> Result<(), NftError> {
    let sets = network_elements(subnet, internal);
    let io = |what: &str, e: std::io::Error| {
        failure(NftErrorKind::Other, format!("nfnetlink: {what}: {e}"))
    };
    let socket = crate::netns::run_in(|| {
        let mut s = Socket::new(NETLINK_NETFILTER)?;
        s.bind_auto()?;
        s.connect(&SocketAddr::new(0, 0))?;
        Ok(s)
    })
    .map_err(|e| io("open a socket", e))?;
    nix::sys::socket::setsockopt(
        &socket.as_fd(),
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(i64::try_from(ANSWER_DEADLINE.as_secs()).unwrap_or(5), 0),
    )
    .map_err(|e| io("set a receive timeout", e.into()))?;
    let seq = 1;
    socket
        .send(&batch(verb, &sets, seq), 0)
        .map_err(|e| io("send", e))?;
    let wanted: Vec<u32> = (1..=u32::try_from(sets.len()).unwrap_or(0))
        .map(|n| seq + n)
        .collect();
    let mut answered = Vec::new();
    let mut first_error = None;
    let mut buf = vec![0u8; 64 * 1024];
    while answered.len() < wanted.len() {
        let n = socket
            .recv(&mut &mut buf[..], 0)
            .map_err(|e| io("read the answer", e))?;
        for (s, errno) in answers(&buf[..n]) {
            if !wanted.contains(&s) || answered.contains(&s) {
                continue;
            }
            answered.push(s);
            if errno != 0 && first_error.is_none() {
                let i = usize::try_from(s - seq - 1).unwrap_or(0);
                first_error = Some((sets.get(i).map_or("", |x| x.set), errno));
            }
        }
    }
    let Some((set, errno)) = first_error else {
        return Ok(());
    };
    let e = nix::errno::Errno::from_raw(errno);
    let kind = match e {
        nix::errno::Errno::ENOENT => NftErrorKind::Missing,
        nix::errno::Errno::EEXIST => NftErrorKind::Exists,
        _ => NftErrorKind::Other,
    };
    let verb = match verb {
        Verb::Add => "add",
        Verb::Delete => "delete",
    };
    Err(failure(
        kind,
        format!(
            "{verb} {subnet} in set {set} of table ip {TABLE}: {}",
            e.desc()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The elements of the table's four sets, as the real nft lists them.
    fn listed() -> String {
        ["subnets", "same_net", "nat_subnets", "internal"]
            .iter()
            .map(|set| {
                let o = Command::new("nft")
                    .args(["-j", "list", "set", "ip", TABLE, set])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let elems = v["nftables"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|o| o.get("set"))
                    .map(|s| s["elem"].clone())
                    .unwrap_or_default();
                format!("{set}: {elems}\n")
            })
            .collect()
    }

    /// What this module adds is what `nft add element` adds, element for
    /// element as nft lists them, and either deletes the other's: checked
    /// in a network namespace of this test's thread (nft inherits it; the
    /// host's ruleset is not touched).
    #[test]
    fn elements_match_the_real_nfts() {
        if !crate::nft::in_a_network_namespace_of_its_own() {
            return;
        }
        let a = Subnet::parse("10.1.0.0/16").unwrap();
        let b = Subnet::parse("10.2.3.0/24").unwrap();
        let missing = network(Verb::Add, a, false).unwrap_err();
        assert_eq!(missing.kind, NftErrorKind::Missing, "{missing}");
        crate::nft::apply(&crate::nft::skeleton()).unwrap();
        let empty = listed();
        network(Verb::Add, a, false).unwrap();
        network(Verb::Add, b, true).unwrap();
        // There already is fine, as nft's add.
        network(Verb::Add, b, true).unwrap();
        let ours = listed();
        assert_ne!(ours, empty);
        // nft deletes what we added.
        let mut del = crate::nft::network("delete", a, false);
        del.extend(crate::nft::network("delete", b, true));
        crate::nft::apply(&del).unwrap();
        assert_eq!(listed(), empty);
        let mut add = crate::nft::network("add", a, false);
        add.extend(crate::nft::network("add", b, true));
        crate::nft::apply(&add).unwrap();
        assert_eq!(listed(), ours, "nft's elements differ from ours");
        // We delete what nft added; a second delete finds nothing.
        network(Verb::Delete, a, false).unwrap();
        network(Verb::Delete, b, true).unwrap();
        assert_eq!(listed(), empty);
        let gone = network(Verb::Delete, a, false).unwrap_err();
        assert_eq!(gone.kind, NftErrorKind::Missing, "{gone}");
    }

    #[test]
    fn elements_are_nfts() {
        let s = Subnet::parse("10.89.3.0/24").unwrap();
        let sets = network_elements(s, false);
        assert_eq!(sets[0].set, "subnets");
        assert_eq!(sets[0].elements[0].key, vec![10, 89, 3, 0]);
        assert!(!sets[0].elements[0].end_flag);
        assert_eq!(sets[0].elements[1].key, vec![10, 89, 4, 0]);
        assert!(sets[0].elements[1].end_flag);
        assert_eq!(sets[1].set, "same_net");
        assert_eq!(sets[1].elements[0].key, vec![10, 89, 3, 0, 10, 89, 3, 0]);
        assert_eq!(
            sets[1].elements[0].key_end,
            Some(vec![10, 89, 3, 255, 10, 89, 3, 255])
        );
        assert_eq!(sets[2].set, "nat_subnets");
        assert_eq!(network_elements(s, true)[2].set, "internal");
        // Up to the end of the address space: no end element.
        let top = network_elements(Subnet::parse("255.255.255.0/24").unwrap(), false);
        assert_eq!(top[0].elements.len(), 1);
        assert_eq!(
            top[1].elements[0].key_end,
            Some(vec![255, 255, 255, 255, 255, 255, 255, 255])
        );
    }
}
