//! `kube generate`: pods and containers as Kubernetes YAML, built with
//! the API's types (so what is written is what a cluster reads).
//!
//! A pod is a v1 Pod of its name (label `app: <name>`, as podman writes);
//! a container outside a pod is a Pod named `<container>-pod`. Container
//! names lose the `<pod>-` prefix kube play gives them, so that playing
//! the YAML gives the same names back (podman keeps the prefix, and its
//! round trip names them `<pod>-<pod>-<container>`). What the image
//! already says (its entrypoint, cmd, environment, working directory) is
//! left out, as podman leaves it out. `--service` adds a NodePort Service
//! selecting the pod, for its published ports.

use std::collections::BTreeMap;

use berth_engine::config::Mount;
use berth_engine::{ContainerConfig, Engine, Record};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction,
    HostPathVolumeSource, PersistentVolumeClaimVolumeSource, Pod, PodSpec, Probe,
    ResourceRequirements, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::{EngineContext, Error, Result};

/// `kube generate`'s options.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// A NodePort Service for each pod's published ports.
    pub service: bool,
}

impl GenerateOptions {
    pub fn with_service(service: bool) -> GenerateOptions {
        GenerateOptions { service }
    }
}

/// The YAML of the pods and containers named by `keys` (pods first
/// looked up, then containers), one document each, Services first.
pub fn generate(engine: &Engine, keys: &[String], opts: &GenerateOptions) -> Result<String> {
    let mut pods = Vec::new();
    let mut services = Vec::new();
    for key in keys {
        let (pod, svc) = match engine.pod_find(key) {
            Ok(p) => {
                let s = engine.pod_summary(&p.id).during(|| format!("pod {key}"))?;
                let ports = engine.pod_ports(&p.id);
                let hostname =
                    (s.pod.config.hostname != s.pod.name).then(|| s.pod.config.hostname.clone());
                pod_of(
                    engine,
                    &s.pod.name,
                    &s.pod.config.labels,
                    hostname,
                    &s.members,
                    &ports,
                )?
            }
            Err(berth_engine::Error::NoSuchPod(_)) => {
                let r = match engine.find(key) {
                    Ok(r) => r,
                    // podman's words.
                    Err(berth_engine::Error::NoSuchContainer(_)) => {
                        return Err(Error::Invalid(format!("name or ID {key:?} not found")))
                    }
                    Err(e) => return Err(e).during(|| format!("container {key}")),
                };
                if !r.config.pod.is_empty() {
                    return Err(Error::Invalid(format!(
                        "container {} is in a pod: generate the pod instead",
                        r.name
                    )));
                }
                let (_, ports) = engine.network_state(&r.id);
                let name = format!("{}-pod", k8s_name(&r.name));
                let hostname = (r.config.hostname != r.id[..12]).then(|| r.config.hostname.clone());
                let compose = r.config.labels.get(COMPOSE_SERVICE).map(|s| k8s_name(s));
                let (pod, svc) = pod_of(
                    engine,
                    &name,
                    &BTreeMap::new(),
                    hostname,
                    std::slice::from_ref(&r),
                    &ports,
                )?;
                if let Some(service) = compose {
                    // A compose service's peers reach it by the service's
                    // name: a Service of that name keeps it so once
                    // played (the name resolves to the pod).
                    services.push(service_by_name(&service, &name, &r.config.exposed_ports));
                }
                (pod, svc)
            }
            Err(e) => return Err(e).during(|| format!("pod {key}")),
        };
        if opts.service {
            services.extend(svc);
        }
        pods.push(pod);
    }
    let mut docs = Vec::new();
    for s in &services {
        docs.push(serde_yaml_ng::to_string(s)?);
    }
    for p in &pods {
        docs.push(serde_yaml_ng::to_string(p)?);
    }
    Ok(docs.join("---\n"))
}

/// The label docker compose (and berth compose) gives a service's
/// containers.
const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// A Service named as a compose service, selecting the pod `pod`, for the
/// container's exposed ports (headless when it exposes none: a Service
/// with a cluster IP needs a port).
fn service_by_name(name: &str, pod: &str, exposed: &[String]) -> Service {
    let ports: Vec<ServicePort> = exposed
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let port: i32 = port.parse().ok()?;
            Some(ServicePort {
                name: Some(format!("{port}-{proto}")),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some(proto.to_ascii_uppercase()),
                ..ServicePort::default()
            })
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: ports.is_empty().then(|| "None".to_string()),
            selector: Some(BTreeMap::from([("app".to_string(), pod.to_string())])),
            ports: (!ports.is_empty()).then_some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A name Kubernetes takes for a container or volume (RFC 1123 label):
/// lower case, `-` for what else there is, 63 characters at most.
fn k8s_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// The image's config (what generate leaves out when the container says
/// the same).
fn image_config(engine: &Engine, r: &Record) -> Value {
    engine
        .images()
        .resolve(&r.image_id)
        .ok()
        .and_then(|img| engine.image_config(&img).ok())
        .unwrap_or(Value::Null)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// One pod document, and its Service when it publishes ports.
fn pod_of(
    engine: &Engine,
    name: &str,
    labels: &BTreeMap<String, String>,
    hostname: Option<String>,
    members: &[Record],
    ports: &[berth_network::PortMapping],
) -> Result<(Pod, Option<Service>)> {
    let mut labels = labels.clone();
    labels
        .entry("app".into())
        .or_insert_with(|| name.to_string());
    let mut volumes: Vec<Volume> = Vec::new();
    let mut containers = Vec::new();
    for (i, r) in members.iter().enumerate() {
        let ic = image_config(engine, r);
        let short = r.name.strip_prefix(&format!("{name}-")).unwrap_or(&r.name);
        let mut c = container_of(&r.config, &ic, &k8s_name(short), &mut volumes);
        if i == 0 {
            // The pod's published ports: on its first container, as a
            // cluster has them on the pod.
            let list: Vec<ContainerPort> = ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: i32::from(p.container_port),
                    host_port: Some(i32::from(p.host_port)),
                    host_ip: p.host_ip.map(|ip| ip.to_string()),
                    protocol: Some(p.proto.as_str().to_ascii_uppercase()),
                    ..ContainerPort::default()
                })
                .collect();
            if !list.is_empty() {
                c.ports = Some(list);
            }
        }
        containers.push(c);
    }
    let restart = members
        .first()
        .map(|r| match r.config.restart.name.as_str() {
            "always" | "unless-stopped" => "Always",
            "on-failure" => "OnFailure",
            _ => "Never",
        });
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            hostname,
            restart_policy: restart.map(str::to_string),
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    };
    let service = (!ports.is_empty()).then(|| Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            // The pod's own labels: a pod played from a Deployment keeps
            // its app label, which need not be its name.
            selector: Some(labels.clone()),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(format!("{}-{}", p.container_port, p.proto.as_str())),
                        port: i32::from(p.container_port),
                        target_port: Some(IntOrString::Int(i32::from(p.container_port))),
                        protocol: Some(p.proto.as_str().to_ascii_uppercase()),
                        // A cluster takes node ports of its range only
                        // (30000-32767 by default); outside it, one is
                        // chosen for it.
                        node_port: (30000..=32767)
                            .contains(&p.host_port)
                            .then_some(i32::from(p.host_port)),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    });
    Ok((pod, service))
}

/// One container; its mounts add to the pod's `volumes`.
fn container_of(
    cfg: &ContainerConfig,
    ic: &Value,
    name: &str,
    volumes: &mut Vec<Volume>,
) -> Container {
    let image_entrypoint = strings(&ic["Entrypoint"]);
    let image_cmd = strings(&ic["Cmd"]);
    let (command, args) = if cfg.entrypoint != image_entrypoint {
        // A new entrypoint drops the image's cmd: both are written.
        (
            Some(cfg.entrypoint.clone()),
            (!cfg.cmd.is_empty()).then(|| cfg.cmd.clone()),
        )
    } else if cfg.cmd != image_cmd {
        // args, not podman's command (which makes the program an
        // entrypoint): played again, it is the same container.
        (None, Some(cfg.cmd.clone()))
    } else {
        (None, None)
    };
    let image_env = strings(&ic["Env"]);
    let env: Vec<EnvVar> = cfg
        .env
        .iter()
        .filter(|e| !image_env.contains(e))
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            EnvVar {
                name: k.to_string(),
                value: Some(v.to_string()),
                value_from: None,
            }
        })
        .collect();
    let mut mounts = Vec::new();
    for m in &cfg.mounts {
        let vname = volume_for(m, volumes);
        mounts.push(VolumeMount {
            name: vname,
            mount_path: m.destination.clone(),
            read_only: m.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    let image_wd = ic["WorkingDir"].as_str().unwrap_or("");
    let mut limits = BTreeMap::new();
    if let Some(m) = cfg.resources.memory {
        limits.insert("memory".to_string(), Quantity(m.to_string()));
    }
    if let Some(n) = cfg.resources.nano_cpus {
        limits.insert("cpu".to_string(), Quantity(format!("{}m", n / 1_000_000)));
    }
    let (run_as_user, run_as_group) = numeric_user(&cfg.user, ic["User"].as_str().unwrap_or(""));
    let caps = (!cfg.cap_add.is_empty() || !cfg.cap_drop.is_empty()).then(|| Capabilities {
        add: (!cfg.cap_add.is_empty()).then(|| cfg.cap_add.clone()),
        drop: (!cfg.cap_drop.is_empty()).then(|| cfg.cap_drop.clone()),
    });
    let security = SecurityContext {
        capabilities: caps,
        privileged: cfg.privileged.then_some(true),
        read_only_root_filesystem: cfg.read_only.then_some(true),
        allow_privilege_escalation: cfg.no_new_privileges.then_some(false),
        run_as_user,
        run_as_group,
        ..SecurityContext::default()
    };
    let acts = !cfg.health_on_failure.is_none();
    let probe = |h: Option<&berth_engine::health::HealthConfig>| {
        h.filter(|h| {
            h.test
                .first()
                .is_some_and(|t| t == "CMD" || t == "CMD-SHELL")
        })
        .map(|h| {
            let command = if h.test[0] == "CMD" {
                h.test[1..].to_vec()
            } else {
                vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")]
            };
            let secs = |ns: u64| i32::try_from(ns / 1_000_000_000).ok().filter(|s| *s > 0);
            Probe {
                exec: Some(ExecAction {
                    command: Some(command),
                }),
                period_seconds: secs(h.interval_ns),
                timeout_seconds: secs(h.timeout_ns),
                failure_threshold: i32::try_from(h.retries).ok().filter(|r| *r > 0),
                initial_delay_seconds: secs(h.start_period_ns),
                ..Probe::default()
            }
        })
    };
    Container {
        name: name.to_string(),
        image: Some(cfg.image.clone()),
        command,
        args,
        env: (!env.is_empty()).then_some(env),
        working_dir: (!cfg.working_dir.is_empty() && cfg.working_dir != image_wd)
            .then(|| cfg.working_dir.clone()),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        security_context: (security != SecurityContext::default()).then_some(security),
        // The healthcheck is a livenessProbe when it acts on failure (kube
        // play's livenessProbe, --health-on-failure): what a kubelet does
        // with one. Without an action it only marks the container, which is
        // a readinessProbe's part (a compose or docker healthcheck, or kube
        // play's lone readinessProbe): played back, each keeps its part.
        liveness_probe: probe(cfg.health.as_ref().filter(|_| acts)),
        // The healthcheck without an action, or kube play's readinessProbe
        // beside a livenessProbe.
        readiness_probe: probe(
            cfg.readiness
                .as_ref()
                .or(cfg.health.as_ref().filter(|_| !acts)),
        ),
        tty: cfg.tty.then_some(true),
        stdin: cfg.open_stdin.then_some(true),
        ..Container::default()
    }
}

/// The pod volume for a mount (shared when two containers mount the same
/// source): a hostPath for a bind, a claim for a named volume, an
/// emptyDir for a tmpfs or an anonymous volume.
fn volume_for(m: &Mount, volumes: &mut Vec<Volume>) -> String {
    let anonymous = m.kind == "volume"
        && m.source.len() == 64
        && m.source.chars().all(|c| c.is_ascii_hexdigit());
    let mut v = Volume::default();
    match m.kind.as_str() {
        "bind" => {
            v.host_path = Some(HostPathVolumeSource {
                path: m.source.clone(),
                type_: None,
            });
        }
        "volume" if !anonymous => {
            v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                claim_name: m.source.clone(),
                read_only: None,
            });
        }
        "tmpfs" => {
            v.empty_dir = Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: None,
            });
        }
        _ => v.empty_dir = Some(EmptyDirVolumeSource::default()),
    }
    if let Some(found) = volumes.iter().find(|o| {
        o.host_path == v.host_path
            && o.persistent_volume_claim == v.persistent_volume_claim
            && v.empty_dir.is_none()
    }) {
        return found.name.clone();
    }
    let base = match m.kind.as_str() {
        "bind" => format!("{}-host", k8s_name(&m.source)),
        "volume" if !anonymous => k8s_name(&m.source),
        _ => format!("{}-empty", k8s_name(&m.destination)),
    };
    let mut name = base.clone();
    let mut n = 0;
    while volumes.iter().any(|o| o.name == name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    v.name = name.clone();
    volumes.push(v);
    name
}

/// `--user` as runAsUser/runAsGroup when numeric and not the image's.
fn numeric_user(user: &str, image_user: &str) -> (Option<i64>, Option<i64>) {
    if user.is_empty() || user == image_user {
        return (None, None);
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    (u.parse().ok(), g.parse().ok())
}
