//! Real faults. Commands killed at random points (run --rm, run -d, rm -f,
//! commit, build, pull, load): afterwards `system check` leaves no process,
//! cgroup, mount, runtime state, veth, nft element or lease that no running
//! container accounts for, every image listed is whole, and removing what
//! is left leaves the store's files as they were. The rounds are few here
//! (CI: two of each command); `scripts/kill-storm.sh` runs the same storm
//! with many.
//!
//! Then a full disk (by a log, by a container's own files: berth still
//! reads and removes) and a monitor killed under a running container (its
//! lost output is said, not hidden). A damaged database is faults_db.rs's.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testkit::registry::Registry;
use berth_testkit::store::Store;
use berth_testkit::{expect_code, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A store with a runroot of its own, so the census sees only its state.
fn store() -> (Store, PathBuf) {
    let run = tempfile::tempdir().unwrap();
    let runroot = run.path().to_path_buf();
    let s = Store::empty(BIN).flag("--runroot").flag(&runroot).keep(run);
    s.import_busybox("busybox", &[]);
    (s, runroot)
}

/// A cheap pseudo-random sequence (no dependency, reproducible by seed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Starts `args`, kills it with SIGKILL after `ms` milliseconds.
fn kill_after(s: &Store, args: &[&str], ms: u64) {
    let mut child = s
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// The store's own files that a finished command leaves as they were:
/// layers, blobs, containers' directories, scratch space.
fn store_files(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["layers", "blobs/sha256", "blobs/.tmp", "tmp", "containers"] {
        if let Ok(rd) = std::fs::read_dir(root.join(d)) {
            for e in rd.flatten() {
                v.push(format!("{d}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    v.sort();
    v
}

/// Whether process `pid` works in this store: its root or cwd is under
/// it, or (a container's init behind pivot_root) its mount table names it
/// (the overlay's lower and upper directories are the store's).
fn process_of_store(pid: i32, root: &str) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    for link in ["root", "cwd"] {
        if std::fs::read_link(proc.join(link)).is_ok_and(|p| p.starts_with(root)) {
            return true;
        }
    }
    // Our own mount table names the store while containers' rootfs are
    // mounted: only another namespace's table says the process is inside.
    let ns = |p: &Path| std::fs::read_link(p.join("ns/mnt")).ok();
    ns(&proc) != ns(Path::new("/proc/self"))
        && std::fs::read_to_string(proc.join("mountinfo")).is_ok_and(|m| m.contains(root))
}

/// Every cgroup directory named `berth/*`, in each hierarchy (v1 and v2).
fn berth_cgroups() -> Vec<PathBuf> {
    let top = Path::new("/sys/fs/cgroup");
    let mut parents = vec![top.join("berth")];
    if let Ok(rd) = std::fs::read_dir(top) {
        parents.extend(rd.flatten().map(|h| h.path().join("berth")));
    }
    let mut v = Vec::new();
    for p in parents {
        if let Ok(rd) = std::fs::read_dir(&p) {
            v.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
        }
    }
    v
}

/// The storm's own bridge network: its bridge and its subnet's prefix
/// (a /24 or wider: its first three octets).
struct Net {
    bridge: String,
    prefix: String,
}

fn storm_net(s: &Store) -> Net {
    s.ok(&["network", "create", "stormnet"]);
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["network", "inspect", "stormnet"])).unwrap();
    let bridge = v[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet = v[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap();
    let octets: Vec<&str> = subnet.split('.').take(3).collect();
    Net {
        bridge,
        prefix: format!("{}.", octets.join(".")),
    }
}

/// The veths on the storm's bridge.
fn veths(net: &Net) -> Vec<String> {
    let o = Command::new("ip")
        .args(["-j", "link", "show", "master", &net.bridge])
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// Addresses of the storm's subnet named in berth's nft table: published
/// ports' targets and the subnet's own entries.
fn nft_elements(net: &Net) -> Vec<String> {
    let o = Command::new("nft")
        .args(["-j", "list", "table", "ip", "berth"])
        .output()
        .unwrap();
    let mut found = Vec::new();
    fn walk(v: &serde_json::Value, prefix: &str, found: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.starts_with(prefix) => found.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, prefix, found)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, prefix, found)),
            _ => {}
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
        for o in v["nftables"].as_array().into_iter().flatten() {
            // Elements only: a rule or set definition names no container.
            for kind in ["map", "set"] {
                walk(&o[kind]["elem"], &net.prefix, &mut found);
            }
        }
    }
    found
}

/// What berth holds for this store on the host.
#[derive(Default)]
struct Census {
    runtime_dirs: Vec<String>,
    cgroups: Vec<String>,
    mounts: usize,
    /// Processes in this store's cgroups, or working in the store.
    processes: Vec<i32>,
}

impl std::fmt::Debug for Census {
    /// Counts and a few names: a storm can leave hundreds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let few = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        write!(
            f,
            "{} runtime dirs ({}), {} cgroups ({}), {} mounts, {} processes ({:?})",
            self.runtime_dirs.len(),
            few(&self.runtime_dirs),
            self.cgroups.len(),
            few(&self.cgroups),
            self.mounts,
            self.processes.len(),
            self.processes.iter().take(3).collect::<Vec<_>>()
        )
    }
}

/// `before`: the `berth/build-*` cgroups there were before the storm (other
/// tests' builds run meanwhile; an empty one of theirs is not ours).
fn census(s: &Store, runroot: &Path, before: &[PathBuf]) -> Census {
    let mut c = Census::default();
    let root = s.path().to_string_lossy().into_owned();
    let ids: Vec<String> = std::fs::read_dir(runroot.join("runtime"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir() && !e.path().is_symlink())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("@seccomp"))
                .collect()
        })
        .unwrap_or_default();
    c.runtime_dirs = ids.clone();
    let rows = stdout(&s.run(&["ps", "-aq", "--no-trunc"]));
    let known: Vec<&str> = rows.lines().chain(ids.iter().map(String::as_str)).collect();
    for dir in berth_cgroups() {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let procs: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        let ours = known.contains(&name.as_str())
            || procs.iter().any(|&p| process_of_store(p, &root))
            || (name.starts_with("build-") && procs.is_empty() && !before.contains(&dir));
        if ours {
            c.cgroups.push(dir.display().to_string());
            for p in procs {
                if !c.processes.contains(&p) {
                    c.processes.push(p);
                }
            }
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if process_of_store(pid, &root) && !c.processes.contains(&pid) {
            c.processes.push(pid);
        }
    }
    c.mounts = s.mounts();
    c
}

/// The storm's fixtures: a build context whose RUN steps take a while
/// (kills land inside them), a container to commit, an image with a layer
/// of its own in a loopback registry and in a saved tar (neither in the
/// store, so pulls and loads write it).
struct Fixtures {
    context: tempfile::TempDir,
    registry: Registry,
    pulled: String,
    saved: PathBuf,
}

fn fixtures(s: &Store) -> Fixtures {
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM busybox\nRUN sleep 0.2 && head -c 2000000 /dev/urandom > /a\nRUN sleep 0.2 && rm /a && echo b > /b\n",
    )
    .unwrap();
    s.ok(&[
        "run",
        "-d",
        "--name",
        "committee",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "head -c 8000000 /dev/urandom > /big && exec sleep 600",
    ]);
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(
        extra.path().join("Dockerfile"),
        "FROM busybox\nRUN head -c 6000000 /dev/urandom > /extra\n",
    )
    .unwrap();
    s.ok(&[
        "build",
        "-q",
        "-t",
        "storm-extra:1",
        &extra.path().to_string_lossy(),
    ]);
    let registry = Registry::start("", "");
    let pulled = format!("{}/storm/extra:1", registry.addr());
    s.ok(&["tag", "storm-extra:1", &pulled]);
    s.ok(&["push", "-q", "--tls-verify=false", &pulled]);
    let saved = context.path().join("extra.tar");
    s.ok(&["save", "-o", &saved.to_string_lossy(), "storm-extra:1"]);
    s.ok(&["rmi", "storm-extra:1", &pulled]);
    Fixtures {
        context,
        registry,
        pulled,
        saved,
    }
}

#[test]
fn killed_commands_leave_nothing_after_system_check() {
    let (s, runroot) = store();
    let files_before = store_files(s.path());
    let cgroups_before = berth_cgroups();
    let fx = fixtures(&s);
    let rounds: u64 = std::env::var("BERTH_STORM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let mut rng = Lcg(0x5eed);
    let context = fx.context.path().to_string_lossy().into_owned();
    let saved = fx.saved.to_string_lossy().into_owned();
    let net = storm_net(&s);
    assert!(
        !nft_elements(&net).is_empty(),
        "the nft census sees the network's subnet"
    );
    let detached = |name: &str, i: u64| -> Vec<String> {
        let mut a = vec!["run", "-d", "--name", name, "--network"];
        if (i / 7).is_multiple_of(2) {
            a.push("none");
        } else {
            a.extend(["stormnet", "-p", "80"]);
        }
        a.extend(["busybox", "sleep", "30"]);
        a.into_iter().map(str::to_string).collect()
    };
    for i in 0..rounds {
        let name = format!("storm{i}");
        let tag = format!("storm-image:{i}");
        match i % 7 {
            0 => kill_after(
                &s,
                &["run", "--rm", "--network", "none", "busybox", "sleep", "30"],
                rng.below(120),
            ),
            // Every other run -d and rm -f on the storm's bridge with a
            // published port: veths, leases and nft elements to leave.
            1 => {
                let args = detached(&name, i);
                kill_after(&s, &strs(&args), rng.below(150));
            }
            2 => {
                let args = detached(&name, i);
                s.ok(&strs(&args));
                kill_after(&s, &["rm", "-f", &name], rng.below(60));
            }
            3 => kill_after(&s, &["commit", "committee", &tag], rng.below(400)),
            4 => kill_after(
                &s,
                &["build", "--no-cache", "-q", "-t", &tag, &context],
                rng.below(1200),
            ),
            5 => {
                // A pull that finished in an earlier round leaves nothing to do.
                let _ = s.run(&["rmi", &fx.pulled]);
                kill_after(
                    &s,
                    &["pull", "-q", "--tls-verify=false", &fx.pulled],
                    rng.below(400),
                );
            }
            _ => {
                let _ = s.run(&["rmi", "storm-extra:1"]);
                kill_after(&s, &["load", "-q", "-i", &saved], rng.below(400));
            }
        }
    }
    let o = s.run(&["system", "check"]);
    expect_code(&o, 0, "system check after the storm");
    // What the storm left, for scripts/kill-storm.sh's report.
    eprintln!("system check after {rounds} rounds:\n{}", stdout(&o));
    // Every runtime state left belongs to a container that runs; every
    // process and cgroup of the store is such a container's.
    let running = stdout(&s.run(&["ps", "-q", "--no-trunc"]));
    let running: Vec<&str> = running.lines().collect();
    let c = census(&s, &runroot, &cgroups_before);
    for id in &c.runtime_dirs {
        assert!(
            running.contains(&id.as_str()),
            "runtime state of {id} left with no running container: {c:?}\n{}\n{}",
            stdout(&o),
            stdout(&s.run(&["ps", "-a", "--no-trunc"]))
        );
    }
    for cg in &c.cgroups {
        assert!(
            running.iter().any(|id| cg.ends_with(id)),
            "cgroup {cg} left with no running container: {c:?}\n{}",
            stdout(&o)
        );
    }
    // One veth per running container on the bridge, and no nft element
    // for an address no running container has.
    let mut addresses = Vec::new();
    for id in &running {
        let nets: serde_json::Value =
            serde_json::from_str(&s.inspect(id, "{{json .NetworkSettings.Networks}}")).unwrap();
        for n in nets.as_object().into_iter().flat_map(|m| m.values()) {
            addresses.extend(n["IPAddress"].as_str().map(str::to_string));
        }
    }
    let on_bridge: Vec<&String> = addresses
        .iter()
        .filter(|a| a.starts_with(&net.prefix))
        .collect();
    let v = veths(&net);
    assert_eq!(
        v.len(),
        on_bridge.len(),
        "veths {v:?} for running containers at {on_bridge:?}\n{}",
        stdout(&o)
    );
    let gateway = format!("{}1", net.prefix);
    for e in nft_elements(&net) {
        assert!(
            e == gateway || e.starts_with(&format!("{}0", net.prefix)) || on_bridge.contains(&&e),
            "nft element {e} names no running container\n{}",
            stdout(&o)
        );
    }
    // A commit killed while it had the container paused: thawed again.
    assert_eq!(
        s.inspect("committee", "{{.State.Status}}"),
        "running",
        "{}",
        stdout(&o)
    );
    s.ok(&["exec", "committee", "true"]);
    // Every image listed is whole (save reads each of its blobs and layers),
    // and the store still runs containers.
    for id in stdout(&s.run(&["images", "-q", "--no-trunc"])).lines() {
        s.ok(&["save", "-o", "/dev/null", id]);
    }
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"])
            .trim(),
        "ok"
    );
    // Then everything goes: containers, and every image but busybox.
    for id in stdout(&s.run(&["ps", "-aq"])).lines() {
        let o = Command::new("timeout")
            .arg("60")
            .arg(BIN)
            .arg("--root")
            .arg(s.path())
            .arg("--runroot")
            .arg(&runroot)
            .args(["rm", "-f", id])
            .output()
            .unwrap();
        expect_code(&o, 0, &format!("rm -f {id}"));
    }
    let busybox = s.inspect("busybox", "{{.Id}}");
    for id in stdout(&s.run(&["images", "-q", "--no-trunc"])).lines() {
        if id != busybox {
            s.ok(&["rmi", "-f", id]);
        }
    }
    // Checked while the bridge is there (its removal would only detach
    // veths left on it).
    assert_eq!(veths(&net), Vec::<String>::new(), "veths left");
    // No lease (endpoint row) outlives its container.
    let leases: serde_json::Value =
        serde_json::from_str(&s.ok(&["network", "inspect", "stormnet"])).unwrap();
    assert_eq!(
        leases[0]["Containers"],
        serde_json::json!({}),
        "leases left"
    );
    s.ok(&["network", "rm", "stormnet"]);
    assert_eq!(
        nft_elements(&net),
        Vec::<String>::new(),
        "nft elements left"
    );
    // The build cache keeps the layers of finished steps (docker's does too).
    s.ok(&["builder", "prune", "-a", "-f"]);
    let c = census(&s, &runroot, &cgroups_before);
    assert!(
        c.runtime_dirs.is_empty()
            && c.cgroups.is_empty()
            && c.processes.is_empty()
            && c.mounts == 0,
        "left after rm -f of everything: {c:?}"
    );
    // No row and no file of what was removed (nor of what was killed).
    assert_eq!(store_files(s.path()), files_before, "the store's files");
    drop(fx.registry);
}

/// A tmpfs of `mib` MiB on a new directory, unmounted when dropped.
struct SmallDisk {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl SmallDisk {
    fn new(mib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        expect_code(&o, 0, "mount a small tmpfs");
        SmallDisk {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
        }
    }

    /// The directory, to become a store's root (unmounted by us, later).
    fn take(&mut self) -> tempfile::TempDir {
        self.dir.take().unwrap()
    }

    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.path).unwrap();
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // A test that failed with the disk full may have left its
        // container running (rm -f needs the store): the processes of every
        // container of the store (its cgroup is berth/<id>) are killed
        // before the disk goes, or they would print forever into a
        // detached tmpfs (two such containers once ate a core each for
        // hours).
        let ids: Vec<String> = std::fs::read_dir(self.path.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for id in &ids {
            let procs = format!("/sys/fs/cgroup/pids/berth/{id}/cgroup.procs");
            for pid in std::fs::read_to_string(procs).unwrap_or_default().lines() {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A detached container whose output has no end, its log on a small disk:
/// the log stops short of filling it, so reading and removing still work
/// (before, `ps -a`, `images`, `rm -f` and `system check` all failed with
/// SQLite's "disk I/O error" on its shared memory, and the container that
/// filled the disk could not be removed).
#[test]
fn a_log_filling_the_disk_leaves_berth_usable() {
    if !berth_testkit::root_or_skip("a_log_filling_the_disk_leaves_berth_usable") {
        return;
    }
    // Declared first: unmounted after the store's own clean-up.
    let mut disk = SmallDisk::new(12);
    let run = tempfile::tempdir().unwrap();
    let s = Store::in_dir(BIN, disk.take())
        .flag("--runroot")
        .flag(run.path())
        .keep(run);
    s.import_busybox("busybox", &[]);
    let line = "x".repeat(200);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "filler",
        "--network",
        "none",
        "--log-opt",
        "max-size=-1",
        "busybox",
        "sh",
        "-c",
        &format!("while :; do echo {line}; done"),
    ]);
    // The log grows until its reserve (1 MiB on so small a disk) is what
    // is left; the container prints on.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while disk.free() > 2 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the log did not grow: {} bytes free",
            disk.free()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(disk.free() > 0, "the log filled the disk");
    let ps = s.ok(&["ps", "-a"]);
    assert!(ps.contains("filler") && ps.contains("Up"), "{ps}");
    assert_eq!(s.inspect("filler", "{{.State.Status}}"), "running");
    let logs = s.cmd().args(["logs", "filler"]).output().unwrap();
    expect_code(&logs, 0, "logs");
    assert!(stdout(&logs).starts_with(&line), "logs: the first line");
    assert!(s.ok(&["images"]).contains("busybox"));
    s.ok(&["system", "check"]);
    // The worst case: no reserve (a store of an older berth) and the last
    // bytes taken by someone else. Reading still works, and the log, which
    // goes with the container, makes room for its removal.
    std::fs::remove_file(s.path().join("reserve")).unwrap();
    let mut pad = std::fs::File::create(s.path().join("pad")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut pad, &block).is_ok() {}
    drop(pad);
    assert_eq!(disk.free(), 0, "the disk is full");
    assert!(s.ok(&["ps", "-a"]).contains("filler"));
    s.ok(&["rm", "-f", "filler"]);
    std::fs::remove_file(s.path().join("pad")).unwrap();
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    assert_eq!(s.mounts(), 1, "mounts left under the store (but its tmpfs)");
    // The space is back: a new container runs.
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"])
            .trim(),
        "ok"
    );
}

/// The pid of the monitor of container `id` (`berth-monitor BERTH ROOT RUNROOT ID ...`).
fn monitor_of(id: &str) -> Option<i32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        (args.first() == Some(&&b"berth-monitor"[..]) && args.contains(&id.as_bytes()))
            .then_some(pid)
    })
}

/// A detached container's monitor killed while the container prints on:
/// `ps`, `inspect` and `logs` say its output is lost (before, `ps` said
/// plain "Up" and the lines vanished silently); `rm -f` still works.
#[test]
fn a_dead_monitor_is_shown_as_output_lost() {
    if !berth_testkit::root_or_skip("a_dead_monitor_is_shown_as_output_lost") {
        return;
    }
    let (s, _runroot) = store();
    let id = s
        .ok(&[
            "run",
            "-d",
            "--name",
            "talker",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "while :; do echo tick; sleep 0.1; done",
        ])
        .trim()
        .to_string();
    // `run -d` may return while the monitor's exec is still under way
    // (its /proc cmdline not yet berth-monitor's): looked for until a
    // deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let monitor = loop {
        if let Some(m) = monitor_of(&id) {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container's monitor never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let ps = s.ok(&["ps"]);
    assert!(!ps.contains("output lost"), "{ps}");
    assert_eq!(s.inspect("talker", "{{.State.Error}}"), "");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Gone when it is no longer in /proc (reaped by init: it was detached).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{monitor}")).exists()
        && std::fs::read_to_string(format!("/proc/{monitor}/stat"))
            .is_ok_and(|st| !st.contains(") Z "))
    {
        assert!(std::time::Instant::now() < deadline, "the monitor lives on");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ps = s.ok(&["ps"]);
    let row = ps
        .lines()
        .find(|l| l.contains("talker"))
        .unwrap_or_default();
    assert!(
        row.contains("Up ") && row.contains("(monitor gone, output lost)"),
        "{ps}"
    );
    assert!(
        s.inspect("talker", "{{.State.Error}}")
            .contains("output since is lost"),
        "inspect"
    );
    assert_eq!(s.inspect("talker", "{{.State.Running}}"), "true");
    let logs = s.run(&["logs", "talker"]);
    expect_code(&logs, 0, "logs");
    assert!(
        stdout(&logs).starts_with("tick\n"),
        "what was logged is kept"
    );
    assert!(
        berth_testkit::stderr(&logs).contains("monitor died"),
        "logs warns: {}",
        berth_testkit::stderr(&logs)
    );
    s.ok(&["rm", "-f", "talker"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    assert_eq!(s.mounts(), 0);
}

/// A container that fills its store's disk through its own files (no log
/// reserve stops that): reading still works, and `rm -f` of it too (before,
/// it failed with "database or disk is full": its first database write
/// found no room). The store's reserve comes back once there is room.
#[test]
fn a_full_disk_still_reads_and_removes() {
    if !berth_testkit::root_or_skip("a_full_disk_still_reads_and_removes") {
        return;
    }
    let mut disk = SmallDisk::new(12);
    let run = tempfile::tempdir().unwrap();
    let s = Store::in_dir(BIN, disk.take())
        .flag("--runroot")
        .flag(run.path())
        .keep(run);
    s.import_busybox("busybox", &[]);
    let reserve = s.path().join("reserve");
    assert!(reserve.exists(), "the store keeps a reserve");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "filler",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=64k; exec sleep 600",
    ]);
    // dd is done when sleep has taken its place (its log line would be
    // lost: the log keeps off the last of the disk).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let top = s.ok(&["top", "filler"]);
        if top.contains("sleep 600") && !top.contains("dd if") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dd never ended: {top}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(disk.free(), 0, "the disk is full");
    let ps = s.ok(&["ps", "-a"]);
    assert!(ps.contains("filler") && ps.contains("Up"), "{ps}");
    assert_eq!(s.inspect("filler", "{{.State.Status}}"), "running");
    assert!(s.ok(&["images"]).contains("busybox"));
    s.ok(&["system", "check"]);
    s.ok(&["rm", "-f", "filler"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    assert!(disk.free() > 4 << 20, "the container's files are gone");
    // The next command makes the reserve again, and a container runs.
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"])
            .trim(),
        "ok"
    );
    assert!(reserve.exists(), "the reserve is made again");
    assert_eq!(s.mounts(), 1, "mounts left under the store (but its tmpfs)");
}

/// A container's log is bounded unless told otherwise (20 MiB a file, as
/// Docker's `local` driver): one printing 24 MB has its log rotated, where
/// Docker's json-file would have kept it whole.
#[test]
fn logs_are_bounded_by_default() {
    if !berth_testkit::root_or_skip("logs_are_bounded_by_default") {
        return;
    }
    let (s, _runroot) = store();
    let id = s
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            // 24000 lines of 999 x's.
            "head -c 23976000 /dev/zero | tr '\\0' x | fold -w 999",
        ])
        .trim()
        .to_string();
    s.ok(&["wait", &id]);
    let dir = s.path().join("containers").join(&id);
    let log = std::fs::metadata(dir.join("ctr.log")).unwrap().len();
    assert!(log <= 20 << 20, "ctr.log is {log} bytes");
    assert!(dir.join("ctr.log.1").exists(), "rotated");
    // What is kept still reads back, its last line last.
    let logs = s.ok(&["logs", "--tail", "1", &id]);
    assert_eq!(
        logs.trim_end().len(),
        999,
        "{}",
        &logs[..logs.len().min(80)]
    );
}
