//! A project loaded: its files found and read (locate.rs), `.env` and
//! `--env-file`, interpolation, each file validated against the schema and
//! put in its long forms, the files merged in order, the project named,
//! then resolved (resolve.rs: profiles applied, paths made absolute and
//! references checked). The result is the resolved model (`config` prints
//! it) with the few things the rest of compose asks of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::locate::{absolute, environment, find_files, project_name};
pub use crate::locate::{normalize_project_name, valid_project_name, DEFAULT_FILES};
use crate::resolve::SUPPORTED_KEYS;

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
        Project::load_nested(opts, 0)
    }

    /// Loads a project included `depth` levels down (crate::include).
    pub(crate) fn load_nested(opts: &LoadOptions, depth: usize) -> Result<Project> {
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
        let mut includes = Vec::new();
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
            if let Some(inc) = doc.as_object_mut().and_then(|d| d.remove("include")) {
                includes.push((file.clone(), inc));
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
        // After the merge, so that what the files define is known.
        let mut included = crate::include::Included::default();
        let parent = crate::include::Parent {
            opts,
            directory: &directory,
            name: &name,
            depth,
        };
        for (file, inc) in &includes {
            crate::include::apply(&mut model, &mut origin, file, inc, &parent, &mut included)?;
        }
        warnings.extend(included.warnings);
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
        p.disabled.extend(included.disabled);
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
}

pub(crate) fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
