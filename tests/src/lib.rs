//! Fixtures for integration tests that run real containers as root.
//!
//! - [`busybox_rootfs`]: a rootfs from Debian's `busybox-static` (applet
//!   links, /etc/passwd, /etc/group, /tmp), made once per test run and shared
//!   read-only by every test (test processes race for it under a file lock).
//! - [`Bundle`]: an OCI bundle in a temp dir: the runtime's default spec
//!   with the args, and whatever the test changes in the JSON.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod containerd;
pub mod core_pattern;
pub mod debian;
pub mod dockerd;
pub mod exe_attack;
pub mod http;
pub mod pty;
pub mod registry;
pub mod rootless;
pub mod search_index;
pub mod snippet;
pub mod store;

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The workspace's target directory (fixtures live under it, so `cargo
/// clean` removes them).
pub fn target_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A binary of the static release build (`scripts/build-release.sh`, which
/// the test script runs before the tests): the one to use where berth's
/// own binary must run inside a container (`--init`, or an attack that
/// gets it executed there). `BERTH_STATIC_DIR` points at another build
/// (how an attack test is run against a build without the protection).
pub fn static_bin(name: &str) -> PathBuf {
    find_static_bin(name).unwrap_or_else(|| {
        panic!(
            "no static {name} under {}/<host>/release: run scripts/build-release.sh",
            target_dir().display()
        )
    })
}

/// [`static_bin`] for a test about the release build itself: None, and
/// the test says it skipped, when that was not built (a failure when CI
/// is set: the test script builds it first).
pub fn static_bin_or_skip(name: &str, test: &str) -> Option<PathBuf> {
    let found = find_static_bin(name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: no static {name} (scripts/build-release.sh), and CI is set"
        );
        eprintln!("skipped {test}: no static {name}: run scripts/build-release.sh");
    }
    found
}

fn find_static_bin(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BERTH_STATIC_DIR") {
        return Some(Path::new(&dir).join(name));
    }
    std::fs::read_dir(target_dir())
        .ok()?
        .flatten()
        .map(|e| e.path().join("release").join(name))
        .find(|p| p.exists())
}

/// The parent of a process (the monitor of a container's init).
pub fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse().ok())
        .unwrap_or_else(|| panic!("/proc/{pid}/stat without a parent: {stat}"))
}

/// The busybox fixture as a rootfs tarball (numeric owners) in `dir`.
pub fn busybox_tar(dir: &std::path::Path) -> PathBuf {
    let tar = dir.join("busybox.tar");
    let st = std::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(busybox_rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar the busybox rootfs");
    tar
}

/// The shared busybox rootfs, made on first use.
pub fn busybox_rootfs() -> PathBuf {
    let base = target_dir().join("berth-fixtures");
    fs::create_dir_all(&base).expect("create fixture dir");
    let dest = base.join("busybox-rootfs");
    let lock = fs::File::create(base.join(".lock")).expect("create fixture lock");
    // Held until the function returns; other test processes wait here.
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock fixtures");
    if !dest.join(".complete").exists() {
        let tmp = base.join("busybox-rootfs.tmp");
        let _ = fs::remove_dir_all(&tmp);
        make_busybox_rootfs(&tmp);
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&tmp, &dest).expect("install busybox rootfs");
        fs::write(dest.join(".complete"), b"").expect("mark fixture complete");
    }
    dest
}

/// Builds a busybox rootfs at `dir`.
pub fn make_busybox_rootfs(dir: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: apt-get install -y busybox-static"
    );
    for d in [
        "bin", "etc", "tmp", "proc", "sys", "dev", "root", "home", "var", "run", "usr/bin", "sbin",
    ] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let _ = symlink("busybox", dir.join("bin").join(applet));
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// The runtime's default spec with terminal off and `args`.
pub fn default_config(args: &[&str]) -> Value {
    let mut c = berth_runtime::template::default_spec_json(false);
    c["process"]["terminal"] = Value::Bool(false);
    c["process"]["args"] = args.iter().map(|a| Value::String(a.to_string())).collect();
    c
}

/// An OCI bundle in its own temp dir.
#[derive(Debug)]
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// A bundle whose root is the shared, read-only busybox rootfs.
    pub fn shared(args: &[&str]) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let mut config = default_config(args);
        config["root"]["path"] = Value::String(busybox_rootfs().display().to_string());
        config["root"]["readonly"] = Value::Bool(true);
        Bundle { dir, config }
    }

    /// A bundle with a private, writable copy of the busybox rootfs.
    pub fn private(args: &[&str]) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success(), "copy rootfs");
        let mut config = default_config(args);
        config["root"]["readonly"] = Value::Bool(false);
        Bundle { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes config.json (call after changing `config`).
    pub fn write(&self) -> &Bundle {
        fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
        self
    }

    /// The private rootfs (only for [`Bundle::private`]).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// A runtime state root of its own, and the runtime binary to drive.
#[derive(Debug)]
pub struct Runtime {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
}

impl Runtime {
    pub fn new(bin: &str) -> Runtime {
        Runtime {
            bin: PathBuf::from(bin),
            root: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs the runtime with `args` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        output_via_files(self.cmd().args(args))
    }

    /// The ids under this root.
    pub fn ids(&self) -> Vec<String> {
        fs::read_dir(self.root.path())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = self.run(&["delete", "--force", &id]);
        }
    }
}

/// Runs a command to its exit with stdout and stderr in temp files, not
/// pipes: a container started by `create` or `run -d` inherits them and
/// keeps them open, so waiting for EOF on a pipe would never end.
pub fn output_via_files(cmd: &mut Command) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .expect("run command");
    let read = |mut f: fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// stdout of an output as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of an output as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the command's output unless it exited with `code`.
pub fn expect_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The lines of an error on stderr, without docker's usage hint ("See
/// 'berth run --help'.") that follows a refused command line: what must
/// be one line.
pub fn error_lines(stderr: &str) -> usize {
    stderr
        .trim()
        .lines()
        .filter(|l| !(l.starts_with("See 'berth ") && l.ends_with(" --help'.")))
        .count()
}

/// True when running as root (integration tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For tests that need root: true when the test may go on. Without root
/// it says the test was skipped, and fails under CI, where nothing may be
/// skipped silently.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root, and CI is set"
    );
    eprintln!("skipped {test}: needs root");
    false
}

/// Builds tests/helpers/NAME.c, statically (it runs inside busybox
/// images), at `dest`.
pub fn build_helper(name: &str, dest: &Path) {
    let src = snippet::tests_dir().join(format!("helpers/{name}.c"));
    let st = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(dest)
        .arg(&src)
        .status()
        .expect("cc (apt-get install gcc libc6-dev)");
    assert!(st.success(), "building {} failed", src.display());
}

/// Appends a tar entry whose name and link name are exactly these bytes:
/// the tar crate refuses to write hostile names (`..`, absolute), which is
/// what attack tests need to write.
pub fn raw_tar_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    data: &[u8],
    link: &str,
    mode: u32,
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, data).expect("append a tar entry");
}

/// The host uids (real, effective, saved, filesystem) of process `pid`,
/// as `/proc/PID/status` gives them.
pub fn host_uids(pid: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid: line");
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("a uid"))
        .collect()
}

/// GET `path` of `addr` (an IP:port) over HTTP/1.0, tried for ten
/// seconds until an answer says 200 OK: the whole answer, or the last
/// error.
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = (|| -> std::io::Result<String> {
            let a = addr
                .parse()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let mut s = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })();
        match r {
            Ok(t) if t.contains("200 OK") => return Ok(t),
            r if Instant::now() > deadline => return Err(format!("{addr}: {r:?}")),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A host port nobody listens on now, below the kernel's ephemeral range
/// (32768 up), from which berth picks the host ports of `-p 80` and `-P`:
/// so a port a test chose is not also handed out to another test's
/// container. Spread by process and time, and by a counter within the
/// process, so parallel tests rarely try the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mix =
            (std::process::id().wrapping_mul(7919) ^ nanos).wrapping_add(n.wrapping_mul(104_729));
        let port = 20_000 + u16::try_from(mix % 12_000).unwrap();
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}
