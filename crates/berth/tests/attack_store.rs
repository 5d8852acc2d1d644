//! Attacks on the store by a local unprivileged user (issue 13, item 5):
//! the store holds image layers and container upper directories (setuid
//! binaries: a root shell for whoever can run them) and secrets (the
//! environment in berth.db and config.json, state.json, what a container
//! logged, volumes). The attacker (`nobody`, through `setpriv`) lists and
//! reads all of it and runs the setuid binaries; everything must fail, on a
//! fresh store and on an old store whose modes were left open (berth
//! tightens it at its next start and says so).
//!
//! Each store sits in a world-traversable directory (as /var/lib and /run
//! are), so nothing but berth's own modes stands in the attacker's way.

#![allow(clippy::tests_outside_test_module)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, output_via_files, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");
const SECRET: &str = "hunter2-secret-token";

/// A store at `<dir>/root` with its run state at `<dir>/run`, `dir` open to
/// everyone.
struct OpenParentStore {
    dir: tempfile::TempDir,
}

impl OpenParentStore {
    fn new() -> OpenParentStore {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        OpenParentStore { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn run(&self, args: &[&str]) -> Output {
        output_via_files(
            Command::new(BIN)
                .arg("--root")
                .arg(self.root())
                .arg("--runroot")
                .arg(self.runroot())
                .args(args),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        expect_code(&o, 0, &args.join(" "));
        stdout(&o)
    }

    /// A store with secrets everywhere an attacker might look: an image
    /// whose layer holds a setuid-root busybox (`/bin/busybox-suid`, busybox's name so it runs its applets), a stopped
    /// container whose upper directory holds one too, and a running
    /// container with a secret in its environment, its log and a volume.
    fn with_secrets() -> OpenParentStore {
        let s = OpenParentStore::new();
        let work = tempfile::tempdir().unwrap();
        let tar = berth_testkit::busybox_tar(work.path());
        s.ok(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            &tar.to_string_lossy(),
            "busybox",
        ]);
        s.ok(&[
            "run",
            "--name",
            "maker",
            "busybox",
            "sh",
            "-c",
            "cp /bin/busybox /bin/busybox-suid && chmod 4755 /bin/busybox-suid",
        ]);
        s.ok(&["commit", "maker", "suidimg"]);
        s.ok(&[
            "run",
            "-d",
            "--name",
            "victim",
            "-e",
            &format!("TOKEN={SECRET}"),
            "-v",
            "vol:/data",
            "suidimg",
            "sh",
            "-c",
            &format!("echo {SECRET} > /data/secret; echo logged-{SECRET}; exec sleep 600"),
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.ok(&["logs", "victim"]).contains(SECRET) {
            assert!(
                Instant::now() < deadline,
                "the victim never logged its secret"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

impl Drop for OpenParentStore {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "victim", "maker"]);
    }
}

/// What an attacker is after in a store, found by walking it as root.
#[derive(Debug, Default)]
struct Targets {
    setuid: Vec<PathBuf>,
    secrets: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    /// Attach sockets: a connection is the container's terminal.
    sockets: Vec<PathBuf>,
}

fn find_targets(s: &OpenParentStore) -> Targets {
    let mut t = Targets {
        dirs: vec![s.root(), s.runroot()],
        ..Targets::default()
    };
    for top in [s.root(), s.runroot()] {
        walk(&top, &mut t);
    }
    // Not vacuous: the store really holds what the attacker wants.
    assert!(
        t.setuid.len() >= 2,
        "setuid copies in a layer and in an upper directory: {:?}",
        t.setuid
    );
    assert!(!t.sockets.is_empty(), "no attach socket in the run state");
    for name in [
        "berth.db",
        "config.json",
        "state.json",
        "ctr.log",
        "secret",
        "passwd",
    ] {
        assert!(
            t.secrets
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == name)),
            "no {name} in the store: {:?}",
            t.secrets
        );
    }
    t
}

fn walk(dir: &Path, t: &mut Targets) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            // The running container's merged view is the same files again.
            if !p.ends_with("merged") {
                walk(&p, t);
            }
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            t.sockets.push(p);
        } else if meta.is_file()
            && name == "busybox-suid"
            && meta.permissions().mode() & 0o4000 != 0
        {
            t.setuid.push(p);
        } else if [
            "berth.db",
            "config.json",
            "state.json",
            "ctr.log",
            "secret",
            // Any file of a layer (its /etc/passwd).
            "passwd",
        ]
        .contains(&name.as_str())
        {
            t.secrets.push(p);
        }
    }
}

/// Runs `args` as `nobody` with no supplementary groups.
fn as_nobody(args: &[&str]) -> Output {
    output_via_files(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(args),
    )
}

/// Runs the program at `path` as nobody, through the shell's exec (setpriv's
/// own exec of its program succeeded here under a directory nobody could
/// enter, so it is not the attacker's exec). Running at all is the escalation: a setuid-root
/// file runs with euid 0 (busybox's applets drop it again, a real shell or
/// any other program need not).
fn run_as_nobody(path: &str) -> Output {
    as_nobody(&[berth_testkit::BUSYBOX, "sh", "-c", "exec \"$0\" id", path])
}

/// Whether the attacker's tools are here (a missing one fails under CI).
fn attacker_tools() -> bool {
    let have = |p: &str| Path::new(p).exists();
    if have("/usr/bin/setpriv") && have(berth_testkit::BUSYBOX) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "setpriv (util-linux) and busybox are needed to attack as nobody"
    );
    eprintln!("skipped: setpriv or busybox missing");
    false
}

/// Every attack must fail: listing the store's directories, reading its
/// secrets, running its setuid binaries.
fn attack(t: &Targets) -> Vec<String> {
    let mut got_through = Vec::new();
    let bb = berth_testkit::BUSYBOX;
    for d in &t.dirs {
        let d = d.to_string_lossy();
        let o = as_nobody(&[bb, "ls", "-la", &d]);
        if o.status.success() {
            got_through.push(format!("listed {d}: {}", stdout(&o)));
        }
    }
    for f in &t.secrets {
        let f = f.to_string_lossy();
        let o = as_nobody(&[bb, "cat", &f]);
        if o.status.success() || !o.stdout.is_empty() {
            got_through.push(format!("read {f}"));
        }
    }
    for s in &t.sockets {
        // Connecting needs the path resolved first: even its stat fails.
        let s = s.to_string_lossy();
        let o = as_nobody(&[bb, "stat", &s]);
        if o.status.success() {
            got_through.push(format!("reached socket {s}"));
        }
    }
    for f in &t.setuid {
        let f = f.to_string_lossy();
        let o = run_as_nobody(&f);
        if o.status.success() {
            got_through.push(format!("ran setuid {f}: {}", stdout(&o).trim()));
        }
    }
    got_through
}

/// Opens a store as an older berth left it: directories 0755 (the running
/// container's merged view aside), files 0644.
fn open_up(dir: &Path) {
    let add = |p: &Path, bits: u32| {
        let m = mode(p);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m | bits)).unwrap();
    };
    add(dir, 0o055);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() && !p.ends_with("merged") {
            open_up(&p);
        } else if meta.is_file() {
            add(&p, 0o044);
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn local_user_cannot_read_or_run_anything_in_a_new_store() {
    if !attacker_tools() {
        return;
    }
    let s = OpenParentStore::with_secrets();
    let t = find_targets(&s);
    let got_through = attack(&t);
    assert!(
        got_through.is_empty(),
        "attacks that worked: {got_through:#?}"
    );
    // Defence in depth: the modes themselves, for when a parent is opened.
    assert_eq!(mode(&s.root()), 0o700, "root");
    assert_eq!(mode(&s.runroot()), 0o700, "runroot");
    for f in &t.secrets {
        // A volume's and a layer's files keep their own modes.
        if f.file_name()
            .is_some_and(|n| n != "secret" && n != "passwd")
        {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
}

#[test]
fn an_old_store_left_open_is_tightened_at_the_next_start() {
    if !attacker_tools() {
        return;
    }
    let s = OpenParentStore::with_secrets();
    let t = find_targets(&s);
    // An older berth's modes: every directory 0755, every file 0644.
    for top in &t.dirs {
        open_up(top);
    }
    let db = s.root().join("berth.db");
    // The attacks really work against such a store (so this test can tell).
    let config = t
        .secrets
        .iter()
        .find(|p| {
            p.ends_with("config.json")
                && std::fs::read_to_string(p).is_ok_and(|c| c.contains(SECRET))
        })
        .expect("the victim's config.json")
        .to_string_lossy()
        .into_owned();
    let o = as_nobody(&[berth_testkit::BUSYBOX, "cat", &config]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(SECRET),
        "the open store should leak the secret before berth runs again: {}",
        stderr(&o)
    );
    let o = run_as_nobody(&t.setuid[0].to_string_lossy());
    assert!(
        o.status.success(),
        "the open store should let nobody run a setuid-root binary: {}{}",
        stdout(&o),
        stderr(&o)
    );

    let o = s.run(&["ps", "-a"]);
    expect_code(&o, 0, "ps on the old store");
    let notice = stderr(&o);
    assert_eq!(notice.lines().count(), 1, "one line of notice: {notice}");
    for p in [s.root(), s.runroot(), db.clone()] {
        assert!(
            notice.contains(&*p.to_string_lossy()),
            "the notice names {}: {notice}",
            p.display()
        );
    }
    let got_through = attack(&t);
    assert!(
        got_through.is_empty(),
        "attacks that worked: {got_through:#?}"
    );
    assert_eq!(mode(&db), 0o600);
    // Once closed, nothing more to say.
    let o = s.run(&["ps", "-a"]);
    expect_code(&o, 0, "ps again");
    assert_eq!(stderr(&o), "", "no notice for a closed store");
}

/// A store path that cannot be a private directory (a file in the way) is
/// one line and docker's 125, never a panic or a store made elsewhere.
#[test]
fn a_store_path_that_is_a_file_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    for (root, runroot) in [
        (file.clone(), dir.path().join("run")),
        (dir.path().join("root"), file.join("run")),
    ] {
        let o = output_via_files(
            Command::new(BIN)
                .arg("--root")
                .arg(&root)
                .arg("--runroot")
                .arg(&runroot)
                .args(["ps", "-a"]),
        );
        expect_code(&o, 125, "ps with a file in the way");
        let err = stderr(&o);
        assert_eq!(berth_testkit::error_lines(&err), 1, "{err}");
        assert!(
            err.to_lowercase().contains("not a directory")
                && err.contains(&*file.to_string_lossy()),
            "{err}"
        );
    }
}

/// A closed store takes nothing from containers: a process of another
/// user (`--user`, `exec --user`) reads its volume and a bind source that
/// sits under a directory only root may enter, as the runtime mounts them
/// as root before the user switch.
#[test]
fn other_users_in_containers_still_reach_volumes_and_bind_sources() {
    let s = OpenParentStore::new();
    let work = tempfile::tempdir().unwrap();
    let tar = berth_testkit::busybox_tar(work.path());
    s.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        &tar.to_string_lossy(),
        "busybox",
    ]);
    // A bind source under a 0700 directory, readable once mounted.
    let closed = work.path().join("closed");
    std::fs::create_dir_all(closed.join("share")).unwrap();
    std::fs::write(closed.join("share/f"), "bound\n").unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bind = format!("{}:/b:ro", closed.join("share").display());
    s.ok(&[
        "run",
        "--rm",
        "-v",
        "vol:/data",
        "busybox",
        "sh",
        "-c",
        "echo in-volume > /data/f && chmod 755 /data",
    ]);
    let out = s.ok(&[
        "run",
        "--rm",
        "--user",
        "65534:65534",
        "-v",
        "vol:/data",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/f /b/f && ls / >/dev/null && echo ok",
    ]);
    assert_eq!(out, "in-volume\nbound\nok\n");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "-v",
        "vol:/data",
        "busybox",
        "sleep",
        "600",
    ]);
    let out = s.ok(&["exec", "--user", "65534", "victim", "cat", "/data/f"]);
    assert_eq!(out, "in-volume\n");
    assert_eq!(mode(&s.root()), 0o700);
}

/// `--root` or `--runroot` naming a directory berth did not make (one that
/// holds other files) is refused before anything in it changes: closing it
/// to other users or writing a store into it would break what lives there
/// (`--root /` once made `/` owner-only, and every program a user ran
/// failed). An empty directory, and one berth made, are taken.
#[test]
fn a_directory_berth_did_not_make_is_not_taken_for_a_store() {
    if !berth_testkit::root_or_skip("a_directory_berth_did_not_make_is_not_taken_for_a_store") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("home");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fresh_store = dir.path().join("store");
    let fresh_run = dir.path().join("run");
    for (root, runroot, flag) in [
        (&foreign, &fresh_run, "--root"),
        (&fresh_store, &foreign, "--runroot"),
    ] {
        let o = Command::new(BIN)
            .args(["--root".as_ref(), root.as_os_str()])
            .args(["--runroot".as_ref(), runroot.as_os_str()])
            .arg("ps")
            .output()
            .unwrap();
        expect_code(&o, 125, &format!("ps with {flag} on a foreign directory"));
        let err = stderr(&o);
        assert!(
            err.contains(flag) && err.contains("did not make"),
            "the refusal names the flag: {err}"
        );
        assert_eq!(
            mode(&foreign),
            0o755,
            "{flag}: the directory's mode is kept"
        );
        let names: Vec<_> = std::fs::read_dir(&foreign)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["notes.txt"], "{flag}: nothing was written into it");
    }
    std::fs::create_dir(&fresh_store).unwrap();
    for _ in 0..2 {
        let o = Command::new(BIN)
            .args(["--root".as_ref(), fresh_store.as_os_str()])
            .args(["--runroot".as_ref(), fresh_run.as_os_str()])
            .arg("ps")
            .output()
            .unwrap();
        expect_code(
            &o,
            0,
            "ps on an empty directory, then on the store berth made there",
        );
    }
    assert_eq!(mode(&fresh_store), 0o700);
}
