//! `berth kube play|generate` through the real binary, as root: a
//! multi-document file (ConfigMap, Secret, PVC, Service, Deployment with
//! an init container, Pod, Job) played and taken down to nothing; a
//! generated YAML read back with the Kubernetes API's types and played
//! into an equivalent pod; bad files as one-line errors naming the file
//! and the field.
//!
//! Each test has its own store, names and host ports, so they run in
//! parallel.

#![allow(clippy::tests_outside_test_module)]

use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{expect_code, free_port, http_get, stderr};
use k8s_openapi::api::core::v1::{Pod, Service};
use serde::Deserialize;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

fn berth() -> Berth {
    Berth::with_busybox(BIN, &[])
}

fn write_yaml(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn links() -> String {
    let o = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The application: a web Deployment reading a ConfigMap and a Secret,
/// whose init container writes into a claimed volume, behind a NodePort
/// Service; a client Pod fetching from the Service by name; a Job.
fn app_yaml(tag: &str, port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg-{tag}
data:
  GREETING: hello-{tag}
  index.html: "page of {tag}\n"
---
apiVersion: v1
kind: Secret
metadata:
  name: sec-{tag}
type: Opaque
data:
  password: czNjcmV0
stringData:
  user: admin
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data-{tag}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Service
metadata:
  name: svc-{tag}
spec:
  type: NodePort
  selector:
    app: web-{tag}
  ports:
  - port: 8080
    targetPort: http
    nodePort: {port}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-{tag}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web-{tag}
  template:
    metadata:
      labels:
        app: web-{tag}
    spec:
      initContainers:
      - name: init
        image: busybox
        command: ["sh", "-c", "echo init-ran >> /data/init"]
        volumeMounts:
        - name: data
          mountPath: /data
      containers:
      - name: srv
        image: busybox
        command: ["httpd", "-f", "-p", "80", "-h", "/www"]
        ports:
        - name: http
          containerPort: 80
        env:
        - name: PASSWORD
          valueFrom:
            secretKeyRef:
              name: sec-{tag}
              key: password
        envFrom:
        - configMapRef:
            name: cfg-{tag}
        - secretRef:
            name: sec-{tag}
          prefix: S_
        resources:
          limits:
            memory: 64Mi
            cpu: 500m
        livenessProbe:
          tcpSocket:
            port: 80
          periodSeconds: 1
        volumeMounts:
        - name: www
          mountPath: /www
          readOnly: true
        - name: data
          mountPath: /data
        - name: scratch
          mountPath: /scratch
      volumes:
      - name: www
        configMap:
          name: cfg-{tag}
          items:
          - key: index.html
            path: index.html
      - name: data
        persistentVolumeClaim:
          claimName: data-{tag}
      - name: scratch
        emptyDir: {{}}
---
apiVersion: v1
kind: Pod
metadata:
  name: client-{tag}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    # The name from /etc/hosts as glibc's "files" source reads it: the
    # test image has no nsswitch.conf, and static glibc's default asks
    # DNS first, which depends on the host's resolver.
    command: ["sh", "-c", "ip=$(awk '$2 == \"svc-{tag}\" {{print $1}}' /etc/hosts); for i in $(seq 50); do wget -qO- http://$ip/index.html && exec sleep 60; sleep 0.1; done; exit 1"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: job-{tag}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: busybox
        command: ["sh", "-c", "echo job-done"]
"#
    )
}

#[test]
fn a_multi_document_file_plays_and_goes_down_to_nothing() {
    if !berth_testkit::root_or_skip("a_multi_document_file_plays_and_goes_down_to_nothing") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("a{}", std::process::id());
    let port = free_port();
    let file = write_yaml(dir.path(), "app.yaml", &app_yaml(&tag, port));
    let out = b.ok(&["kube", "play", &file]);
    assert_eq!(out.matches("Pod:").count(), 4, "{out}");

    // podman's names: <deployment>-pod-<i>, containers <pod>-<container>.
    let names = b.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    let mut want = vec![
        format!("client-{tag}-c"),
        format!("job-{tag}-pod-0-once"),
        format!("web-{tag}-pod-0-srv"),
        format!("web-{tag}-pod-1-srv"),
    ];
    want.sort();
    assert_eq!(names, want, "the init containers ran and went");

    // The Service's nodePort reaches the first replica; the page is the
    // ConfigMap's.
    let page = http_get(&format!("127.0.0.1:{port}"), "/index.html").unwrap();
    assert!(page.contains(&format!("page of {tag}")), "{page}");
    // The client resolved the Service's name inside its pod.
    let client = format!("client-{tag}-c");
    b.wait_for(&client, "{{.State.Running}}", "true");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = b.ok(&["logs", &client]);
        if logs.contains(&format!("page of {tag}")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client never fetched from the Service: {logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let srv = format!("web-{tag}-pod-0-srv");
    let env = b.ok(&[
        "exec",
        &srv,
        "sh",
        "-c",
        "echo $GREETING $PASSWORD $S_user $S_password",
    ]);
    assert_eq!(env.trim(), format!("hello-{tag} s3cret admin s3cret"));
    // Both replicas' init containers wrote into the one claimed volume.
    let init = b.ok(&["exec", &srv, "cat", "/data/init"]);
    assert_eq!(
        init.lines().filter(|l| *l == "init-ran").count(),
        2,
        "{init}"
    );
    assert_eq!(
        b.inspect(&srv, "{{.HostConfig.Memory}}"),
        (64 << 20).to_string()
    );
    assert_eq!(b.inspect(&srv, "{{.HostConfig.NanoCpus}}"), "500000000");
    b.wait_for(&srv, "{{.State.Health.Status}}", "healthy");
    let job = format!("job-{tag}-pod-0-once");
    b.wait_for(&job, "{{.State.Status}}", "exited");
    assert_eq!(b.ok(&["logs", &job]).trim(), "job-done");

    // Again without --replace: refused, one line; with it: played again.
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 125, "kube play of pods that exist");
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1);

    let pod_ids = b.ok(&["pod", "ps", "-q", "--no-trunc"]);
    let down = b.ok(&["kube", "play", "--down", &file]);
    for id in pod_ids.lines() {
        assert!(down.contains(id), "{down}");
        assert!(!std::path::Path::new("/run/berth/pods").join(id).exists());
        assert!(
            !links().contains(&format!("vb{}0", &id[..10])),
            "veth of pod {id} left"
        );
    }
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(b.mounts(), 0, "mounts under the store are left");
    assert!(
        !b.path()
            .join("kube")
            .join(format!("web-{tag}-pod-0"))
            .exists(),
        "kube play's files of the pod are left"
    );
    let check = b.ok(&["system", "check"]);
    assert!(check.contains("network leftovers removed: 0"), "{check}");
    // The claim's volume keeps its data for the next play.
    let vols = b.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.trim(), format!("data-{tag}"));

    // --start=false: made, not started; --replace over them.
    b.ok(&["kube", "play", "--start=false", &file]);
    assert_eq!(b.inspect(&srv, "{{.State.Status}}"), "created");
    // pod start runs the pod's init container first, to completion.
    b.ok(&["pod", "start", &format!("web-{tag}-pod-0")]);
    b.wait_for(&srv, "{{.State.Running}}", "true");
    let init = b.ok(&["exec", &srv, "cat", "/data/init"]);
    assert_eq!(
        init.lines().filter(|l| *l == "init-ran").count(),
        3,
        "{init}"
    );
    assert!(
        !b.ok(&["ps", "-a", "--format", "{{.Names}}"])
            .contains(&format!("web-{tag}-pod-0-init")),
        "the init container is left"
    );
    b.ok(&["kube", "play", "--replace", &file]);
    b.wait_for(&srv, "{{.State.Running}}", "true");
    let init = b.ok(&["exec", &srv, "cat", "/data/init"]);
    assert_eq!(
        init.lines().filter(|l| *l == "init-ran").count(),
        5,
        "{init}"
    );
    b.ok(&["kube", "down", &file]);
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
}

/// What must survive a generate → play round trip, per container.
fn essentials(b: &Berth, name: &str) -> String {
    b.inspect(
        name,
        "{{.Config.Image}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{range .Mounts}}{{.Type}}:{{.Source}}:{{.Destination}}:{{.RW}} {{end}}|{{.Config.WorkingDir}}|{{.Config.User}}",
    )
}

#[test]
fn generate_writes_what_the_api_reads_and_play_gives_the_pod_back() {
    if !berth_testkit::root_or_skip(
        "generate_writes_what_the_api_reads_and_play_gives_the_pod_back",
    ) {
        return;
    }
    let b = berth();
    let host = tempfile::tempdir().unwrap();
    let tag = format!("g{}", std::process::id());
    let port = free_port();
    let pod = format!("round-{tag}");
    // 8080: the container's user (1000) may not bind a port below 1024.
    b.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "-p",
        &format!("{port}:8080"),
    ]);
    let web = format!("{pod}-web");
    let bind = format!("{}:/host:ro", host.path().display());
    let vol = format!("vol-{tag}:/data");
    b.ok(&[
        "create",
        "--pod",
        &pod,
        "--name",
        &web,
        "-e",
        "A=1",
        "-e",
        "B=two words",
        "-v",
        &bind,
        "-v",
        &vol,
        "-w",
        "/data",
        "-u",
        "1000:1000",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
    ]);
    let side = format!("{pod}-side");
    b.ok(&[
        "create",
        "--pod",
        &pod,
        "--name",
        &side,
        "--entrypoint",
        "sleep",
        "busybox",
        "300",
    ]);
    let before: Vec<String> = [&web, &side].iter().map(|n| essentials(&b, n)).collect();

    let yaml = b.ok(&["kube", "generate", "--service", &pod]);
    // Read back with the API's own types: each document is what a
    // cluster takes, of the kind it says.
    let mut kinds = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        match v["kind"].as_str().unwrap() {
            "Pod" => {
                let p: Pod = serde_json::from_value(v).unwrap();
                let spec = p.spec.unwrap();
                assert_eq!(spec.containers.len(), 2);
                assert_eq!(spec.containers[0].name, "web");
                assert_eq!(
                    spec.containers[0].ports.as_ref().unwrap()[0].container_port,
                    8080
                );
                kinds.push("Pod");
            }
            "Service" => {
                let s: Service = serde_json::from_value(v).unwrap();
                let spec = s.spec.unwrap();
                assert_eq!(spec.type_.as_deref(), Some("NodePort"));
                assert_eq!(spec.ports.unwrap()[0].port, 8080);
                kinds.push("Service");
            }
            other => panic!("unexpected kind {other} in\n{yaml}"),
        }
    }
    assert_eq!(kinds, ["Service", "Pod"], "{yaml}");

    b.ok(&["pod", "rm", "-f", &pod]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_yaml(dir.path(), "gen.yaml", &yaml);
    b.ok(&["kube", "play", &file]);
    let after: Vec<String> = [&web, &side].iter().map(|n| essentials(&b, n)).collect();
    assert_eq!(before, after, "\n{yaml}");
    // The pod's port, published again: httpd serves its working dir.
    b.ok(&[
        "exec",
        "-u",
        "0",
        &web,
        "sh",
        "-c",
        "echo round-trip > /data/index.html",
    ]);
    let page = http_get(&format!("127.0.0.1:{port}"), "/index.html").unwrap();
    assert!(page.contains("round-trip"), "{page}");
    assert_eq!(b.inspect(&web, "{{.Config.Hostname}}"), pod);
}

#[test]
fn bad_files_are_one_line_errors_naming_file_and_field() {
    if !berth_testkit::root_or_skip("bad_files_are_one_line_errors_naming_file_and_field") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let pod = |extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: busybox\n{extra}")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("typo.yaml", pod("    comand: [true]\n"), "typo.yaml: document 1 (Pod bad): unknown field spec.containers[0].comand"),
        ("type.yaml", pod("    ports:\n    - containerPort: http\n"), "field spec.containers[0].ports[0].containerPort"),
        ("kind.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n".into(), "kind Namespace is not supported"),
        ("noname.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {}\n".into(), "field metadata.name is missing"),
        ("yaml.yaml", "apiVersion: v1\nkind: [\n".into(), "yaml.yaml: document 1:"),
        ("second.yaml", format!("{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: two\n", pod("")), "document 2 (Deployment d): field spec.replicas"),
        ("cm.yaml", pod("    envFrom:\n    - configMapRef:\n        name: missing\n"), "configMap missing is not in the file"),
        ("quantity.yaml", pod("    resources:\n      limits:\n        memory: lots\n"), "resources.limits.memory"),
        ("volume.yaml", pod("    volumeMounts:\n    - name: nope\n      mountPath: /x\n"), "volume nope is not in spec.volumes"),
        ("escape.yaml", format!("{}  volumes:\n  - name: ../../escape\n    emptyDir: {{}}\n", pod("")), "spec.volumes[0] (../../escape): field name"),
        ("key.yaml", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: k\ndata:\n  a: b\n---\n{}  volumes:\n  - name: v\n    configMap:\n      name: k\n      items:\n      - key: a\n        path: ../../x\n", pod("")), "must be relative"),
    ];
    for (name, text, words) in &cases {
        let file = write_yaml(dir.path(), name, text);
        let o = b.run(&["kube", "play", &file]);
        expect_code(&o, 125, name);
        let err = stderr(&o);
        assert!(err.contains(words), "{name}: {err}");
        assert_eq!(berth_testkit::error_lines(&err), 1, "{name}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Nothing of a failed play is left.
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    let o = b.run(&["kube", "generate", "nothing-here"]);
    expect_code(&o, 125, "kube generate of nothing");
    assert_eq!(
        stderr(&o).trim(),
        "Error: name or ID \"nothing-here\" not found"
    );
    let o = b.run(&["kube", "play", "/nonexistent/file.yaml"]);
    expect_code(&o, 125, "kube play of a missing file");
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));
    // A field berth does not do is a warning naming it, and the pod runs.
    let warn = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: warned\nspec:\n  hostIPC: true\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '30']\n";
    let file = write_yaml(dir.path(), "warn.yaml", warn);
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 0, "kube play with an unsupported field");
    assert!(
        stderr(&o).contains("field spec.hostIPC is not supported by berth; ignored"),
        "{}",
        stderr(&o)
    );
}

/// podman's kube play of the same file names pods and containers as
/// berth's does.
#[test]
fn pods_and_containers_are_named_as_podman_names_them() {
    if !berth_testkit::snippet::installed("podman") {
        assert!(
            std::env::var_os("CI").is_none(),
            "podman is missing (install-deps.sh)"
        );
        eprintln!(
            "skipped pods_and_containers_are_named_as_podman_names_them: podman not installed"
        );
        return;
    }
    if !berth_testkit::root_or_skip("pods_and_containers_are_named_as_podman_names_them") {
        return;
    }
    let b = berth();
    b.import_busybox("localhost/bb:latest", &[]);
    let tag = format!("n{}", std::process::id());
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{tag}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: dep-{tag}\n  template:\n    metadata:\n      labels:\n        app: dep-{tag}\n    spec:\n      containers:\n      - name: one\n        image: localhost/bb:latest\n        command: [sleep, '60']\n      - name: two\n        image: localhost/bb:latest\n        command: [sleep, '60']\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{tag}\nspec:\n  containers:\n  - name: solo\n    image: localhost/bb:latest\n    command: [sleep, '60']\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_yaml(dir.path(), "names.yaml", &yaml);
    let env = dir.path().join("podman");
    let script = format!(
        "source {tests}/podman-env.sh {env} >/dev/null || exit 99; podman_import_busybox bb || exit 98; \
         podman kube play {file} >/dev/null || exit 97; \
         podman pod ps --format '{{{{.Name}}}}' | LC_ALL=C sort; echo ---; \
         podman ps -a --format '{{{{.Names}}}}' | grep -v -- '-infra$' | LC_ALL=C sort; \
         podman kube down {file} >/dev/null; podman_env_cleanup",
        tests = berth_testkit::snippet::tests_dir().display(),
        env = env.display(),
    );
    let mut c = berth_testkit::snippet::bash();
    c.arg(&script);
    let podman = berth_testkit::snippet::capture(c, &script);
    assert_eq!(podman.code(), 0, "{podman}");

    b.ok(&["kube", "play", &file]);
    let mut pods: Vec<String> = b
        .ok(&["pod", "ps", "--format", "{{.Name}}"])
        .lines()
        .map(String::from)
        .collect();
    pods.sort();
    let mut ctrs: Vec<String> = b
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(String::from)
        .collect();
    ctrs.sort();
    let ours = format!("{}\n---\n{}", pods.join("\n"), ctrs.join("\n"));
    assert_eq!(ours.trim(), podman.stdout.trim());
    b.ok(&["kube", "down", &file]);
}

/// Containers of a compose project, generated and played: each its own
/// pod, and each still found by its service's name.
#[test]
fn compose_containers_keep_their_service_names_through_generate_and_play() {
    if !berth_testkit::root_or_skip(
        "compose_containers_keep_their_service_names_through_generate_and_play",
    ) {
        return;
    }
    let b = berth();
    b.import_busybox("exposed", &["EXPOSE 5432"]);
    let tag = format!("c{}", std::process::id());
    let db = format!("{tag}-db-1");
    let web = format!("{tag}-web-1");
    b.ok(&[
        "create",
        "--name",
        &db,
        "--label",
        "com.docker.compose.service=db",
        "exposed",
        "sleep",
        "300",
    ]);
    b.ok(&[
        "create",
        "--name",
        &web,
        "--label",
        "com.docker.compose.service=web",
        "busybox",
        "sleep",
        "300",
    ]);
    let yaml = b.ok(&["kube", "generate", &db, &web]);
    let mut services = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        if v["kind"] == "Service" {
            let s: Service = serde_json::from_value(v).unwrap();
            services.push(s);
        } else {
            let _: Pod = serde_json::from_value(v).unwrap();
        }
    }
    let names: Vec<&str> = services
        .iter()
        .map(|s| s.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["db", "web"], "{yaml}");
    let db_spec = services[0].spec.as_ref().unwrap();
    assert_eq!(db_spec.ports.as_ref().unwrap()[0].port, 5432);
    assert_eq!(
        services[1].spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );

    b.ok(&["rm", "-f", &db, &web]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_yaml(dir.path(), "project.yaml", &yaml);
    b.ok(&["kube", "play", &file]);
    let pod_ip = |pod: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(&b.ok(&["pod", "inspect", pod])).unwrap();
        v["InfraConfig"]["IPAddress"].as_str().unwrap().to_string()
    };
    let db_ip = pod_ip(&format!("{db}-pod"));
    let hosts = b.ok(&["exec", &format!("{web}-pod-{web}"), "cat", "/etc/hosts"]);
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [db_ip.as_str(), "db"]),
        "db does not resolve to {db_ip}:\n{hosts}"
    );
}

#[test]
fn a_host_network_pod_is_in_the_host_s_network_namespace() {
    if !berth_testkit::root_or_skip("a_host_network_pod_is_in_the_host_s_network_namespace") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("hostnet-{}", std::process::id());
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '60']\n"
    );
    let file = write_yaml(dir.path(), "host.yaml", &yaml);
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 0, "kube play of a hostNetwork pod");
    assert!(!stderr(&o).contains("hostNetwork"), "{}", stderr(&o));
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let theirs = b.ok(&[
        "exec",
        &format!("{name}-c"),
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(theirs.trim(), ours.to_string_lossy());
    b.ok(&["kube", "down", &file]);
}

/// A failing livenessProbe restarts its container (the kubelet's answer;
/// podman 4.3's `--health-on-failure=restart`), its restart count going
/// up, while the pod's other container is left alone; with restartPolicy
/// Never it is killed and stays exited. A readinessProbe beside the
/// liveness one is taken without a warning (see
/// liveness_and_readiness_probes_work_side_by_side).
#[test]
fn a_failing_liveness_probe_restarts_the_container() {
    if !berth_testkit::root_or_skip("a_failing_liveness_probe_restarts_the_container") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("live-{}", std::process::id());
    let pod = |pod: &str, policy: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {pod}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 1
  containers:
  - name: probed
    image: busybox
    command: [sh, -c, "echo life; exec sleep 60"]
    livenessProbe:
      exec:
        command: [test, -f, /alive]
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      exec:
        command: ["true"]
  - name: other
    image: busybox
    command: [sleep, "60"]
"#
        )
    };
    let file = write_yaml(
        dir.path(),
        "live.yaml",
        &format!(
            "{}---\n{}",
            pod(&name, "Always"),
            pod(&format!("{name}-never"), "Never")
        ),
    );
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 0, "kube play with a liveness probe");
    assert!(!stderr(&o).contains("readinessProbe"), "{}", stderr(&o));
    let probed = format!("{name}-probed");
    b.wait_for(&probed, "{{.RestartCount}}", "1");
    b.wait_for(&probed, "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.ok(&["logs", &probed]).matches("life").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "{probed} never ran a second time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        b.inspect(&probed, "{{.Config.HealthcheckOnFailureAction}}"),
        "restart"
    );
    assert_eq!(
        b.inspect(&format!("{name}-other"), "{{.RestartCount}}"),
        "0"
    );
    assert_eq!(
        b.inspect(&format!("{name}-other"), "{{.State.Status}}"),
        "running"
    );
    // restartPolicy Never: killed, not started again.
    let never = format!("{name}-never-probed");
    b.wait_for(
        &never,
        "{{.State.Status}} {{.State.ExitCode}}",
        "exited 137",
    );
    assert_eq!(b.inspect(&never, "{{.RestartCount}}"), "0");
    b.ok(&["kube", "down", &file]);
}

/// A readinessProbe alone is the member's healthcheck with no action: the
/// member is "starting" (not ready) until the probe passes, then
/// "healthy"; one that keeps failing turns "unhealthy" and is left
/// running, never restarted, as the kubelet only takes a pod that is not
/// ready out of its Services' endpoints (a livenessProbe's failure is what
/// restarts). podman 4.3 ignores readinessProbe (no healthcheck at all).
#[test]
fn a_readiness_probe_keeps_the_member_unready_until_it_passes() {
    if !berth_testkit::root_or_skip("a_readiness_probe_keeps_the_member_unready_until_it_passes") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("ready-{}", std::process::id());
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: slow
    image: busybox
    command: [sh, -c, "sleep 3; touch /ready; exec sleep 60"]
    readinessProbe:
      exec:
        command: [test, -f, /ready]
      periodSeconds: 1
      failureThreshold: 30
  - name: never
    image: busybox
    command: [sleep, "60"]
    readinessProbe:
      exec:
        command: ["false"]
      periodSeconds: 1
      failureThreshold: 1
"#
    );
    let file = write_yaml(dir.path(), "ready.yaml", &yaml);
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 0, "kube play with readiness probes");
    assert!(!stderr(&o).contains("not honoured"), "{}", stderr(&o));
    let (slow, never) = (format!("{name}-slow"), format!("{name}-never"));
    // Not ready before /ready exists (three seconds after its start).
    assert_eq!(b.inspect(&slow, "{{.State.Health.Status}}"), "starting");
    b.wait_for(&slow, "{{.State.Health.Status}}", "healthy");
    assert_eq!(
        b.ok(&["exec", &slow, "ls", "/ready"]).trim(),
        "/ready",
        "healthy before its probe could pass"
    );
    // A failing readiness probe: unhealthy, and left alone (after two
    // more failures, time for a wrong action to have been taken).
    b.wait_for(&never, "{{.State.Health.Status}}", "unhealthy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b
        .inspect(&never, "{{.State.Health.FailingStreak}}")
        .parse::<u32>()
        .unwrap_or(0)
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "{never}: its probe stopped running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        b.inspect(&never, "{{.State.Status}} {{.RestartCount}}"),
        "running 0"
    );
    b.ok(&["kube", "down", &file]);
}

/// `$(VAR)` in command, args and env values is the container's variable,
/// as the kubelet expands it (podman 4.3 passes it on as written): `$$`
/// is a literal `$`, an unknown name stays as written, a value from a
/// ConfigMap counts, and no shell is involved.
#[test]
fn dollar_references_in_command_and_args_are_expanded() {
    if !berth_testkit::root_or_skip("dollar_references_in_command_and_args_are_expanded") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("expand-{}", std::process::id());
    let yaml = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-{name}
data:
  FROM_MAP: mapped
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [echo, "[$(A)]", "[$$(A)]"]
    args: ["[$(NOPE)]", "[$(B)]", "[$(FROM_MAP)]", "[$A]", "[$(A]"]
    envFrom:
    - configMapRef:
        name: cm-{name}
    env:
    - name: A
      value: one
    - name: B
      value: "$(A)-$(FROM_MAP)-$(LATER)"
    - name: LATER
      value: late
"#
    );
    let file = write_yaml(dir.path(), "expand.yaml", &yaml);
    b.ok(&["kube", "play", &file]);
    let c = format!("{name}-c");
    b.wait_for(&c, "{{.State.Status}}", "exited");
    assert_eq!(
        b.ok(&["logs", &c]).trim(),
        "[one] [$(A)] [$(NOPE)] [one-mapped-$(LATER)] [mapped] [$A] [$(A]"
    );
    b.ok(&["kube", "down", &file]);
}

/// A NodePort Service whose port differs from its targetPort: the host's
/// nodePort reaches the pod's targetPort (what a cluster's node does),
/// the member's `port` shows it, and inside the pods the Service's name
/// and `port` reach the targetPort (what a ClusterIP does), from another
/// pod and from the selected pod itself. A Service selecting nothing is a
/// warning.
#[test]
fn a_service_port_and_its_node_port_reach_the_target_port() {
    if !berth_testkit::root_or_skip("a_service_port_and_its_node_port_reach_the_target_port") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("svcport-{}", std::process::id());
    let node = free_port();
    let yaml = format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: front-{name}
spec:
  type: NodePort
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: {node}
---
apiVersion: v1
kind: Service
metadata:
  name: nobody-{name}
spec:
  selector:
    app: nothing
  ports:
  - port: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /www && echo target-port > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - containerPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-client
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "60"]
"#
    );
    let file = write_yaml(dir.path(), "svc.yaml", &yaml);
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 0, "kube play of a NodePort Service");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "Service nobody-{name}: selects no pod of the file"
        )),
        "{err}"
    );
    assert!(!err.contains("is not served"), "{err}");
    let page = http_get(&format!("127.0.0.1:{node}"), "/index.html").unwrap();
    assert!(page.contains("target-port"), "{page}");
    assert_eq!(
        b.ok(&["port", &format!("{name}-web")]).trim(),
        format!("8080/tcp -> 0.0.0.0:{node}")
    );
    // By the Service's name and port, from another pod and from itself;
    // and by its cluster DNS name.
    let url = format!("http://front-{name}:80/index.html");
    let fqdn = format!("http://front-{name}.default.svc.cluster.local:80/index.html");
    for (who, member, url) in [
        ("another pod", format!("{name}-client-c"), &url),
        ("the pod itself", format!("{name}-web"), &url),
        ("another pod, by FQDN", format!("{name}-client-c"), &fqdn),
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = b.run(&["exec", &member, "timeout", "3", "wget", "-qO-", url]);
            if o.status.success() {
                assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "target-port");
                break;
            }
            assert!(Instant::now() < deadline, "{who}: {url}: {}", stderr(&o));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Only the pod's address is translated: port 80 on the selected
    // pod's own loopback (another address) is not the Service.
    let o = b.run(&[
        "exec",
        &format!("{name}-web"),
        "timeout",
        "3",
        "wget",
        "-qO-",
        "http://127.0.0.1:80/index.html",
    ]);
    assert_ne!(o.status.code(), Some(0), "loopback port 80 answered");
    b.ok(&["kube", "down", &file]);
}

/// The lines of `member`'s /etc/hosts that hold `name`.
fn hosts_lines(b: &Berth, member: &str, name: &str) -> Vec<String> {
    b.ok(&["exec", member, "cat", "/etc/hosts"])
        .lines()
        .filter(|l| l.split_whitespace().skip(1).any(|n| n == name))
        .map(String::from)
        .collect()
}

/// Polls `member`'s /etc/hosts until `name` is in it (`present`) or not
/// (30 s at most); returns its lines for `name`.
fn wait_hosts(b: &Berth, member: &str, name: &str, present: bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = hosts_lines(b, member, name);
        if lines.is_empty() != present {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{member}: {name} {} its /etc/hosts: {lines:?}",
            if present {
                "never came into"
            } else {
                "never left"
            }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Service's name leads to its pod only while the pod is ready, as a
/// cluster leaves a pod that is not out of the Service's endpoints: not
/// before its readinessProbe passes, from the moment it does (the name
/// then reaches the server), and no more once it fails again or the
/// member ends; the container is never restarted for it. (podman 4.3
/// ignores both the Service and the readinessProbe.)
#[test]
fn a_service_name_leads_to_its_pod_only_while_ready() {
    if !berth_testkit::root_or_skip("a_service_name_leads_to_its_pod_only_while_ready") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("gate-{}", std::process::id());
    let svc = format!("svc-{name}");
    let yaml = format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {svc}
spec:
  selector:
    app: {name}
  ports:
  - port: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /www && echo gated > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec:
        command: [test, -f, /ready]
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "60"]
"#
    );
    let file = write_yaml(dir.path(), "gate.yaml", &yaml);
    b.ok(&["kube", "play", &file]);
    let (web, client) = (format!("{name}-web"), format!("{name}-client-c"));
    b.wait_for(&client, "{{.State.Status}}", "running");
    // Not ready: the probe failed (failureThreshold 1), and the name is in
    // no member's hosts file, the selected pod's own or another's.
    b.wait_for(&web, "{{.State.Health.Status}}", "unhealthy");
    for m in [&client, &web] {
        assert_eq!(hosts_lines(&b, m, &svc), Vec::<String>::new(), "{m}");
    }
    let o = b.run(&[
        "exec",
        &client,
        "wget",
        "-qO-",
        &format!("http://{svc}:8080/"),
    ]);
    assert_ne!(o.status.code(), Some(0), "the name reached a pod not ready");
    // Ready: both names lead to the pod, and to its server.
    b.ok(&["exec", &web, "touch", "/ready"]);
    let lines = wait_hosts(&b, &client, &svc, true);
    let ip = lines[0].split_whitespace().next().unwrap().to_string();
    assert_eq!(
        hosts_lines(&b, &client, &format!("{svc}.default.svc.cluster.local")),
        [format!("{ip}\t{svc}.default.svc.cluster.local")]
    );
    wait_hosts(&b, &web, &svc, true);
    let page = b.ok(&[
        "exec",
        &client,
        "timeout",
        "5",
        "wget",
        "-qO-",
        &format!("http://{svc}:8080/index.html"),
    ]);
    assert_eq!(page.trim(), "gated");
    // Not ready again: the name goes; the container runs on.
    b.ok(&["exec", &web, "rm", "/ready"]);
    wait_hosts(&b, &client, &svc, false);
    assert_eq!(
        b.inspect(&web, "{{.State.Status}} {{.RestartCount}}"),
        "running 0"
    );
    // Ready again, then stopped: a pod whose member ended is not ready.
    b.ok(&["exec", &web, "touch", "/ready"]);
    wait_hosts(&b, &client, &svc, true);
    b.ok(&["stop", "-t", "1", &web]);
    wait_hosts(&b, &client, &svc, false);
    // generate writes the lone readinessProbe back as one: played again
    // it must not become a livenessProbe, which would restart.
    let out = b.ok(&["kube", "generate", &name]);
    let pod: Pod = serde_yaml_ng::from_str(&out).unwrap();
    let c = &pod.spec.unwrap().containers[0];
    assert!(c.liveness_probe.is_none(), "{out}");
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .and_then(|p| p.exec.as_ref())
            .and_then(|e| e.command.clone())
            .unwrap_or_default(),
        ["test", "-f", "/ready"],
        "{out}"
    );
    b.ok(&["kube", "down", &file]);
}

/// A livenessProbe and a readinessProbe on one container: the liveness
/// one is the healthcheck (`State.Health`, restarting the container when
/// it fails), the readiness one a second check (`Config.ReadinessCheck`,
/// `State.Health.Readiness`) that only decides whether the Service's name
/// leads to the pod. Its failures never restart; the liveness probe's do,
/// and after the restart the pod is not ready until its readiness probe
/// passes again.
#[test]
fn liveness_and_readiness_probes_work_side_by_side() {
    if !berth_testkit::root_or_skip("liveness_and_readiness_probes_work_side_by_side") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("both-{}", std::process::id());
    let svc = format!("svc-{name}");
    let yaml = format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {svc}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo life; touch /alive; exec sleep 60"]
    livenessProbe:
      exec:
        command: [test, -f, /alive]
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      exec:
        command: [test, -f, /ready]
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "60"]
"#
    );
    let file = write_yaml(dir.path(), "both.yaml", &yaml);
    let o = b.run(&["kube", "play", &file]);
    expect_code(&o, 0, "kube play with both probes");
    assert!(!stderr(&o).contains("readinessProbe"), "{}", stderr(&o));
    let (c, client) = (format!("{name}-c"), format!("{name}-client-c"));
    assert_eq!(
        b.inspect(
            &c,
            "{{.Config.Healthcheck.Test}} {{.Config.HealthcheckOnFailureAction}}"
        ),
        "[CMD test -f /alive] restart"
    );
    assert_eq!(
        b.inspect(&c, "{{.Config.ReadinessCheck.Test}}"),
        "[CMD test -f /ready]"
    );
    // Alive and not ready: the readiness probe fails on, and acts not.
    b.wait_for(&c, "{{.State.Health.Status}}", "healthy");
    b.wait_for(&c, "{{.State.Health.Readiness.Status}}", "unhealthy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b
        .inspect(&c, "{{.State.Health.Readiness.FailingStreak}}")
        .parse::<u32>()
        .unwrap_or(0)
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "{c}: its readiness probe stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        b.inspect(
            &c,
            "{{.State.Status}} {{.RestartCount}} {{.State.Health.Status}}"
        ),
        "running 0 healthy"
    );
    assert_eq!(hosts_lines(&b, &client, &svc), Vec::<String>::new());
    // Ready: the name comes.
    b.ok(&["exec", &c, "touch", "/ready"]);
    b.wait_for(&c, "{{.State.Health.Readiness.Status}}", "healthy");
    wait_hosts(&b, &client, &svc, true);
    // The liveness probe fails: restarted (not ready meanwhile: the
    // name goes with the old life), then ready again as /ready is still
    // in its filesystem.
    b.ok(&["exec", &c, "rm", "/alive"]);
    b.wait_for(&c, "{{.RestartCount}}", "1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.ok(&["logs", &c]).matches("life").count() < 2 {
        assert!(Instant::now() < deadline, "{c} never ran a second time");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.wait_for(&c, "{{.State.Health.Readiness.Status}}", "healthy");
    wait_hosts(&b, &client, &svc, true);
    assert_eq!(
        b.inspect(&format!("{name}-client-c"), "{{.RestartCount}}"),
        "0"
    );
    // generate writes both probes back, each in its place.
    let yaml = b.ok(&["kube", "generate", &name]);
    let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
    let spec = pod.spec.unwrap();
    let command = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        p.and_then(|p| p.exec.as_ref())
            .and_then(|e| e.command.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        command(spec.containers[0].liveness_probe.as_ref()),
        ["test", "-f", "/alive"],
        "{yaml}"
    );
    assert_eq!(
        command(spec.containers[0].readiness_probe.as_ref()),
        ["test", "-f", "/ready"],
        "{yaml}"
    );
    b.ok(&["kube", "down", &file]);
}

/// A Service selecting a Deployment's two replicas: its name leads to a
/// replica that is ready, whichever it is (a cluster's endpoints are the
/// ready pods), so the second replica ready first takes it; once both
/// are ready it stays on one of them, and it goes when neither is.
#[test]
fn a_service_name_leads_to_a_ready_replica() {
    if !berth_testkit::root_or_skip("a_service_name_leads_to_a_ready_replica") {
        return;
    }
    let b = berth();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("repl-{}", std::process::id());
    let svc = format!("svc-{name}");
    let yaml = format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {svc}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [sleep, "60"]
        readinessProbe:
          exec:
            command: [test, -f, /ready]
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "60"]
"#
    );
    let file = write_yaml(dir.path(), "repl.yaml", &yaml);
    b.ok(&["kube", "play", &file]);
    let client = format!("{name}-client-c");
    let (first, second) = (format!("{name}-pod-0"), format!("{name}-pod-1"));
    let pod_ip = |pod: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(&b.ok(&["pod", "inspect", pod])).unwrap();
        v["InfraConfig"]["IPAddress"].as_str().unwrap().to_string()
    };
    for p in [&first, &second] {
        b.wait_for(&format!("{p}-c"), "{{.State.Health.Status}}", "unhealthy");
    }
    assert_eq!(hosts_lines(&b, &client, &svc), Vec::<String>::new());
    // The second replica ready, the first not: the name leads there.
    b.ok(&["exec", &format!("{second}-c"), "touch", "/ready"]);
    let lines = wait_hosts(&b, &client, &svc, true);
    assert_eq!(lines, [format!("{}\t{svc}", pod_ip(&second))]);
    // Both ready: one of them.
    b.ok(&["exec", &format!("{first}-c"), "touch", "/ready"]);
    b.wait_for(&format!("{first}-c"), "{{.State.Health.Status}}", "healthy");
    let ips = [pod_ip(&first), pod_ip(&second)];
    let lines = wait_hosts(&b, &client, &svc, true);
    assert!(
        ips.iter().any(|ip| lines == [format!("{ip}\t{svc}")]),
        "{lines:?} {ips:?}"
    );
    // Neither: gone.
    for p in [&first, &second] {
        b.ok(&["exec", &format!("{p}-c"), "rm", "/ready"]);
    }
    wait_hosts(&b, &client, &svc, false);
    b.ok(&["kube", "down", &file]);
}
