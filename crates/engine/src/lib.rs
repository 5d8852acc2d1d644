//! berth's engine: containers made from images and run through the runtime
//! library in-process, with their state in the store's SQLite database and,
//! for detached containers, a small monitor process each.
//!
//! ```text
//! berth run -d IMAGE         create: row + container dir + snapshot dirs
//!   └─ fork, setsid, fork    start:  monitor (see monitor.rs)
//!        monitor: mount overlay, config.json, runtime create+start,
//!                 log stdout/stderr, wait, record exit, restart policy
//! ```
//!
//! The library never prints and never exits (except the monitor process,
//! which it forks and which ends in `exit`).

pub mod attach;
pub mod build;
pub mod config;
pub mod cp;
pub mod db;
pub mod error;
pub mod events;
pub mod exec;
pub mod health;
pub mod init;
pub mod initlayer;
pub mod launch;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod networking;
pub mod spec;
pub mod stdio;
mod tree_copy;
pub mod volumes;

use std::path::{Path, PathBuf};

use berth_image::snapshot::Snapshot;
use berth_image::store::{Image, ImageStore};
use serde_json::Value;

pub use config::ContainerConfig;
pub use db::{Db, Record, Status};
pub use error::{Error, Result};

use crate::error::Context;

/// An open store: images and containers.
#[derive(Debug)]
pub struct Engine {
    pub root: PathBuf,
    /// Run state (the runtime's state dirs, console sockets): tmpfs.
    pub runroot: PathBuf,
    pub db: Db,
    pub images: ImageStore,
    pub volumes: volumes::Volumes,
    /// Networks, leases and published ports (tables of the same database).
    pub networks: berth_network::Networks,
}

/// Now, RFC 3339 with nanoseconds, UTC.
pub fn now_nanos() -> String {
    let t = time::OffsetDateTime::now_utc();
    let f = time::format_description::parse_borrowed::<2>(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z",
    );
    match f {
        Ok(f) => t.format(&f).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Closes the store at `root` and the run state at `runroot` to other
/// users, checked at every start: both directories 0700 (created so, or
/// tightened when an older berth or an admin left them open) and the
/// database files 0600. Inside a closed directory nothing else is reachable:
/// not a layer's setuid binary, a container's upper directory, its
/// `config.json` or log, a volume or an attach socket. Returns what was
/// tightened, for the binary to say so.
pub fn secure_store(root: &Path, runroot: &Path) -> Result<Vec<saferoot::private::Tightened>> {
    use saferoot::private::{private_dir, private_existing_file};
    let mut changed = Vec::new();
    for dir in [root, runroot] {
        changed.extend(private_dir(dir).ctx(|| format!("create {}", dir.display()))?);
    }
    for name in ["berth.db", "berth.db-wal", "berth.db-shm"] {
        let p = root.join(name);
        changed.extend(private_existing_file(&p).ctx(|| format!("chmod {}", p.display()))?);
    }
    Ok(changed)
}

/// Now, RFC 3339, UTC.
pub fn now() -> String {
    now_nanos()
}

/// 64 random hex digits.
pub fn random_id() -> String {
    let mut buf = [0u8; 32];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most len bytes into the buffer slice
        // it is given, which stays valid for the call.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += usize::try_from(n).unwrap_or(0);
        }
    }
    hex::encode(buf)
}

/// `State.Error` of a container whose init runs on after its monitor died.
pub const OUTPUT_LOST: &str = "the container's monitor died: its output since is lost";

/// In a container's directory while a `commit` has it paused: the
/// committing process's pid and start time.
const COMMIT_PAUSE: &str = "commit-pause";

fn forget_commit_pause(marker: &Path) -> Result<()> {
    match std::fs::remove_file(marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("remove {}", marker.display()))
        }
        _ => Ok(()),
    }
}

/// Whether `pid` is alive and is the process that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match berth_runtime::state::proc_stat(pid) {
        Some(st) => st.state != 'Z' && st.state != 'X' && (start == 0 || st.start_time == start),
        None => false,
    }
}

/// Our pid.
pub fn own_pid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// The start time of a process (0 if it is gone).
pub fn start_time(pid: i32) -> u64 {
    berth_runtime::state::proc_stat(pid).map_or(0, |s| s.start_time)
}

impl Engine {
    pub fn open(root: &Path, runroot: &Path) -> Result<Engine> {
        let images = ImageStore::open(root)?;
        let db = Db::open(root)?;
        let volumes = volumes::Volumes::open(root, &db)?;
        let networks = berth_network::Networks::open(db.connection(), root)?;
        std::fs::create_dir_all(root.join("containers"))
            .ctx(|| format!("create {}", root.join("containers").display()))?;
        // Each container's tree is made and removed whole: spread them (see
        // mark_topdir; on ext4 without a journal this took a quarter of a
        // `run --rm`'s CPU time).
        berth_image::store::mark_topdir(&root.join("containers"));
        Ok(Engine {
            root: root.to_path_buf(),
            runroot: runroot.to_path_buf(),
            db,
            images,
            volumes,
            networks,
        })
    }

    /// Returns freed memory to the kernel: SQLite's caches, then the
    /// allocator's free pages (a detached monitor's memory is what each
    /// container costs).
    pub fn release_memory(&self) {
        self.db.shrink_memory();
        self.images.shrink_memory();
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// The runtime library's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("ctr.log")
    }

    /// The container's snapshot over its image's layers.
    pub fn snapshot(&self, r: &Record) -> Result<Snapshot> {
        let img = self.images.resolve(&r.image_id)?;
        let layers: Vec<PathBuf> = img
            .layers
            .iter()
            .rev()
            .map(|c| self.images.layer_dir(c))
            .collect();
        Ok(Snapshot::prepare(
            &layers,
            &self.container_dir(&r.id).join("fs"),
        )?)
    }

    /// The image's config section (`config` of the image config JSON).
    pub fn image_config(&self, img: &Image) -> Result<Value> {
        let (_, c) = self.images.manifest_and_config(img)?;
        Ok(c.get("config").cloned().unwrap_or(Value::Null))
    }

    /// Creates a container from `cfg` (the image named in `cfg.image`,
    /// whose config fills what `cfg` leaves empty). Nothing is left behind
    /// when this fails.
    pub fn create(&mut self, mut cfg: ContainerConfig, name: Option<&str>) -> Result<Record> {
        let img = self.images.resolve(&cfg.image).map_err(|e| match e {
            berth_image::store::StoreError::NotFound(_) => Error::ImageNotFound(cfg.image.clone()),
            e => e.into(),
        })?;
        let ic = self.image_config(&img)?;
        merge_image_config(&mut cfg, &ic);
        if cfg.args.is_empty() {
            // docker's daemon words; nothing would run.
            return Err(Error::Invalid("No command specified".into()));
        }
        // docker's words when run or create names a network that is not there.
        self.validate_network(&cfg).map_err(|e| match e {
            Error::NoSuchNetwork(n) => Error::Invalid(format!("network {n} not found")),
            e => e,
        })?;
        // The image's VOLUMEs not covered by a mount get anonymous volumes.
        if let Some(vols) = ic["Volumes"].as_object() {
            for dest in vols.keys() {
                if !cfg.mounts.iter().any(|m| m.destination == *dest) {
                    initlayer::check_image_volume(dest)?;
                    cfg.mounts.push(config::Mount {
                        kind: "volume".into(),
                        destination: dest.clone(),
                        ..config::Mount::default()
                    });
                }
            }
        }
        let mut made = Vec::new();
        for m in cfg.mounts.iter_mut().filter(|m| m.kind == "volume") {
            let name = (!m.source.is_empty()).then_some(m.source.as_str());
            let existed = name.is_some_and(|n| self.volumes.get(n).is_ok());
            let v = match self
                .volumes
                .create(name, &std::collections::BTreeMap::new())
            {
                Ok(v) => v,
                Err(e) => {
                    self.drop_volumes(&made);
                    return Err(e);
                }
            };
            if !existed {
                made.push(v.name.clone());
            }
            m.source = v.name;
        }
        let id = random_id();
        let name = match name {
            Some(n) => {
                names::validate(n)?;
                n.to_string()
            }
            None => names::generate(|n| self.db.find(n).is_ok()),
        };
        if cfg.hostname.is_empty() && cfg.network == "host" {
            // docker: a container on the host's network has the host's name.
            cfg.hostname = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default();
        }
        if cfg.hostname.is_empty() {
            cfg.hostname = id[..12].to_string();
        }
        cfg.image_id = img.id.to_string();
        let record = Record {
            id: id.clone(),
            name,
            image_id: img.id.to_string(),
            config: cfg,
            created: now(),
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            exit_code: 0,
            started_at: String::new(),
            finished_at: String::new(),
            restart_count: 0,
            stopped_by_user: false,
            oom_killed: false,
            error: String::new(),
            health: None,
        };
        // The row first (it claims the name), then the files; on failure
        // both go, and the volumes made for it.
        if let Err(e) = self.db.insert(&record) {
            self.drop_volumes(&made);
            return Err(e);
        }
        if let Err(e) = self.prepare_files(&record) {
            let _ = std::fs::remove_dir_all(self.container_dir(&id));
            let _ = self.db.delete(&id);
            self.drop_volumes(&made);
            return Err(e);
        }
        for v in &made {
            self.db.event("volume", "create", v, &[("driver", "local")]);
        }
        self.db.container_event(&record, "create", &[]);
        Ok(record)
    }

    fn drop_volumes(&self, names: &[String]) {
        for n in names {
            let _ = self.volumes.remove(n);
        }
    }

    /// Containers whose mounts use the volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<Record>> {
        Ok(self
            .db
            .list()?
            .into_iter()
            .filter(|r| {
                r.config
                    .mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.source == name)
            })
            .collect())
    }

    /// `volume rm`: refused while a container uses the volume (with
    /// `force` too, as docker refuses).
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        if let Some(u) = self.volume_users(name)?.first() {
            return Err(Error::Invalid(format!(
                "remove {name}: volume is in use - [{}]",
                u.id
            )));
        }
        self.volumes.remove(name)?;
        self.db
            .event("volume", "destroy", name, &[("driver", "local")]);
        Ok(())
    }

    fn prepare_files(&self, r: &Record) -> Result<()> {
        let dir = self.container_dir(&r.id);
        saferoot::private::private_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        for m in &r.config.mounts {
            if m.kind == "bind" && m.create_source && !Path::new(&m.source).exists() {
                // Docker's `-v`: the host directory is made (mode 0755, owned
                // by root) when nothing is there; a dangling symlink there
                // is refused by create_dir_all like anything else.
                std::fs::create_dir_all(&m.source)
                    .ctx(|| format!("create the bind source {}", m.source))?;
            }
            if m.kind == "bind" && !Path::new(&m.source).exists() {
                return Err(Error::Invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                )));
            }
        }
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).ctx(|| format!("write {name}"))
        };
        write("hostname", &format!("{}\n", r.config.hostname))?;
        let extra = networking::extra_hosts(&r.config.extra_hosts)?;
        let hostname = if r.config.network == "host" {
            ""
        } else {
            r.config.hostname.as_str()
        };
        write(
            "hosts",
            &berth_network::files::hosts(&extra, None, hostname, &[]),
        )?;
        write("resolv.conf", &self.resolv_text(r, true))?;
        self.snapshot(r)?;
        Ok(())
    }

    /// The container's record, its state made truthful first.
    pub fn find(&self, key: &str) -> Result<Record> {
        let r = self.db.find(key)?;
        self.reconcile(r)
    }

    /// Every container, each reconciled.
    pub fn list(&self) -> Result<Vec<Record>> {
        self.db
            .list()?
            .into_iter()
            .map(|r| self.reconcile(r))
            .collect()
    }

    /// A row says a process is alive: check it. When both the container's
    /// init and its monitor are gone, the container is marked exited (its
    /// code is unknown: 255) and what the runtime left is cleaned up; a
    /// start cut short leaves the container created.
    pub fn reconcile(&self, mut r: Record) -> Result<Record> {
        if !r.status.is_active() {
            return Ok(r);
        }
        let monitor = alive(r.monitor_pid, r.monitor_start);
        if alive(r.pid, r.pid_start) {
            // Running on with nobody reading its output: what it prints
            // now is lost (and its exit will not be recorded), which `ps`,
            // `inspect` and `logs` say.
            if !monitor && r.monitor_pid > 0 && r.error.is_empty() {
                r.error = OUTPUT_LOST.to_string();
            }
            return Ok(r);
        }
        if monitor {
            return Ok(r);
        }
        let changed = if r.status == Status::Starting {
            self.db
                .mark_lost(&r, Status::Created, 0, "start was interrupted")?
        } else {
            self.db.mark_lost(
                &r,
                Status::Exited,
                255,
                "the container's monitor died; exit code unknown",
            )?
        };
        if changed {
            let _ = self.cleanup_runtime(&r);
        }
        self.db.get(&r.id)?.ok_or(Error::NoSuchContainer(r.id))
    }

    /// Deletes the runtime's container (killing what is left) and unmounts
    /// the rootfs.
    pub fn cleanup_runtime(&self, r: &Record) -> Result<()> {
        self.cleanup_runtime_only(&r.id)?;
        self.detach_network(r, true)?;
        let _ = std::fs::remove_file(attach::socket_path(&self.runroot, &r.id));
        if let Ok(s) = self.snapshot(r) {
            s.unmount()?;
        }
        Ok(())
    }

    /// `system check`: runtime state no active container accounts for
    /// (a `run`, `start` or build step killed half way: an init blocked on
    /// its start fifo, cgroups, a state directory) is removed, processes
    /// first. Containers of other stores, and ones whose creator still
    /// lives, are left alone. Returns what was removed.
    pub fn check_runtime(&self) -> Result<Vec<String>> {
        let root = self.runtime_root();
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", root.display())),
        };
        let mut removed = self.thaw_abandoned_commits()?;
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() {
                continue;
            }
            if id.starts_with(berth_runtime::state::StateDir::CREATING_PREFIX) {
                // Killed before its directory was complete: nothing but
                // the directory was made.
                if berth_runtime::state::StateDir::abandoned(&root, &id) {
                    std::fs::remove_dir_all(entry.path())
                        .ctx(|| format!("remove {}", entry.path().display()))?;
                    removed.push(format!("half-made runtime directory {id}"));
                }
                continue;
            }
            if id.starts_with('@') {
                continue;
            }
            let active = match self.db.get(&id)? {
                Some(r) => self.reconcile(r)?.status.is_active(),
                None => false,
            };
            if active {
                continue;
            }
            match berth_runtime::Container::load(&root, &id) {
                // Another store's (runroots may be shared), or one whose
                // creator still works on it (a start, a build step).
                Ok(c) if !c.state.bundle.starts_with(&self.root) || c.state.creator_alive() => {}
                Ok(c) => {
                    c.delete(true)?;
                    removed.push(format!("runtime state of {id}"));
                }
                Err(_) => {
                    if !berth_runtime::state::StateDir::abandoned(&root, &id) {
                        continue;
                    }
                    let cgroups = std::path::Path::new("/berth").join(&id);
                    berth_runtime::container::purge(&root, &id, &cgroups)?;
                    removed.push(format!("half-created runtime state of {id}"));
                }
            }
        }
        Ok(removed)
    }

    /// Containers paused by a `commit` that was killed before it thawed
    /// them: thawed (a pause the user asked for carries no marker and is
    /// kept). Returns what was done.
    fn thaw_abandoned_commits(&self) -> Result<Vec<String>> {
        let mut thawed = Vec::new();
        let dir = self.root.join("containers");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(thawed),
            Err(e) => return Err(e).ctx(|| format!("read {}", dir.display())),
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if self.killed_commit_pause(&id).is_none() {
                continue;
            }
            if let Some(r) = self.db.get(&id)? {
                let r = self.reconcile(r)?;
                if r.status == Status::Paused {
                    self.set_paused(&r, false)?;
                    thawed.push(format!("{} thawed (its commit was killed)", r.name));
                }
            }
            forget_commit_pause(&entry.path().join(COMMIT_PAUSE))?;
        }
        Ok(thawed)
    }

    /// The marker of a commit that paused container `id` (or was about to)
    /// and was killed.
    fn killed_commit_pause(&self, id: &str) -> Option<PathBuf> {
        let marker = self.container_dir(id).join(COMMIT_PAUSE);
        let owner = std::fs::read_to_string(&marker).ok()?;
        let mut it = owner.split_whitespace().map(|w| w.parse::<u64>().ok());
        let (pid, start) = (it.next().flatten(), it.next().flatten());
        let pid = pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        (!alive(pid, start.unwrap_or(0))).then_some(marker)
    }

    /// Deletes the runtime's container (what is left of its processes,
    /// cgroups, state), keeping the rootfs mounted for a restart.
    pub fn cleanup_runtime_only(&self, id: &str) -> Result<()> {
        if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), id) {
            c.delete(true)?;
        }
        Ok(())
    }

    /// `rmi`: removes a tag or an image, refusing to delete an image a
    /// container still uses (its layers are the container's rootfs), with
    /// or without `force`. Untagging one of several tags is always fine.
    pub fn remove_image(&mut self, name: &str, force: bool) -> Result<Vec<String>> {
        let img = self.images.resolve(name)?;
        let users = self.db.users_of_image(&img.id.to_string())?;
        if let Some(user) = users.first() {
            let is_tag = name
                .parse::<berth_image::Reference>()
                .is_ok_and(|r| img.tags.contains(&r.to_string()));
            if !(is_tag && img.tags.len() > 1) {
                let short = |s: &str| {
                    s.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>()
                };
                return Err(Error::Invalid(format!(
                    "conflict: unable to remove {name:?}{} - image {} is being used by container {}",
                    if force { " (cannot be forced)" } else { "" },
                    short(&img.id.to_string()),
                    short(user),
                )));
            }
        }
        let removed = self.images.remove(name, force)?;
        for line in &removed {
            // "Untagged: ref" and "Deleted: id", as rmi prints them.
            if let Some((what, subject)) = line.split_once(": ") {
                let action = if what == "Untagged" {
                    "untag"
                } else {
                    "delete"
                };
                self.db.event("image", action, subject, &[("name", name)]);
            }
        }
        Ok(removed)
    }

    /// Whether a container uses the image.
    pub fn image_in_use(&self, img: &Image) -> Result<bool> {
        Ok(!self.db.users_of_image(&img.id.to_string())?.is_empty())
    }

    /// `docker diff`: what the container changed in its image, as (kind,
    /// path) with kind `A`dded, `C`hanged or `D`eleted, sorted by path.
    pub fn changes(&self, r: &Record) -> Result<Vec<(char, String)>> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let snap = self.snapshot(r)?;
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::from("/")];
        while let Some(rel) = stack.pop() {
            let dir = snap.upper.join(rel.strip_prefix("/").unwrap_or(&rel));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = rel.join(e.file_name());
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                let inner = path.strip_prefix("/").unwrap_or(&path);
                let in_lower = snap
                    .lower
                    .iter()
                    .any(|l| l.join(inner).symlink_metadata().is_ok());
                // An overlay whiteout: a 0/0 character device.
                let kind = if m.file_type().is_char_device() && m.rdev() == 0 {
                    'D'
                } else if in_lower {
                    'C'
                } else {
                    'A'
                };
                out.push((kind, path.to_string_lossy().into_owned()));
                if m.is_dir() && kind != 'D' {
                    stack.push(path);
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        // Docker's init layer is not the container's change; nor is a
        // directory that only holds it.
        let init = |p: &str| {
            initlayer::INIT_PATHS
                .iter()
                .any(|i| p.strip_prefix('/') == Some(i))
        };
        // The directories above an init path, and those above anything
        // else: one pass, each entry's ancestors (a container with many
        // changes, say after apt-get install, must not cost n² here).
        let mut above_init = std::collections::HashSet::new();
        let mut above_other = std::collections::HashSet::new();
        for (_, q) in &out {
            let above = if init(q) {
                &mut above_init
            } else {
                &mut above_other
            };
            for a in Path::new(q).ancestors().skip(1) {
                above.insert(a.to_string_lossy().into_owned());
            }
        }
        let init_only: std::collections::HashSet<String> = out
            .iter()
            .filter(|(kind, p)| *kind == 'C' && above_init.contains(p) && !above_other.contains(p))
            .map(|(_, p)| p.clone())
            .collect();
        out.retain(|(_, p)| !init(p) && !init_only.contains(p));
        Ok(out)
    }

    /// `docker export`: the container's filesystem as a tar stream (its
    /// rootfs mounted for the while if it is not running).
    pub fn export(&self, r: &Record, out: impl std::io::Write) -> Result<()> {
        // The container's root as it sees it (a running container's rootfs
        // is mounted in its own namespace only), walked without following
        // links: a symlink it plants mid-walk leads nowhere outside.
        let root = cp::Root::container(self, r)?;
        cp::archive(&root, Path::new("/"), out)?;
        Ok(())
    }

    /// Resource usage from the container's cgroups.
    pub fn stats(&self, r: &Record) -> Result<berth_runtime::cgroups::stats::Stats> {
        let c = berth_runtime::Container::load(&self.runtime_root(), &r.id)?;
        let cg = c.state.cgroups.as_ref().ok_or_else(|| Error::State {
            id: r.name.clone(),
            status: r.status.to_string(),
            what: format!("container {} has no cgroups", r.name),
        })?;
        Ok(cg.stats())
    }

    /// `update`: new limits (applied now if it runs) and restart policy,
    /// kept for its next starts.
    pub fn update(
        &self,
        r: &Record,
        resources: &config::Resources,
        restart: Option<config::RestartPolicy>,
    ) -> Result<()> {
        let mut cfg = r.config.clone();
        let n = &mut cfg.resources;
        let set = |dst: &mut Option<i64>, v: Option<i64>| {
            if v.is_some() {
                *dst = v;
            }
        };
        set(&mut n.memory, resources.memory);
        set(&mut n.memory_swap, resources.memory_swap);
        set(&mut n.memory_reservation, resources.memory_reservation);
        set(&mut n.nano_cpus, resources.nano_cpus);
        set(&mut n.cpu_quota, resources.cpu_quota);
        set(&mut n.pids_limit, resources.pids_limit);
        if resources.cpu_shares.is_some() {
            n.cpu_shares = resources.cpu_shares;
        }
        if resources.cpu_period.is_some() {
            n.cpu_period = resources.cpu_period;
        }
        if resources.cpuset_cpus.is_some() {
            n.cpuset_cpus.clone_from(&resources.cpuset_cpus);
        }
        if resources.cpuset_mems.is_some() {
            n.cpuset_mems.clone_from(&resources.cpuset_mems);
        }
        if let Some(p) = restart {
            if cfg.auto_remove && p.name != "no" {
                return Err(Error::Invalid(
                    "cannot update the restart policy of a container started with --rm".into(),
                ));
            }
            cfg.restart = p;
        }
        if matches!(r.status, Status::Running | Status::Paused) {
            // Only what changed goes to the cgroups (the spec builder makes
            // the OCI form of it).
            let only = ContainerConfig {
                resources: resources.clone(),
                ..ContainerConfig::default()
            };
            let oci = spec::resources(&only);
            let oci: oci_spec::runtime::LinuxResources = serde_json::from_value(oci)
                .map_err(|e| Error::Invalid(format!("resources: {e}")))?;
            let mut c = berth_runtime::Container::load(&self.runtime_root(), &r.id)?;
            c.update(&oci)?;
        }
        self.db.set_config(&r.id, &cfg)
    }

    /// `commit`: the container's changes as a new layer on its image, with
    /// its config (env, cmd, entrypoint, ...) as the image's; paused while
    /// its upper directory is read if it runs and `pause` is set.
    pub fn commit(
        &mut self,
        r: &Record,
        changes: &[String],
        message: Option<&str>,
        author: Option<&str>,
        pause: bool,
        tags: &[berth_image::Reference],
    ) -> Result<Image> {
        let snap = self.snapshot(r)?;
        let layer =
            tempfile::tempfile_in(self.root.join("tmp")).ctx(|| "create a temp file".into())?;
        let paused = pause && r.status == Status::Running;
        let marker = self.container_dir(&r.id).join(COMMIT_PAUSE);
        if paused {
            // Who paused it, so that `system check` thaws a container whose
            // commit was killed before it could (nobody else would).
            let me = own_pid();
            std::fs::write(&marker, format!("{me} {}", start_time(me)))
                .ctx(|| format!("write {}", marker.display()))?;
            self.set_paused(r, true)?;
        }
        let skip: Vec<&Path> = initlayer::INIT_PATHS.iter().map(Path::new).collect();
        let diffed = berth_image::snapshot::diff_skipping(
            &snap.upper,
            std::io::BufWriter::new(&layer),
            &skip,
        );
        if paused {
            let now = self
                .db
                .get(&r.id)?
                .ok_or_else(|| Error::NoSuchContainer(r.id.clone()))?;
            self.set_paused(&now, false)?;
            let _ = std::fs::remove_file(&marker);
        }
        diffed?;
        let c = &r.config;
        let mut cc = serde_json::json!({
            "Env": c.env,
            "Cmd": c.cmd,
            "WorkingDir": c.working_dir,
            "User": c.user,
            "Labels": c.labels,
        });
        if !c.entrypoint.is_empty() {
            cc["Entrypoint"] = serde_json::json!(c.entrypoint);
        }
        if !c.stop_signal.is_empty() {
            cc["StopSignal"] = serde_json::json!(c.stop_signal);
        }
        if !c.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, Value> = c
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), serde_json::json!({})))
                .collect();
            cc["ExposedPorts"] = Value::Object(ports);
        }
        let base = self.images.resolve(&r.image_id)?;
        let info = berth_image::archive::CommitInfo {
            changes,
            message,
            author,
            container_config: Some(cc),
        };
        let img = berth_image::archive::commit(&mut self.images, &base, layer, &info, tags)?;
        self.db
            .container_event(r, "commit", &[("imageID", &img.id.to_string())]);
        Ok(img)
    }

    /// `top`: the host's `ps` limited to the container's processes.
    pub fn top(&self, r: &Record, ps_args: &[String]) -> Result<Vec<String>> {
        self.running_container(r)?;
        Ok(berth_runtime::Container::load(&self.runtime_root(), &r.id)?.ps_table(ps_args)?)
    }

    fn running_container(&self, r: &Record) -> Result<()> {
        if matches!(r.status, Status::Running | Status::Paused) {
            return Ok(());
        }
        Err(Error::State {
            id: r.name.clone(),
            status: r.status.to_string(),
            what: format!("Container {} is not running", r.id),
        })
    }

    /// Freezes (`pause`) or thaws (`unpause`) the container's processes.
    pub fn set_paused(&self, r: &Record, paused: bool) -> Result<()> {
        // A killed commit's marker would make `system check` thaw what the
        // user paused from now on.
        if let Some(marker) = self.killed_commit_pause(&r.id) {
            forget_commit_pause(&marker)?;
        }
        let (from, to, what) = if paused {
            (Status::Running, Status::Paused, "is not running")
        } else {
            (Status::Paused, Status::Running, "is not paused")
        };
        if r.status != from {
            return Err(Error::State {
                id: r.name.clone(),
                status: r.status.to_string(),
                what: match (from, r.status) {
                    (Status::Running, Status::Paused) => {
                        format!("Container {} is already paused", r.id)
                    }
                    (Status::Running, _) => format!("Container {} is not running", r.id),
                    _ => format!("Container {} {what}", r.id),
                },
            });
        }
        let c = berth_runtime::Container::load(&self.runtime_root(), &r.id)?;
        if paused {
            c.pause()?;
        } else {
            c.resume()?;
        }
        self.db.set_status(&r.id, to, Some(from))?;
        self.db
            .container_event(r, if paused { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// How long a container killed with SIGKILL may take to be recorded as
    /// exited (its monitor reaps it and writes the row) before stop and rm
    /// give up with an error instead of waiting forever.
    const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

    /// Ends the restart back-off of a container whose `stopped_by_user` the
    /// caller set: its monitor sees the flag within a step of the back-off
    /// and records the container exited instead of starting it again.
    /// Returns the settled record: exited, or (when the monitor had begun a
    /// new life before it looked) running, for the caller to stop.
    fn end_backoff(&self, id: &str) -> Result<Record> {
        self.poll_record(
            id,
            Some(Self::KILL_GRACE),
            |r| !matches!(r.status, Status::Restarting | Status::Starting),
            "its monitor did not end the restart back-off",
        )
    }

    /// Sends `sig` to the container's init. A container waiting to be
    /// restarted has no process: as Docker does, any signal then counts as
    /// the user stopping it, and it stays exited.
    pub fn kill(&self, r: &Record, sig: i32) -> Result<()> {
        if r.status == Status::Restarting {
            self.db.set_stopped_by_user(&r.id, true)?;
            let now = self.end_backoff(&r.id)?;
            self.db
                .container_event(r, "kill", &[("signal", &sig.to_string())]);
            if !now.status.is_active() {
                return Ok(());
            }
            return self.kill(&now, sig);
        }
        if !matches!(r.status, Status::Running | Status::Paused) || !alive(r.pid, r.pid_start) {
            return Err(Error::State {
                id: r.id.clone(),
                status: r.status.to_string(),
                what: format!("Container {} is not running", r.id),
            });
        }
        berth_runtime::signal::send(r.pid, sig).ctx(|| format!("signal {}", r.pid))?;
        self.db
            .container_event(r, "kill", &[("signal", &sig.to_string())]);
        Ok(())
    }

    /// Stops the container: its stop signal, then SIGKILL after `timeout`
    /// seconds; returns once the monitor recorded the exit.
    pub fn stop(&self, r: &Record, timeout: Option<u32>) -> Result<()> {
        self.db.set_stopped_by_user(&r.id, true)?;
        let settled;
        let r = if r.status == Status::Restarting {
            settled = self.end_backoff(&r.id)?;
            if !settled.status.is_active() {
                self.db.container_event(&settled, "stop", &[]);
                return Ok(());
            }
            &settled
        } else {
            r
        };
        if !matches!(
            r.status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            return Ok(());
        }
        let timeout = timeout.or(r.config.stop_timeout).unwrap_or(10);
        let sig = if r.config.stop_signal.is_empty() {
            libc::SIGTERM
        } else {
            berth_runtime::signal::parse_signal(&r.config.stop_signal)?
        };
        if r.status == Status::Paused {
            if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &r.id) {
                let _ = c.resume();
            }
        }
        if alive(r.pid, r.pid_start) {
            let _ = berth_runtime::signal::send(r.pid, sig);
            self.db
                .container_event(r, "kill", &[("signal", &sig.to_string())]);
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs(timeout.into());
            while alive(r.pid, r.pid_start) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if alive(r.pid, r.pid_start) {
                if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &r.id) {
                    let _ = c.kill(libc::SIGKILL, true);
                }
                let _ = berth_runtime::signal::send(r.pid, libc::SIGKILL);
                self.db.container_event(r, "kill", &[("signal", "9")]);
            }
        }
        self.wait_exited_within(&r.id, Some(Self::KILL_GRACE))?;
        self.db.container_event(r, "stop", &[]);
        Ok(())
    }

    /// Waits until the container is no longer active; returns its record.
    /// (`berth wait`: as long as it takes.)
    pub fn wait_exited(&self, id: &str) -> Result<Record> {
        self.wait_exited_within(id, None)
    }

    /// As [`Engine::wait_exited`], giving up after `limit` with an error
    /// that says what is stuck.
    fn wait_exited_within(&self, id: &str, limit: Option<std::time::Duration>) -> Result<Record> {
        self.poll_record(
            id,
            limit,
            |r| !r.status.is_active(),
            "its monitor did not record the exit after SIGKILL",
        )
    }

    /// Reads the container's record (reconciled with its processes) until
    /// `settled` says so, backing off from 2 to 50 ms; past `limit`, an
    /// error naming the container, its state and `stuck`.
    fn poll_record(
        &self,
        id: &str,
        limit: Option<std::time::Duration>,
        settled: impl Fn(&Record) -> bool,
        stuck: &str,
    ) -> Result<Record> {
        let deadline = limit.map(|l| std::time::Instant::now() + l);
        let mut delay = 2;
        loop {
            let r = self.reconcile(
                self.db
                    .get(id)?
                    .ok_or_else(|| Error::NoSuchContainer(id.into()))?,
            )?;
            if settled(&r) {
                return Ok(r);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() > d) {
                return Err(Error::State {
                    id: r.id.clone(),
                    status: r.status.to_string(),
                    what: format!(
                        "container {} is still {}: {stuck} (berth system check cleans up)",
                        r.name, r.status
                    ),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(delay));
            delay = (delay * 2).min(50);
        }
    }

    /// Removes a container: refused while it runs unless `force` (then it
    /// is killed first).
    pub fn remove(&self, r: &Record, force: bool, anonymous_volumes: bool) -> Result<()> {
        match self.remove_once(r, force, anonymous_volumes) {
            // The store's disk is full (this container filled it, likely):
            // its log (going anyway) and the store's reserve make room for
            // the database's writes, and removing the container frees more.
            Err(e) if e.is_disk_full() && (force || !r.status.is_active()) => {
                let freed = self.empty_logs(r) | berth_image::reserve::release(&self.root);
                if !freed {
                    return Err(e);
                }
                let r = self
                    .db
                    .get(&r.id)?
                    .ok_or(Error::NoSuchContainer(r.id.clone()))?;
                self.remove_once(&r, force, anonymous_volumes)
            }
            done => done,
        }
    }

    /// Empties a container's log files (truncated: its monitor may still
    /// hold them open, and a file unlinked but open frees nothing); whether
    /// there was anything in them.
    fn empty_logs(&self, r: &Record) -> bool {
        let log = self.log_path(&r.id);
        let mut freed = false;
        for n in 0..r.config.log.max_file.max(1) {
            let path = if n == 0 {
                log.clone()
            } else {
                berth_relay::jsonlog::rotated(&log, n)
            };
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                freed |= f.metadata().is_ok_and(|m| m.len() > 0) && f.set_len(0).is_ok();
            }
        }
        freed
    }

    fn remove_once(&self, r: &Record, force: bool, anonymous_volumes: bool) -> Result<()> {
        if r.status.is_active() {
            if !force {
                return Err(Error::State {
                    id: r.id.clone(),
                    status: r.status.to_string(),
                    what: format!(
                        "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                        r.name, r.status
                    ),
                });
            }
            self.db.set_stopped_by_user(&r.id, true)?;
            let settled;
            let r = if r.status == Status::Restarting {
                settled = self.end_backoff(&r.id)?;
                &settled
            } else {
                r
            };
            if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &r.id) {
                let _ = c.kill(libc::SIGKILL, true);
                // A paused container's processes die only once thawed
                // (Docker's rm -f removes paused containers too).
                if c.status() == berth_runtime::Status::Paused {
                    let _ = c.resume();
                }
            }
            if alive(r.pid, r.pid_start) {
                let _ = berth_runtime::signal::send(r.pid, libc::SIGKILL);
            }
            self.wait_exited_within(&r.id, Some(Self::KILL_GRACE))?;
        }
        self.cleanup_runtime(r)?;
        self.db.set_status(&r.id, Status::Removing, None)?;
        if let Ok(s) = self.snapshot(r) {
            s.remove()?;
        }
        let dir = self.container_dir(&r.id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::Io {
                    context: format!("remove {}", dir.display()),
                    source: e,
                });
            }
        }
        self.db.delete(&r.id)?;
        self.db.container_event(r, "destroy", &[]);
        if anonymous_volumes {
            for m in r.config.mounts.iter().filter(|m| m.kind == "volume") {
                let anonymous = self.volumes.get(&m.source).is_ok_and(|v| v.anonymous);
                if anonymous && self.volume_users(&m.source)?.is_empty() {
                    self.volumes.remove(&m.source)?;
                    self.db
                        .event("volume", "destroy", &m.source, &[("driver", "local")]);
                }
            }
        }
        Ok(())
    }
}

/// Fills what the user left empty from the image's config, as docker does:
/// `--entrypoint` replaces the image's entrypoint and drops its cmd; args
/// after the image replace its cmd.
pub fn merge_image_config(cfg: &mut ContainerConfig, ic: &Value) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let image_cmd = strings(&ic["Cmd"]);
    match cfg.entrypoint_override.take() {
        // `--entrypoint` replaces the image's and drops its cmd.
        Some(e) => cfg.entrypoint = e,
        None => {
            cfg.entrypoint = strings(&ic["Entrypoint"]);
            if cfg.cmd.is_empty() {
                cfg.cmd = image_cmd;
            }
        }
    }
    cfg.args = cfg
        .entrypoint
        .iter()
        .chain(cfg.cmd.iter())
        .cloned()
        .collect();
    // The user's variables first, then the image's that the user did not
    // set: docker's order in Config.Env (and in the process's environ).
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let mut env = std::mem::take(&mut cfg.env);
    let mut seen: std::collections::HashSet<String> = env.iter().map(|e| key(e)).collect();
    for e in strings(&ic["Env"]) {
        if seen.insert(key(&e)) {
            env.push(e);
        }
    }
    cfg.env = env;
    if cfg.working_dir.is_empty() {
        cfg.working_dir = ic["WorkingDir"].as_str().unwrap_or("").to_string();
    }
    if cfg.user.is_empty() {
        cfg.user = ic["User"].as_str().unwrap_or("").to_string();
    }
    if cfg.stop_signal.is_empty() {
        cfg.stop_signal = ic["StopSignal"].as_str().unwrap_or("").to_string();
    }
    if let Some(labels) = ic["Labels"].as_object() {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                cfg.labels.entry(k.clone()).or_insert_with(|| v.to_string());
            }
        }
    }
    if cfg.health.is_none() {
        if let Some(h) = ic.get("Healthcheck").filter(|h| h.is_object()) {
            let ns = |k: &str| h[k].as_u64().unwrap_or(0);
            cfg.health = Some(health::HealthConfig {
                test: strings(&h["Test"]),
                interval_ns: ns("Interval"),
                timeout_ns: ns("Timeout"),
                retries: u32::try_from(ns("Retries")).unwrap_or(0),
                start_period_ns: ns("StartPeriod"),
            });
        }
    }
    if let Some(ports) = ic["ExposedPorts"].as_object() {
        for p in ports.keys() {
            if !cfg.exposed_ports.contains(p) {
                cfg.exposed_ports.push(p.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_config_fills_the_gaps() {
        let ic = json!({"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "A=1"],
                        "WorkingDir": "/srv", "User": "www", "Labels": {"l": "v"}});
        let mut c = ContainerConfig {
            env: vec!["A=2".into()],
            ..Default::default()
        };
        merge_image_config(&mut c, &ic);
        assert_eq!(c.args, vec!["/bin/app", "--serve"]);
        // the user's variables first, then the image's it did not set (docker's order)
        assert_eq!(c.env, vec!["A=2", "PATH=/bin"]);
        assert_eq!((c.working_dir.as_str(), c.user.as_str()), ("/srv", "www"));
        let mut c = ContainerConfig {
            cmd: vec!["--once".into()],
            ..Default::default()
        };
        merge_image_config(&mut c, &ic);
        assert_eq!(c.args, vec!["/bin/app", "--once"]);
        let mut c = ContainerConfig {
            entrypoint_override: Some(vec!["sh".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &ic);
        assert_eq!(c.args, vec!["sh"], "--entrypoint drops the image's cmd");
    }

    #[test]
    fn ids_are_random_hex() {
        let a = random_id();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_id());
    }
}
