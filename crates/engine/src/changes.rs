//! What a container changed in its image: `diff` lists it, `export`
//! archives the container's whole tree, `commit` makes an image of the
//! changes.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_image::store::Image;
use serde_json::Value;

use crate::error::Context;
use crate::{
    cp, initlayer, own_pid, start_time, Engine, Error, Record, Result, Status, COMMIT_PAUSE,
};

/// `commit`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CommitOptions {
    /// Dockerfile instructions applied to the image's config
    /// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR).
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub author: Option<String>,
    /// Freeze a running container while its changes are read (docker's
    /// default: true).
    pub pause: bool,
    /// Names for the new image.
    pub tags: Vec<berth_image::Reference>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            changes: Vec::new(),
            message: None,
            author: None,
            pause: true,
            tags: Vec::new(),
        }
    }
}

/// What a change in a container's filesystem is (`diff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// Docker's letter: A, C or D.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One path the container changed in its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute, as the container sees it.
    pub path: String,
}

impl Engine {
    /// What the container changed in its image, sorted by path.
    pub fn container_diff(&self, key: &str) -> Result<Vec<Change>> {
        let r = self.find(key)?;
        Ok(self
            .changes(&r)?
            .into_iter()
            .map(|(kind, path)| Change {
                kind: match kind {
                    'A' => ChangeKind::Added,
                    'D' => ChangeKind::Deleted,
                    _ => ChangeKind::Changed,
                },
                path,
            })
            .collect())
    }

    /// The container's filesystem as a tar stream into `out`.
    pub fn container_export(&self, key: &str, out: impl Write) -> Result<()> {
        let r = self.find(key)?;
        self.export(&r, out)
    }

    /// A new image from the container's changes over its image.
    pub fn container_commit(&mut self, key: &str, opts: &CommitOptions) -> Result<Image> {
        let r = self.find(key)?;
        self.commit(
            &r,
            &opts.changes,
            opts.message.as_deref(),
            opts.author.as_deref(),
            opts.pause,
            &opts.tags,
        )
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
}
