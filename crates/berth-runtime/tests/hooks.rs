//! OCI hooks through the real binary: each point runs where the spec says,
//! with the state on stdin; a failing or hanging hook fails `create` and
//! leaves nothing behind.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::{expect_code, stderr, Bundle, Runtime};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A hook that saves its stdin and its mount namespace under `dir`.
fn recorder(dir: &str, name: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {dir}/{name}.json; readlink /proc/self/ns/mnt > {dir}/{name}.ns")]})
}

#[test]
fn every_point_runs_with_the_state_where_the_spec_says() {
    let rt = Runtime::new(BIN);
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let mut b = Bundle::private(&["sh", "-c", "echo ran > /tmp/program-ran"]);
    b.config["hooks"] = json!({
        "prestart": [recorder(o, "prestart")],
        "createRuntime": [recorder(o, "createRuntime")],
        "createContainer": [recorder(o, "createContainer")],
        // Resolved and run inside the container, after pivot_root: it
        // writes into the container's /tmp (the private rootfs).
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json; test -e /tmp/program-ran || echo before > /tmp/order"]}],
        "poststart": [recorder(o, "poststart")],
        "poststop": [recorder(o, "poststop")]
    });
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), "hk"]);
    expect_code(&o, 0, "run");
    let host_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let read = |name: &str| -> (Value, String) {
        let state = std::fs::read(out.path().join(format!("{name}.json")))
            .unwrap_or_else(|_| panic!("{name} did not run"));
        let ns = std::fs::read_to_string(out.path().join(format!("{name}.ns"))).unwrap_or_default();
        (
            serde_json::from_slice(&state).unwrap(),
            ns.trim().to_string(),
        )
    };
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        let (state, ns) = read(name);
        assert_eq!(state["id"], "hk", "{name}: {state}");
        assert_eq!(
            ns,
            host_ns.to_str().unwrap(),
            "{name} runs in the runtime's namespace"
        );
    }
    let (state, ns) = read("createContainer");
    assert!(state["pid"].as_i64().unwrap() > 0, "{state}");
    assert_ne!(
        ns,
        host_ns.to_str().unwrap(),
        "createContainer runs in the container's namespace"
    );
    let start: Value =
        serde_json::from_slice(&std::fs::read(b.rootfs().join("tmp/startContainer.json")).unwrap())
            .unwrap();
    assert_eq!(start["id"], "hk");
    assert!(
        b.rootfs().join("tmp/order").exists(),
        "startContainer ran before the program"
    );
    assert_eq!(read("poststop").0["status"], "stopped");
}

fn create_fails_and_leaves_nothing(hooks: Value, needle: &str) {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sleep", "1000"]);
    let cg = format!("/berth-hooks-{}", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(format!("{cg}/c"));
    b.config["hooks"] = hooks;
    b.write();
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), "bad"]);
    expect_code(&o, 1, "create");
    assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    assert!(rt.ids().is_empty(), "state left: {:?}", rt.ids());
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/pids{cg}/c")).exists(),
        "cgroup left"
    );
    let b = b.path().to_str().unwrap().to_string();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&cmd).contains(&b), "process left");
    }
    for h in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}{cg}"));
    }
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    create_fails_and_leaves_nothing(
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no network for you >&2; exit 7"]}]}),
        "createRuntime hook /bin/sh",
    );
}

#[test]
fn hanging_create_container_hook_times_out() {
    create_fails_and_leaves_nothing(
        json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 60"], "timeout": 1}]}),
        "timed out after 1s",
    );
}

#[test]
fn failing_poststart_hook_only_warns() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["true"]);
    b.config["hooks"] = json!({"poststart": [{"path": "/bin/false"}]});
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), "ps1"]);
    expect_code(&o, 0, "run");
    assert!(
        stderr(&o).contains("warning: poststart hook /bin/false"),
        "{}",
        stderr(&o)
    );
}

/// The spec calls poststart hooks after the program was executed, and
/// `start` returns with the program running; berth ran them (and returned)
/// as soon as it had released the init, which then still had its
/// startContainer hooks to run before its execve. A slow startContainer
/// hook makes that window wide: the poststart hook must find the program
/// (`sleep`) as the container's pid 1, not the runtime's init.
#[test]
fn poststart_runs_once_the_program_was_executed() {
    let rt = Runtime::new(BIN);
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let mut b = Bundle::shared(&["sleep", "1000"]);
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.3"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); cat /proc/$pid/comm > {o}/comm")]}]
    });
    b.write();
    let bundle = b.path().to_str().unwrap();
    expect_code(&rt.run(&["create", "--bundle", bundle, "ps1"]), 0, "create");
    expect_code(&rt.run(&["start", "ps1"]), 0, "start");
    let comm = std::fs::read_to_string(out.path().join("comm")).expect("poststart ran");
    assert_eq!(
        comm.trim(),
        "sleep",
        "poststart saw pid 1 before its execve"
    );
    let ps = rt.run(&["state", "ps1"]);
    let pid = serde_json::from_slice::<Value>(&ps.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(
        comm.trim(),
        "sleep",
        "start returned before the program ran"
    );
    expect_code(&rt.run(&["delete", "--force", "ps1"]), 0, "delete");
}
