//! A merged model made the project's: services whose profiles are not
//! active set aside, `env_file` read under `environment`, bare variables
//! taken from the environment, paths made absolute, the implicit `default`
//! network added, every network, volume, secret and config a service
//! names checked to be declared, and resources given their engine names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::canon::scalar_text;
use crate::error::{Error, Result};
use crate::locate::{absolute, expand_home};
use crate::Project;

impl Project {
    pub(crate) fn resolve(
        &mut self,
        profiles: &[String],
        origin: &BTreeMap<String, String>,
        first: &str,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let dir = self.directory.clone();
        let env = self.environment.clone();
        let name = self.name.clone();
        let model = self.model.as_object_mut().ok_or_else(|| Error::Invalid {
            file: first.to_string(),
            path: "(top level)".into(),
            problem: "a Compose file must be a mapping".into(),
        })?;
        model.remove("version");
        model.insert("name".into(), json!(name));
        let services = model
            .entry("services")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        // Profiles: a service with profiles runs only when one is active.
        let (active, disabled): (Map<String, Value>, Map<String, Value>) = services
            .into_iter()
            .partition(|(_, s)| match s["profiles"].as_array() {
                None => true,
                Some(ps) => ps.iter().any(|p| {
                    p.as_str()
                        .is_some_and(|p| p == "*" || profiles.iter().any(|a| a == p))
                }),
            });
        let disabled: Vec<String> = disabled.keys().cloned().collect();
        let names: BTreeSet<String> = active.keys().cloned().collect();
        let declared = |kind: &str| -> BTreeSet<String> {
            model
                .get(kind)
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (networks, volumes) = (declared("networks"), declared("volumes"));
        let (secrets, configs) = (declared("secrets"), declared("configs"));
        let mut uses_default = false;
        let mut resolved = Map::new();
        for (sname, mut svc) in active {
            let file = origin
                .get(&sname)
                .cloned()
                .unwrap_or_else(|| first.to_string());
            let bad = |path: String, problem: String| Error::Invalid {
                file: file.clone(),
                path: format!("services.{sname}.{path}"),
                problem,
            };
            let s = svc
                .as_object_mut()
                .ok_or_else(|| bad(String::new(), "a service must be a mapping".into()))?;
            if !s.contains_key("image") && !s.contains_key("build") {
                return Err(bad(
                    "image".into(),
                    "a service needs an image or a build".into(),
                ));
            }
            // env_file under environment (environment wins), bare keys
            // from the user's environment.
            let mut environment: Map<String, Value> = Map::new();
            if let Some(Value::Array(files)) = s.remove("env_file") {
                for (i, f) in files.iter().enumerate() {
                    let (path, required) = match f {
                        Value::Object(m) => (
                            m.get("path").map(scalar_text).unwrap_or_default(),
                            m.get("required").and_then(Value::as_bool).unwrap_or(true),
                        ),
                        other => (scalar_text(other), true),
                    };
                    let path = absolute(&dir, Path::new(&path));
                    if !path.exists() && !required {
                        continue;
                    }
                    let vars =
                        crate::env::read(&path, &|k| env.get(k).cloned()).map_err(|e| match e {
                            Error::Read { source, .. } => bad(
                                format!("env_file.{i}"),
                                format!("{}: {source}", path.display()),
                            ),
                            e => e,
                        })?;
                    for (k, v) in vars {
                        environment.insert(k, json!(v));
                    }
                }
            }
            if let Some(Value::Object(m)) = s.remove("environment") {
                for (k, v) in m {
                    let v = match v {
                        Value::Null => env.get(&k).map_or(Value::Null, |e| json!(e)),
                        v => v,
                    };
                    environment.insert(k, v);
                }
            }
            if !environment.is_empty() {
                s.insert("environment".into(), Value::Object(environment));
            }
            if let Some(b) = s.get_mut("build").and_then(Value::as_object_mut) {
                let ctx = b
                    .get("context")
                    .map(scalar_text)
                    .unwrap_or_else(|| ".".into());
                b.insert(
                    "context".into(),
                    json!(absolute(&dir, Path::new(&ctx)).display().to_string()),
                );
                b.entry("dockerfile").or_insert_with(|| json!("Dockerfile"));
            }
            if let Some(Value::Array(vols)) = s.get_mut("volumes") {
                for (i, v) in vols.iter_mut().enumerate() {
                    let kind = v["type"].as_str().unwrap_or("volume").to_string();
                    let source = v["source"].as_str().map(String::from);
                    match (kind.as_str(), source) {
                        ("bind", Some(src)) => {
                            v["source"] =
                                json!(absolute(&dir, Path::new(&expand_home(&src, &env)))
                                    .display()
                                    .to_string());
                        }
                        ("bind", None) => {
                            return Err(bad(
                                format!("volumes.{i}"),
                                "a bind mount needs a source".into(),
                            ))
                        }
                        ("volume", Some(src)) if !volumes.contains(&src) => {
                            return Err(bad(
                                format!("volumes.{i}"),
                                format!("refers to undefined volume {src}"),
                            ))
                        }
                        _ => {}
                    }
                }
            }
            if !s.contains_key("network_mode") && !s.contains_key("networks") {
                s.insert("networks".into(), json!({"default": null}));
            }
            if let Some(Value::Object(nets)) = s.get("networks") {
                for n in nets.keys() {
                    if n == "default" {
                        uses_default = true;
                    } else if !networks.contains(n) {
                        return Err(bad(
                            format!("networks.{n}"),
                            format!("refers to undefined network {n}"),
                        ));
                    }
                }
            }
            if let Some(Value::Object(deps)) = s.get("depends_on") {
                for (d, spec) in deps {
                    if !names.contains(d) {
                        let required = spec["required"].as_bool() != Some(false);
                        if required {
                            return Err(bad(format!("depends_on.{d}"), format!("depends on undefined service {d:?} (or one whose profile is not active)")));
                        }
                    }
                }
            }
            for (kind, known) in [("secrets", &secrets), ("configs", &configs)] {
                if let Some(Value::Array(list)) = s.get(kind) {
                    for (i, item) in list.iter().enumerate() {
                        let src = item["source"].as_str().unwrap_or("");
                        if !known.contains(src) {
                            return Err(bad(
                                format!("{kind}.{i}"),
                                format!("refers to undefined {} {src}", &kind[..kind.len() - 1]),
                            ));
                        }
                    }
                }
            }
            if s.contains_key("container_name") && {
                let n = s
                    .get("scale")
                    .and_then(Value::as_u64)
                    .or(s.get("deploy").and_then(|d| d["replicas"].as_u64()));
                n.is_some_and(|n| n > 1)
            } {
                return Err(bad(
                    "container_name".into(),
                    "a service with container_name cannot have more than one container".into(),
                ));
            }
            resolved.insert(sname, svc);
        }
        model.insert("services".into(), Value::Object(resolved));
        if uses_default {
            let nets = model.entry("networks").or_insert_with(|| json!({}));
            if let Some(m) = nets.as_object_mut() {
                m.entry("default").or_insert(Value::Null);
            }
        }
        for kind in ["networks", "volumes"] {
            if let Some(m) = model.get_mut(kind).and_then(Value::as_object_mut) {
                for (key, def) in m.iter_mut() {
                    if def.is_null() {
                        *def = json!({});
                    }
                    let external = def["external"].as_bool() == Some(true);
                    if let Some(d) = def.as_object_mut() {
                        let default = if external {
                            key.clone()
                        } else {
                            format!("{name}_{key}")
                        };
                        d.entry("name").or_insert_with(|| json!(default));
                    }
                }
            }
        }
        for kind in ["secrets", "configs"] {
            if let Some(m) = model.get_mut(kind).and_then(Value::as_object_mut) {
                for (key, def) in m.iter_mut() {
                    if let Some(f) = def.get("file").map(scalar_text) {
                        def["file"] = json!(absolute(&dir, Path::new(&f)).display().to_string());
                    } else if def.get("environment").is_none()
                        && def.get("content").is_none()
                        && def["external"].as_bool() != Some(true)
                    {
                        warnings.push(format!(
                            "{kind} {key:?} has no file, environment or content"
                        ));
                    }
                    let _ = key;
                }
            }
        }
        self.disabled = disabled;
        Ok(())
    }
}

/// The service keys berth acts on (the others are warned of).
pub(crate) const SUPPORTED_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "expose",
    "volumes",
    "networks",
    "network_mode",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "user",
    "working_dir",
    "hostname",
    "domainname",
    "labels",
    "cap_add",
    "cap_drop",
    "privileged",
    "read_only",
    "tmpfs",
    "ulimits",
    "stop_signal",
    "stop_grace_period",
    "init",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "secrets",
    "configs",
    "profiles",
    "pull_policy",
    "container_name",
    "sysctls",
    "shm_size",
    "scale",
    "stdin_open",
    "tty",
    "mac_address",
    "pids_limit",
    "mem_limit",
    "cpus",
    "mem_reservation",
    "oom_score_adj",
    "group_add",
    "devices",
    "extends",
    "security_opt",
    "logging",
];
