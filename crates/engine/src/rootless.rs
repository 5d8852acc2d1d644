//! berth for an ordinary user (rootless): the user's own store, run state
//! and configuration (XDG paths), and the user namespace every command of
//! that user runs in.
//!
//! The namespace is podman's: container root is the user's own uid, ids
//! 1..=N the user's subordinate ranges of /etc/subuid and /etc/subgid,
//! written by the setuid `newuidmap`/`newgidmap` (Debian's `uidmap`). One
//! pause process per user keeps it (with a mount namespace of its own, so
//! the overlays one command mounts are the ones the next sees); each
//! command joins both with `setns`, which costs microseconds, and the first
//! one of a session makes them under a lock, so parallel commands never
//! make two. Inside it the process is uid 0 with every capability over the
//! user's own ids, and the engine and runtime run as they do as root, less
//! what the kernel keeps to the host's root (cgroups not delegated, the
//! host's network namespace).

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

/// berth re-executed as a user's pause process (see the module's doc).
pub const PAUSE_ARG: &str = "__rootless-pause";

/// The pause process's pid, in the user's run state.
const PAUSE_PID: &str = "pause.pid";
/// Held while a command looks for the pause process and makes it.
const PAUSE_LOCK: &str = "pause.lock";

/// How long the pause process's steps may take before the command gives
/// up (they are a few process starts).
const SETUP_DEADLINE: Duration = Duration::from_secs(20);

/// Ids a container sees when the user has subordinate ranges: 0 (the user)
/// and 65,536 of the ranges' ids, podman's default.
const WANTED_IDS: u32 = 65_536;

/// What can go wrong making or joining the user's namespace.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// The user's home or runtime directory cannot be told.
    #[error("rootless berth: {0}")]
    Paths(String),
    /// A step on a file or directory of the user's.
    #[error("rootless berth: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `newuidmap` or `newgidmap` is missing or refused the ranges.
    #[error("rootless berth: {0}")]
    IdMap(String),
    /// The namespace could not be made or joined.
    #[error("rootless berth: {step}: {source}")]
    Namespace {
        step: String,
        source: nix::errno::Errno,
    },
    /// The pause process did not answer as it should.
    #[error("rootless berth: the user namespace's pause process: {0}")]
    Pause(String),
}

type Result<T> = std::result::Result<T, RootlessError>;

/// True when berth runs as an ordinary user (its effective uid on the
/// host is not 0) and has not joined its namespace yet.
pub fn wanted() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// Where a user's berth keeps things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The store: `$XDG_DATA_HOME/berth`, by default ~/.local/share/berth.
    pub root: PathBuf,
    /// Run state: `$XDG_RUNTIME_DIR/berth`, else /tmp/berth-run-UID (made
    /// 0700 and checked to be the user's, as podman's fallback is).
    pub runroot: PathBuf,
    /// Configuration: `$XDG_CONFIG_HOME/berth`, by default ~/.config/berth.
    pub config: PathBuf,
}

impl Paths {
    /// The paths for the user `uid` with the environment `env` (the
    /// process's, in berth).
    pub fn for_user(uid: u32, env: impl Fn(&str) -> Option<OsString>) -> Result<Paths> {
        let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = || -> Result<PathBuf> {
            if let Some(h) = set("HOME") {
                return Ok(h);
            }
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map(|u| u.dir)
                .ok_or_else(|| Self::no_home(uid))
        };
        let data = match set("XDG_DATA_HOME") {
            Some(d) => d,
            None => home()?.join(".local/share"),
        };
        let config = match set("XDG_CONFIG_HOME") {
            Some(d) => d,
            None => home()?.join(".config"),
        };
        let runroot = match set("XDG_RUNTIME_DIR") {
            Some(d) => d.join("berth"),
            None => PathBuf::from(format!("/tmp/berth-run-{uid}")),
        };
        Ok(Paths {
            root: data.join("berth"),
            runroot,
            config: config.join("berth"),
        })
    }

    fn no_home(uid: u32) -> RootlessError {
        RootlessError::Paths(format!(
            "uid {uid} has no home directory: set HOME or XDG_DATA_HOME"
        ))
    }
}

/// Makes `dir` (0700) if missing and checks it is a directory of `uid`'s
/// that no one else may enter: the fallback run state lives in /tmp, where
/// another user could have made it first.
pub fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    let io = |what, source| RootlessError::Io {
        what,
        path: dir.to_path_buf(),
        source,
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(io("create", e)),
    }
    let m = fs::symlink_metadata(dir).map_err(|e| io("stat", e))?;
    if !m.is_dir() || m.uid() != uid {
        return Err(RootlessError::Paths(format!(
            "{} is not a directory of uid {uid}'s: remove it or set XDG_RUNTIME_DIR",
            dir.display()
        )));
    }
    if m.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| io("chmod", e))?;
    }
    Ok(())
}

/// A user's subordinate ranges (start, count) in an /etc/subuid-style
/// text: the lines naming the user or their uid, in order.
pub fn subordinate_ranges(text: &str, name: &str, uid: u32) -> Vec<(u32, u32)> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?;
            if who != name && who != uid {
                return None;
            }
            let start: u32 = f.next()?.parse().ok()?;
            let count: u32 = f.next()?.parse().ok()?;
            Some((start, count.min(u32::MAX - start)))
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// The `newuidmap` arguments after the pid: container id 0 as `own`, then
/// ids from 1 on over `ranges`, at most [`WANTED_IDS`] of them.
pub fn map_arguments(own: u32, ranges: &[(u32, u32)]) -> Vec<String> {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut inside: u32 = 1;
    for &(start, count) in ranges {
        let left = WANTED_IDS.saturating_sub(inside - 1);
        if left == 0 {
            break;
        }
        let n = count.min(left);
        args.extend([inside.to_string(), start.to_string(), n.to_string()]);
        inside += n;
    }
    args
}

/// What [`enter`] did, for the front end to say.
#[derive(Debug, Default)]
pub struct Entered {
    /// Set when the namespace was made with the user's id alone (no
    /// subordinate ranges): the words to show, once per namespace made.
    pub warning: Option<String>,
}

/// Joins the user's namespace, making it (and its pause process) first if
/// there is none. Must be called while the process has one thread (the
/// kernel refuses `setns` into a user namespace otherwise), before any
/// other work; `runroot` is the user's run state (made here, 0700).
pub fn enter(runroot: &Path) -> Result<Entered> {
    let uid = nix::unistd::getuid().as_raw();
    private_dir(runroot, uid)?;
    let lock_path = runroot.join(PAUSE_LOCK);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| RootlessError::Io {
            what: "open",
            path: lock_path.clone(),
            source,
        })?;
    // Held until the namespace is joined: a second command waits here
    // while the first makes the pause process, then joins it.
    let _lock =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            RootlessError::Namespace {
                step: format!("lock {}", lock_path.display()),
                source: e,
            }
        })?;
    let mut entered = Entered::default();
    let pid = match live_pause(runroot, uid) {
        Some(pid) => pid,
        None => {
            let (pid, warning) = start_pause(uid)?;
            write_pid(runroot, pid)?;
            entered.warning = warning;
            pid
        }
    };
    join(pid)?;
    Ok(entered)
}

/// The pause process recorded in `runroot`, if it still runs as this
/// user's pause process (a pid file outlives a reboot or a kill).
fn live_pause(runroot: &Path, uid: u32) -> Option<i32> {
    let pid: i32 = fs::read_to_string(runroot.join(PAUSE_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let owner = fs::metadata(&proc).ok()?.uid();
    let cmdline = fs::read(proc.join("cmdline")).ok()?;
    let is_pause = cmdline
        .split(|b| *b == 0)
        .nth(1)
        .is_some_and(|a| a == PAUSE_ARG.as_bytes());
    (owner == uid && is_pause).then_some(pid)
}

fn write_pid(runroot: &Path, pid: i32) -> Result<()> {
    let path = runroot.join(PAUSE_PID);
    let tmp = runroot.join(format!("{PAUSE_PID}.tmp"));
    let io = |source| RootlessError::Io {
        what: "write",
        path: path.clone(),
        source,
    };
    fs::write(&tmp, format!("{pid}\n")).map_err(io)?;
    fs::rename(&tmp, &path).map_err(io)
}

/// Joins the user and mount namespaces of `pid`, and comes back to the
/// working directory (joining a mount namespace moves to its root).
fn join(pid: i32) -> Result<()> {
    let cwd = std::env::current_dir().ok();
    let open = |ns: &str| -> Result<OwnedFd> {
        let p = format!("/proc/{pid}/ns/{ns}");
        fs::File::open(&p)
            .map(OwnedFd::from)
            .map_err(|source| RootlessError::Io {
                what: "open",
                path: PathBuf::from(p),
                source,
            })
    };
    // Inside the namespace an unmapped owner of our binary cannot be told
    // from a mapped one: recorded here, it lets the runtime see that no
    // container of the user can write the binary, which then needs no
    // protected copy (berth_runtime::exe). Without it, the copy is made.
    if let Err(e) = berth_runtime::exe::joining_user_namespace() {
        tracing::debug!("rootless: the binary's owner not recorded: {e}");
    }
    // Both opened before either is joined: the mount namespace's file
    // stays reachable whatever /proc is once the first is joined.
    let user = open("user")?;
    let mnt = open("mnt")?;
    for (fd, flag, name) in [
        (&user, CloneFlags::CLONE_NEWUSER, "user"),
        (&mnt, CloneFlags::CLONE_NEWNS, "mount"),
    ] {
        nix::sched::setns(fd.as_fd(), flag).map_err(|source| RootlessError::Namespace {
            step: format!("join the {name} namespace of pause process {pid}"),
            source,
        })?;
    }
    if let Some(cwd) = cwd {
        // A directory the namespace cannot reach (none: it is a copy of the
        // host's tree) would leave the process at /, as setns put it.
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(())
}

/// Starts the pause process: berth re-executed with [`PAUSE_ARG`], which
/// makes its user namespace, waits for the maps written here, makes its
/// mount namespace and forks the process that stays. Returns that
/// process's pid, and a warning when the maps are the user's id alone.
fn start_pause(uid: u32) -> Result<(i32, Option<String>)> {
    let gid = nix::unistd::getgid().as_raw();
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let subuids = subordinate_ranges(&read("/etc/subuid"), &name, uid);
    let subgids = subordinate_ranges(&read("/etc/subgid"), &name, uid);
    let exe = std::env::current_exe().map_err(|e| RootlessError::Io {
        what: "find",
        path: PathBuf::from("/proc/self/exe"),
        source: e,
    })?;
    let mut child = Command::new(&exe)
        .arg(PAUSE_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| RootlessError::Io {
            what: "run",
            path: exe.clone(),
            source: e,
        })?;
    let outcome = (|| {
        let (Some(mut to), Some(mut from)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(RootlessError::Pause("no pipes".into()));
        };
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let deadline = Instant::now() + SETUP_DEADLINE;
        expect(&mut from, b'u', deadline, "make its user namespace")?;
        let warning = if subuids.is_empty() || subgids.is_empty() {
            single_id_maps(pid, uid, gid)?;
            Some(format!(
                "no subordinate ids for {name} in /etc/subuid and /etc/subgid: containers get the \
                 user's id alone, and images with files of other owners fail to unpack; add a \
                 range with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"
            ))
        } else {
            id_map_tool("newuidmap", pid, &map_arguments(uid, &subuids))?;
            id_map_tool("newgidmap", pid, &map_arguments(gid, &subgids))?;
            None
        };
        to.write_all(b"m")
            .map_err(|e| RootlessError::Pause(format!("write: {e}")))?;
        let mut line = String::new();
        read_until_eof(&mut from, &mut line, deadline)?;
        let stays: i32 = line.trim().parse().map_err(|_| {
            RootlessError::Pause(format!("expected its pid, read {:?}", line.trim()))
        })?;
        Ok((stays, warning))
    })();
    // The first process ends once it forked the one that stays (or fails).
    if outcome.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    outcome
}

/// `newuidmap PID ARGS...` (or newgidmap), with its words on failure.
fn id_map_tool(tool: &str, pid: i32, args: &[String]) -> Result<()> {
    let out = Command::new(tool)
        .arg(pid.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            RootlessError::IdMap(if e.kind() == std::io::ErrorKind::NotFound {
                format!("{tool} not found: install the uidmap package (apt-get install uidmap)")
            } else {
                format!("run {tool}: {e}")
            })
        })?;
    if !out.status.success() {
        return Err(RootlessError::IdMap(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The one mapping an unprivileged user may write without help: their
/// own uid and gid as 0 (setgroups denied first, as the kernel requires).
fn single_id_maps(pid: i32, uid: u32, gid: u32) -> Result<()> {
    for (file, text) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("0 {uid} 1\n")),
        ("gid_map", format!("0 {gid} 1\n")),
    ] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        fs::write(&path, text).map_err(|source| RootlessError::Io {
            what: "write",
            path,
            source,
        })?;
    }
    Ok(())
}

/// Waits (until `deadline`) for `byte` from the pause process.
fn expect(from: &mut ChildStdout, byte: u8, deadline: Instant, step: &str) -> Result<()> {
    let mut got = String::new();
    read_some(from, &mut got, 1, deadline)?;
    if got.as_bytes() != [byte] {
        return Err(RootlessError::Pause(format!("could not {step}")));
    }
    Ok(())
}

fn read_until_eof(from: &mut ChildStdout, into: &mut String, deadline: Instant) -> Result<()> {
    read_some(from, into, usize::MAX, deadline)
}

/// Reads until `want` bytes or end of file, polling so that a pause
/// process that hangs cannot hang the command past `deadline`.
fn read_some(
    from: &mut ChildStdout,
    into: &mut String,
    want: usize,
    deadline: Instant,
) -> Result<()> {
    let mut buf = [0u8; 64];
    while into.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        if ms == 0 {
            return Err(RootlessError::Pause("no answer before the deadline".into()));
        }
        let mut fds = [nix::poll::PollFd::new(
            from.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(RootlessError::Pause(format!("poll: {e}"))),
        }
        let n = from
            .read(&mut buf[..want.min(64)])
            .map_err(|e| RootlessError::Pause(format!("read: {e}")))?;
        if n == 0 {
            break;
        }
        into.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(())
}

/// berth re-executed as the pause process: `Some(exit code)` when `args`
/// ask for it. Talks to the command that started it over stdin and
/// stdout: 'u' once its user namespace exists, then waits for 'm' (the
/// maps are written), makes its mount namespace, forks the process that
/// stays and writes that one's pid.
pub fn serve_pause_if_asked(args: &[OsString]) -> Option<u8> {
    if args.get(1).is_none_or(|a| a != PAUSE_ARG) {
        return None;
    }
    Some(match pause_main() {
        Ok(()) => 0,
        Err(_) => 1,
    })
}

fn pause_main() -> std::result::Result<(), nix::errno::Errno> {
    use nix::errno::Errno;
    let mut stdout = std::io::stdout().lock();
    let mut stdin = std::io::stdin().lock();
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER)?;
    stdout.write_all(b"u").map_err(|_| Errno::EPIPE)?;
    stdout.flush().map_err(|_| Errno::EPIPE)?;
    let mut b = [0u8; 1];
    stdin.read_exact(&mut b).map_err(|_| Errno::EPIPE)?;
    if b != *b"m" {
        return Err(Errno::EPROTO);
    }
    // The maps are there: from here this process is root in the namespace.
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
    // SAFETY: this process has one thread; the child only calls
    // async-signal-safe functions (setsid, open, dup2, pause) and _exit.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors, which this
                    // process no longer uses (the pipes to the starter).
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            loop {
                // SAFETY: pause(2) only waits for a signal.
                unsafe { libc::pause() };
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            write!(stdout, "{child}").map_err(|_| Errno::EPIPE)?;
            stdout.flush().map_err(|_| Errno::EPIPE)?;
            Ok(())
        }
    }
}

/// `--userns` for a rootless container: it shares the user's namespace
/// (its root is the user, its other ids the user's subordinate ones), as
/// podman's default rootless mode does; a namespace nested per container
/// would need ranges of the user's own to hand out, not built yet.
pub fn userns_mode(s: &str) -> crate::Result<crate::userns::Mode> {
    match s {
        "" | "host" => Ok(crate::userns::Mode::Host),
        other => Err(crate::Error::InvalidOption(format!(
            "--userns={other} is not supported rootless yet: containers share the user's \
             namespace, where container root is the user (use --userns=host or leave it out)"
        ))),
    }
}

/// Refuses the resource limits of `cfg` where a rootless container cannot
/// have them: limits are cgroups, and an ordinary user can make cgroups
/// only in a cgroup v2 subtree delegated to them; under cgroup v1 (this
/// host's kind) there is no delegation at all. Refused rather than
/// ignored: a limit asked for and silently absent is a surprise later.
pub fn refuse_limits(cfg: &crate::ContainerConfig) -> crate::Result<()> {
    if !saferoot::idmap::in_unprivileged_user_namespace() {
        return Ok(());
    }
    // The limits' names as the spec spells them (memory, cpu, pids...).
    let asked = serde_json::to_value(crate::spec::resources(cfg)?).unwrap_or_default();
    let names: Vec<&str> = asked
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Ok(());
    }
    if berth_runtime::cgroups::host_layout() == berth_runtime::cgroups::Layout::Legacy {
        return Err(crate::Error::InvalidOption(format!(
            "resource limits ({}) are not supported rootless on this host: limits are cgroups, \
             and its cgroup v1 controllers cannot be delegated to an ordinary user (cgroup v2 \
             with a delegated subtree can); run without them, or as root",
            names.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_xdg_and_fall_back_to_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let p = Paths::for_user(1000, env(&[("HOME", "/home/a")])).unwrap();
        assert_eq!(p.root, Path::new("/home/a/.local/share/berth"));
        assert_eq!(p.config, Path::new("/home/a/.config/berth"));
        assert_eq!(p.runroot, Path::new("/tmp/berth-run-1000"));
        let p = Paths::for_user(
            1000,
            env(&[
                ("HOME", "/home/a"),
                ("XDG_DATA_HOME", "/d"),
                ("XDG_CONFIG_HOME", "/c"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ]),
        )
        .unwrap();
        assert_eq!(p.root, Path::new("/d/berth"));
        assert_eq!(p.config, Path::new("/c/berth"));
        assert_eq!(p.runroot, Path::new("/run/user/1000/berth"));
    }

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let t = "alice:100000:65536\n1001:300000:1000\nbob:200000:65536\nalice:400000:10\n";
        assert_eq!(
            subordinate_ranges(t, "alice", 1000),
            vec![(100_000, 65_536), (400_000, 10)]
        );
        assert_eq!(subordinate_ranges(t, "carol", 1001), vec![(300_000, 1000)]);
        assert!(subordinate_ranges(t, "dave", 1002).is_empty());
    }

    #[test]
    fn maps_give_root_to_the_user_and_65536_ids_after() {
        assert_eq!(
            map_arguments(1001, &[(100_000, 65_536)]),
            ["0", "1001", "1", "1", "100000", "65536"]
        );
        // Several short ranges are laid end to end; a long one is cut.
        assert_eq!(
            map_arguments(1001, &[(100_000, 10), (300_000, 1_000_000)]),
            ["0", "1001", "1", "1", "100000", "10", "11", "300000", "65526"]
        );
    }

    #[test]
    fn a_fallback_run_dir_of_another_user_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("run");
        let me = nix::unistd::getuid().as_raw();
        private_dir(&dir, me).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let e = private_dir(&dir, me + 1).unwrap_err().to_string();
        assert!(e.contains("is not a directory of uid"), "{e}");
    }
}
