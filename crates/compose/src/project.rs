//! A project loaded: its files found and read, `.env` and `--env-file`,
//! interpolation, each file validated against the schema and put in its
//! long forms, the files merged in order, the project named, profiles
//! applied, paths made absolute and references checked. The result is
//! the resolved model (`config` prints it) with the few things the rest of
//! compose asks of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canon::scalar_text;
use crate::error::{Error, Result};

/// The names looked for when no `-f` is given, in Compose's order.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The override files read after a default file found in the same
/// directory.
const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// What the command line says about where the project is.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f`, in order (empty: COMPOSE_FILE, else the default names).
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory` (default: the first file's directory).
    pub project_directory: Option<PathBuf>,
    /// `--env-file`, in order (empty: the project directory's `.env`).
    pub env_files: Vec<PathBuf>,
    /// `--profile` (empty: COMPOSE_PROFILES).
    pub profiles: Vec<String>,
    /// The directory relative paths are read from.
    pub cwd: PathBuf,
    /// The caller's environment: it wins over `.env`.
    pub environ: BTreeMap<String, String>,
}

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// Where relative paths in the files point from.
    pub directory: PathBuf,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The resolved model: `name`, `services`, `networks`, `volumes`,
    /// `secrets`, `configs`, each service in its long forms.
    pub model: Value,
    /// What the user should hear about: unset variables, keys berth
    /// ignores.
    pub warnings: Vec<String>,
    /// The variables interpolation used (`.env` under the caller's).
    pub environment: BTreeMap<String, String>,
    /// Services whose profiles are not active: theirs are not orphans,
    /// and `down` removes them with the rest.
    pub disabled: Vec<String>,
}

impl Project {
    /// Loads the project `opts` describes.
    pub fn load(opts: &LoadOptions) -> Result<Project> {
        let files = find_files(opts)?;
        let directory = match &opts.project_directory {
            Some(d) => absolute(&opts.cwd, d),
            None => files
                .first()
                .and_then(|f| f.parent())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| opts.cwd.clone()),
        };
        let environment = environment(opts, &directory)?;
        let lookup = |name: &str| environment.get(name).cloned();
        let mut model = crate::merge::empty();
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        let mut unset = Vec::new();
        for f in &files {
            let file = f.display().to_string();
            let text = std::fs::read_to_string(f).map_err(|source| Error::Read {
                file: file.clone(),
                source,
            })?;
            let mut doc = crate::yaml::parse(&file, &text)?;
            crate::interpolate::value(&file, &mut doc, &lookup, &mut unset)?;
            let mut plain = doc.clone();
            crate::yaml::strip_tags(&mut plain);
            crate::schema::validate(&file, &plain)?;
            if doc.get("include").is_some() {
                return Err(Error::Invalid {
                    file,
                    path: "include".into(),
                    problem: "include is not supported by berth yet: list the files with -f".into(),
                });
            }
            crate::canon::services(&mut doc).map_err(|(path, problem)| Error::Invalid {
                file: file.clone(),
                path,
                problem,
            })?;
            if let Some(s) = doc.get("services").and_then(Value::as_object) {
                for k in s.keys() {
                    origin.insert(k.clone(), file.clone());
                }
            }
            crate::merge::files(&mut model, doc);
        }
        crate::yaml::strip_tags(&mut model);
        crate::extends::apply(&mut model, &origin, &lookup, &mut unset)?;
        let mut warnings: Vec<String> = unset
            .iter()
            .map(|v| format!("the {v:?} variable is not set: defaulting to a blank string"))
            .collect();
        let name = project_name(opts, &environment, &model, &directory)?;
        let first = files
            .first()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        let mut p = Project {
            name,
            directory,
            files,
            model,
            warnings: Vec::new(),
            environment,
            disabled: Vec::new(),
        };
        let profiles: Vec<String> = if opts.profiles.is_empty() {
            p.environment
                .get("COMPOSE_PROFILES")
                .map(|s| {
                    s.split(',')
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            opts.profiles.clone()
        };
        p.resolve(&profiles, &origin, &first, &mut warnings)?;
        p.warnings = warnings;
        Ok(p)
    }

    /// The active services, by name.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.model["services"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// Whether `name` is a service of the files, active or not (a
    /// container of another service is an orphan).
    pub fn knows(&self, name: &str) -> bool {
        self.service(name).is_ok() || self.disabled.iter().any(|d| d == name)
    }

    /// The service `name`.
    pub fn service(&self, name: &str) -> Result<&Value> {
        self.model["services"]
            .get(name)
            .ok_or_else(|| Error::NoSuchService(name.to_string()))
    }

    /// The resolved model as YAML (`config`), each `$` of a value written
    /// `$$` (as docker-compose writes it) so that the output, read back as
    /// a Compose file, is the same model.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_yaml(&self.escaped())
    }

    /// The resolved model with each `$` of a value escaped (`config
    /// --format json`).
    pub fn escaped(&self) -> Value {
        fn walk(v: &mut Value) {
            match v {
                Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
                Value::Array(a) => a.iter_mut().for_each(walk),
                Value::Object(m) => m.values_mut().for_each(walk),
                _ => {}
            }
        }
        let mut m = self.model.clone();
        walk(&mut m);
        m
    }

    /// Named volumes of the project (`config --volumes`).
    pub fn volume_names(&self) -> Vec<String> {
        keys(&self.model["volumes"])
    }

    /// Networks of the project.
    pub fn network_names(&self) -> Vec<String> {
        keys(&self.model["networks"])
    }

    /// A network's or volume's name on the engine (`<project>_<key>`
    /// unless named or external).
    pub fn resource_name(&self, kind: &str, key: &str) -> String {
        self.model[kind][key]["name"]
            .as_str()
            .map_or_else(|| format!("{}_{key}", self.name), String::from)
    }

    /// Whether the network or volume is the user's, made outside the
    /// project.
    pub fn external(&self, kind: &str, key: &str) -> bool {
        self.model[kind][key]["external"].as_bool() == Some(true)
    }

    /// `com.docker.compose.config-hash`: sha256 of the service's resolved
    /// configuration, less what scaling changes (a changed hash is what
    /// makes `up` recreate the service's containers).
    pub fn config_hash(&self, service: &str) -> Result<String> {
        let mut s = self.service(service)?.clone();
        if let Some(m) = s.as_object_mut() {
            m.remove("scale");
            if let Some(d) = m.get_mut("deploy").and_then(Value::as_object_mut) {
                d.remove("replicas");
            }
        }
        // serde_json's maps are sorted: the text is canonical.
        Ok(hex::encode(Sha256::digest(s.to_string().as_bytes())))
    }

    /// The number of containers the service wants (`scale`, else
    /// `deploy.replicas`, else 1).
    pub fn scale(&self, service: &str) -> u32 {
        let s = &self.model["services"][service];
        s["scale"]
            .as_u64()
            .or(s["deploy"]["replicas"].as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
    }

    /// Services ordered so that each comes after what it depends on;
    /// a cycle is an error naming it.
    pub fn start_order(&self) -> Result<Vec<String>> {
        let mut order = Vec::new();
        let mut state: BTreeMap<String, u8> = BTreeMap::new();
        fn visit(
            p: &Project,
            name: &str,
            state: &mut BTreeMap<String, u8>,
            order: &mut Vec<String>,
            chain: &mut Vec<String>,
        ) -> Result<()> {
            match state.get(name) {
                Some(2) => return Ok(()),
                Some(1) => {
                    chain.push(name.to_string());
                    return Err(Error::Invalid {
                        file: p
                            .files
                            .first()
                            .map(|f| f.display().to_string())
                            .unwrap_or_default(),
                        path: format!("services.{name}.depends_on"),
                        problem: format!("dependency cycle: {}", chain.join(" -> ")),
                    });
                }
                _ => {}
            }
            state.insert(name.to_string(), 1);
            chain.push(name.to_string());
            for dep in p.dependencies(name) {
                visit(p, &dep, state, order, chain)?;
            }
            chain.pop();
            state.insert(name.to_string(), 2);
            order.push(name.to_string());
            Ok(())
        }
        for (name, _) in self.services() {
            visit(self, name, &mut state, &mut order, &mut Vec::new())?;
        }
        Ok(order)
    }

    /// The services `name` depends on.
    pub fn dependencies(&self, name: &str) -> Vec<String> {
        keys(&self.model["services"][name]["depends_on"])
    }

    /// Keys the schema accepts that berth does not act on, per service:
    /// said as warnings by the commands that make containers.
    pub fn unsupported_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, s) in self.services() {
            for key in s.as_object().into_iter().flat_map(|m| m.keys()) {
                if !SUPPORTED_KEYS.contains(&key.as_str()) && !key.starts_with("x-") {
                    out.push(format!(
                        "service {name:?}: {key} is not supported by berth and is ignored"
                    ));
                }
            }
        }
        out
    }

    fn resolve(
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
const SUPPORTED_KEYS: &[&str] = &[
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

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    // Lexically: `./a/../b` as Compose prints it, without following links.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn expand_home(p: &str, env: &BTreeMap<String, String>) -> String {
    match p.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", env.get("HOME").map_or("/root", String::as_str))
        }
        _ => p.to_string(),
    }
}

/// The files to read: `-f`, else COMPOSE_FILE, else the first default name
/// found in the directory or a parent, with its override file.
fn find_files(opts: &LoadOptions) -> Result<Vec<PathBuf>> {
    if !opts.files.is_empty() {
        return Ok(opts.files.iter().map(|f| absolute(&opts.cwd, f)).collect());
    }
    if let Some(list) = opts.environ.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = opts
            .environ
            .get("COMPOSE_PATH_SEPARATOR")
            .map_or(":", String::as_str);
        return Ok(list
            .split(sep)
            .map(|f| absolute(&opts.cwd, Path::new(f)))
            .collect());
    }
    let mut dir = Some(opts.cwd.as_path());
    while let Some(d) = dir {
        if let Some(found) = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
        {
            let mut files = vec![found];
            // The override of the name found: compose.yaml's is
            // compose.override.yaml, docker-compose.yml's
            // docker-compose.override.yml (either extension).
            let docker = files[0]
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("docker-"));
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .filter(|n| n.starts_with("docker-") == docker)
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(Error::NoFile {
        names: DEFAULT_FILES.join(", "),
        dir: opts.cwd.display().to_string(),
    })
}

/// `.env` (or `--env-file`) under the caller's environment.
fn environment(opts: &LoadOptions, dir: &Path) -> Result<BTreeMap<String, String>> {
    let caller = |k: &str| opts.environ.get(k).cloned();
    let mut vars = BTreeMap::new();
    if opts.env_files.is_empty() {
        let dotenv = dir.join(".env");
        if dotenv.is_file() {
            vars = crate::env::read(&dotenv, &caller)?;
        }
    } else {
        for f in &opts.env_files {
            let path = absolute(&opts.cwd, f);
            let seen = vars.clone();
            let more = crate::env::read(&path, &|k| caller(k).or_else(|| seen.get(k).cloned()))?;
            vars.extend(more);
        }
    }
    vars.extend(opts.environ.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(vars)
}

/// Compose's rule for a project name: lowercase letters, digits, `-` and
/// `_`, starting with a letter or digit.
pub fn valid_project_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A directory's name as a project name: lowercased, other characters
/// dropped, leading `-`/`_` trimmed (Compose's normalisation).
pub fn normalize_project_name(name: &str) -> String {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    lowered.trim_start_matches(['-', '_']).to_string()
}

fn project_name(
    opts: &LoadOptions,
    env: &BTreeMap<String, String>,
    model: &Value,
    dir: &Path,
) -> Result<String> {
    let given = opts
        .project_name
        .clone()
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|s| !s.is_empty())
                .cloned()
        })
        .or_else(|| model["name"].as_str().map(String::from));
    if let Some(n) = given {
        return if valid_project_name(&n) {
            Ok(n)
        } else {
            Err(Error::ProjectName(n))
        };
    }
    let base = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = normalize_project_name(&base);
    if n.is_empty() {
        return Err(Error::ProjectName(base));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::Builder::new()
            .prefix("My_Proj.")
            .tempdir()
            .unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    fn opts(d: &Path) -> LoadOptions {
        LoadOptions {
            cwd: d.to_path_buf(),
            ..LoadOptions::default()
        }
    }

    #[test]
    fn names_from_flag_file_environment_and_directory() {
        let d = dir_with(&[("compose.yaml", "services:\n  a: {image: busybox}\n")]);
        let p = Project::load(&opts(d.path())).unwrap();
        // The directory's name, lowercased, `.` dropped.
        assert!(p.name.starts_with("my_proj"), "{}", p.name);
        assert!(valid_project_name(&p.name));
        std::fs::write(
            d.path().join("compose.yaml"),
            "name: fromfile\nservices:\n  a: {image: busybox}\n",
        )
        .unwrap();
        assert_eq!(Project::load(&opts(d.path())).unwrap().name, "fromfile");
        let mut o = opts(d.path());
        o.environ
            .insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
        assert_eq!(Project::load(&o).unwrap().name, "fromenv");
        o.project_name = Some("flag".into());
        assert_eq!(Project::load(&o).unwrap().name, "flag");
        o.project_name = Some("Flag".into());
        assert!(matches!(Project::load(&o), Err(Error::ProjectName(_))));
        assert_eq!(normalize_project_name("-My.App_1"), "myapp_1");
    }

    #[test]
    fn default_names_override_files_and_compose_file() {
        let d = dir_with(&[
            (
                "docker-compose.yml",
                "services:\n  a: {image: busybox, environment: {X: '1'}}\n",
            ),
            (
                "docker-compose.override.yml",
                "services:\n  a: {environment: {Y: '2'}}\n",
            ),
            ("other.yaml", "services:\n  b: {image: busybox}\n"),
        ]);
        let p = Project::load(&opts(d.path())).unwrap();
        assert_eq!(p.files.len(), 2);
        assert_eq!(
            p.model["services"]["a"]["environment"],
            json!({"X": "1", "Y": "2"})
        );
        // compose.yaml wins over docker-compose.yml; a parent directory is searched.
        std::fs::write(
            d.path().join("compose.yaml"),
            "services:\n  c: {image: busybox}\n",
        )
        .unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let p = Project::load(&opts(&sub)).unwrap();
        assert_eq!(p.files[0], d.path().join("compose.yaml"));
        assert_eq!(p.directory, d.path());
        let mut o = opts(d.path());
        o.environ.insert("COMPOSE_FILE".into(), "other.yaml".into());
        let p = Project::load(&o).unwrap();
        assert_eq!(p.services().map(|(n, _)| n).collect::<Vec<_>>(), ["b"]);
        let e = Project::load(&opts(Path::new("/"))).unwrap_err();
        assert!(matches!(e, Error::NoFile { .. }), "{e}");
    }

    #[test]
    fn env_files_defaults_networks_volumes_and_paths() {
        let d = dir_with(&[
            ("compose.yaml", "services:\n  a:\n    image: busybox:${T}\n    env_file: [a.env]\n    environment: {B: over, C}\n    volumes: [./data:/d, v:/v]\n    build: ./ctx\n  b:\n    image: busybox\n    networks: [front]\nnetworks:\n  front: {}\n  outside: {external: true}\nvolumes:\n  v:\n"),
            (".env", "T=1.36\n"),
            ("a.env", "A=1\nB=from-file\n"),
            ("alt.env", "T=alt\n"),
        ]);
        let mut o = opts(d.path());
        o.environ.insert("C".into(), "from-caller".into());
        let p = Project::load(&o).unwrap();
        let a = &p.model["services"]["a"];
        assert_eq!(a["image"], "busybox:1.36");
        assert_eq!(
            a["environment"],
            json!({"A": "1", "B": "over", "C": "from-caller"})
        );
        assert_eq!(
            a["volumes"][0]["source"],
            d.path().join("data").display().to_string()
        );
        assert_eq!(
            a["build"]["context"],
            d.path().join("ctx").display().to_string()
        );
        assert_eq!(a["networks"], json!({"default": null}));
        assert_eq!(
            p.resource_name("networks", "default"),
            format!("{}_default", p.name)
        );
        assert_eq!(p.resource_name("networks", "outside"), "outside");
        assert_eq!(p.resource_name("volumes", "v"), format!("{}_v", p.name));
        assert_eq!(p.start_order().unwrap().len(), 2);
        o.env_files = vec![PathBuf::from("alt.env")];
        assert_eq!(
            Project::load(&o).unwrap().model["services"]["a"]["image"],
            "busybox:alt"
        );
    }

    #[test]
    fn cycles_and_hashes() {
        let d = dir_with(&[("compose.yaml", "services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox, depends_on: [a]}\n")]);
        let p = Project::load(&opts(d.path())).unwrap();
        let e = p.start_order().unwrap_err().to_string();
        assert!(e.contains("dependency cycle: a -> b -> a"), "{e}");
        let d = dir_with(&[(
            "compose.yaml",
            "services:\n  a: {image: busybox, deploy: {replicas: 2}}\n",
        )]);
        let h1 = Project::load(&opts(d.path()))
            .unwrap()
            .config_hash("a")
            .unwrap();
        std::fs::write(
            d.path().join("compose.yaml"),
            "services:\n  a: {image: busybox, deploy: {replicas: 3}}\n",
        )
        .unwrap();
        let p = Project::load(&opts(d.path())).unwrap();
        assert_eq!(p.config_hash("a").unwrap(), h1, "scaling changes no hash");
        assert_eq!(p.scale("a"), 3);
        std::fs::write(
            d.path().join("compose.yaml"),
            "services:\n  a: {image: busybox, user: nobody}\n",
        )
        .unwrap();
        assert_ne!(
            Project::load(&opts(d.path()))
                .unwrap()
                .config_hash("a")
                .unwrap(),
            h1
        );
    }
}
