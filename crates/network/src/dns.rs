//! The subset of the DNS wire format (RFC 1035) the embedded resolver
//! needs: read one question from a query, write answers to it. Written by
//! hand rather than with a DNS crate: a query with one question is all we
//! parse, and answers are A and PTR records; everything else is forwarded
//! as the bytes it came in.
//!
//! Queries are untrusted (any container on the network sends them), so
//! reading never indexes past the buffer and refuses compression pointers
//! in the question (a client has nothing earlier to point at, and a
//! pointer is the way to make a reader loop).

use std::net::Ipv4Addr;

/// Header flags and codes.
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const OPCODE_MASK: u16 = 0x7800;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const CLASS_IN: u16 = 1;

/// Response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// Why a packet is not a query we can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Too short, or a field runs past the end: no answer can be made.
    #[error("truncated message")]
    Truncated,
    /// A response, not a query: never answered (no reflection loops).
    #[error("not a query")]
    NotAQuery,
    /// Readable header but a question we do not take: answered FORMERR
    /// (or NOTIMP for other opcodes) with the client's id.
    #[error("malformed question")]
    Malformed { id: u16, flags: u16, rcode: Rcode },
}

/// One query's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    /// Lowercase, dot-separated, without the final dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The end of the question in the query (answers copy it).
    question_end: usize,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the header and the single question of `msg`.
pub fn parse_query(msg: &[u8]) -> Result<Query, ParseError> {
    let id = u16_at(msg, 0).ok_or(ParseError::Truncated)?;
    let flags = u16_at(msg, 2).ok_or(ParseError::Truncated)?;
    let qdcount = u16_at(msg, 4).ok_or(ParseError::Truncated)?;
    if msg.len() < 12 {
        return Err(ParseError::Truncated);
    }
    if flags & QR != 0 {
        return Err(ParseError::NotAQuery);
    }
    let malformed = |rcode| ParseError::Malformed { id, flags, rcode };
    if flags & OPCODE_MASK != 0 {
        return Err(malformed(Rcode::NotImp));
    }
    if qdcount != 1 {
        return Err(malformed(Rcode::FormErr));
    }
    let mut at = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(at).ok_or_else(|| malformed(Rcode::FormErr))?);
        at += 1;
        if len == 0 {
            break;
        }
        // 0xC0: a compression pointer; 0x40, 0x80: reserved label types.
        if len > 63 {
            return Err(malformed(Rcode::FormErr));
        }
        let label = msg
            .get(at..at + len)
            .ok_or_else(|| malformed(Rcode::FormErr))?;
        at += len;
        if !name.is_empty() {
            name.push('.');
        }
        for &c in label {
            // Names are compared as ASCII, case-insensitively; a byte
            // outside that cannot be a member's name.
            name.push(char::from(c.to_ascii_lowercase()));
        }
        if name.len() > 253 {
            return Err(malformed(Rcode::FormErr));
        }
    }
    let qtype = u16_at(msg, at).ok_or_else(|| malformed(Rcode::FormErr))?;
    let qclass = u16_at(msg, at + 2).ok_or_else(|| malformed(Rcode::FormErr))?;
    Ok(Query {
        id,
        flags,
        name,
        qtype,
        qclass,
        question_end: at + 4,
    })
}

/// What an answer record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    /// A name, dot-separated, without the final dot.
    Ptr(String),
}

fn header(id: u16, query_flags: u16, rcode: Rcode, authoritative: bool) -> [u8; 4] {
    let mut flags = QR | RA | (query_flags & RD) | rcode as u16;
    if authoritative {
        flags |= AA;
    }
    let [a, b] = id.to_be_bytes();
    let [c, d] = flags.to_be_bytes();
    [a, b, c, d]
}

/// An answer to `q` (its question copied from `query`, the bytes it was
/// read from) with these records, each of `ttl` seconds.
pub fn answer(query: &[u8], q: &Query, rcode: Rcode, records: &[Record], ttl: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.question_end + records.len() * 16);
    out.extend_from_slice(&header(q.id, q.flags, rcode, true));
    let ancount = u16::try_from(records.len()).unwrap_or(0);
    for n in [1, ancount, 0, 0] {
        out.extend_from_slice(&u16::to_be_bytes(n));
    }
    out.extend_from_slice(&query[12..q.question_end]);
    for r in records.iter().take(usize::from(ancount)) {
        // The owner name: a pointer to the question's name at offset 12.
        out.extend_from_slice(&[0xc0, 12]);
        let (rtype, rdata) = match r {
            Record::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Record::Ptr(name) => (TYPE_PTR, encode_name(name)),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// A header-only reply (no question): for queries whose question could
/// not be read, and for failures of forwarding.
pub fn error_reply(id: u16, query_flags: u16, rcode: Rcode) -> Vec<u8> {
    let mut out = header(id, query_flags, rcode, false).to_vec();
    out.extend_from_slice(&[0; 8]);
    out
}

/// A name in wire form; labels over 63 bytes are cut (member names are
/// docker-valid names, which are shorter).
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(u8::try_from(bytes.len()).unwrap_or(63));
        out.extend_from_slice(bytes);
    }
    out.push(0);
    out
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`) asks about.
pub fn reverse_v4(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [d, c, b, a] => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

/// Whether a response says it was cut short (the client should ask again
/// over TCP).
pub fn truncated(msg: &[u8]) -> bool {
    u16_at(msg, 2).is_some_and(|f| f & TC != 0)
}

/// The id of a message.
pub fn id_of(msg: &[u8]) -> Option<u16> {
    u16_at(msg, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(encode_name(name));
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn reads_a_question_and_answers_it() {
        let msg = query("Web.Example", TYPE_A);
        let q = parse_query(&msg).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype), (0x1234, "web.example", 1));
        let a = answer(
            &msg,
            &q,
            Rcode::NoError,
            &[Record::A(Ipv4Addr::new(10, 1, 0, 2))],
            10,
        );
        // id, QR|AA|RD|RA, one question, one answer.
        assert_eq!(&a[..8], &[0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1]);
        assert_eq!(&a[12..msg.len()], &msg[12..]);
        assert_eq!(
            &a[msg.len()..],
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 10, 1, 0, 2]
        );
        let nx = answer(&msg, &q, Rcode::NxDomain, &[], 10);
        assert_eq!(nx[3] & 0x0f, 3);
        assert_eq!(nx.len(), msg.len());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_v4("2.0.1.10.in-addr.arpa"),
            Some(Ipv4Addr::new(10, 1, 0, 2))
        );
        assert_eq!(reverse_v4("0.1.10.in-addr.arpa"), None);
        assert_eq!(reverse_v4("x.0.1.10.in-addr.arpa"), None);
        let msg = query("2.0.1.10.in-addr.arpa", TYPE_PTR);
        let q = parse_query(&msg).unwrap();
        let a = answer(
            &msg,
            &q,
            Rcode::NoError,
            &[Record::Ptr("web.net".into())],
            10,
        );
        assert!(a.ends_with(&[0, 9, 3, b'w', b'e', b'b', 3, b'n', b'e', b't', 0]));
    }

    #[test]
    fn malformed_queries_are_refused_without_panic() {
        let good = query("a.b", TYPE_A);
        // Every truncation of a good query.
        for n in 0..good.len() {
            assert!(parse_query(&good[..n]).is_err(), "{n} bytes");
        }
        // A compression pointer to itself (a loop for a naive reader).
        let mut looped = good[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse_query(&looped),
            Err(ParseError::Malformed {
                rcode: Rcode::FormErr,
                ..
            })
        ));
        // A response is never answered.
        let mut resp = good.clone();
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp), Err(ParseError::NotAQuery));
        // Two questions, another opcode.
        let mut two = good.clone();
        two[5] = 2;
        assert!(parse_query(&two).is_err());
        let mut status = good.clone();
        status[2] |= 0x10;
        assert!(matches!(
            parse_query(&status),
            Err(ParseError::Malformed {
                rcode: Rcode::NotImp,
                ..
            })
        ));
        // Bytes of every value at every position: no panic (a
        // deterministic pseudo-random walk, so a failure repeats).
        let mut x: u32 = 0x2545_f491;
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let at = usize::try_from(x).unwrap_or(0) % m.len();
                m[at] = u8::try_from(x >> 24).unwrap_or(0);
            }
            if let Ok(q) = parse_query(&m) {
                let _ = answer(&m, &q, Rcode::NoError, &[Record::A(Ipv4Addr::LOCALHOST)], 1);
            }
        }
        // A name of many short labels past 253 bytes.
        let long = vec!["a"; 200].join(".");
        assert!(parse_query(&query(&long, TYPE_A)).is_err());
    }
}
