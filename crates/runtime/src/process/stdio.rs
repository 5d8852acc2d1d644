//! The descriptors a container process starts with on 0, 1 and 2, handed
//! to the runtime by its caller as owned descriptors (youki's builder takes
//! them the same way). They are put in place in the forked child only: the
//! caller's own 0, 1 and 2 are never touched, so an in-process caller (the
//! engine's monitor, a build, a health check) needs no process-wide dup2
//! around a runtime call, and two launches cannot see each other's.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Context, Result};

/// A container process's stdin, stdout and stderr.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Stdio {
    /// Puts the three on 0, 1 and 2 of the calling process, which must be
    /// a child forked for the container (never the runtime's caller).
    pub(crate) fn install(&self) -> Result<()> {
        // Copies above 2 first: a source may itself sit on 0, 1 or 2 (a
        // caller that closed its own), where the first dup2 would
        // overwrite the next one's source.
        let mut high = Vec::with_capacity(3);
        for fd in [&self.stdin, &self.stdout, &self.stderr] {
            let n = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .ctx(|| "dup a stdio descriptor".into())?;
            // SAFETY: fcntl just returned this descriptor; nobody else owns it.
            high.push(unsafe { OwnedFd::from_raw_fd(n) });
        }
        for (target, fd) in (0..3).zip(&high) {
            // dup2 leaves close-on-exec off the target: the program keeps it.
            nix::unistd::dup2(fd.as_raw_fd(), target).ctx(|| format!("dup2 onto fd {target}"))?;
        }
        Ok(())
    }
}

impl Stdio {
    /// With a user namespace of the container's own (`linux`'s id
    /// mappings), gives the pipes among the three to the host ids the
    /// process's `user` maps to. A pipe berth made belongs to the host's
    /// root, unmapped in the container: its process could not reopen its
    /// own stdout through /proc/self/fd/1 (`/dev/stdout`, where images
    /// such as nginx's send their logs). runc and crun give them over the
    /// same way. Anything but a pipe (/dev/null) is left as it is.
    pub(crate) fn give_to(
        &self,
        linux: Option<&oci_spec::runtime::Linux>,
        user: &oci_spec::runtime::User,
    ) -> Result<()> {
        let maps = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<(u32, u32, u32)> {
            m.map(|v| {
                v.iter()
                    .map(|r| (r.container_id(), r.host_id(), r.size()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let Some(linux) = linux else { return Ok(()) };
        let (uids, gids) = (
            maps(linux.uid_mappings().as_ref()),
            maps(linux.gid_mappings().as_ref()),
        );
        if uids.is_empty() {
            return Ok(());
        }
        let (Some(uid), Some(gid)) = (host_id(&uids, user.uid()), host_id(&gids, user.gid()))
        else {
            return Ok(());
        };
        for fd in [&self.stdin, &self.stdout, &self.stderr] {
            let st =
                nix::sys::stat::fstat(fd.as_raw_fd()).ctx(|| "stat a stdio descriptor".into())?;
            if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
                != nix::sys::stat::SFlag::S_IFIFO
            {
                continue;
            }
            nix::unistd::fchown(
                fd.as_raw_fd(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .ctx(|| "give a stdio pipe to the container's user".into())?;
        }
        Ok(())
    }
}

/// The host id of container id `id` through `ranges` (container id, host
/// id, size); None when it is not mapped.
fn host_id(ranges: &[(u32, u32, u32)], id: u32) -> Option<u32> {
    ranges.iter().find_map(|&(inside, outside, size)| {
        id.checked_sub(inside)
            .filter(|k| *k < size)
            .and_then(|k| outside.checked_add(k))
    })
}

#[cfg(test)]
mod tests {
    use super::host_id;

    #[test]
    fn ids_map_through_their_range_only() {
        let r = [(0, 100_000, 65_536), (65_536, 5_000, 1)];
        assert_eq!(host_id(&r, 0), Some(100_000));
        assert_eq!(host_id(&r, 33), Some(100_033));
        assert_eq!(host_id(&r, 65_536), Some(5_000));
        assert_eq!(host_id(&r, 65_537), None);
    }
}
