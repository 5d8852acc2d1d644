//! A berth store of a test's own, driven through the real binary: the
//! harness the integration tests of `berth` share.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{expect_code, output_via_files, stdout};

/// A private `--root` (removed with its containers when dropped), and the
/// flags and environment every command of the test gets.
#[derive(Debug)]
pub struct Store {
    pub root: tempfile::TempDir,
    bin: PathBuf,
    flags: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    /// Directories the flags or environment point at, kept while we are.
    keep: Vec<tempfile::TempDir>,
}

impl Store {
    /// An empty store for the berth binary `bin`.
    pub fn empty(bin: &str) -> Store {
        Store::in_dir(bin, tempfile::tempdir().expect("temp dir"))
    }

    /// An empty store in `root` (a directory the test made: on a small
    /// tmpfs, say).
    pub fn in_dir(bin: &str, root: tempfile::TempDir) -> Store {
        Store {
            root,
            bin: PathBuf::from(bin),
            flags: Vec::new(),
            env: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// A store with the busybox rootfs imported as `busybox` (CMD sh, and
    /// `changes`, Dockerfile instructions as `import -c` takes them).
    pub fn with_busybox(bin: &str, changes: &[&str]) -> Store {
        let s = Store::empty(bin);
        s.import_busybox("busybox", changes);
        s
    }

    /// Imports the busybox rootfs as `name` with CMD sh and `changes`.
    pub fn import_busybox(&self, name: &str, changes: &[&str]) -> String {
        let work = tempfile::tempdir().expect("temp dir");
        let tar = crate::busybox_tar(work.path());
        let mut args = vec!["import", "-c", "CMD [\"sh\"]"];
        for c in changes {
            args.extend_from_slice(&["-c", c]);
        }
        let tar = tar.to_string_lossy().into_owned();
        args.extend_from_slice(&[tar.as_str(), name]);
        self.ok(&args).trim().to_string()
    }

    /// One more flag before every command (`--runroot DIR`...).
    pub fn flag(mut self, f: impl Into<OsString>) -> Store {
        self.flags.push(f.into());
        self
    }

    /// An environment variable for every command.
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Store {
        self.env.push((k.into(), Some(v.into())));
        self
    }

    /// A variable removed from every command's environment.
    pub fn env_remove(mut self, k: impl Into<OsString>) -> Store {
        self.env.push((k.into(), None));
        self
    }

    /// Keeps `dir` (which a flag or variable names) as long as the store.
    pub fn keep(mut self, dir: tempfile::TempDir) -> Store {
        self.keep.push(dir);
        self
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(&self.flags);
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        output_via_files(self.cmd().args(args))
    }

    /// Runs `args`, which must succeed; their stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        expect_code(&o, 0, &args.join(" "));
        stdout(&o)
    }

    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    /// Polls `inspect -f format` until it prints `want` (30 s at most).
    pub fn wait_for(&self, name: &str, format: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.inspect(name, format);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {format} is {got:?}, never {want:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Mounts under the store: none may be left once containers are gone.
    pub fn mounts(&self) -> usize {
        let root = self.root.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .expect("read mountinfo")
            .lines()
            .filter(|l| l.contains(&root))
            .count()
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in stdout(&ids).split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
        // Pods hold namespace files and an endpoint of their own.
        let pods = self.run(&["pod", "ps", "-q", "--no-trunc"]);
        for id in stdout(&pods).split_whitespace() {
            let _ = self.run(&["pod", "rm", "-f", id]);
        }
        let _ = self.run(&["network", "prune", "-f"]);
    }
}
