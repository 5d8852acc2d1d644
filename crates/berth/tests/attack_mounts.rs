//! Hostile images against the places the runtime mounts on and writes to
//! (runc's CVE-2025-31133, -52565 and -52881 patterns), through the real
//! `berth` binary: each image is a busybox rootfs with a planted symlink,
//! imported with `berth import -c 'VOLUME ...'` as a user would pull it.
//! Every attack checks the host's `kernel.core_pattern` is untouched and
//! that berth either refuses with a one-line error or the container sees
//! only its own files.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::Path;

use berth_testkit::core_pattern::{HostCorePattern, EVIL, PATH as CORE_PATTERN};
use berth_testkit::{expect_code, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// Writes a pipe-program core_pattern into every file a container could
/// have been handed in place of a host sysctl.
fn write_everywhere() -> String {
    format!(
        "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /dev/null /dev/console \
         /dev/zero /etc/hosts /etc/hostname /etc/resolv.conf /proc/sys/kernel/core_pattern; do \
         [ -e $f ] && echo '{EVIL}' > $f; done; echo done"
    )
}

/// Imports the busybox rootfs, changed by `plant` (given the rootfs
/// directory), as `name` with the Dockerfile instructions `changes`.
fn import_hostile(b: &Berth, name: &str, changes: &[&str], plant: impl Fn(&Path)) {
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(berth_testkit::busybox_rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success(), "copy the busybox rootfs");
    plant(&rootfs);
    let tar = work.path().join("image.tar");
    let st = std::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar the hostile rootfs");
    let tar = tar.to_string_lossy().into_owned();
    if changes.is_empty() {
        b.ok(&["import", "-c", "CMD [\"sh\"]", &tar, name]);
        return;
    }
    // `import -c` takes no VOLUME (as in Docker): the instructions go on
    // top with `berth build`, as an image author would write them.
    let base = format!("{name}-base");
    b.ok(&["import", "-c", "CMD [\"sh\"]", &tar, &base]);
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\n{}\n", changes.join("\n")),
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", name, ctx.to_str().unwrap()]);
}

fn symlink(to: &str, at: &Path) {
    let _ = std::fs::remove_file(at);
    let _ = std::fs::remove_dir(at);
    std::os::unix::fs::symlink(to, at).unwrap();
}

/// Runs `args`, checks the host's core_pattern, and that berth refused with
/// one line containing `refusal`.
fn refused(b: &Berth, host: &HostCorePattern, what: &str, args: &[&str], refusal: &str) {
    let o = b.run(args);
    host.assert_untouched(what);
    assert_ne!(o.status.code(), Some(0), "{what} ran: {}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains(refusal), "{what}: want {refusal:?} in:\n{err}");
    assert_eq!(
        berth_testkit::error_lines(&err),
        1,
        "{what}: one line: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// CVE-2025-31133 through an image: `VOLUME /dev` makes the image's /dev
/// the container's (as in Docker), and its dev/null points at the host's
/// core_pattern (absolute, relative, up and out, through /proc/self) or is
/// a plain file. The masks bound from it would be writable host sysctls.
#[test]
fn volume_dev_with_a_planted_null_cannot_reach_host_sysctls() {
    let host = HostCorePattern::save();
    let b = Berth::empty(BIN);
    let nulls = [
        ("abs", CORE_PATTERN),
        ("rel", "../proc/sys/kernel/core_pattern"),
        ("up", "../../../../../../proc/sys/kernel/core_pattern"),
        ("self", "/proc/self/root/proc/sys/kernel/core_pattern"),
        ("file", ""),
    ];
    let script = write_everywhere();
    for (name, to) in nulls {
        let image = format!("null-{name}");
        import_hostile(&b, &image, &["VOLUME /dev"], |r| {
            let null = r.join("dev/null");
            if to.is_empty() {
                std::fs::write(&null, "").unwrap();
            } else {
                symlink(to, &null);
            }
        });
        refused(
            &b,
            &host,
            &image,
            &["run", "--rm", &image, "sh", "-c", &script],
            "/dev/null",
        );
    }
    // /dev itself a symlink into procfs (no VOLUME): the engine's /dev
    // tmpfs, device nodes and masks would all land in /proc/sys/kernel.
    import_hostile(&b, "dev-dir", &[], |r| {
        symlink("proc/sys/kernel", &r.join("dev"))
    });
    refused(
        &b,
        &host,
        "dev-dir",
        &["run", "--rm", "dev-dir", "sh", "-c", &script],
        "resolves to /proc/sys/kernel",
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing left behind");
}

/// The engine's /etc/hosts, /etc/hostname and /etc/resolv.conf binds, with
/// the image's files symlinks into /proc and out of the root: like Docker's
/// init layer, the container gets regular files with the engine's content,
/// and writing them changes nothing on the host.
#[test]
fn image_etc_files_symlinked_into_proc_get_the_engines_files() {
    let host = HostCorePattern::save();
    let b = Berth::empty(BIN);
    let plant = |r: &Path| {
        symlink(CORE_PATTERN, &r.join("etc/hosts"));
        symlink("../proc/sys/kernel/hostname", &r.join("etc/hostname"));
        symlink(
            "../../../../../proc/self/mountinfo",
            &r.join("etc/resolv.conf"),
        );
    };
    import_hostile(&b, "etc-links", &[], plant);
    // The same files in a `VOLUME /etc`, filled from the image: the volume
    // must neither bring the links back nor cover the engine's files.
    import_hostile(&b, "etc-volume", &["VOLUME /etc"], plant);
    let script = format!(
        "cat /etc/hostname; grep -q localhost /etc/hosts && echo hosts; \
         for f in /etc/hosts /etc/hostname /etc/resolv.conf; do [ -L $f ] && echo LINK $f; echo '{EVIL}' > $f; done; echo done"
    );
    for image in ["etc-links", "etc-volume"] {
        let o = b.run(&["run", "--rm", "-h", "boxname", image, "sh", "-c", &script]);
        host.assert_untouched(image);
        expect_code(&o, 0, image);
        let out = stdout(&o);
        assert_eq!(
            out, "boxname\nhosts\ndone\n",
            "{image}: the engine's files, no links: {out}"
        );
    }
}

/// Image VOLUMEs on /, /proc, /sys or below them are refused at create
/// (Docker fails at start for / and /proc; /sys is berth's own rule), and
/// nothing is left: no container, no volume.
#[test]
fn image_volumes_on_the_root_proc_or_sys_are_refused() {
    let host = HostCorePattern::save();
    let b = Berth::empty(BIN);
    for (i, vol) in ["/", "/proc", "/proc/sys/kernel", "/sys", "/sys/kernel"]
        .iter()
        .enumerate()
    {
        let image = format!("vol{i}");
        import_hostile(&b, &image, &[&format!("VOLUME {vol}")], |r| {
            symlink(CORE_PATTERN, &r.join("core_pattern"));
        });
        refused(
            &b,
            &host,
            &image,
            &["run", "--rm", &image, "sh", "-c", &write_everywhere()],
            &format!("VOLUME {vol}"),
        );
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "no container left");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "", "no volume left");
}

/// `--sysctl` can only set what lives in the container's own namespaces:
/// kernel.core_pattern (in any spelling) is the host's.
#[test]
fn host_global_sysctls_are_refused() {
    let host = HostCorePattern::save();
    let b = Berth::with_busybox(BIN, &[]);
    for key in [
        "kernel.core_pattern",
        "kernel/core_pattern",
        "net/../kernel/core_pattern",
    ] {
        let flag = format!("{key}={EVIL}");
        refused(
            &b,
            &host,
            key,
            &["run", "--rm", "--sysctl", &flag, "busybox", "true"],
            "sysctl",
        );
    }
    // The container's own network namespace: allowed and applied.
    let o = b.run(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_default_ttl=77",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ip_default_ttl",
    ]);
    expect_code(&o, 0, "namespaced sysctl");
    assert_eq!(stdout(&o), "77\n");
    host.assert_untouched("sysctls");
}
