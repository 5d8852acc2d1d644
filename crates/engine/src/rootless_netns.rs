//! The rootless network namespace: one per user (per run state), where a
//! rootless berth's user networks live as root's live on the host.
//!
//! An ordinary user cannot make bridges, veths or nft rules in the host's
//! network namespace, but is root in a network namespace their own user
//! namespace owns. So the user's networks are bridges, veths, leases, an
//! nft table and per-network resolvers exactly as root's (crates/network),
//! in this namespace instead of the host's; containers' veths go into its
//! bridges, and containers on one network reach each other as on root's.
//!
//! It is held without a process of its own: made by a thread's
//! `unshare(CLONE_NEWNET)` and bind-mounted (its nsfs file) on
//! `RUNROOT/netns`, inside the mount namespace the user's pause process
//! keeps (crates/engine/src/rootless.rs), which every berth command and
//! monitor joins; so it lives as long as that mount namespace and is
//! invisible outside it (another user cannot even name it). Its way out is
//! one pasta (the uplink), which gives it the host's address and default
//! route and carries its connections out as the user's, as a default-network
//! container's pasta does. Made once, under `RUNROOT/netns.lock`; a pause
//! process that died takes the mount with it, and the next command makes
//! both again.
//!
//! A command never moves into it (an ordinary user could not come back to
//! the host's): berth_network works there from short-lived threads and
//! children (`berth_network::netns`), so the rest of the command (a pull,
//! a `-p`'s host sockets) stays in the host's.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use crate::error::{Error, Result};

/// The namespace's file in the run state (a bind mount of its nsfs inode).
const NETNS_FILE: &str = "netns";
/// Held while a command checks the namespace and makes it.
const NETNS_LOCK: &str = "netns.lock";
/// The uplink pasta's pid file and log, in the run state.
const UPLINK_PID: &str = "netns-pasta.pid";
const UPLINK_LOG: &str = "netns-pasta.log";

/// The namespace's file under `runroot`.
pub fn path(runroot: &Path) -> PathBuf {
    runroot.join(NETNS_FILE)
}

/// The lock of choices made for the namespace's bridges (names, subnets):
/// `berth_network`'s host lock, for this namespace.
pub fn lock_path(runroot: &Path) -> PathBuf {
    runroot.join("network.lock")
}

/// Whether `path` is a network namespace's file (mounted, not the empty
/// file a gone mount namespace leaves).
fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// The namespace, if it exists (for what only undoes: a container's
/// detach needs no namespace made for it).
pub fn open_existing(runroot: &Path) -> Option<File> {
    let p = path(runroot);
    is_netns(&p).then(|| File::open(&p).ok()).flatten()
}

/// The namespace, made (with its uplink) if missing, its uplink started
/// again if it died.
pub fn ensure(runroot: &Path) -> Result<File> {
    let p = path(runroot);
    let uplink = runroot.join(UPLINK_PID);
    if is_netns(&p) && crate::rootless_net::running(&uplink).is_some() {
        return open(&p);
    }
    let lock_file = runroot.join(NETNS_LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .map_err(|e| Error::Rootless(format!("open {}: {e}", lock_file.display())))?;
    let _lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::Rootless(format!("lock {}: {e}", lock_file.display())))?;
    if !is_netns(&p) {
        // An uplink of a namespace gone with its mount namespace holds
        // that namespace alone: ended before the new one's starts.
        crate::rootless_net::stop(&uplink);
        make(&p)?;
    }
    let ns = open(&p)?;
    if crate::rootless_net::running(&uplink).is_none() {
        let fd: OwnedFd = ns
            .try_clone()
            .map_err(|e| Error::Rootless(format!("dup {}: {e}", p.display())))?
            .into();
        // A container's pasta with no port forwarded either way (published
        // ports have forwarders of their own, see rootless_ports.rs).
        let args = crate::rootless_net::pasta_args(&[]);
        crate::rootless_net::spawn(fd, &args, &uplink, &runroot.join(UPLINK_LOG))?;
    }
    Ok(ns)
}

fn open(p: &Path) -> Result<File> {
    File::open(p).map_err(|e| Error::Rootless(format!("open {}: {e}", p.display())))
}

/// Makes the namespace: a thread of its own unshares it (the process's
/// other threads stay where they are), bind-mounts it on `p`, brings its
/// loopback up and lets it forward between its bridges and the uplink.
fn make(p: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(|e| Error::Rootless(format!("create {}: {e}", p.display())))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> std::result::Result<(), String> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare a network namespace: {e}"))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                p,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind-mount it on {}: {e}", p.display()))?;
            berth_network::loopback_up_in_current().map_err(|e| e.to_string())?;
            // /proc/sys/net is the calling thread's namespace's.
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .map_err(|e| format!("enable forwarding: {e}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the namespace's thread panicked".into()))
    });
    made.map_err(|e| Error::Rootless(format!("rootless network namespace: {e}")))
}

impl crate::Engine {
    /// For a rootless berth, the user's network namespace (made if
    /// missing) as the one of this process's networks
    /// (`berth_network::netns`); true then. False as root, whose networks
    /// are the host's.
    pub(crate) fn user_netns(&self) -> Result<bool> {
        if !saferoot::idmap::in_unprivileged_user_namespace() {
            return Ok(false);
        }
        if !berth_network::netns::is_set() {
            berth_network::netns::set(ensure(&self.runroot)?, &self.runroot);
        }
        Ok(true)
    }
}
