//! `volume create --opt` (the local driver's type, device and o), through
//! the real binary as root: what the container sees is the mount the
//! options describe, made when a container starts, shared by the
//! containers using the volume, gone when the last stops, and never a
//! reason to delete a bound host directory's files.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::{expect_code, root_or_skip, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

#[test]
fn tmpfs_volume_is_a_tmpfs_of_the_size_asked_shared_while_used() {
    if !root_or_skip("tmpfs_volume_is_a_tmpfs_of_the_size_asked_shared_while_used") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    b.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=3m,mode=1777",
        "vt",
    ]);
    assert_eq!(
        b.ok(&["volume", "inspect", "-f", "{{json .Options}}", "vt"])
            .trim(),
        r#"{"device":"tmpfs","o":"size=3m,mode=1777","type":"tmpfs"}"#
    );
    // The filesystem's own view: type, and size in blocks of its block size.
    let seen = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vt:/v",
        "busybox",
        "sh",
        "-c",
        "stat -f -c '%T %b %S' /v; stat -c '%a' /v",
    ]);
    let mut lines = seen.lines();
    let fs: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    assert_eq!(fs.first(), Some(&"tmpfs"), "{seen}");
    let bytes: u64 = fs[1].parse::<u64>().unwrap() * fs[2].parse::<u64>().unwrap();
    assert_eq!(bytes, 3 << 20, "{seen}");
    assert_eq!(lines.next(), Some("1777"), "mode= reaches tmpfs: {seen}");
    // Two containers at once share one mount.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "--network",
        "none",
        "-v",
        "vt:/v",
        "busybox",
        "sh",
        "-c",
        "echo shared > /v/f; sleep 60",
    ]);
    b.wait_for("writer", "{{.State.Running}}", "true");
    let mut read = String::new();
    for _ in 0..100 {
        read = b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "vt:/v",
            "busybox",
            "cat",
            "/v/f",
        ]);
        if !read.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(read, "shared\n");
    // The last user gone, the tmpfs goes (as Docker unmounts it): nothing
    // of it stays mounted, and its content is gone.
    b.ok(&["rm", "-f", "writer"]);
    let mountpoint = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vt"]);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&format!(" {} ", mountpoint.trim())),
        "still mounted: {mountinfo}"
    );
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vt:/v",
        "busybox",
        "ls",
        "/v",
    ]);
    expect_code(&o, 0, "ls a fresh tmpfs");
    assert_eq!(berth_testkit::stdout(&o), "");
    b.ok(&["volume", "rm", "vt"]);
    assert_eq!(b.mounts(), 0);
}

#[test]
fn bind_volume_shows_the_host_directory_and_rm_leaves_it() {
    if !root_or_skip("bind_volume_shows_the_host_directory_and_rm_leaves_it") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("from-host"), "hello\n").unwrap();
    let device = format!("device={}", host.path().display());
    b.ok(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &device,
        "vb",
    ]);
    let seen = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vb:/v",
        "busybox",
        "sh",
        "-c",
        "cat /v/from-host; echo back > /v/from-container",
    ]);
    assert_eq!(seen, "hello\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("from-container")).unwrap(),
        "back\n"
    );
    // Removing the volume unmounts; it must not delete the host's files.
    b.ok(&["volume", "rm", "vb"]);
    assert!(host.path().join("from-host").exists());
    assert!(host.path().join("from-container").exists());
    assert_eq!(b.mounts(), 0);
}

#[test]
fn bad_volume_options_are_refused_in_dockers_words() {
    if !root_or_skip("bad_volume_options_are_refused_in_dockers_words") {
        return;
    }
    let b = Berth::with_busybox(BIN, &[]);
    for (opts, words) in [
        (
            &["--opt", "foo=bar"][..],
            "create vx: invalid option: \"foo\"",
        ),
        (
            &["--opt", "type=tmpfs"][..],
            "create vx: missing required option: \"device\"",
        ),
        (
            &["--opt", "size=1m"][..],
            "create vx: quota size requested but no quota support",
        ),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend_from_slice(opts);
        args.push("vx");
        let o = b.run(&args);
        expect_code(&o, 1, &args.join(" "));
        assert_eq!(stderr(&o), format!("Error response from daemon: {words}\n"));
    }
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    // What the options name is only tried at mount: a missing device fails
    // the run (127, as docker's "no such file or directory") and leaves
    // nothing mounted.
    b.ok(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        "device=/nonexistent-berth-test",
        "vm",
    ]);
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vm:/v",
        "busybox",
        "true",
    ]);
    expect_code(&o, 127, "run with a missing bind device");
    assert!(
        stderr(&o).contains("failed to mount local volume: mount /nonexistent-berth-test:"),
        "{}",
        stderr(&o)
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    b.ok(&["volume", "rm", "vm"]);
    assert_eq!(b.mounts(), 0);
}
