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
    // Go templates (issue 15, item 1): one engine, Go's semantics. Typed
    // maps give <no value> for a missing key (index: the zero value); an
    // unknown field falls back to the raw JSON, whose error docker prints.
    "$C create --name compat-t -l a=b -l zz=y --network none bb:1 sleep 9 >/dev/null; \
     $C inspect -f '{{.Config.Labels.nope}}|{{index .Config.Labels \"nope\"}}|{{.Config.Labels}}|{{json .Config.Labels}}|{{printf \"%T %d\" .State.Pid .State.Pid}}' compat-t; \
     $C inspect -f '{{.Config.Cmd}}|{{join .Config.Cmd \"+\"}}|{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}|{{len .Config.Labels}}|{{if eq .State.Status \"created\"}}new{{else}}old{{end}}|{{upper .State.Status}}|{{title .Name}}|{{.State.Running}}' compat-t; \
     $C inspect -f '{{range .NetworkSettings.Networks}}[{{.IPAddress}}]{{end}}|{{with .Config.Labels.a}}{{.}}{{end}}|{{$s := .State}}{{$s.Status}}|{{(index .Config.Cmd 1)}}|{{slice .Name 1}}|{{.HostConfig.Privileged | not}}' compat-t; \
     $C inspect -f '{{.State}}' compat-t; \
     $C inspect -f '{{.Foo}}' compat-t; echo rc=$?; \
     $C inspect -f '{{.State.Foo}}' compat-t; echo rc=$?; \
     $C inspect -f '{{.Config.Labels.a}}' compat-t nosuch; echo rc=$?; \
     $C inspect -f '{{index .Config.Cmd 5}}' compat-t; echo rc=$?; \
     $C rm compat-t >/dev/null",
    "$C inspect -f '{{.Name' nosuch; echo rc=$?",
    "$C inspect -f '{{nosuch .Name}}' nosuch; echo rc=$?",
    "$C inspect -f '{{if .Name}}' nosuch; echo rc=$?",
    // Tables (issue 15, item 2): docker's headers, Go's tabwriter (columns
    // at least 10 wide, 3 spaces apart), `table` alone is the default
    "$C ps --filter name=nosuch",
    "$C ps -a --filter name=nosuch --format table",
    "$C images nosuch",
    "$C images --format 'table {{.Repository}}\\t{{.Tag}}' bb",
    "$C images --format '{{.Repository}}\\t{{.Tag}}|{{.Containers}}' bb",
    "$C volume ls --filter name=nosuch",
    "$C create --name compat-p -l a=b -l com.example.some-label=1 --network none bb:1 sleep 9 >/dev/null; \
     $C ps -a --filter name=compat-p --format 'table {{.Names}}\\t{{.Image}}\\t{{.Label \"a\"}}\\t{{.Label \"com.example.some-label\"}}\\t{{.State}}\\t{{.Networks}}'; \
     $C ps -a --filter name=compat-p --format '{{.Command}} {{.Mounts}}|{{.LocalVolumes}}|{{.Ports}}|{{.Status}}|{{.Names | printf \"%q\"}}'; \
     $C rm compat-p >/dev/null",
    // (.Labels with one label: docker joins a Go map, in random order)
    "$C create --name compat-q -l a=b --network none bb:1 true >/dev/null; \
     $C ps -a --filter name=compat-q --format 'table {{.Names}}\\t{{json .Labels}}\\t{{upper .State}}\\t{{.Labels}}'; \
     $C rm compat-q >/dev/null",
    "$C create --name compat-n1 --network none bb:1 true >/dev/null; \
     $C create --name compat-n2 --network container:compat-n1 bb:1 true >/dev/null; \
     $C ps -a --filter name=compat-n --format '{{.Names}} [{{.Networks}}]' | sort; \
     $C rm compat-n2 compat-n1 >/dev/null",
    "$C ps --format '{{.Foo}}'; echo rc=$?",
    "$C ps --format '{{.Names'; echo rc=$?",
    "$C images --format '{{.Nope}}'; echo rc=$?",
    "$C images --format '{{.X'; echo rc=$?",
    "$C volume create compat-v3 >/dev/null; \
     $C volume ls --filter name=compat-v3 --format 'table {{.Name}}\\t{{.Driver}}\\t{{.Scope}}\\t{{.Label \"k\"}}'; \
     $C volume ls --filter name=compat-v3 --format '{{.Nope}}'; echo rc=$?; \
     $C volume inspect -f '{{.Nope}}' compat-v3; echo rc=$?; \
     $C volume inspect -f '{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}' compat-v3; \
     $C volume rm compat-v3 >/dev/null",
    "$C image inspect -f '{{.Os}}/{{.Architecture}} {{.RepoTags}}' bb:1",
    "$C image inspect -f '{{.Nope}}' bb:1; echo rc=$?",
    "$C version --format '{{.X'; echo rc=$?",
    "$C network ls --filter name=nosuch",
    "$C network ls --filter name=nosuch --format '{{.Nope}}'; echo rc=$?",
    "$C system df --format '{{.Type}}: {{.TotalCount}} {{.Active}}'",
    "$C system df --format 'table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}'",
    "$C system df --format '{{.Nope}}'; echo rc=$?",
    // (what import writes as the history entry differs: docker's comment
    // "Imported from -", berth's created_by "berth import")
    "$C history --format '{{.ID}} {{printf \"%T\" .CreatedSince}}' bb:1",
    "$C history --format '{{.Nope}}' bb:1; echo rc=$?",
    "$C events --since 2020-01-01T00:00:00Z --until 2020-01-02T00:00:00Z --format '{{.X'; echo rc=$?",
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
