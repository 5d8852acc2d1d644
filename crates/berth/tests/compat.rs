//! Docker CLI fidelity, measured: the command lines of `tests/compat/*.txt`
//! run against a private `dockerd` (Debian's docker.io 20.10) and against
//! berth, with the busybox fixture imported into both as `bb:1`; exit
//! codes, stdout and stderr must be the same once what legitimately
//! differs is masked (ids, times, the client's own name). `$C` in a line
//! is the client under test.
//!
//! A line ending in `  ## differs: WHY` is a difference kept on purpose:
//! it is run and reported, and must still differ (a line that has come
//! to match loses its mark, so the list stays true).
//!
//! One test per corpus file, each with its own dockerd and berth store, so
//! that nextest runs them side by side.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::PathBuf;

use berth_testkit::dockerd::Dockerd;
use berth_testkit::snippet::tests_dir;
use berth_testkit::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

const MARK: &str = "  ## differs: ";

/// A difference kept only where berth gives containers a user namespace
/// of their own by default (what /proc/mounts shows of one); where the
/// host's is the default (`userns = host`, a kernel before 6.13), the line
/// must match docker's as an unmarked one does.
const MARK_USERNS: &str = "  ## differs with userns: ";

/// Ids (64 or 12 lowercase hex digits) masked: they legitimately differ.
fn mask_ids(s: &str) -> String {
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

/// "3 seconds ago", "Up Less than a second", "About a minute ago": how
/// long ago depends on when each side ran.
fn mask_times(s: &str) -> String {
    let mut out = s.to_string();
    for phrase in ["Less than a second", "About a minute", "About an hour"] {
        out = out.replace(phrase, "<t>");
    }
    // "<n> seconds|minutes|hours"
    let words: Vec<&str> = out.split(' ').collect();
    let mut kept: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let unit = words.get(i + 1).map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphabetic())
                .to_string()
        });
        if words[i].chars().all(|c| c.is_ascii_digit())
            && !words[i].is_empty()
            && unit.as_deref().is_some_and(|u| {
                ["second", "seconds", "minute", "minutes", "hour", "hours"].contains(&u)
            })
        {
            let rest = &words[i + 1][unit.as_deref().unwrap_or("").len()..];
            kept.push(format!("<t>{rest}"));
            i += 2;
        } else {
            kept.push(words[i].to_string());
            i += 1;
        }
    }
    kept.join(" ")
}

/// docker's client names itself in its messages and usage lines; berth
/// does too.
fn normalise(s: &str) -> String {
    let mut s = s.to_string();
    for (from, to) in [
        ("\"docker ", "\"berth "),
        ("'docker ", "'berth "),
        ("'docker'", "'berth'"),
        ("docker: ", "berth: "),
        ("Usage:  docker ", "Usage:  berth "),
        ("not a docker command", "not a berth command"),
    ] {
        s = s.replace(from, to);
    }
    mask_times(&mask_ids(&s))
}

/// docker's client, asked for `run -d`, starts waiting for the exit before
/// the start and cancels that wait when it returns; now and then the
/// cancelled wait logs itself on stderr (a race of docker's own, no result
/// of the command). That one line is dropped from docker's side only.
fn drop_docker_noise(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| {
            !(l.contains("level=error")
                && l.contains("msg=\"error waiting for container: context canceled\""))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs every line of the corpus `file` on both sides; fails listing the
/// lines that differ (and the marked lines that no longer do).
fn corpus(file: &str) {
    corpus_with(file, "");
}

/// [`corpus`] with `preamble` (shell assignments) before every line.
fn corpus_with(file: &str, preamble: &str) {
    let path: PathBuf = tests_dir().join("compat").join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let Some(d) = Dockerd::start(&[]) else { return };
    let berth = Store::empty(BIN);
    berth.import_busybox("bb:1", &[]);
    let berth_cmd = format!("{BIN} --root {}", berth.path().display());
    let private_userns = default_userns_is_private(&d, &berth_cmd);
    let mut differ = Vec::new();
    let mut now_same = Vec::new();
    let (mut total, mut kept) = (0, 0);
    for raw in text.lines() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        total += 1;
        let (line, why) = match (raw.split_once(MARK), raw.split_once(MARK_USERNS)) {
            (Some((l, w)), _) => (l, Some(w)),
            (None, Some((l, w))) => (l, private_userns.then_some(w)),
            (None, None) => (raw, None),
        };
        let docker = d.sh(&format!("{preamble}C=\"$D\"\n{line}"));
        let ours = d.sh(&format!("{preamble}C='{berth_cmd}'\n{line}"));
        let same = docker.code() == ours.code()
            && normalise(&docker.stdout) == normalise(&ours.stdout)
            && normalise(&drop_docker_noise(&docker.stderr)) == normalise(&ours.stderr);
        match (same, why) {
            (true, None) => {}
            (true, Some(_)) => now_same.push(line.to_string()),
            (false, Some(_)) => kept += 1,
            (false, None) => differ.push(format!(
                "{line}\n-- docker: exit {}\n{}{}-- berth: exit {}\n{}{}",
                docker.code(),
                docker.stdout,
                docker.stderr,
                ours.code(),
                ours.stdout,
                ours.stderr
            )),
        }
    }
    eprintln!(
        "compat {file}: {} of {total} command lines gave what docker gives; {kept} kept differences, {} unexpected",
        total - kept - differ.len(),
        differ.len()
    );
    assert!(
        now_same.is_empty(),
        "marked as differing but now the same as docker (remove the mark):\n{}",
        now_same.join("\n")
    );
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}

/// Whether berth's default container has a user namespace of its own:
/// its uid_map is not the host's identity map.
fn default_userns_is_private(d: &Dockerd, berth_cmd: &str) -> bool {
    let out = d.sh(&format!(
        "{berth_cmd} run --rm --network none bb:1 cat /proc/self/uid_map"
    ));
    assert_eq!(out.code(), 0, "read the default container's uid_map\n{out}");
    let identity = out.stdout.split_whitespace().eq(["0", "0", "4294967295"]);
    !identity
}

#[test]
fn basics() {
    corpus("basics.txt");
}

#[test]
fn errors() {
    corpus("errors.txt");
}

#[test]
fn lifecycle() {
    corpus("lifecycle.txt");
}

#[test]
fn lifecycle_files_and_exec() {
    corpus("lifecycle2.txt");
}

#[test]
fn run_options() {
    corpus("run_options.txt");
}

#[test]
fn images() {
    corpus("images.txt");
}

#[test]
fn volumes_and_networks() {
    corpus("net_vol.txt");
}

#[test]
fn formats() {
    corpus("formats.txt");
}

#[test]
fn info() {
    corpus("info.txt");
}

#[test]
fn prune() {
    corpus("prune.txt");
}

#[test]
fn ps_filters() {
    corpus("ps_filters.txt");
}

#[test]
fn volume_options() {
    corpus("volume_opts.txt");
}

#[test]
fn fidelity() {
    corpus("fidelity.txt");
}

/// Pulls from a loopback docker-registry (`$R`), which docker trusts over
/// plain HTTP by default and berth when registries.conf says so (`$RC`,
/// which lines name in CONTAINERS_REGISTRIES_CONF; docker ignores it).
#[test]
fn pull() {
    if !berth_testkit::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "pull: needs root, and CI is set"
        );
        eprintln!("skipped pull: needs root");
        return;
    }
    let registry = berth_testkit::registry::Registry::start("", "");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            registry.addr()
        ),
    )
    .unwrap();
    corpus_with(
        "pull.txt",
        &format!("R={}\nRC={}\n", registry.addr(), conf.display()),
    );
}

/// `search` against a v1 index written in the testkit (`$S`), and a
/// docker-registry (`$R`), which has no search.
#[test]
fn search() {
    let index = berth_testkit::search_index::SearchIndex::start();
    let registry = berth_testkit::registry::Registry::start("", "");
    corpus_with(
        "search.txt",
        &format!("S={}\nR={}\n", index.addr(), registry.addr()),
    );
}

#[test]
fn masks_only_what_legitimately_differs() {
    assert_eq!(
        mask_ids("abc 0123456789ab 0123456789abc"),
        "abc <id> 0123456789abc"
    );
    assert_eq!(
        mask_times("Up 3 seconds, Exited (0) About a minute ago"),
        "Up <t>, Exited (0) <t> ago"
    );
    assert_eq!(mask_times("exit 3 files"), "exit 3 files");
    assert_eq!(
        normalise("See 'docker run --help'."),
        "See 'berth run --help'."
    );
    assert_eq!(normalise("com.docker.compose"), "com.docker.compose");
    assert_eq!(
        drop_docker_noise(
            "a\ntime=\"2026-12-05T16:38:28Z\" level=error msg=\"error waiting for container: context canceled\"\nb\n"
        ),
        "a\nb\n"
    );
    assert_eq!(
        drop_docker_noise("Error: context canceled\n"),
        "Error: context canceled\n"
    );
}

#[test]
fn build() {
    corpus("build.txt");
}

#[test]
fn everyday() {
    corpus("everyday.txt");
}

#[test]
fn checks() {
    corpus("checks.txt");
}

#[test]
fn listings() {
    corpus("listings.txt");
}

#[test]
fn streams() {
    corpus("streams.txt");
}

#[test]
fn inspect() {
    corpus("inspect.txt");
}

#[test]
fn networks_and_volumes_again() {
    corpus("netvol2.txt");
}
