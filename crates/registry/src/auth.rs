//! Credentials and challenges.
//!
//! Credentials live where podman and Docker keep them, in the same JSON
//! (`{"auths": {"host": {"auth": base64("user:password")}}}`): the auth
//! file (`--authfile`, `$REGISTRY_AUTH_FILE`, else
//! `$XDG_RUNTIME_DIR/containers/auth.json`, else
//! `/run/containers/<uid>/auth.json`) is read and written; Docker's
//! `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`) is read after it.
//! The file is written beside and renamed, mode 0600, keeping every other
//! field (credential helpers, Docker's settings) as it was.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{RegistryError, Result};

/// A user name and password (or identity token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never the password: errors and logs print credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// `user:password`, as `--creds` takes them.
    pub fn parse(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(RegistryError::InvalidOption(
                "credentials must be USERNAME:PASSWORD".into(),
            )),
        }
    }
}

/// The auth file berth writes (and reads first).
pub fn default_auth_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&d).join("containers/auth.json");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/run/containers/{uid}/auth.json"))
}

/// Docker's config file, read after the auth file.
pub fn docker_config_file() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(Path::new(&d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
}

/// The keys a registry's entry may have in an `auths` map.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.extend(
            [
                "docker.io",
                "https://index.docker.io/v1/",
                "index.docker.io",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    keys
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RegistryError::AuthFile {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::AuthFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

fn decode_entry(path: &Path, entry: &Value) -> Result<Option<Credentials>> {
    let bad = |detail: &str| RegistryError::AuthFile {
        path: path.display().to_string(),
        detail: detail.to_string(),
    };
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("an \"auth\" value is not base64"))?;
        let raw = String::from_utf8(raw).map_err(|_| bad("an \"auth\" value is not UTF-8"))?;
        return Credentials::parse(&raw)
            .map(Some)
            .map_err(|_| bad("an \"auth\" value is not base64(user:password)"));
    }
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(Some(Credentials {
            username: u.into(),
            password: p.into(),
        }));
    }
    Ok(None)
}

/// The credentials stored for `registry` in `files` (the first that has
/// an entry wins).
pub fn lookup(registry: &str, files: &[PathBuf]) -> Result<Option<Credentials>> {
    for f in files {
        let Some(v) = read_json(f)? else { continue };
        for k in keys_for(registry) {
            if let Some(entry) = v["auths"].get(&k) {
                if let Some(c) = decode_entry(f, entry)? {
                    return Ok(Some(c));
                }
            }
        }
    }
    Ok(None)
}

/// The files credentials are read from, in order: `auth_file` (or the
/// default one), then Docker's config.
pub fn read_order(auth_file: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![auth_file.map_or_else(default_auth_file, Path::to_path_buf)];
    if let Some(d) = docker_config_file() {
        if !v.contains(&d) {
            v.push(d);
        }
    }
    v
}

/// Writes `value` to `path`: a temp file beside it, mode 0600, synced,
/// renamed; the directory is made (0700) when missing.
fn write_private(path: &Path, value: &Value) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let err = |e: std::io::Error| RegistryError::AuthFile {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An existing temp file keeps its mode: set it.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        if let Err(e) = std::fs::remove_file(&tmp) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("remove {}: {e} (left behind)", tmp.display());
            }
        }
    }
    written.map_err(err)
}

/// Stores `creds` for `registry` in `path`.
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut v = read_json(path)?.unwrap_or_else(|| json!({}));
    if !v.is_object() {
        return Err(RegistryError::AuthFile {
            path: path.display().to_string(),
            detail: "not a JSON object".into(),
        });
    }
    if !v["auths"].is_object() {
        v["auths"] = json!({});
    }
    let raw = format!("{}:{}", creds.username, creds.password);
    v["auths"][registry] = json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)});
    write_private(path, &v)
}

/// Removes the entries of `registry` (every registry when `None`) from
/// `path`; returns whether there was one.
pub fn remove(path: &Path, registry: Option<&str>) -> Result<bool> {
    let Some(mut v) = read_json(path)? else {
        return Ok(false);
    };
    let Some(auths) = v.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    match registry {
        Some(r) => {
            for k in keys_for(r) {
                auths.remove(&k);
            }
        }
        None => auths.clear(),
    }
    let removed = auths.len() != before;
    if removed {
        write_private(path, &v)?;
    }
    Ok(removed)
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `a="x, y",b=z` into pairs; quoted values keep their commas.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_string(), n),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((name, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None, "no realm");
    }

    #[test]
    fn credentials_round_trip_with_mode_0600_and_other_fields_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        store(&path, "localhost:5000", &c).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            lookup("localhost:5000", std::slice::from_ref(&path)).unwrap(),
            Some(c.clone())
        );
        // Docker's own fields survive a write.
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["credsStore"] = json!("desktop");
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        store(&path, "other:1", &c).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "desktop");
        assert!(remove(&path, Some("localhost:5000")).unwrap());
        assert!(!remove(&path, Some("localhost:5000")).unwrap());
        assert_eq!(lookup("localhost:5000", &[path]).unwrap(), None);
    }

    #[test]
    fn docker_hub_entries_are_found_under_their_legacy_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let c = lookup("docker.io", &[path]).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(!format!("{c:?}").contains('p'), "no password in Debug");
    }

    #[test]
    fn a_broken_auth_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = lookup("x", &[path]).unwrap_err();
        assert!(e.to_string().starts_with("auth file "), "{e}");
    }
}
