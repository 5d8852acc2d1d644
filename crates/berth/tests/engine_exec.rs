//! exec through the engine's typed API, as a front end other than the CLI
//! calls it: `Engine::exec` with an `ExecRequest`, the process's stdio the
//! caller's pipes, its exit waited for by the caller. The container is
//! started by the real binary; the exec is made in-process.
//!
//! The engine forks, so the calls run in a single-threaded process from a
//! protected binary: the test runs its ignored twin in a process of its own
//! (`--exact ... --ignored`), which re-executes itself protected.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_engine::exec::{ExecIo, ExecRequest};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// The store's root, for the process that runs [`exec_in_process`].
const INNER: &str = "BERTH_TEST_ENGINE_EXEC_ROOT";

#[test]
fn exec_through_the_engine_api() {
    if !berth_testkit::root_or_skip("exec_through_the_engine_api") {
        return;
    }
    let s = berth_testkit::store::Store::with_busybox(BIN, &["ENV A=from-image"]);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 1;
    s.ok(&["run", "-d", "--name", "api-exec", "busybox", "sleep", "60"]);
    let exe = std::env::current_exe().expect("our test binary");
    let out = berth_testkit::output_via_files(
        std::process::Command::new(exe)
            .args([
                "--exact",
                "exec_in_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INNER, s.path()),
    );
    let text = format!(
        "{}{}",
        berth_testkit::stdout(&out),
        berth_testkit::stderr(&out)
    );
    assert!(
        out.status.success(),
        "exec through the engine failed:\n{text}"
    );
    assert!(text.contains("engine exec: done"), "{text}");
    // The engine recorded the exec as docker's daemon does.
    let events = s.ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        // Whole seconds, as docker's: the next one takes this one in.
        &(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 1)
        .to_string(),
        "--filter",
        "container=api-exec",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        events.contains("exec_die"),
        "no exec_die event in:\n{events}"
    );
    s.ok(&["rm", "-f", "api-exec"]);
}

#[test]
#[ignore = "run by exec_through_the_engine_api in a process of its own"]
fn exec_in_process() {
    let root = std::env::var_os(INNER).expect("run through exec_through_the_engine_api");
    berth_runtime::exe::ensure_protected().expect("re-execute protected");
    let engine =
        berth_engine::Engine::open(Path::new(&root), Path::new("/run/berth")).expect("open");
    let r = engine.find("api-exec").expect("the container");

    // Pipes, stdin included; flags over the container's own process.
    let s = engine
        .exec(
            &r,
            &ExecRequest {
                command: ["sh", "-c", "echo $((6*7)) $A; cat; id -u >&2; exit 5"]
                    .map(String::from)
                    .to_vec(),
                env: vec!["A=from-exec".into()],
                user: Some("nobody".into()),
                interactive: true,
                ..Default::default()
            },
        )
        .expect("exec");
    let ExecIo::Pipes { streams, input } = s.io else {
        panic!("no pipes for an exec without a terminal: {:?}", s.io);
    };
    let mut input = std::fs::File::from(input.expect("stdin pipe with interactive"));
    input.write_all(b"abc\n").expect("write stdin");
    drop(input);
    let stream = |n: usize| {
        streams
            .iter()
            .find(|(_, k)| *k == n)
            .map(|(fd, _)| fd)
            .expect("stream")
    };
    assert_eq!(read_to_end(stream(0)), "42 from-exec\nabc\n");
    assert_eq!(read_to_end(stream(1)), "65534\n");
    let code = match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(s.pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
        other => panic!("exec'd process ended as {other:?}"),
    };
    assert_eq!(code, 5);
    engine.exec_ended(&r, &s.exec_id, code);

    // A program that does not exist: an error before anything runs.
    let missing = engine.exec(
        &r,
        &ExecRequest {
            command: vec!["no-such-program".into()],
            ..Default::default()
        },
    );
    let e = missing.expect_err("exec of a missing program");
    assert!(e.to_string().contains("executable file not found"), "{e}");

    // Not running: docker's answer, as a typed error a front end can match.
    let mut stopped = r.clone();
    stopped.status = berth_engine::db::Status::Exited;
    match engine.exec(&stopped, &ExecRequest::default()) {
        Err(e @ berth_engine::Error::NotRunning(_)) => {
            assert_eq!(e.kind(), berth_engine::ErrorKind::NotRunning);
            assert_eq!(e.to_string(), format!("Container {} is not running", r.id));
        }
        other => panic!("exec in a stopped container: {other:?}"),
    }
    println!("engine exec: done");
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
