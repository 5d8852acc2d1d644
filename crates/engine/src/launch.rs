//! The launcher: the one way this crate starts a container process.
//!
//! A container's init (run, start, each restart, a build's RUN step) is
//! created from a typed spec handed to the runtime in memory; a process in
//! a running container (exec, a health check) from a typed process. Their
//! stdio is always owned descriptors that the runtime puts on the child's
//! 0, 1 and 2 ([`crate::stdio::Pipes`]), never ours, and nothing is dup'd
//! over this process's own descriptors. `config.json` is still written
//! beside the container, for people and for `berth-runtime`, but nothing
//! reads it back on the way.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_runtime::{Container, CreateOptions, ExecOptions, ExecOutcome, Stdio};
use oci_spec::runtime::{Process, Spec};

use crate::error::{Context, Error, Result};

/// A container's root file system as the launcher hands it over.
#[derive(Debug)]
pub struct Rootfs {
    /// The overlay as a detached mount for the runtime's init to attach
    /// (see Snapshot::mount_detached); None when it is mounted on the host
    /// at the snapshot's `merged` (a kernel without the new mount API).
    pub detached: Option<OwnedFd>,
    /// Where this process reads the container's files before it starts
    /// (users, mount points, volume contents): through the descriptor, or
    /// at `merged`.
    pub lookup: PathBuf,
}

/// Mounts `snap` for a launch. `host_mounted` remembers across a
/// container's lives (restarts) whether the kernel needed the host mount:
/// None the first time (a host mount left by an earlier life or a killed
/// command is taken down first), then the answer. `disposable`: the
/// container's changes go with it (`--rm`), so its overlay need not be
/// synced to disk when it ends (see Snapshot::mount_detached_disposable).
/// `id_map`: the container's own user namespace, whose mapping the layers
/// are seen through (None: the host's).
pub fn mount_rootfs(
    snap: &berth_image::snapshot::Snapshot,
    host_mounted: &mut Option<bool>,
    disposable: bool,
    id_map: Option<&crate::userns::IdMap>,
) -> Result<Rootfs> {
    if let Some(m) = id_map {
        // A user namespace of its own: layers seen through its mapping,
        // never mounted on the host (see Snapshot::mount_detached_idmapped).
        if host_mounted.is_none() {
            snap.unmount()?;
        }
        *host_mounted = Some(false);
        let ns = m.layer_namespace()?;
        let fd = match disposable {
            true => snap.mount_detached_idmapped_disposable(ns.as_fd())?,
            false => snap.mount_detached_idmapped(ns.as_fd())?,
        };
        let lookup = PathBuf::from(saferoot::fd_path(&fd));
        return Ok(Rootfs {
            detached: Some(fd),
            lookup,
        });
    }
    let detach = || match disposable {
        true => snap.mount_detached_disposable(),
        false => snap.mount_detached(),
    };
    let detached = match host_mounted {
        // Still mounted from the first life.
        Some(true) => None,
        Some(false) => detach()?,
        None => {
            snap.unmount()?;
            let d = detach()?;
            if d.is_none() {
                snap.mount()?;
            }
            *host_mounted = Some(d.is_none());
            d
        }
    };
    let lookup = match &detached {
        Some(fd) => PathBuf::from(saferoot::fd_path(fd)),
        None => snap.merged.clone(),
    };
    Ok(Rootfs { detached, lookup })
}

/// A container's init to create.
#[derive(Debug)]
pub struct Init {
    pub id: String,
    /// The container's directory: `config.json` is written there.
    pub bundle: PathBuf,
    pub spec: Spec,
    /// Without a terminal, the init's stdio; with one, /dev/null that the
    /// terminal replaces.
    pub stdio: Stdio,
    /// The rootfs as a detached mount for the init to attach (see
    /// [`CreateOptions::rootfs_mount`]); None when it is mounted on the
    /// host at the spec's root path.
    pub rootfs: Option<OwnedFd>,
    /// Where the runtime sends the terminal's master (`tty`).
    pub console_socket: Option<PathBuf>,
    /// The init brings up `lo` in its new network namespace
    /// ([`CreateOptions::loopback_up`]).
    pub loopback_up: bool,
}

/// Creates the container under the runtime root; it waits on its exec fifo
/// for [`Container::start`].
///
/// The caller must be single-threaded: the runtime forks.
pub fn create(runtime_root: &Path, init: Init) -> Result<Container> {
    write_config(&init.bundle, &init.spec)?;
    let opts = CreateOptions {
        id: init.id,
        bundle: init.bundle,
        spec: Some(init.spec),
        stdio: Some(init.stdio),
        root: runtime_root.to_path_buf(),
        console_socket: init.console_socket,
        pid_file: None,
        no_pivot: false,
        preserve_fds: 0,
        rootfs_mount: init.rootfs.as_ref().map(AsRawFd::as_raw_fd),
        loopback_up: init.loopback_up,
    };
    let created = Container::create(opts);
    // The init attached it (or failed): our descriptor goes.
    drop(init.rootfs);
    Ok(created?)
}

/// A process to start in a running container.
#[derive(Debug)]
pub struct Exec {
    pub process: Process,
    /// Its stdio; None with a terminal (`console_socket` then).
    pub stdio: Option<Stdio>,
    pub console_socket: Option<PathBuf>,
}

/// Starts `p` in `container`; returns its host pid once it runs (the
/// caller waits for it: it is our child).
///
/// The caller must be single-threaded: the runtime forks.
pub fn exec(container: &Container, p: Exec) -> Result<i32> {
    let outcome = container.exec(ExecOptions {
        process: p.process,
        console_socket: p.console_socket,
        pid_file: None,
        // Waited for by the caller (a relay, a health check's poll loop),
        // never by the runtime.
        detach: true,
        preserve_fds: 0,
        stdio: p.stdio,
    })?;
    match outcome {
        ExecOutcome::Detached(pid) => Ok(pid),
        ExecOutcome::Exited(_) => Err(Error::Process(
            "the runtime waited for a detached process".into(),
        )),
    }
}

/// Writes `config.json` in `dir`: the spec carries the container's
/// environment (build arguments, tokens), so for root's eyes only.
fn write_config(dir: &Path, spec: &Spec) -> Result<()> {
    let text = serde_json::to_vec(spec).map_err(|source| Error::Encode {
        what: "spec",
        source,
    })?;
    saferoot::private::write_private_file(&dir.join("config.json"), &text)
        .ctx(|| "write config.json".into())
}
