//! Kubernetes' path to berth-runtime: containerd's CRI plugin with
//! berth-runtime as the binary of a runc v2 runtime handler (what a
//! RuntimeClass names), driven over gRPC as the kubelet drives it.
//!
//! Each test starts a private containerd (testkit's) whose config names the
//! handlers `berth` (BinaryName = the freshly built berth-runtime) and
//! `runc` (the default), each with a state root of its own (and
//! `berth-systemd`, SystemdCgroup = true, which must be refused), and pod
//! networking through Debian's CNI plugins (a bridge unique to the test,
//! host-local addresses on a free /24). The pod's sandbox image is a static
//! pause (tests/helpers/pause.c) and the containers' image the busybox
//! fixture, both imported with `ctr`: nothing is pulled.
//!
//! The scenario, for each handler: RunPodSandbox, two containers in the pod
//! (an httpd and a client reaching it on 127.0.0.1: one network namespace),
//! ExecSync, ContainerStats, UpdateContainerResources, ContainerStatus,
//! StopContainer (a TERM that is handled, and one that is not, with its
//! timeout), RemoveContainer, StopPodSandbox, RemovePodSandbox; then nothing
//! may be left behind: runtime state, cgroups, the pod's netns, its veth, its
//! address lease, the shim. Then, under both handlers alike: a "restricted"
//! container (Pod Security Standards), and an OOM kill.
//!
//! Needs root, containerd, containernetworking-plugins, protoc (build),
//! busybox-static and gcc. Set BERTH_TEST_KEEP=1 to keep the directory of a
//! failed test. `cri_bench` (ignored; bench/cri.sh runs it) measures
//! RunPodSandbox + CreateContainer + StartContainer for both handlers.

// An integration test crate is test-only code as a whole.
#![allow(clippy::tests_outside_test_module)]

use berth_testkit::containerd::{Containerd, Options, IMAGE};
use berth_testkit::snippet::installed;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The freshly built runtime under test.
const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
/// The sandbox image: tests/helpers/pause.c, made and imported per test.
const PAUSE_IMAGE: &str = "localhost/berth-pause:1";
/// The CRI plugin's containerd namespace.
const K8S_NS: &str = "k8s.io";
/// bash: the network namespaces (nsfs mounts) under the test's directory,
/// where the CRI plugin keeps pods' (the fstype follows the "-" field).
const NETNS_MOUNTS: &str = r#"awk -v d="$D" 'index($5, d "/") == 1 { for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "nsfs") print "netns: " $5; break } }' /proc/self/mountinfo"#;
/// Longest any one CRI call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(120);
/// Longest a condition polled for (a server up, a log line) may take.
const POLL_DEADLINE: Duration = Duration::from_secs(60);

/// A RuntimeClass handler of the test's containerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// `runtimeClassName: berth`: berth-runtime
    Berth,
    /// the default handler (`runc`), as a pod without a RuntimeClass gets
    Runc,
}

impl Handler {
    /// What RunPodSandbox names (empty: the default handler).
    fn name(self) -> &'static str {
        match self {
            Handler::Berth => "berth",
            Handler::Runc => "",
        }
    }

    fn binary(self) -> PathBuf {
        match self {
            Handler::Berth => PathBuf::from(RUNTIME),
            Handler::Runc => PathBuf::from("runc"),
        }
    }

    /// The handler's runtime state root, as config.toml gives it (`Root`);
    /// the shim adds the namespace.
    fn root(self, dir: &Path) -> PathBuf {
        match self {
            Handler::Berth => dir.join("berth-root"),
            Handler::Runc => dir.join("runc-root"),
        }
    }
}

/// The containerd config for the CRI plugin ($D: containerd's directory).
fn cri_config(berth: &Path) -> String {
    format!(
        r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # No network for the streaming server beyond loopback, on a free port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # The netns of pods under the test's directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # The pause container's oom_score_adj (-998) needs CAP_SYS_RESOURCE,
  # which root in this sandbox may lack: clamp it to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        Root = "$D/runc-root"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
        BinaryName = "{berth}"
        Root = "$D/berth-root"
        SystemdCgroup = false
    # berth-runtime has no systemd cgroup driver yet: it must say so.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth-systemd]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth-systemd.options]
        BinaryName = "{berth}"
        Root = "$D/berth-root"
        SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni"
"#,
        berth = berth.display()
    )
}

/// A /24 of 10.231.0.0/16 that no route of the host uses and no other
/// test holds: its third octet, and the lock that holds it (a file lock,
/// so a test that dies lets go of it), kept for the test's life.
fn free_subnet(salt: u32) -> (u8, nix::fcntl::Flock<std::fs::File>) {
    let routes = std::process::Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let locks = std::env::temp_dir().join("berth-cri-subnets");
    std::fs::create_dir_all(&locks).expect("creating the subnet lock dir");
    let start = std::process::id().wrapping_mul(7).wrapping_add(salt);
    (0..256u32)
        .filter_map(|i| u8::try_from((start + i) % 256).ok())
        .filter(|n| !routes.contains(&format!("10.231.{n}.")))
        .find_map(|n| {
            let file = std::fs::File::create(locks.join(format!("10.231.{n}.0"))).ok()?;
            let lock =
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()?;
            Some((n, lock))
        })
        .expect("no free /24 in 10.231.0.0/16")
}

/// A private containerd with the CRI plugin, and a CRI client on it.
struct CriNode {
    ctd: Containerd,
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    /// the pods' cgroup parent (as the kubelet's cgroupfs driver gives one)
    cgroup_parent: String,
    /// the CNI bridge
    bridge: String,
    /// the CNI network's name (host-local keeps its leases under it)
    network: String,
    /// the pod subnet's third octet: 10.231.N.0/24
    subnet: u8,
    /// held while the subnet is this test's
    _subnet_lock: nix::fcntl::Flock<std::fs::File>,
}

impl std::fmt::Debug for CriNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriNode").field("ctd", &self.ctd).finish()
    }
}

impl CriNode {
    /// containerd with the CRI plugin, the CNI config, the images; `None`
    /// when a tool is missing (said; a failure under CI).
    fn start(test: &str, salt: u32, berth: &Path) -> Option<CriNode> {
        for tool in ["runc", "cc"] {
            if !installed(tool) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{tool} is missing (install-deps.sh)"
                );
                eprintln!("skipped: {tool} not installed");
                return None;
            }
        }
        for plugin in ["bridge", "host-local", "loopback"] {
            if !Path::new("/usr/lib/cni").join(plugin).exists() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "/usr/lib/cni/{plugin} is missing (containernetworking-plugins)"
                );
                eprintln!("skipped: containernetworking-plugins not installed");
                return None;
            }
        }
        let pid = std::process::id();
        let cgroup_parent = format!("/berth-cri-{test}-{pid}");
        // IFNAMSIZ: at most 15 bytes (pid ≤ 7 digits).
        let bridge = format!("bcri{pid}{salt}");
        let network = format!("berth-cri-{test}-{pid}");
        let (subnet, subnet_lock) = free_subnet(salt);
        let ctd = Containerd::start_with(
            &format!("cri-{test}"),
            berth,
            Options {
                cri: Some(cri_config(berth)),
                namespace: Some(K8S_NS.to_string()),
                runtimes: vec![
                    (berth.to_path_buf(), "$D/berth-root".to_string()),
                    (PathBuf::from("runc"), "$D/runc-root".to_string()),
                ],
                cgroups: vec![cgroup_parent.clone()],
                links: vec![bridge.clone()],
            },
        )?;

        // Pod networking: a bridge with the gateway address and host-local
        // leases kept in the test's directory (the CRI plugin adds the
        // loopback itself). The plugin notices the file and reports the
        // network ready.
        let cni = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [{
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": format!("10.231.{subnet}.0/24") }]],
                    "dataDir": ctd.dir.join("ipam").display().to_string(),
                },
            }],
        });
        std::fs::create_dir_all(ctd.dir.join("cni")).expect("creating the CNI conf dir");
        std::fs::write(
            ctd.dir.join("cni/10-berth.conflist"),
            serde_json::to_vec_pretty(&cni).expect("CNI config"),
        )
        .expect("writing the CNI config");

        // The sandbox image: a static pause as the only file.
        std::fs::create_dir_all(ctd.dir.join("pause-root")).expect("creating pause-root");
        berth_testkit::build_helper("pause", &ctd.dir.join("pause-root/pause"));
        let out = ctd.sh(&format!(
            r#"source "$TESTS/podman-env.sh" "$D/podman-env" >/dev/null &&
               dir_oci_archive "$D/pause-root" "$D/pause.tar" {PAUSE_IMAGE} '"Entrypoint":["/pause"]' &&
               timeout 120 $CTR image import "$D/pause.tar""#
        ));
        ctd.check(out.code() == 0, &out, "importing the pause image failed");

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let endpoint = format!("unix:{}", ctd.socket().display());
        let channel = rt
            .block_on(async {
                tokio::time::timeout(
                    CALL_DEADLINE,
                    tonic::transport::Endpoint::from_shared(endpoint)?.connect(),
                )
                .await
                .unwrap_or_else(|_| panic!("connecting to containerd took over {CALL_DEADLINE:?}"))
            })
            .expect("connecting to containerd's socket");
        let node = CriNode {
            runtime: RuntimeServiceClient::new(channel.clone()),
            image: ImageServiceClient::new(channel),
            rt,
            ctd,
            cgroup_parent,
            bridge,
            network,
            subnet,
            _subnet_lock: subnet_lock,
        };
        node.wait_ready();
        Some(node)
    }

    /// Run one CRI call to its end, within [`CALL_DEADLINE`].
    fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt
            .block_on(async { tokio::time::timeout(CALL_DEADLINE, fut).await })
            .unwrap_or_else(|_| {
                panic!(
                    "{what} took over {CALL_DEADLINE:?}\n{}",
                    self.ctd.diagnostics()
                )
            })
            .map(tonic::Response::into_inner)
    }

    /// [`CriNode::call`], panicking (with containerd's log) on an error.
    fn ok<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        match self.call(what, fut) {
            Ok(t) => t,
            Err(e) => panic!("{what} failed: {e}\n{}", self.ctd.diagnostics()),
        }
    }

    fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// Panic with `what` and the diagnostics unless `ok`.
    fn check(&self, ok: bool, what: &str) {
        if !ok {
            panic!("{what}\n{}", self.ctd.diagnostics());
        }
    }

    /// Wait until the runtime and the network report ready and both images
    /// are known to the CRI plugin (it learns of imports asynchronously).
    fn wait_ready(&self) {
        let deadline = Instant::now() + POLL_DEADLINE;
        loop {
            let status = self.call(
                "Status",
                self.rs().status(cri::StatusRequest { verbose: false }),
            );
            let conditions = status
                .as_ref()
                .ok()
                .and_then(|s| s.status.as_ref())
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let ready = ["RuntimeReady", "NetworkReady"]
                .iter()
                .all(|t| conditions.iter().any(|c| c.r#type == *t && c.status));
            let images = [PAUSE_IMAGE, IMAGE].iter().all(|image| {
                self.call(
                    "ImageStatus",
                    self.image.clone().image_status(cri::ImageStatusRequest {
                        image: Some(cri::ImageSpec {
                            image: (*image).to_string(),
                            ..Default::default()
                        }),
                        verbose: false,
                    }),
                )
                .map(|r| r.image.is_some())
                .unwrap_or(false)
            });
            if ready && images {
                return;
            }
            self.check(
                Instant::now() < deadline,
                &format!(
                    "the CRI plugin did not become ready (conditions {conditions:?}, images known: {images})"
                ),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A pod config: its own cgroup parent, hostname and log directory;
    /// network and IPC of the pod, PID namespaces per container (the
    /// kubelet's defaults).
    fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        let logs = self.ctd.dir.join("logs").join(name);
        std::fs::create_dir_all(&logs).expect("creating the pod's log dir");
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("uid-{name}-{}", std::process::id()),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: logs.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/{name}", self.cgroup_parent),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox container config running `script` with `sh -c`.
    fn container_config(name: &str, script: &str, env: &[(&str, &str)]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: IMAGE.to_string(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            envs: env
                .iter()
                .map(|(k, v)| cri::KeyValue {
                    key: (*k).to_string(),
                    value: (*v).to_string(),
                })
                .collect(),
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_pod(&self, config: &cri::PodSandboxConfig, handler: Handler) -> String {
        self.ok(
            "RunPodSandbox",
            self.rs().run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.name().to_string(),
            }),
        )
        .pod_sandbox_id
    }

    fn create(
        &self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> String {
        self.ok(
            "CreateContainer",
            self.rs().create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.to_string(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }),
        )
        .container_id
    }

    fn start_container(&self, id: &str) {
        self.ok(
            "StartContainer",
            self.rs().start_container(cri::StartContainerRequest {
                container_id: id.to_string(),
            }),
        );
    }

    fn exec(&self, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
        self.ok(
            "ExecSync",
            self.rs().exec_sync(cri::ExecSyncRequest {
                container_id: id.to_string(),
                cmd: cmd.iter().map(|s| (*s).to_string()).collect(),
                timeout: 60,
            }),
        )
    }

    /// ContainerStatus, and the verbose info's init pid.
    fn status(&self, id: &str) -> (cri::ContainerStatus, Option<i64>) {
        let r = self.ok(
            "ContainerStatus",
            self.rs().container_status(cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: true,
            }),
        );
        let pid = r
            .info
            .get("info")
            .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .and_then(|v| v["pid"].as_i64());
        (r.status.expect("ContainerStatus without a status"), pid)
    }

    fn stop_container(&self, id: &str, timeout: i64) {
        self.ok(
            "StopContainer",
            self.rs().stop_container(cri::StopContainerRequest {
                container_id: id.to_string(),
                timeout,
            }),
        );
    }

    fn remove_container(&self, id: &str) {
        self.ok(
            "RemoveContainer",
            self.rs().remove_container(cri::RemoveContainerRequest {
                container_id: id.to_string(),
            }),
        );
    }

    fn stop_pod(&self, id: &str) {
        self.ok(
            "StopPodSandbox",
            self.rs().stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        );
    }

    fn remove_pod(&self, id: &str) {
        self.ok(
            "RemovePodSandbox",
            self.rs().remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        );
    }

    /// `<binary> --root <handler root>/k8s.io state <id>` as JSON, or the
    /// command's output when it fails.
    fn runtime_state(&self, handler: Handler, id: &str) -> Result<serde_json::Value, String> {
        let out = std::process::Command::new(handler.binary())
            .arg("--root")
            .arg(handler.root(&self.ctd.dir).join(K8S_NS))
            .args(["state", id])
            .output()
            .map_err(|e| format!("running {}: {e}", handler.binary().display()))?;
        if !out.status.success() {
            return Err(format!(
                "exit {:?}: {}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("state is not JSON: {e}"))
    }

    /// Poll `f` until it gives `Some`, within [`POLL_DEADLINE`].
    fn poll<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + POLL_DEADLINE;
        loop {
            if let Some(t) = f() {
                return t;
            }
            self.check(Instant::now() < deadline, what);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The kubelet's namespaces for a pod without shareProcessNamespace:
/// network and IPC of the pod, a PID namespace per container.
fn pod_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod.into(),
        pid: cri::NamespaceMode::Container.into(),
        ipc: cri::NamespaceMode::Pod.into(),
        ..Default::default()
    }
}

/// The cgroup v1 directory of `controller` that `pid` is in.
fn cgroup_dir(pid: i64, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == controller).then(|| {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
        })
    })
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("<{}: {e}>", path.display()))
}

/// The whole pod life through the CRI, with `handler` running it.
fn pod_scenario(handler: Handler, test: &str, salt: u32) {
    let Some(node) = CriNode::start(test, salt, Path::new(RUNTIME)) else {
        return;
    };
    let dir = node.ctd.dir.clone();
    let pod_name = format!("web-{salt}");
    let pod_config = node.pod_config(&pod_name);

    // RunPodSandbox: the handler's runtime runs the pause container.
    let pod = node.run_pod(&pod_config, handler);
    let other = match handler {
        Handler::Berth => Handler::Runc,
        Handler::Runc => Handler::Berth,
    };
    match node.runtime_state(handler, &pod) {
        Ok(state) => node.check(
            state["status"] == "running",
            &format!("the sandbox should be running in {handler:?}'s state: {state}"),
        ),
        Err(e) => node.check(
            false,
            &format!("{handler:?} does not know the sandbox {pod}: {e}"),
        ),
    }
    node.check(
        node.runtime_state(other, &pod).is_err(),
        &format!("{other:?} should not run the sandbox of a pod for {handler:?}"),
    );

    let status = node
        .ok(
            "PodSandboxStatus",
            node.rs().pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            }),
        )
        .status
        .expect("PodSandboxStatus without a status");
    node.check(
        status.state == i32::from(cri::PodSandboxState::SandboxReady),
        &format!("the pod should be ready: {status:?}"),
    );
    let pod_ip = status.network.map(|n| n.ip).unwrap_or_default();
    node.check(
        pod_ip.starts_with(&format!("10.231.{}.", node.subnet)),
        &format!(
            "the pod's IP {pod_ip:?} should come from the CNI subnet 10.231.{}.0/24",
            node.subnet
        ),
    );
    // What CNI made for it: a veth on the bridge, a lease named by the IP.
    let ports: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{}/brif", node.bridge))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    node.check(
        ports.len() == 1,
        &format!("one veth should be on {}: {ports:?}", node.bridge),
    );
    let veth = ports[0].clone();
    let lease = dir.join("ipam").join(&node.network).join(&pod_ip);
    node.check(
        lease.exists(),
        &format!("host-local should hold {}", lease.display()),
    );
    let out = node.ctd.sh(NETNS_MOUNTS);
    node.ctd.check(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("netns: "))
            .count()
            == 1,
        &out,
        "the pod's network namespace should be mounted under the state dir",
    );

    // Two containers in the pod: an httpd on 8080, and a client.
    let token = format!("served-by-{test}-{}", std::process::id());
    let server = node.create(
        &pod,
        &pod_config,
        CriNode::container_config(
            "server",
            r#"mkdir -p /www && echo "$TOKEN" >/www/index.html && exec httpd -f -p 8080 -h /www"#,
            &[("TOKEN", &token)],
        ),
    );
    let client = node.create(
        &pod,
        &pod_config,
        CriNode::container_config(
            "client",
            r#"echo client-started; trap "exit 0" TERM; while :; do sleep 0.1; done"#,
            &[],
        ),
    );
    let (created, _) = node.status(&server);
    node.check(
        created.state == i32::from(cri::ContainerState::ContainerCreated),
        &format!("server should be CREATED before StartContainer: {created:?}"),
    );
    node.start_container(&server);
    node.start_container(&client);
    for (id, name) in [(&server, "server"), (&client, "client")] {
        node.check(
            node.runtime_state(handler, id)
                .is_ok_and(|s| s["status"] == "running"),
            &format!("{handler:?} should run the {name} container"),
        );
    }
    let (running, server_pid) = node.status(&server);
    node.check(
        running.state == i32::from(cri::ContainerState::ContainerRunning) && running.started_at > 0,
        &format!("server should be RUNNING with a start time: {running:?}"),
    );
    let server_pid = server_pid.unwrap_or_else(|| panic!("no pid in server's verbose status"));

    // The client reaches the server on 127.0.0.1: one network namespace.
    let body = node.poll(
        "the client never reached the server on 127.0.0.1:8080",
        || {
            let r = node.exec(
                &client,
                // (no -T: Debian's busybox 1.35 wget crashes with it)
                &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
            );
            (r.exit_code == 0).then(|| String::from_utf8_lossy(&r.stdout).into_owned())
        },
    );
    node.check(
        body.trim() == token,
        &format!("the client got {body:?} from the server, not {token:?}"),
    );
    // The host reaches the pod's address over the bridge (CNI worked).
    let out = node.ctd.sh(&format!(
        "timeout 30 busybox wget -q -O - http://{pod_ip}:8080/"
    ));
    node.ctd.check(
        out.code() == 0 && out.stdout.trim() == token,
        &out,
        "the host should reach the server at the pod's IP",
    );
    // The pod's hostname and address, seen from inside.
    let r = node.exec(&client, &["sh", "-c", "hostname; ip -4 -o addr show eth0"]);
    let seen = String::from_utf8_lossy(&r.stdout).into_owned();
    node.check(
        r.exit_code == 0
            && seen.lines().next() == Some(pod_name.as_str())
            && seen.contains(&format!("inet {pod_ip}/24")),
        &format!("the client should see hostname {pod_name} and {pod_ip} on eth0: {r:?}"),
    );

    // ExecSync: stdout, stderr and the exit code come back apart.
    let r = node.exec(&server, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    node.check(
        r.exit_code == 3 && r.stdout == b"out\n" && r.stderr == b"err\n",
        &format!("ExecSync should give out/err/3: {r:?}"),
    );

    // Device access: a CRI spec only denies all, the runtime's own rules
    // decide. As with runc, tun/tap may be made and opened, and the host's
    // console may not be opened.
    let r = node.exec(
        &client,
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/dev && cd /tmp/dev && mknod tun c 10 200 && mknod console c 5 1 && \
             head -c0 tun && echo tun-opened; head -c0 console && echo console-opened; true",
        ],
    );
    let (out, err) = (
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr),
    );
    node.check(
        out.lines().any(|l| l == "tun-opened")
            && !out.contains("console-opened")
            && err.contains("console: Operation not permitted"),
        &format!("tun/tap should open and the console should be refused: {out}{err}"),
    );

    // The client's first line reached its CRI log file.
    let log = dir.join("logs").join(&pod_name).join("client.log");
    node.poll("client-started never reached the client's log", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.lines().any(|l| l.ends_with(" stdout F client-started")))
    });

    // ContainerStats: the server's cgroup accounts its memory.
    let stats = node
        .ok(
            "ContainerStats",
            node.rs().container_stats(cri::ContainerStatsRequest {
                container_id: server.clone(),
            }),
        )
        .stats
        .expect("ContainerStats without stats");
    let memory = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map_or(0, |v| v.value);
    node.check(
        memory > 0,
        &format!("ContainerStats should report memory in use: {stats:?}"),
    );

    // The cgroup is under the pod's parent, and UpdateContainerResources
    // lands in it.
    let memcg = cgroup_dir(server_pid, "memory").expect("server's memory cgroup");
    let cpucg = cgroup_dir(server_pid, "cpu").expect("server's cpu cgroup");
    node.check(
        memcg.ends_with(
            Path::new(&format!("{}/{pod_name}", node.cgroup_parent).trim_start_matches('/'))
                .join(&server),
        ),
        &format!(
            "server's memory cgroup {} should be <cgroup parent>/<id>",
            memcg.display()
        ),
    );
    node.ok(
        "UpdateContainerResources",
        node.rs()
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: server.clone(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 64 << 20,
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    ..Default::default()
                }),
                ..Default::default()
            }),
    );
    let limit = read_trimmed(&memcg.join("memory.limit_in_bytes"));
    let quota = read_trimmed(&cpucg.join("cpu.cfs_quota_us"));
    let shares = read_trimmed(&cpucg.join("cpu.shares"));
    node.check(
        limit == (64u64 << 20).to_string() && quota == "50000" && shares == "512",
        &format!(
            "the update should set memory.limit_in_bytes 67108864, cpu.cfs_quota_us 50000, cpu.shares 512; found {limit}, {quota}, {shares}"
        ),
    );
    // A process started after the update is held to it too.
    let r = node.exec(&server, &["cat", "/proc/self/cgroup"]);
    let own = String::from_utf8_lossy(&r.stdout).into_owned();
    node.check(
        own.lines()
            .any(|l| l.contains(":memory:") && l.ends_with(&server)),
        &format!("an exec'd process should be in the server's memory cgroup: {own}"),
    );

    // StopContainer: the client's shell ends on TERM (exit 0); httpd, PID 1
    // of its PID namespace without a TERM handler, does not, and is killed
    // when the timeout runs out.
    node.stop_container(&client, 30);
    node.stop_container(&server, 1);
    for (id, name, code) in [(&client, "client", 0), (&server, "server", 137)] {
        let (st, _) = node.status(id);
        node.check(
            st.state == i32::from(cri::ContainerState::ContainerExited)
                && st.exit_code == code
                && st.finished_at >= st.started_at,
            &format!("{name} should have EXITED with {code}: {st:?}"),
        );
    }
    node.remove_container(&client);
    node.remove_container(&server);
    let left = node.ok(
        "ListContainers",
        node.rs().list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        }),
    );
    node.check(
        left.containers.is_empty(),
        &format!("no container should be left in the pod: {left:?}"),
    );
    for (id, name) in [(&server, "server"), (&client, "client")] {
        node.check(
            node.runtime_state(handler, id).is_err(),
            &format!("{handler:?} should have forgotten the {name} container"),
        );
    }

    node.stop_pod(&pod);
    let status = node
        .ok(
            "PodSandboxStatus",
            node.rs().pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            }),
        )
        .status
        .expect("PodSandboxStatus without a status");
    node.check(
        status.state == i32::from(cri::PodSandboxState::SandboxNotready),
        &format!("the stopped pod should be NOTREADY: {status:?}"),
    );
    node.remove_pod(&pod);
    let pods = node.ok(
        "ListPodSandbox",
        node.rs()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }),
    );
    node.check(
        pods.items.is_empty(),
        &format!("no pod should be left: {pods:?}"),
    );

    // Nothing left behind. The pod's own cgroup (<parent>/<pod>) stays: the
    // kubelet makes and removes it, not the runtime (runc leaves it too);
    // the containers' cgroups below it must be gone.
    let root = handler.root(&dir).join(K8S_NS);
    let state: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    node.check(
        state.is_empty(),
        &format!("{} should be empty: {state:?}", root.display()),
    );
    let out = node.ctd.sh(&format!(
        r#"find /sys/fs/cgroup/*/{parent} -mindepth 2 -type d 2>/dev/null
           {NETNS_MOUNTS}
           ls "$D/state/io.containerd.grpc.v1.cri/netns" 2>/dev/null | sed 's/^/netns file: /'
           ls /sys/class/net/{bridge}/brif | sed 's/^/port: /'
           [ -e /sys/class/net/{veth} ] && echo "veth: {veth}"
           [ -e "{lease}" ] && echo "lease: {lease}"
           true"#,
        parent = node.cgroup_parent.trim_start_matches('/'),
        bridge = node.bridge,
        lease = lease.display(),
    ));
    node.ctd.check(
        out.code() == 0 && out.stdout.trim().is_empty(),
        &out,
        "the pod left cgroups, a netns, a veth or an address lease behind",
    );
    // The pod's shim ends once the pod is gone.
    node.poll("the pod's shim is still running", || {
        let out = node.ctd.sh(
            r#"for p in /proc/[0-9]*; do
                   tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "containerd-shim.*-address $D/containerd.sock " && echo "${p#/proc/}"
               done; true"#,
        );
        out.stdout.trim().is_empty().then_some(())
    });
}

#[test]
fn cri_pod_lifecycle_berth_handler() {
    pod_scenario(Handler::Berth, "berth", 1);
}

#[test]
fn cri_pod_lifecycle_runc_default_handler() {
    pod_scenario(Handler::Runc, "runc", 2);
}

/// A container as Kubernetes' "restricted" Pod Security Standard has it:
/// not root, every capability dropped but NET_BIND_SERVICE, no privilege
/// escalation, a read-only root, the runtime's default seccomp profile.
fn restricted(
    mut config: cri::ContainerConfig,
    seccomp: cri::security_profile::ProfileType,
) -> cri::ContainerConfig {
    let linux = config.linux.get_or_insert_with(Default::default);
    let sc = linux.security_context.get_or_insert_with(Default::default);
    sc.run_as_user = Some(cri::Int64Value { value: 1000 });
    sc.run_as_group = Some(cri::Int64Value { value: 1000 });
    sc.readonly_rootfs = true;
    sc.no_new_privs = true;
    sc.capabilities = Some(cri::Capability {
        drop_capabilities: vec!["ALL".into()],
        add_capabilities: vec!["NET_BIND_SERVICE".into()],
        ..Default::default()
    });
    sc.seccomp = Some(cri::SecurityProfile {
        profile_type: seccomp.into(),
        ..Default::default()
    });
    config
}

/// What a container sees of its own restrictions (a line each).
const RESTRICTIONS: &str = r#"echo "uid=$(id -u) gid=$(id -g)"
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status
touch /file 2>/dev/null && echo root-writable || echo root-read-only
unshare -U true 2>/dev/null && echo userns-allowed || echo userns-refused"#;

/// A "restricted" container gets the same uid, capabilities, no_new_privs,
/// read-only root and seccomp filter from berth-runtime as from runc; with
/// the default profile, creating a user namespace is refused (it is not
/// without a profile: the refusal is seccomp's).
#[test]
fn cri_restricted_container_as_runc() {
    let Some(node) = CriNode::start("restricted", 5, Path::new(RUNTIME)) else {
        return;
    };
    use cri::security_profile::ProfileType;
    let mut seen = Vec::new();
    for handler in [Handler::Runc, Handler::Berth] {
        let name = format!("restricted-{}", seen.len());
        let pod_config = node.pod_config(&name);
        let pod = node.run_pod(&pod_config, handler);
        let mut views = Vec::new();
        for (cname, profile) in [
            ("default", ProfileType::RuntimeDefault),
            ("unconfined", ProfileType::Unconfined),
        ] {
            let config = restricted(
                CriNode::container_config(cname, "exec sleep 3600", &[]),
                profile,
            );
            let id = node.create(&pod, &pod_config, config);
            node.start_container(&id);
            let r = node.exec(&id, &["sh", "-c", RESTRICTIONS]);
            node.check(
                r.exit_code == 0,
                &format!("{handler:?}: the probe failed in {cname}: {r:?}"),
            );
            views.push(String::from_utf8_lossy(&r.stdout).into_owned());
            node.stop_container(&id, 0);
            node.remove_container(&id);
        }
        node.stop_pod(&pod);
        node.remove_pod(&pod);
        seen.push((handler, views));
    }
    let (runc, berth) = (&seen[0].1, &seen[1].1);
    node.check(
        runc == berth,
        &format!("berth-runtime's restricted containers should look as runc's:\nrunc: {runc:#?}\nberth: {berth:#?}"),
    );
    let default = &berth[0];
    for want in [
        "uid=1000 gid=1000",
        // NET_BIND_SERVICE stays in the bounding set only: a non-root
        // process gets no effective capabilities (no ambient ones given)
        "CapBnd:\t0000000000000400",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "root-read-only",
        "userns-refused",
    ] {
        node.check(
            default.lines().any(|l| l == want),
            &format!("the restricted container should show {want:?}: {default}"),
        );
    }
    node.check(
        berth[1].lines().any(|l| l == "userns-allowed"),
        &format!(
            "without a seccomp profile a user namespace should be allowed: {}",
            berth[1]
        ),
    );
}

/// A container over its memory limit is OOM-killed, and the CRI says so
/// (reason OOMKilled, 137), as with runc: the shim watches the cgroup the
/// runtime put the container in.
#[test]
fn cri_oom_killed_container_as_runc() {
    let Some(node) = CriNode::start("oom", 6, Path::new(RUNTIME)) else {
        return;
    };
    for (n, handler) in [Handler::Runc, Handler::Berth].into_iter().enumerate() {
        let name = format!("oom-{n}");
        let pod_config = node.pod_config(&name);
        let pod = node.run_pod(&pod_config, handler);
        // tail keeps a stream without newlines whole: 256 MiB against 32.
        let mut config =
            CriNode::container_config("hog", "head -c 268435456 /dev/zero | tail", &[]);
        if let Some(linux) = config.linux.as_mut() {
            linux.resources = Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 32 << 20,
                ..Default::default()
            });
        }
        let id = node.create(&pod, &pod_config, config);
        node.start_container(&id);
        let st = node.poll(&format!("{handler:?}: the hog never exited"), || {
            let (st, _) = node.status(&id);
            (st.state == i32::from(cri::ContainerState::ContainerExited)).then_some(st)
        });
        node.check(
            st.reason == "OOMKilled" && st.exit_code == 137,
            &format!("{handler:?}: the hog should be OOMKilled with 137: {st:?}"),
        );
        node.remove_container(&id);
        node.stop_pod(&pod);
        node.remove_pod(&pod);
    }
}

/// A handler with `SystemdCgroup = true` gets systemd cgroup paths, which
/// berth-runtime cannot place yet: RunPodSandbox fails with an error that
/// says so (docs/kubernetes.md), and the failed pod leaves nothing behind.
#[test]
fn cri_systemd_cgroup_handler_is_refused_clearly() {
    let Some(node) = CriNode::start("systemd", 7, Path::new(RUNTIME)) else {
        return;
    };
    let mut config = node.pod_config("sd");
    if let Some(linux) = config.linux.as_mut() {
        linux.cgroup_parent = "berth_cri.slice".to_string();
    }
    let result = node.call(
        "RunPodSandbox",
        node.rs().run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: "berth-systemd".to_string(),
        }),
    );
    match result {
        Ok(r) => node.check(
            false,
            &format!("RunPodSandbox with SystemdCgroup should fail: {r:?}"),
        ),
        Err(e) => node.check(
            e.message()
                .contains("the systemd cgroup driver is not supported yet"),
            &format!("the error should name the systemd cgroup driver: {e}"),
        ),
    }
    let pods = node.ok(
        "ListPodSandbox",
        node.rs()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }),
    );
    let state: Vec<_> = std::fs::read_dir(node.ctd.dir.join("berth-root").join(K8S_NS))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    node.check(
        pods.items.is_empty() && state.is_empty(),
        &format!(
            "the failed pod should leave nothing: pods {pods:?}, berth-runtime state {state:?}"
        ),
    );
    let out = node.ctd.sh(&format!(
        r#"ls /sys/class/net/{bridge}/brif 2>/dev/null | sed 's/^/port: /'
           {NETNS_MOUNTS}
           true"#,
        bridge = node.bridge
    ));
    node.ctd.check(
        out.code() == 0 && out.stdout.trim().is_empty(),
        &out,
        "the failed pod left a veth or a netns behind",
    );
}

/// The median of `xs` (sorted in place).
fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// RunPodSandbox + CreateContainer + StartContainer, berth vs runc,
/// interleaved; BERTH_CRI_ROUNDS rounds (default 5), BERTH_CRI_RUNTIME the
/// berth-runtime binary (bench/cri.sh passes the static release build).
#[test]
#[ignore = "a benchmark: bench/cri.sh runs it"]
fn cri_bench() {
    let rounds: usize = std::env::var("BERTH_CRI_ROUNDS")
        .ok()
        .map(|r| r.parse().expect("BERTH_CRI_ROUNDS: a number"))
        .unwrap_or(5);
    let berth = std::env::var_os("BERTH_CRI_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(RUNTIME));
    let Some(node) = CriNode::start("bench", 3, &berth) else {
        return;
    };
    // Per handler: the whole, then RunPodSandbox, CreateContainer and
    // StartContainer alone (where the runtime's share shows).
    let mut times: HashMap<(&str, usize), Vec<Duration>> = HashMap::new();
    // One warm-up round per handler, discarded.
    for round in 0..=rounds {
        let order = if round % 2 == 0 {
            [Handler::Berth, Handler::Runc]
        } else {
            [Handler::Runc, Handler::Berth]
        };
        for handler in order {
            let label = match handler {
                Handler::Berth => "berth",
                Handler::Runc => "runc",
            };
            let name = format!("bench-{round}-{label}");
            let pod_config = node.pod_config(&name);
            let config = CriNode::container_config("c", "exec sleep 3600", &[]);
            let t0 = Instant::now();
            let pod = node.run_pod(&pod_config, handler);
            let t1 = Instant::now();
            let c = node.create(&pod, &pod_config, config);
            let t2 = Instant::now();
            node.start_container(&c);
            let t3 = Instant::now();
            if round > 0 {
                for (phase, took) in [t3 - t0, t1 - t0, t2 - t1, t3 - t2].into_iter().enumerate() {
                    times.entry((label, phase)).or_default().push(took);
                }
            }
            node.stop_container(&c, 0);
            node.remove_container(&c);
            node.stop_pod(&pod);
            node.remove_pod(&pod);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (phase, what) in [
        "RunPodSandbox+CreateContainer+StartContainer",
        "  RunPodSandbox",
        "  CreateContainer",
        "  StartContainer",
    ]
    .into_iter()
    .enumerate()
    {
        let berth = median(times.get_mut(&("berth", phase)).expect("berth rounds"));
        let runc = median(times.get_mut(&("runc", phase)).expect("runc rounds"));
        println!(
            "cri: {what} over {rounds} rounds: berth {:.1} ms, runc {:.1} ms (median); berth/runc = {:.2}",
            ms(berth),
            ms(runc),
            berth.as_secs_f64() / runc.as_secs_f64()
        );
    }
}
