//! Where a project is: its files (`-f`, COMPOSE_FILE, or the default
//! names in the directory or a parent, with the override file), its
//! variables (`.env` or `--env-file` under the caller's environment) and
//! its name (`-p`, COMPOSE_PROJECT_NAME, `name:`, or the directory's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::LoadOptions;

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

pub(crate) fn absolute(base: &Path, p: &Path) -> PathBuf {
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

pub(crate) fn expand_home(p: &str, env: &BTreeMap<String, String>) -> String {
    match p.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", env.get("HOME").map_or("/root", String::as_str))
        }
        _ => p.to_string(),
    }
}

/// The files to read: `-f`, else COMPOSE_FILE, else the first default name
/// found in the directory or a parent, with its override file.
pub(crate) fn find_files(opts: &LoadOptions) -> Result<Vec<PathBuf>> {
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
pub(crate) fn environment(opts: &LoadOptions, dir: &Path) -> Result<BTreeMap<String, String>> {
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

pub(crate) fn project_name(
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
