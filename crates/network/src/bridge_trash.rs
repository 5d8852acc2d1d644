//! Removed networks' bridges, taken out of service at once and deleted
//! later, off the path of the command that removed the network.
//!
//! Why: deleting a bridge (`RTM_DELLINK`) returns only once the kernel has
//! unregistered the device, and that waits for RCU grace periods
//! (`netdev_run_todo`: `rcu_barrier` and the wait for the device's last
//! references): 35 to 45 ms of a `compose down` of 60 to 120 here. Taking
//! the bridge out of service costs a fraction of that: its address goes
//! (and with it the subnet's routes, so a new network may take the subnet
//! at once), it goes down, and it is renamed to a trash name with no alias
//! (its `br-` name is free again, and nothing takes it for a live
//! network's bridge or a dead root's: see `reclaim_dead_roots`).
//!
//! A trash name starts with [`PREFIX`]: any sweeper of any berth root may
//! delete every such link, so a sweeper killed half way, or a command
//! killed before its sweep, leaves nothing that the next sweep does not
//! delete. Two sweepers deleting one link is fine (gone already is no
//! error).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::netlink::Netlink;
use crate::{Context, Result};

/// How a retired bridge's name starts ("berthx-" and 8 hex digits fill
/// the kernel's 15 characters).
pub const PREFIX: &str = "berthx-";

/// Whether this process retired a bridge: a command-line front end sweeps
/// once it has answered (a long-lived one calls [`Sweeper::sweep`] when it
/// likes).
static RETIRED: AtomicBool = AtomicBool::new(false);

/// Whether this process has retired a bridge since it started.
pub fn retired_by_this_process() -> bool {
    RETIRED.load(Ordering::Relaxed)
}

/// A fresh trash name.
pub(crate) fn trash_name() -> String {
    format!("{PREFIX}{}", crate::store::random_hex(8))
}

/// Records that this process retired a bridge.
pub(crate) fn retired() {
    RETIRED.store(true, Ordering::Relaxed);
}

/// Whether `name` is a trash name.
pub fn is_trash(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A netlink socket, opened in the networks' namespace, that deletes the
/// retired bridges it finds. Opened first, then swept: a detached child
/// may open it, let go of every other descriptor (the namespace's among
/// them, for rootless berth), then sweep.
#[derive(Debug)]
pub struct Sweeper {
    nl: Netlink,
}

impl Sweeper {
    /// Opens the socket in the networks' namespace.
    pub fn open() -> Result<Sweeper> {
        let nl = crate::netns::run_in(Netlink::open).ctx(|| "open a netlink socket".into())?;
        Ok(Sweeper { nl })
    }

    /// The socket's descriptor (to keep open).
    pub fn fd(&self) -> RawFd {
        self.nl.as_raw_fd()
    }

    /// Deletes every retired bridge; how many it deleted.
    pub fn sweep(mut self) -> Result<usize> {
        let links = self.nl.links().ctx(|| "list links".into())?;
        let mut deleted = 0;
        for l in links
            .iter()
            .filter(|l| l.kind == "bridge" && is_trash(&l.name))
        {
            if self
                .nl
                .delete_link(&l.name)
                .ctx(|| format!("delete bridge {}", l.name))?
            {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trash_names_fit_and_are_recognised() {
        let n = trash_name();
        assert_eq!(n.len(), 15, "{n}: the kernel's IFNAMSIZ leaves 15");
        assert!(is_trash(&n));
        for other in [
            "berthx-",
            "br-0123456789ab",
            "berth0",
            "berthx-zz",
            "xberthx-01",
        ] {
            assert!(!is_trash(other), "{other}");
        }
    }
}
