//! What berth gives shells and `man`: completion scripts that real bash,
//! zsh and fish load and complete with, man pages that `man` renders
//! without a warning and that list every option `--help` lists, and
//! scripts/install.sh putting them where the shells and `man` look.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::snippet::{bash, capture, installed, tests_dir, Out};
use berth_testkit::{expect_code, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A shell the test needs: false (said, or a failure under CI, where
/// scripts/install-deps.sh installs it) when it is missing.
fn have(tool: &str, test: &str) -> bool {
    if installed(tool) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {tool} is not installed (scripts/install-deps.sh installs it)"
    );
    eprintln!("skipped {test}: {tool} is not installed");
    false
}

fn berth(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).output().expect("run berth");
    expect_code(&o, 0, &args.join(" "));
    stdout(&o)
}

fn sh(script: &str) -> Out {
    let mut c = bash();
    c.arg(script);
    capture(c, script)
}

/// What bash offers for the words of `line` (the last one being
/// completed), through the `berth completion bash` script as bash loads it.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = words[cword.saturating_sub(1)];
    let line = words.join(" ");
    let s = format!(
        "source {script}\n\
         complete -p berth | grep -q -- '-F _berth berth' || {{ echo 'berth has no completion function' >&2; exit 1; }}\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         _berth berth '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = quoted.join(" "),
        cur = words[cword],
    );
    let out = sh(&s);
    assert_eq!(out.code(), 0, "{out}");
    out.stdout.lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_and_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("berth.bash");
    std::fs::write(&script, berth(&["completion", "bash"])).unwrap();
    assert_eq!(bash_completes(&script, &["berth", "ru"]), ["run"]);
    let net = bash_completes(&script, &["berth", "run", "--netw"]);
    assert_eq!(net, ["--network", "--network-alias"]);
    assert_eq!(
        bash_completes(&script, &["berth", "network", "cr"]),
        ["create"]
    );
    // Global flags before the command, and a group's commands.
    assert_eq!(
        bash_completes(&script, &["berth", "--root", "/x", "container", "ru"]),
        ["run"]
    );
    assert!(bash_completes(&script, &["berth", "completion", ""]).contains(&"fish".to_string()));
}

#[test]
fn zsh_and_fish_scripts_load() {
    let dir = tempfile::tempdir().unwrap();
    if have("zsh", "zsh_and_fish_scripts_load") {
        let script = dir.path().join("_berth");
        std::fs::write(&script, berth(&["completion", "zsh"])).unwrap();
        let out = sh(&format!("zsh -n {}", script.display()));
        assert_eq!(out.code(), 0, "{out}");
        assert!(
            std::fs::read_to_string(&script)
                .unwrap()
                .starts_with("#compdef berth"),
            "zsh finds a completion by its #compdef line"
        );
    }
    if have("fish", "zsh_and_fish_scripts_load") {
        let script = dir.path().join("berth.fish");
        std::fs::write(&script, berth(&["completion", "fish"])).unwrap();
        let out = sh(&format!("fish -n {}", script.display()));
        assert_eq!(out.code(), 0, "{out}");
        // fish completes for real: `complete -C` asks as a TAB would.
        let out = sh(&format!(
            "fish -c 'source {}; complete -C \"berth ru\"; complete -C \"berth run --netw\"'",
            script.display()
        ));
        assert_eq!(out.code(), 0, "{out}");
        let words: Vec<&str> = out
            .stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap_or(l))
            .collect();
        assert_eq!(words, ["run", "--network", "--network-alias"], "{out}");
    }
}

#[test]
fn completion_of_an_unknown_shell_is_refused() {
    let o = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    expect_code(&o, 125, "completion tcsh");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    assert!(o.stdout.is_empty());
}

/// Long flags (`--network`) a text names.
fn long_flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2 && !w[2..].starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// `man -l` of a page: its text, with what man said on stderr.
fn man(page: &Path) -> Out {
    // No hyphenation or justification: a flag stays one word.
    let s = format!(
        "MANWIDTH=200 LC_ALL=C.UTF-8 man --warnings --nh --nj -l {}",
        page.display()
    );
    sh(&s)
}

#[test]
fn man_pages_render_cleanly_and_list_every_option() {
    if !have("man", "man_pages_render_cleanly_and_list_every_option") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    berth(&["__man", &dir.path().to_string_lossy()]);
    let pages: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Every command `berth --help` lists has its page (help aside).
    let top = berth(&["--help"]);
    let commands: Vec<&str> = top
        .split("Commands:")
        .nth(1)
        .and_then(|t| t.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"run") && commands.contains(&"network"));
    for c in &commands {
        assert!(pages.contains(&format!("berth-{c}.1")), "no page for {c}");
    }
    assert!(pages.contains("berth.1") && pages.contains("berth-network-create.1"));
    for page in &pages {
        let out = man(&dir.path().join(page));
        assert_eq!(out.code(), 0, "{page}: {out}");
        assert!(out.stderr.is_empty(), "{page}: man warns\n{out}");
        // The page of `berth network create` lists what its --help lists.
        let words: Vec<&str> = page.trim_end_matches(".1").split('-').skip(1).collect();
        let mut args = words.clone();
        args.push("--help");
        let help = berth(&args);
        if page == "berth-run.1" {
            assert!(long_flags(&help).contains("--network"), "{help}");
        }
        let missing: Vec<String> = long_flags(&help)
            .difference(&long_flags(&out.stdout))
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "{page} lacks {missing:?} that `berth {}` lists",
            args.join(" ")
        );
    }
}

#[test]
fn install_script_puts_completions_and_pages_where_shells_and_man_look() {
    if !have(
        "man",
        "install_script_puts_completions_and_pages_where_shells_and_man_look",
    ) {
        return;
    }
    let from = tempfile::tempdir().unwrap();
    let runtime = berth_testkit::static_bin("berth-runtime");
    for (name, path) in [
        ("berth", PathBuf::from(BIN)),
        (
            "berth-monitor",
            PathBuf::from(env!("CARGO_BIN_EXE_berth-monitor")),
        ),
        ("berth-runtime", runtime),
    ] {
        std::os::unix::fs::symlink(path, from.path().join(name)).unwrap();
    }
    let dest = tempfile::tempdir().unwrap();
    let script = tests_dir().join("../scripts/install.sh");
    let out = sh(&format!(
        "{} --from {} --destdir {}",
        script.display(),
        from.path().display(),
        dest.path().display()
    ));
    assert_eq!(out.code(), 0, "{out}");
    let d = dest.path();
    for b in ["berth", "berth-monitor", "berth-runtime"] {
        let p = d.join("usr/local/bin").join(b);
        let out = sh(&format!("test -x {0} && ! test -L {0}", p.display()));
        assert_eq!(out.code(), 0, "{} is not an installed program", p.display());
    }
    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/berth"),
        ("zsh", "usr/share/zsh/vendor-completions/_berth"),
        ("fish", "usr/share/fish/vendor_completions.d/berth.fish"),
    ] {
        let got = std::fs::read_to_string(d.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(got, berth(&["completion", shell]), "{path}");
    }
    // bash-completion loads a command's script by the command's name.
    assert_eq!(
        bash_completes(
            &d.join("usr/share/bash-completion/completions/berth"),
            &["berth", "ru"]
        ),
        ["run"]
    );
    let man1 = d.join("usr/share/man/man1");
    for page in ["berth.1.gz", "berth-run.1.gz", "berth-network-create.1.gz"] {
        let out = man(&man1.join(page));
        assert_eq!(out.code(), 0, "{page}: {out}");
        assert!(out.stderr.is_empty(), "{page}: {out}");
        assert!(out.stdout.contains("NAME"), "{page}: {out}");
    }
    let out = man(&man1.join("berth-run.1.gz"));
    assert!(out.stdout.contains("--network"), "{out}");
}

/// JSON's kinds, with docker's `null` (a nil slice or pointer in Go)
/// matching anything berth shows there (berth writes nil slices `[]`).
fn same_kind(docker: &Value, berth: &Value) -> bool {
    use Value as V;
    matches!(
        (docker, berth),
        (V::Null, _)
            | (V::Bool(_), V::Bool(_))
            | (V::Number(_), V::Number(_))
            | (V::String(_), V::String(_))
            | (V::Array(_), V::Array(_))
            | (V::Object(_), V::Object(_))
    )
}

/// The keys and kinds where `berth` differs from `docker`; objects whose
/// keys are names (maps: Runtimes, IndexConfigs) are compared entry by
/// entry against docker's first entry.
fn shape_differences(path: &str, docker: &Value, berth: &Value, out: &mut Vec<String>) {
    if !same_kind(docker, berth) {
        out.push(format!("{path}: docker {docker}, berth {berth}"));
        return;
    }
    let (Value::Object(d), Value::Object(b)) = (docker, berth) else {
        return;
    };
    if path.ends_with("Runtimes") || path.ends_with("IndexConfigs") {
        let Some(model) = d.values().next() else {
            return;
        };
        for (k, v) in b {
            shape_differences(&format!("{path}.{k}"), model, v, out);
        }
        return;
    }
    for (k, v) in d {
        match b.get(k) {
            Some(bv) => shape_differences(&format!("{path}.{k}"), v, bv, out),
            None => out.push(format!("{path}.{k}: missing from berth's")),
        }
    }
    for k in b.keys().filter(|k| !d.contains_key(*k)) {
        out.push(format!("{path}.{k}: berth's only"));
    }
}

#[test]
fn info_has_dockers_fields_and_the_same_host() {
    let Some(d) = berth_testkit::dockerd::Dockerd::start(&[]) else {
        return;
    };
    // Both with the busybox image and no container.
    let store = berth_testkit::store::Store::with_busybox(BIN, &[]);
    let docker_json = d.sh("$D info --format '{{json .}}'");
    assert_eq!(docker_json.code(), 0, "{docker_json}");
    let docker: Value = serde_json::from_str(&docker_json.stdout).unwrap();
    let ours: Value = serde_json::from_str(&store.ok(&["info", "--format", "{{json .}}"]))
        .expect("berth info's json");
    let mut diffs = Vec::new();
    shape_differences("", &docker, &ours, &mut diffs);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // What the host decides is the same for both engines (forwarding
    // and br_netfilter aside: other tests change them at any moment).
    for key in [
        "NCPU",
        "MemTotal",
        "KernelVersion",
        "OperatingSystem",
        "OSVersion",
        "OSType",
        "Architecture",
        "Name",
        "CgroupVersion",
        "CgroupDriver",
        "Driver",
        "LoggingDriver",
        "IndexServerAddress",
        "Containers",
        "Images",
        "MemoryLimit",
        "SwapLimit",
        "CpuCfsPeriod",
        "CpuCfsQuota",
        "CPUShares",
        "CPUSet",
        "PidsLimit",
    ] {
        assert_eq!(ours[key], docker[key], "{key}");
    }
    let root = store.path().canonicalize().unwrap();
    assert_eq!(ours["DockerRootDir"], root.to_string_lossy().as_ref());
    assert_eq!(
        ours["ServerVersion"],
        store
            .ok(&["version", "--format", "{{.Server.Version}}"])
            .trim()
    );
    let runtime = &ours["Runtimes"][ours["DefaultRuntime"].as_str().unwrap()];
    assert!(runtime["path"].is_string(), "the default runtime is listed");
    assert!(ours["SecurityOptions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("name=seccomp,profile=default")));
    // The ID is docker 20.10's shape and stays the same.
    let id = ours["ID"].as_str().unwrap();
    assert_eq!(id.len(), docker["ID"].as_str().unwrap().len());
    assert_eq!(store.ok(&["info", "-f", "{{.ID}}"]).trim(), id);

    // Every field a script reads, through the template as typed values:
    // the same text on both sides for the host's.
    let fields = "{{.NCPU}} {{.MemTotal}} {{.KernelVersion}} {{.OperatingSystem}} {{.Name}} \
                  {{.CgroupVersion}} {{.Driver}} {{.CgroupDriver}} {{.Swarm}} {{.Swarm.LocalNodeState}} \
                  {{.ClientInfo.Context}} {{.CPUCfsPeriod}} {{.BridgeNfIP6tables}} {{len .Labels}}";
    let docker_fields = d.sh(&format!("$D info --format '{fields}'"));
    assert_eq!(docker_fields.code(), 0, "{docker_fields}");
    assert_eq!(
        store.ok(&["info", "--format", fields]),
        docker_fields.stdout
    );
    for f in [
        "{{.ServerVersion}}",
        "{{.ContainersRunning}}",
        "{{.ContainersPaused}}",
        "{{.ContainersStopped}}",
        "{{.DockerRootDir}}",
        "{{.SecurityOptions}}",
        "{{.Runtimes}}",
        "{{.DefaultRuntime}}",
        "{{.RegistryConfig}}",
        "{{.Plugins}}",
    ] {
        let o = store.run(&["info", "--format", f]);
        expect_code(&o, 0, f);
        assert!(!stdout(&o).trim().is_empty(), "{f} is empty");
    }

    // The default layout: docker's lines, with the host's values equal.
    let docker_text = d.sh("$D info");
    assert_eq!(docker_text.code(), 0, "{docker_text}");
    let ours_text = store.ok(&["info"]);
    let lines = |t: &str| -> Vec<String> { t.lines().map(str::to_string).collect() };
    let (dl, bl) = (lines(&docker_text.stdout), lines(&ours_text));
    for head in [
        "Client:",
        "Server:",
        " Plugins:",
        " Security Options:",
        "  seccomp",
    ] {
        assert!(bl.iter().any(|l| l == head), "no {head:?} in\n{ours_text}");
    }
    for key in [
        " Containers:",
        "  Running:",
        "  Paused:",
        "  Stopped:",
        " Images:",
        " Storage Driver:",
        " Cgroup Driver:",
        " Cgroup Version:",
        " Kernel Version:",
        " Operating System:",
        " OSType:",
        " Architecture:",
        " CPUs:",
        " Total Memory:",
        " Name:",
        " Swarm:",
        " Debug Mode:",
        " Experimental:",
    ] {
        let find = |ls: &[String]| ls.iter().find(|l| l.starts_with(key)).cloned();
        assert_eq!(find(&bl), find(&dl), "{key}\n{ours_text}");
        assert!(find(&bl).is_some(), "{key} missing\n{ours_text}");
    }
    let root_line = format!(" Docker Root Dir: {}", root.display());
    assert!(bl.contains(&root_line), "{ours_text}");
}

/// docker's client flags that name a daemon: berth has none, so the local
/// socket's names are accepted and anything else is refused in one line
/// (a remote engine silently replaced by this host's would be worse);
/// `--config` points the credential lookup at docker's config dir.
#[test]
fn daemon_flags_are_local_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let run = dir.path().join("run");
    let base = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(extra)
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&run)
            .arg("ps")
            .arg("-q");
        c.output().expect("run berth")
    };
    for ok in [
        &["-H", "unix:///var/run/docker.sock"][..],
        &["--context", "default"],
        &["-D"],
        &["--config", "/nonexistent"],
    ] {
        let o = base(ok);
        expect_code(&o, 0, &ok.join(" "));
    }
    for (bad, words) in [
        (&["-H", "tcp://192.0.2.1:2375"][..], "cannot be reached"),
        (
            &["--context", "remote"],
            "context \"remote\" does not exist",
        ),
        (&["--tlsverify"], "no daemon to reach over TLS"),
    ] {
        let o = base(bad);
        expect_code(&o, 1, &bad.join(" "));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(words), "{}: {err}", bad.join(" "));
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
