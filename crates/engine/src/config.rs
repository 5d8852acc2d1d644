//! What a container is made of: the options of `berth run`/`create` merged
//! with the image's config, stored as JSON in the container's row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A container's configuration, fixed at create time. Fields missing in
/// older rows take their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ContainerConfig {
    /// The image as the user named it.
    pub image: String,
    /// The image's id (config digest).
    pub image_id: String,
    /// The program and its arguments (entrypoint + cmd, resolved).
    pub args: Vec<String>,
    pub entrypoint: Vec<String>,
    /// `--entrypoint` as given (empty: none at all); merged into
    /// `entrypoint` at create.
    #[serde(skip)]
    pub entrypoint_override: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// `--group-add`: more supplementary groups (names or ids).
    pub group_add: Vec<String>,
    pub hostname: String,
    pub domainname: String,
    pub labels: BTreeMap<String, String>,
    pub tty: bool,
    pub open_stdin: bool,
    /// The streams the creating client attached and whether stdin closes
    /// when that attach ends: docker's Config.AttachStdin, AttachStdout,
    /// AttachStderr and StdinOnce, which inspect shows.
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub stdin_once: bool,
    pub mounts: Vec<Mount>,
    pub read_only: bool,
    pub resources: Resources,
    pub ulimits: Vec<Ulimit>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub no_new_privileges: bool,
    /// A seccomp profile file, "unconfined", or empty for the default.
    pub seccomp: String,
    /// `--security-opt`s as docker's client passes them (a seccomp
    /// profile file's JSON, compacted, in place of its name), for inspect.
    #[serde(default)]
    pub security_opt: Vec<String>,
    pub devices: Vec<Device>,
    pub init: bool,
    /// `--oom-score-adj`: the processes' OOM killer preference (-1000..1000).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    pub stop_signal: String,
    pub stop_timeout: Option<u32>,
    pub restart: RestartPolicy,
    pub auto_remove: bool,
    /// "none", "host", "container:<id>", "bridge" (the default network) or
    /// a user network's name.
    pub network: String,
    /// More networks (`network connect` while created or stopped; the
    /// first network is `network`).
    pub extra_networks: Vec<String>,
    /// `network disconnect` took the container off `network`: the mode
    /// stays (docker's HostConfig.NetworkMode keeps it too), with no
    /// endpoint on it; `extra_networks` are what it is connected to.
    pub left_network: bool,
    /// `--network-alias`: names peers on the first network (the mode's)
    /// resolve it by.
    pub network_aliases: Vec<String>,
    /// `--ip`: a fixed address on the first network.
    pub ip: Option<std::net::Ipv4Addr>,
    /// What it asks of each of `extra_networks` (by the name there), as
    /// docker keeps an EndpointSettings per network: an alias given to
    /// `network connect` is answered on that network only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, EndpointSettings>,
    /// `--mac-address`.
    pub mac_address: Option<[u8; 6]>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `-p`, as given (host ports chosen at each start).
    pub publish: Vec<berth_network::PortSpec>,
    /// `-P`: every exposed port to a free host port.
    pub publish_all: bool,
    /// "" (private), "host", or "container:<id>".
    pub pid_mode: String,
    pub ipc_mode: String,
    pub uts_mode: String,
    pub shm_size: u64,
    pub sysctls: BTreeMap<String, String>,
    pub extra_hosts: Vec<String>,
    pub log: LogConfig,
    pub exposed_ports: Vec<String>,
    /// `--cgroupns`: "host", or "private" (also for ""; berth's default on
    /// both cgroup versions).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroupns: String,
    /// `--cgroup-parent`: the cgroup the container's is made under
    /// ("" for berth's own, `/berth`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroup_parent: String,
    /// `--device-cgroup-rule`s, as given ("c 1:3 mr").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]` as given; at create the other
    /// containers' volumes and binds are copied into `mounts`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// The healthcheck (`--health-*`, else the image's; `NONE` disables).
    pub health: Option<crate::health::HealthConfig>,
    /// `--health-on-failure`: what the monitor does when the container
    /// turns unhealthy.
    #[serde(skip_serializing_if = "crate::health::OnFailure::is_none")]
    pub health_on_failure: crate::health::OnFailure,
    /// A readiness check beside the healthcheck (kube play's readinessProbe
    /// next to a livenessProbe): the monitor runs it as it runs the
    /// healthcheck and keeps its state in `Health::readiness`; it never
    /// acts on the container, it only says whether it is ready (see
    /// crate::readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<crate::health::HealthConfig>,
    /// Names in /etc/hosts that lead to a pod only while it is ready: kube
    /// play's Services (crate::readiness).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_hosts: Vec<crate::readiness::ServiceHost>,
    /// The pod it belongs to (`--pod`: a key at create, the pod's id once
    /// made), whose namespaces it joins (crate::pods).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// `--userns` as given ("" for the host's default); at create, what it
    /// resolved to when given: "host", "auto" or "auto:size=N" (see
    /// crate::userns), else "" (`HostConfig.UsernsMode`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub userns: String,
    /// The host ids the container's ids map to, taken at create (None:
    /// the host's user namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_map: Option<crate::userns::IdMap>,
}

impl ContainerConfig {
    /// Whether the named volume `name` is one of its mounts.
    pub fn uses_volume(&self, name: &str) -> bool {
        self.mounts
            .iter()
            .any(|m| m.kind == "volume" && m.source == name)
    }
}

/// The settings of one network beside the first: docker's
/// EndpointSettings.Aliases and IPAMConfig.IPv4Address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EndpointSettings {
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
}

/// A bind mount, named volume or tmpfs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mount {
    /// "bind", "volume" or "tmpfs".
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// Extra mount options (tmpfs size/mode, propagation).
    pub options: Vec<String>,
    /// A bind whose host directory is made when missing, at each start:
    /// docker's `-v /host:/ctr` does so, `--mount type=bind` does not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_source: bool,
    /// The flag the mount came from, which decides where inspect shows
    /// it, as docker's does: `-v` in HostConfig.Binds, `--mount` in
    /// HostConfig.Mounts, `--tmpfs` in HostConfig.Tmpfs.
    #[serde(default, skip_serializing_if = "MountSyntax::is_short")]
    pub syntax: MountSyntax,
    /// `-v`'s options as given (`ro`, `rw,z`...), which docker shows as
    /// the mount's Mode and in its Binds entry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// A volume's options (`--mount`'s `volume-*`, `-v`'s `nocopy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    /// A bind of the directory alone, not the mounts below it
    /// (`bind-nonrecursive`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nonrecursive: bool,
    /// `--mount`'s `consistency` as given: kept and shown, meaningless on
    /// Linux (as in docker).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consistency: String,
}

/// Docker's `mount.VolumeOptions`: what a volume the mount makes gets, and
/// whether the image's files fill it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VolumeOptions {
    /// The image's content at the destination is not copied into it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The volume driver (berth has the local one only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// The driver's options (the local driver's type, device, o, size).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_options: BTreeMap<String, String>,
}

/// How a mount was asked for.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountSyntax {
    /// `-v` (also an image's VOLUME, and compose's and kube's mounts).
    #[default]
    Short,
    /// `--mount`.
    Long,
    /// `--tmpfs`.
    Tmpfs,
}

impl MountSyntax {
    fn is_short(&self) -> bool {
        *self == MountSyntax::Short
    }
}

impl Mount {
    /// Docker's daemon's checks of a mount (its `ValidateMountConfig` for
    /// `--mount`, the destination's for every kind), in its words.
    pub fn validate(&self) -> Result<(), String> {
        let syntax = self.syntax();
        let fail = |why: String| {
            let config = format!("invalid mount config for type {:?}: {why}", self.kind);
            Err(match syntax {
                MountSyntax::Long => config,
                // docker's -v names the whole specification.
                MountSyntax::Short => {
                    let spec = [self.source.as_str(), &self.destination, &self.mode]
                        .iter()
                        .filter(|p| !p.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(":");
                    format!("invalid volume specification: '{spec}': {config}")
                }
                // --tmpfs: the path's words alone.
                MountSyntax::Tmpfs => why,
            })
        };
        let absolute = |p: &str| {
            if p.starts_with('/') {
                Ok(())
            } else {
                Err(format!(
                    "invalid mount path: '{p}' mount path must be absolute"
                ))
            }
        };
        if self.destination.is_empty() {
            return fail("field Target must not be empty".into());
        }
        if self.destination == "/" {
            return fail("invalid specification: destination can't be '/'".into());
        }
        if let Err(e) = absolute(&self.destination) {
            return fail(e);
        }
        if syntax != MountSyntax::Long {
            return Ok(());
        }
        let propagation = self
            .options
            .iter()
            .find(|o| !o.contains('='))
            .map(String::as_str);
        match self.kind.as_str() {
            "bind" => {
                if self.source.is_empty() {
                    return fail("field Source must not be empty".into());
                }
                if let Some(p) = propagation {
                    const MODES: [&str; 6] = [
                        "private", "rprivate", "shared", "rshared", "slave", "rslave",
                    ];
                    if !MODES.contains(&p) {
                        return fail(format!("invalid propagation mode: {p}"));
                    }
                }
                if self.volume_options.is_some() {
                    return fail("field VolumeOptions must not be specified".into());
                }
                absolute(&self.source).or_else(fail)
            }
            "volume" => {
                if propagation.is_some() || self.nonrecursive {
                    return fail("field BindOptions must not be specified".into());
                }
                if self.source.is_empty() && self.read_only {
                    return fail("must not set ReadOnly mode when using anonymous volumes".into());
                }
                Ok(())
            }
            "tmpfs" => {
                if propagation.is_some() || self.nonrecursive {
                    return fail("field BindOptions must not be specified".into());
                }
                if !self.source.is_empty() && self.source != "tmpfs" {
                    return fail("field Source must not be specified".into());
                }
                Ok(())
            }
            _ => fail("mount type unknown".into()),
        }
    }

    /// The flag it came from; a tmpfs stored before the flag was kept
    /// came from `--tmpfs` (`-v` cannot make one).
    pub fn syntax(&self) -> MountSyntax {
        match self.syntax {
            MountSyntax::Short if self.kind == "tmpfs" => MountSyntax::Tmpfs,
            s => s,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` (10 to 1000; discarded with a warning where the
    /// host has no blkio weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// `--kernel-memory`: shown by inspect, not applied (deprecated by the
    /// kernel and the OCI spec, as Docker warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_memory: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_kill_disable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u64>,
    /// `--blkio-weight-device PATH:WEIGHT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_weight_device: Vec<DeviceRate>,
    /// `--device-read-bps PATH:RATE` and its three siblings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<DeviceRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<DeviceRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<DeviceRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<DeviceRate>,
}

/// A host block device and a rate or weight for it (docker's
/// `ThrottleDevice` / `WeightDevice`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceRate {
    pub path: String,
    pub rate: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

/// `--restart`: no, on-failure[:N], always, unless-stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestartPolicy {
    pub name: String,
    pub max_retries: u32,
}

impl RestartPolicy {
    /// Parses docker's syntax (`NAME[:COUNT]`), refusing what its client
    /// and then its daemon refuse, in their words.
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, count) = Self::read(s)?;
        Self::judge(name, count)
    }

    /// Docker's client's reading of `NAME[:COUNT]`: the format and the
    /// count's integer checked, nothing else.
    pub fn read(s: &str) -> Result<(&str, i64), String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() > 2 {
            return Err("invalid restart policy format".into());
        }
        let count = match parts.get(1) {
            Some(c) => c
                .parse()
                .map_err(|_| "maximum retry count must be an integer".to_string())?,
            None => 0,
        };
        Ok((parts[0], count))
    }

    /// Docker's daemon's judgement of a policy [`RestartPolicy::read`]
    /// read (an empty name is no).
    pub fn judge(name: &str, count: i64) -> Result<RestartPolicy, String> {
        match name {
            "always" | "unless-stopped" | "no" | "" if count != 0 => Err(format!(
                "maximum retry count cannot be used with restart policy '{name}'"
            )),
            "always" | "unless-stopped" | "no" | "" => Ok(RestartPolicy {
                name: if name.is_empty() { "no" } else { name }.to_string(),
                max_retries: 0,
            }),
            "on-failure" if count < 0 => Err("maximum retry count cannot be negative".into()),
            "on-failure" => Ok(RestartPolicy {
                name: name.to_string(),
                max_retries: u32::try_from(count).unwrap_or(u32::MAX),
            }),
            _ => Err(format!("invalid restart policy '{name}'")),
        }
    }

    /// Whether a container that exited with `code` is started again, given
    /// how often it was restarted and whether the user stopped it.
    pub fn restarts(&self, code: i32, restart_count: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0 && (self.max_retries == 0 || restart_count < self.max_retries)
            }
            _ => false,
        }
    }
}

/// Where a container's output is kept (`--log-driver`): berth has
/// Docker's json-file, its `local` (the same bounded files here, shown as
/// `local`) and `none`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum LogDriver {
    #[default]
    #[serde(rename = "json-file")]
    JsonFile,
    #[serde(rename = "local")]
    Local,
    /// Nothing kept: `logs` cannot read it back; attached streams still
    /// reach their client.
    #[serde(rename = "none")]
    None,
}

impl LogDriver {
    /// Docker's name of the driver.
    pub fn name(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::Local => "local",
            LogDriver::None => "none",
        }
    }
}

/// Log options (`--log-driver local --log-opt max-size=10m --log-opt max-file=3`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogConfig {
    /// 0: unbounded.
    pub max_size: u64,
    pub max_file: u32,
    #[serde(default)]
    pub driver: LogDriver,
    /// The `--log-opt`s as given, which `inspect` shows as docker does.
    #[serde(default)]
    pub opts: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_and_decide() {
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!(p.max_retries, 3);
        assert!(p.restarts(1, 2, false));
        assert!(!p.restarts(1, 3, false));
        assert!(!p.restarts(0, 0, false));
        let a = RestartPolicy::parse("always").unwrap();
        assert!(a.restarts(0, 100, false));
        assert!(!a.restarts(0, 0, true));
        assert!(!RestartPolicy::parse("no").unwrap().restarts(1, 0, false));
        assert!(RestartPolicy::parse("always:2").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }
}
