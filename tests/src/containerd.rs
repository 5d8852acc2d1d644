//! A private containerd (socket, state and root in a directory of its own)
//! per test: a client of berth-runtime through its runc v2 shim, driven
//! with `ctr` (berth-runtime/tests/containerd.rs) or through its CRI
//! plugin, as the kubelet does (berth-runtime/tests/cri.rs).
//!
//! Dropping it kills containerd, its shims and leftover containers (through
//! each runtime's `delete --force`), unmounts what is left under its
//! directory, removes the cgroups and network links the test named, and
//! removes the directory (BERTH_TEST_KEEP=1 keeps it when the test failed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::snippet::{bash, capture, installed, remove_test_dir, tests_dir, Out};

/// Built by `busybox_oci_archive` and imported into every containerd.
pub const IMAGE: &str = "localhost/berth-busybox:latest";

/// What a test's containerd is set up with, beyond the ctr defaults.
#[derive(Debug, Default)]
pub struct Options {
    /// TOML appended to config.toml (`$D` stands for the containerd
    /// directory); `None` disables the CRI plugin, which ctr does not need.
    pub cri: Option<String>,
    /// The namespace `ctr` uses and images are imported into (the CRI
    /// plugin's is `k8s.io`); default `berth-<test>-<pid>`.
    pub namespace: Option<String>,
    /// OCI runtimes (binary, `--root`) whose containers are deleted at
    /// teardown; `$D` stands for the directory. Default: berth-runtime
    /// with `$D/runc-root`, as `$RUN_FLAGS` has ctr pass it.
    pub runtimes: Vec<(PathBuf, String)>,
    /// cgroups (relative to each hierarchy's root) removed at teardown,
    /// with everything under them; the namespace's is always removed
    /// (ctr puts containers at /<namespace>/<id>).
    pub cgroups: Vec<String>,
    /// Network links (a CNI bridge) deleted at teardown.
    pub links: Vec<String>,
}

/// A private containerd.
#[derive(Debug)]
pub struct Containerd {
    pub dir: PathBuf,
    /// containerd namespace: unique for ctr tests, because the cgroupsPath
    /// of a container is /<namespace>/<id> on the (shared) host hierarchy
    pub ns: String,
    /// berth-runtime, passed by `$RUN_FLAGS` to `ctr run`
    runtime: PathBuf,
    options: Options,
    child: Option<Child>,
}

impl Containerd {
    /// Start containerd for ctr with `runtime` (berth-runtime) and import
    /// the busybox image; `None` (after saying why) when containerd is not
    /// installed.
    pub fn start(test: &str, runtime: &Path) -> Option<Self> {
        Self::start_with(test, runtime, Options::default())
    }

    /// [`Containerd::start`] with `options`.
    pub fn start_with(test: &str, runtime: &Path, mut options: Options) -> Option<Self> {
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            if !installed(tool) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{tool} is missing (install-deps.sh)"
                );
                eprintln!("skipped: {tool} not installed");
                return None;
            }
        }
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the containerd tests must run as root"
        );
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("berth-containerd-{test}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["root", "state", "fifo", "runc-root"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let d = dir.display().to_string();
        // The CRI plugin's tables come last; ctr's top-level key must come
        // before the first table.
        let (top, tables) = match &options.cri {
            Some(toml) => (String::new(), toml.replace("$D", &d)),
            None => (
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n".to_string(),
                String::new(),
            ),
        };
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
{top}
[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd-ttrpc.sock"

[debug]
  address = "{d}/containerd-debug.sock"
  level = "debug"
{tables}"#
        );
        std::fs::write(dir.join("config.toml"), config).expect("writing config.toml");
        if options.runtimes.is_empty() {
            options
                .runtimes
                .push((runtime.to_path_buf(), "$D/runc-root".to_string()));
        }
        let ns = options
            .namespace
            .clone()
            .unwrap_or_else(|| format!("berth-{test}-{pid}"));
        let log =
            std::fs::File::create(dir.join("containerd.log")).expect("creating containerd.log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let mut c = Containerd {
            dir,
            ns,
            runtime: runtime.to_path_buf(),
            options,
            child: Some(child),
        };
        c.wait_ready();

        let out = c.sh(&format!(
            r#"source "$TESTS/podman-env.sh" "$D/podman-env" >/dev/null &&
               busybox_oci_archive "$D/busybox.tar" {IMAGE} &&
               timeout 120 $CTR image import "$D/busybox.tar""#
        ));
        c.check(out.code() == 0, &out, "importing the busybox image failed");
        Some(c)
    }

    /// The gRPC socket (ctr's and the CRI's).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Wait until containerd answers on its socket (or has died).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.sh("$CTR version");
            if out.code() == 0 {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "containerd did not come up ({exited:?})\n{out}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run `snippet` with bash; it gets $CTR (`ctr` on this containerd and
    /// namespace), $RUN_FLAGS for `ctr run` (`--runc-binary <berth-runtime>
    /// --runc-root $RUNC_ROOT` and a private fifo dir), $EXEC_FLAGS for `ctr
    /// task exec` (the fifo dir), $RUNC_ROOT, $D (the directory), $TESTS and
    /// $BERTH_RUNTIME.
    pub fn sh(&self, snippet: &str) -> Out {
        let d = &self.dir;
        let mut cmd = bash();
        cmd.arg(snippet)
            .env(
                "CTR",
                format!(
                    "ctr --address {} --namespace {}",
                    self.socket().display(),
                    self.ns
                ),
            )
            .env(
                "RUN_FLAGS",
                format!(
                    "--runc-binary {} --runc-root {} --fifo-dir {}",
                    self.runtime.display(),
                    d.join("runc-root").display(),
                    d.join("fifo").display()
                ),
            )
            .env(
                "EXEC_FLAGS",
                format!("--fifo-dir {}", d.join("fifo").display()),
            )
            .env("RUNC_ROOT", d.join("runc-root"))
            .env("D", d)
            .env("TESTS", tests_dir())
            .env("BERTH_RUNTIME", &self.runtime)
            .env("TMPDIR", d);
        capture(cmd, snippet)
    }

    /// Panic with `what`, the snippet's output and the logs unless `ok`.
    pub fn check(&self, ok: bool, out: &Out, what: &str) {
        if !ok {
            panic!("{what}\n{out}\n{}", self.diagnostics());
        }
    }

    /// The runtime's log files (the shim has it write `<bundle>/log.json`)
    /// and the end of containerd's log.
    pub fn diagnostics(&self) -> String {
        let out = self.sh(r#"find "$D/state" -name log.json -size +0 2>/dev/null |
                 while read -r f; do echo "== $f"; tail -c 4000 "$f"; echo; done
               echo "== containerd.log (last 40 lines)"; tail -n 40 "$D/containerd.log""#);
        out.stdout
    }

    /// Best-effort teardown; every step runs even if earlier ones failed.
    fn teardown(&mut self) {
        // Through containerd first: kill and delete tasks, remove containers.
        if self.child.is_some() {
            let _ = self.sh(r#"for t in $(timeout 30 $CTR task ls -q 2>/dev/null); do
                       timeout 30 $CTR task kill -a -s KILL "$t"
                       timeout 30 $CTR task rm -f "$t"
                   done >/dev/null 2>&1
                   for c in $(timeout 30 $CTR container ls -q 2>/dev/null); do
                       timeout 30 $CTR container rm "$c"
                   done >/dev/null 2>&1"#);
        }
        // containerd itself: TERM, then KILL.
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims of this containerd (they outlive it), then any container a
        // runtime still knows about, then mounts (rootfs, netns) under the
        // directory, cgroups and links.
        let ns = &self.ns;
        let d = self.dir.display().to_string();
        let runtimes: String = self
            .options
            .runtimes
            .iter()
            .map(|(bin, root)| format!("{} {}/{ns}\n", bin.display(), root.replace("$D", &d)))
            .collect();
        let cgroups: String = std::iter::once(ns.as_str())
            .chain(self.options.cgroups.iter().map(|c| c.trim_matches('/')))
            .map(|c| format!("{c}\n"))
            .collect();
        let links = self.options.links.join(" ");
        let out = self.sh(&format!(
            r#"for p in /proc/[0-9]*; do
                   cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
                   case "$cmd" in
                       *containerd-shim*"-address $D/containerd.sock "*) kill -9 "${{p#/proc/}}" ;;
                   esac
               done
               while read -r bin root; do
                   [ -n "$bin" ] && [ -d "$root" ] || continue
                   for s in "$root"/*; do
                       [ -e "$s" ] || continue
                       timeout 30 "$bin" --root "$root" delete --force "${{s##*/}}"
                   done
               done <<'EOF'
{runtimes}EOF
               awk -v d="$D" '{{ gsub(/\\040/, " ", $5); if (index($5, d "/") == 1) print $5 }}' /proc/self/mountinfo |
                   sort -r | while read -r mp; do umount -l "$mp"; done
               while read -r cg; do
                   [ -n "$cg" ] || continue
                   for c in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
                       [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {{}} + 2>/dev/null
                   done
               done <<'EOF'
{cgroups}EOF
               for l in {links}; do ip link del "$l" 2>/dev/null; done
               true"#
        ));
        if out.code() != 0 {
            eprintln!("containerd teardown:\n{out}");
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
        remove_test_dir(&self.dir);
    }
}
