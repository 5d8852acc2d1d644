//! A container started from a user's terminal without one of its own must
//! not reach that terminal as its controlling one: no `/dev/tty`, no
//! TIOCSTI pushing keystrokes into the user's shell (which would run them
//! as the user, root, once the runtime returns).

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::time::Duration;

use berth_testkit::pty::PtyChild;
use berth_testkit::{expect_code, Bundle, Runtime};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn with_tiocsti(b: &Bundle) {
    berth_testkit::build_helper("tiocsti", &b.rootfs().join("bin/tiocsti"));
}

const ATTACK: &str = "tiocsti 'echo INJECTED\n'; cat /dev/tty; echo done";

/// `run` (init) and `exec` alike, on the caller's terminal.
#[test]
fn a_container_without_a_terminal_cannot_use_the_callers() {
    if !berth_testkit::root_or_skip("terminal_attacks") {
        return;
    }
    let rt = Runtime::new(BIN);
    let b = Bundle::private(&["sh", "-c", ATTACK]);
    with_tiocsti(&b);
    b.write();
    let mut cmd = rt.cmd();
    cmd.args(["run", "--bundle", b.path().to_str().unwrap(), "tty1"]);
    let mut run = PtyChild::spawn(cmd, 24, 80);
    run.expect("done", Duration::from_secs(20));
    run.wait(Duration::from_secs(20));
    let seen = String::from_utf8_lossy(&run.seen).into_owned();
    assert!(seen.contains("TIOCSTI refused"), "run: {seen}");
    assert!(
        seen.contains("No such device or address"),
        "run: /dev/tty opened: {seen}"
    );

    let b = Bundle::private(&["sleep", "100"]);
    with_tiocsti(&b);
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "tty2"]),
        0,
        "run -d",
    );
    let mut cmd = rt.cmd();
    cmd.args(["exec", "tty2", "sh", "-c", ATTACK]);
    let mut exec = PtyChild::spawn(cmd, 24, 80);
    exec.expect("done", Duration::from_secs(20));
    exec.wait(Duration::from_secs(20));
    let seen = String::from_utf8_lossy(&exec.seen).into_owned();
    assert!(seen.contains("TIOCSTI refused"), "exec: {seen}");
    assert!(
        seen.contains("No such device or address"),
        "exec: /dev/tty opened: {seen}"
    );
}
