//! Pods: containers sharing the network, IPC and UTS namespaces of a pod
//! (`berth pod ...`, `run --pod`, `kube play`).
//!
//! How the shared namespaces are held, without a process per pod: podman
//! keeps an infra container (a `pause`/catatonit process and its conmon)
//! running for each pod, because a namespace lives only as long as
//! something refers to it. A reference need not be a process: a bind
//! mount of `/proc/<tid>/ns/<type>` onto a file holds the namespace too
//! (this is how `ip netns add` keeps network namespaces). So a pod's
//! namespaces are made once by a short-lived thread (it unshares them,
//! sets the pod's hostname and brings loopback up, and each is
//! bind-mounted to `RUNROOT/pods/<id>/{net,ipc,uts}`), the thread ends,
//! and the pod's network endpoint (veth, lease, published ports) is
//! attached to the mounted `net` file. Members join through those files
//! (the spec's namespace paths). Nothing runs between commands: a pod
//! costs no memory and no process, and `pod rm` unmounts the files and
//! releases the endpoint. The files are on the run directory (tmpfs):
//! after a reboot they are gone, and the next start of a member makes them
//! again ([`Engine::pod_namespaces`], under the pod's lock). `system check`
//! releases what a killed command left (files of pods with no row).
//!
//! A pid namespace cannot be held this way (it dies with its first
//! process), so `--share pid` is refused: that would need a resident
//! process, which is what this design avoids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::inspect::types::{PodInfraConfig, PodInspect, PodMember, PortBinding};

use crate::error::Context;
use crate::{ContainerConfig, Engine, Error, Record, Result, Status};

/// The namespaces a pod may share, in podman's names (`--share`).
pub const SHAREABLE: [&str; 3] = ["net", "ipc", "uts"];

/// The label of a pod's init containers: `pod start` runs them first, to
/// completion, and removes them.
pub const INIT_LABEL: &str = "berth.pod.init";

/// How long an init container may run.
const INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The file of a pod's run directory naming the store it belongs to.
const OWNER: &str = "root";

/// The nsfs magic number (statfs's f_type of a mounted namespace file).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// What a pod is made with: `pod create`'s options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PodConfig {
    /// The members' hostname (default: the pod's name).
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    /// The namespaces the members share (default net, ipc, uts).
    pub share: Vec<String>,
    /// The pod's network: "bridge" (the default), a user network, "none"
    /// (loopback only) or "host" (no network namespace of its own).
    pub network: String,
    /// More names the pod answers to on a user network.
    pub network_aliases: Vec<String>,
    /// `-p`: published on the pod's address, reaching any member.
    pub publish: Vec<berth_network::PortSpec>,
    /// `--add-host` entries of every member's /etc/hosts.
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    /// `--userns` as given ("" for the host's default, see crate::userns).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub userns: String,
    /// The pod's own user namespace (taken at create, its range held
    /// under the pod's id): it owns the pod's other namespaces, and every
    /// member runs in it. None: the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_map: Option<crate::userns::IdMap>,
    /// Ports translated in the pod's network namespace (kube play's
    /// Services whose port differs from their targetPort).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<PortRedirect>,
    /// `--shm-size`: the members' shared /dev/shm (0: 64 MiB).
    #[serde(skip_serializing_if = "is_zero")]
    pub shm_size: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A Service port as a ClusterIP would serve it, for the pod a Service's
/// name resolves to: what reaches the pod's address on `port` (from its
/// peers, or from its own members) goes to `target`. A rule in the pod's
/// own network namespace, so it goes with the namespace and is made again
/// with it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortRedirect {
    pub port: u16,
    pub target: u16,
    pub proto: berth_network::Proto,
}

impl PodConfig {
    /// Whether the members share namespace `ns` ("net", "ipc", "uts").
    pub fn shares(&self, ns: &str) -> bool {
        if ns == "net" && self.network == "host" {
            return false;
        }
        self.share.iter().any(|s| s == ns)
    }
}

/// A pod's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub id: String,
    pub name: String,
    pub created: String,
    pub config: PodConfig,
}

/// `pod create`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PodCreateOptions {
    /// The pod's name (default: a generated one).
    pub name: Option<String>,
    pub config: PodConfig,
}

impl PodCreateOptions {
    pub fn new(name: Option<&str>, config: PodConfig) -> PodCreateOptions {
        PodCreateOptions {
            name: name.map(str::to_string),
            config,
        }
    }
}

/// A pod with its members, as `pod ls` and `pod inspect` show it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PodSummary {
    pub pod: Pod,
    /// Its containers, oldest first.
    pub members: Vec<Record>,
}

impl PodSummary {
    /// Podman's pod status: Created (nothing ran), Running (all members
    /// run), Degraded (some do), Exited (none does any more).
    pub fn status(&self) -> &'static str {
        let running = self
            .members
            .iter()
            .filter(|r| matches!(r.status, Status::Running | Status::Restarting))
            .count();
        let paused = self
            .members
            .iter()
            .filter(|r| r.status == Status::Paused)
            .count();
        let created = self
            .members
            .iter()
            .filter(|r| matches!(r.status, Status::Created | Status::Starting))
            .count();
        let n = self.members.len();
        if n == 0 || created == n {
            "Created"
        } else if running == n {
            "Running"
        } else if paused == n {
            "Paused"
        } else if running + paused > 0 {
            "Degraded"
        } else {
            "Exited"
        }
    }

    /// Podman's `pod inspect` document.
    pub fn inspect(&self, ports: &[berth_network::PortMapping]) -> PodInspect {
        let c = &self.pod.config;
        let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        for p in ports {
            bindings
                .entry(format!("{}/{}", p.container_port, p.proto.as_str()))
                .or_default()
                .push(PortBinding {
                    host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    host_port: p.host_port.to_string(),
                });
        }
        PodInspect {
            id: self.pod.id.clone(),
            name: self.pod.name.clone(),
            created: self.pod.created.clone(),
            state: self.status().to_string(),
            hostname: c.hostname.clone(),
            labels: c.labels.clone(),
            create_infra: false,
            infra_config: PodInfraConfig {
                port_bindings: bindings,
                host_network: c.network == "host",
                networks: vec![c.network.clone()],
                host_add: c.extra_hosts.clone(),
                dns_server: c.dns.clone(),
                ip_address: None,
            },
            shared_namespaces: c.share.clone(),
            num_containers: self.members.len(),
            containers: self
                .members
                .iter()
                .map(|r| PodMember {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    state: r.status.as_str().to_string(),
                })
                .collect(),
        }
    }
}

/// The words podman uses for a pod that does not exist.
fn no_such_pod(key: &str) -> Error {
    Error::NoSuchPod(key.to_string())
}

/// The mode string a member's config carries for a namespace it shares
/// with its pod: `pod:<id>`.
pub fn mode_of(pod_id: &str) -> String {
    format!("pod:{pod_id}")
}

/// The pod a namespace mode names (`pod:<id>`), if any.
pub fn pod_of_mode(mode: &str) -> Option<&str> {
    mode.strip_prefix("pod:")
}

impl Engine {
    fn pods_dir(&self) -> PathBuf {
        self.runroot.join("pods")
    }

    /// Where the pod's namespace files are.
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.pods_dir().join(id)
    }

    /// `pod create`: the row, then the namespaces and the network; nothing
    /// is left behind on failure.
    pub fn pod_create(&self, opts: &PodCreateOptions) -> Result<Pod> {
        let mut config = opts.config.clone();
        if config.share.is_empty() {
            config.share = SHAREABLE.iter().map(|s| (*s).to_string()).collect();
        }
        for s in &config.share {
            if s == "pid" {
                return Err(Error::InvalidOption(
                    "--share pid: a pid namespace lives only as long as its first process, and \
                     berth's pods keep no process; share net, ipc and uts"
                        .into(),
                ));
            }
            if !SHAREABLE.contains(&s.as_str()) {
                return Err(Error::InvalidOption(format!(
                    "--share {s}: unknown namespace (one of net, ipc, uts)"
                )));
            }
        }
        if config.network.is_empty() {
            config.network = "bridge".into();
        }
        if !config.shares("net") && !config.publish.is_empty() {
            return Err(Error::InvalidOption(
                "published ports need the pod to share its network namespace (--share net) on a bridge network".into(),
            ));
        }
        if matches!(config.network.as_str(), "none") && !config.publish.is_empty() {
            return Err(Error::InvalidOption(
                "conflicting options: port publishing and the pod's network mode (none)".into(),
            ));
        }
        crate::networking::extra_hosts(&config.extra_hosts)?;
        if saferoot::idmap::in_unprivileged_user_namespace()
            && config.shares("net")
            && !matches!(config.network.as_str(), "none" | "host")
        {
            // Its namespace would need pasta or the rootless network
            // namespace's bridges (and a forwarder for its ports): not built.
            return Err(Error::InvalidOption(format!(
                "a pod on network {} is not supported rootless yet: give it --network none or \
                 host, or run its containers on a user network without a pod",
                config.network
            )));
        }
        if !matches!(config.network.as_str(), "bridge" | "none" | "host") {
            self.networks.get(&config.network)?;
        }
        let id = crate::random_id();
        let name = match &opts.name {
            Some(n) => {
                crate::names::validate(n)?;
                n.clone()
            }
            None => crate::names::generate(|n| self.pod_row(n).ok().flatten().is_some()),
        };
        if config.hostname.is_empty() {
            config.hostname = name.clone();
        }
        // podman's `pod create --userns`: the members' user namespace.
        let mode = crate::userns::Mode::parse(&config.userns)?;
        let mut pod = Pod {
            id,
            name,
            created: crate::now(),
            config,
        };
        match mode {
            crate::userns::Mode::Host => self.insert_pod(&pod)?,
            crate::userns::Mode::Private { size } => {
                // The range and the row in one IMMEDIATE transaction, as a
                // container's (two creates never take the same ids).
                let conn = self.db.connection();
                let tx = crate::userns::begin(&conn)?;
                let pool = crate::userns::Pool::of_host()?;
                pod.config.id_map = Some(crate::userns::allocate(&tx, &pod.id, size, &pool)?);
                self.insert_pod(&pod)?;
                tx.commit()?;
            }
        }
        if let Err(e) = self.pod_namespaces(&pod) {
            let _ = self.release_pod(&pod);
            let _ = self.delete_pod_row(&pod.id);
            return Err(e);
        }
        self.db
            .event("pod", "create", &pod.id, &[("name", pod.name.as_str())]);
        Ok(pod)
    }

    fn insert_pod(&self, pod: &Pod) -> Result<()> {
        let config = serde_json::to_string(&pod.config).map_err(|source| Error::Encode {
            what: "pod config",
            source,
        })?;
        let res = self.db.connection().execute(
            "INSERT INTO pods (id, name, created, config) VALUES (?1, ?2, ?3, ?4)",
            params![pod.id, pod.name, pod.created, config],
        );
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(Error::Conflict(format!(
                    "adding pod to state: name \"{}\" is in use: pod already exists",
                    pod.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn delete_pod_row(&self, id: &str) -> Result<()> {
        self.db
            .connection()
            .execute("DELETE FROM pods WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// The pod of this exact id or name.
    fn pod_row(&self, key: &str) -> Result<Option<Pod>> {
        let conn = self.db.connection();
        let row = conn
            .query_row(
                "SELECT id, name, created, config FROM pods WHERE id = ?1 OR name = ?1",
                params![key],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(pod_from).transpose()
    }

    /// Every pod, newest first.
    pub fn pods(&self) -> Result<Vec<Pod>> {
        let conn = self.db.connection();
        let mut stmt = conn.prepare(
            "SELECT id, name, created, config FROM pods ORDER BY created DESC, rowid DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(pod_from).collect()
    }

    /// A pod by id, name or unique id prefix.
    pub fn pod_find(&self, key: &str) -> Result<Pod> {
        if key.is_empty() {
            return Err(no_such_pod(key));
        }
        if let Some(p) = self.pod_row(key)? {
            return Ok(p);
        }
        if !key.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(no_such_pod(key));
        }
        let mut found: Vec<Pod> = self
            .pods()?
            .into_iter()
            .filter(|p| p.id.starts_with(&key.to_ascii_lowercase()))
            .collect();
        match found.len() {
            0 => Err(no_such_pod(key)),
            1 => Ok(found.remove(0)),
            _ => Err(Error::InvalidOption(format!(
                "more than one result for pod ID {key}"
            ))),
        }
    }

    /// The name of a pod on network `net` (`network rm` refuses then).
    pub fn pod_on_network(&self, net: &berth_network::Network) -> Result<Option<String>> {
        Ok(self
            .pods()?
            .into_iter()
            .find(|p| p.config.network == net.name || p.config.network == net.id)
            .map(|p| p.name))
    }

    /// Whether a pod of this id exists (`system check` keeps its lease).
    pub fn pod_exists(&self, id: &str) -> bool {
        self.pod_row(id).ok().flatten().is_some_and(|p| p.id == id)
    }

    /// The pod's containers, oldest first, each reconciled.
    pub fn pod_members(&self, pod_id: &str) -> Result<Vec<Record>> {
        let mut members: Vec<Record> = self
            .list()?
            .into_iter()
            .filter(|r| r.config.pod == pod_id)
            .collect();
        members.reverse();
        Ok(members)
    }

    /// The pod and its members.
    pub fn pod_summary(&self, key: &str) -> Result<PodSummary> {
        let pod = self.pod_find(key)?;
        let members = self.pod_members(&pod.id)?;
        Ok(PodSummary { pod, members })
    }

    /// Every pod with its members, newest first.
    pub fn pod_list(&self) -> Result<Vec<PodSummary>> {
        let all = self.list()?;
        Ok(self
            .pods()?
            .into_iter()
            .map(|pod| {
                let mut members: Vec<Record> = all
                    .iter()
                    .filter(|r| r.config.pod == pod.id)
                    .cloned()
                    .collect();
                members.reverse();
                PodSummary { pod, members }
            })
            .collect())
    }

    /// `pod inspect`: podman's document.
    pub fn pod_inspect(&self, key: &str) -> Result<PodInspect> {
        let s = self.pod_summary(key)?;
        let ports = self.networks.ports(&s.pod.id).unwrap_or_default();
        let mut doc = s.inspect(&ports);
        doc.infra_config.ip_address = self.pod_ip(&s.pod.id).map(|ip| ip.to_string());
        Ok(doc)
    }

    /// The pod's address on its network (none for none and host).
    pub fn pod_ip(&self, pod_id: &str) -> Option<std::net::Ipv4Addr> {
        self.networks.endpoints(pod_id).ok()?.first().map(|e| e.ip)
    }

    /// The published ports of the pod.
    pub fn pod_ports(&self, pod_id: &str) -> Vec<berth_network::PortMapping> {
        self.networks.ports(pod_id).unwrap_or_default()
    }

    /// Makes `cfg` a member of its pod (`cfg.pod`, a key): the shared
    /// namespaces' modes, the pod's hostname and hosts. Options that
    /// belong to the pod are refused, in podman's words.
    pub(crate) fn join_pod(&self, cfg: &mut ContainerConfig) -> Result<()> {
        let pod = self.pod_find(&cfg.pod)?;
        let c = &pod.config;
        if c.shares("net") {
            if !cfg.publish.is_empty() || cfg.publish_all {
                return Err(Error::InvalidOption(
                    "invalid config provided: published or exposed ports must be defined when the pod is created: network cannot be configured when it is shared with a pod".into(),
                ));
            }
            if !matches!(cfg.network.as_str(), "" | "bridge" | "default")
                || !cfg.extra_networks.is_empty()
                || cfg.ip.is_some()
                || cfg.mac_address.is_some()
                || !cfg.network_aliases.is_empty()
            {
                return Err(Error::InvalidOption(
                    "invalid config provided: networks must be defined when the pod is created: network cannot be configured when it is shared with a pod".into(),
                ));
            }
            cfg.network = mode_of(&pod.id);
        } else if c.network == "host" && matches!(cfg.network.as_str(), "" | "bridge" | "default") {
            cfg.network = "host".into();
        }
        for (ns, mode) in [("ipc", &mut cfg.ipc_mode), ("uts", &mut cfg.uts_mode)] {
            if c.shares(ns) {
                if !mode.is_empty() {
                    return Err(Error::InvalidOption(format!(
                        "invalid config provided: --{ns} cannot be set when the pod shares its {ns} namespace"
                    )));
                }
                *mode = mode_of(&pod.id);
            }
        }
        if c.shares("uts") {
            if !cfg.hostname.is_empty() && cfg.hostname != c.hostname {
                return Err(Error::InvalidOption(
                    "invalid config provided: cannot set hostname when joining the pod UTS namespace".into(),
                ));
            }
            cfg.hostname = c.hostname.clone();
        }
        for h in &c.extra_hosts {
            if !cfg.extra_hosts.contains(h) {
                cfg.extra_hosts.push(h.clone());
            }
        }
        if cfg.dns.is_empty() {
            cfg.dns = c.dns.clone();
        }
        cfg.pod = pod.id;
        Ok(())
    }

    /// The path of the pod's namespace file `ns`, the namespaces made
    /// first if they are not there (a reboot emptied the run directory).
    pub(crate) fn pod_namespace_path(&self, pod_id: &str, ns: &str) -> Result<String> {
        let pod = self.pod_find(pod_id)?;
        self.pod_namespaces(&pod)?;
        Ok(self
            .pod_dir(&pod.id)
            .join(ns)
            .to_string_lossy()
            .into_owned())
    }

    /// Makes sure the pod's namespaces exist (mounted files) and its
    /// network endpoint is attached; made again whole when one is missing.
    /// Under the pod's lock: two members starting at once make them once.
    pub fn pod_namespaces(&self, pod: &Pod) -> Result<()> {
        let dir = self.pod_dir(&pod.id);
        saferoot::private::private_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        // Run directories may be shared by several stores: whose pod this
        // is, for `system check`.
        let owner = dir.join(OWNER);
        if !owner.exists() {
            std::fs::write(&owner, self.root.as_os_str().as_encoded_bytes())
                .ctx(|| format!("write {}", owner.display()))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .ctx(|| format!("open {}", dir.join("lock").display()))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, e)| Error::Sys {
                context: format!("lock pod {}", pod.name),
                source: e,
            },
        )?;
        let kinds: Vec<&str> = SHAREABLE
            .iter()
            .copied()
            .filter(|ns| pod.config.shares(ns))
            .collect();
        let complete = kinds.iter().all(|ns| is_namespace_file(&dir.join(ns)))
            && (pod.config.id_map.is_none() || is_namespace_file(&dir.join("user")))
            && (!kinds.contains(&"net")
                || matches!(pod.config.network.as_str(), "none")
                || self.pod_ip(&pod.id).is_some());
        if complete {
            // The /dev/shm of a pod made before pods had one is added on
            // its own: members running in its namespaces keep them.
            if kinds.contains(&"ipc") && !is_mount_point(&dir.join(SHM)) {
                mount_shm(&dir.join(SHM), shm_size(&pod.config))?;
            }
            return Ok(());
        }
        // Half there (a killed create, a reboot): made again from nothing.
        self.networks.detach(&pod.id, false)?;
        unmount_namespaces(&dir);
        make_namespaces(
            &dir,
            &kinds,
            &pod.config.hostname,
            pod.config.id_map.as_ref(),
        )?;
        if kinds.contains(&"ipc") {
            // A new IPC namespace: a new /dev/shm with it.
            mount_shm(&dir.join(SHM), shm_size(&pod.config))?;
        }
        if kinds.contains(&"net") && pod.config.network != "none" {
            let net = self.networks.get(&pod.config.network)?;
            let netns = dir.join("net");
            self.networks.attach(&berth_network::Attach {
                container_id: &pod.id,
                name: &pod.name,
                pid: 0,
                netns: Some(&netns),
                networks: vec![(
                    net,
                    berth_network::EndpointConfig {
                        aliases: pod.config.network_aliases.clone(),
                        ip: None,
                        mac: None,
                    },
                )],
                ports: &pod.config.publish,
                held: false,
            })?;
            if let (false, Some(ip)) = (pod.config.redirects.is_empty(), self.pod_ip(&pod.id)) {
                redirect_ports(&dir.join("net"), ip, &pod.config.redirects)?;
            }
        }
        Ok(())
    }

    /// Releases what the pod holds: its endpoint (veth, lease, ports) and
    /// its namespace files.
    fn release_pod(&self, pod: &Pod) -> Result<()> {
        self.networks.detach(&pod.id, false)?;
        let dir = self.pod_dir(&pod.id);
        unmount_namespaces(&dir);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// A pod member's /etc/hosts (rewritten in place: the bind mount holds
    /// its inode): the pod's address with its names, the member's
    /// `--add-host`s and its kube Services' names (see crate::readiness;
    /// `gone` is a member that is ending). Returns the pod.
    pub(crate) fn write_pod_member_hosts(
        &self,
        r: &Record,
        pod_id: &str,
        gone: Option<&str>,
    ) -> Result<Pod> {
        let pod = self.pod_find(pod_id)?;
        let members = self.pod_members(&pod.id)?;
        // One line for the pod's address: its hostname, the pod's name
        // and its members' names (they all answer there).
        let mut names = vec![r.config.hostname.clone(), pod.name.clone()];
        names.extend(members.iter().map(|m| m.name.clone()));
        names.dedup();
        let mut extra = crate::networking::extra_hosts(&r.config.extra_hosts)?;
        // kube Services' names, while the pod they select is ready.
        extra.extend(self.service_host_entries(r, gone));
        let ip = self.pod_ip(&pod.id);
        let mut peers = Vec::new();
        if let Some(ip) = ip {
            peers.push(berth_network::files::HostEntry {
                ip: ip.to_string(),
                names,
            });
        } else {
            peers.push(berth_network::files::HostEntry {
                ip: "127.0.0.1".into(),
                names,
            });
        }
        let text = berth_network::files::hosts(&extra, None, "", &peers);
        let path = self.container_dir(&r.id).join("hosts");
        std::fs::write(path, text).ctx(|| "write hosts".into())?;
        Ok(pod)
    }

    /// The hosts file and resolv.conf of a member that shares the pod's
    /// network namespace, written when it starts: the pod's address and
    /// the names of the pod and its members, the pod network's resolver.
    pub(crate) fn pod_member_files(&self, r: &Record, pod_id: &str) -> Result<()> {
        // With kube Services' names, under the lock their rewrites take
        // (crate::readiness): else a rewrite for a pod turned ready could
        // land before this one, written from what the rows said earlier.
        let lock = self.hosts_lock_for(!r.config.service_hosts.is_empty());
        let pod = self.write_pod_member_hosts(r, pod_id, None)?;
        drop(lock);
        let dir = self.container_dir(&r.id);
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let dns = berth_network::files::DnsConfig {
            servers: r.config.dns.clone(),
            search: r.config.dns_search.clone(),
            options: r.config.dns_options.clone(),
        };
        let user_net = (r.config.dns.is_empty())
            .then(|| self.networks.get(&pod.config.network).ok())
            .flatten()
            .filter(|n| !n.is_default());
        let resolv = match user_net {
            Some(net) => {
                let _ = berth_network::resolver::ensure(
                    Path::new("/proc/self/exe"),
                    &self.root,
                    &self.runroot,
                    &net,
                );
                berth_network::files::embedded_resolv_conf(&host, &dns, net.gateway)
            }
            None => berth_network::files::resolv_conf(&host, &dns, true),
        };
        std::fs::write(dir.join("resolv.conf"), resolv).ctx(|| "write resolv.conf".into())?;
        Ok(())
    }

    /// `pod start`: the init containers (label [`INIT_LABEL`]) first, one
    /// after the other, each to a zero exit and then removed (podman's
    /// "once" init containers); then each member not running (oldest
    /// first). Returns the pod; the first failure ends it.
    pub fn pod_start(&self, key: &str) -> Result<Pod> {
        let s = self.pod_summary(key)?;
        self.pod_namespaces(&s.pod)?;
        let (inits, members): (Vec<&Record>, Vec<&Record>) = s
            .members
            .iter()
            .partition(|r| r.config.labels.contains_key(INIT_LABEL));
        for r in inits {
            crate::monitor::start_detached(self, r)?;
            let wait = crate::lifecycle::WaitOptions {
                deadline: Some(std::time::Instant::now() + INIT_TIMEOUT),
            };
            let exit = self.container_wait(&r.id, &wait)?;
            if exit.exit_code != 0 {
                return Err(Error::Conflict(format!(
                    "pod {}: init container {} exited with {}",
                    s.pod.name, r.name, exit.exit_code
                )));
            }
            self.remove(&self.find(&r.id)?, false, true)?;
        }
        for r in members {
            if matches!(r.status, Status::Created | Status::Exited) {
                self.db.set_stopped_by_user(&r.id, false)?;
                crate::monitor::start_detached(self, r)?;
            }
        }
        self.db
            .event("pod", "start", &s.pod.id, &[("name", s.pod.name.as_str())]);
        Ok(s.pod)
    }

    /// `pod stop`: every running member stopped (its stop signal, SIGKILL
    /// after `timeout`). The signals go to all first, then each exit is
    /// waited for, so that a pod stops in one timeout, not one per member.
    pub fn pod_stop(&self, key: &str, timeout: Option<u32>) -> Result<Pod> {
        let s = self.pod_summary(key)?;
        let active: Vec<&Record> = s.members.iter().filter(|r| r.status.is_active()).collect();
        let mut longest = 0;
        for r in &active {
            self.db.set_stopped_by_user(&r.id, true)?;
            let sig = if r.config.stop_signal.is_empty() {
                libc::SIGTERM
            } else {
                berth_runtime::signal::parse_signal(&r.config.stop_signal)?
            };
            if r.status == Status::Running && crate::alive(r.pid, r.pid_start) {
                let _ = berth_runtime::signal::send(r.pid, sig);
            }
            longest = longest.max(timeout.or(r.config.stop_timeout).unwrap_or(10));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(longest.into());
        while active.iter().any(|r| crate::alive(r.pid, r.pid_start))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for r in active {
            // Past the one deadline: what still runs is killed at once.
            let r = self.find(&r.id)?;
            self.stop(&r, Some(0))?;
        }
        self.db
            .event("pod", "stop", &s.pod.id, &[("name", s.pod.name.as_str())]);
        Ok(s.pod)
    }

    /// `pod restart`: stopped, then started.
    pub fn pod_restart(&self, key: &str, timeout: Option<u32>) -> Result<Pod> {
        self.pod_stop(key, timeout)?;
        self.pod_start(key)
    }

    /// `pod kill`: the signal to every running member.
    pub fn pod_kill(&self, key: &str, signal: i32) -> Result<Pod> {
        let s = self.pod_summary(key)?;
        for r in s.members.iter().filter(|r| r.status.is_active()) {
            if signal == libc::SIGKILL || signal == libc::SIGTERM {
                self.db.set_stopped_by_user(&r.id, true)?;
            }
            self.kill(r, signal)?;
        }
        self.db
            .event("pod", "kill", &s.pod.id, &[("name", s.pod.name.as_str())]);
        Ok(s.pod)
    }

    /// `pod rm`: refused while a member runs unless `force` (then they are
    /// killed); the members, the endpoint, the namespace files and the row
    /// go.
    pub fn pod_remove(&self, key: &str, force: bool) -> Result<Pod> {
        let s = self.pod_summary(key)?;
        if !force {
            if let Some(r) = s.members.iter().find(|r| r.status.is_active()) {
                return Err(Error::Conflict(format!(
                    "cannot remove pod {}: container {} is {} - running or paused containers cannot be removed without force",
                    s.pod.name, r.name, r.status
                )));
            }
        }
        // All killed first: their monitors record the exits at the same
        // time, instead of one remove waiting for each in turn.
        for r in s.members.iter().filter(|r| r.status.is_active()) {
            self.db.set_stopped_by_user(&r.id, true)?;
            if crate::alive(r.pid, r.pid_start) {
                let _ = berth_runtime::signal::send(r.pid, libc::SIGKILL);
            }
        }
        for r in &s.members {
            let r = self.find(&r.id)?;
            self.remove(&r, true, true)?;
        }
        self.release_pod(&s.pod)?;
        self.delete_pod_row(&s.pod.id)?;
        self.db
            .event("pod", "remove", &s.pod.id, &[("name", s.pod.name.as_str())]);
        Ok(s.pod)
    }

    /// `pod prune`: every pod none of whose members runs, removed.
    pub fn pod_prune(&self) -> Result<Vec<Pod>> {
        let mut removed = Vec::new();
        for s in self.pod_list()? {
            if s.members.iter().any(|r| r.status.is_active()) {
                continue;
            }
            removed.push(self.pod_remove(&s.pod.id, false)?);
        }
        Ok(removed)
    }

    /// `pod top`: the host's `ps` of each running member; the header once,
    /// then each member's processes.
    pub fn pod_top(&self, key: &str, ps_args: &[String]) -> Result<Vec<String>> {
        let s = self.pod_summary(key)?;
        let mut out: Vec<String> = Vec::new();
        let running: Vec<&Record> = s
            .members
            .iter()
            .filter(|r| matches!(r.status, Status::Running | Status::Paused))
            .collect();
        if running.is_empty() {
            return Err(Error::Conflict(format!(
                "pod {} is not running: no running containers",
                s.pod.name
            )));
        }
        for r in running {
            let lines = self.top(r, ps_args)?;
            let mut it = lines.into_iter();
            let header = it.next();
            if out.is_empty() {
                out.extend(header);
            }
            out.extend(it);
        }
        Ok(out)
    }

    /// `system check`: namespace files of pods that have no row any more
    /// (a `pod rm` or `pod create` killed half way) unmounted, their
    /// endpoints released. Returns what was done, one line each.
    pub fn check_pods(&self) -> Result<Vec<String>> {
        let mut fixed = Vec::new();
        let dir = self.pods_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(fixed);
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            // Another store's pod (or one whose owner was never written:
            // nothing was mounted for it yet) is not ours to judge.
            let ours = std::fs::read(e.path().join(OWNER))
                .is_ok_and(|o| o == self.root.as_os_str().as_encoded_bytes());
            if !ours || self.pod_exists(&id) {
                continue;
            }
            self.networks.detach(&id, false)?;
            unmount_namespaces(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
            fixed.push(format!("released the namespaces of removed pod {id}"));
        }
        Ok(fixed)
    }
}

fn pod_from((id, name, created, config): (String, String, String, String)) -> Result<Pod> {
    let config = serde_json::from_str(&config).map_err(|source| Error::Encode {
        what: "pod config",
        source,
    })?;
    Ok(Pod {
        id,
        name,
        created,
        config,
    })
}

/// Whether `p` is a mounted namespace file.
fn is_namespace_file(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|s| {
        #[allow(clippy::useless_conversion)]
        let t = i64::from(s.filesystem_type().0);
        t == NSFS_MAGIC
    })
}

/// The pod's /dev/shm under its run directory: one tmpfs every member
/// sharing the pod's IPC namespace mounts at /dev/shm. The namespace
/// shares System V objects and POSIX message queues; POSIX shared memory
/// is files in /dev/shm, so a tmpfs per member would split what the
/// shared namespace promises (podman bind-mounts its infra container's).
const SHM: &str = "shm";

/// podman's (and docker's) default /dev/shm size.
const SHM_SIZE: u64 = 64 << 20;

/// The pod's /dev/shm size: its `--shm-size`, else the default.
fn shm_size(config: &PodConfig) -> u64 {
    if config.shm_size == 0 {
        SHM_SIZE
    } else {
        config.shm_size
    }
}

/// The pod's /dev/shm, for a member sharing its IPC namespace: made
/// with the namespaces (see [`Engine::pod_namespaces`]).
pub(crate) fn pod_shm(engine: &Engine, pod_id: &str) -> PathBuf {
    engine.pod_dir(pod_id).join(SHM)
}

/// Whether something is mounted on `p` (its device differs from its
/// parent's: the run directory is itself a tmpfs, so the filesystem's
/// type would not tell).
fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(m), Some(Ok(parent))) = (
        std::fs::symlink_metadata(p),
        p.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    m.dev() != parent.dev()
}

/// Mounts the pod's /dev/shm tmpfs on `p` (made if missing), with the
/// options a container's own has.
fn mount_shm(p: &Path, size: u64) -> Result<()> {
    use nix::mount::MsFlags;
    match std::fs::create_dir(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).ctx(|| format!("create {}", p.display()));
        }
        _ => {}
    }
    nix::mount::mount(
        Some("shm"),
        p,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={size}").as_str()),
    )
    .map_err(|source| Error::Sys {
        context: format!("mount the pod's /dev/shm on {}", p.display()),
        source,
    })
}

/// The pod's port redirects, as an nft table `ip berth_pod` in its
/// network namespace (`netns`, the mounted file): prerouting for its
/// peers, output for its own members, both only for the pod's address,
/// so a member's connections elsewhere on those ports are left alone. nft
/// is run from a thread that entered the namespace (the child inherits
/// it); the process's own namespace is untouched.
fn redirect_ports(netns: &Path, ip: std::net::Ipv4Addr, redirects: &[PortRedirect]) -> Result<()> {
    const TABLE: &str = "berth_pod";
    let mut cmds = vec![json!({"add": {"table": {"family": "ip", "name": TABLE}}})];
    for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        cmds.push(json!({"add": {"chain": {
            "family": "ip", "table": TABLE, "name": chain, "type": "nat",
            "hook": hook, "prio": -100, "policy": "accept",
        }}}));
        for r in redirects {
            let proto = r.proto.as_str();
            cmds.push(json!({"add": {"rule": {
                "family": "ip", "table": TABLE, "chain": chain, "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": ip.to_string()}},
                    {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": r.port}},
                    {"redirect": {"port": r.target}},
                ],
            }}}));
        }
    }
    let file = std::fs::File::open(netns).ctx(|| format!("open {}", netns.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
                Error::Sys {
                    context: "enter the pod's network namespace".into(),
                    source,
                }
            })?;
            berth_network::nft::apply(&cmds)
                .map_err(|e| Error::Network(berth_network::Error::Nft(e)))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Monitor(
                "the thread redirecting the pod's ports panicked".into(),
            ))
        })
    })
}

/// Unmounts whatever namespace files `dir` holds (lazily: a member being
/// made may have it open; the namespace goes with its last user), and the
/// pod's /dev/shm.
fn unmount_namespaces(dir: &Path) {
    let shm = dir.join(SHM);
    while is_mount_point(&shm) {
        if nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    let _ = std::fs::remove_dir(&shm);
    for ns in SHAREABLE.iter().chain(&["user"]) {
        let p = dir.join(ns);
        while is_namespace_file(&p) {
            if nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        let _ = std::fs::remove_file(&p);
    }
}

/// What a pod's new namespaces need from a thread inside them: the
/// hostname in the UTS namespace, loopback up in the network namespace.
fn set_up_inside(kinds: &[&str], hostname: &str) -> Result<()> {
    if kinds.contains(&"uts") {
        nix::unistd::sethostname(hostname).map_err(|source| Error::Sys {
            context: format!("set the pod's hostname {hostname:?}"),
            source,
        })?;
    }
    if kinds.contains(&"net") {
        let mut nl = berth_network::netlink::Netlink::open()
            .ctx(|| "open a netlink socket in the pod's namespace".into())?;
        if let Some(lo) = nl.link("lo").ctx(|| "find lo".into())? {
            nl.set_up(lo.index).ctx(|| "bring lo up".into())?;
        }
    }
    Ok(())
}

/// New namespaces of `kinds`, each bind-mounted onto `dir/<kind>`: a
/// thread unshares them (they are per thread: the process's own stay as
/// they are), sets the hostname in the new UTS namespace, brings loopback
/// up in the new network namespace, mounts them and ends. With `id_map`,
/// they are made inside a new user namespace of that mapping instead,
/// which owns them and is kept at `dir/user` too.
fn make_namespaces(
    dir: &Path,
    kinds: &[&str],
    hostname: &str,
    id_map: Option<&crate::userns::IdMap>,
) -> Result<()> {
    use nix::sched::CloneFlags;
    let mut flags = CloneFlags::empty();
    for k in kinds {
        flags |= match *k {
            "net" => CloneFlags::CLONE_NEWNET,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            _ => CloneFlags::CLONE_NEWUTS,
        };
        let p = dir.join(k);
        std::fs::File::create(&p).ctx(|| format!("create {}", p.display()))?;
    }
    if let Some(m) = id_map {
        return make_namespaces_in_userns(dir, kinds, flags, hostname, m);
    }
    if kinds.is_empty() {
        return Ok(());
    }
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            nix::sched::unshare(flags).map_err(|source| Error::Sys {
                context: "unshare the pod's namespaces".into(),
                source,
            })?;
            set_up_inside(kinds, hostname)?;
            for k in kinds {
                let src = format!("/proc/thread-self/ns/{k}");
                nix::mount::mount(
                    Some(src.as_str()),
                    &dir.join(k),
                    None::<&str>,
                    nix::mount::MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|source| Error::Sys {
                    context: format!("bind-mount the pod's {k} namespace"),
                    source,
                })?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Monitor(
                "the thread making the pod's namespaces panicked".into(),
            ))
        })
    })
}

/// [`make_namespaces`] for a pod with a user namespace of its own: a child
/// cloned into a new user namespace (`map`) makes the others with it (a
/// thread of ours cannot: joining or making a user namespace needs a
/// single-threaded process), and each is bind-mounted from the child's
/// /proc while it waits. The hostname and loopback are then set by a
/// thread that joins the new UTS and network namespaces (the host's root
/// holds every capability over them).
fn make_namespaces_in_userns(
    dir: &Path,
    kinds: &[&str],
    flags: nix::sched::CloneFlags,
    hostname: &str,
    map: &crate::userns::IdMap,
) -> Result<()> {
    let user = dir.join("user");
    std::fs::File::create(&user).ctx(|| format!("create {}", user.display()))?;
    let bind = |src: &str, dst: &Path| {
        nix::mount::mount(
            Some(src),
            dst,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    saferoot::idmap::namespaces_with_maps(&map.uid_map(), &map.gid_map(), flags.bits(), |proc| {
        for k in kinds.iter().chain(&["user"]) {
            bind(&format!("{proc}/ns/{k}"), &dir.join(k))?;
        }
        Ok(())
    })
    .map_err(|source| Error::Sys {
        context: "make the pod's user namespace and its namespaces".into(),
        source,
    })?;
    let joins: Vec<(&str, nix::sched::CloneFlags)> = [
        ("uts", nix::sched::CloneFlags::CLONE_NEWUTS),
        ("net", nix::sched::CloneFlags::CLONE_NEWNET),
    ]
    .into_iter()
    .filter(|(k, _)| kinds.contains(k))
    .collect();
    if joins.is_empty() {
        return Ok(());
    }
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            for (k, flag) in &joins {
                let f = std::fs::File::open(dir.join(k))
                    .ctx(|| format!("open the pod's {k} namespace"))?;
                nix::sched::setns(&f, *flag).map_err(|source| Error::Sys {
                    context: format!("join the pod's {k} namespace"),
                    source,
                })?;
            }
            set_up_inside(kinds, hostname)?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Monitor(
                "the thread setting up the pod's namespaces panicked".into(),
            ))
        })
    })
}
