//! The runtime library driven in-process, the way the engine's launcher
//! drives it: the spec handed over in memory (the bundle directory holds no
//! config.json) and the process's stdio given as owned descriptors, put on
//! the child's 0, 1 and 2 and never on ours.
//!
//! The library forks, so it must run in a single-threaded process started
//! from a protected binary: the test runs its ignored twin in a process of
//! its own (`--exact ... --ignored`), which re-executes itself protected.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use berth_runtime::{Container, CreateOptions, ExecOptions, ExecOutcome, Stdio};

/// Set in the process that runs [`in_process_launch`].
const INNER: &str = "BERTH_TEST_LIBRARY_LAUNCH";

#[test]
fn spec_in_memory_and_stdio_as_owned_descriptors() {
    if !berth_testkit::root_or_skip("spec_in_memory_and_stdio_as_owned_descriptors") {
        return;
    }
    // Made here, once, under the fixture lock (the inner process only reads).
    berth_testkit::busybox_rootfs();
    let exe = std::env::current_exe().expect("our test binary");
    let out = berth_testkit::output_via_files(
        std::process::Command::new(exe)
            .args([
                "--exact",
                "in_process_launch",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INNER, "1"),
    );
    let text = format!(
        "{}{}",
        berth_testkit::stdout(&out),
        berth_testkit::stderr(&out)
    );
    assert!(out.status.success(), "in-process launch failed:\n{text}");
    // The inner test really ran (and was not filtered out).
    assert!(text.contains("in-process launch: done"), "{text}");
}

#[test]
#[ignore = "run by spec_in_memory_and_stdio_as_owned_descriptors in a process of its own"]
fn in_process_launch() {
    assert!(
        std::env::var_os(INNER).is_some(),
        "run through spec_in_memory_and_stdio_as_owned_descriptors"
    );
    berth_runtime::exe::ensure_protected().expect("re-execute protected");
    let ours_before = own_stdio();
    let root = tempfile::tempdir().expect("runtime root");
    let bundle = tempfile::tempdir().expect("bundle dir");

    // The init: what it reads on stdin comes back on stdout, apart from
    // what it writes on stderr.
    let id = format!("lib-launch-{}", std::process::id());
    let (stdio, mut ends) = pipes();
    let mut c = Container::create(CreateOptions {
        id: id.clone(),
        bundle: bundle.path().to_path_buf(),
        spec: Some(spec(&[
            "sh",
            "-c",
            "echo out; echo err >&2; read x; echo got:$x",
        ])),
        stdio: Some(stdio),
        root: root.path().to_path_buf(),
        ..Default::default()
    })
    .expect("create from a spec in memory");
    c.start().expect("start");
    let pid = c.state.pid;
    ends.input.write_all(b"hi\n").expect("write stdin");
    drop(ends.input);
    // Both read to end of file: the runtime kept no copy of the write ends.
    assert_eq!(read_to_end(&ends.stdout), "out\ngot:hi\n");
    assert_eq!(read_to_end(&ends.stderr), "err\n");
    assert_eq!(wait(pid), 0);
    Container::load(root.path(), &id)
        .expect("load")
        .delete(true)
        .expect("delete");
    assert!(
        !bundle.path().join("config.json").exists(),
        "the runtime wrote a config.json of its own"
    );

    // exec with pipes of its own, beside an init that only waits.
    let (stdio, _init_ends) = pipes();
    let mut c = Container::create(CreateOptions {
        id: id.clone(),
        bundle: bundle.path().to_path_buf(),
        spec: Some(spec(&["sleep", "60"])),
        stdio: Some(stdio),
        root: root.path().to_path_buf(),
        ..Default::default()
    })
    .expect("create");
    c.start().expect("start");
    let (stdio, mut ends) = pipes();
    let mut process = c.state.config.process().clone().expect("process");
    process.set_args(Some(
        ["sh", "-c", "echo $((6*7)); cat; echo e >&2; exit 3"]
            .map(String::from)
            .to_vec(),
    ));
    let outcome = c
        .exec(ExecOptions {
            process,
            console_socket: None,
            pid_file: None,
            detach: true,
            preserve_fds: 0,
            stdio: Some(stdio),
        })
        .expect("exec");
    let ExecOutcome::Detached(exec_pid) = outcome else {
        panic!("a detached exec was waited for: {outcome:?}");
    };
    ends.input.write_all(b"abc\n").expect("write stdin");
    drop(ends.input);
    assert_eq!(read_to_end(&ends.stdout), "42\nabc\n");
    assert_eq!(read_to_end(&ends.stderr), "e\n");
    assert_eq!(wait(exec_pid), 3);
    let init = c.state.pid;
    c.delete(true).expect("delete the running container");
    // Reaped by delete, or now.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(init), None);

    assert_eq!(own_stdio(), ours_before, "our own 0, 1, 2 were replaced");
    println!("in-process launch: done");
}

fn spec(args: &[&str]) -> oci_spec::runtime::Spec {
    let mut c = berth_testkit::default_config(args);
    c["root"]["path"] = berth_testkit::busybox_rootfs().display().to_string().into();
    c["root"]["readonly"] = true.into();
    serde_json::from_value(c).expect("the default spec is a Spec")
}

/// Our ends of a process's stdio.
struct Ends {
    input: std::fs::File,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

fn pipes() -> (Stdio, Ends) {
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    (
        Stdio {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        },
        Ends {
            input: in_w.into(),
            stdout: out_r,
            stderr: err_r,
        },
    )
}

/// Reads until end of file, each wait bounded.
fn read_to_end(fd: &OwnedFd) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut fds, ms).expect("poll");
        assert!(
            n > 0,
            "no end of file within 20 s (read so far: {:?})",
            String::from_utf8_lossy(&out)
        );
        match nix::unistd::read(fd.as_raw_fd(), &mut buf).expect("read") {
            0 => return String::from_utf8_lossy(&out).into_owned(),
            k => out.extend_from_slice(&buf[..k]),
        }
    }
}

/// Waits for our child `pid` (the caller is its subreaper); its exit code.
fn wait(pid: i32) -> i32 {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).expect("waitpid") {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("process {pid} ended as {other:?}"),
    }
}

/// What our own 0, 1 and 2 are (device and inode).
fn own_stdio() -> Vec<(u64, u64)> {
    (0..3)
        .map(|fd| {
            let path = format!("/proc/self/fd/{fd}");
            std::fs::metadata(&path)
                .map(|m| (m.dev(), m.ino()))
                .unwrap_or((0, 0))
        })
        .collect()
}
