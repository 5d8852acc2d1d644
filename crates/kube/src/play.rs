//! `kube play`: a file's workloads as pods, through the engine's calls;
//! `kube play --down`: those pods removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_engine::config::{Mount, Resources, RestartPolicy};
use berth_engine::health::{HealthConfig, OnFailure};
use berth_engine::pods::{PodConfig, PodCreateOptions, PortRedirect};
use berth_engine::readiness::ServiceHost;
use berth_engine::{ContainerConfig, Engine};
use berth_network::{PortSpec, Proto};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, PodSpec, Probe, Secret, Service, ServicePort, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::documents::{Document, Parsed};
use crate::{expansion, quantity, EngineContext, Error, Result};

/// `kube play`'s options.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlayOptions {
    /// Start the pods (`--start=false`: only create them).
    pub start: bool,
    /// Remove pods of the same names first instead of refusing.
    pub replace: bool,
}

impl Default for PlayOptions {
    fn default() -> PlayOptions {
        PlayOptions {
            start: true,
            replace: false,
        }
    }
}

/// A pod made by a play.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlayedPod {
    pub name: String,
    pub id: String,
    /// Its containers' ids (init containers not counted: they ran and
    /// are gone).
    pub containers: Vec<String>,
}

/// What a play did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PlayReport {
    pub pods: Vec<PlayedPod>,
    /// Named volumes of PersistentVolumeClaims (made if missing).
    pub volumes: Vec<String>,
    /// Fields ignored, one line each.
    pub warnings: Vec<String>,
}

/// What `--down` removed.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DownReport {
    /// The ids of the pods removed.
    pub pods: Vec<String>,
}

/// One pod to make: its name, labels and spec, and the restart policy
/// its kind implies when the spec names none.
struct Workload<'a> {
    name: String,
    labels: BTreeMap<String, String>,
    spec: &'a PodSpec,
    default_restart: &'static str,
    /// Which of a controller's pods (0 for the first): only the first
    /// takes a Service's nodePort, which one host port can give once.
    index: usize,
}

/// The pods a file asks for, named as podman names them.
fn workloads(parsed: &Parsed) -> Result<Vec<Workload<'_>>> {
    let mut out = Vec::new();
    for d in &parsed.documents {
        let (name, template, replicas, restart, kind) = match d {
            Document::Pod(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                let spec = p
                    .spec
                    .as_ref()
                    .ok_or_else(|| Error::Invalid(format!("Pod {name}: field spec is missing")))?;
                out.push(Workload {
                    labels: p.metadata.labels.clone().unwrap_or_default(),
                    name,
                    spec,
                    default_restart: "Always",
                    index: 0,
                });
                continue;
            }
            Document::Deployment(d) => {
                let s = d.spec.as_ref();
                let replicas = s.and_then(|s| s.replicas).unwrap_or(1);
                (
                    &d.metadata.name,
                    s.map(|s| &s.template),
                    replicas,
                    "Always",
                    "Deployment",
                )
            }
            Document::DaemonSet(d) => (
                &d.metadata.name,
                d.spec.as_ref().map(|s| &s.template),
                1,
                "Always",
                "DaemonSet",
            ),
            Document::Job(j) => (
                &j.metadata.name,
                j.spec.as_ref().map(|s| &s.template),
                1,
                "Never",
                "Job",
            ),
            _ => continue,
        };
        let name = name.clone().unwrap_or_default();
        let template = template.ok_or_else(|| {
            Error::Invalid(format!("{kind} {name}: field spec.template is missing"))
        })?;
        let spec = template.spec.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "{kind} {name}: field spec.template.spec is missing"
            ))
        })?;
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let replicas = usize::try_from(replicas).map_err(|_| {
            Error::Invalid(format!(
                "{kind} {name}: field spec.replicas: {replicas} is negative"
            ))
        })?;
        for i in 0..replicas {
            out.push(Workload {
                name: format!("{name}-pod-{i}"),
                labels: labels.clone(),
                spec,
                default_restart: restart,
                index: i,
            });
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for w in &out {
        if !seen.insert(w.name.as_str()) {
            return Err(Error::Invalid(format!(
                "two documents make pod {}: rename one",
                w.name
            )));
        }
    }
    Ok(out)
}

fn config_maps(parsed: &Parsed) -> BTreeMap<String, &ConfigMap> {
    parsed
        .documents
        .iter()
        .filter_map(|d| match d {
            Document::ConfigMap(c) => Some((c.metadata.name.clone().unwrap_or_default(), &**c)),
            _ => None,
        })
        .collect()
}

fn secrets(parsed: &Parsed) -> BTreeMap<String, &Secret> {
    parsed
        .documents
        .iter()
        .filter_map(|d| match d {
            Document::Secret(s) => Some((s.metadata.name.clone().unwrap_or_default(), &**s)),
            _ => None,
        })
        .collect()
}

fn services(parsed: &Parsed) -> Vec<&Service> {
    parsed
        .documents
        .iter()
        .filter_map(|d| match d {
            Document::Service(s) => Some(&**s),
            _ => None,
        })
        .collect()
}

/// A ConfigMap's entries as text (binaryData as bytes).
fn config_map_entries(c: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = c
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in c.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// A Secret's entries (data decoded from base64 by the types, stringData
/// over it as the API server merges them).
fn secret_entries(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// Whether the Service's selector picks a pod with these labels.
fn selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn proto(p: Option<&String>, at: &str) -> Result<Proto> {
    match p.map(String::as_str) {
        None | Some("TCP") => Ok(Proto::Tcp),
        Some("UDP") => Ok(Proto::Udp),
        Some(other) => Err(Error::Invalid(format!(
            "{at}: protocol {other} is not supported (TCP or UDP)"
        ))),
    }
}

fn port_u16(n: i32, at: &str) -> Result<u16> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Invalid(format!("{at}: {n} is not a port number")))
}

/// The ports published on the pod: the containers' hostPorts, and the
/// nodePorts of the Services that select it (on a controller's first pod).
fn published(w: &Workload<'_>, services: &[&Service]) -> Result<Vec<PortSpec>> {
    let mut out: Vec<PortSpec> = Vec::new();
    let spec_of = |host: u16, ctr: u16, proto: Proto| PortSpec {
        host_ip: None,
        host_port: host,
        host_port_end: host,
        container_port: ctr,
        proto,
    };
    for c in &w.spec.containers {
        for (i, p) in c.ports.iter().flatten().enumerate() {
            let at = format!("pod {}: container {}: ports[{i}]", w.name, c.name);
            if let Some(h) = p.host_port {
                let proto = proto(p.protocol.as_ref(), &at)?;
                out.push(spec_of(
                    port_u16(h, &at)?,
                    port_u16(p.container_port, &at)?,
                    proto,
                ));
            }
        }
    }
    if w.index > 0 {
        return Ok(out);
    }
    for svc in services.iter().filter(|s| selects(s, &w.labels)) {
        let sname = svc.metadata.name.clone().unwrap_or_default();
        for (i, p) in svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .enumerate()
        {
            let Some(node) = p.node_port else { continue };
            let at = format!("Service {sname}: spec.ports[{i}]");
            let target = target_port(w, p, &at)?;
            let proto = proto(p.protocol.as_ref(), &at)?;
            let host = port_u16(node, &at)?;
            if !out.iter().any(|o| o.host_port == host && o.proto == proto) {
                out.push(spec_of(host, target, proto));
            }
        }
    }
    Ok(out)
}

/// The port of the pod a Service port sends to: targetPort (a number, or
/// the name of a container's port), else port.
fn target_port(w: &Workload<'_>, p: &ServicePort, at: &str) -> Result<u16> {
    match &p.target_port {
        None => port_u16(p.port, at),
        Some(IntOrString::Int(n)) => port_u16(*n, at),
        Some(IntOrString::String(name)) => {
            let found = w
                .spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| cp.name.as_deref() == Some(name))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{at}: targetPort {name}: no container of pod {} has a port of that name",
                        w.name
                    ))
                })?;
            port_u16(found.container_port, at)
        }
    }
}

/// The Service ports a selected pod translates, `port` to targetPort, in
/// its network namespace: the Service's name resolves to the pod's
/// address (berth has no ClusterIP), and there `port` answers as a
/// ClusterIP's would.
fn redirects(w: &Workload<'_>, services: &[&Service]) -> Vec<PortRedirect> {
    let mut out: Vec<PortRedirect> = Vec::new();
    for svc in services.iter().filter(|s| selects(s, &w.labels)) {
        for p in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            // Unresolvable ones are warned about (service_warnings).
            let (Ok(target), Ok(port), Ok(proto)) = (
                target_port(w, p, ""),
                port_u16(p.port, ""),
                proto(p.protocol.as_ref(), ""),
            ) else {
                continue;
            };
            if target != port && !out.iter().any(|r| r.port == port && r.proto == proto) {
                out.push(PortRedirect {
                    port,
                    target,
                    proto,
                });
            }
        }
    }
    out
}

/// What a Service does not give inside the pods, said rather than lost:
/// its name resolves to a ready selected pod's address, where `port` is
/// translated to targetPort (see [`redirects`]) unless the pod is on the
/// host's network; a Service selecting no pod of the file resolves to
/// nothing.
fn service_warnings(svc: &Service, loads: &[Workload<'_>]) -> Vec<String> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let Some(w) = loads.iter().find(|w| selects(svc, &w.labels)) else {
        return vec![format!(
            "Service {name}: selects no pod of the file: its name resolves to nothing"
        )];
    };
    let mut out = Vec::new();
    for (i, p) in svc
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .enumerate()
    {
        let at = format!("Service {name}: spec.ports[{i}]");
        // A name no container has: Kubernetes takes it (the Service
        // just has no endpoint for it); so does berth, saying so.
        let target = match target_port(w, p, &at) {
            Ok(t) => t,
            Err(e) => {
                out.push(e.to_string());
                continue;
            }
        };
        if i32::from(target) != p.port && w.spec.host_network == Some(true) {
            out.push(format!(
                "{at}: port {} is not served inside the pods: {name} resolves to pod {}'s address, on the host's network, where targetPort {target} answers (berth has no ClusterIP to translate the port)",
                p.port, w.name
            ));
        }
    }
    out
}

/// Plays the file's documents; on failure the pods this play made are
/// removed again.
pub fn play(engine: &mut Engine, parsed: &Parsed, opts: &PlayOptions) -> Result<PlayReport> {
    let loads = workloads(parsed)?;
    let services = services(parsed);
    let cms = config_maps(parsed);
    let secs = secrets(parsed);
    let mut report = PlayReport {
        warnings: parsed.warnings.clone(),
        ..PlayReport::default()
    };
    for svc in &services {
        report.warnings.extend(service_warnings(svc, &loads));
    }
    for w in &loads {
        if let Ok(p) = engine.pod_find(&w.name) {
            if p.name != w.name {
                continue;
            }
            if !opts.replace {
                return Err(Error::Conflict(format!(
                    "pod {} already exists: use --replace, or kube play --down first",
                    w.name
                )));
            }
            remove_pod(engine, &w.name)?;
        }
    }
    for d in &parsed.documents {
        if let Document::PersistentVolumeClaim(c) = d {
            let name = c.metadata.name.clone().unwrap_or_default();
            engine
                .volumes()
                .create(Some(&name), &c.metadata.labels.clone().unwrap_or_default())
                .during(|| format!("PersistentVolumeClaim {name}: create volume {name}"))?;
            report.volumes.push(name);
        }
    }
    // The pods first (their addresses are what Services resolve to),
    // then their containers.
    let mut made: Vec<(String, String)> = Vec::new();
    let result = (|| -> Result<()> {
        for w in &loads {
            let host = w.spec.host_network == Some(true);
            let config = PodConfig {
                hostname: w.spec.hostname.clone().unwrap_or_default(),
                labels: w.labels.clone(),
                // hostNetwork: the host's own ports, nothing to publish.
                publish: if host {
                    Vec::new()
                } else {
                    published(w, &services)?
                },
                network: if host { "host".into() } else { String::new() },
                redirects: if host {
                    Vec::new()
                } else {
                    redirects(w, &services)
                },
                ..PodConfig::default()
            };
            let pod = engine
                .pod_create(&PodCreateOptions::new(Some(&w.name), config))
                .during(|| format!("create pod {}", w.name))?;
            made.push((w.name.clone(), pod.id));
        }
        let mut hosts = Vec::new();
        for svc in &services {
            let name = svc.metadata.name.clone().unwrap_or_default();
            let pods: Vec<String> = loads
                .iter()
                .zip(&made)
                .filter(|(w, _)| selects(svc, &w.labels))
                .map(|(_, (_, id))| id.clone())
                .filter(|id| engine.pod_ip(id).is_some())
                .collect();
            if !pods.is_empty() {
                // Its cluster DNS name too, as a pod in a cluster finds it
                // (the file's namespace, else "default"). Both lead to the
                // first selected pod that is ready, as a pod that is not
                // is out of its Services' endpoints.
                let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
                hosts.push(ServiceHost {
                    names: vec![name.clone(), format!("{name}.{ns}.svc.cluster.local")],
                    pods,
                });
            }
        }
        for (w, (_, pod_id)) in loads.iter().zip(&made) {
            let played = make_members(engine, w, pod_id, &hosts, &cms, &secs)?;
            report.pods.push(played);
        }
        if opts.start {
            for (w, p) in loads.iter().zip(&report.pods) {
                start_pod(engine, w, p)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (name, _) in &made {
            let _ = remove_pod(engine, name);
        }
        return Err(e);
    }
    Ok(report)
}

/// Removes a played pod: its containers, namespaces and the files kube
/// play wrote for it.
fn remove_pod(engine: &Engine, name: &str) -> Result<String> {
    let pod = engine
        .pod_remove(name, true)
        .during(|| format!("remove pod {name}"))?;
    let dir = files_dir(engine, name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Read {
            path: dir.display().to_string(),
            error: e,
        }),
        _ => Ok(pod.id),
    }
}

/// `kube play --down`: the pods the file makes, removed (a missing one is
/// no error). Named volumes stay, with their data, as podman keeps them.
pub fn down(engine: &Engine, parsed: &Parsed) -> Result<DownReport> {
    let mut report = DownReport::default();
    for w in workloads(parsed)? {
        if engine.pod_find(&w.name).is_ok_and(|p| p.name == w.name) {
            report.pods.push(remove_pod(engine, &w.name)?);
        }
    }
    Ok(report)
}

/// Where kube play writes a pod's ConfigMap, Secret and emptyDir volumes.
fn files_dir(engine: &Engine, pod: &str) -> PathBuf {
    engine.root().join("kube").join(pod)
}

/// The init containers and containers of one pod, created (not started).
fn make_members(
    engine: &mut Engine,
    w: &Workload<'_>,
    pod_id: &str,
    hosts: &[ServiceHost],
    cms: &BTreeMap<String, &ConfigMap>,
    secs: &BTreeMap<String, &Secret>,
) -> Result<PlayedPod> {
    let volumes = pod_volumes(engine, w, cms, secs)?;
    let restart = w
        .spec
        .restart_policy
        .as_deref()
        .unwrap_or(w.default_restart);
    let restart = match restart {
        "Always" => RestartPolicy::parse("always"),
        "OnFailure" => RestartPolicy::parse("on-failure"),
        "Never" => RestartPolicy::parse("no"),
        other => {
            return Err(Error::Invalid(format!(
                "pod {}: field spec.restartPolicy: {other} is not one of Always, OnFailure, Never",
                w.name
            )))
        }
    }
    .map_err(Error::Invalid)?;
    let mut ids = Vec::new();
    for (list, init) in [
        (
            w.spec.init_containers.iter().flatten().collect::<Vec<_>>(),
            true,
        ),
        (w.spec.containers.iter().collect(), false),
    ] {
        for c in list {
            let mut cfg = container_config(w, c, &volumes, cms, secs)?;
            cfg.pod = pod_id.to_string();
            cfg.service_hosts.extend(hosts.iter().cloned());
            if init {
                cfg.labels
                    .insert(berth_engine::pods::INIT_LABEL.into(), "once".into());
            } else {
                cfg.restart = restart.clone();
                // A failing liveness probe: the kubelet kills the
                // container and its restart policy decides (podman 4.3
                // restarts whatever the policy).
                if c.liveness_probe.is_some() {
                    cfg.health_on_failure = if restart.name == "no" {
                        OnFailure::Kill
                    } else {
                        OnFailure::Restart
                    };
                }
            }
            let name = format!("{}-{}", w.name, c.name);
            let r = engine
                .create(cfg, Some(&name))
                .during(|| format!("pod {}: create container {}", w.name, c.name))?;
            ids.push((init, r.id));
        }
    }
    Ok(PlayedPod {
        name: w.name.clone(),
        id: pod_id.to_string(),
        containers: ids
            .into_iter()
            .map(|(init, id)| if init { format!("init:{id}") } else { id })
            .collect(),
    })
}

/// Starts the pod: the engine runs its init containers first.
fn start_pod(engine: &Engine, w: &Workload<'_>, p: &PlayedPod) -> Result<()> {
    engine
        .pod_start(&p.id)
        .during(|| format!("start pod {}", w.name))?;
    Ok(())
}

/// What a pod volume is on the host: a directory kube play wrote (or a
/// tmpfs), a host path, or a named volume.
#[derive(Debug, Clone)]
enum Source {
    Dir(PathBuf),
    HostPath { path: String, create: bool },
    Named(String),
    Tmpfs(Option<u64>),
}

fn pod_volumes(
    engine: &Engine,
    w: &Workload<'_>,
    cms: &BTreeMap<String, &ConfigMap>,
    secs: &BTreeMap<String, &Secret>,
) -> Result<BTreeMap<String, Source>> {
    let mut out = BTreeMap::new();
    for (i, v) in w.spec.volumes.iter().flatten().enumerate() {
        let at = format!("pod {}: spec.volumes[{i}] ({})", w.name, v.name);
        // The name is a directory of the pod's files: Kubernetes' rule
        // (an RFC 1123 label) keeps it one plain component.
        let label = !v.name.is_empty()
            && v.name.len() <= 63
            && v.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !v.name.starts_with('-')
            && !v.name.ends_with('-');
        if !label {
            return Err(Error::Invalid(format!(
                "{at}: field name: {:?} is not a lower case RFC 1123 label",
                v.name
            )));
        }
        out.insert(v.name.clone(), volume_source(engine, w, v, &at, cms, secs)?);
    }
    Ok(out)
}

fn volume_source(
    engine: &Engine,
    w: &Workload<'_>,
    v: &Volume,
    at: &str,
    cms: &BTreeMap<String, &ConfigMap>,
    secs: &BTreeMap<String, &Secret>,
) -> Result<Source> {
    let dir = files_dir(engine, &w.name).join(&v.name);
    let write_entries = |entries: BTreeMap<String, Vec<u8>>,
                         items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
                         mode: Option<i32>|
     -> Result<Source> {
        let io = |e: std::io::Error, p: &Path| Error::Read {
            path: p.display().to_string(),
            error: e,
        };
        std::fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
        let chosen: Vec<(String, String, Option<i32>)> = match items {
            Some(items) => items
                .iter()
                .map(|k| (k.key.clone(), k.path.clone(), k.mode))
                .collect(),
            None => entries
                .keys()
                .map(|k| (k.clone(), k.clone(), None))
                .collect(),
        };
        for (key, path, item_mode) in chosen {
            let data = entries
                .get(&key)
                .ok_or_else(|| Error::Invalid(format!("{at}: key {key} is not in the object")))?;
            if path
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
            {
                return Err(Error::Invalid(format!(
                    "{at}: path {path:?} must be relative, without .."
                )));
            }
            let file = dir.join(&path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
            }
            std::fs::write(&file, data).map_err(|e| io(e, &file))?;
            let mode = item_mode.or(mode).unwrap_or(0o644);
            use std::os::unix::fs::PermissionsExt;
            let mode = u32::try_from(mode & 0o777).unwrap_or(0o644);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io(e, &file))?;
        }
        Ok(Source::Dir(dir.clone()))
    };
    if let Some(c) = &v.config_map {
        let optional = c.optional.unwrap_or(false);
        return match cms.get(&c.name) {
            Some(cm) => write_entries(config_map_entries(cm), c.items.as_ref(), c.default_mode),
            None if optional => write_entries(BTreeMap::new(), None, None),
            None => Err(Error::Invalid(format!(
                "{at}: configMap {} is not in the file",
                c.name
            ))),
        };
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional.unwrap_or(false);
        return match secs.get(&name) {
            Some(sec) => write_entries(secret_entries(sec), s.items.as_ref(), s.default_mode),
            None if optional => write_entries(BTreeMap::new(), None, None),
            None => Err(Error::Invalid(format!(
                "{at}: secret {name} is not in the file"
            ))),
        };
    }
    if let Some(e) = &v.empty_dir {
        if e.medium.as_deref() == Some("Memory") {
            let size = e
                .size_limit
                .as_ref()
                .map(|q| quantity::bytes(&q.0))
                .transpose()
                .map_err(|m| Error::Invalid(format!("{at}: emptyDir.sizeLimit: {m}")))?;
            return Ok(Source::Tmpfs(size.and_then(|s| u64::try_from(s).ok())));
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::Read {
            path: dir.display().to_string(),
            error: e,
        })?;
        return Ok(Source::Dir(dir));
    }
    if let Some(h) = &v.host_path {
        let kind = h.type_.as_deref().unwrap_or("");
        match kind {
            "" | "DirectoryOrCreate" => {}
            "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {
                if !Path::new(&h.path).exists() {
                    return Err(Error::Invalid(format!(
                        "{at}: hostPath {} ({kind}) does not exist",
                        h.path
                    )));
                }
            }
            "FileOrCreate" => {
                if !Path::new(&h.path).exists() {
                    std::fs::write(&h.path, b"").map_err(|e| Error::Read {
                        path: h.path.clone(),
                        error: e,
                    })?;
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "{at}: hostPath.type {other} is not a type Kubernetes knows"
                )))
            }
        }
        return Ok(Source::HostPath {
            path: h.path.clone(),
            create: matches!(kind, "" | "DirectoryOrCreate"),
        });
    }
    if let Some(c) = &v.persistent_volume_claim {
        engine
            .volumes()
            .create(Some(&c.claim_name), &BTreeMap::new())
            .during(|| format!("{at}: volume {}", c.claim_name))?;
        return Ok(Source::Named(c.claim_name.clone()));
    }
    Err(Error::Invalid(format!(
        "{at}: only configMap, secret, emptyDir, hostPath and persistentVolumeClaim volumes are supported"
    )))
}

/// One container's configuration from its spec.
fn container_config(
    w: &Workload<'_>,
    c: &Container,
    volumes: &BTreeMap<String, Source>,
    cms: &BTreeMap<String, &ConfigMap>,
    secs: &BTreeMap<String, &Secret>,
) -> Result<ContainerConfig> {
    let at = format!("pod {}: container {}", w.name, c.name);
    let image = c
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Error::Invalid(format!("{at}: field image is missing")))?;
    let mut cfg = ContainerConfig {
        image,
        ..ContainerConfig::default()
    };
    cfg.env = environment(&at, c, w, cms, secs)?;
    // Kubernetes: command replaces the entrypoint (and the image's cmd
    // with it), args the cmd; `$(VAR)` in them is the container's
    // variable, as the kubelet expands it.
    let expanded = |list: &Vec<String>| -> Vec<String> {
        list.iter()
            .map(|a| expansion::expand(a, |n| expansion::lookup_env(&cfg.env, n)))
            .collect()
    };
    if let Some(cmd) = &c.command {
        cfg.entrypoint_override = Some(expanded(cmd));
    }
    if let Some(args) = &c.args {
        cfg.cmd = expanded(args);
    }
    cfg.working_dir = c.working_dir.clone().unwrap_or_default();
    cfg.tty = c.tty.unwrap_or(false);
    cfg.open_stdin = c.stdin.unwrap_or(false);
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let proto = proto(p.protocol.as_ref(), &format!("{at}: ports[{i}]"))?;
        let port = port_u16(p.container_port, &format!("{at}: ports[{i}]"))?;
        cfg.exposed_ports.push(format!("{port}/{}", proto.as_str()));
    }
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mat = format!("{at}: volumeMounts[{i}]");
        let source = volumes.get(&m.name).ok_or_else(|| {
            Error::Invalid(format!("{mat}: volume {} is not in spec.volumes", m.name))
        })?;
        let read_only = m.read_only.unwrap_or(false);
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        if let Some(s) = sub {
            if s.starts_with('/') || s.split('/').any(|c| c == "..") {
                return Err(Error::Invalid(format!(
                    "{mat}: subPath {s:?} must be relative, without .."
                )));
            }
        }
        let mount = match source {
            Source::Dir(d) => Mount {
                kind: "bind".into(),
                source: sub.map_or(d.clone(), |s| d.join(s)).display().to_string(),
                destination: m.mount_path.clone(),
                read_only,
                ..Mount::default()
            },
            Source::HostPath { path, create } => Mount {
                kind: "bind".into(),
                source: sub
                    .map_or(PathBuf::from(path), |s| Path::new(path).join(s))
                    .display()
                    .to_string(),
                destination: m.mount_path.clone(),
                read_only,
                create_source: *create,
                ..Mount::default()
            },
            Source::Named(n) => {
                if sub.is_some() {
                    return Err(Error::Invalid(format!(
                        "{mat}: subPath of a persistentVolumeClaim is not supported"
                    )));
                }
                Mount {
                    kind: "volume".into(),
                    source: n.clone(),
                    destination: m.mount_path.clone(),
                    read_only,
                    ..Mount::default()
                }
            }
            Source::Tmpfs(size) => Mount {
                kind: "tmpfs".into(),
                destination: m.mount_path.clone(),
                options: size.map(|s| vec![format!("size={s}")]).unwrap_or_default(),
                ..Mount::default()
            },
        };
        cfg.mounts.push(mount);
    }
    cfg.resources = resources(&at, c)?;
    security(&mut cfg, w.spec, c);
    // The livenessProbe is the healthcheck (it acts on failure, see
    // make_members); a readinessProbe beside it is a second check that
    // only marks the container ready or not. Alone, the readinessProbe is
    // the healthcheck, with no action: `State.Health` shows it, and with
    // no action it counts as readiness (berth_engine::readiness).
    match (&c.liveness_probe, &c.readiness_probe) {
        (Some(l), r) => {
            cfg.health = Some(health(&at, l)?);
            cfg.readiness = r.as_ref().map(|r| health(&at, r)).transpose()?;
        }
        (None, Some(r)) => cfg.health = Some(health(&at, r)?),
        (None, None) => {}
    }
    if let Some(g) = w.spec.termination_grace_period_seconds {
        cfg.stop_timeout = u32::try_from(g).ok();
    }
    Ok(cfg)
}

/// env and envFrom: values, ConfigMap and Secret keys, the pod's name.
fn environment(
    at: &str,
    c: &Container,
    w: &Workload<'_>,
    cms: &BTreeMap<String, &ConfigMap>,
    secs: &BTreeMap<String, &Secret>,
) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    };
    for (i, f) in c.env_from.iter().flatten().enumerate() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let entries = if let Some(r) = &f.config_map_ref {
            match cms.get(&r.name) {
                Some(cm) => config_map_entries(cm),
                None if r.optional.unwrap_or(false) => BTreeMap::new(),
                None => {
                    return Err(Error::Invalid(format!(
                        "{at}: envFrom[{i}].configMapRef: configMap {} is not in the file",
                        r.name
                    )))
                }
            }
        } else if let Some(r) = &f.secret_ref {
            match secs.get(&r.name) {
                Some(s) => secret_entries(s),
                None if r.optional.unwrap_or(false) => BTreeMap::new(),
                None => {
                    return Err(Error::Invalid(format!(
                        "{at}: envFrom[{i}].secretRef: secret {} is not in the file",
                        r.name
                    )))
                }
            }
        } else {
            BTreeMap::new()
        };
        for (k, v) in entries {
            set(
                &mut env,
                format!("{prefix}{k}"),
                String::from_utf8_lossy(&v).into_owned(),
            );
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        let mut value = env_value(&format!("{at}: env[{i}] ({})", e.name), e, w, cms, secs)?;
        // A value may name the variables before it (`$(VAR)`); values
        // from ConfigMaps and Secrets are taken as they are.
        if e.value_from.is_none() {
            value = expansion::expand(&value, |n| {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.as_str())
            });
        }
        set(&mut env, e.name.clone(), value);
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn env_value(
    at: &str,
    e: &EnvVar,
    w: &Workload<'_>,
    cms: &BTreeMap<String, &ConfigMap>,
    secs: &BTreeMap<String, &Secret>,
) -> Result<String> {
    let Some(from) = &e.value_from else {
        return Ok(e.value.clone().unwrap_or_default());
    };
    if let Some(r) = &from.config_map_key_ref {
        let v = cms
            .get(&r.name)
            .and_then(|c| config_map_entries(c).remove(&r.key));
        return match v {
            Some(v) => Ok(String::from_utf8_lossy(&v).into_owned()),
            None if r.optional.unwrap_or(false) => Ok(String::new()),
            None => Err(Error::Invalid(format!(
                "{at}: valueFrom.configMapKeyRef: key {} of configMap {} is not in the file",
                r.key, r.name
            ))),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let v = secs
            .get(&r.name)
            .and_then(|s| secret_entries(s).remove(&r.key));
        return match v {
            Some(v) => Ok(String::from_utf8_lossy(&v).into_owned()),
            None if r.optional.unwrap_or(false) => Ok(String::new()),
            None => Err(Error::Invalid(format!(
                "{at}: valueFrom.secretKeyRef: key {} of secret {} is not in the file",
                r.key, r.name
            ))),
        };
    }
    if let Some(f) = &from.field_ref {
        return match f.field_path.as_str() {
            "metadata.name" => Ok(w.name.clone()),
            "metadata.namespace" => Ok("default".into()),
            other => Err(Error::Invalid(format!(
                "{at}: valueFrom.fieldRef.fieldPath {other} is not supported (metadata.name, metadata.namespace)"
            ))),
        };
    }
    Err(Error::Invalid(format!(
        "{at}: valueFrom: only configMapKeyRef, secretKeyRef and fieldRef are supported"
    )))
}

fn resources(at: &str, c: &Container) -> Result<Resources> {
    let mut r = Resources::default();
    let Some(req) = &c.resources else {
        return Ok(r);
    };
    let bad = |field: &str, m: String| Error::Invalid(format!("{at}: resources.{field}: {m}"));
    for (which, map) in [("limits", &req.limits), ("requests", &req.requests)] {
        for (k, q) in map.iter().flatten() {
            match (which, k.as_str()) {
                ("limits", "memory") => {
                    r.memory = Some(quantity::bytes(&q.0).map_err(|m| bad("limits.memory", m))?);
                }
                ("limits", "cpu") => {
                    r.nano_cpus =
                        Some(quantity::nano_cpus(&q.0).map_err(|m| bad("limits.cpu", m))?);
                }
                ("requests", "memory") => {
                    r.memory_reservation =
                        Some(quantity::bytes(&q.0).map_err(|m| bad("requests.memory", m))?);
                }
                ("requests", "cpu") => {
                    // The kubelet's conversion: 1 CPU is 1024 shares.
                    let n = quantity::nano_cpus(&q.0).map_err(|m| bad("requests.cpu", m))?;
                    r.cpu_shares =
                        Some(u64::try_from((n * 1024 / 1_000_000_000).max(2)).unwrap_or(2));
                }
                (_, "ephemeral-storage") => {}
                (w, other) => {
                    return Err(bad(
                        &format!("{w}.{other}"),
                        "only cpu, memory and ephemeral-storage are supported".into(),
                    ))
                }
            }
        }
    }
    Ok(r)
}

/// securityContext: the pod's user and group as defaults, the container's
/// over them.
fn security(cfg: &mut ContainerConfig, spec: &PodSpec, c: &Container) {
    let pod = spec.security_context.as_ref();
    let ctr = c.security_context.as_ref();
    let user = ctr
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|s| s.run_as_user));
    let group = ctr
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|s| s.run_as_group));
    cfg.user = match (user, group) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, Some(g)) => format!("0:{g}"),
        (None, None) => String::new(),
    };
    if let Some(groups) = pod.and_then(|s| s.supplemental_groups.as_ref()) {
        cfg.group_add = groups.iter().map(i64::to_string).collect();
    }
    let Some(s) = ctr else { return };
    cfg.privileged = s.privileged.unwrap_or(false);
    cfg.read_only = s.read_only_root_filesystem.unwrap_or(false);
    cfg.no_new_privileges = s.allow_privilege_escalation == Some(false);
    if let Some(caps) = &s.capabilities {
        cfg.cap_add = caps.add.clone().unwrap_or_default();
        cfg.cap_drop = caps.drop.clone().unwrap_or_default();
    }
}

/// `s` as one word of a POSIX shell command line.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A probe as a healthcheck: exec as the command itself, httpGet and
/// tcpSocket through wget and nc in the container (busybox's or Debian's).
fn health(at: &str, p: &Probe) -> Result<HealthConfig> {
    let port = |v: &IntOrString| match v {
        IntOrString::Int(n) => Ok(n.to_string()),
        IntOrString::String(s) => Err(Error::Invalid(format!(
            "{at}: probe port {s}: named ports are not supported in probes; give the number"
        ))),
    };
    let test = if let Some(e) = &p.exec {
        let mut t = vec!["CMD".to_string()];
        t.extend(e.command.iter().flatten().cloned());
        t
    } else if let Some(h) = &p.http_get {
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let host = h.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let port = port(&h.port)?;
        let url = sh_quote(&format!("{scheme}://{host}:{port}{path}"));
        // Without wget (Debian's minbase has none), plain HTTP through
        // bash's /dev/tcp, a status of 200-399 passing as the kubelet's
        // does: a livenessProbe restarts the container, so a missing tool
        // must not read as a failing server.
        let request = sh_quote(&format!(
            "exec 3<>/dev/tcp/{host}/{port} && printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$0\" \"$1\" >&3 && read -r v code rest <&3 && [ \"$code\" -ge 200 ] && [ \"$code\" -lt 400 ]"
        ));
        let fallback = if scheme == "http" {
            format!(
                "bash -c {request} {} {} 2>/dev/null",
                sh_quote(&path),
                sh_quote(&host)
            )
        } else {
            "false".to_string()
        };
        vec![
            "CMD-SHELL".into(),
            format!(
                "if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null {url}; else {fallback}; fi || exit 1"
            ),
        ]
    } else if let Some(t) = &p.tcp_socket {
        let host = t.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = port(&t.port)?;
        vec![
            "CMD-SHELL".into(),
            // Connects and ends at once (stdin is empty): busybox's nc
            // has no -z, this form works with it and with netcat. An image
            // without nc (Debian's minbase has none) is checked with
            // bash's /dev/tcp: a livenessProbe restarts the container, so
            // a missing tool must not pass for a closed port.
            format!(
                "if command -v nc >/dev/null 2>&1; then nc -w 1 {host} {port} </dev/null >/dev/null 2>&1; \
                 else bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; fi || exit 1"
            ),
        ]
    } else {
        return Err(Error::Invalid(format!(
            "{at}: probe: only exec, httpGet and tcpSocket are supported"
        )));
    };
    let secs = |v: Option<i32>, default: i32| {
        u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0) * 1_000_000_000
    };
    Ok(HealthConfig {
        test,
        interval_ns: secs(p.period_seconds, 10),
        timeout_ns: secs(p.timeout_seconds, 1),
        retries: u32::try_from(p.failure_threshold.unwrap_or(3)).unwrap_or(3),
        start_period_ns: secs(p.initial_delay_seconds, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Runs a probe's CMD-SHELL with only bash on PATH (an image without
    /// nc or wget, as Debian's minbase is) and returns whether it passed.
    fn passes_with_only_bash(probe: &Probe) -> bool {
        let bash = ["/bin/bash", "/usr/bin/bash"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("bash is installed");
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(bash, dir.path().join("bash")).unwrap();
        let test = health("test", probe).unwrap().test;
        assert_eq!(test[0], "CMD-SHELL");
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&test[1])
            .env("PATH", dir.path())
            .status()
            .unwrap()
            .success()
    }

    /// A one-request HTTP server answering `status`, on a free port.
    fn http_once(status: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes());
            String::from_utf8_lossy(&req).into_owned()
        });
        (port, t)
    }

    fn http_probe(port: u16, path: &str) -> Probe {
        serde_json::from_value(serde_json::json!({
            "httpGet": {"port": port, "path": path}
        }))
        .unwrap()
    }

    #[test]
    fn http_probes_without_wget_read_the_status_as_the_kubelet_does() {
        for (status, pass) in [
            ("200 OK", true),
            ("302 Found", true),
            ("404 Not Found", false),
            ("500 Oops", false),
        ] {
            let (port, server) = http_once(status);
            assert_eq!(
                passes_with_only_bash(&http_probe(port, "/it's here")),
                pass,
                "{status}"
            );
            let req = server.join().unwrap();
            assert!(req.starts_with("GET /it's here HTTP/1.0\r\n"), "{req:?}");
        }
    }

    #[test]
    fn tcp_probes_without_nc_connect_with_bash() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let probe: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": port}})).unwrap();
        assert!(passes_with_only_bash(&probe));
        drop(l);
        assert!(!passes_with_only_bash(&probe), "a closed port passed");
    }
}
