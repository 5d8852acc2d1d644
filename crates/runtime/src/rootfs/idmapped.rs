//! Bind mounts seen through the container's id mapping: the spec's `idmap`
//! (the bind's top mount) and `ridmap` (its submounts too) options.
//!
//! Setting a mount's idmapping needs CAP_SYS_ADMIN over the mount's own
//! namespace, which the init, inside the container's user namespace, does
//! not have over the host's mounts. So the parent makes them: before the
//! fork it clones each source (`open_tree`, detached), once the
//! container's user namespace has its maps it idmaps the clones with it,
//! and the init, which inherited the descriptors, attaches them where the
//! bind would have gone (see mounts.rs). The source's files are seen owned
//! by the container's ids where the host has them owned by the same ids
//! unmapped: the host's root is the container's root, and what the
//! container's root writes is the host root's.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use super::options::MountOptions;
use crate::error::{Context, Error, Result};

/// One clone per spec mount that asked for it, in the spec's order.
#[derive(Debug, Default)]
pub struct IdmappedBinds {
    clones: Vec<Option<Clone>>,
}

#[derive(Debug)]
struct Clone {
    fd: OwnedFd,
    /// `ridmap`: the submounts are idmapped too.
    recursive: bool,
    dest: String,
}

impl IdmappedBinds {
    /// Clones the sources of the spec's idmapped binds (nothing for a spec
    /// without any). `has_user`: the container has a user namespace, whose
    /// mapping is the one used (a mount's own mappings are refused: a
    /// second namespace would be needed to hold them).
    pub fn clone_sources(spec: &Spec, bundle: &Path, has_user: bool) -> Result<IdmappedBinds> {
        let mut clones = Vec::new();
        let mut any = false;
        for m in spec.mounts().iter().flatten() {
            let dest = m.destination().display().to_string();
            let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())
                .map_err(|e| Error::SpecInvalid(format!("mount {dest}: {e}")))?;
            if !opts.idmap {
                clones.push(None);
                continue;
            }
            if !(opts.bind || m.typ().as_deref() == Some("bind")) {
                return Err(Error::SpecInvalid(format!(
                    "mount {dest}: idmap is supported on bind mounts only"
                )));
            }
            if !has_user {
                return Err(Error::SpecInvalid(format!(
                    "mount {dest}: idmap needs the container to have a user namespace"
                )));
            }
            if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
                return Err(Error::SpecInvalid(format!(
                    "mount {dest}: mappings of a mount's own are not supported yet; \
                     without them it takes the container's"
                )));
            }
            let src = m
                .source()
                .as_ref()
                .ok_or_else(|| Error::SpecInvalid(format!("bind mount {dest} has no source")))?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            // The init checks what a bind lands on, not this source's path,
            // which it cannot read: /sys (and /proc) are refused here.
            let real = std::fs::canonicalize(&src)
                .ctx(|| format!("bind mount source {}", src.display()))?;
            if real.starts_with("/sys") || real.starts_with("/proc") {
                return Err(Error::SpecInvalid(format!(
                    "mount {dest}: {} cannot be idmapped",
                    real.display()
                )));
            }
            let fd = saferoot::idmap::clone_tree(&real, opts.recursive)
                .ctx(|| format!("clone the mount of {} for {dest}", src.display()))?;
            clones.push(Some(Clone {
                fd,
                recursive: opts.idmap_recursive,
                dest,
            }));
            any = true;
        }
        if !any {
            clones.clear();
        }
        Ok(IdmappedBinds { clones })
    }

    /// Idmaps every clone with `userns`'s mapping (it must have its maps).
    pub fn apply(&self, userns: BorrowedFd<'_>) -> Result<()> {
        for c in self.clones.iter().flatten() {
            saferoot::idmap::set_idmap(c.fd.as_fd(), userns, c.recursive).map_err(|e| {
                let why = if e == nix::errno::Errno::EINVAL {
                    " (does its filesystem support idmapped mounts?)"
                } else {
                    ""
                };
                Error::Sys {
                    context: format!("idmap the bind mount for {}{why}", c.dest),
                    source: e,
                }
            })?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.clones.is_empty()
    }

    /// The descriptors the init attaches, by spec mount index (an empty
    /// list when there are none).
    pub fn raw(&self) -> Vec<Option<RawFd>> {
        self.clones
            .iter()
            .map(|c| c.as_ref().map(|c| c.fd.as_raw_fd()))
            .collect()
    }
}
