//! `include` (Compose Specification, include section): each entry is a
//! Compose application of its own, loaded with its own project directory
//! (relative paths resolve from there) and its own `.env` or `env_file`,
//! then its services, networks, volumes, secrets and configs are copied
//! into the including model. Included after the project's files are
//! merged, so a name both define is seen: a definition equal to the local
//! one is the same resource, a different one an error naming both (the
//! specification lets a tool warn; berth refuses rather than pick one).
//!
//! An included application is loaded under the including project's name,
//! so its networks and volumes are the project's (`<project>_<key>`), as
//! Compose v2 names them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::locate::absolute;
use crate::project::{LoadOptions, Project};

/// How deep includes may nest (a cycle ends here with an error).
pub(crate) const MAX_DEPTH: usize = 8;

/// The kinds of resources an included application brings.
const KINDS: [&str; 5] = ["services", "networks", "volumes", "secrets", "configs"];

/// What an include left besides the model: its services that profiles
/// disabled (not orphans of the project) and its warnings.
#[derive(Debug, Default)]
pub(crate) struct Included {
    pub disabled: Vec<String>,
    pub warnings: Vec<String>,
}

/// The including project: where its paths resolve from, its name, and the
/// command line's profiles and environment (which the included see too).
pub(crate) struct Parent<'a> {
    pub opts: &'a LoadOptions,
    pub directory: &'a Path,
    pub name: &'a str,
    pub depth: usize,
}

/// Loads each entry of `file`'s `include` and copies its resources into
/// `model` (`origin`: the file each service comes from).
pub(crate) fn apply(
    model: &mut Value,
    origin: &mut BTreeMap<String, String>,
    file: &str,
    include: &Value,
    parent: &Parent<'_>,
    out: &mut Included,
) -> Result<()> {
    let invalid = |path: String, problem: String| Error::Invalid {
        file: file.to_string(),
        path,
        problem,
    };
    for (i, entry) in include.as_array().into_iter().flatten().enumerate() {
        let at = format!("include.{i}");
        if parent.depth >= MAX_DEPTH {
            return Err(invalid(
                at,
                format!("includes nest more than {MAX_DEPTH} deep: is a file including itself?"),
            ));
        }
        let paths = |v: &Value| -> Vec<PathBuf> {
            match v {
                Value::String(s) => vec![absolute(parent.directory, Path::new(s))],
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| absolute(parent.directory, Path::new(s)))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let (files, project_directory, env_files) = match entry {
            Value::String(_) => (paths(entry), None, Vec::new()),
            Value::Object(m) => (
                m.get("path").map(paths).unwrap_or_default(),
                m.get("project_directory")
                    .and_then(Value::as_str)
                    .map(|d| absolute(parent.directory, Path::new(d))),
                m.get("env_file").map(paths).unwrap_or_default(),
            ),
            _ => (Vec::new(), None, Vec::new()),
        };
        if files.is_empty() {
            return Err(invalid(at, "names no file to include".into()));
        }
        let opts = LoadOptions {
            files,
            project_name: Some(parent.name.to_string()),
            project_directory,
            env_files,
            profiles: parent.opts.profiles.clone(),
            cwd: parent.directory.to_path_buf(),
            environ: parent.opts.environ.clone(),
        };
        let sub = Project::load_nested(&opts, parent.depth + 1)?;
        let from = sub
            .files
            .first()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        for kind in KINDS {
            let Some(theirs) = sub.model.get(kind).and_then(Value::as_object) else {
                continue;
            };
            for (key, def) in theirs {
                if !model[kind].is_object() {
                    model[kind] = Value::Object(serde_json::Map::new());
                }
                match model[kind].get(key) {
                    Some(ours) if ours != def => {
                        return Err(invalid(
                            format!("{kind}.{key}"),
                            format!(
                                "conflicts with the {kind}.{key} that {from} (included) defines"
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        model[kind][key] = def.clone();
                        if kind == "services" {
                            origin.insert(key.clone(), from.clone());
                        }
                    }
                }
            }
        }
        out.disabled.extend(sub.disabled);
        out.warnings.extend(sub.warnings);
    }
    Ok(())
}
