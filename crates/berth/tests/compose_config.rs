//! `berth compose config` against Debian's docker-compose 1.29 `config`
//! for files both understand: the resolved models must be the same once
//! the forms Compose v2 defines differently from 1.29 are brought to one
//! (tests/compose/normalise.py does only that, and lists them). Needs
//! docker-compose and python3 (its dependency), not root.

#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::Command;

use berth_testkit::snippet::installed;
use berth_testkit::{output_via_files, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

const RICH: &str = r#"services:
  web:
    image: busybox:${TAG:-latest}
    command: sh -c "echo 'hi there'"
    entrypoint: ["/bin/sh"]
    environment:
      - A=1
      - B=${B_VAL}
      - C=${UNSET_ONE-dash}
      - D=$$literal
    env_file: [web.env]
    ports:
      - "8080:80"
      - "127.0.0.1:9000:90/udp"
      - target: 70
        published: 7070
    expose: ["5000", 5001]
    volumes:
      - data:/data
      - ./here:/here:ro
      - type: tmpfs
        target: /tmp
    depends_on:
      db:
        condition: service_healthy
    networks:
      front:
        aliases: [w]
      default:
    labels:
      x: y
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
      retries: 3
    restart: on-failure
    user: "1000"
    working_dir: /srv
    hostname: webhost
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    read_only: true
    tmpfs: [/run]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    stop_signal: SIGINT
    stop_grace_period: 5s
    init: true
    extra_hosts: ["h1:1.2.3.4"]
    dns: [8.8.8.8]
    sysctls: {net.core.somaxconn: 1024}
    shm_size: 64m
    secrets: [pw]
  db:
    image: busybox
    entrypoint: sh
    networks: [front]
    deploy:
      replicas: 2
      resources:
        limits: {memory: 128M}
    profiles: [extra]
  other:
    image: busybox
    container_name: the-other
networks:
  front:
    internal: true
    ipam:
      config: [{subnet: 10.99.0.0/24}]
  ext:
    external: true
volumes:
  data:
  outside:
    external: true
secrets:
  pw:
    file: ./pw.txt
"#;

const BASE: &str = r#"services:
  app:
    image: busybox
    command: ["echo", "base"]
    environment: {A: "1", B: "2"}
    ports: ["8000:80"]
    volumes: ["v1:/data", "/x:/x"]
    labels: [one=1]
  side:
    image: busybox
volumes:
  v1: {}
  v2: {}
"#;

const OVERRIDE: &str = r#"services:
  app:
    command: echo over
    environment: [B=3, C=4]
    ports: ["8001:81"]
    volumes: ["v2:/data"]
    labels: {two: "2"}
  extra:
    image: busybox:${EXTRA_TAG:-1.36}
"#;

/// Runs both `config`s in `dir` with `args` (-f ...) and compares.
fn same_model(dir: &Path, project: &str, args: &[&str]) {
    let run = |prog: &str, pre: &[&str]| {
        let mut c = Command::new(prog);
        c.current_dir(dir)
            .args(pre)
            .args(["-p", project])
            .args(args)
            .arg("config")
            .env("B_VAL", "bee");
        let o = output_via_files(&mut c);
        assert!(o.status.success(), "{prog} config: {}", stderr(&o));
        stdout(&o)
    };
    let root = tempfile::tempdir().unwrap();
    let v1 = run("docker-compose", &[]);
    let root_arg = root.path().display().to_string();
    let v2 = run(BIN, &["--root", &root_arg, "compose"]);
    std::fs::write(dir.join("v1.yaml"), &v1).unwrap();
    std::fs::write(dir.join("v2.yaml"), &v2).unwrap();
    let script = berth_testkit::snippet::tests_dir().join("compose/normalise.py");
    let o = output_via_files(
        Command::new("python3")
            .arg(script)
            .args([project, "v1.yaml", "v2.yaml"])
            .current_dir(dir),
    );
    assert!(o.status.success(), "normalise.py: {}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let a: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let b: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(
        serde_json::to_string_pretty(&b).unwrap(),
        serde_json::to_string_pretty(&a).unwrap(),
        "berth's model (left) differs from docker-compose 1.29's (right)\n--- docker-compose ---\n{v1}\n--- berth ---\n{v2}"
    );
}

fn tools_or_skip(test: &str) -> bool {
    if installed("docker-compose") && installed("python3") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: docker-compose (and python3) needed, and CI is set"
    );
    eprintln!("skipped {test}: docker-compose is not installed");
    false
}

#[test]
fn config_matches_docker_compose_for_a_rich_file() {
    if !tools_or_skip("config_matches_docker_compose_for_a_rich_file") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("compose.yaml"), RICH).unwrap();
    std::fs::write(d.path().join(".env"), "TAG=1.36\n").unwrap();
    std::fs::write(d.path().join("web.env"), "E=1\nA=from-env-file\n").unwrap();
    std::fs::write(d.path().join("pw.txt"), "pw").unwrap();
    // 1.29's config lists every service whatever the profiles (v2 drops
    // the inactive ones): compared with db's profile active.
    same_model(d.path(), "rich", &["--profile", "extra"]);
}

#[test]
fn config_matches_docker_compose_when_files_merge() {
    if !tools_or_skip("config_matches_docker_compose_when_files_merge") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("base.yaml"), BASE).unwrap();
    std::fs::write(d.path().join("over.yaml"), OVERRIDE).unwrap();
    same_model(d.path(), "merged", &["-f", "base.yaml", "-f", "over.yaml"]);
    // The default names: docker-compose.yml and its override file.
    std::fs::write(d.path().join("docker-compose.yml"), BASE).unwrap();
    std::fs::write(d.path().join("docker-compose.override.yml"), OVERRIDE).unwrap();
    same_model(d.path(), "defaults", &[]);
}

#[test]
fn config_matches_docker_compose_with_extends() {
    if !tools_or_skip("config_matches_docker_compose_with_extends") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("common.yaml"),
        "services:\n  base:\n    image: busybox\n    environment: {A: \"1\"}\n    labels: {l: base}\n    ports: [\"8080:80\"]\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("compose.yaml"),
        "services:\n  web:\n    extends:\n      file: common.yaml\n      service: base\n    environment: {B: \"2\"}\n    command: echo web\n  worker:\n    extends: web\n    command: echo worker\n    ports: [\"9090:90\"]\n",
    )
    .unwrap();
    same_model(d.path(), "ext", &[]);
}
