//! GNU sparse files in a tar: a file stored as its data segments only,
//! with a map saying where each one goes and how large the whole file is
//! (`tar -S`; common in real images for /var/log/lastlog and faillog).
//!
//! Four forms exist. The old GNU one (typeflag `S`, the map in the header
//! and extension blocks) is expanded by the tar crate itself. The three
//! pax forms look like plain regular files to it, so this module reads
//! them: 0.0 (the map as repeated `GNU.sparse.offset`/`numbytes` pairs),
//! 0.1 (`GNU.sparse.map`, comma-separated) and 1.0 (`GNU.sparse.major=1`,
//! the map as decimal lines at the start of the entry's data, padded to a
//! block). Unpacked without them, such an entry would be a file named
//! `GNUSparseFile.N/x` holding the packed segments: wrong name, wrong
//! content.
//!
//! Maps are hostile input: segments must be in order, must not overlap,
//! must fit in the stated size, and their lengths must add up to the data
//! the entry carries; the number of segments is bounded.

use std::io::{self, Read};

/// Most segments a map may list: 16 bytes of memory each.
pub(crate) const MAX_SEGMENTS: usize = 1 << 20;

/// A data segment: bytes `offset..offset + len` of the file.
pub(crate) type Segment = (u64, u64);

/// Where a pax sparse entry's map is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MapSource {
    /// In the pax header (0.0, 0.1).
    Header(Vec<Segment>),
    /// At the start of the entry's data (1.0).
    Data,
}

/// What a pax header says of a sparse entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaxSparse {
    /// The file's real name (`GNU.sparse.name`), when given: the tar
    /// header's is a made-up `GNUSparseFile.N/x`.
    pub(crate) name: Option<Vec<u8>>,
    /// The file's full size.
    pub(crate) real_size: u64,
    pub(crate) map: MapSource,
}

fn number(key: &str, v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("sparse header {key} is not a number"))
}

/// The sparse description in the pax records `records` (key, value), if
/// they describe a sparse file.
pub(crate) fn from_pax<'a>(
    records: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Option<PaxSparse>, String> {
    let mut name = None;
    let mut size = None;
    let mut realsize = None;
    let mut major = None;
    let mut minor = None;
    let mut map01 = None;
    let mut pairs: Vec<Segment> = Vec::new();
    let mut pending_offset: Option<u64> = None;
    let mut any = false;
    for (k, v) in records {
        let Some(key) = k.strip_prefix(b"GNU.sparse.") else {
            continue;
        };
        any = true;
        match key {
            b"name" => name = Some(v.to_vec()),
            b"size" => size = Some(number("GNU.sparse.size", v)?),
            b"realsize" => realsize = Some(number("GNU.sparse.realsize", v)?),
            b"major" => major = Some(number("GNU.sparse.major", v)?),
            b"minor" => minor = Some(number("GNU.sparse.minor", v)?),
            b"numblocks" => {
                number("GNU.sparse.numblocks", v)?;
            }
            b"map" => map01 = Some(v.to_vec()),
            b"offset" => {
                if pending_offset.is_some() {
                    return Err("sparse header has two offsets in a row".into());
                }
                pending_offset = Some(number("GNU.sparse.offset", v)?);
            }
            b"numbytes" => {
                let off = pending_offset
                    .take()
                    .ok_or("sparse header has numbytes without an offset")?;
                if pairs.len() >= MAX_SEGMENTS {
                    return Err(format!("sparse map has more than {MAX_SEGMENTS} segments"));
                }
                pairs.push((off, number("GNU.sparse.numbytes", v)?));
            }
            other => {
                return Err(format!(
                    "unknown sparse header GNU.sparse.{}",
                    String::from_utf8_lossy(other)
                ))
            }
        }
    }
    if !any {
        return Ok(None);
    }
    if pending_offset.is_some() {
        return Err("sparse header has an offset without numbytes".into());
    }
    let map = match (major, minor) {
        (Some(1), Some(0)) => {
            if map01.is_some() || !pairs.is_empty() {
                return Err("sparse format 1.0 with a map in the header".into());
            }
            MapSource::Data
        }
        (Some(ma), Some(mi)) => {
            return Err(format!("sparse format {ma}.{mi} is not supported"));
        }
        (None, None) => match map01 {
            Some(m) if pairs.is_empty() => MapSource::Header(parse_list(&m, b',')?),
            Some(_) => return Err("sparse header has two maps".into()),
            None => MapSource::Header(pairs),
        },
        _ => return Err("sparse header has only one of major and minor".into()),
    };
    let real_size = match (&map, realsize, size) {
        (MapSource::Data, Some(r), _) => r,
        (MapSource::Header(_), _, Some(s)) => s,
        _ => return Err("sparse header without the file's size".into()),
    };
    Ok(Some(PaxSparse {
        name,
        real_size,
        map,
    }))
}

/// `off,len,off,len,...` (0.1's `GNU.sparse.map`).
fn parse_list(text: &[u8], sep: u8) -> Result<Vec<Segment>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let nums = text
        .split(|b| *b == sep)
        .map(|n| number("GNU.sparse.map", n))
        .collect::<Result<Vec<u64>, String>>()?;
    if nums.len() % 2 != 0 {
        return Err("sparse map has an odd count of numbers".into());
    }
    if nums.len() / 2 > MAX_SEGMENTS {
        return Err(format!("sparse map has more than {MAX_SEGMENTS} segments"));
    }
    Ok(nums.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// Reads format 1.0's map from the start of `data`: a count, then an
/// offset and a length per segment, each a decimal line, the whole padded
/// to 512 bytes. Reads whole blocks only. Returns the map and the bytes
/// read.
pub(crate) fn read_map_1_0(data: &mut impl Read) -> Result<(Vec<Segment>, u64), String> {
    let mut block = [0u8; 512];
    let mut consumed = 0u64;
    let mut line: Vec<u8> = Vec::new();
    let mut count: Option<u64> = None;
    let mut nums: Vec<u64> = Vec::new();
    loop {
        data.read_exact(&mut block)
            .map_err(|e| format!("sparse map: {e}"))?;
        consumed += 512;
        for &b in &block {
            if b != b'\n' {
                // 20 digits hold any u64.
                if line.len() > 20 {
                    return Err("sparse map has an overlong number".into());
                }
                line.push(b);
                continue;
            }
            let n = number("map", &line)?;
            line.clear();
            match count {
                None => {
                    if n > MAX_SEGMENTS as u64 {
                        return Err(format!("sparse map has more than {MAX_SEGMENTS} segments"));
                    }
                    count = Some(n);
                }
                Some(_) => nums.push(n),
            }
            if count.is_some_and(|c| nums.len() as u64 == 2 * c) {
                // The rest of this block is padding.
                let map = nums.chunks(2).map(|c| (c[0], c[1])).collect();
                return Ok((map, consumed));
            }
        }
    }
}

/// Checks `map` against the file's size and the data the entry carries:
/// in order, no overlap, inside the file, lengths adding up to
/// `data_size`.
pub(crate) fn check(map: &[Segment], real_size: u64, data_size: u64) -> Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in map {
        if off < end {
            return Err("sparse map segments overlap or are out of order".into());
        }
        end = off
            .checked_add(len)
            .filter(|e| *e <= real_size)
            .ok_or("sparse map segment lies past the end of the file")?;
        total = total
            .checked_add(len)
            .ok_or("sparse map lengths overflow")?;
    }
    if total != data_size {
        return Err(format!(
            "sparse map lists {total} bytes of data, the entry has {data_size}"
        ));
    }
    Ok(())
}

/// Writes what `data` yields into `file` at the current offset: all-zero
/// runs are skipped (left as holes), so a sparse file stays sparse.
/// Returns the bytes consumed. `observe` is told, after each read, how
/// many bytes it gave.
pub(crate) fn copy_skipping_zeros(
    data: &mut impl Read,
    file: &std::fs::File,
    mut at: u64,
    limit: u64,
    buf: &mut [u8],
    mut observe: impl FnMut(u64, usize),
) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let start = at;
    while at - start < limit {
        let want =
            usize::try_from((limit - (at - start)).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = match data.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        observe(at, n);
        if buf[..n].iter().any(|b| *b != 0) {
            file.write_all_at(&buf[..n], at)?;
        }
        at += n as u64;
    }
    Ok(at - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs<'a>(v: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        v.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))
    }

    #[test]
    fn the_three_pax_forms_parse() {
        let v00 = [
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "10"),
            ("GNU.sparse.numbytes", "5"),
            ("GNU.sparse.offset", "100"),
            ("GNU.sparse.numbytes", "0"),
        ];
        let s = from_pax(recs(&v00)).unwrap().unwrap();
        assert_eq!(s.real_size, 100);
        assert_eq!(s.map, MapSource::Header(vec![(10, 5), (100, 0)]));
        let v01 = [
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.name", "var/log/lastlog"),
            ("GNU.sparse.map", "10,5,100,0"),
        ];
        let s = from_pax(recs(&v01)).unwrap().unwrap();
        assert_eq!(s.name.as_deref(), Some(&b"var/log/lastlog"[..]));
        assert_eq!(s.map, MapSource::Header(vec![(10, 5), (100, 0)]));
        let v10 = [
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.realsize", "100"),
        ];
        assert_eq!(from_pax(recs(&v10)).unwrap().unwrap().map, MapSource::Data);
        assert_eq!(from_pax(recs(&[("path", "x")])).unwrap(), None);
    }

    #[test]
    fn hostile_maps_are_refused() {
        for bad in [
            &[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")][..],
            &[("GNU.sparse.size", "x")],
            &[("GNU.sparse.map", "1,2")],
            &[("GNU.sparse.size", "9"), ("GNU.sparse.map", "1,2,3")],
            &[("GNU.sparse.size", "9"), ("GNU.sparse.offset", "1")],
            &[("GNU.sparse.size", "9"), ("GNU.sparse.numbytes", "1")],
            &[("GNU.sparse.size", "9"), ("GNU.sparse.frob", "1")],
        ] {
            assert!(from_pax(recs(bad)).is_err(), "{bad:?}");
        }
        assert!(check(&[(0, 10), (5, 10)], 100, 20).is_err(), "overlap");
        assert!(check(&[(50, 10), (0, 10)], 100, 20).is_err(), "order");
        assert!(check(&[(95, 10)], 100, 10).is_err(), "past the end");
        assert!(check(&[(u64::MAX, 10)], u64::MAX, 10).is_err(), "overflow");
        assert!(check(&[(0, 10)], 100, 11).is_err(), "data left over");
        check(&[(0, 10), (10, 0), (100, 0)], 100, 10).unwrap();

        let mut m = b"2\n0\n5\n".to_vec();
        m.resize(512, 0);
        assert!(read_map_1_0(&mut &m[..]).is_err(), "map cut short");
        let mut m = format!("{}\n", MAX_SEGMENTS + 1).into_bytes();
        m.resize(512, 0);
        assert!(read_map_1_0(&mut &m[..]).is_err(), "too many segments");
        let mut m = vec![b'1'; 600];
        m.resize(1024, 0);
        assert!(read_map_1_0(&mut &m[..]).is_err(), "overlong number");
        let mut m = b"2\n0\n5\n100\n0\n".to_vec();
        m.resize(512, 0);
        m.extend_from_slice(b"data!");
        let mut r = &m[..];
        assert_eq!(read_map_1_0(&mut r).unwrap(), (vec![(0, 5), (100, 0)], 512));
        assert_eq!(r, b"data!");
    }
}
