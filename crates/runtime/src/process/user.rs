//! Who the process runs as: groups, gid, uid, capabilities, and the bits
//! that must be set while the process still has the rights to set them.

use std::collections::HashSet;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::error::{Context, Error, Result};

/// The capabilities of one set of the spec. A capability the runtime does
/// not hold (`allowed`; this very host's root lacks CAP_SYS_RESOURCE)
/// cannot be granted: the runtime-spec says to fail, as runc does, rather
/// than start the process with less than it asked for. Names this
/// library does not know are skipped (a newer kernel's capability).
fn to_caps(
    set: &Option<HashSet<Capability>>,
    allowed: &CapsHashSet,
    which: &str,
) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{}", name.to_uppercase())
        };
        if let Ok(cap) = name.parse::<Cap>() {
            if !allowed.contains(&cap) {
                return Err(Error::Capability {
                    what: format!("{which} capability {cap} cannot be granted"),
                    reason: "the runtime itself does not hold it".into(),
                });
            }
            out.insert(cap);
        }
    }
    Ok(out)
}

/// Drops the bounding set to what the spec keeps; must run while the
/// process still has CAP_SETPCAP.
pub fn drop_bounding(caps_spec: Option<&LinuxCapabilities>) -> Result<()> {
    let Some(c) = caps_spec else { return Ok(()) };
    let all = caps::all();
    let keep = to_caps(c.bounding(), &all, "bounding")?;
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| Error::Capability {
                what: format!("drop {cap} from the bounding set"),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Whether this user namespace was made with setgroups denied.
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Switches to the spec's user and sets the remaining capability sets.
pub fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose setgroups file says
    // "deny"; then only an empty list could have been asked for.
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if gids.is_empty() => {}
        // Rootless with the user's id alone: the namespace was made with
        // setgroups denied (the kernel's price for an unprivileged gid
        // map), so the groups stay what they were, as runc and crun leave
        // them there too.
        Err(nix::errno::Errno::EPERM) if setgroups_denied() => {}
        Err(e) => return Err(e).ctx(|| "setgroups".into()),
    }
    // SAFETY: PR_SET_KEEPCAPS takes plain integers; it keeps the permitted
    // set across the uid change so the spec's capabilities can be set after.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    nix::errno::Errno::result(rc).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setgid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setuid {uid}"))?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };

    let Some(c) = process.capabilities() else {
        return Ok(());
    };
    let have = caps::read(None, CapSet::Permitted).map_err(|e| Error::Capability {
        what: "read capabilities".into(),
        reason: e.to_string(),
    })?;
    let permitted = to_caps(c.permitted(), &have, "permitted")?;
    let effective = to_caps(c.effective(), &permitted, "effective")?;
    let inheritable = to_caps(c.inheritable(), &have, "inheritable")?;
    let set = |which: CapSet, v: &CapsHashSet| {
        caps::set(None, which, v).map_err(|e| Error::Capability {
            what: format!("set {which:?} capabilities"),
            reason: e.to_string(),
        })
    };
    // Each capset must keep effective within permitted: narrow effective
    // first, then permitted.
    set(CapSet::Inheritable, &inheritable)?;
    set(CapSet::Effective, &effective)?;
    set(CapSet::Permitted, &permitted)?;
    let ambient = to_caps(c.ambient(), &permitted, "ambient")?;
    caps::clear(None, CapSet::Ambient).map_err(|e| Error::Capability {
        what: "clear ambient capabilities".into(),
        reason: e.to_string(),
    })?;
    for cap in ambient {
        if inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap).map_err(|e| Error::Capability {
                what: format!("raise ambient {cap}"),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// The home directory of `uid` in the container's /etc/passwd, for a
/// process whose environment has no HOME (runc does the same).
pub fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    saferoot::userdb::home_of(&passwd, uid)
}
