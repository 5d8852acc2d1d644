//! The content-addressed blob store: `blobs/sha256/<hex>`.
//!
//! A blob is streamed into a temp file beside the store while it is
//! hashed, synced, checked against the digest it was announced under, and
//! only then renamed to its name: a crash or a kill at any point leaves
//! either no blob or a complete, correct one, never a partial file under a
//! digest. Leftover temp files are what `clean_temp` removes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("blob is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BlobError {
    let context = context.into();
    move |source| BlobError::Io { context, source }
}

/// The blob directory of a store root.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the blob store under `root`.
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        let dir = root.join("blobs/sha256");
        let tmp = root.join("blobs/.tmp");
        for d in [&dir, &tmp] {
            fs::create_dir_all(d).map_err(io_err(format!("create {}", d.display())))?;
        }
        Ok(BlobStore { dir, tmp })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, BlobError> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::NotFound(d.clone()),
            _ => BlobError::Io {
                context: format!("open blob {d}"),
                source: e,
            },
        })
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, BlobError> {
        let mut v = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut v)
            .map_err(io_err(format!("read blob {d}")))?;
        Ok(v)
    }

    /// Stores what `reader` yields. With `expected`, the content must hash
    /// to it or nothing is stored; `limit` bounds the size.
    pub fn put(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
        limit: Option<u64>,
    ) -> Result<Digest, BlobError> {
        let (tmp_path, mut file) = self.temp_file()?;
        let result = copy_hashing(reader, &mut file, limit).and_then(|(digest, _)| {
            if let Some(e) = expected {
                if *e != digest {
                    return Err(BlobError::Mismatch {
                        expected: e.clone(),
                        actual: digest,
                    });
                }
            }
            // Not synced one by one: the store syncs its filesystem once
            // before a transaction names the blob (ImageStore::add_image),
            // which also covers the unpacked layers. A killed process
            // cannot leave a partial blob under its name either way (the
            // rename comes after the last write).
            Ok(digest)
        });
        let digest = match result {
            Ok(d) => d,
            Err(e) => {
                crate::leftover::remove_file(&tmp_path);
                return Err(e);
            }
        };
        let dest = self.path(&digest);
        // An existing blob of the same digest has the same content.
        fs::rename(&tmp_path, &dest).map_err(io_err(format!("store blob {digest}")))?;
        Ok(digest)
    }

    /// A temp file that becomes a blob only once its content is verified
    /// ([`BlobWriter::commit`]); dropped uncommitted, it is removed.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let (path, file) = self.temp_file()?;
        Ok(BlobWriter {
            path,
            file,
            dir: self.dir.clone(),
            committed: false,
        })
    }

    /// Stores `data`.
    pub fn put_bytes(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest, BlobError> {
        self.put(data, expected, None)
    }

    /// Removes a blob (absent is fine).
    pub fn remove(&self, d: &Digest) -> Result<(), BlobError> {
        match fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BlobError::Io {
                context: format!("remove blob {d}"),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Every blob in the store. Files whose names are not digests (none
    /// should exist) are skipped.
    pub fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)
            .map_err(io_err(format!("read {}", self.dir.display())))?
            .flatten()
        {
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse::<Digest>() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes a stored blob: false if its content does not match its name.
    pub fn verify(&self, d: &Digest) -> Result<bool, BlobError> {
        let f = self.open_blob(d)?;
        let (actual, _) = copy_hashing(f, &mut io::sink(), None)?;
        Ok(actual == *d)
    }

    /// Removes temp files left by writes that were killed; returns how many.
    pub fn clean_temp(&self) -> Result<usize, BlobError> {
        let mut n = 0;
        for e in fs::read_dir(&self.tmp)
            .map_err(io_err(format!("read {}", self.tmp.display())))?
            .flatten()
        {
            if fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn temp_file(&self) -> Result<(PathBuf, File), BlobError> {
        for attempt in 0u32..100 {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = self.tmp.join(format!("{pid}-{nanos}-{attempt}"));
            match OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => return Ok((p, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(BlobError::Io {
                        context: format!("create {}", p.display()),
                        source: e,
                    })
                }
            }
        }
        Err(BlobError::Io {
            context: "create a temp blob".into(),
            source: io::ErrorKind::AlreadyExists.into(),
        })
    }
}

/// A blob being written by a caller that hashes it itself (a download
/// that is unpacked while it is stored).
#[derive(Debug)]
pub struct BlobWriter {
    path: PathBuf,
    file: File,
    dir: PathBuf,
    committed: bool,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Names the blob `digest`, which the caller has verified against what
    /// it wrote.
    pub fn commit(mut self, digest: &Digest) -> Result<(), BlobError> {
        fs::rename(&self.path, self.dir.join(digest.hex()))
            .map_err(io_err(format!("store blob {digest}")))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            crate::leftover::remove_file(&self.path);
        }
    }
}

/// Copies `reader` to `out` while hashing; returns the digest and size.
pub fn copy_hashing(
    mut reader: impl Read,
    out: &mut impl Write,
    limit: Option<u64>,
) -> Result<(Digest, u64), BlobError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(BlobError::Io {
                    context: "read blob content".into(),
                    source: e,
                })
            }
        };
        total += n as u64;
        if let Some(l) = limit {
            if total > l {
                return Err(BlobError::TooLarge { limit: l });
            }
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err("write blob"))?;
    }
    Ok((Digest::from_hasher(hasher), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verifies_and_names_by_digest() {
        let root = tempfile::tempdir().unwrap();
        let s = BlobStore::open(root.path()).unwrap();
        let d = s.put_bytes(b"hello", None).unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(s.read(&d).unwrap(), b"hello");
        assert!(s.verify(&d).unwrap());
        // Storing it again is fine; the list holds it once.
        s.put_bytes(b"hello", Some(&d)).unwrap();
        assert_eq!(s.list().unwrap(), vec![d.clone()]);
    }

    #[test]
    fn mismatch_and_limit_store_nothing() {
        let root = tempfile::tempdir().unwrap();
        let s = BlobStore::open(root.path()).unwrap();
        let wrong = Digest::of(b"other");
        let e = s.put_bytes(b"hello", Some(&wrong)).unwrap_err();
        assert!(matches!(e, BlobError::Mismatch { .. }), "{e}");
        let e = s.put(&b"0123456789"[..], None, Some(4)).unwrap_err();
        assert!(matches!(e, BlobError::TooLarge { limit: 4 }), "{e}");
        assert!(s.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(root.path().join("blobs/.tmp"))
                .unwrap()
                .count(),
            0,
            "temp files left"
        );
    }

    #[test]
    fn a_writer_leaves_nothing_unless_committed() {
        let root = tempfile::tempdir().unwrap();
        let s = BlobStore::open(root.path()).unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"half").unwrap();
        drop(w);
        assert_eq!(s.clean_temp().unwrap(), 0, "removed on drop");
        let mut w = s.writer().unwrap();
        w.write_all(b"whole").unwrap();
        w.commit(&Digest::of(b"whole")).unwrap();
        assert_eq!(s.read(&Digest::of(b"whole")).unwrap(), b"whole");
    }

    #[test]
    fn a_tampered_blob_fails_verify_and_leftovers_are_cleaned() {
        let root = tempfile::tempdir().unwrap();
        let s = BlobStore::open(root.path()).unwrap();
        let d = s.put_bytes(b"data", None).unwrap();
        std::fs::write(s.path(&d), b"tampered").unwrap();
        assert!(!s.verify(&d).unwrap());
        std::fs::write(root.path().join("blobs/.tmp/123-killed"), b"half").unwrap();
        assert_eq!(s.clean_temp().unwrap(), 1);
        assert!(matches!(
            s.read(&Digest::of(b"absent")),
            Err(BlobError::NotFound(_))
        ));
    }
}
