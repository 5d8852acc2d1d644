//! A bound on the tar records the tar crate reads whole into memory: pax
//! headers (`x`, `g`) and GNU long names (`L`, `K`). The crate reads each
//! into one Vec whatever its declared size, so a layer of a few hundred
//! KiB of gzip can declare a pax header of gigabytes of zeros and take
//! that much memory. Go's archive/tar (docker, podman) refuses such
//! records over 1 MiB; so does this guard, with the same limit, so any
//! layer they accept passes here.
//!
//! The guard sits between the (hashed) stream and the tar reader and
//! follows the archive's layout as the bytes pass: 512-byte headers, each
//! entry's data rounded up to a block, the size a pax header gives the
//! next entry, the extension blocks of old GNU sparse headers. It reads
//! nothing on its own and holds at most one block plus one pax header. A
//! block that is not a valid header (the end of the archive, or a stream
//! the tar reader will refuse anyway) ends the following: the rest
//! passes untouched.

use std::io::{self, Read};

/// Largest extension record accepted: Go's archive/tar's limit.
pub(crate) const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: usize = 512;

enum State {
    /// Collecting a header block.
    Header,
    /// Inside an entry's data (padding included); a pax header's data is
    /// kept to learn the next entry's size.
    Data { left: u64, pax: Option<u64> },
    /// Collecting the extension blocks after an old GNU sparse header;
    /// then `size` bytes of data.
    SparseExt { size: u64 },
    /// No longer following.
    Passthrough,
}

/// See the module documentation.
pub(crate) struct TarGuard<R> {
    inner: R,
    state: State,
    block: Vec<u8>,
    pax: Vec<u8>,
    /// The size the last pax header gave the next entry.
    pax_size: Option<u64>,
}

impl<R> TarGuard<R> {
    pub(crate) fn new(inner: R) -> TarGuard<R> {
        TarGuard {
            inner,
            state: State::Header,
            block: Vec::with_capacity(BLOCK),
            pax: Vec::new(),
            pax_size: None,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Passthrough => return Ok(()),
                State::Header | State::SparseExt { .. } => {
                    let k = (BLOCK - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..k]);
                    bytes = &bytes[k..];
                    if self.block.len() == BLOCK {
                        self.block_done()?;
                        self.block.clear();
                    }
                }
                State::Data { left, pax } => {
                    let k = usize::try_from((*left).min(bytes.len() as u64)).unwrap_or(bytes.len());
                    if let Some(want) = pax {
                        let room = usize::try_from(*want)
                            .unwrap_or(0)
                            .saturating_sub(self.pax.len())
                            .min(k);
                        self.pax.extend_from_slice(&bytes[..room]);
                    }
                    *left -= k as u64;
                    bytes = &bytes[k..];
                    if *left == 0 {
                        if pax.is_some() {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(())
    }

    fn block_done(&mut self) -> io::Result<()> {
        if let State::SparseExt { size } = self.state {
            // Byte 504: more extension blocks follow.
            if self.block[504] == 0 {
                self.state = data(size, None);
            }
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(&self.block);
        let valid = h.cksum().is_ok_and(|c| c == checksum(&self.block));
        let size = match h.entry_size() {
            Ok(s) if valid => s,
            // The end blocks, or what the tar reader refuses itself.
            _ => {
                self.state = State::Passthrough;
                return Ok(());
            }
        };
        let kind = h.entry_type();
        let what = match kind {
            tar::EntryType::XHeader => Some("pax header"),
            tar::EntryType::XGlobalHeader => Some("global pax header"),
            tar::EntryType::GNULongName => Some("GNU long name"),
            tar::EntryType::GNULongLink => Some("GNU long link name"),
            _ => None,
        };
        if let Some(what) = what {
            if size > MAX_EXTENSION {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a {what} of {size} bytes is over the limit of {MAX_EXTENSION} bytes"),
                ));
            }
            let keep = (kind == tar::EntryType::XHeader).then_some(size);
            self.state = data(size, keep);
            return Ok(());
        }
        // The tar reader gives the next real entry the pax size, if any.
        let size = self.pax_size.take().unwrap_or(size);
        let extended = kind == tar::EntryType::GNUSparse
            && h.as_gnu().is_some_and(tar::GnuHeader::is_extended);
        self.state = if extended {
            State::SparseExt { size }
        } else {
            data(size, None)
        };
        Ok(())
    }
}

fn data(size: u64, pax: Option<u64>) -> State {
    let padded = size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64);
    if padded == 0 {
        State::Header
    } else {
        State::Data { left: padded, pax }
    }
}

/// A header's checksum as the tar reader computes it: its bytes, the
/// checksum field counted as spaces.
fn checksum(block: &[u8]) -> u32 {
    block[..148]
        .iter()
        .chain(&block[156..])
        .map(|b| u32::from(*b))
        .sum::<u32>()
        + 8 * 32
}

/// The `size` a pax header gives, as the tar reader reads it: the first
/// such record, nothing if a record before it is malformed.
fn pax_size(records: &[u8]) -> Option<u64> {
    for r in tar::PaxExtensions::new(records) {
        let r = r.ok()?;
        if r.key() == Ok("size") {
            return r.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(tar: &[u8]) -> io::Result<Vec<String>> {
        let mut a = tar::Archive::new(TarGuard::new(tar));
        let mut names = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            names.push(e.path()?.display().to_string());
            io::copy(&mut e, &mut io::sink())?;
        }
        Ok(names)
    }

    #[test]
    fn ordinary_archives_pass_and_oversized_records_do_not() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        let long = format!("d/{}", "n".repeat(300));
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(700);
        h.set_mode(0o644);
        b.append_data(&mut h, "after-pax", &[1u8; 700][..]).unwrap();
        // A pax size that overrides a wrong header size.
        b.append_pax_extensions([("size", &b"1025"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_path("pax-sized").unwrap();
        h.set_cksum();
        let raw = b.get_mut();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&[2u8; 1025]);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "last", &b"z"[..]).unwrap();
        let entries = b.get_ref().clone();
        let tar = b.into_inner().unwrap();
        assert_eq!(
            read_all(&tar).unwrap(),
            [long.as_str(), "after-pax", "pax-sized", "last"]
        );

        // After all of those (so the guard kept its place in the layout),
        // each kind of record over the limit.
        for kind in [
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_path("ext").unwrap();
            h.set_size(MAX_EXTENSION + 1);
            h.set_cksum();
            let mut tar = entries.clone();
            tar.extend_from_slice(h.as_bytes());
            tar.extend_from_slice(&vec![b'x'; 4096]);
            let e = read_all(&tar).unwrap_err();
            assert!(e.to_string().contains("over the limit"), "{kind:?}: {e}");
        }
    }
}
