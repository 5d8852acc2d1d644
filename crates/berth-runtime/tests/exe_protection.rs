//! CVE-2019-5736 against berth-runtime as podman or containerd drive it:
//! `exec` of a file starting with `#!/proc/self/exe` must not give the
//! container a writable handle on the runtime's binary.
//!
//! The attacked binary is a private copy of the static build (a dynamic
//! one cannot run inside the busybox rootfs: no loader there);
//! `BERTH_STATIC_DIR=DIR` runs the test against another build.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::exe_attack;
use berth_testkit::{expect_code, is_root, output_via_files, stderr, stdout, Bundle, Runtime};

#[test]
fn exec_of_a_proc_self_exe_script_cannot_write_the_runtime() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "this test needs root");
        eprintln!("skipped: not root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("berth-runtime");
    std::fs::copy(berth_testkit::static_bin("berth-runtime"), &bin).unwrap();
    let original = std::fs::read(&bin).unwrap();
    // The container is set up, checked and removed by the intact static
    // build; only the exec of the script uses the attacked copy.
    let rt = Runtime::new(berth_testkit::static_bin("berth-runtime").to_str().unwrap());
    // 15 s to outlast a busy binary (see attack_exe.rs in crates/berth).
    let b = Bundle::private(&["sh", "-c", "attacker /evil /tmp/result 15; sleep 1000"]);
    exe_attack::build_attacker(&b.rootfs().join("bin/attacker"));
    std::fs::write(b.rootfs().join("evil"), exe_attack::SCRIPT).unwrap();
    std::fs::set_permissions(
        b.rootfs().join("evil"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    b.write();
    let bundle = b.path().to_str().unwrap();
    expect_code(
        &rt.run(&["run", "-d", "--bundle", bundle, "cve"]),
        0,
        "run -d",
    );
    let read = |path: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let o = rt.run(&["exec", "cve", "cat", path]);
            if o.status.success() {
                return stdout(&o);
            }
            assert!(
                Instant::now() < deadline,
                "{path} never appeared: {}",
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    read("/tmp/result.ready");
    // Again until the attacker reports (it may miss a short-lived victim
    // on a busy machine).
    let mut ran = String::new();
    for _ in 0..20 {
        let o = output_via_files(
            Command::new(&bin)
                .arg("--root")
                .arg(rt.root.path())
                .args(["exec", "cve", "/evil"]),
        );
        ran = format!("{}{}", stdout(&o), stderr(&o));
        if std::fs::read(&bin).unwrap() != original {
            break;
        }
        if rt
            .run(&["exec", "cve", "test", "-e", "/tmp/result"])
            .status
            .success()
        {
            break;
        }
    }
    let verdict = read("/tmp/result");
    expect_code(&rt.run(&["delete", "--force", "cve"]), 0, "delete");
    exe_attack::judge(&bin, &original, &verdict, &ran);
}
