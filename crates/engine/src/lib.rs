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
//!
//! Front ends (the `berth` command line, and any other) drive it through
//! one call on [`Engine`] per verb, an options struct in and a typed report
//! or stream out: [`inspect`], [`logs`], [`events`], [`stats`],
//! [`lifecycle`] (stop, restart, kill, rm, pause, rename, wait, update,
//! top), [`changes`] (diff, export, commit), [`disk_usage`] (system df),
//! [`networks`]. A program that starts
//! detached containers calls [`monitor::serve_if_asked`] first in `main`.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]
// inspect.rs writes docker's HostConfig (some 70 fields) as one json!.
#![recursion_limit = "256"]

pub mod attach;
pub mod build;
pub mod changes;
pub mod config;
pub mod cp;
pub mod db;
pub mod disk_usage;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod health;
pub mod init;
pub mod initlayer;
pub mod inspect;
pub mod launch;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod networking;
pub mod networks;
pub mod pods;
pub mod prune;
pub mod readiness;
pub mod rootless;
pub mod rootless_net;
pub mod rootless_netns;
pub mod rootless_ports;
pub mod spec;
pub mod start;
pub mod stats;
pub mod stdio;
pub mod store_watch;
pub mod stream;
pub mod system_info;
pub mod trash;
mod tree_copy;
pub mod userns;
pub mod volumes;

use std::path::{Path, PathBuf};

use berth_image::snapshot::Snapshot;
use berth_image::store::{Image, ImageStore};
use serde_json::Value;

pub use config::ContainerConfig;
pub use db::{Db, Record, Status};
pub use error::{Error, ErrorKind, Result};

use crate::error::Context;

/// An open store: images and containers. Its parts are private so that
/// every front end goes through the same calls (one module per verb:
/// inspect, logs, stats, events, lifecycle, networks...), which keep the
/// database rows, the runtime's state and the event journal in step.
#[derive(Debug)]
pub struct Engine {
    root: PathBuf,
    /// Run state (the runtime's state dirs, console sockets): tmpfs.
    runroot: PathBuf,
    db: Db,
    images: ImageStore,
    volumes: volumes::Volumes,
    /// Networks, leases and published ports (tables of the same database).
    networks: berth_network::Networks,
}

/// Now, RFC 3339 with nanoseconds, UTC (berth's one clock:
/// [`berth_relay::clock`]).
pub fn now_nanos() -> String {
    berth_relay::clock::rfc3339_nanos()
}

/// Closes the store at `root` and the run state at `runroot` to other
/// users, checked at every start: both directories 0700 (created so, or
/// tightened when an older berth or an admin left them open) and the
/// database files 0600. Inside a closed directory nothing else is reachable:
/// not a layer's setuid binary, a container's upper directory, its
/// `config.json` or log, a volume or an attach socket. Returns what was
/// tightened, for the binary to say so.
///
/// A directory is only taken when it is berth's to take: missing, empty,
/// or holding what berth makes there (a store's `berth.db`, a run state's
/// `runtime`...). `--root /` or `--runroot /tmp` is refused before anything
/// in it is changed: closing a directory berth did not make (or writing a
/// store into it) would break whatever else lives there.
pub fn secure_store(root: &Path, runroot: &Path) -> Result<Vec<saferoot::private::Tightened>> {
    use saferoot::private::{private_dir, private_existing_file};
    /// What only berth makes at the top of a store and of a run state: any
    /// one of these sets, whole, marks the directory berth's. A store
    /// whose database was lost still has its blobs and layers (and is
    /// berth's to report damaged and rebuild); one recovered by hand as
    /// `system check` says (database and content moved aside) still has
    /// its containers directory and disk reserve.
    const STORE_MARKS: &[&[&str]] = &[
        &["berth.db"],
        &["blobs", "layers"],
        &["containers", "reserve"],
    ];
    const RUN_MARKS: &[&[&str]] = &[
        &["runtime"],
        &["attach"],
        &["dns"],
        &["pods"],
        &["network.lock"],
        &["netns"],
        &["netns.lock"],
        &["pause.pid"],
        &["pause.lock"],
    ];
    for (dir, marks, flag) in [
        (root, STORE_MARKS, "--root"),
        (runroot, RUN_MARKS, "--runroot"),
    ] {
        if !berths_to_take(dir, marks).ctx(|| format!("read {}", dir.display()))? {
            return Err(Error::InvalidOption(format!(
                "{} holds files berth did not make: give {flag} a new or empty directory (or one berth made)",
                dir.display()
            )));
        }
    }
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

/// Whether `dir` is berth's to take: holding all of one of the sets in
/// `marks` (what berth makes there; a stat each, the store's usual case
/// costs one), or else missing or empty.
fn berths_to_take(dir: &Path, marks: &[&[&str]]) -> std::io::Result<bool> {
    if marks
        .iter()
        .any(|set| set.iter().all(|m| dir.join(m).symlink_metadata().is_ok()))
    {
        return Ok(true);
    }
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
        Ok(mut entries) => Ok(entries.next().is_none()),
    }
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
        // One connection per command: the containers, volumes and networks
        // tables live in the same file as the images'.
        let db = Db::with_connection(images.connection());
        let volumes = volumes::Volumes::open(root, &db)?;
        let mut networks = berth_network::Networks::open(db.connection(), root)?;
        if saferoot::idmap::in_unprivileged_user_namespace() {
            // Rootless: the bridges are in the user's own network namespace.
            networks = networks.with_host_lock(rootless_netns::lock_path(runroot));
        }
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

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run state's directory (tmpfs).
    pub fn runroot(&self) -> &Path {
        &self.runroot
    }

    /// The image store (pull, build, save and load work on it directly).
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The image store, to add images to.
    pub fn images_mut(&mut self) -> &mut ImageStore {
        &mut self.images
    }

    /// The volume store (`volume create` and `volume prune` still use it
    /// directly).
    pub fn volumes(&self) -> &volumes::Volumes {
        &self.volumes
    }

    /// The network store (`system check` repairs it directly).
    pub fn networks(&self) -> &berth_network::Networks {
        // Rootless: what it repairs is in the user's network namespace.
        if let Err(e) = self.user_netns() {
            tracing::warn!("the rootless network namespace: {e}");
        }
        &self.networks
    }

    /// The container rows, for the launch path (run, start, exec, attach)
    /// until it moves into the engine; the other verbs have calls of their
    /// own.
    pub fn db(&self) -> &Db {
        &self.db
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

    /// Where the output of the container `r` is written: its log, or
    /// /dev/null with the `none` log driver.
    pub fn log_target(&self, r: &Record) -> PathBuf {
        match r.config.log.driver {
            config::LogDriver::None => PathBuf::from("/dev/null"),
            _ => self.log_path(&r.id),
        }
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
        // The daemon's checks of the mounts come before the image's lookup.
        for m in &cfg.mounts {
            m.validate().map_err(Error::InvalidOption)?;
        }
        let img = self.images.resolve(&cfg.image).map_err(|e| match e {
            berth_image::store::StoreError::NotFound(_) => Error::ImageNotFound(cfg.image.clone()),
            e => e.into(),
        })?;
        if !cfg.pod.is_empty() {
            self.join_pod(&mut cfg)?;
        }
        let ic = self.image_config(&img)?;
        merge_image_config(&mut cfg, &ic);
        if cfg.args.is_empty() {
            // docker's daemon words; nothing would run.
            return Err(Error::InvalidOption("No command specified".into()));
        }
        rootless::refuse_limits(&cfg)?;
        // docker's words when run or create names a network that is not there.
        self.validate_network(&cfg).map_err(|e| match e {
            Error::NoSuchNetwork(n) => Error::NetworkNotFound(n),
            e => e,
        })?;
        self.mounts_from(&mut cfg)?;
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
            // `--mount`'s volume-* options shape a volume it makes.
            let opts = m.volume_options.clone().unwrap_or_default();
            if let Err(e) = volumes::check_driver(&opts.driver) {
                self.drop_volumes(&made);
                return Err(e);
            }
            let v = match self
                .volumes
                .create_for_mount(name, &opts.labels, &opts.driver_options)
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
        let generated = name.is_none();
        let name = match name {
            Some(n) => names::container_name(n)?,
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
        let (mode, shares) = self.userns_of(&mut cfg)?;
        let mut record = Record::new(id.clone(), name, img.id.to_string(), cfg, now());
        // The row first (it claims the name), then the files; on failure
        // both go, and the volumes made for it. A generated name another
        // command claimed between our look and our insert (containers made
        // at once) is drawn again.
        let mut draws = 0;
        while let Err(e) = self
            .db
            .insert_with_ids(&mut record, mode, shares.as_deref())
        {
            match e {
                Error::NameInUse { .. } if generated && draws < 10 => {
                    draws += 1;
                    record.name = names::generate(|n| self.db.find(n).is_ok());
                }
                e => {
                    self.drop_volumes(&made);
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.prepare_files(&record) {
            let _ = std::fs::remove_dir_all(self.container_dir(&id));
            let _ = self.db.delete(&id);
            self.drop_volumes(&made);
            return Err(e);
        }
        for v in &made {
            self.db.volume_event("create", v);
        }
        self.db.container_event(&record, "create", &[]);
        Ok(record)
    }

    /// Resolves `--userns` (and its default) for a new container: records
    /// what was asked in `cfg`; returns the mode and the container whose
    /// namespace it shares (`--network/--pid/--ipc/--uts container:X` of a
    /// container with one).
    fn userns_of(&self, cfg: &mut ContainerConfig) -> Result<(userns::Mode, Option<String>)> {
        let mut mode = userns::Mode::parse(&cfg.userns)?;
        let explicit = !cfg.userns.is_empty();
        // --privileged means the host's root: docker and podman agree.
        if cfg.privileged && !explicit {
            mode = userns::Mode::Host;
        }
        let joined: Vec<&str> = [&cfg.network, &cfg.pid_mode, &cfg.ipc_mode, &cfg.uts_mode]
            .iter()
            .filter_map(|m| m.strip_prefix("container:"))
            .collect();
        let mut shares = None;
        if !cfg.pod.is_empty() {
            // A pod's namespaces belong to the pod's user namespace (or the
            // host's): its members run in that one. One in the host's
            // (--userns=host, --privileged) may still join the pod's other
            // namespaces: the host's root holds every capability there.
            let pod = self.pod_find(&cfg.pod)?;
            mode = match pod.config.id_map {
                Some(_) if mode == userns::Mode::Host => userns::Mode::Host,
                Some(m) => {
                    shares = Some(pod.id.clone());
                    cfg.id_map = Some(m);
                    userns::Mode::Private { size: m.size }
                }
                None if mode != userns::Mode::Host && explicit => {
                    return Err(Error::UserNamespace(format!(
                        "pod {} is in the host's user namespace, which its members share; \
                         use --userns=host, or create the pod with --userns=auto",
                        pod.name
                    )));
                }
                None => userns::Mode::Host,
            };
        } else if let Some(other) = joined.first() {
            // Another container's namespaces belong to its user namespace:
            // this one joins that too (its own would have no rights there).
            let o = self.find(other)?;
            mode = match o.config.id_map {
                Some(_) => {
                    shares = Some(o.id.clone());
                    cfg.id_map = o.config.id_map;
                    userns::Mode::Private {
                        size: o.config.id_map.map_or(0, |m| m.size),
                    }
                }
                None => userns::Mode::Host,
            };
        }
        if mode != userns::Mode::Host {
            userns::refuse_host_only(cfg, explicit)?;
            if !explicit && userns::wants_host(cfg) {
                mode = userns::Mode::Host;
            }
        }
        // Shown by inspect as `HostConfig.UsernsMode`: what was asked, ""
        // for the host's default (as docker shows it, whichever namespace
        // the default turned out to be); the namespace itself is `id_map`.
        cfg.userns = match explicit {
            true => mode.recorded(),
            false => String::new(),
        };
        if mode == userns::Mode::Host {
            cfg.id_map = None;
        }
        Ok((mode, shares))
    }

    /// `--volumes-from`: the volumes and binds of each container named, in
    /// their own mode or all `ro`/`rw`; a destination the container
    /// mounts itself keeps its own mount (docker's order).
    fn mounts_from(&self, cfg: &mut ContainerConfig) -> Result<()> {
        for from in cfg.volumes_from.clone() {
            let (key, mode) = match from.split_once(':') {
                None => (from.as_str(), None),
                Some((k, "ro")) => (k, Some(true)),
                Some((k, "rw")) => (k, Some(false)),
                Some((_, m)) => return Err(Error::InvalidOption(format!("invalid mode: {m}"))),
            };
            let other = self.find(key)?;
            for m in &other.config.mounts {
                if !matches!(m.kind.as_str(), "volume" | "bind")
                    || cfg.mounts.iter().any(|o| o.destination == m.destination)
                {
                    continue;
                }
                let mut m = m.clone();
                // docker's: a mount read-only in the other stays so.
                if let Some(ro) = mode {
                    m.read_only |= ro;
                }
                // The source exists: it is the other container's.
                m.create_source = false;
                cfg.mounts.push(m);
            }
        }
        Ok(())
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
            .filter(|r| r.config.uses_volume(name))
            .collect())
    }

    /// `volume rm`: refused while a container uses the volume (with
    /// `force` too, as docker refuses).
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        if let Some(u) = self.volume_users(name)?.first() {
            return Err(Error::InUse(format!(
                "remove {name}: volume is in use - [{}]",
                u.id
            )));
        }
        self.volumes.remove(name)?;
        self.db.volume_event("destroy", name);
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
                return Err(Error::InvalidOption(format!(
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
        self.release_volume_mounts(r);
        Ok(())
    }

    /// Unmounts the options mounts (`volume create --opt`) of `r`'s volumes
    /// that no other running container uses, as Docker's local driver
    /// unmounts at the last user's stop. Best effort: a mount left here is
    /// taken down by `volume rm`.
    fn release_volume_mounts(&self, r: &Record) {
        for m in r.config.mounts.iter().filter(|m| m.kind == "volume") {
            if self.volumes.options(&m.source).is_empty() {
                continue;
            }
            let busy = self.volume_users(&m.source).is_ok_and(|users| {
                // A starting one has no pid yet but may have mounted it.
                users.iter().any(|u| u.id != r.id && u.status.is_active())
            });
            if !busy {
                let _ = self.volumes.unmount(&m.source);
            }
        }
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
        // Removed containers' files whose sweep was killed, or never ran.
        if trash::has_litter(&self.root) {
            let n = trash::sweep(&self.root)?;
            if n > 0 {
                removed.push(format!("files of {n} removed containers left in the trash"));
            }
        }
        for id in userns::free_leaked(&self.db.connection())? {
            removed.push(format!(
                "user namespace ids held for the gone container {id}"
            ));
        }
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

    /// The delete of [`Engine::cleanup_runtime_only`], of a runtime
    /// container the caller loaded already, for a container about to be
    /// removed with its files trashed ([`Engine::remove_to_trash`]): the
    /// runtime's state directory goes to the store's trash too, when it
    /// is on the store's file system, and with it the removal of the
    /// container's cgroups when nothing can be left in them (see
    /// `Container::delete_moving_state_and_cgroups`; [`trash::sweep`]
    /// removes them).
    pub fn delete_runtime_to_trash(&self, c: berth_runtime::Container) -> Result<()> {
        let slot = trash::slot(&self.root, &format!("{}.runtime", c.state.id))?;
        if c.delete_moving_state_and_cgroups(true, &slot)?.1 {
            trash::moved_in();
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
            // One of several references goes: the image stays.
            let is_reference = name.parse::<berth_image::Reference>().is_ok_and(|r| {
                img.tags.contains(&r.to_string())
                    || r.digest
                        .as_ref()
                        .is_some_and(|d| img.digests.contains(&format!("{}@{d}", r.name())))
            });
            if !(is_reference && img.tags.len() + img.digests.len() > 1) {
                let short = |s: &str| {
                    s.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>()
                };
                let (image, container) = (short(&img.id.to_string()), short(user));
                // docker's words; a forced removal docker would do (the
                // container keeps its layers there) berth cannot: the
                // image's layers are the container's rootfs.
                let running = self.db.get(user)?.is_some_and(|r| {
                    matches!(
                        r.status,
                        db::Status::Running | db::Status::Paused | db::Status::Restarting
                    )
                });
                return Err(Error::InUse(if force {
                    format!(
                        "conflict: unable to remove {name:?} (cannot be forced) - image {image} is being used by container {container}"
                    )
                } else if is_reference {
                    format!(
                        "conflict: unable to remove repository reference {name:?} (must force) - container {container} is using its referenced image {image}"
                    )
                } else if running {
                    format!(
                        "conflict: unable to delete {image} (cannot be forced) - image is being used by running container {container}"
                    )
                } else {
                    format!(
                        "conflict: unable to delete {image} (must be forced) - image is being used by stopped container {container}"
                    )
                }));
            }
        }
        let removed = self.images.remove(name, force)?;
        for line in &removed {
            // "Untagged: ref" and "Deleted: id", as rmi prints them.
            if let Some((what, subject)) = line.split_once(": ") {
                // The layers deleted with the image have no event.
                if what == "Deleted" && subject != img.id.to_string() {
                    continue;
                }
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
