//! Mount options as the OCI spec and fstab write them, turned into mount(2)
//! flags, propagation changes and the filesystem's own data string.

use nix::mount::MsFlags;

/// Parsed options of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call itself (and for the remount of a bind).
    pub flags: MsFlags,
    /// Flags cleared explicitly (`rw`, `suid`, `dev`, ...).
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`mode=755`, `size=65536k`, ...).
    pub data: Vec<String>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind` (recursive) was given.
    pub recursive: bool,
    /// `idmap` or `ridmap`: seen through the container's id mapping (see
    /// rootfs/idmapped.rs).
    pub idmap: bool,
    /// `ridmap`: the submounts of a recursive bind too.
    pub idmap_recursive: bool,
}

impl MountOptions {
    pub fn parse(options: &[String]) -> Result<MountOptions, String> {
        let mut o = MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive: false,
            idmap: false,
            idmap_recursive: false,
        };
        for opt in options {
            let (set, clear) = match opt.as_str() {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "bind" => {
                    o.bind = true;
                    (MsFlags::empty(), MsFlags::empty())
                }
                "rbind" => {
                    o.bind = true;
                    o.recursive = true;
                    (MsFlags::empty(), MsFlags::empty())
                }
                "private" => prop(&mut o, MsFlags::MS_PRIVATE),
                "rprivate" => prop(&mut o, MsFlags::MS_PRIVATE | MsFlags::MS_REC),
                "shared" => prop(&mut o, MsFlags::MS_SHARED),
                "rshared" => prop(&mut o, MsFlags::MS_SHARED | MsFlags::MS_REC),
                "slave" => prop(&mut o, MsFlags::MS_SLAVE),
                "rslave" => prop(&mut o, MsFlags::MS_SLAVE | MsFlags::MS_REC),
                "unbindable" => prop(&mut o, MsFlags::MS_UNBINDABLE),
                "runbindable" => prop(&mut o, MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
                // Docker and podman pass these; they are SELinux relabel and
                // copy-up hints that mean nothing to the mount itself.
                "z" | "Z" | "copy" | "nocopy" | "notmpcopyup" | "tmpcopyup" => {
                    (MsFlags::empty(), MsFlags::empty())
                }
                "idmap" | "ridmap" => {
                    o.idmap = true;
                    o.idmap_recursive = opt == "ridmap";
                    (MsFlags::empty(), MsFlags::empty())
                }
                other if other.starts_with('r') && is_recursive_attr(other) => {
                    return Err(format!(
                        "recursive mount option {other:?} is not supported yet"
                    ))
                }
                other => {
                    o.data.push(other.to_string());
                    (MsFlags::empty(), MsFlags::empty())
                }
            };
            o.flags = (o.flags | set) - clear;
            o.cleared = (o.cleared | clear) - set;
        }
        Ok(o)
    }

    pub fn data(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

fn prop(o: &mut MountOptions, f: MsFlags) -> (MsFlags, MsFlags) {
    o.propagation.push(f);
    (MsFlags::empty(), MsFlags::empty())
}

fn is_recursive_attr(s: &str) -> bool {
    matches!(
        s,
        "rro"
            | "rrw"
            | "rnosuid"
            | "rsuid"
            | "rnodev"
            | "rdev"
            | "rnoexec"
            | "rexec"
            | "rnodiratime"
            | "rdiratime"
            | "rrelatime"
            | "rnorelatime"
            | "rnoatime"
            | "ratime"
            | "rstrictatime"
            | "rnostrictatime"
            | "rnosymfollow"
            | "rsymfollow"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        MountOptions::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        let o = p(&["rbind", "ro", "rprivate"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn unsupported_options_say_so() {
        let err =
            MountOptions::parse(&["rrnosymfollow".to_string(), "rro".to_string()]).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        let o = MountOptions::parse(&["rbind".to_string(), "ridmap".to_string()]).unwrap();
        assert!(o.idmap && o.idmap_recursive && o.data.is_empty());
    }
}
