//! Tar-split: what a layer's tar holds besides its files' contents (headers,
//! extension records, padding, the end blocks), kept small beside the
//! unpacked files so the exact tar (same bytes, same digest) can be made
//! again from them, for `save` and later `push`. Keeping this instead of a
//! second full copy of every uncompressed layer halves what `load` writes;
//! containers-storage keeps the same kind of record for the same reason.
//!
//! The record is a zstd stream of:
//! - `MAGIC`;
//! - `I` len:u32 bytes: bytes of the tar as they were;
//! - `F` size:u64 len:u16 path: `size` bytes read from the file `path`
//!   (resolved inside the layer root, never following its last component);
//! - `S` len:u16 path count:u32 (offset:u64 size:u64)*count: a sparse
//!   file's data segments, read in order from those offsets of `path`
//!   (what a GNU sparse entry stores; its holes are not in the tar);
//! - `E` total:u64: the end, and the tar's size.
//!
//! Reading it back re-hashes everything and fails unless the result has the
//! digest the layer was stored under: a file changed after the unpack
//! can never yield a tar that claims the old digest.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

const MAGIC: &[u8] = b"berth-tar-split\x01";
/// Inline bytes are flushed as a record once this many are pending.
const CHUNK: usize = 1 << 20;

/// Builds a tar-split while the tar passes by: every byte read is kept
/// inline, except the file contents the unpacker takes between
/// `begin_file` and `end_file`.
pub(crate) struct Recorder {
    out: zstd::stream::write::Encoder<'static, Vec<u8>>,
    pending: Vec<u8>,
    in_file: bool,
    total: u64,
    failed: Option<io::Error>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub(crate) fn new() -> io::Result<Recorder> {
        let mut out = zstd::stream::write::Encoder::new(Vec::new(), 1)?;
        out.write_all(MAGIC)?;
        Ok(Recorder {
            out,
            pending: Vec::new(),
            in_file: false,
            total: 0,
            failed: None,
        })
    }

    /// Bytes of the tar, in order.
    pub(crate) fn seen(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if !self.in_file {
            self.pending.extend_from_slice(bytes);
            if self.pending.len() >= CHUNK {
                self.flush_inline();
            }
        }
    }

    fn flush_inline(&mut self) {
        if self.pending.is_empty() || self.failed.is_some() {
            return;
        }
        let r = (|| {
            let len = u32::try_from(self.pending.len()).map_err(io::Error::other)?;
            self.out.write_all(b"I")?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(&self.pending)
        })();
        self.pending.clear();
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }

    /// What is read from now on is the content of a file.
    pub(crate) fn begin_file(&mut self) {
        self.flush_inline();
        self.in_file = true;
    }

    /// The file content read since `begin_file` (`size` bytes) is that of
    /// `path` in the layer.
    pub(crate) fn end_file(&mut self, path: &Path, size: u64) {
        self.in_file = false;
        if self.failed.is_some() {
            return;
        }
        let name = path.as_os_str().as_encoded_bytes();
        let r = (|| {
            let len = u16::try_from(name.len()).map_err(io::Error::other)?;
            self.out.write_all(b"F")?;
            self.out.write_all(&size.to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(name)
        })();
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }

    /// Bytes of the tar seen so far (a sparse entry's reader tells data
    /// read from the tar from the zeros of a hole by this count).
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The file content read since `begin_file` is the data segments
    /// `segments` (offset, size) of the sparse file `path`, in order.
    pub(crate) fn end_sparse(&mut self, path: &Path, segments: &[(u64, u64)]) {
        self.in_file = false;
        if self.failed.is_some() {
            return;
        }
        let name = path.as_os_str().as_encoded_bytes();
        let r = (|| {
            let len = u16::try_from(name.len()).map_err(io::Error::other)?;
            let count = u32::try_from(segments.len()).map_err(io::Error::other)?;
            self.out.write_all(b"S")?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(name)?;
            self.out.write_all(&count.to_le_bytes())?;
            for (off, size) in segments {
                self.out.write_all(&off.to_le_bytes())?;
                self.out.write_all(&size.to_le_bytes())?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }

    /// The encoded record.
    pub(crate) fn finish(mut self) -> io::Result<Vec<u8>> {
        self.flush_inline();
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.out.write_all(b"E")?;
        self.out.write_all(&self.total.to_le_bytes())?;
        self.out.finish()
    }
}

/// The tar's size, as the record says.
pub fn size(record: &[u8]) -> io::Result<u64> {
    let mut r = Reader::open(record)?;
    let mut total = 0u64;
    loop {
        match r.next_op()? {
            Op::Inline(b) => total += b.len() as u64,
            Op::File(size, _) => total += size,
            Op::Sparse(_, segs) => {
                for (_, size) in segs {
                    total = total
                        .checked_add(size)
                        .ok_or_else(|| bad("sizes overflow"))?;
                }
            }
            Op::End(t) if t == total => return Ok(t),
            Op::End(_) => return Err(bad("sizes disagree")),
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("tar-split record: {what}"),
    )
}

enum Op {
    Inline(Vec<u8>),
    File(u64, PathBuf),
    Sparse(PathBuf, Vec<(u64, u64)>),
    End(u64),
}

struct Reader<R: io::BufRead> {
    dec: zstd::stream::read::Decoder<'static, R>,
}

impl<R: io::BufRead> Reader<R> {
    fn open(record: R) -> io::Result<Reader<R>> {
        let mut dec = zstd::stream::read::Decoder::with_buffer(record)?;
        let mut magic = [0u8; MAGIC.len()];
        dec.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(bad("not a tar-split record"));
        }
        Ok(Reader { dec })
    }

    fn next_op(&mut self) -> io::Result<Op> {
        let mut tag = [0u8; 1];
        self.dec.read_exact(&mut tag)?;
        let mut u64b = [0u8; 8];
        match tag[0] {
            b'I' => {
                let mut len = [0u8; 4];
                self.dec.read_exact(&mut len)?;
                let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
                self.dec.read_exact(&mut v)?;
                Ok(Op::Inline(v))
            }
            b'F' => {
                self.dec.read_exact(&mut u64b)?;
                let mut len = [0u8; 2];
                self.dec.read_exact(&mut len)?;
                let mut name = vec![0u8; usize::from(u16::from_le_bytes(len))];
                self.dec.read_exact(&mut name)?;
                let path = PathBuf::from(std::ffi::OsString::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name),
                ));
                Ok(Op::File(u64::from_le_bytes(u64b), path))
            }
            b'S' => {
                let mut len = [0u8; 2];
                self.dec.read_exact(&mut len)?;
                let mut name = vec![0u8; usize::from(u16::from_le_bytes(len))];
                self.dec.read_exact(&mut name)?;
                let path = PathBuf::from(std::ffi::OsString::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name),
                ));
                let mut count = [0u8; 4];
                self.dec.read_exact(&mut count)?;
                let count = u32::from_le_bytes(count) as usize;
                if count > crate::sparse::MAX_SEGMENTS {
                    return Err(bad("too many sparse segments"));
                }
                let mut segs = Vec::with_capacity(count);
                for _ in 0..count {
                    let mut off = [0u8; 8];
                    self.dec.read_exact(&mut off)?;
                    self.dec.read_exact(&mut u64b)?;
                    segs.push((u64::from_le_bytes(off), u64::from_le_bytes(u64b)));
                }
                Ok(Op::Sparse(path, segs))
            }
            b'E' => {
                self.dec.read_exact(&mut u64b)?;
                Ok(Op::End(u64::from_le_bytes(u64b)))
            }
            _ => Err(bad("unknown record")),
        }
    }
}

/// The tar a record and the unpacked files `root` make, checked against
/// `expected` when its end is read.
pub struct Assembled {
    reader: Reader<io::Cursor<Vec<u8>>>,
    root: OwnedFd,
    current: Current,
    hasher: Sha256,
    total: u64,
    expected: Digest,
    done: bool,
}

enum Current {
    None,
    Inline(Vec<u8>, usize),
    File(io::Take<std::fs::File>, u64, PathBuf),
    /// A sparse file, its segments, the one being read and how far.
    Sparse(std::fs::File, Vec<(u64, u64)>, usize, u64, PathBuf),
}

impl std::fmt::Debug for Assembled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembled")
            .field("expected", &self.expected)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// Starts making the tar of the record `record` from the files under
/// `root`.
pub fn assemble(record: Vec<u8>, root: &Path, expected: &Digest) -> io::Result<Assembled> {
    let fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: a fresh descriptor from open, owned here.
    let root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    Ok(Assembled {
        reader: Reader::open(io::Cursor::new(record))?,
        root,
        current: Current::None,
        hasher: Sha256::new(),
        total: 0,
        expected: expected.clone(),
        done: false,
    })
}

impl Read for Assembled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if buf.is_empty() || self.done {
                return Ok(0);
            }
            let n = match &mut self.current {
                Current::None => 0,
                Current::Inline(v, at) => {
                    let n = (v.len() - *at).min(buf.len());
                    buf[..n].copy_from_slice(&v[*at..*at + n]);
                    *at += n;
                    if *at == v.len() {
                        self.current = Current::None;
                    }
                    n
                }
                Current::File(f, left, path) => {
                    let n = f.read(buf)?;
                    if n == 0 {
                        if *left > 0 {
                            return Err(bad(&format!(
                                "{} is shorter than the layer says",
                                path.display()
                            )));
                        }
                        self.current = Current::None;
                    } else {
                        *left -= n as u64;
                    }
                    n
                }
                Current::Sparse(f, segs, i, done, path) => {
                    let mut n = 0;
                    while n == 0 && *i < segs.len() {
                        let (off, size) = segs[*i];
                        let left = size - *done;
                        if left == 0 {
                            *i += 1;
                            *done = 0;
                            continue;
                        }
                        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                        n = std::os::unix::fs::FileExt::read_at(f, &mut buf[..want], off + *done)?;
                        if n == 0 {
                            return Err(bad(&format!(
                                "{} is shorter than the layer says",
                                path.display()
                            )));
                        }
                        *done += n as u64;
                    }
                    if n == 0 {
                        self.current = Current::None;
                    }
                    n
                }
            };
            if n > 0 {
                self.hasher.update(&buf[..n]);
                self.total += n as u64;
                return Ok(n);
            }
            if matches!(self.current, Current::None) {
                match self.reader.next_op()? {
                    Op::Inline(v) => self.current = Current::Inline(v, 0),
                    // Nothing to read, so nothing to open: an empty entry
                    // may have no file of its own in the layer directory
                    // (a built layer keeps an opaque directory as an
                    // overlay xattr, not as its `.wh..wh..opq` file).
                    Op::File(0, _) => {}
                    Op::File(size, path) => {
                        let f = open_layer_file(&self.root, &path)?;
                        self.current = Current::File(f.take(size), size, path);
                    }
                    Op::Sparse(path, segs) => {
                        let f = open_layer_file(&self.root, &path)?;
                        self.current = Current::Sparse(f, segs, 0, 0, path);
                    }
                    Op::End(total) => {
                        self.done = true;
                        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
                        if total != self.total || actual != self.expected {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "layer {} changed on disk: its files now make {actual}",
                                    self.expected
                                ),
                            ));
                        }
                        return Ok(0);
                    }
                }
            }
        }
    }
}

/// A file of a layer, opened inside the layer root and never following the
/// last component: a record cannot be made to read a host file.
fn open_layer_file(root: &OwnedFd, path: &Path) -> io::Result<std::fs::File> {
    saferoot::open_in_root(root, path, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
        .map(std::fs::File::from)
        .map_err(|e| io::Error::other(format!("layer file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{unpack, UnpackOptions};

    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let raw = |b: &mut tar::Builder<Vec<u8>>, name: &str, kind, data: &[u8], link: &str| {
            berth_testkit::raw_tar_entry(b, name, kind, data, link, 0o644);
        };
        raw(&mut b, "etc/", tar::EntryType::Directory, b"", "");
        raw(&mut b, "etc/odd", tar::EntryType::Regular, &[7u8; 1001], "");
        raw(&mut b, "etc/empty", tar::EntryType::Regular, b"", "");
        raw(&mut b, "etc/link", tar::EntryType::Symlink, b"", "odd");
        raw(&mut b, "etc/hard", tar::EntryType::Link, b"", "etc/odd");
        b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..])])
            .unwrap();
        raw(&mut b, "cap", tar::EntryType::Regular, b"x", "");
        // A GNU long name (the tar crate writes a ././@LongLink entry).
        let long = format!("deep/{}/f", "n".repeat(150));
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn unpack_split(tar: &[u8], dest: &Path) -> Option<Vec<u8>> {
        unpack(
            tar,
            dest,
            &UnpackOptions {
                record_split: true,
                ..Default::default()
            },
        )
        .unwrap()
        .split
    }

    #[test]
    fn the_same_tar_comes_back_from_the_files() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tar = layer();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer");
        let record = unpack_split(&tar, &dest).expect("reproducible");
        assert!(record.len() < tar.len(), "the record is small");
        assert_eq!(size(&record).unwrap(), tar.len() as u64);
        let digest = Digest::of(&tar);
        let mut back = Vec::new();
        assemble(record.clone(), &dest, &digest)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == tar, "byte for byte");

        // A changed file never yields a tar under the old digest.
        std::fs::write(dest.join("etc/odd"), [8u8; 1001]).unwrap();
        let e = assemble(record.clone(), &dest, &digest)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("changed on disk"), "{e}");
    }

    /// A sparse file as GNU tar writes it in each of its four forms:
    /// unpacked with the right size and content and its holes as holes,
    /// and the exact tar made again from the files and the record.
    #[test]
    fn gnu_sparse_files_unpack_and_come_back_byte_for_byte() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        if !berth_testkit::snippet::installed("tar") {
            assert!(std::env::var_os("CI").is_none(), "GNU tar is missing");
            eprintln!("skipped: GNU tar not installed");
            return;
        }
        let src = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(src.path().join("lastlog")).unwrap();
        // Segments not on 512-byte boundaries, one at the very end.
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(&[0xa5; 3000], 1_000_003).unwrap();
        f.write_all_at(b"tail", 8 << 20).unwrap();
        drop(f);
        let want = std::fs::read(src.path().join("lastlog")).unwrap();
        for args in [
            &["--format=gnu"][..],
            &["--format=posix", "--sparse-version=0.0"],
            &["--format=posix", "--sparse-version=0.1"],
            &["--format=posix", "--sparse-version=1.0"],
        ] {
            let out = src.path().join("layer.tar");
            let st = std::process::Command::new("tar")
                .args(["-S", "-c", "-f"])
                .arg(&out)
                .args(args)
                .arg("-C")
                .arg(src.path())
                .args(["--owner=0", "--group=0", "lastlog"])
                .status()
                .unwrap();
            assert!(st.success(), "{args:?}");
            let tar = std::fs::read(&out).unwrap();
            assert!(tar.len() < 64 << 10, "{args:?}: GNU tar kept the holes out");
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("layer");
            let record = unpack_split(&tar, &dest).expect("reproducible");
            let got = std::fs::read(dest.join("lastlog")).unwrap();
            assert!(got == want, "{args:?}: content and size ({})", got.len());
            let m = std::fs::metadata(dest.join("lastlog")).unwrap();
            assert!(m.blocks() * 512 < 1 << 20, "{args:?}: holes stay holes");
            assert_eq!(
                std::fs::read_dir(&dest).unwrap().count(),
                1,
                "{args:?}: no GNUSparseFile.N directory"
            );
            let digest = Digest::of(&tar);
            let mut back = Vec::new();
            assemble(record, &dest, &digest)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(back == tar, "{args:?}: byte for byte");
        }
    }

    #[test]
    fn a_layer_that_replaces_its_own_files_keeps_no_record() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        for data in [&b"first"[..], b"second"] {
            berth_testkit::raw_tar_entry(&mut b, "f", tar::EntryType::Regular, data, "", 0o644);
        }
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer");
        assert!(unpack_split(&tar, &dest).is_none());
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"second");
    }

    #[test]
    fn a_record_cannot_read_outside_the_root() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        let mut rec = Recorder::new().unwrap();
        rec.begin_file();
        rec.seen(b"s");
        rec.end_file(Path::new("out/secret"), 1);
        let record = rec.finish().unwrap();
        let e = assemble(record.clone(), root.path(), &Digest::of(b"s"))
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("layer file out/secret"), "{e}");
    }
}
