//! A user namespace of its own for each container (as root): the
//! container's root is an unprivileged id on the host, so what escapes the
//! container's other walls is no one in particular there.
//!
//! Each container holds 65,536 ids (`--userns=auto:size=N`: N) from the
//! host's pool, recorded in the store (`userns_ranges`), never two live
//! containers the same ones unless they share the namespace itself
//! (`--network container:X`). The pool is the `berth` user's entry of
//! /etc/subuid and /etc/subgid when there is one, else [`DEFAULT_POOL`]
//! (see SECURITY.md). The image's layers, volumes and binds are seen
//! through idmapped mounts (`launch::mount_rootfs`, the spec's `idmap`
//! option): nothing is copied or chowned.
//!
//! The default is a private namespace where the kernel can idmap the
//! overlay's layers (Linux 6.13; see [`PRIVATE_BY_DEFAULT`]), else the
//! host's; `BERTH_USERNS` (for one process) or the `userns` key of
//! /etc/berth/berth.conf (for the host) set it: `host` or `private`.

use std::os::fd::OwnedFd;
use std::path::Path;

use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::config::ContainerConfig;
use crate::error::{Error, Result};

/// Ids each container gets by default: 0 to 65535, what images use.
pub const RANGE: u32 = 65_536;

/// The host ids containers take ranges from when /etc/subuid names no
/// `berth` user: from 2^31 up, 32767 ranges of 65,536 (podman's
/// `containers` user conventionally starts there too; the top id stays
/// below 2^32 - 1, which the kernel reserves).
pub const DEFAULT_POOL: Pool = Pool {
    uid_base: 1 << 31,
    gid_base: 1 << 31,
    len: 32_767 * RANGE,
};

/// Whether a container gets a namespace of its own when neither `--userns`
/// nor the host's setting says (where the kernel can idmap overlay layers).
///
/// On: a container's root is not the host's root unless asked
/// (`--userns=host`, `--privileged`, or options that need the host's
/// namespace, see [`wants_host`]). What shows of it to a Docker user is
/// /proc/mounts (an idmapped volume says `idmapped`, a tmpfs made in it
/// `uid=`/`gid=` of the host, /dev's nodes are binds of the host's since
/// mknod is refused there): the compat corpus marks those lines
/// `## differs with userns`.
pub const PRIVATE_BY_DEFAULT: bool = true;

/// The process environment variable that overrides the host's default.
pub const ENV: &str = "BERTH_USERNS";

/// The host's configuration file; its `userns = host|private` line sets
/// the default for every container made on this host.
pub const CONF: &str = "/etc/berth/berth.conf";

/// The host ids a container's ids map to: container id `k` (for k below
/// `size`) is host uid `uid + k` and host gid `gid + k`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdMap {
    /// The kernel's `uid_map` text for the container's namespace.
    pub fn uid_map(&self) -> String {
        format!("0 {} {}\n", self.uid, self.size)
    }

    pub fn gid_map(&self) -> String {
        format!("0 {} {}\n", self.gid, self.size)
    }

    /// Host uid `uid` as the container sees it: nobody (65534, the
    /// kernel's overflow id) when it is none of the container's.
    pub fn inside_uid(&self, uid: u32) -> u32 {
        inside(uid, self.uid, self.size)
    }

    pub fn inside_gid(&self, gid: u32) -> u32 {
        inside(gid, self.gid, self.size)
    }

    /// A namespace for idmapping the rootfs' layers: the container's
    /// mapping, plus container id `size` (which no process of the container
    /// can take) as the host's root, the mounter overlayfs makes its work
    /// files as. Never the namespace a process runs in.
    pub fn layer_namespace(&self) -> Result<OwnedFd> {
        let extra = |base: u32| format!("0 {base} {}\n{} 0 1\n", self.size, self.size);
        saferoot::idmap::userns_with_maps(&extra(self.uid), &extra(self.gid)).map_err(|e| {
            Error::UserNamespace(format!(
                "make a user namespace to idmap the layers with: {e}"
            ))
        })
    }
}

fn inside(id: u32, base: u32, size: u32) -> u32 {
    id.checked_sub(base).filter(|k| *k < size).unwrap_or(65_534)
}

/// Where ranges come from: `len` ids from `uid_base` and from `gid_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub uid_base: u32,
    pub gid_base: u32,
    pub len: u32,
}

impl Pool {
    /// The `berth` user's subordinate ranges when /etc/subuid and
    /// /etc/subgid both name one, else [`DEFAULT_POOL`].
    pub fn of_host() -> Result<Pool> {
        let read = |p: &str| match std::fs::read_to_string(p) {
            Ok(t) => Ok(subordinate(&t, "berth")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::UserNamespace(format!("read {p}: {e}"))),
        };
        match (read("/etc/subuid")?, read("/etc/subgid")?) {
            (Some((u, ul)), Some((g, gl))) => Ok(Pool {
                uid_base: u,
                gid_base: g,
                len: ul.min(gl),
            }),
            _ => Ok(DEFAULT_POOL),
        }
    }
}

/// The first `NAME:START:COUNT` line for `name` (numbers that do not fit
/// are skipped, as a malformed line is).
fn subordinate(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        if f.next()? != name {
            return None;
        }
        let start: u32 = f.next()?.parse().ok()?;
        let count: u32 = f.next()?.parse().ok()?;
        // A range reaching 2^32 - 1 (the invalid id) is cut before it.
        let count = count.min(u32::MAX - start);
        Some((start, count))
    })
}

/// What `--userns` asked for, parsed (podman's and docker's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The host's namespace: container root is host root.
    Host,
    /// A namespace of its own with `size` ids from the pool.
    Private { size: u32 },
}

impl Mode {
    /// Parses `--userns`: "" (the host's default), `host`, `private`,
    /// `auto`, `auto:size=N`; `keep-id` is refused as podman refuses it to
    /// root (rootless berth gives it a meaning).
    pub fn parse(s: &str) -> Result<Mode> {
        if saferoot::idmap::in_unprivileged_user_namespace() {
            return crate::rootless::userns_mode(s);
        }
        let bad = |m: String| Err(Error::InvalidOption(m));
        match s {
            "" => default_mode(),
            "host" => Ok(Mode::Host),
            "private" | "auto" => Ok(Mode::Private { size: RANGE }),
            _ if s == "keep-id" || s.starts_with("keep-id:") => {
                bad("keep-id is only supported in rootless mode".into())
            }
            _ => {
                let Some(opts) = s.strip_prefix("auto:") else {
                    return bad(format!("unrecognized namespace mode {s} passed"));
                };
                let mut size = RANGE;
                for o in opts.split(',') {
                    match o.split_once('=') {
                        Some(("size", n)) => {
                            size = match n.parse::<u32>() {
                                Ok(n) if n > 0 => n,
                                _ => {
                                    return bad(format!(
                                        "--userns={s}: size must be a positive number of ids, \
                                         not {n:?}"
                                    ))
                                }
                            }
                        }
                        _ => {
                            return bad(format!(
                                "--userns={s}: option {o:?} is not supported (only size=N)"
                            ))
                        }
                    }
                }
                Ok(Mode::Private { size })
            }
        }
    }

    /// How it is recorded in the container's config (`HostConfig.UsernsMode`).
    pub fn recorded(&self) -> String {
        match self {
            Mode::Host => "host".into(),
            Mode::Private { size } if *size == RANGE => "auto".into(),
            Mode::Private { size } => format!("auto:size={size}"),
        }
    }
}

/// The host's default: [`ENV`], else [`CONF`]'s `userns` key, else a
/// private namespace where the kernel can idmap overlay layers.
pub fn default_mode() -> Result<Mode> {
    match configured_mode()? {
        Some(m) => Ok(m),
        None if PRIVATE_BY_DEFAULT && kernel_idmaps_overlay_layers() => {
            Ok(Mode::Private { size: RANGE })
        }
        None => Ok(Mode::Host),
    }
}

/// What [`ENV`] or else [`CONF`] says, if either does.
pub fn configured_mode() -> Result<Option<Mode>> {
    let setting = match std::env::var(ENV) {
        Ok(v) => Some((v, ENV.to_string())),
        Err(_) => conf_setting(Path::new(CONF))?.map(|v| (v, format!("{CONF}: userns"))),
    };
    let Some((v, from)) = setting else {
        return Ok(None);
    };
    match v.as_str() {
        "host" => Ok(Some(Mode::Host)),
        "private" | "auto" => Ok(Some(Mode::Private { size: RANGE })),
        other => Err(Error::InvalidOption(format!(
            "{from} is {other:?}; it is host or private"
        ))),
    }
}

/// The `userns = VALUE` line of the configuration file at `path`; `#`
/// starts a comment.
fn conf_setting(path: &Path) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::UserNamespace(format!(
                "read {}: {e}",
                path.display()
            )))
        }
    };
    Ok(text.lines().find_map(|l| {
        let l = l.split('#').next().unwrap_or("");
        let (k, v) = l.split_once('=')?;
        (k.trim() == "userns").then(|| v.trim().trim_matches('"').to_string())
    }))
}

/// Linux 6.13 and later take overlay layers as descriptors, which is how
/// idmapped layers are handed to it (see Snapshot::mount_detached_idmapped).
fn kernel_idmaps_overlay_layers() -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = u.release().to_string_lossy().into_owned();
    let mut n = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let (major, minor) = (n.next().unwrap_or(0), n.next().unwrap_or(0));
    (major, minor) >= (6, 13)
}

/// Options that cannot work from a user namespace of the container's own,
/// refused with what to do instead when `--userns` asked for one (`explicit`);
/// with the default, [`wants_host`] gives them the host's.
pub fn refuse_host_only(cfg: &ContainerConfig, explicit: bool) -> Result<()> {
    match host_only(cfg) {
        Some(why) if explicit => Err(Error::UserNamespace(format!(
            "{why} needs the host's user namespace; use --userns=host"
        ))),
        _ => Ok(()),
    }
}

/// Options that need the host's user namespace and ask for the host's
/// already: with the default (no `--userns`), they get it.
pub fn wants_host(cfg: &ContainerConfig) -> bool {
    host_only(cfg).is_some()
}

/// The first option that needs the host's user namespace: a host device
/// node (`--device`) is the host root's, whom the container's root is not,
/// and a user namespace cannot make one (mknod); a procfs for the host's
/// pid namespace cannot be mounted from another user namespace, nor
/// an mqueue for the host's ipc namespace; `--oom-score-adj` is written by
/// the init to its own /proc/self, which (non-dumpable) stays the host
/// root's, not the container root's (and lowering it needs
/// CAP_SYS_RESOURCE on the host). A pod's member runs in the pod's user
/// namespace, whichever it is (Engine::userns_of).
fn host_only(cfg: &ContainerConfig) -> Option<String> {
    if let Some(d) = cfg.devices.first() {
        return Some(format!("--device {}", d.host));
    }
    if cfg.pid_mode == "host" {
        return Some("--pid=host".into());
    }
    if cfg.ipc_mode == "host" {
        return Some("--ipc=host".into());
    }
    cfg.oom_score_adj.map(|n| format!("--oom-score-adj={n}"))
}

/// Where a container with a user namespace of its own has its rootfs
/// attached, inside its own mount namespace only: one empty directory for
/// every container (each attaches there in a namespace of its own). Not
/// the snapshot's `merged`: the store is closed to other users (0700, see
/// secure_store), the container's root among them, and the init, already
/// in the container's user namespace, must walk the path to it.
pub const ROOTFS_MOUNT_POINT: &str = "/run/berth-rootfs";

/// Makes [`ROOTFS_MOUNT_POINT`] (mode 0755, empty) if missing.
pub fn rootfs_mount_point() -> Result<&'static Path> {
    use std::os::unix::fs::DirBuilderExt;
    let p = Path::new(ROOTFS_MOUNT_POINT);
    match std::fs::DirBuilder::new().mode(0o755).create(p) {
        Ok(()) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(p),
        Err(e) => Err(Error::UserNamespace(format!("create {}: {e}", p.display()))),
    }
}

/// Gives back to the image's own ids what was copied through the
/// container's idmapped view into `dir` (a volume filled from the image):
/// an owner inside the container's range on the host becomes the id it is
/// in the container, which the volume's idmapped bind shows it as again.
pub fn unshift_tree(dir: &Path, map: &IdMap) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let back =
        |id: u32, base: u32| -> Option<u32> { id.checked_sub(base).filter(|k| *k < map.size) };
    let shift = |p: &Path| -> Result<()> {
        let m = std::fs::symlink_metadata(p)
            .map_err(|e| Error::UserNamespace(format!("stat {}: {e}", p.display())))?;
        let (uid, gid) = (back(m.uid(), map.uid), back(m.gid(), map.gid));
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        std::os::unix::fs::lchown(p, uid.or(Some(m.uid())), gid.or(Some(m.gid())))
            .map_err(|e| Error::UserNamespace(format!("chown {}: {e}", p.display())))?;
        // A chown clears set-id bits: they are put back.
        if m.file_type().is_file() && m.mode() & 0o6000 != 0 {
            std::fs::set_permissions(
                p,
                std::os::unix::fs::PermissionsExt::from_mode(m.mode() & 0o7777),
            )
            .map_err(|e| Error::UserNamespace(format!("chmod {}: {e}", p.display())))?;
        }
        Ok(())
    };
    // The volume's own directory took the image directory's owner too.
    shift(dir)?;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| Error::UserNamespace(format!("read {}: {e}", d.display())))?;
        for e in entries {
            let e = e.map_err(|e| Error::UserNamespace(format!("read {}: {e}", d.display())))?;
            let p = e.path();
            shift(&p)?;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            }
        }
    }
    Ok(())
}

/// Runs `f` with this thread's filesystem ids those of the container's
/// root on the host (with `map`; else as it is): through the container's
/// idmapped mounts the host's root cannot be represented (EOVERFLOW),
/// its root can, and what it makes is stored as the container's root's.
/// Changing the fsuid from 0 drops the file capabilities from the
/// effective set; they are raised again from the permitted set (chown and
/// DAC override are still needed), and come back by themselves with fsuid
/// 0 after.
pub fn as_container_root<T>(map: Option<&IdMap>, f: impl FnOnce() -> T) -> Result<T> {
    let Some(m) = map else {
        return Ok(f());
    };
    let fail = |e: caps::errors::CapsError| {
        Error::UserNamespace(format!("take the container root's file ids: {e}"))
    };
    // SAFETY: setfsuid and setfsgid change this thread's filesystem ids
    // only; they take and return plain integers.
    let (old_uid, old_gid) = unsafe { (libc::setfsuid(m.uid), libc::setfsgid(m.gid)) };
    let raised = caps::read(None, caps::CapSet::Permitted)
        .and_then(|p| caps::set(None, caps::CapSet::Effective, &p))
        .map_err(fail);
    let out = raised.map(|()| f());
    // SAFETY: as above: back to the ids the thread had.
    unsafe {
        libc::setfsgid(u32::try_from(old_gid).unwrap_or(0));
        libc::setfsuid(u32::try_from(old_uid).unwrap_or(0));
    }
    out
}

/// Takes `size` ids for `container` from `pool`: the lowest free offset
/// that fits, in the caller's IMMEDIATE transaction (two commands cannot
/// take the same range).
pub fn allocate(tx: &Transaction<'_>, container: &str, size: u32, pool: &Pool) -> Result<IdMap> {
    let mut taken: Vec<(u32, u32)> = Vec::new();
    {
        let mut st = tx.prepare("SELECT offset, size FROM userns_ranges ORDER BY offset")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)))?;
        for row in rows {
            taken.push(row?);
        }
    }
    let mut at: u64 = 0;
    for (o, s) in &taken {
        if u64::from(*o) >= at + u64::from(size) {
            break;
        }
        at = at.max(u64::from(*o) + u64::from(*s));
    }
    if at + u64::from(size) > u64::from(pool.len) {
        return Err(Error::UserNamespace(format!(
            "no {size} free ids left in the pool of {} user namespace ids ({} containers \
             hold ranges): remove containers, or run this one with --userns=host",
            pool.len,
            taken.len()
        )));
    }
    let offset =
        u32::try_from(at).map_err(|_| Error::UserNamespace("pool offset overflow".into()))?;
    tx.execute(
        "INSERT INTO userns_ranges (container_id, offset, size) VALUES (?1, ?2, ?3)",
        params![container, offset, size],
    )?;
    Ok(IdMap {
        uid: pool.uid_base + offset,
        gid: pool.gid_base + offset,
        size,
    })
}

/// Ids held for something with no row of its own to free them with (a
/// build's RUN step): the range is given back when this is dropped.
#[derive(Debug)]
pub struct Lease {
    conn: std::rc::Rc<Connection>,
    holder: String,
    pub map: IdMap,
}

impl Lease {
    /// Takes `size` ids from the host's pool for `holder`.
    pub fn take(conn: std::rc::Rc<Connection>, holder: &str, size: u32) -> Result<Lease> {
        let tx = begin(&conn)?;
        let map = allocate(&tx, holder, size, &Pool::of_host()?)?;
        tx.commit()?;
        Ok(Lease {
            conn,
            holder: holder.to_string(),
            map,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A failure leaves the row to `system check` (free_leaked).
        let _ = self.conn.execute(
            "DELETE FROM userns_ranges WHERE container_id = ?1",
            params![self.holder],
        );
    }
}

/// `container` shares `other`'s namespace (and so its range): it holds the
/// range too, so it stays taken until both are gone.
pub fn share(tx: &Transaction<'_>, container: &str, other: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO userns_ranges (container_id, offset, size) \
         SELECT ?1, offset, size FROM userns_ranges WHERE container_id = ?2",
        params![container, other],
    )?;
    Ok(())
}

/// Opens the IMMEDIATE transaction [`allocate`] needs on a shared
/// connection.
pub fn begin(conn: &Connection) -> Result<Transaction<'_>> {
    Ok(Transaction::new_unchecked(
        conn,
        TransactionBehavior::Immediate,
    )?)
}

/// `system check`: ranges held for containers (or pods) that are gone
/// (none should be: the triggers free them with the row). Returns the
/// containers' ids.
pub fn free_leaked(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "DELETE FROM userns_ranges WHERE container_id NOT IN (SELECT id FROM containers) \
         AND container_id NOT IN (SELECT id FROM pods) RETURNING container_id",
    )?;
    let ids = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = berth_store::open(&dir.path().join("berth.db")).unwrap();
        (dir, c)
    }

    #[test]
    fn ranges_are_disjoint_and_freed_ones_are_reused() {
        let (_d, c) = db();
        let pool = Pool {
            uid_base: 1000,
            gid_base: 5000,
            len: 4 * RANGE,
        };
        let tx = begin(&c).unwrap();
        let a = allocate(&tx, "a", RANGE, &pool).unwrap();
        let b = allocate(&tx, "b", 10, &pool).unwrap();
        let cc = allocate(&tx, "c", RANGE, &pool).unwrap();
        tx.commit().unwrap();
        assert_eq!((a.uid, a.gid), (1000, 5000));
        assert_eq!(b.uid, 1000 + RANGE);
        assert_eq!(cc.uid, 1000 + RANGE + 10);
        c.execute("DELETE FROM userns_ranges WHERE container_id = 'b'", [])
            .unwrap();
        let tx = begin(&c).unwrap();
        // b's 10 ids are free again, but 11 do not fit between a and c.
        assert_eq!(allocate(&tx, "d", 10, &pool).unwrap().uid, 1000 + RANGE);
        assert_eq!(
            allocate(&tx, "e", 11, &pool).unwrap().uid,
            1000 + 2 * RANGE + 10
        );
        let err = allocate(&tx, "f", 2 * RANGE, &pool).unwrap_err();
        assert!(err.to_string().contains("--userns=host"), "{err}");
    }

    #[test]
    fn modes_parse_as_podman_and_docker_write_them() {
        assert_eq!(Mode::parse("host").unwrap(), Mode::Host);
        assert_eq!(Mode::parse("auto").unwrap(), Mode::Private { size: RANGE });
        assert_eq!(
            Mode::parse("auto:size=1000").unwrap(),
            Mode::Private { size: 1000 }
        );
        assert_eq!(Mode::Private { size: 1000 }.recorded(), "auto:size=1000");
        for bad in [
            "auto:size=x",
            "auto:size=0",
            "auto:uidmapping=0:1:2",
            "nosuch",
            "keep-id",
        ] {
            let e = Mode::parse(bad).unwrap_err();
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        assert_eq!(
            Mode::parse("nosuch").unwrap_err().to_string(),
            "unrecognized namespace mode nosuch passed"
        );
    }

    #[test]
    fn subordinate_ranges_are_read_by_name() {
        let t = "alice:100000:65536\nberth:300000:655360\n";
        assert_eq!(subordinate(t, "berth"), Some((300_000, 655_360)));
        assert_eq!(subordinate(t, "bob"), None);
        assert_eq!(subordinate("berth:x:1\n", "berth"), None);
    }

    #[test]
    fn the_conf_file_sets_the_default() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("berth.conf");
        std::fs::write(&p, "# berth\nuserns = host # no private namespaces here\n").unwrap();
        assert_eq!(conf_setting(&p).unwrap().as_deref(), Some("host"));
        assert_eq!(conf_setting(&d.path().join("none")).unwrap(), None);
    }
}
