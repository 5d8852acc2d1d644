//! Bad input: a one-line error naming the problem, exit 1, and nothing left
//! behind (no state, no process, no mount, no cgroup).

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::{expect_code, stderr, Bundle, Runtime};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Creates `id` from `bundle` and checks the failure and that nothing of it
/// remains.
fn refused(rt: &Runtime, bundle: &std::path::Path, id: &str, needle: &str) {
    let o = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), id]);
    expect_code(&o, 1, "create");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "error names {needle:?}: {err}");
    assert!(!rt.ids().contains(&id.to_string()), "state left for {id}");
    let b = bundle.to_str().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(b), "mount left: {mounts}");
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(
                !(cmd.contains(b) && cmd.contains(id)),
                "process left: {cmd}"
            );
        }
    }
    // The cgroup [`bundle`] names after the bundle's directory.
    let name = bundle.file_name().unwrap().to_string_lossy();
    for h in ["pids", "memory", "devices"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(h)
            .join(format!("berth-bad-{name}"))
            .join(&*name);
        assert!(!dir.exists(), "cgroup left: {}", dir.display());
    }
    remove_parent(bundle);
}

/// The test's own cgroup parent (the runtime leaves parents, as runc
/// does). Not one shared by all: the tests run at once, in processes of
/// their own, and one removing a shared parent raced another making its
/// cgroup under it.
fn remove_parent(bundle: &std::path::Path) {
    let name = bundle.file_name().unwrap().to_string_lossy();
    for h in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}/berth-bad-{name}"));
    }
}

fn bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::shared(args);
    let id = b.path().file_name().unwrap().to_string_lossy().into_owned();
    b.config["linux"]["cgroupsPath"] = json!(format!("/berth-bad-{id}/{id}"));
    b
}

#[test]
fn missing_config_json() {
    let rt = Runtime::new(BIN);
    let dir = tempfile::tempdir().unwrap();
    refused(&rt, dir.path(), "nocfg", "config.json not found");
}

#[test]
fn invalid_json() {
    let rt = Runtime::new(BIN);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"ociVersion\": ").unwrap();
    refused(&rt, dir.path(), "badjson", "invalid config.json");
}

#[test]
fn unknown_namespace_type() {
    let rt = Runtime::new(BIN);
    let mut b = bundle(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    b.write();
    refused(&rt, b.path(), "badns", "bogus");
}

#[test]
fn rootfs_missing() {
    let rt = Runtime::new(BIN);
    let mut b = bundle(&["true"]);
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.write();
    refused(&rt, b.path(), "noroot", "no-such-rootfs");
}

#[test]
fn duplicate_container_id() {
    let rt = Runtime::new(BIN);
    let b = bundle(&["sleep", "1000"]);
    b.write();
    expect_code(
        &rt.run(&["create", "--bundle", b.path().to_str().unwrap(), "dup"]),
        0,
        "first create",
    );
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), "dup"]);
    expect_code(&o, 1, "second create");
    assert!(
        stderr(&o).contains("\"dup\" already exists"),
        "{}",
        stderr(&o)
    );
    // The first container is untouched.
    let s: serde_json::Value = serde_json::from_slice(&rt.run(&["state", "dup"]).stdout).unwrap();
    assert_eq!(s["status"], "created");
    expect_code(&rt.run(&["delete", "--force", "dup"]), 0, "delete");
    remove_parent(b.path());
}

#[test]
fn program_not_found_fails_create_and_leaves_nothing() {
    let rt = Runtime::new(BIN);
    let b = bundle(&["no-such-program"]);
    b.write();
    refused(
        &rt,
        b.path(),
        "noprog",
        "executable file not found in $PATH",
    );
}

#[test]
fn invalid_ids_and_unsupported_features_are_named() {
    let rt = Runtime::new(BIN);
    let mut b = bundle(&["true"]);
    b.write();
    let o = rt.run(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "../escape",
    ]);
    expect_code(&o, 1, "create with a path as id");
    assert!(
        stderr(&o).contains("invalid container id"),
        "{}",
        stderr(&o)
    );
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"});
    b.write();
    refused(&rt, b.path(), "notify", "SCMP_ACT_NOTIFY");
    b.config["linux"]["seccomp"] = serde_json::Value::Null;
    b.config["linux"]["resources"]["network"] = json!({"classID": 1});
    b.write();
    refused(&rt, b.path(), "netcls", "network is not supported yet");
}

#[test]
fn unknown_signal_and_missing_container() {
    let rt = Runtime::new(BIN);
    let o = rt.run(&["kill", "nothere", "SIGNOPE"]);
    expect_code(&o, 1, "kill");
    assert!(stderr(&o).contains("unknown signal"), "{}", stderr(&o));
    let o = rt.run(&["start", "nothere"]);
    expect_code(&o, 1, "start");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

/// podman reads the whole --log file as one JSON object on failure.
#[test]
fn errors_go_to_the_log_file_as_one_json_line() {
    let rt = Runtime::new(BIN);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("oci-log");
    let o = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        dir.path().to_str().unwrap(),
        "x",
    ]);
    expect_code(&o, 1, "create");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap().contains("config.json not found"),
        "{v}"
    );
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
}

/// A cgroup write that fails (here an impossible cpuset) used to leave the
/// runtime and its intermediate process each waiting for the other: create
/// hung forever. It must fail at once and leave nothing.
#[test]
fn failed_cgroup_setup_does_not_hang_create() {
    let rt = Runtime::new(BIN);
    let mut b = bundle(&["true"]);
    b.config["linux"]["resources"]["cpu"] = json!({"cpus": "4095"});
    b.write();
    refused(&rt, b.path(), "cpuset", "cpuset.cpus");
}
