//! Docker CLI fidelity, measured: the same command lines run against a
//! private `dockerd` (Debian's docker.io 20.10) and against berth, with the
//! busybox fixture imported into both as `bb:1`; exit codes, stdout and
//! stderr must be the same once ids are masked. `$C` in a line is the
//! client under test.
//!
//! The start of issue 15's differential suite: every line here matches
//! today and must keep matching.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::dockerd::Dockerd;
use berth_testkit::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// Command lines, each run in a fresh bash with `$C` set.
const LINES: &[&str] = &[
    // removal of what is not there: -f is no failure (teardown under set -e)
    "$C rm -f nosuch",
    "$C rm nosuch",
    "$C rm -f nosuch1 nosuch2",
    "$C volume rm -f nosuch",
    "$C volume rm nosuch",
    // "is it up?" as CI scripts ask it
    "$C version >/dev/null; echo rc=$?",
    "$C version --format '{{.Server.Os}}/{{.Server.Arch}} {{.Client.Os}}'",
    // images of one repository (`rmi $(images -q repo)`)
    "$C images --format '{{.Repository}}:{{.Tag}}' bb",
    "$C tag bb:1 bb:2 && $C images --format '{{.Tag}}' bb | sort; $C images -q bb:2 | wc -l; $C rmi bb:2",
    "$C images -q nosuch | wc -l",
    // volumes
    "$C volume create compat-v1 && $C volume rm compat-v1",
    "$C volume create compat-v2 >/dev/null && $C volume inspect -f '{{.Name}} {{.Driver}}' compat-v2; $C volume rm compat-v2",
    // exit codes and streams of a foreground run
    "$C run --rm --network none bb:1 echo hi",
    "$C run --rm --network none bb:1 sh -c 'echo out; echo err >&2; exit 3' 2>/dev/null",
    "$C run --rm --network none bb:1 sh -c 'echo err >&2' 2>&1 >/dev/null",
    "echo piped | $C run --rm -i --network none bb:1 cat",
    "$C run --rm --network none -e A=1 -e B bb:1 sh -c 'echo $A ${B-unset}'",
    "$C run --rm --network none -w /tmp bb:1 pwd",
    "$C run --rm --network none --user 65534:65534 bb:1 id -u",
    // users and their supplementary groups
    "$C run --rm --network none --user nobody bb:1 id",
    "$C run --rm --network none --user 1234 bb:1 id",
    "$C run --rm --network none --user 1234 --group-add tty --group-add 4242 bb:1 id",
    "$C run --rm --network none --user nobody:tty bb:1 id",
    "$C run --rm --network none --group-add nosuchgroup bb:1 id 2>/dev/null; echo rc=$?",
    "$C run --rm --network none --entrypoint echo bb:1 entry",
    "$C run --rm --network none bb:1 sh -c 'kill -TERM $$'; echo rc=$?",
    // the container's view
    "$C run --rm --network none bb:1 cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs|Seccomp):'",
    "$C run --rm --network none --cap-drop ALL bb:1 grep CapEff /proc/self/status",
    "$C run --rm --network none --read-only bb:1 touch /x; echo rc=$?",
    "$C run --rm --network none --hostname box bb:1 hostname",
    "$C run --rm --network none --ipc none bb:1 sh -c 'grep -c \" /dev/shm \" /proc/mounts'; echo rc=$?",
    "$C run --rm --network none --ipc shareable bb:1 sh -c 'grep \" /dev/shm \" /proc/mounts | cut -d\" \" -f3'",
    // lifecycle of a named container
    "$C create --name compat-c --network none bb:1 true >/dev/null && $C start -a compat-c; $C rm compat-c",
    "$C run --name compat-e --network none bb:1 sh -c 'exit 7'; $C inspect -f '{{.State.ExitCode}} {{.State.Status}}' compat-e; $C rm compat-e",
];

/// Ids (64 or 12 hex digits) masked: they legitimately differ.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 || run.len() == 12 {
            out.push_str("<id>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[test]
fn command_lines_give_what_docker_gives() {
    let Some(d) = Dockerd::start(&[]) else { return };
    let berth = Store::empty(BIN);
    berth.import_busybox("bb:1", &[]);
    let berth_cmd = format!("{BIN} --root {}", berth.path().display());
    let mut differ = Vec::new();
    for line in LINES {
        let docker = d.sh(&format!("C=\"$D\"\n{line}"));
        let ours = d.sh(&format!("C='{berth_cmd}'\n{line}"));
        let same = docker.code() == ours.code()
            && normalise(&docker.stdout) == normalise(&ours.stdout)
            && normalise(&docker.stderr) == normalise(&ours.stderr);
        if !same {
            differ.push(format!(
                "{line}\n-- docker: exit {}\n{}{}-- berth: exit {}\n{}{}",
                docker.code(),
                docker.stdout,
                docker.stderr,
                ours.code(),
                ours.stdout,
                ours.stderr
            ));
        }
    }
    eprintln!(
        "compat: {} of {} command lines gave what docker gives",
        LINES.len() - differ.len(),
        LINES.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}
