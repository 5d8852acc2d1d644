//! Real Debian-based images round-trip between berth and a real Docker
//! (issue 14): a build that makes every kind of layer entry (a file
//! capability, a setuid file, an opaque directory, whiteouts of a file and
//! of a directory, hard links, a device node, a fifo, a user xattr, a
//! directory's owner and mode) goes berth build → run → save → `docker
//! load` → run, and berth build → push → `docker pull` → run; the reverse
//! starts with `docker build` and `docker push`, and berth pulls, runs,
//! commits and saves for `docker load`. What each side sees must be what
//! the Dockerfile made, and the file trees (modes, owners, sizes, link
//! targets, hard links, device numbers, capabilities) as berth and as
//! Docker export them must be equal.
//!
//! The base is debootstrap's minbase, made once and cached
//! (`berth_testkit::debian`); the packages are installed from .deb files
//! downloaded once on the host, so no RUN step needs a mirror.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_testkit::dockerd::Dockerd;
use berth_testkit::registry::Registry;
use berth_testkit::snippet::remove_test_dir;
use berth_testkit::store::Store;
use berth_testkit::{expect_code, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// Packages whose files carry what a layer must keep: ping's cap_net_raw
/// (security.capability), setfattr/getfattr, getcap.
const DEBS: &[&str] = &["iputils-ping", "attr", "libcap2-bin"];

/// Every kind of layer entry, in one RUN over the Debian base.
const DOCKERFILE: &str = r#"FROM debian-base:1
COPY debs /tmp/debs
RUN dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs \
 && echo '#!/bin/sh' > /usr/local/bin/suid-true && chmod 4755 /usr/local/bin/suid-true \
 && rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo new > /etc/apt/apt.conf.d/only \
 && rm /etc/debian_version && rm -rf /usr/share/doc/libidn2-0 \
 && mkdir /srv/t && echo data > /srv/t/a && ln /srv/t/a /srv/t/b && chown 123:456 /srv/t/a \
 && mknod /srv/t/null c 1 3 && mkfifo /srv/t/fifo && ln -s a /srv/t/sym \
 && setfattr -n user.berth -v roundtrip /srv/t/a \
 && mkdir -p /var/lib/app && chown 101:102 /var/lib/app && chmod 0750 /var/lib/app
CMD ["bash"]
"#;

/// What a container of the image prints: each line one kind of entry.
const CHECK: &str = r#"getcap /usr/bin/ping
stat -c '%A %h %u:%g %s %F %t,%T %n' /usr/local/bin/suid-true /srv/t/a /srv/t/b /srv/t/null /srv/t/fifo /srv/t/sym /var/lib/app
ls -A /etc/apt/apt.conf.d; cat /etc/apt/apt.conf.d/only
test -e /etc/debian_version && echo "debian_version: still there"
test -e /usr/share/doc/libidn2-0 && echo "libidn2-0 docs: still there"
echo "user.berth: $(getfattr --absolute-names -n user.berth --only-values /srv/t/a 2>/dev/null || echo none)"
"#;

/// CHECK's output for the image, but for the user xattr's line.
const EXPECTED: &str = "/usr/bin/ping cap_net_raw=ep
-rwsr-xr-x 1 0:0 10 regular file 0,0 /usr/local/bin/suid-true
-rw-r--r-- 2 123:456 5 regular file 0,0 /srv/t/a
-rw-r--r-- 2 123:456 5 regular file 0,0 /srv/t/b
crw-r--r-- 1 0:0 0 character special file 1,3 /srv/t/null
prw-r--r-- 1 0:0 0 fifo 0,0 /srv/t/fifo
lrwxrwxrwx 1 0:0 1 symbolic link 0,0 /srv/t/sym
drwxr-x--- 2 101:102 4096 directory 0,0 /var/lib/app
only
new
";

/// What a named volume's top directory is on a first mount: the image
/// directory's owner and mode, copied (Docker's behaviour).
const VOLUME_CHECK: &str = "stat -c '%u:%g %a' /var/lib/app";

/// The test's directory, a private berth store with its own auth files,
/// a private dockerd with the Debian base imported into both.
struct Fixture {
    dir: PathBuf,
    berth: Store,
    docker: Dockerd,
    started: std::time::Instant,
}

impl Fixture {
    /// None when a tool, root or the Debian base is missing (said; a
    /// failure under CI).
    fn new(test: &str) -> Option<Fixture> {
        if !berth_testkit::root_or_skip(test) {
            return None;
        }
        let started = std::time::Instant::now();
        let base = berth_testkit::debian::base_tar()?;
        let debs = berth_testkit::debian::debs(DEBS)?;
        let docker = Dockerd::start(&[])?;
        let dir = PathBuf::from(format!("/tmp/berth-rt-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ctx/debs")).unwrap();
        for e in std::fs::read_dir(&debs).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                std::fs::copy(e.path(), dir.join("ctx/debs").join(e.file_name())).unwrap();
            }
        }
        std::fs::write(dir.join("ctx/Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(dir.join("check.sh"), CHECK).unwrap();
        let run = tempfile::tempdir_in("/run").unwrap();
        let home = tempfile::tempdir().unwrap();
        let berth = Store::empty(BIN)
            .flag("--runroot")
            .flag(run.path())
            .env("HOME", home.path())
            .env("REGISTRY_AUTH_FILE", home.path().join("auth.json"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                home.path().join("registries.conf"),
            )
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .keep(run)
            .keep(home);
        berth.ok(&["import", base.to_str().unwrap(), "debian-base:1"]);
        let out = docker.sh(&format!("$D import {} debian-base:1", base.display()));
        assert_eq!(out.code(), 0, "docker import of the Debian base\n{out}");
        let f = Fixture {
            dir,
            berth,
            docker,
            started,
        };
        f.step("bases imported");
        Some(f)
    }

    /// Says how long the test has run (a slow step shows in the log).
    fn step(&self, what: &str) {
        eprintln!("{:>6.1}s {what}", self.started.elapsed().as_secs_f64());
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// CHECK in a berth container of `image`.
    fn berth_check(&self, image: &str) -> String {
        let mount = format!("{}:/check.sh:ro", self.path("check.sh"));
        self.berth.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &mount,
            image,
            "bash",
            "/check.sh",
        ])
    }

    /// CHECK in a Docker container of `image`.
    fn docker_check(&self, image: &str) -> String {
        self.docker_ok(&format!(
            "$D run --rm --network none -v {}:/check.sh:ro {image} bash /check.sh",
            self.path("check.sh")
        ))
    }

    /// A Docker command line (bash, `$D` the client) that must succeed.
    fn docker_ok(&self, line: &str) -> String {
        let out = self.docker.sh(line);
        assert_eq!(out.code(), 0, "{out}\n{}", self.docker.log());
        out.stdout
    }

    /// The first mount of a new named volume over /var/lib/app, in berth
    /// and in Docker: both must copy the image directory's owner and mode.
    fn check_volume_top(&self, image: &str, volume: &str) {
        let mount = format!("{volume}:/var/lib/app");
        let b = self.berth.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &mount,
            image,
            "bash",
            "-c",
            VOLUME_CHECK,
        ]);
        let d = self.docker_ok(&format!(
            "$D run --rm --network none -v {mount} {image} bash -c \"{VOLUME_CHECK}\""
        ));
        assert_eq!(b, "101:102 750\n", "berth's new volume top");
        assert_eq!(d, b, "Docker's new volume top");
    }

    /// The file trees of `berth_image` and `docker_image` as each side
    /// exports a container of it: equal, but for what each engine makes
    /// for a container (see [`tree`]).
    fn assert_same_tree(&self, berth_image: &str, docker_image: &str) {
        let b = self.path("berth-export.tar");
        let d = self.path("docker-export.tar");
        let id = self
            .berth
            .ok(&["create", "--network", "none", berth_image, "true"]);
        self.berth.ok(&["export", id.trim(), "-o", &b]);
        self.berth.ok(&["rm", id.trim()]);
        self.docker_ok(&format!(
            "id=$($D create --network none {docker_image} true) && $D export $id -o {d} && $D rm $id >/dev/null"
        ));
        self.step("exported");
        let (bt, dt) = (tree(Path::new(&b)), tree(Path::new(&d)));
        self.step("trees read");
        assert!(bt.len() > 5000, "a Debian tree: {} entries", bt.len());
        let mut diffs = Vec::new();
        for name in bt.keys().chain(dt.keys().filter(|k| !bt.contains_key(*k))) {
            let (x, y) = (bt.get(name), dt.get(name));
            if x != y {
                diffs.push(format!("{name}\n  berth:  {x:?}\n  docker: {y:?}"));
            }
        }
        assert!(
            diffs.is_empty(),
            "{} of {} entries differ:\n{}",
            diffs.len(),
            bt.len(),
            diffs[..diffs.len().min(20)].join("\n")
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        remove_test_dir(&self.dir);
    }
}

/// The entries of an exported container tar: name → kind, mode, owner,
/// size, link target, device numbers, mtime, xattrs and, for a file with
/// hard links, the names it shares its inode with (whichever name an
/// archive wrote first). Left out: what each engine makes for a container
/// rather than takes from the image (/dev, /.dockerenv, the files it
/// mounts over in /etc and the times of their directories).
fn tree(tar_path: &Path) -> BTreeMap<String, String> {
    let made_for_container = [
        ".dockerenv",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/mtab",
    ];
    let mut entries = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(tar_path).unwrap());
    // Seeking past file bodies: only the headers are read.
    for e in archive.entries_with_seek().unwrap() {
        let mut e = e.unwrap();
        let raw = e.path().unwrap().to_string_lossy().into_owned();
        let name = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let name = if name.is_empty() { ".".into() } else { name };
        if name == "dev" || name.starts_with("dev/") || made_for_container.contains(&&*name) {
            continue;
        }
        let h = e.header().clone();
        let kind = h.entry_type();
        let mtime = if ["."].contains(&&*name) || name == "etc" {
            0
        } else {
            h.mtime().unwrap()
        };
        let mut xattrs = Vec::new();
        if let Some(ext) = e.pax_extensions().unwrap() {
            for x in ext {
                let x = x.unwrap();
                if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push(format!("{k}={:?}", x.value_bytes()));
                }
            }
        }
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        if kind == tar::EntryType::Link {
            let target = link.clone().unwrap();
            links.insert(name.clone(), target.trim_start_matches("./").to_string());
        }
        let kind_name = match kind {
            tar::EntryType::Link | tar::EntryType::Regular => "file".to_string(),
            k => format!("{k:?}"),
        };
        entries.insert(
            name,
            (
                kind_name,
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.size().unwrap(),
                if kind == tar::EntryType::Symlink {
                    link
                } else {
                    None
                },
                // Device numbers mean something for devices only.
                if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
                    (
                        h.device_major().ok().flatten(),
                        h.device_minor().ok().flatten(),
                    )
                } else {
                    (None, None)
                },
                mtime,
                xattrs,
            ),
        );
    }
    // Hard links: each name gets its group, and the size and xattrs of the
    // entry that carried the bytes.
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, target) in &links {
        groups.entry(target.clone()).or_default().push(name.clone());
    }
    let mut out = BTreeMap::new();
    for (name, (kind, mode, uid, gid, size, link, dev, mtime, xattrs)) in &entries {
        let first = links.get(name).unwrap_or(name);
        let (size, xattrs) = match entries.get(first) {
            Some(f) if first != name => (f.4, &f.8),
            _ => (*size, xattrs),
        };
        let mut group: Vec<&str> = groups
            .get(first)
            .map(|g| g.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if !group.is_empty() {
            group.push(first);
            group.sort_unstable();
        }
        out.insert(
            name.clone(),
            format!(
                "{kind} {mode:o} {uid}:{gid} {size} link={link:?} dev={dev:?} mtime={mtime} xattrs={xattrs:?} hardlinks={group:?}"
            ),
        );
    }
    out
}

/// CHECK's output with the user xattr's line for a value (None: no such
/// xattr), split off: the line Docker's builder drops.
fn split_xattr(out: &str) -> (String, String) {
    let (rest, last) = out
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("short check output:\n{out}"));
    (format!("{rest}\n"), last.to_string())
}

/// berth build → berth run → berth save → docker load → docker run: the
/// same entries on both sides, the same file tree; a new named volume's
/// top takes the image directory's owner and mode on both.
#[test]
fn berth_build_save_docker_load() {
    let Some(f) = Fixture::new("save") else {
        return;
    };
    f.berth
        .ok(&["build", "-q", "-t", "rt-save:1", &f.path("ctx")]);
    f.step("built");
    let (b, bx) = split_xattr(&f.berth_check("rt-save:1"));
    assert_eq!(b, EXPECTED, "berth run of berth's build");
    assert_eq!(bx, "user.berth: roundtrip", "berth keeps a user xattr");

    f.berth
        .ok(&["save", "-o", &f.path("image.tar"), "rt-save:1"]);
    f.docker_ok(&format!("$D load -i {}", f.path("image.tar")));
    f.step("saved and loaded");
    let (d, dx) = split_xattr(&f.docker_check("rt-save:1"));
    assert_eq!(d, EXPECTED, "docker run of berth's build, loaded");
    assert_eq!(dx, "user.berth: roundtrip", "docker load applies the xattr");
    f.check_volume_top("rt-save:1", "rt-save-vol");
    f.assert_same_tree("rt-save:1", "rt-save:1");
}

/// berth build → push to a loopback registry → docker pull → docker run.
/// Then a layer file removed from the store: push names the local file,
/// not the network.
#[test]
fn berth_push_docker_pull() {
    let Some(f) = Fixture::new("push") else {
        return;
    };
    let reg = Registry::start("", "");
    let name = format!("{}/rt/pushed:1", reg.addr());
    f.berth.ok(&["build", "-q", "-t", &name, &f.path("ctx")]);
    let out = f.berth.ok(&["push", "--tls-verify=false", &name]);
    f.step("built and pushed");
    assert!(out.contains("Pushed"), "{out}");
    // Docker treats 127.0.0.0/8 as an insecure registry by default.
    f.docker_ok(&format!("$D pull -q {name}"));
    f.step("pulled by docker");
    let (d, dx) = split_xattr(&f.docker_check(&name));
    assert_eq!(d, EXPECTED, "docker run of berth's build, pulled");
    assert_eq!(
        dx, "user.berth: roundtrip",
        "the pushed layer has the xattr"
    );
    f.check_volume_top(&name, "rt-push-vol");
    f.assert_same_tree(&name, &name);

    // A file of the built layer gone from the store (a damaged store):
    // reading it fails here, and the error says so.
    let layers = f.berth.path().join("layers");
    let found = std::process::Command::new("find")
        .arg(&layers)
        .args(["-path", "*/srv/t/a", "-type", "f"])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&found.stdout);
    let victim = found
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no srv/t/a under {}", layers.display()));
    std::fs::remove_file(victim).unwrap();
    let other = Registry::start("", "");
    for extra in [&[][..], &["--compression-format", "gzip"][..]] {
        let dest = format!("{}/rt/broken:1", other.addr());
        let mut args = vec!["push", "--tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&name, &dest]);
        let o = f.berth.run(&args);
        expect_code(&o, 1, "push with a layer file missing");
        let err = stderr(&o);
        assert!(
            !err.contains("network") && !err.contains("unreachable"),
            "a local read failure called a network error ({extra:?}): {err}"
        );
        assert!(
            err.contains("local") && err.contains("srv/t/a"),
            "the error names the missing local file ({extra:?}): {err}"
        );
    }
}

/// The reverse: docker build → docker push → berth pull → berth run →
/// berth commit → berth save → docker load → docker run; the trees equal
/// at each hand-over.
#[test]
fn docker_build_push_berth_pull_commit_save() {
    let Some(f) = Fixture::new("reverse") else {
        return;
    };
    let reg = Registry::start("", "");
    let name = format!("{}/rt/docker-built:1", reg.addr());
    // The classic builder, named: BuildKit (if the environment asked for
    // it) would need a set-up of its own and is not the peer measured.
    f.docker_ok(&format!(
        "DOCKER_BUILDKIT=0 $D build -q --network none -t {name} {} && $D push {name} >/dev/null",
        f.path("ctx")
    ));
    f.step("built and pushed by docker");
    // Docker's own view first: its builder keeps the capability but not
    // the user xattr (its archives carry security.capability only).
    let (d, dx) = split_xattr(&f.docker_check(&name));
    assert_eq!(d, EXPECTED, "docker run of Docker's build");
    assert_eq!(dx, "user.berth: none", "Docker's builder drops user xattrs");

    f.berth.ok(&["pull", "-q", "--tls-verify=false", &name]);
    f.step("pulled by berth");
    let (b, bx) = split_xattr(&f.berth_check(&name));
    assert_eq!(b, EXPECTED, "berth run of Docker's build, pulled");
    assert_eq!(bx, "user.berth: none");
    f.check_volume_top(&name, "rt-rev-vol");
    f.assert_same_tree(&name, &name);

    // A container's changes committed: an opaque directory again, a
    // whiteout, a new hard link to a file of a lower layer, a capability.
    let id = f.berth.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        &name,
        "bash",
        "-c",
        "rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo commit > /etc/apt/apt.conf.d/c \
         && rm /srv/t/b && ln /srv/t/a /srv/t/c && setcap cap_net_raw+ep /usr/local/bin/suid-true",
    ]);
    let id = id.trim();
    f.berth.ok(&["wait", id]);
    let logs = f.berth.run(&["logs", id]);
    expect_code(&logs, 0, "logs");
    f.berth.ok(&["commit", id, "rt-committed:1"]);
    f.berth
        .ok(&["save", "-o", &f.path("committed.tar"), "rt-committed:1"]);
    f.docker_ok(&format!("$D load -i {}", f.path("committed.tar")));
    f.step("committed, saved, loaded");
    let probe = "getcap /usr/local/bin/suid-true; stat -c '%A %h %n' /usr/local/bin/suid-true /srv/t/a /srv/t/c; \
                 ls -A /etc/apt/apt.conf.d; test -e /srv/t/b && echo b: still there; true";
    let want = "/usr/local/bin/suid-true cap_net_raw=ep
-rwsr-xr-x 1 /usr/local/bin/suid-true
-rw-r--r-- 2 /srv/t/a
-rw-r--r-- 2 /srv/t/c
c
";
    let b = f.berth.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "rt-committed:1",
        "bash",
        "-c",
        probe,
    ]);
    assert_eq!(b, want, "berth run of the committed image");
    let d = f.docker_ok(&format!(
        "$D run --rm --network none rt-committed:1 bash -c \"{probe}\""
    ));
    assert_eq!(d, want, "docker run of the committed image, loaded");
    f.assert_same_tree("rt-committed:1", "rt-committed:1");
}
