//! The README's main job with plain berth commands: both images of
//! examples/quote-app built FROM the Debian minbase (build-images.sh), then
//! examples/quote-app/run-plain.sh (network, volume, PostgreSQL with its
//! healthcheck, the web service on a published port, quotes from the host,
//! one added, bad ones refused, both restarted, the new one read back, and
//! again from a new database container on the volume, clean stops,
//! everything removed), and what it printed checked against the seed file
//! and the store it left. Then the same images, saved by berth, run on a
//! private dockerd under Debian's docker-compose 1.29 from compose.yaml.
//! The compose and kube files are also checked on their own, by
//! docker-compose's `config` and python3-yaml.
//!
//! The first test takes about 2.5 minutes here: the builds from the Debian
//! mirror about 1.5 (debootstrap's tarball, cached under
//! target/debian-base, costs a few more minutes the very first time; the
//! test's store is its own, so the builds are never cached between runs),
//! run-plain.sh 20 s, the Docker part 30 s.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth_testkit::store::Store;
use berth_testkit::{expect_code, output_via_files, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// The names build-images.sh gives the images, which compose.yaml and
/// kube.yaml run.
const WEB_IMAGE: &str = "quote-app:1";
const DB_IMAGE: &str = "postgres-debian:bookworm";
const BASE_IMAGE: &str = "debian-base:bookworm";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quote-app")
}

/// The quotes the service seeds its table with, in order.
fn seeds() -> Vec<String> {
    std::fs::read_to_string(example().join("quotes.txt"))
        .expect("read quotes.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// A tool the test needs: false (said, or a failure under CI, where
/// scripts/install-deps.sh installs it) when it is missing.
fn have(tool: &str, test: &str) -> bool {
    if berth_testkit::snippet::installed(tool) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {tool} is not installed (scripts/install-deps.sh installs it)"
    );
    eprintln!("skipped {test}: {tool} is not installed");
    false
}

/// The lines under the script's `== TITLE...` heading, up to the next one.
fn section<'a>(out: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = out.lines();
    assert!(
        lines
            .by_ref()
            .any(|l| l.starts_with(&format!("== {title}"))),
        "no section {title:?} in:\n{out}"
    );
    lines.take_while(|l| !l.starts_with("== ")).collect()
}

/// The texts of the JSON quote list under the heading `title`.
fn quote_list(out: &str, title: &str) -> Vec<String> {
    let lines = section(out, title);
    let list = lines
        .iter()
        .find(|l| l.starts_with('['))
        .unwrap_or_else(|| panic!("no quote list under {title:?}:\n{out}"));
    let list: Value = serde_json::from_str(list).expect("the list is JSON");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|q| q["text"].as_str().expect("a quote's text").to_string())
        .collect()
}

/// The image ids of the app's three images in `store`.
fn image_ids(store: &Store) -> Vec<String> {
    [BASE_IMAGE, DB_IMAGE, WEB_IMAGE]
        .iter()
        .map(|i| store.inspect(i, "{{.Id}}"))
        .collect()
}

/// build-images.sh for `store`: its output and how long it took.
fn build_images(store: &Store, runroot: &Path) -> (std::process::Output, f64) {
    let started = Instant::now();
    let o = output_via_files(
        // A deadline for the whole build: apt downloads from the mirror.
        Command::new("timeout")
            .args(["-k", "10", "900"])
            .arg(example().join("build-images.sh"))
            .arg(BIN)
            .env("BERTH_ROOT", store.path())
            .env("BERTH_RUNROOT", runroot)
            .env("BERTH_TEST_CACHE", berth_testkit::debian::cache_dir()),
    );
    (o, started.elapsed().as_secs_f64())
}

#[test]
fn quote_app_runs_with_plain_commands() {
    const TEST: &str = "quote_app_runs_with_plain_commands";
    if !berth_testkit::root_or_skip(TEST) || !have("curl", TEST) {
        return;
    }
    // Made (or found in the cache) here, so a missing debootstrap is a
    // skip and not a failure of the script.
    if berth_testkit::debian::base_tar().is_none() {
        return;
    }
    let run = tempfile::tempdir_in("/run").expect("a runroot under /run");
    let runroot = run.path().to_path_buf();
    let store = Store::empty(BIN).flag("--runroot").flag(&runroot).keep(run);

    let (o, cold) = build_images(&store, &runroot);
    expect_code(&o, 0, "build-images.sh (cold)");
    eprintln!("build-images.sh, cold: {cold:.1}s");
    let built = image_ids(&store);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let o = output_via_files(
        Command::new("timeout")
            .args(["-k", "10", "600"])
            .arg(example().join("run-plain.sh"))
            .arg(BIN)
            .arg(port.to_string())
            .env("BERTH_ROOT", store.path())
            .env("BERTH_RUNROOT", &runroot)
            .env("BERTH_TEST_CACHE", berth_testkit::debian::cache_dir()),
    );
    expect_code(&o, 0, "run-plain.sh");
    let out = stdout(&o);
    let seeds = seeds();

    // Served from the seeded table, through the published port.
    let served = section(&out, "three quotes from the host");
    assert_eq!(served.len(), 3, "three quotes:\n{out}");
    for q in &served {
        assert!(seeds.iter().any(|s| s == q), "{q:?} is not a seed:\n{out}");
    }

    // The API's reply: the stored quote with its id.
    let added = section(&out, "a new quote through the API");
    assert_eq!(added.len(), 1, "one reply:\n{out}");
    let reply: Value = serde_json::from_str(added[0]).expect("the reply is JSON");
    let quote = reply["text"]
        .as_str()
        .expect("the reply's text")
        .to_string();
    assert!(quote.starts_with("Added by run-plain.sh at "), "{reply}");
    assert!(reply["id"].as_u64().is_some(), "{reply}");

    // Bad quotes: refused with a status and a one-line reason each.
    let bad = section(&out, "bad quotes are refused");
    assert_eq!(bad.len(), 4, "{out}");
    assert_eq!(bad[0], "409 that quote is already there");
    assert_eq!(bad[1], "400 a quote needs some text");
    assert_eq!(bad[2], r#"400 send {"text": "..."}"#);
    assert!(
        bad[3].starts_with("400 the body is not JSON: "),
        "{}",
        bad[3]
    );

    // After both restarted, and again from a new database container on the
    // volume: the seeds once (the seeding did not run again on a full
    // table) and the new quote (kept in the volume, not in a container).
    let mut want = seeds;
    want.push(quote);
    assert_eq!(
        quote_list(&out, "read back after the restart"),
        want,
        "{out}"
    );
    assert_eq!(
        quote_list(&out, "a new database container on the same volume"),
        want,
        "{out}"
    );

    // SIGTERM ends both cleanly: the web service's handler (as PID 1 it
    // would otherwise be ignored, then SIGKILLed: 137), the database's fast
    // shutdown (smart would wait for the web service's connections), which
    // the next start confirms ("was shut down", not "was interrupted").
    let stop = section(&out, "stop");
    assert_eq!(
        stop,
        ["quote-plain-web exited 0", "quote-plain-db exited 0"],
        "{out}"
    );
    let count = |log: &[&str], what: &str| log.iter().filter(|l| l.contains(what)).count();
    // The first container: made the cluster, restarted once.
    let first = section(&out, "the database's starts and stops");
    assert_eq!(count(&first, "initialising a new cluster"), 1, "{out}");
    assert_eq!(count(&first, "received fast shutdown request"), 1, "{out}");
    assert_eq!(
        count(&first, "database system was shut down at"),
        2,
        "{out}"
    );
    assert_eq!(count(&first, "interrupted"), 0, "{out}");
    // The second: found the cluster, stopped once.
    let second = section(&out, "the new database's starts and stops");
    assert_eq!(count(&second, "initialising"), 0, "{out}");
    assert_eq!(
        count(&second, "database system was shut down at"),
        1,
        "{out}"
    );
    assert_eq!(count(&second, "received fast shutdown request"), 1, "{out}");
    assert_eq!(count(&second, "interrupted"), 0, "{out}");

    // Nothing left but the images.
    assert_eq!(store.ok(&["ps", "-aq"]), "", "containers left");
    assert_eq!(store.ok(&["volume", "ls", "-q"]), "", "volumes left");
    let mut nets: Vec<String> = store
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(String::from)
        .collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"], "networks left");

    // A second build takes every step from the cache: the same images.
    let (o, cached) = build_images(&store, &runroot);
    expect_code(&o, 0, "build-images.sh (cached)");
    eprintln!("build-images.sh, cached: {cached:.2}s");
    assert_eq!(image_ids(&store), built, "a cached rebuild made new images");

    compose_file_runs_on_docker(&store, &runroot);
    demo_runs_with_compose_and_kube(&store, &runroot);
}

/// The README's main command, scripts/demo.sh, on this store (its images
/// built above): compose up --wait, a quote added and read back after
/// `compose restart`, the project moved to the YAML `kube generate` wrote
/// and played after `compose down`, the quote still there (the named
/// volume), and nothing left after `kube play --down` but the images.
fn demo_runs_with_compose_and_kube(store: &Store, runroot: &Path) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let demo = example()
        .join("../../scripts/demo.sh")
        .canonicalize()
        .expect("scripts/demo.sh");
    let o = output_via_files(
        Command::new("timeout")
            .args(["-k", "10", "600"])
            .arg(demo)
            .arg(port.to_string())
            .env("BERTH", BIN)
            .env("BERTH_ROOT", store.path())
            .env("BERTH_RUNROOT", runroot)
            .env("BERTH_TEST_CACHE", berth_testkit::debian::cache_dir()),
    );
    expect_code(&o, 0, "scripts/demo.sh");
    let out = stdout(&o);
    let found = |after: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("found after {after}: ")))
            .unwrap_or_else(|| panic!("no quote read back after {after}:\n{out}"))
            .to_string()
    };
    let quote = found("compose restart");
    assert!(quote.starts_with("Added by the demo at "), "{out}");
    assert_eq!(
        found("compose down and kube play (the named volume kept the data)"),
        quote
    );
    assert_eq!(out.lines().last(), Some("done"), "{out}");
    assert_eq!(store.ok(&["ps", "-aq"]), "", "containers left by the demo");
    assert_eq!(store.ok(&["pod", "ps", "-q"]), "", "pods left by the demo");
    assert_eq!(
        store.ok(&["volume", "ls", "-q"]),
        "",
        "volumes left by the demo"
    );
}

/// The same images saved by berth and loaded into a private dockerd, and
/// compose.yaml run there by Debian's docker-compose 1.29: the file's
/// depends_on, volume and port work with a real Compose, and the images
/// with a real Docker.
fn compose_file_runs_on_docker(store: &Store, runroot: &Path) {
    if !have("docker-compose", "compose_file_runs_on_docker") {
        return;
    }
    let Some(docker) = berth_testkit::dockerd::Dockerd::start(&[]) else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    // $D is the docker client on the private daemon; docker-compose is
    // pointed at the same socket. Every wait has a deadline.
    const SCENARIO: &str = r#"
set -euo pipefail
export DOCKER_HOST=${D##* -H }
BERTH_ROOT=@ROOT@ BERTH_RUNROOT=@RUNROOT@ @BERTH@ save @DB@ @WEB@ | $D load -q >/dev/null
compose() { QUOTE_APP_PORT=@PORT@ docker-compose -p quote-app-@PID@ -f @FILE@ "$@"; }
trap 'compose down -v >/dev/null 2>&1 || true' EXIT
compose up -d --no-build
get() {
    local deadline=$((SECONDS + 60))
    until curl -fsS --max-time 5 "http://127.0.0.1:@PORT@$1" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "no answer from $1" >&2; exit 1; }
        sleep 0.2
    done
}
echo "quote: $(get /quote)"
echo "added: $(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d '{"text": "Added on Docker."}' http://127.0.0.1:@PORT@/quotes)"
compose restart
echo "after restart: $(get /quotes)"
compose down -v
echo "left: $($D ps -aq | wc -l) containers, $($D volume ls -q | wc -l) volumes"
"#;
    let script = SCENARIO
        .replace("@ROOT@", &store.path().display().to_string())
        .replace("@RUNROOT@", &runroot.display().to_string())
        .replace("@BERTH@", BIN)
        .replace("@DB@", DB_IMAGE)
        .replace("@WEB@", WEB_IMAGE)
        .replace("@PORT@", &port.to_string())
        .replace("@PID@", &std::process::id().to_string())
        .replace(
            "@FILE@",
            &example().join("compose.yaml").display().to_string(),
        );
    let out = docker.sh(&script);
    assert_eq!(
        out.code(),
        0,
        "compose.yaml on docker\n{out}\n{}",
        docker.log()
    );
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{out}"))
            .to_string()
    };
    let seeds = seeds();
    let served = line("quote: ");
    assert!(seeds.contains(&served), "{served:?} is not a seed:\n{out}");
    let added: Value = serde_json::from_str(&line("added: ")).expect("the reply is JSON");
    assert_eq!(added["text"], "Added on Docker.", "{out}");
    let all: Value = serde_json::from_str(&line("after restart: ")).expect("the list is JSON");
    let texts: Vec<&str> = all
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|q| q["text"].as_str())
        .collect();
    let mut want: Vec<&str> = seeds.iter().map(String::as_str).collect();
    want.push("Added on Docker.");
    assert_eq!(texts, want, "{out}");
    assert_eq!(line("left: "), "0 containers, 0 volumes", "{out}");
}

/// compose.yaml as Docker Compose 1.29 resolves it, and kube.yaml's
/// documents and references as python3-yaml reads them.
#[test]
fn quote_app_compose_and_kube_files_hold_together() {
    const TEST: &str = "quote_app_compose_and_kube_files_hold_together";
    if !have("docker-compose", TEST) || !have("python3", TEST) {
        return;
    }
    let o = output_via_files(
        Command::new("docker-compose")
            .arg("-f")
            .arg(example().join("compose.yaml"))
            .args(["-p", "quote-app", "config"])
            .env("QUOTE_APP_PORT", "18123")
            .env("QUOTE_DB_PASSWORD", "s3cret-for-the-test")
            .env_remove("DOCKER_HOST"),
    );
    expect_code(&o, 0, "docker-compose config");
    let config = stdout(&o);
    let web_image = format!("image: {WEB_IMAGE}");
    let db_image = format!("image: {DB_IMAGE}");
    for want in [
        "condition: service_healthy",
        "127.0.0.1:18123:8080/tcp",
        "pgdata:/var/lib/postgresql/data:rw",
        "POSTGRES_PASSWORD: s3cret-for-the-test",
        "PGPASSWORD: s3cret-for-the-test",
        "PGHOST: db",
        web_image.as_str(),
        db_image.as_str(),
    ] {
        assert!(config.contains(want), "no {want:?} in:\n{config}");
    }
    assert_eq!(
        config.matches("restart: unless-stopped").count(),
        2,
        "{config}"
    );

    // Every reference resolves inside the file: secret keys, claims,
    // mounts, the selector and the Service's target port.
    const CHECK: &str = r#"
import base64, json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]
objects, problems, images = {}, [], []
for d in docs:
    for key in ("apiVersion", "kind", "metadata"):
        if key not in d:
            problems.append(f"a document without {key}")
    objects.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
secrets = {
    name: {k: base64.b64decode(v, validate=True).decode() for k, v in s.get("data", {}).items()}
    for name, s in objects.get("Secret", {}).items()
}
claims = set(objects.get("PersistentVolumeClaim", {}))
ports = set()
for name, dep in objects.get("Deployment", {}).items():
    template = dep["spec"]["template"]
    for k, v in dep["spec"]["selector"]["matchLabels"].items():
        if template["metadata"]["labels"].get(k) != v:
            problems.append(f"{name}: the selector does not match the template")
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for v in volumes.values():
        claim = v.get("persistentVolumeClaim", {}).get("claimName")
        if claim is not None and claim not in claims:
            problems.append(f"{name}: no claim {claim}")
    for c in template["spec"]["containers"]:
        images.append(c["image"])
        ports.update(p["containerPort"] for p in c.get("ports", []))
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secrets.get(ref["name"], {}):
                problems.append(f"{c['name']}: no key {ref['key']} in secret {ref['name']}")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{c['name']}: no volume {m['name']}")
for name, svc in objects.get("Service", {}).items():
    selected = [
        d for d in objects.get("Deployment", {}).values()
        if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
               for k, v in svc["spec"]["selector"].items())
    ]
    if not selected:
        problems.append(f"service {name} selects no pod")
    for p in svc["spec"]["ports"]:
        if p["targetPort"] not in ports:
            problems.append(f"service {name}: no container port {p['targetPort']}")
print(json.dumps({"kinds": [d["kind"] for d in docs], "images": sorted(images), "problems": problems}))
"#;
    let o = output_via_files(
        Command::new("python3")
            .args(["-c", CHECK])
            .arg(example().join("kube.yaml")),
    );
    if stderr(&o).contains("No module named 'yaml'") {
        assert!(
            std::env::var_os("CI").is_none(),
            "{TEST}: python3-yaml is not installed (scripts/install-deps.sh installs it)"
        );
        eprintln!("skipped {TEST}: python3-yaml is not installed");
        return;
    }
    expect_code(&o, 0, "kube.yaml's check");
    let seen: Value = serde_json::from_str(&stdout(&o)).expect("the check's JSON");
    assert_eq!(
        seen["kinds"],
        serde_json::json!(["Secret", "PersistentVolumeClaim", "Deployment", "Service"])
    );
    let mut images = vec![DB_IMAGE, WEB_IMAGE];
    images.sort_unstable();
    assert_eq!(seen["images"], serde_json::json!(images));
    assert_eq!(seen["problems"], serde_json::json!([]));
}
