//! berth run by an ordinary user (rootless): test users made once per
//! machine (under a lock, idempotently) with or without subordinate id
//! ranges, and a [`RootlessBerth`] that runs berth as one of them with XDG
//! directories of its own in a temp dir (so each test has its own store,
//! run state and user namespace), cleaned up on drop.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A test user: name, uid, gid.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The tools the rootless tests need on the host, missing ones named.
pub fn missing_tools() -> Vec<&'static str> {
    [
        "runuser",
        "useradd",
        "usermod",
        "newuidmap",
        "newgidmap",
        "pasta",
    ]
    .into_iter()
    .filter(|t| !crate::snippet::installed(t))
    .collect()
}

/// True when a rootless test may go on: root (to make users) and the
/// tools. Otherwise says it was skipped, and fails under CI.
pub fn ready_or_skip(test: &str) -> bool {
    if !crate::root_or_skip(test) {
        return false;
    }
    let missing = missing_tools();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: missing {missing:?} (scripts/install-deps.sh), and CI is set"
    );
    eprintln!("skipped {test}: missing {missing:?}");
    false
}

/// The user `name`, made if missing (a home, no password); with
/// `subordinate`, given ranges of /etc/subuid and /etc/subgid if it has
/// none, without, left with none. Idempotent, under a machine-wide lock
/// (parallel tests make the same users).
pub fn ensure_user(name: &str, subordinate: bool) -> User {
    let base = crate::target_dir().join("berth-fixtures");
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join(".rootless-users.lock")).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the test users");
    if nix::unistd::User::from_name(name).unwrap().is_none() {
        let mut c = Command::new("useradd");
        c.args(["--create-home", "--shell", "/bin/sh"]);
        if !subordinate {
            // useradd gives new users ranges by default (login.defs).
            c.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        let st = c.arg(name).status().expect("run useradd");
        assert!(st.success(), "useradd {name}");
    }
    let has = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(':').next() == Some(name))
    };
    if subordinate && !(has("/etc/subuid") && has("/etc/subgid")) {
        // A free stretch above what useradd hands out by default.
        let start = 3_000_000 + 70_000 * u32::try_from(name.len()).unwrap();
        let range = format!("{start}-{}", start + 65_535);
        let st = Command::new("usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range, name])
            .status()
            .expect("run usermod");
        assert!(st.success(), "usermod --add-subuids {range} {name}");
    }
    if !subordinate {
        assert!(
            !has("/etc/subuid"),
            "{name} must have no subordinate ids for this test"
        );
    }
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    User {
        name: name.into(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

/// The first subordinate uid of `user` (/etc/subuid).
pub fn first_subuid(user: &User) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user.name.as_str())).then(|| f[1].parse().unwrap())
        })
        .expect("a subordinate range")
}

/// Opens /dev/net/tun to users, as Debian's udev rule does (mode 0666; the
/// kernel checks CAP_NET_ADMIN over the namespace, not the node's mode).
/// Some minimal hosts leave it 0600, where no rootless network stack works.
pub fn open_tun_to_users() {
    let p = Path::new("/dev/net/tun");
    if let Ok(m) = std::fs::metadata(p) {
        if m.mode() & 0o006 != 0o006 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
}

/// berth run as `user`, with XDG directories of its own under a temp dir.
#[derive(Debug)]
pub struct RootlessBerth {
    pub user: User,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl RootlessBerth {
    /// A fresh store for `user`; `bin` is the berth binary (which `user`
    /// must be able to run: the tests' target directory readable by all).
    pub fn new(user: &User, bin: &str) -> RootlessBerth {
        let dir = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        let b = RootlessBerth {
            user: user.clone(),
            bin: PathBuf::from(bin),
            dir,
        };
        let o = b.sh(&format!("test -x {}", b.bin.display()));
        assert!(
            o.status.success(),
            "{} cannot run {}: the target directory must be readable by all",
            user.name,
            b.bin.display()
        );
        b
    }

    /// The temp dir holding the XDG directories.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `$XDG_DATA_HOME`; the store is its `berth`.
    pub fn data_home(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// `$XDG_RUNTIME_DIR`; the run state is its `berth`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir().join("run")
    }

    fn as_user(&self) -> Command {
        let mut c = Command::new("timeout");
        c.args(["-k", "10", "300", "runuser", "-u", &self.user.name, "--"]);
        c.args([
            "env",
            "-i",
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        ]);
        c.arg(format!("HOME={}", self.dir().display()));
        c.arg(format!("XDG_DATA_HOME={}", self.data_home().display()));
        c.arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir().display()));
        c.arg(format!(
            "XDG_CONFIG_HOME={}",
            self.dir().join("config").display()
        ));
        c.current_dir(self.dir());
        c
    }

    /// `berth ARGS` as the user.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = self.as_user();
        c.arg(&self.bin).args(args);
        crate::output_via_files(&mut c)
    }

    /// `berth ARGS` as the user, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth {args:?} as {} failed: {}{}",
            self.user.name,
            crate::stdout(&o),
            crate::stderr(&o)
        );
        crate::stdout(&o)
    }

    /// A shell line as the user, `$BERTH` naming berth.
    pub fn sh(&self, line: &str) -> Output {
        let mut c = self.as_user();
        c.arg(format!("BERTH={}", self.bin.display()));
        c.args(["sh", "-c", line]);
        crate::output_via_files(&mut c)
    }

    /// Imports the busybox fixture as `name`.
    pub fn import_busybox(&self, name: &str) {
        let tar = crate::busybox_tar(self.dir());
        std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        self.ok(&["import", &tar.display().to_string(), name]);
    }

    /// The user's processes whose command lines name this store's
    /// directory (pasta, resolvers, port forwarders).
    pub fn processes_of_store(&self) -> Vec<i32> {
        let dir = self.dir().to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let owner = std::fs::metadata(e.path()).ok()?.uid();
                let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                (owner == self.user.uid && cmd.contains(&dir)).then_some(pid)
            })
            .collect()
    }

    /// `ARGS` run as root inside the user's rootless network namespace
    /// (where its user networks' bridges are), through the pause
    /// process's mount namespace, which holds it.
    pub fn in_user_netns(&self, args: &[&str]) -> Output {
        let pause = self.pause_pid().expect("a pause process").to_string();
        let netns = self.runtime_dir().join("berth/netns");
        let mut c = Command::new("nsenter");
        c.args(["-t", &pause, "-m", "--", "nsenter"])
            .arg(format!("--net={}", netns.display()))
            .arg("--")
            .args(args);
        crate::output_via_files(&mut c)
    }

    /// The pid of the user namespace's pause process, if one runs.
    pub fn pause_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.runtime_dir().join("berth/pause.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for RootlessBerth {
    fn drop(&mut self) {
        // Containers first (their monitors and pasta end with them), then
        // the pause process holding the namespace, then the files (owned
        // by the user's subordinate ids too: removed as root).
        let _ = self.sh("ids=$($BERTH ps -aq); [ -z \"$ids\" ] || $BERTH rm -f $ids");
        // What outlives containers: the rootless network namespace's
        // uplink (pasta) and the resolvers of networks a failed test left
        // members on, all with this store's paths on their command lines.
        let mut pids = self.processes_of_store();
        pids.extend(self.pause_pid());
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        crate::snippet::remove_test_dir(self.dir());
    }
}
