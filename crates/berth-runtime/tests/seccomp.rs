//! seccomp from inside a container: berth's default profile denies what
//! Docker's denies while a normal workload runs; a custom profile's
//! argument conditions and errno values are honoured.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::{expect_code, stdout, Bundle, Runtime};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A private bundle with the syscall probe (built statically) at /bin/probe.
fn bundle_with_probe(args: &[&str]) -> Bundle {
    let b = Bundle::private(args);
    berth_testkit::build_helper("syscall-probe", &b.rootfs().join("bin/probe"));
    b
}

fn caps(b: &Bundle) -> Vec<String> {
    b.config["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn run(rt: &Runtime, b: &Bundle, id: &str) -> String {
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), id]);
    expect_code(&o, 0, "run");
    stdout(&o)
}

const PROBES: &[&str] = &[
    "/bin/probe",
    "keyctl",
    "add_key",
    "kexec_load",
    "unshare_user",
    "getpid",
];

#[test]
fn default_profile_denies_what_docker_denies() {
    let rt = Runtime::new(BIN);
    // Control: without a filter the probe is not refused everything, so the
    // test below can fail.
    let mut control = bundle_with_probe(PROBES);
    control.config["process"]["noNewPrivileges"] = json!(false);
    let out = run(&rt, &control, "control");
    assert!(out.contains("unshare_user ok"), "without seccomp: {out}");

    let mut b = bundle_with_probe(PROBES);
    let profile = berth_runtime::seccomp::profile::default_for(&caps(&b)).unwrap();
    b.config["linux"]["seccomp"] = serde_json::to_value(profile).unwrap();
    let out = run(&rt, &b, "default");
    for denied in ["keyctl", "add_key", "kexec_load", "unshare_user"] {
        assert!(
            out.contains(&format!("{denied} EPERM")),
            "{denied} not denied with EPERM:\n{out}"
        );
    }
    assert!(out.contains("getpid ok"), "{out}");

    // A normal busybox workload runs under it, with and without
    // no_new_privs (the filter is loaded at a different moment).
    for (nnp, id) in [(true, "work-nnp"), (false, "work")] {
        let mut w = Bundle::private(&["sh", "-c", "mkdir -p /tmp/a && echo hi > /tmp/a/f && cat /tmp/a/f | wc -c && ls /proc/self/fd >/dev/null && sleep 0 && echo done"]);
        let profile = berth_runtime::seccomp::profile::default_for(&caps(&w)).unwrap();
        w.config["linux"]["seccomp"] = serde_json::to_value(profile).unwrap();
        w.config["process"]["noNewPrivileges"] = json!(nnp);
        assert_eq!(run(&rt, &w, id), "3\ndone\n");
    }
}

/// Docker's current profile (issue 13, item 8d): a debugger's ptrace
/// (PTRACE_TRACEME, then PEEKDATA of the stopped child) works, as Docker
/// allows it on kernels >= 4.8, and io_uring, whose operations the filter
/// never sees, is refused as Docker has refused it since 2023.
#[test]
fn default_profile_allows_debuggers_and_refuses_io_uring() {
    let rt = Runtime::new(BIN);
    let probes = &["/bin/probe", "ptrace_child", "io_uring_setup"];
    // Control: the kernel itself allows both, so the filter is what is seen.
    let mut control = bundle_with_probe(probes);
    control.config["process"]["noNewPrivileges"] = json!(false);
    let out = run(&rt, &control, "control-uring");
    if !out.contains("io_uring_setup ok") {
        // kernel.io_uring_disabled, or a kernel without io_uring.
        assert!(
            std::env::var_os("CI").is_none(),
            "io_uring is off on this host, nothing to test: {out}"
        );
        eprintln!("skipped: io_uring is off on this host ({out})");
        return;
    }
    assert!(out.contains("ptrace_child ok"), "without seccomp: {out}");

    for nnp in [true, false] {
        let mut b = bundle_with_probe(probes);
        let profile = berth_runtime::seccomp::profile::default_for(&caps(&b)).unwrap();
        b.config["linux"]["seccomp"] = serde_json::to_value(profile).unwrap();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        let out = run(&rt, &b, &format!("uring-{nnp}"));
        assert_eq!(
            out, "ptrace_child ok\nio_uring_setup EPERM\n",
            "no_new_privs {nnp}"
        );
    }
}

#[test]
fn custom_profile_with_argument_conditions() {
    let rt = Runtime::new(BIN);
    let mut b = bundle_with_probe(&[
        "/bin/probe",
        "personality_query",
        "personality_norandom",
        "personality_linux32",
    ]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // arg0 == ADDR_NO_RANDOMIZE: ENOSYS
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "args": [{"index": 0, "value": 0x0040000, "op": "SCMP_CMP_EQ"}]},
            // (arg0 & 0xff) == PER_LINUX32 (8): EACCES; the query 0xffffffff
            // has 0xff there and passes
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 0xff, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    });
    let out = run(&rt, &b, "custom");
    assert_eq!(
        out,
        "personality_query ok\npersonality_norandom ENOSYS\npersonality_linux32 EACCES\n"
    );
}

#[test]
fn exec_runs_under_the_containers_filter() {
    let rt = Runtime::new(BIN);
    let mut b = bundle_with_probe(&["sleep", "1000"]);
    let profile = berth_runtime::seccomp::profile::default_for(&caps(&b)).unwrap();
    b.config["linux"]["seccomp"] = serde_json::to_value(profile).unwrap();
    b.write();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "sx"]),
        0,
        "run -d",
    );
    let o = rt.run(&["exec", "sx", "/bin/probe", "keyctl", "getpid"]);
    expect_code(&o, 0, "exec");
    assert_eq!(stdout(&o), "keyctl EPERM\ngetpid ok\n");
}

/// A profile may deny getcwd (runtime-tools' linux_seccomp does). The
/// init checked its cwd (CVE-2024-21626) with getcwd after loading such a
/// filter (without noNewPrivileges it is loaded early, while the init is
/// still privileged), and failed create with "cwd / is outside the
/// container"; runc fails the same way. The program then runs, and its own
/// getcwd is denied.
#[test]
fn a_profile_denying_getcwd_still_runs_the_program() {
    let rt = Runtime::new(BIN);
    let mut b = Bundle::shared(&["sh", "-c", "pwd -P; echo ran"]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    });
    let out = run(&rt, &b, "nogetcwd");
    assert!(out.ends_with("ran\n"), "{out}");
    assert!(
        !out.starts_with('/'),
        "getcwd was not denied in the container: {out}"
    );
}
