//! The cgroup v2 path, for real, on this v1/v2 hybrid host: every runtime
//! command runs in a private mount namespace where the (only) cgroup2
//! hierarchy is mounted at /sys/fs/cgroup, which is what a pure v2 host
//! looks like. The v1 controllers stay bound to their v1 hierarchies (the
//! host uses them), so **v2 limit files cannot be tried here** (README,
//! "What the suite cannot show"); placement at clone time, exec, freezing,
//! the cgroup namespace and removal can. A host without any cgroup2
//! hierarchy fails these tests under CI rather than passing them.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{expect_code, output_via_files, stderr, stdout, Bundle, Runtime};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
/// Where the cgroup2 hierarchy is mounted in the host's mount namespace.
const HOST_V2: &str = "/sys/fs/cgroup/unified";

/// Runs berth-runtime with `args` seeing a pure cgroup v2 layout.
fn v2(rt: &Runtime, args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "mount -t cgroup2 none /sys/fs/cgroup && exec {BIN} --root {} {}",
        rt.root.path().display(),
        quoted.join(" ")
    );
    output_via_files(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "bash",
        "-c",
        &script,
    ]))
}

#[test]
fn v2_placement_exec_freeze_and_removal() {
    if !Path::new(HOST_V2).join("cgroup.procs").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no cgroup2 hierarchy at {HOST_V2}: the v2 path cannot be tested"
        );
        eprintln!("skipped: no cgroup2 hierarchy at {HOST_V2}");
        return;
    }
    let rt = Runtime::new(BIN);
    let name = format!("berth-v2-{}", std::process::id());
    let mut b = Bundle::shared(&[
        "sh",
        "-c",
        "grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1 > /dev/shm/fs; grep '^0::' /proc/self/cgroup > /dev/shm/cg; sleep 1000",
    ]);
    // No device rules: on v2 they need an eBPF program (not yet).
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}/c"));
    b.write();
    let bundle = b.path().to_str().unwrap();
    expect_code(
        &v2(&rt, &["run", "-d", "--bundle", bundle, "v2c"]),
        0,
        "run -d",
    );
    let dir = Path::new(HOST_V2).join(&name).join("c");
    let procs = || std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let st: serde_json::Value = serde_json::from_slice(&v2(&rt, &["state", "v2c"]).stdout).unwrap();
    let init = st["pid"].as_i64().unwrap();
    assert!(
        procs().lines().any(|l| l == init.to_string()),
        "the init is born in its cgroup: {}",
        procs()
    );

    let o = v2(
        &rt,
        &[
            "exec",
            "v2c",
            "sh",
            "-c",
            "cat /dev/shm/fs /dev/shm/cg; cat /sys/fs/cgroup/cgroup.procs | wc -l",
        ],
    );
    expect_code(&o, 0, "exec");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "cgroup2", "a cgroup2 mount inside: {out}");
    assert_eq!(
        lines[1], "0::/",
        "rooted at its own cgroup by the cgroup namespace: {out}"
    );
    assert!(
        lines[2].trim().parse::<u32>().unwrap() >= 3,
        "exec'd processes join: {out}"
    );

    expect_code(&v2(&rt, &["pause", "v2c"]), 0, "pause");
    let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    let st: serde_json::Value = serde_json::from_slice(&v2(&rt, &["state", "v2c"]).stdout).unwrap();
    assert_eq!(st["status"], "paused");
    expect_code(&v2(&rt, &["resume", "v2c"]), 0, "resume");
    let ps: Vec<i64> =
        serde_json::from_slice(&v2(&rt, &["ps", "--format", "json", "v2c"]).stdout).unwrap();
    assert!(ps.contains(&init), "{ps:?}");

    expect_code(&v2(&rt, &["delete", "--force", "v2c"]), 0, "delete");
    assert!(!dir.exists(), "cgroup left after delete");
    let _ = std::fs::remove_dir(Path::new(HOST_V2).join(&name));
}

/// Device rules on v2 are an eBPF program: a block device made with mknod
/// (CAP_MKNOD granted) cannot be read; the default devices can.
#[test]
fn v2_device_rules_are_enforced() {
    if !Path::new(HOST_V2).join("cgroup.procs").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no cgroup2 hierarchy at {HOST_V2}: the v2 path cannot be tested"
        );
        eprintln!("skipped: no cgroup2 hierarchy at {HOST_V2}");
        return;
    }
    let rt = Runtime::new(BIN);
    let name = format!("berth-v2d-{}", std::process::id());
    let mut b = Bundle::shared(&[
        "sh",
        "-c",
        "mknod /dev/disk b 8 0 && head -c 1 /dev/disk >/dev/null && echo READ-DISK; head -c 1 /dev/zero | wc -c",
    ]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    b.write();
    let o = v2(&rt, &["run", "--bundle", b.path().to_str().unwrap(), "v2d"]);
    expect_code(&o, 0, "run");
    assert_eq!(stdout(&o), "1\n", "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir(Path::new(HOST_V2).join(&name));
}
