//! Attacks on what a container process can see of its caller's stdio,
//! through the real binary: every way a process enters a container (run in
//! the foreground and detached, start -a, exec, a healthcheck, a build RUN
//! step) must give it pipes, /dev/null or its own terminal, never a
//! descriptor of whoever ran berth. A caller's file could otherwise be
//! reopened through /proc/self/fd (read back, overwritten, truncated) and
//! its path is a fact about the host; a caller's terminal could be read or
//! driven (TIOCSTI). Also: a reader of berth's output that goes away ends
//! berth quietly, and `--network none` has loopback up.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// What the attacker runs in the container. It lists the descriptors its
/// shell holds and names what its 0, 1 and 2 are (with `ownN` when that
/// is the very file of that name in the container: its own terminal, not
/// one that only shares a name), then tries each way back to a caller's
/// file: reopening each descriptor read-write at offset 0 and writing over
/// the start (a pipe just carries the line on), reading each back when it
/// is a regular file (64 bytes: a file read into itself grows), and
/// reopening each with O_TRUNC.
///
/// Each write is tried in a subshell of its own (the same descriptors,
/// inherited): a redirection that fails ends only that subshell, and the
/// attack goes on to the next (in a user namespace of its own, a device
/// node such as /dev/null cannot be reopened at all).
const ATTACK: &str = r#"
echo fds-begin; ls -1 /proc/$$/fd; echo fds-end
for n in 0 1 2; do echo "fd$n=$(readlink /proc/$$/fd/$n)"; done
for n in 0 1 2; do [ /proc/$$/fd/$n -ef "$(readlink /proc/$$/fd/$n)" ] && echo "own$n"; done
(echo pwned-0 1<>/proc/self/fd/0)
(echo pwned-1 1<>/proc/self/fd/1)
(echo pwned-2 1<>/proc/self/fd/2)
for n in 0 1 2; do [ -f /proc/self/fd/$n ] && head -c 64 /proc/self/fd/$n; done
for n in 0 1 2; do (: > /proc/self/fd/$n); done
echo done
"#;

/// The caller's three files: stdin (read-only, holds SECRET-IN), stdout
/// and stderr (append, hold SECRET-OUT and SECRET-ERR).
struct CallerFiles {
    _dir: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    err: PathBuf,
}

impl CallerFiles {
    fn new() -> CallerFiles {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::write(&input, "SECRET-IN\n").unwrap();
        let out = dir.path().join("out");
        let err = dir.path().join("err");
        std::fs::write(&out, "SECRET-OUT\n").unwrap();
        std::fs::write(&err, "SECRET-ERR\n").unwrap();
        CallerFiles {
            _dir: dir,
            input,
            out,
            err,
        }
    }

    /// Runs `cmd` with our files as its stdio (stdout and stderr opened as
    /// a shell's `>>` opens them); its exit status.
    fn run(&self, mut cmd: Command) -> ExitStatus {
        let append = |p: &Path| std::fs::OpenOptions::new().append(true).open(p).unwrap();
        let (out, err) = (append(&self.out), append(&self.err));
        let input = std::fs::File::open(&self.input).unwrap();
        let mut child = cmd
            .stdin(input)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn berth");
        wait_deadline(&mut child, Duration::from_secs(60))
    }

    fn out(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap()
    }

    fn err(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap()
    }

    /// None of the caller's files was written over, read back or written
    /// to by anything but berth's relay: each still starts with its secret,
    /// holds it once, and no secret went anywhere else.
    fn untouched(&self, what: &str) {
        let (out, err) = (self.out(), self.err());
        let input = std::fs::read_to_string(&self.input).unwrap();
        assert_eq!(input, "SECRET-IN\n", "{what}: the caller's stdin file");
        for (name, text, secret) in [
            ("stdout", &out, "SECRET-OUT"),
            ("stderr", &err, "SECRET-ERR"),
        ] {
            assert!(
                text.starts_with(&format!("{secret}\n")),
                "{what}: the caller's {name} file was written over:\n{text}"
            );
            assert_eq!(
                text.matches("SECRET").count(),
                1,
                "{what}: a secret was read back into the caller's {name}:\n{text}"
            );
        }
    }
}

fn wait_deadline(child: &mut std::process::Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the attack printed: the shell holds 0, 1 and 2 and nothing else,
/// and each is a pipe, /dev/null, or (with `own_tty`) a terminal of the
/// container's own.
fn only_pipes(what: &str, text: &str, own_tty: bool) {
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != "fds-begin")
        .skip(1)
        .take_while(|l| l.trim() != "fds-end")
        .map(str::trim)
        .collect();
    assert_eq!(listed, ["0", "1", "2"], "{what}: descriptors held:\n{text}");
    let fds: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("fd") && l.contains('='))
        .collect();
    assert_eq!(fds.len(), 3, "{what}: the attack did not run:\n{text}");
    for (n, l) in fds.iter().enumerate() {
        let target = l.split_once('=').map_or("", |(_, t)| t);
        let own = text.lines().any(|x| x.trim() == format!("own{n}"));
        let ok = target.starts_with("pipe:[")
            // (the host's null device, opened by berth: no file behind it)
            || target == "/dev/null"
            || (own_tty && target.starts_with("/dev/pts/") && own);
        assert!(ok, "{what}: the container holds {l}\n{text}");
    }
    assert!(
        text.contains("done"),
        "{what}: the attack did not finish:\n{text}"
    );
}

fn berth() -> Berth {
    Berth::with_busybox(BIN, &[])
}

/// `berth run` in the foreground, with and without -i, and `start -a`:
/// the caller's files stay the caller's.
#[test]
fn run_foreground_gives_pipes_not_the_callers_files() {
    if !berth_testkit::root_or_skip("run_foreground_gives_pipes_not_the_callers_files") {
        return;
    }
    let b = berth();
    for flags in [&["--rm"][..], &["--rm", "-i"][..]] {
        let what = format!("run {}", flags.join(" "));
        let files = CallerFiles::new();
        let mut cmd = b.cmd();
        cmd.arg("run")
            .args(flags)
            .args(["busybox", "sh", "-c", ATTACK]);
        let st = files.run(cmd);
        assert_eq!(st.code(), Some(0), "{what}: {st:?}\n{}", files.err());
        files.untouched(&what);
        only_pipes(&what, &files.out(), false);
        // the pipes still carried everything, in order, on its stream
        let out = files.out();
        assert!(out.contains("pwned-1\n"), "{what}:\n{out}");
        assert!(
            files.err().contains("pwned-2\n"),
            "{what}:\n{}",
            files.err()
        );
    }

    // start -a and start -ai of a created container
    b.ok(&[
        "create", "--name", "made", "-i", "busybox", "sh", "-c", ATTACK,
    ]);
    for (n, flags) in [&["-a"][..], &["-ai"][..]].iter().enumerate() {
        let what = format!("start {}", flags.join(" "));
        let files = CallerFiles::new();
        let mut cmd = b.cmd();
        cmd.arg("start").args(*flags).arg("made");
        let st = files.run(cmd);
        assert_eq!(st.code(), Some(0), "{what} ({n}): {st:?}\n{}", files.err());
        files.untouched(&what);
        only_pipes(&what, &files.out(), false);
    }
}

/// A detached container (its monitor's stdio is /dev/null, but what does
/// the container get?) and the log that shows it.
#[test]
fn run_detached_gives_pipes() {
    if !berth_testkit::root_or_skip("run_detached_gives_pipes") {
        return;
    }
    let b = berth();
    for flags in [&[][..], &["-i"][..]] {
        let what = format!("run -d {}", flags.join(" "));
        let files = CallerFiles::new();
        let mut cmd = b.cmd();
        cmd.args(["run", "-d", "--name", "bg"])
            .args(flags)
            .args(["busybox", "sh", "-c", ATTACK]);
        let st = files.run(cmd);
        assert_eq!(st.code(), Some(0), "{what}: {st:?}\n{}", files.err());
        b.wait_for("bg", "{{.State.Status}}", "exited");
        files.untouched(&what);
        let logs = b.run(&["logs", "bg"]);
        expect_code(&logs, 0, "logs");
        only_pipes(&what, &stdout(&logs), false);
        b.ok(&["rm", "bg"]);
    }
}

/// A detached container's monitor lives as long as the container: it must
/// not keep a descriptor of the caller's beyond 0-2 (a file a script holds
/// open, a pipe whose reader waits for its end). Before, it kept every one
/// without close-on-exec.
#[test]
fn detached_monitor_keeps_none_of_the_callers_descriptors() {
    if !berth_testkit::root_or_skip("detached_monitor_keeps_none_of_the_callers_descriptors") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("held-by-the-caller");
    // fd 7 on a file and fd 8 on a pipe's write end, neither close-on-exec.
    let base = b.cmd();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(r#"exec 7>"$1"; exec 8> >(cat >/dev/null); shift; exec "$@""#)
        .arg("bash")
        .arg(&marker)
        .arg(base.get_program())
        .args(base.get_args())
        .args(["run", "-d", "--name", "fdmon", "busybox", "sleep", "60"]);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().unwrap();
    expect_code(&out, 0, "run -d with descriptors 7 and 8 open");
    let pid: i32 = b.inspect("fdmon", "{{.State.Pid}}").trim().parse().unwrap();
    let monitor = berth_testkit::parent_of(pid);
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{monitor}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!("{n} -> {}", target.display()))
        })
        .collect();
    b.ok(&["rm", "-f", "fdmon"]);
    assert!(
        !held.iter().any(|l| l.contains("held-by-the-caller")
            || l.starts_with("7 ")
            || l.starts_with("8 ")),
        "the monitor (pid {monitor}) holds the caller's descriptors: {held:?}"
    );
}

/// `berth exec` with and without -i, and `exec -d`: before, the process
/// got the caller's own stdout and stderr (and stdin with -i).
#[test]
fn exec_gives_pipes_not_the_callers_files() {
    if !berth_testkit::root_or_skip("exec_gives_pipes_not_the_callers_files") {
        return;
    }
    let b = berth();
    b.ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"]);
    for flags in [&[][..], &["-i"][..]] {
        let what = format!("exec {}", flags.join(" "));
        let files = CallerFiles::new();
        let mut cmd = b.cmd();
        cmd.arg("exec").args(flags).args(["cc", "sh", "-c", ATTACK]);
        let st = files.run(cmd);
        assert_eq!(st.code(), Some(0), "{what}: {st:?}\n{}", files.err());
        files.untouched(&what);
        only_pipes(&what, &files.out(), false);
        assert!(
            files.err().contains("pwned-2\n"),
            "{what}:\n{}",
            files.err()
        );
    }

    // detached: its output goes nowhere, and nowhere near our files
    let files = CallerFiles::new();
    let mut cmd = b.cmd();
    // what its own 0, 1, 2 are, written where we can read it
    let probe = "a=$(readlink /proc/$$/fd/0); b=$(readlink /proc/$$/fd/1); \
        c=$(readlink /proc/$$/fd/2); printf 'fd0=%s\nfd1=%s\nfd2=%s\ndone\n' $a $b $c > /tmp/probe";
    cmd.args(["exec", "-d", "cc", "sh", "-c", ATTACK]);
    let st = files.run(cmd);
    assert_eq!(st.code(), Some(0), "exec -d: {st:?}\n{}", files.err());
    let mut cmd = b.cmd();
    cmd.args(["exec", "-d", "cc", "sh", "-c", probe]);
    assert_eq!(files.run(cmd).code(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let o = b.run(&["exec", "cc", "cat", "/tmp/probe"]);
        if stdout(&o).contains("done") {
            break stdout(&o);
        }
        assert!(Instant::now() < deadline, "exec -d never finished: {o:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    files.untouched("exec -d");
    assert_eq!(files.out(), "SECRET-OUT\n", "exec -d wrote to our stdout");
    assert_eq!(seen, "fd0=/dev/null\nfd1=/dev/null\nfd2=/dev/null\ndone\n");
}

/// What a healthcheck sees: before, its stdout and stderr were a file in
/// the container's directory on the host (the path leaked, and the file
/// could be reopened).
#[test]
fn healthcheck_gives_pipes() {
    if !berth_testkit::root_or_skip("healthcheck_gives_pipes") {
        return;
    }
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        ATTACK,
        "--health-interval",
        "100ms",
        "busybox",
        "sleep",
        "600",
    ]);
    b.wait_for("hc", "{{.State.Health.Status}}", "healthy");
    let out = health_output(&b, "hc");
    only_pipes("healthcheck", &out, false);
    assert!(out.contains("pwned-1"), "{out}");
    // nothing of the check is left beside the container
    let dir = b.path().join("containers");
    let left: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "health.out"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A check that writes more than a pipe holds is read as it writes (not
/// blocked until its timeout), and its output is cut as docker cuts it.
#[test]
fn healthcheck_with_large_output_is_not_blocked() {
    if !berth_testkit::root_or_skip("healthcheck_with_large_output_is_not_blocked") {
        return;
    }
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "big",
        "--health-cmd",
        "head -c 1000000 /dev/zero | tr '\\0' x; echo",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "10s",
        "busybox",
        "sleep",
        "600",
    ]);
    b.wait_for("big", "{{.State.Health.Status}}", "healthy");
    let out = health_output(&b, "big");
    // docker's 4096 bytes and its mark of the cut
    assert_eq!(out.len(), 4099, "{}", &out[..out.len().min(100)]);
    assert!(out.ends_with("..."));
    assert!(out[..4096].bytes().all(|c| c == b'x'));
}

/// The output of the container's first healthcheck, from inspect.
fn health_output(b: &Berth, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    v[0]["State"]["Health"]["Log"][0]["Output"]
        .as_str()
        .unwrap_or_else(|| panic!("no health log: {v}"))
        .to_string()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            all.extend(walk(&p));
        }
        all.push(p);
    }
    all
}

/// A build RUN step, with berth's output on the caller's files.
#[test]
fn build_run_step_gives_pipes() {
    if !berth_testkit::root_or_skip("build_run_step_gives_pipes") {
        return;
    }
    let b = berth();
    let ctx = tempfile::tempdir().unwrap();
    let script = ATTACK
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM busybox\nRUN {script}\n"),
    )
    .unwrap();
    let files = CallerFiles::new();
    let mut cmd = b.cmd();
    cmd.args(["build", "--progress", "plain", "--no-cache", "-t", "x"])
        .arg(ctx.path());
    let st = files.run(cmd);
    assert_eq!(st.code(), Some(0), "build: {st:?}\n{}", files.err());
    files.untouched("build");
    // the step's lines, as plain progress shows them: `#2 0.012 fd0=...`
    let err = files.err();
    let lines: String = err
        .lines()
        .filter_map(|l| {
            let mut w = l.splitn(3, ' ');
            let (_, _, rest) = (w.next()?, w.next()?, w.next()?);
            Some(format!("{rest}\n"))
        })
        .collect();
    only_pipes("build RUN", &lines, false);
}

/// The four ways in without a terminal of its own, typed on a terminal.
fn without_t(probe: &str) -> [Vec<&str>; 4] {
    [
        vec!["run", "--rm", "busybox", "sh", "-c", probe],
        vec!["run", "--rm", "-i", "busybox", "sh", "-c", probe],
        vec!["exec", "cc", "sh", "-c", probe],
        vec!["exec", "-i", "cc", "sh", "-c", probe],
    ]
}

/// Runs berth with `args` on a terminal of its own until it exits (0);
/// all the terminal showed.
fn on_terminal(b: &Berth, args: &[&str]) -> String {
    let what = args[..2].join(" ");
    let mut c = b.cmd();
    c.args(args);
    let mut p = berth_testkit::pty::PtyChild::spawn(c, 24, 80);
    let st = p.wait(Duration::from_secs(30));
    let seen = String::from_utf8_lossy(&p.seen).replace('\r', "");
    assert_eq!(st.code(), Some(0), "{what}: {st:?}\n{seen}");
    seen
}

/// berth on a real terminal: without -t, neither run nor exec hands that
/// terminal to the container (pipes, not our /dev/pts/N, which it could
/// read or push keystrokes into with TIOCSTI); with -t, the container's
/// terminal is its own.
#[test]
fn terminal_of_the_caller_is_not_handed_over() {
    if !berth_testkit::root_or_skip("terminal_of_the_caller_is_not_handed_over") {
        return;
    }
    let b = berth();
    b.ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"]);
    for args in without_t(ATTACK) {
        let seen = on_terminal(&b, &args);
        only_pipes(&args[..2].join(" "), &seen, false);
    }
    for args in [
        vec!["run", "--rm", "-t", "busybox", "sh", "-c", ATTACK],
        vec!["run", "--rm", "-it", "busybox", "sh", "-c", ATTACK],
        vec!["exec", "-t", "cc", "sh", "-c", ATTACK],
        vec!["exec", "-it", "cc", "sh", "-c", ATTACK],
    ] {
        let seen = on_terminal(&b, &args);
        only_pipes(&args[..2].join(" "), &seen, true);
    }
}

/// The other way to the caller's terminal: opening /dev/tty, the
/// controlling terminal of the process's session. A container process
/// must have none (ENXIO), so that it can neither read what the user types
/// nor push keystrokes into the user's shell. This half depends on the
/// runtime starting each container process in a session of its own
/// (setsid, crates/runtime/src/process), not on the descriptors.
#[test]
fn container_cannot_open_the_callers_terminal() {
    if !berth_testkit::root_or_skip("container_cannot_open_the_callers_terminal") {
        return;
    }
    let b = berth();
    b.ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"]);
    let probe = "echo x > /dev/tty && echo TTY-OPENED; echo end";
    for args in without_t(probe) {
        let what = args[..2].join(" ");
        let seen = on_terminal(&b, &args);
        assert!(
            !seen.contains("TTY-OPENED"),
            "{what}: the container opened the caller's terminal\n{seen}"
        );
        assert!(
            seen.contains("No such device or address"),
            "{what}: /dev/tty did not fail with ENXIO\n{seen}"
        );
    }
}

/// stdin: /dev/null without -i, a pipe with -i whose end of file reaches
/// the container; bytes arrive whole; stdout and stderr stay apart; the
/// exit code is the container's. For run and exec alike.
#[test]
fn stdin_pipe_follows_docker() {
    if !berth_testkit::root_or_skip("stdin_pipe_follows_docker") {
        return;
    }
    let b = berth();
    b.ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let want = format!("{}\n", data.len());
    for prefix in [
        &["run", "--rm", "-i", "busybox"][..],
        &["exec", "-i", "cc"][..],
    ] {
        let what = prefix[..2].join(" ");
        let mut cmd = b.cmd();
        cmd.args(prefix)
            .args(["sh", "-c", "wc -c; echo to-err >&2; exit 5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let feed = data.clone();
        let writer = std::thread::spawn(move || input.write_all(&feed));
        let o = wait_output(child, Duration::from_secs(60));
        writer.join().unwrap().unwrap();
        assert_eq!(o.status.code(), Some(5), "{what}: {o:?}");
        assert_eq!(stdout(&o).trim_start(), want, "{what}");
        assert_eq!(stderr(&o), "to-err\n", "{what}");
    }
    // without -i: stdin is /dev/null (at its end at once), whatever ours is
    for prefix in [&["run", "--rm", "busybox"][..], &["exec", "cc"][..]] {
        let mut cmd = b.cmd();
        cmd.args(prefix)
            .args(["sh", "-c", "readlink /proc/self/fd/0; wc -c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // held open and never written: a read of ours would hang
        let _input = child.stdin.take();
        let o = wait_output(child, Duration::from_secs(30));
        assert_eq!(stdout(&o), "/dev/null\n0\n", "{prefix:?}: {o:?}");
    }
}

/// Waits (with a deadline) for `child`, reading its stdout and stderr.
fn wait_output(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    // Killed past the deadline: the pipes close, the readers end.
    let status = wait_deadline(&mut child, limit);
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A stdout whose reader is already gone.
fn closed_pipe() -> OwnedFd {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    w
}

fn died_of_sigpipe(st: ExitStatus) -> bool {
    st.signal() == Some(libc::SIGPIPE)
}

/// Every command that writes to stdout ends quietly when nobody reads it:
/// killed by SIGPIPE as cat is (141 in a shell), no panic, no "Broken
/// pipe" error.
#[test]
fn commands_end_quietly_on_a_closed_pipe() {
    if !berth_testkit::root_or_skip("commands_end_quietly_on_a_closed_pipe") {
        return;
    }
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "busybox",
        "sh",
        "-c",
        "echo hello; sleep 600",
    ]);
    b.wait_for("cc", "{{.State.Status}}", "running");
    for args in [
        &["ps"][..],
        &["ps", "-a", "--no-trunc"],
        &["images"],
        &["inspect", "cc"],
        &["inspect", "busybox"],
        &["logs", "cc"],
        &["events", "--since", "0", "--until", "1"],
        &["events", "--since", "0", "--until", "2100000000"],
        &["history", "busybox"],
        &["network", "ls"],
        &["volume", "ls"],
        &["top", "cc"],
        &["exec", "cc", "echo", "hi"],
        &["run", "--rm", "busybox", "echo", "hi"],
        &["save", "busybox"],
    ] {
        let what = args.join(" ");
        let o = b
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_output_err(o, Duration::from_secs(30));
        if args == ["events", "--since", "0", "--until", "1"] {
            // nothing to write: an ordinary end
            assert_eq!(o.status.code(), Some(0), "{what}: {o:?}");
            continue;
        }
        assert!(
            died_of_sigpipe(o.status),
            "{what}: {:?}, stderr {:?}",
            o.status,
            stderr(&o)
        );
        assert_eq!(stderr(&o), "", "{what}");
    }
    // a socket whose peer left (stdout handed over by a service manager)
    for args in [
        &["ps"][..],
        &["inspect", "cc"],
        &["exec", "cc", "echo", "hi"],
    ] {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(ours);
        let o = b
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(OwnedFd::from(theirs))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_output_err(o, Duration::from_secs(30));
        let what = format!("{} on a closed socket", args.join(" "));
        assert!(
            died_of_sigpipe(o.status),
            "{what}: {:?} {}",
            o.status,
            stderr(&o)
        );
        assert_eq!(stderr(&o), "", "{what}");
    }
    // nothing was hurt: the container runs on, its row as it was
    assert_eq!(b.inspect("cc", "{{.State.Status}}"), "running");
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
}

fn wait_output_err(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let mut err = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_deadline(&mut child, limit);
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: t.join().unwrap(),
    }
}

/// `berth run img cat /dev/zero | head -c 50M` and `exec ... yes | head -1`:
/// what was read arrived whole, berth then ends (no hang) by SIGPIPE as
/// docker's client does, quietly, and the container is reaped and
/// recorded (with --rm: gone).
#[test]
fn reader_leaving_ends_a_foreground_container_quietly() {
    if !berth_testkit::root_or_skip("reader_leaving_ends_a_foreground_container_quietly") {
        return;
    }
    let b = berth();
    b.ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"]);
    const WANT: usize = 50 << 20;
    for (args, want) in [
        (
            &[
                "run",
                "--rm",
                "--log-opt",
                "max-size=1m",
                "busybox",
                "cat",
                "/dev/zero",
            ][..],
            WANT,
        ),
        (&["run", "--name", "kept", "busybox", "yes"][..], 2),
        (&["exec", "cc", "cat", "/dev/zero"][..], WANT),
        (&["exec", "-i", "cc", "yes"][..], 2),
    ] {
        let what = args.join(" ");
        let mut child = b
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        // read in a thread, so that a stalled berth fails the test
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut got = vec![0u8; want];
            let r = out.read_exact(&mut got).map(|()| got);
            // our end closes here: the reader has left
            drop(out);
            let _ = tx.send(r);
        });
        let got = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(r) => r.expect("the output arrives whole"),
            Err(e) => {
                let _ = child.kill();
                panic!("{what}: {want} bytes not read in time: {e}");
            }
        };
        if want == 2 {
            assert_eq!(got, b"y\n", "{what}");
        } else {
            assert!(got.iter().all(|&c| c == 0), "{what}");
        }
        let o = wait_output_err(child, Duration::from_secs(30));
        assert!(
            died_of_sigpipe(o.status),
            "{what}: {:?} {}",
            o.status,
            stderr(&o)
        );
        // the container's own complaint, if any, is its business; berth
        // says nothing
        assert!(
            !stderr(&o).contains("Error") && !stderr(&o).contains("panicked"),
            "{what}: {}",
            stderr(&o)
        );
    }
    assert_eq!(b.inspect("kept", "{{.State.Status}}"), "exited");
    assert_eq!(b.inspect("cc", "{{.State.Status}}"), "running");
    let names = b.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.lines().count(), 2, "--rm left nothing: {names}");
}

/// `--network none`: a namespace of its own with loopback up, as docker
/// gives; in a build RUN step too.
#[test]
fn network_none_has_loopback_up() {
    if !berth_testkit::root_or_skip("network_none_has_loopback_up") {
        return;
    }
    let b = berth();
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ip link show lo; ip -o link | wc -l; ping -c1 -W2 127.0.0.1 >/dev/null && echo ping-ok",
    ]);
    expect_code(&o, 0, "run --network none");
    let out = stdout(&o);
    assert!(out.contains("UP"), "{out}");
    assert!(out.contains("ping-ok"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "1"), "only lo: {out}");

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN --network=none ping -c1 -W2 127.0.0.1\n",
    )
    .unwrap();
    let o = b.run(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "lo",
        &ctx.path().to_string_lossy(),
    ]);
    expect_code(&o, 0, "build RUN --network=none");
}

/// An image `tiocsti` with tests/helpers/tiocsti.c built in as
/// /bin/tiocsti; None (said, or a failure under CI) without a C compiler.
fn with_tiocsti(b: &Berth) -> Option<()> {
    if !berth_testkit::snippet::installed("cc") {
        assert!(
            std::env::var_os("CI").is_none(),
            "cc is missing (apt-get install gcc libc6-dev), and CI is set"
        );
        eprintln!("skipped: cc is missing (apt-get install gcc libc6-dev)");
        return None;
    }
    let ctx = tempfile::tempdir().unwrap();
    berth_testkit::build_helper("tiocsti", &ctx.path().join("tiocsti"));
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY tiocsti /bin/tiocsti\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "-q",
        "-t",
        "tiocsti",
        &ctx.path().to_string_lossy(),
    ]);
    Some(())
}

/// TIOCSTI, the keystroke-injection ioctl, tried on each of 0, 1 and 2 of
/// a container started from a terminal without -t: each is a pipe or
/// /dev/null, never the caller's terminal, so each is refused, and nothing
/// reaches the caller's input.
#[test]
fn tiocsti_on_any_descriptor_is_refused() {
    if !berth_testkit::root_or_skip("tiocsti_on_any_descriptor_is_refused") {
        return;
    }
    let b = berth();
    if with_tiocsti(&b).is_none() {
        return;
    }
    b.ok(&["run", "-d", "--name", "cc", "tiocsti", "sleep", "600"]);
    let probe = "for n in 0 1 2; do tiocsti 'echo INJECTED\n' 0<&$n; done; echo end";
    for args in [
        vec!["run", "--rm", "tiocsti", "sh", "-c", probe],
        vec!["run", "--rm", "-i", "tiocsti", "sh", "-c", probe],
        vec!["exec", "cc", "sh", "-c", probe],
        vec!["exec", "-i", "cc", "sh", "-c", probe],
    ] {
        let what = args[..2].join(" ");
        let seen = on_terminal(&b, &args);
        assert_eq!(
            seen.matches("TIOCSTI refused").count(),
            3,
            "{what}: a descriptor took TIOCSTI\n{seen}"
        );
        assert!(!seen.contains("TIOCSTI ok"), "{what}:\n{seen}");
        assert!(!seen.contains("INJECTED"), "{what}:\n{seen}");
    }
}

/// `berth build . 2>&1 | head`: the reader of the progress leaves mid-step.
/// The build ends (no hang, no death mid-step): the step is killed, its
/// mounts and runtime state go, and berth dies quietly by SIGPIPE.
#[test]
fn build_whose_reader_leaves_ends_and_leaves_nothing() {
    if !berth_testkit::root_or_skip("build_whose_reader_leaves_ends_and_leaves_nothing") {
        return;
    }
    let b = berth();
    let ctx = tempfile::tempdir().unwrap();
    let marker = format!("step-of-{}", std::process::id());
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM busybox\nRUN i=0; while [ $i -lt 600 ]; do echo {marker} $i; i=$((i+1)); sleep 0.1; done\n"
        ),
    )
    .unwrap();
    let mut child = b
        .cmd()
        .args(["build", "--progress", "plain", "--no-cache", "-t", "gone"])
        .arg(ctx.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let want = format!("{marker} 3");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(&want) {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        // the reader leaves here
        drop(err);
        let _ = tx.send(seen);
    });
    let seen = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the step's output in time");
    assert!(
        String::from_utf8_lossy(&seen).contains(&format!("{marker} 3")),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let st = wait_deadline(&mut child, Duration::from_secs(30));
    assert!(died_of_sigpipe(st), "{st:?}");
    // the step is gone, and so are its mounts and its image
    let step_left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains(&marker));
    assert!(!step_left, "the RUN step still runs");
    assert_eq!(b.mounts(), 0, "mounts left under the store");
    let o = b.run(&["image", "inspect", "gone"]);
    assert_ne!(o.status.code(), Some(0), "the image was made");
}

/// A check that leaves a process behind writing to its output as fast as
/// it can (`yes &`): the monitor reads a bounded amount per turn and lets
/// the pipe go once the check is reaped, so it is never stuck draining,
/// and the checks go on.
#[test]
fn healthcheck_leaving_a_writer_behind_does_not_hold_the_monitor() {
    if !berth_testkit::root_or_skip("healthcheck_leaving_a_writer_behind_does_not_hold_the_monitor")
    {
        return;
    }
    let b = berth();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "flood",
        "--health-cmd",
        "yes & sleep 0.3; echo fine",
        "--health-interval",
        "200ms",
        "busybox",
        "sleep",
        "600",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "flood"])).unwrap();
        let log = v[0]["State"]["Health"]["Log"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if log.len() >= 3 {
            for p in &log {
                assert_eq!(p["ExitCode"], 0, "{p}");
                let out = p["Output"].as_str().unwrap_or("");
                assert!(
                    out.starts_with("y\ny\n") && out.len() <= 4099,
                    "{}",
                    &out[..out.len().min(80)]
                );
            }
            break;
        }
        assert!(Instant::now() < deadline, "the checks stopped: {log:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // and the monitor still does its other work
    let t = Instant::now();
    b.ok(&["stop", "-t", "1", "flood"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stop took {:?}",
        t.elapsed()
    );
}
