//! `berth build` through the real binary, as root.
//!
//! - Golden comparison: every directory under `tests/build/golden/` is built
//!   by Debian's buildah (`bud --format docker --layers`) and by berth from
//!   the same context over the same busybox tar, and the image configs are
//!   compared after normalising what may differ (times, ids, buildah's own
//!   label, and the differences listed in [`docker_semantics`]).
//!   `tests/build/NOTES.md` has what buildah writes and why.
//! - Behaviour: RUN output and failures, stages and `--target`, the cache,
//!   `.dockerignore`, build args, stdin, outputs, squash, reproducibility,
//!   RUN mounts, the network, security of the context and secrets, and bad
//!   input.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_testkit::{busybox_tar, expect_code, output_via_files, snippet, stderr, stdout};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// The PATH both base images carry, so buildah adds none of its own.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

type Berth = berth_testkit::store::Store;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build")
}

/// A store with `tar` imported as `busybox` (CMD sh, PATH set), the way the
/// buildah side imports it.
fn berth_from(tar: &Path) -> Berth {
    let b = Berth::empty(BIN);
    b.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        &format!("ENV {PATH_ENV}"),
        tar.to_str().unwrap(),
        "busybox",
    ]);
    b
}

/// A store with the busybox image, for the behaviour tests.
fn berth() -> (Berth, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let b = berth_from(&busybox_tar(work.path()));
    (b, work)
}

/// A build context: `files` as (path, content), parents made.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    dir
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

/// `berth build ARGS... CONTEXT`.
fn build(b: &Berth, ctx: &Path, args: &[&str]) -> Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    b.run(&all)
}

/// `berth build` that must succeed; the image id it printed last (hex, no
/// `sha256:`).
fn build_ok(b: &Berth, ctx: &Path, args: &[&str]) -> String {
    let o = build(b, ctx, args);
    expect_code(&o, 0, &format!("build {args:?}"));
    printed_id(&o)
}

/// The image id on the last line of stdout, without `sha256:`.
fn printed_id(o: &Output) -> String {
    let out = stdout(o);
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let id = last.trim().trim_start_matches("sha256:").to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "no image id at the end of stdout:\n{out}\nstderr:\n{}",
        stderr(o)
    );
    id
}

/// `berth image inspect NAME`, the first (only) element.
fn inspect(b: &Berth, name: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", name])).unwrap();
    v[0].clone()
}

fn image_id(b: &Berth, name: &str) -> String {
    inspect(b, name)["Id"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

fn layer_count(b: &Berth, name: &str) -> usize {
    inspect(b, name)["RootFS"]["Layers"]
        .as_array()
        .map_or(0, Vec::len)
}

fn no_image(b: &Berth, name: &str) {
    let o = b.run(&["image", "inspect", name]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "{name} exists after a failed build: {}",
        stdout(&o)
    );
}

/// `berth run --rm IMAGE sh -c SCRIPT`, which must succeed; its stdout.
fn run_in(b: &Berth, image: &str, script: &str) -> String {
    b.ok(&["run", "--rm", image, "sh", "-c", script])
}

/// Runs berth with `stdin` as its standard input.
fn run_with_stdin(b: &Berth, args: &[&str], stdin: &Path) -> Output {
    b.cmd()
        .args(args)
        .stdin(fs::File::open(stdin).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run berth")
}

/// The entries of a docker-archive (`berth save`): name → bytes, layers
/// decompressed when gzipped.
fn archive_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if data.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut plain)
                .unwrap();
            data = plain;
        }
        out.push((name, data));
    }
    out
}

/// The raw image config of `name` as `berth save` writes it.
fn saved_config(b: &Berth, name: &str) -> Value {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("saved.tar");
    b.ok(&["save", "-o", tar.to_str().unwrap(), name]);
    let entries = archive_entries(&tar);
    let get = |n: &str| {
        entries
            .iter()
            .find(|(e, _)| e == n)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("{n} missing from the saved archive"))
    };
    let manifest: Value = serde_json::from_slice(&get("manifest.json")).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap().to_string();
    serde_json::from_slice(&get(&config)).unwrap()
}

/// The (path, content) of every regular file in a tar archive.
fn tar_files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(data);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut d = Vec::new();
        e.read_to_end(&mut d).unwrap();
        out.push((name, d));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Golden comparison with buildah
// ---------------------------------------------------------------------------

/// Builds `ctx` with Debian's buildah in a podman-env of its own (under
/// `work`), over `tar` imported as busybox; (image config, base config) as
/// buildah stores them (`.Docker`).
fn buildah_bud(work: &Path, tar: &Path, ctx: &Path, build_args: &[String]) -> (Value, Value) {
    assert!(
        snippet::installed("buildah") && snippet::installed("podman"),
        "buildah and podman are needed for the golden build tests: scripts/install-deps.sh installs them"
    );
    let args: String = build_args
        .iter()
        .map(|a| format!(" --build-arg '{a}'"))
        .collect();
    let script = format!(
        "source {tests}/podman-env.sh {env} >/dev/null || exit 99
         podman import --change 'CMD [\"sh\"]' --change 'ENV {PATH_ENV}' {tar} localhost/busybox:latest >/dev/null \
         && buildah bud --format docker --layers{args} -t localhost/golden:latest {ctx} >&2 \
         && buildah inspect --type image localhost/golden:latest > {work}/golden.json \
         && buildah inspect --type image localhost/busybox:latest > {work}/base.json
         rc=$?; podman_env_cleanup >/dev/null 2>&1; exit $rc",
        tests = snippet::tests_dir().display(),
        env = work.join("podman").display(),
        tar = tar.display(),
        ctx = ctx.display(),
        work = work.display(),
    );
    let out = snippet::capture(
        {
            let mut c = snippet::bash();
            c.arg(&script);
            c
        },
        &script,
    );
    assert_eq!(out.code(), 0, "buildah bud failed:\n{out}");
    let docker = |file: &str| {
        let v: Value = serde_json::from_slice(&fs::read(work.join(file)).unwrap()).unwrap();
        v["Docker"].clone()
    };
    let image = docker("golden.json");
    let base = docker("base.json");
    (image, base)
}

/// Null, "", [] and {} are the same thing here (buildah writes `Cmd: []`
/// where berth may write null).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `created_by` with what cannot match replaced: the digest of a COPY/ADD
/// source (buildah's is of its own tar stream) keeps its kind and shape,
/// and an ARG's text (buildah lists the sorted ARG names so far, with a
/// known bug; Docker writes `ARG V=def`) becomes just `ARG`.
fn normalize_created_by(s: &str) -> String {
    for kw in ["COPY ", "ADD "] {
        let marker = format!("#(nop) {kw}");
        if let Some(at) = s.find(&marker) {
            let rest = &s[at + marker.len()..];
            let (token, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some((kind, hex)) = token.split_once(':') {
                if matches!(kind, "file" | "dir" | "multi")
                    && hex.len() == 64
                    && hex.bytes().all(|c| c.is_ascii_hexdigit())
                {
                    return format!("{}{marker}{kind}:<digest> {tail}", &s[..at]);
                }
            }
        }
    }
    if s.starts_with("/bin/sh -c #(nop) ARG ") {
        return "/bin/sh -c #(nop) ARG".to_string();
    }
    s.to_string()
}

/// The comparable part of an image config: what the build added over
/// `base` (history entries and layers), and the config without its
/// volatile and empty fields.
fn normalize(image: &Value, base: &Value) -> Value {
    let len = |v: &Value| v.as_array().map_or(0, Vec::len);
    let base_history = len(&base["history"]);
    let base_layers = len(&base["rootfs"]["diff_ids"]);
    let mut config = image["config"].as_object().cloned().unwrap_or_default();
    for k in [
        "Hostname",
        "Domainname",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Image",
        "ArgsEscaped",
    ] {
        config.remove(k);
    }
    if let Some(Value::Object(labels)) = config.get_mut("Labels") {
        labels.remove("io.buildah.version");
    }
    config.retain(|_, v| !is_empty(v));
    let history: Vec<Value> = image["history"]
        .as_array()
        .map(|h| h.iter().skip(base_history).cloned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            json!({
                "created_by": normalize_created_by(h["created_by"].as_str().unwrap_or("")),
                "empty_layer": h["empty_layer"].as_bool().unwrap_or(false),
                "author": h.get("author").filter(|a| !is_empty(a)).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let top = |k: &str| {
        image
            .get(k)
            .filter(|v| !is_empty(v))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "author": top("author"),
        "architecture": top("architecture"),
        "os": top("os"),
        "config": config,
        "history": history,
        "new_layers": len(&image["rootfs"]["diff_ids"]).saturating_sub(base_layers),
    })
}

/// Where berth follows Docker rather than buildah, on purpose: buildah's
/// expectation rewritten to Docker's value (after checking it is still
/// buildah's, so a changed buildah shows up here).
fn docker_semantics(name: &str, want: &mut Value) {
    if name == "workdir-user" {
        // Docker's builders (classic and BuildKit) make a missing WORKDIR
        // in a layer of its own step; buildah --layers makes it in no
        // layer (and loses it when no RUN or COPY follows). Docker's
        // history names the directory resolved; buildah's the words.
        for (i, words, dir) in [(1, "$D", "/srv"), (2, "sub", "/srv/sub")] {
            let e = &mut want["history"][i];
            assert_eq!(
                (&e["created_by"], &e["empty_layer"]),
                (
                    &json!(format!("/bin/sh -c #(nop) WORKDIR {words}")),
                    &json!(true)
                )
            );
            e["empty_layer"] = json!(false);
            e["created_by"] = json!(format!("/bin/sh -c #(nop) WORKDIR {dir}"));
        }
        assert_eq!(want["new_layers"], json!(1));
        want["new_layers"] = json!(3);
    }
    if name == "shell" {
        // Docker runs the shell forms of RUN and CMD with SHELL; buildah
        // keeps /bin/sh -c for CMD and for the RUN's history text.
        assert_eq!(
            want["config"]["Cmd"],
            json!(["/bin/sh", "-c", "echo $HOME"])
        );
        want["config"]["Cmd"] = json!(["/bin/sh", "-ec", "echo $HOME"]);
        let run = &mut want["history"][1]["created_by"];
        assert_eq!(run, "/bin/sh -c echo \"$0 $-\" > /shell.txt");
        *run = json!("/bin/sh -ec echo \"$0 $-\" > /shell.txt");
    }
}

fn golden(name: &str) {
    let dir = fixtures().join("golden").join(name);
    let build_args: Vec<String> = fs::read_to_string(dir.join("build-args"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());

    let (image, base) = buildah_bud(work.path(), &tar, &dir, &build_args);
    let mut want = normalize(&image, &base);
    docker_semantics(name, &mut want);

    let b = berth_from(&tar);
    let mut args = vec!["-t".to_string(), "golden".to_string()];
    for a in &build_args {
        args.extend(["--build-arg".to_string(), a.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_ok(&b, &dir, &args);
    let got = normalize(&saved_config(&b, "golden"), &saved_config(&b, "busybox"));
    assert!(
        got == want,
        "{name}: berth and buildah differ\nberth:   {}\nbuildah: {}",
        serde_json::to_string_pretty(&got).unwrap(),
        serde_json::to_string_pretty(&want).unwrap()
    );
}

#[test]
fn golden_env_arg() {
    golden("env-arg");
}

#[test]
fn golden_entrypoint_resets_inherited_cmd() {
    golden("entrypoint-resets-cmd");
}

#[test]
fn golden_entrypoint_shell_form_and_cmd() {
    golden("entrypoint-shell-cmd");
}

#[test]
fn golden_workdir_user() {
    golden("workdir-user");
}

#[test]
fn golden_expose_label() {
    golden("expose-label");
}

#[test]
fn golden_healthcheck_options() {
    golden("healthcheck-options");
}

#[test]
fn golden_healthcheck_exec_then_none() {
    golden("healthcheck-exec-none");
}

#[test]
fn golden_stopsignal_volume() {
    golden("stopsignal-volume");
}

#[test]
fn golden_onbuild_maintainer() {
    golden("onbuild-maintainer");
}

#[test]
fn golden_onbuild_triggers_run_in_the_child_stage() {
    golden("onbuild-trigger");
}

#[test]
fn golden_copy_add_and_multistage() {
    golden("copy-multistage");
}

#[test]
fn golden_shell() {
    golden("shell");
}

/// Every fixture directory has its test above.
#[test]
fn golden_fixtures_all_have_a_test() {
    let src =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build.rs")).unwrap();
    for e in fs::read_dir(fixtures().join("golden")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            src.contains(&format!("golden(\"{name}\")")),
            "tests/build/golden/{name} has no test"
        );
    }
}

// ---------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------

#[test]
fn run_output_is_shown_and_a_failing_run_names_its_line_and_tags_nothing() {
    let (b, _w) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo visible-output | tr a-z A-Z\nRUN echo about-to-fail; exit 3\n",
    )]);
    let o = build(&b, ctx.path(), &["-t", "fails:1", "--progress", "plain"]);
    assert_ne!(o.status.code(), Some(0), "a failing RUN fails the build");
    let err = stderr(&o);
    assert!(err.contains("VISIBLE-OUTPUT"), "RUN output shown:\n{err}");
    assert!(
        err.contains("about-to-fail"),
        "failing RUN's output:\n{err}"
    );
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("Dockerfile:3"),
        "the error names the line: {last}"
    );
    assert!(
        ["exit code 3", "exit code: 3", "exit status 3"]
            .iter()
            .any(|s| last.contains(s)),
        "the error gives the exit code: {last}"
    );
    no_image(&b, "fails:1");

    let ok = context(&[("Dockerfile", "FROM busybox\nRUN echo x > /x\n")]);
    let id = build_ok(&b, ok.path(), &["-t", "ok:1"]);
    assert_eq!(id, image_id(&b, "ok:1"), "stdout ends with the image id");
    let o = build(&b, ok.path(), &["-q", "-t", "ok:2"]);
    expect_code(&o, 0, "build -q");
    assert_eq!(
        stdout(&o).trim().trim_start_matches("sha256:"),
        id,
        "-q prints only the id"
    );
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let (b, _w) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox AS a\n\
         RUN echo from-a > /a.txt\n\
         FROM busybox AS unused\n\
         RUN echo UNUSED-STAGE-RAN; exit 1\n\
         FROM a AS b\n\
         RUN cat /a.txt > /b.txt\n\
         FROM busybox\n\
         COPY --from=b /b.txt /final.txt\n",
    )]);
    let o = build(&b, ctx.path(), &["--target", "b", "-t", "t:b"]);
    expect_code(&o, 0, "build --target b");
    assert!(!stderr(&o).contains("UNUSED-STAGE-RAN"), "{}", stderr(&o));
    assert_eq!(run_in(&b, "t:b", "cat /b.txt"), "from-a\n");
    let o = build(&b, ctx.path(), &["-t", "t:final"]);
    expect_code(&o, 0, "build of the last stage");
    assert!(!stderr(&o).contains("UNUSED-STAGE-RAN"), "{}", stderr(&o));
    assert_eq!(
        run_in(
            &b,
            "t:final",
            "cat /final.txt; test ! -e /b.txt && echo only-copied"
        ),
        "from-a\nonly-copied\n"
    );
    let o = build(&b, ctx.path(), &["--target", "nosuch", "-t", "t:x"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));
    no_image(&b, "t:x");
}

#[test]
fn copy_of_a_thousand_files() {
    let (b, _w) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nCOPY many /many\nRUN ls /many | wc -l > /count\n",
    )]);
    for i in 0..1000 {
        write_files(
            ctx.path(),
            &[(&format!("many/f{i:04}"), &format!("file {i}\n"))],
        );
    }
    build_ok(&b, ctx.path(), &["-t", "many:1"]);
    assert_eq!(
        run_in(&b, "many:1", "cat /count /many/f0999")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000", "file", "999"]
    );
}

#[test]
fn rebuild_is_cached_until_content_changes_not_on_touch() {
    let (b, _w) = berth();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY a.txt /a.txt\nRUN tr a-z A-Z < /a.txt\n",
        ),
        ("a.txt", "hello\n"),
    ]);
    let plain = ["--progress", "plain", "-t", "c:1"];
    let o = build(&b, ctx.path(), &plain);
    expect_code(&o, 0, "first build");
    let first = printed_id(&o);
    assert!(stderr(&o).contains("HELLO"), "the RUN ran:\n{}", stderr(&o));
    // system df counts the cache's entries as docker does (a row per
    // step); history knows each built layer's size.
    let df = b.ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]);
    let cached: usize = df
        .lines()
        .find_map(|l| l.strip_prefix("Build Cache="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(cached >= 2, "two steps cached:\n{df}");
    let sizes = b.ok(&["history", "--format", "{{.Size}}", "c:1"]);
    assert!(
        !sizes.is_empty() && sizes.lines().all(|l| l.ends_with('B') && l != "N/A"),
        "{sizes}"
    );

    let o = build(&b, ctx.path(), &plain);
    expect_code(&o, 0, "rebuild");
    assert_eq!(
        printed_id(&o),
        first,
        "a cached rebuild gives the same image"
    );
    assert!(stderr(&o).contains("CACHED"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("HELLO"),
        "the RUN did not run again:\n{}",
        stderr(&o)
    );

    let st = Command::new("touch")
        .args(["-d", "@1000000000"])
        .arg(ctx.path().join("a.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let o = build(&b, ctx.path(), &plain);
    expect_code(&o, 0, "rebuild after touch");
    assert_eq!(printed_id(&o), first, "an mtime change keeps the cache");
    assert!(stderr(&o).contains("CACHED"), "{}", stderr(&o));

    fs::write(ctx.path().join("a.txt"), "world\n").unwrap();
    let o = build(&b, ctx.path(), &plain);
    expect_code(&o, 0, "rebuild after a change");
    assert_ne!(printed_id(&o), first, "new content, new image");
    assert!(
        stderr(&o).contains("WORLD"),
        "the RUN ran again:\n{}",
        stderr(&o)
    );

    let o = build(
        &b,
        ctx.path(),
        &["--no-cache", "--progress", "plain", "-t", "c:2"],
    );
    expect_code(&o, 0, "--no-cache");
    assert!(!stderr(&o).contains("CACHED"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("WORLD"),
        "--no-cache runs every step:\n{}",
        stderr(&o)
    );
}

#[test]
fn dockerignore_with_an_exception() {
    let (b, _w) = berth();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx\n"),
        (".dockerignore", "*.log\n!keep.log\nsecret\n"),
        ("a.log", "a"),
        ("keep.log", "k"),
        ("sub/b.log", "b"),
        ("secret/key", "s"),
        ("src/main.txt", "m"),
    ]);
    build_ok(&b, ctx.path(), &["-t", "ign:1"]);
    let files: BTreeSet<String> = run_in(&b, "ign:1", "cd /ctx && find . -type f")
        .lines()
        .map(str::to_string)
        .filter(|f| f != "./.dockerignore" && f != "./Dockerfile")
        .collect();
    let want: BTreeSet<String> = ["./keep.log", "./sub/b.log", "./src/main.txt"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(files, want);
}

#[test]
fn build_args_from_the_flag_and_from_the_environment() {
    let (b, _w) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nARG V=default\nARG FROMENV\nARG UNSET=kept\nRUN echo \"$V $FROMENV $UNSET\" > /v\n",
    )]);
    let o = output_via_files(
        b.cmd()
            .env("FROMENV", "envval")
            .args([
                "build",
                "--build-arg",
                "V=given",
                "--build-arg",
                "FROMENV",
                "-t",
                "args:1",
            ])
            .arg(ctx.path()),
    );
    expect_code(&o, 0, "build with args");
    assert_eq!(run_in(&b, "args:1", "cat /v"), "given envval kept\n");
}

#[test]
fn dockerfile_on_stdin_and_context_tar_on_stdin() {
    let (b, work) = berth();
    let ctx = context(&[("hello.txt", "from-dir\n")]);
    let df = work.path().join("Dockerfile.stdin");
    fs::write(&df, "FROM busybox\nCOPY hello.txt /\n").unwrap();
    let o = run_with_stdin(
        &b,
        &[
            "build",
            "-f",
            "-",
            "-t",
            "stdin:df",
            ctx.path().to_str().unwrap(),
        ],
        &df,
    );
    expect_code(&o, 0, "build -f -");
    assert_eq!(run_in(&b, "stdin:df", "cat /hello.txt"), "from-dir\n");

    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", &b"FROM busybox\nCOPY hello.txt /\n"[..]),
        ("hello.txt", &b"from-tar\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
    }
    let ctx_tar = work.path().join("ctx.tar");
    fs::write(&ctx_tar, t.into_inner().unwrap()).unwrap();
    let o = run_with_stdin(&b, &["build", "-t", "stdin:ctx", "-"], &ctx_tar);
    expect_code(&o, 0, "build - < ctx.tar");
    assert_eq!(run_in(&b, "stdin:ctx", "cat /hello.txt"), "from-tar\n");
}

#[test]
fn iidfile_two_tags_and_labels() {
    let (b, work) = berth();
    let ctx = context(&[("Dockerfile", "FROM busybox\nLABEL in.file=1\n")]);
    let iid = work.path().join("iid");
    let id = build_ok(
        &b,
        ctx.path(),
        &[
            "-t",
            "one:1",
            "-t",
            "two:2",
            "--label",
            "org.test=yes",
            "--iidfile",
            iid.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read_to_string(&iid).unwrap().trim(),
        format!("sha256:{id}")
    );
    assert_eq!(image_id(&b, "one:1"), id);
    assert_eq!(image_id(&b, "two:2"), id);
    let labels = &inspect(&b, "one:1")["Config"]["Labels"];
    assert_eq!(labels["org.test"], "yes");
    assert_eq!(labels["in.file"], "1");
}

#[test]
fn outputs_tar_local_and_oci() {
    let (b, work) = berth();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY hello.txt /\nRUN echo made > /made.txt\n",
        ),
        ("hello.txt", "hello\n"),
    ]);
    let tar = work.path().join("out.tar");
    let o = build(
        &b,
        ctx.path(),
        &["-o", &format!("type=tar,dest={}", tar.display())],
    );
    expect_code(&o, 0, "--output type=tar");
    let files = tar_files(&fs::read(&tar).unwrap());
    let file = |n: &str| {
        files
            .iter()
            .find(|(p, _)| p.trim_start_matches("./") == n)
            .map(|(_, d)| d.clone())
    };
    assert_eq!(file("hello.txt").as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(file("made.txt").as_deref(), Some(&b"made\n"[..]));
    assert!(file("bin/busybox").is_some(), "the whole rootfs");

    let dir = work.path().join("local");
    let o = build(
        &b,
        ctx.path(),
        &["--output", &format!("type=local,dest={}", dir.display())],
    );
    expect_code(&o, 0, "--output type=local");
    assert_eq!(fs::read_to_string(dir.join("made.txt")).unwrap(), "made\n");
    assert!(dir.join("bin/busybox").is_file());

    let oci = work.path().join("oci.tar");
    let o = build(
        &b,
        ctx.path(),
        &["-o", &format!("type=oci,dest={}", oci.display())],
    );
    expect_code(&o, 0, "--output type=oci");
    let names: Vec<String> = tar_files(&fs::read(&oci).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.iter().any(|n| n == "oci-layout"), "{names:?}");
    assert!(names.iter().any(|n| n == "index.json"), "{names:?}");
    let other = Berth::empty(BIN);
    other.ok(&["load", "-i", oci.to_str().unwrap()]);
    let loaded = other.ok(&["images", "-q", "--no-trunc"]);
    let loaded = loaded.lines().next().expect("the oci archive loads");
    let loaded = loaded.trim().trim_start_matches("sha256:");
    assert_eq!(run_in(&other, loaded, "cat /made.txt"), "made\n");
}

#[test]
fn squash_and_layers_false_make_one_new_layer() {
    let (b, _w) = berth();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN echo a > /a\nCOPY f /f\nRUN rm /a && echo b > /b\nENV E=1\n",
        ),
        ("f", "f\n"),
    ]);
    let base = layer_count(&b, "busybox");
    build_ok(&b, ctx.path(), &["-t", "layered:1"]);
    assert_eq!(
        layer_count(&b, "layered:1"),
        base + 3,
        "one layer per RUN/COPY"
    );
    for (flag, tag) in [("--squash", "sq:1"), ("--layers=false", "nl:1")] {
        build_ok(&b, ctx.path(), &[flag, "-t", tag]);
        assert_eq!(layer_count(&b, tag), base + 1, "{flag}: base layers + one");
        assert_eq!(
            run_in(&b, tag, "cat /f /b; test ! -e /a && echo no-a; echo $E"),
            "f\nb\nno-a\n1\n",
            "{flag}"
        );
    }
}

/// A WORKDIR with nothing copied into it is still in the image, as
/// Docker's builders make it (buildah --layers loses it): its own layer,
/// mode 0755, its new directories USER's (BuildKit's owner, names from the
/// image's passwd); a WORKDIR that exists adds no layer. A cached rebuild
/// gives the same image.
#[test]
fn a_final_workdir_is_made_in_its_own_layer_owned_by_user() {
    let (b, _w) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nWORKDIR /tmp\nUSER nobody\nWORKDIR /srv/x\nUSER 123:456\nWORKDIR y\n",
    )]);
    let base = layer_count(&b, "busybox");
    let id = build_ok(&b, ctx.path(), &["-t", "wd:1"]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-u",
            "0",
            "wd:1",
            "stat",
            "-c",
            "%a %u:%g %n",
            "/tmp",
            "/srv",
            "/srv/x",
            "/srv/x/y"
        ]),
        "1777 0:0 /tmp\n755 65534:65534 /srv\n755 65534:65534 /srv/x\n755 123:456 /srv/x/y\n"
    );
    assert_eq!(
        layer_count(&b, "wd:1"),
        base + 2,
        "one layer per WORKDIR that made a directory"
    );
    let history = &saved_config(&b, "wd:1")["history"];
    let new: Vec<(String, bool)> = history
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap().to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let want = [
        ("WORKDIR /tmp", true),
        ("USER nobody", true),
        ("WORKDIR /srv/x", false),
        ("USER 123:456", true),
        ("WORKDIR /srv/x/y", false),
    ]
    .map(|(t, e)| (format!("/bin/sh -c #(nop) {t}"), e));
    assert_eq!(new, want);
    assert_eq!(
        build_ok(&b, ctx.path(), &["-t", "wd:2"]),
        id,
        "cached rebuild"
    );
}

#[test]
fn same_content_and_source_date_epoch_give_the_same_image() {
    let (b, _w) = berth();
    let files = [
        (
            "Dockerfile",
            "FROM busybox\nCOPY . /src\nRUN mkdir /made && echo x > /made/x && ln -s x /made/y\n",
        ),
        ("a.txt", "same\n"),
    ];
    // Made at different times: every mtime differs, all after the epoch.
    let one = context(&files);
    let two = context(&files);
    let with_epoch = |ctx: &Path, tag: &str| {
        let o = output_via_files(
            b.cmd()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["build", "--no-cache", "-t", tag])
                .arg(ctx),
        );
        expect_code(&o, 0, "build with SOURCE_DATE_EPOCH");
        printed_id(&o)
    };
    let a = with_epoch(one.path(), "repro:1");
    let c = with_epoch(two.path(), "repro:2");
    assert_eq!(a, c, "identical inputs, identical image");
    assert_eq!(inspect(&b, "repro:1")["Created"], "2023-11-14T22:13:20Z");
}

/// A symlink in the context is copied as a link; naming one as a source
/// resolves it inside the context (as buildah and BuildKit do), never on
/// the host.
#[test]
fn a_context_symlink_is_copied_as_a_link_and_resolved_inside_the_context() {
    let (b, _w) = berth();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /all\nCOPY abs /abs\n"),
        ("inner.txt", "inside\n"),
    ]);
    symlink("/etc/shadow", ctx.path().join("link")).unwrap();
    symlink("/inner.txt", ctx.path().join("abs")).unwrap();
    build_ok(&b, ctx.path(), &["-t", "link:1"]);
    assert_eq!(
        run_in(
            &b,
            "link:1",
            "readlink /all/link; cat /all/link 2>/dev/null || echo dangling; cat /abs"
        ),
        "/etc/shadow\ndangling\ninside\n"
    );

    let ctx = context(&[("Dockerfile", "FROM busybox\nCOPY link /link\n")]);
    symlink("/etc/shadow", ctx.path().join("link")).unwrap();
    let o = build(&b, ctx.path(), &["-t", "link:2"]);
    assert_ne!(o.status.code(), Some(0), "no /etc/shadow in the context");
    assert!(stderr(&o).contains("Dockerfile:2"), "{}", stderr(&o));
    no_image(&b, "link:2");
}

#[test]
fn copy_cannot_leave_the_context() {
    let (b, _w) = berth();
    let outer = tempfile::tempdir().unwrap();
    write_files(
        outer.path(),
        &[
            ("x", "OUTSIDE-SECRET\n"),
            ("ctx/Dockerfile", "FROM busybox\nCOPY ../x /got\n"),
        ],
    );
    let ctx = outer.path().join("ctx");
    let o = build(&b, &ctx, &["-t", "leave:1"]);
    assert_ne!(o.status.code(), Some(0), "nothing named x in the context");
    no_image(&b, "leave:1");

    // A file of the same name inside: that one (or an error), never the
    // outside one; the same through a symlink to the parent.
    write_files(
        &ctx,
        &[
            ("x", "inside\n"),
            (
                "Dockerfile",
                "FROM busybox\nCOPY ../x /got\nCOPY up/x /got2\n",
            ),
        ],
    );
    symlink("..", ctx.join("up")).unwrap();
    let o = build(&b, &ctx, &["-t", "leave:2"]);
    if o.status.code() == Some(0) {
        assert_eq!(run_in(&b, "leave:2", "cat /got /got2"), "inside\ninside\n");
    } else {
        no_image(&b, "leave:2");
    }
    assert!(!stdout(&o).contains("OUTSIDE-SECRET") && !stderr(&o).contains("OUTSIDE-SECRET"));
}

#[test]
fn a_secret_mount_is_readable_and_lands_in_no_layer_nor_history() {
    let (b, work) = berth();
    let secret = work.path().join("secret");
    fs::write(&secret, "TOPSECRET-42").unwrap();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=secret,id=s test \"$(tr A-Z a-z < /run/secrets/s)\" = topsecret-42 && echo ok > /checked\n\
         RUN --mount=type=secret,id=s,target=/elsewhere cp /elsewhere /dev/null\n",
    )]);
    build_ok(
        &b,
        ctx.path(),
        &[
            "--secret",
            &format!("id=s,src={}", secret.display()),
            "-t",
            "sec:1",
        ],
    );
    assert_eq!(run_in(&b, "sec:1", "cat /checked"), "ok\n");
    let saved = work.path().join("saved.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "sec:1"]);
    for (name, data) in archive_entries(&saved) {
        assert!(!contains(&data, b"TOPSECRET-42"), "the secret is in {name}");
        if name.ends_with(".tar") || name.ends_with("/layer.tar") {
            for (path, content) in tar_files(&data) {
                assert!(
                    path.trim_start_matches("./") != "run/secrets/s" || content.is_empty(),
                    "{name} has the secret file"
                );
            }
        }
    }
    let history = b.ok(&["history", "--no-trunc", "sec:1"]);
    assert!(!history.contains("TOPSECRET"), "{history}");
    // --no-cache: the network and secrets are not part of a step's cache key.
    let o = build(&b, ctx.path(), &["--no-cache", "-t", "sec:2"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "no --secret: the RUN cannot read it"
    );
}

#[test]
fn a_cache_mount_persists_between_builds_and_stays_out_of_the_image() {
    let (b, _w) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /count\n",
    )]);
    build_ok(&b, ctx.path(), &["--no-cache", "-t", "cm:1"]);
    build_ok(&b, ctx.path(), &["--no-cache", "-t", "cm:2"]);
    assert_eq!(run_in(&b, "cm:1", "cat /count").trim(), "1");
    assert_eq!(run_in(&b, "cm:2", "cat /count").trim(), "2");
    assert_eq!(
        run_in(&b, "cm:2", "ls -A /cache 2>/dev/null | wc -l").trim(),
        "0"
    );
}

#[test]
fn bind_mounts_from_the_context_and_a_stage_and_tmpfs() {
    let (b, _w) = berth();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox AS gen\n\
             RUN mkdir /out && echo from-stage > /out/s.txt\n\
             FROM busybox\n\
             RUN --mount=type=bind,source=data.txt,target=/mnt/d cat /mnt/d > /copied\n\
             RUN --mount=type=bind,from=gen,source=/out,target=/g cat /g/s.txt > /s.txt\n\
             RUN --mount=type=bind,target=/c sh -c 'test -f /c/data.txt && ! touch /c/new 2>/dev/null'\n\
             RUN --mount=type=tmpfs,target=/scratch sh -c 'grep -q \" /scratch tmpfs \" /proc/mounts && echo x > /scratch/f'\n",
        ),
        ("data.txt", "bound-data\n"),
    ]);
    build_ok(&b, ctx.path(), &["-t", "mounts:1"]);
    assert_eq!(
        run_in(
            &b,
            "mounts:1",
            "cat /copied /s.txt; test ! -e /g/s.txt && test ! -e /scratch/f && test ! -e /c/data.txt && echo clean"
        ),
        "bound-data\nfrom-stage\nclean\n"
    );
    assert!(!ctx.path().join("new").exists(), "the bind is read-only");
}

#[test]
fn network_none_cannot_reach_a_host_listener_host_network_can() {
    let (b, _w) = berth();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello-from-host");
        }
    });
    // The host reaches it.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert!(got.ends_with("hello-from-host"), "{got}");

    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nARG PORT\nRUN wget -q -O /got http://127.0.0.1:$PORT/\n",
    )]);
    let port_arg = format!("PORT={port}");
    build_ok(
        &b,
        ctx.path(),
        &["--network=host", "--build-arg", &port_arg, "-t", "net:host"],
    );
    assert_eq!(run_in(&b, "net:host", "cat /got"), "hello-from-host");
    let o = build(
        &b,
        ctx.path(),
        &[
            "--no-cache",
            "--network=none",
            "--build-arg",
            &port_arg,
            "-t",
            "net:none",
        ],
    );
    assert_ne!(o.status.code(), Some(0), "--network=none reached the host");
    no_image(&b, "net:none");
}

#[test]
fn bad_input_is_one_error_line_with_its_line_number_and_tags_nothing() {
    let (b, _w) = berth();
    let cases: &[(&str, usize, &str)] = &[
        ("FROM busybox\nBOGUS x\n", 2, "BOGUS"),
        ("# escape=`\n# escape=\\\nFROM busybox\n", 2, "escape"),
        (
            "FROM busybox\nRUN true\nCOPY --from=nosuch /x /x\n",
            3,
            "nosuch",
        ),
        ("FROM busybox\nCOPY nothing-*.txt /\n", 2, "nothing-*.txt"),
        ("FROM busybox\nRUN true\nRUN exit 7\n", 3, "7"),
    ];
    for (i, (text, line, word)) in cases.iter().enumerate() {
        let ctx = context(&[("Dockerfile", text), ("present.txt", "p")]);
        let tag = format!("bad:{i}");
        let o = build(&b, ctx.path(), &["-q", "-t", &tag]);
        assert_ne!(o.status.code(), Some(0), "{text:?} built");
        let err = stderr(&o);
        let lines: Vec<&str> = err.trim_end().lines().collect();
        let (last, before) = lines.split_last().expect("an error on stderr");
        assert!(
            last.starts_with("Error: ")
                && last.contains(&format!("Dockerfile:{line}"))
                && last.contains(word),
            "{text:?}: the error names line {line} and {word:?}:\n{err}"
        );
        // -q: nothing but the failed step may come before the error.
        assert!(
            before.iter().all(|l| l.starts_with("=> ERROR")),
            "{text:?}: more than the error:\n{err}"
        );
        no_image(&b, &tag);
    }

    // A directive after the first instruction is a comment (Docker): the
    // backslash still continues the line.
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\n# escape=`\nRUN echo a \\\n  b > /x\n",
    )]);
    build_ok(&b, ctx.path(), &["-t", "late-directive:1"]);
    assert_eq!(run_in(&b, "late-directive:1", "cat /x"), "a b\n");
}

/// A step that replaces a directory of the layer below makes it opaque (an
/// overlay xattr in the step's upper directory, which becomes the layer):
/// save used to fail reading a `.wh..wh..opq` file that is not there, and
/// so did push. Every kind of change a step can make saves, loads back and
/// runs the same.
#[test]
fn built_layers_with_opaque_dirs_and_whiteouts_save_and_load() {
    let (b, _work) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\n\
         RUN mkdir -p /d/sub /gone && echo old > /d/a && echo x > /gone/f && echo y > /f\n\
         RUN rm -rf /d /gone /f && mkdir /d && echo new > /d/b && ln /d/b /d/hard && mknod /d/fifo p\n",
    )]);
    build_ok(&b, ctx.path(), &["-t", "opaque:1"]);
    let want = run_in(
        &b,
        "opaque:1",
        "ls -a /d | tr '\\n' ' '; ls /gone /f 2>&1 | wc -l; cat /d/b",
    );
    assert_eq!(want, ". .. b fifo hard 2\nnew\n", "the built image");
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("opaque.tar");
    let o = b.run(&["save", "-o", archive.to_str().unwrap(), "opaque:1"]);
    expect_code(&o, 0, "save of a built image with an opaque directory");
    let fresh = Berth::empty(BIN);
    fresh.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        run_in(
            &fresh,
            "opaque:1",
            "ls -a /d | tr '\\n' ' '; ls /gone /f 2>&1 | wc -l; cat /d/b"
        ),
        want
    );
}

/// The id after ` ---> ` on a line, if it is one (12 hex digits).
fn arrow_id(line: &str) -> Option<&str> {
    let id = line.strip_prefix(" ---> ")?;
    (id.len() == 12 && id.bytes().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// `DOCKER_BUILDKIT=0`: docker's classic builder log on stdout, in the
/// shape scripts parse: `Step n/m : INSTRUCTION` over the whole Dockerfile
/// (global ARGs included), the instruction as written; ` ---> Running in
/// X` and `Removing intermediate container X` around a RUN's output; the
/// base's id after FROM; the last ` ---> ID` the image `Successfully
/// built`; a tag line per tag; ` ---> Using cache` with the same ids on a
/// rebuild; `-q` just the id.
#[test]
fn classic_build_log_has_docker_s_shape() {
    let (b, _work) = berth();
    let b = b.env("DOCKER_BUILDKIT", "0");
    let ctx = context(&[
        (
            "Dockerfile",
            "ARG V=1\nFROM busybox AS one\nRUN echo one-out\nFROM busybox\ncopy --from=one /etc/passwd /h\nRUN echo \\\n  two\n",
        ),
        ("f", "12345\n"),
    ]);
    let o = build(&b, ctx.path(), &["-t", "cl:1", "-t", "cl:2"]);
    expect_code(&o, 0, "classic build");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Sending build context to Docker daemon  ") && lines[0].ends_with('B'),
        "{out}"
    );
    let steps: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Step "))
        .collect();
    assert_eq!(
        steps,
        [
            "Step 1/6 : ARG V=1",
            "Step 2/6 : FROM busybox AS one",
            "Step 3/6 : RUN echo one-out",
            "Step 4/6 : FROM busybox",
            "Step 5/6 : copy --from=one /etc/passwd /h",
            // Continuations joined as docker joins them.
            "Step 6/6 : RUN echo   two",
        ],
        "{out}"
    );
    // The RUN's output sits between its container's two lines.
    let at = |want: &str| lines.iter().position(|l| *l == want);
    let out_at = at("one-out").unwrap_or_else(|| panic!("no RUN output:\n{out}"));
    let running = lines[out_at - 1]
        .strip_prefix(" ---> Running in ")
        .unwrap_or_else(|| panic!("no Running in before the output:\n{out}"));
    assert_eq!(
        lines[out_at + 1],
        format!("Removing intermediate container {running}"),
        "{out}"
    );
    // After FROM, the base image's id.
    let busybox = image_id(&b, "busybox");
    for from in ["Step 2/6 : FROM busybox AS one", "Step 4/6 : FROM busybox"] {
        let i = at(from).unwrap();
        assert_eq!(arrow_id(lines[i + 1]), Some(&busybox[..12]), "{out}");
    }
    let image = image_id(&b, "cl:1");
    let ids: Vec<&str> = lines.iter().filter_map(|l| arrow_id(l)).collect();
    assert_eq!(ids.len(), 5, "a ---> ID per FROM and step:\n{out}");
    assert_eq!(ids.last(), Some(&&image[..12]), "{out}");
    assert_eq!(
        &lines[lines.len() - 3..],
        [
            format!("Successfully built {}", &image[..12]),
            "Successfully tagged cl:1".to_string(),
            "Successfully tagged cl:2".to_string(),
        ],
        "{out}"
    );

    // Rebuilt: every step from the cache, with the same ids.
    let again = stdout(&build(&b, ctx.path(), &["-t", "cl:1"]));
    let again_ids: Vec<&str> = again.lines().filter_map(arrow_id).collect();
    assert_eq!(again_ids, ids, "{again}");
    assert_eq!(again.matches(" ---> Using cache").count(), 3, "{again}");
    assert!(!again.contains("Running in"), "{again}");

    // -q: the id alone.
    let q = build(&b, ctx.path(), &["-q"]);
    expect_code(&q, 0, "classic build -q");
    assert_eq!(stdout(&q), format!("sha256:{image}\n"));
}

/// A failing RUN under the classic log: docker's words on stderr and the
/// command's own exit code (BuildKit's is 1); with -q the kept log is
/// shown on stderr, stdout stays empty.
#[test]
fn classic_build_failure_exits_with_the_run_s_code() {
    let (b, _work) = berth();
    let b = b.env("DOCKER_BUILDKIT", "0");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo before; exit 7\n")]);
    let o = build(&b, ctx.path(), &[]);
    expect_code(&o, 7, "failing classic build");
    assert_eq!(
        stderr(&o),
        "The command '/bin/sh -c echo before; exit 7' returned a non-zero code: 7\n"
    );
    assert!(stdout(&o).contains("Step 2/2 : RUN echo before; exit 7\n"));
    assert!(stdout(&o).contains("\nbefore\n"), "{}", stdout(&o));
    let q = build(&b, ctx.path(), &["-q"]);
    expect_code(&q, 7, "failing classic build -q");
    assert_eq!(stdout(&q), "");
    let err = stderr(&q);
    assert!(
        err.starts_with("Sending build context")
            && err.contains("Step 2/2 : RUN")
            && err.contains("\nbefore\n"),
        "{err}"
    );
    assert!(err.ends_with("returned a non-zero code: 7\n"), "{err}");
}

/// docker's classic builder gives RUN steps build's --add-host, --memory,
/// --ulimit and --shm-size; each is read back from inside the step (the
/// output goes to the image, so the cache cannot answer for the flags).
#[test]
fn run_steps_get_build_s_host_limit_and_shm_flags() {
    if !berth_testkit::root_or_skip("run_steps_get_build_s_host_limit_and_shm_flags") {
        return;
    }
    let (b, _work) = berth();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN { grep foo /etc/hosts; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         ulimit -n; df -k /dev/shm | tail -1 | awk '{print $2}'; } > /seen\n",
    )]);
    let o = build(
        &b,
        ctx.path(),
        &[
            "--no-cache",
            "--add-host",
            "foo:10.1.2.3",
            "--memory",
            "64m",
            "--ulimit",
            "nofile=123:456",
            "--shm-size",
            "8m",
            "--cache-from",
            "busybox",
            "-t",
            "flags",
        ],
    );
    expect_code(&o, 0, "build with step flags");
    assert!(
        stderr(&o).contains("--cache-from busybox: berth's build cache"),
        "{}",
        stderr(&o)
    );
    let seen = run_in(&b, "flags", "cat /seen");
    assert_eq!(seen, "10.1.2.3\tfoo\n67108864\n123\n8192\n", "{seen:?}");
    let o = build(&b, ctx.path(), &["--add-host", "nocolon"]);
    expect_code(&o, 1, "a bad --add-host");
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));
}
