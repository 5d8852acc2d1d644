//! What the runtime remembers about a container between commands: one
//! directory per container under the runtime root, holding `state.json` and,
//! until `start`, the `exec.fifo` the init waits on.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// The lifecycle status of a container, as the OCI spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The persisted record of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// Host pid of the container's init; 0 while creating.
    pub pid: i32,
    /// Start time of the init in clock ticks since boot (field 22 of
    /// `/proc/<pid>/stat`), so a recycled pid is not mistaken for the init.
    pub pid_start_time: u64,
    /// The runtime process that created the container; while it lives, a
    /// container marked `creating` is really being created.
    #[serde(default)]
    pub creator_pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// True until the init has finished setting up.
    #[serde(default)]
    pub creating: bool,
    /// The config the container was created from.
    pub config: Spec,
    /// The container's cgroups, once made.
    #[serde(default)]
    pub cgroups: Option<crate::cgroups::Manager>,
    /// A container without a mount namespace mounts in the host's, on a
    /// bind of its rootfs: this is the mount id that was at the rootfs
    /// before, so that `delete` takes down the container's and no other.
    #[serde(default)]
    pub host_mounts_below: Option<u64>,
}

/// runc's `state` output: what clients such as podman and containerd parse.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReport<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

/// Checks a container id the way runc does, so an id can never name a path
/// outside the runtime root.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// Creates the runtime root 0700, or tightens an existing one that other
/// users could enter (its state files carry every container's spec, and
/// its console sockets give a shell in the container); returns what was
/// tightened, for the binary to say so.
pub fn secure_root(root: &Path) -> Result<Option<saferoot::private::Tightened>> {
    saferoot::private::private_dir(root).ctx(|| format!("create runtime root {}", root.display()))
}

/// The directory of one container under the runtime root.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub const FIFO: &'static str = "exec.fifo";
    pub const STATE: &'static str = "state.json";
    const CREATOR: &'static str = "creator";
    /// The init's pid once created: see [`StateDir::record_init`].
    const INIT: &'static str = "init";
    /// Directories being made by [`StateDir::create`] (no id starts with
    /// '@'); [`StateDir::abandoned`] tells when one is left over.
    pub const CREATING_PREFIX: &'static str = "@creating-";

    /// True for a container directory (or one still being made, named
    /// with [`StateDir::CREATING_PREFIX`]) that holds no state yet and
    /// whose creator (recorded at creation) is gone, or, without that
    /// record (made by an older berth), that is older than a minute: what
    /// a create killed before it wrote its state leaves behind.
    pub fn abandoned(root: &Path, name: &str) -> bool {
        let path = root.join(name);
        if path.join(Self::STATE).exists() {
            return false;
        }
        let creator = fs::read_to_string(path.join(Self::CREATOR))
            .ok()
            .and_then(|t| {
                let mut f = t.split_whitespace();
                Some((
                    f.next()?.parse::<i32>().ok()?,
                    f.next()?.parse::<u64>().ok()?,
                ))
            })
            .or_else(|| {
                // `@creating-ID-PID-START`: from its name.
                let rest = name.strip_prefix(Self::CREATING_PREFIX)?;
                let mut f = rest.rsplitn(3, '-');
                let start = f.next()?.parse::<u64>().ok()?;
                let pid = f.next()?.parse::<i32>().ok()?;
                f.next()?;
                Some((pid, start))
            });
        match creator {
            Some((pid, start)) => !proc_stat(pid)
                .is_some_and(|s| s.start_time == start && s.state != 'Z' && s.state != 'X'),
            None => fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(60)),
        }
    }

    /// Creates the directory; fails if a container of that id exists.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        secure_root(root)?;
        let path = root.join(id);
        // Made complete under a name no id can have, then renamed into
        // place: the directory of an id always says who is creating it,
        // so one whose creator is gone is known to be abandoned.
        let me = std::process::id();
        let start = i32::try_from(me)
            .ok()
            .and_then(proc_stat)
            .map_or(0, |s| s.start_time);
        // The name says the creator too: killed before the record below is
        // written, the directory is still known to be abandoned (the kill
        // storm of crates/berth/tests/faults.rs left one there).
        let tmp = root.join(format!("{}{id}-{me}-{start}", Self::CREATING_PREFIX));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let made = fs::write(tmp.join(Self::CREATOR), format!("{me} {start}\n"))
            .ctx(|| format!("write {}", tmp.join(Self::CREATOR).display()));
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &path) {
            Ok(()) => Ok(StateDir { path }),
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
            {
                let _ = fs::remove_dir_all(&tmp);
                Err(Error::ContainerExists(id.to_string()))
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e).ctx(|| format!("create {}", path.display()))
            }
        }
    }

    /// Opens the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        if path.join(Self::STATE).exists() {
            Ok(StateDir { path })
        } else {
            Err(Error::ContainerNotFound(id.to_string()))
        }
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(Self::FIFO)
    }

    /// Writes state.json atomically: a crash leaves the old or the new file,
    /// never half of one.
    pub fn save(&self, state: &ContainerState) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(state).map_err(|e| Error::StateCorrupt {
            id: state.id.clone(),
            reason: e.to_string(),
        })?;
        // The state holds the whole spec (the environment): 0600.
        let mut f = saferoot::private::create_private_file(&tmp)
            .ctx(|| format!("write {}", tmp.display()))?;
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.path.join(Self::STATE)).ctx(|| format!("rename {}", tmp.display()))
    }

    /// Records that the container's init is set up and waits for `start`:
    /// its pid, written once `create` is done. The state itself is saved
    /// once, before the init is forked (with all a `delete` after a killed
    /// create needs: the spec and the cgroups); what is learnt later is
    /// these few bytes, not the whole spec serialized again. A record that
    /// is missing or cut short (a create killed while writing it) leaves
    /// the state `creating`, which [`ContainerState::status`] judges by its
    /// creator.
    pub fn record_init(&self, pid: i32, start_time: u64) -> Result<()> {
        let p = self.path.join(Self::INIT);
        fs::write(&p, format!("{pid} {start_time}\n")).ctx(|| format!("write {}", p.display()))
    }

    fn read_init(&self) -> Option<(i32, u64)> {
        let text = fs::read_to_string(self.path.join(Self::INIT)).ok()?;
        let line = text.strip_suffix('\n')?;
        let (pid, start) = line.split_once(' ')?;
        Some((pid.parse().ok()?, start.parse().ok()?))
    }

    pub fn load(&self, id: &str) -> Result<ContainerState> {
        let mut st = self.load_saved(id)?;
        if st.creating {
            if let Some((pid, start_time)) = self.read_init() {
                st.pid = pid;
                st.pid_start_time = start_time;
                st.creating = false;
            }
        }
        Ok(st)
    }

    fn load_saved(&self, id: &str) -> Result<ContainerState> {
        let p = self.path.join(Self::STATE);
        let data = fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ContainerNotFound(id.to_string()),
            _ => Error::Io {
                context: format!("read {}", p.display()),
                source: e,
            },
        })?;
        serde_json::from_slice(&data).map_err(|e| Error::StateCorrupt {
            id: id.to_string(),
            reason: e.to_string(),
        })
    }

    /// Renames the directory to `to`; false when it could not be (another
    /// file system, or anything else: the caller then removes it).
    pub fn move_to(&self, to: &Path) -> bool {
        fs::rename(&self.path, to).is_ok()
    }

    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove {}", self.path.display())),
        }
    }
}

/// What `/proc/<pid>/stat` says about a process that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    // The command name is in parentheses and may itself hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // fields[0] is field 3 (state); start time is field 22.
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

impl ContainerState {
    /// True if the init recorded in this state is still alive (not a zombie
    /// and not a recycled pid).
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_stat(self.pid) {
            Some(st) => st.start_time == self.pid_start_time && st.state != 'Z' && st.state != 'X',
            None => false,
        }
    }

    /// True while the process that created the container lives (the
    /// engine's monitor, a build, a runtime command still creating it).
    pub fn creator_alive(&self) -> bool {
        self.creator_pid > 0
            && proc_stat(self.creator_pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
    }

    /// The status, computed from the init process and the exec fifo.
    pub fn status(&self, dir: &StateDir) -> Status {
        if self.creating {
            return if self.creator_alive() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir.fifo().exists() {
            return Status::Created;
        }
        if self.cgroups.as_ref().is_some_and(|c| c.is_frozen()) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn report<'a>(&'a self, status: Status) -> StateReport<'a> {
        StateReport {
            oci_version: crate::OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// Lists the ids of the containers under a runtime root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).ctx(|| format!("read {}", root.display())),
    };
    for entry in entries.flatten() {
        if entry.path().join(StateDir::STATE).exists() {
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// The current time in RFC 3339 with nanoseconds, as runc writes `created`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Killed between making the directory and recording its creator: the
    /// name alone tells whether the creator lives.
    #[test]
    fn a_half_made_directory_is_judged_by_its_name() {
        let root = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = proc_stat(i32::try_from(me).unwrap()).unwrap().start_time;
        let mine = format!("{}x-{me}-{start}", StateDir::CREATING_PREFIX);
        let gone = format!("{}x-{me}-{}", StateDir::CREATING_PREFIX, start + 1);
        for n in [&mine, &gone] {
            fs::create_dir(root.path().join(n)).unwrap();
        }
        assert!(!StateDir::abandoned(root.path(), &mine));
        assert!(StateDir::abandoned(root.path(), &gone));
    }

    #[test]
    fn ids_that_name_paths_are_rejected() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "a-b_c.d+e", "0123456789abcdef"] {
            validate_id(good).unwrap();
        }
    }

    #[test]
    fn proc_stat_parses_names_with_parens() {
        let line = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        let st = parse_proc_stat(line).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 98765);
    }

    #[test]
    fn own_process_is_readable() {
        let st = proc_stat(std::process::id().cast_signed()).unwrap();
        assert!(st.start_time > 0);
    }

    /// The state is saved once, before the init exists; the init's pid is
    /// a record of its own, and a record cut short (a create killed while
    /// writing it) must not pass for a created container.
    #[test]
    fn the_init_record_completes_a_state_saved_while_creating() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "c1").unwrap();
        let st = ContainerState {
            id: "c1".into(),
            pid: 0,
            pid_start_time: 0,
            creator_pid: 0,
            bundle: PathBuf::from("/b"),
            rootfs: PathBuf::from("/b/rootfs"),
            created: now_rfc3339(),
            owner: String::new(),
            annotations: HashMap::new(),
            creating: true,
            config: crate::template::default_spec(false),
            cgroups: None,
            host_mounts_below: None,
        };
        dir.save(&st).unwrap();
        let loaded = dir.load("c1").unwrap();
        assert!(loaded.creating);
        assert_eq!(loaded.pid, 0);
        // Cut short: still creating (and stopped, its creator being gone).
        fs::write(dir.path.join(StateDir::INIT), "4242").unwrap();
        let loaded = dir.load("c1").unwrap();
        assert!(loaded.creating);
        assert_eq!(loaded.status(&dir), Status::Stopped);
        dir.record_init(4242, 77).unwrap();
        let loaded = dir.load("c1").unwrap();
        assert!(!loaded.creating);
        assert_eq!((loaded.pid, loaded.pid_start_time), (4242, 77));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let root = tempfile::tempdir().unwrap();
        StateDir::create(root.path(), "one").unwrap();
        let err = StateDir::create(root.path(), "one").unwrap_err();
        assert!(matches!(err, Error::ContainerExists(_)));
    }
}
