//! Loading and validating an OCI bundle: `config.json` plus a root filesystem.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A bundle whose config was parsed and checked, with absolute paths.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub path: PathBuf,
    /// The parsed config.
    pub spec: Spec,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Reads `<dir>/config.json` and checks what must hold before anything is
    /// created: a root filesystem that exists, a process, known namespaces
    /// (the parser rejects unknown types), no namespace listed twice.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let path = Self::absolute(dir)?;
        let config = path.join("config.json");
        let text = match std::fs::read(&config) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ConfigMissing(path))
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("read {}", config.display()),
                    source: e,
                })
            }
        };
        let spec: Spec = serde_json::from_slice(&text).map_err(|e| Error::ConfigInvalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Self::from_spec(path, spec)
    }

    /// The bundle directory's canonical path.
    pub fn absolute(dir: &Path) -> Result<PathBuf> {
        std::fs::canonicalize(dir).map_err(|e| Error::Io {
            context: format!("bundle {}", dir.display()),
            source: e,
        })
    }

    /// Checks a spec that belongs to the bundle at `path` (absolute).
    pub fn from_spec(path: PathBuf, spec: Spec) -> Result<Bundle> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::SpecInvalid("root is missing".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            path.join(root.path())
        };
        if !rootfs.is_dir() {
            return Err(Error::RootfsMissing(rootfs));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::SpecInvalid("process is missing".into()))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::SpecInvalid("process.args must not be empty".into()));
        }
        if !process.cwd().is_absolute() {
            return Err(Error::SpecInvalid(format!(
                "process.cwd {:?} must be an absolute path",
                process.cwd()
            )));
        }
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Error::SpecInvalid("linux section is missing".into()))?;
        let mut seen: Vec<LinuxNamespaceType> = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            if seen.contains(&ns.typ()) {
                return Err(Error::SpecInvalid(format!(
                    "namespace {} listed twice",
                    ns.typ()
                )));
            }
            seen.push(ns.typ());
        }
        let has_userns = seen.contains(&LinuxNamespaceType::User);
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps && !has_userns {
            return Err(Error::SpecInvalid(
                "uidMappings given without a user namespace".into(),
            ));
        }
        for m in spec.mounts().iter().flatten() {
            if !m.destination().is_absolute() {
                return Err(Error::SpecInvalid(format!(
                    "mount destination {:?} must be absolute",
                    m.destination()
                )));
            }
        }
        // Host-global sysctls are refused before anything is made.
        crate::sysctl::check_all(&spec)?;
        Ok(Bundle { path, spec, rootfs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    const MINIMAL: &str = r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
        "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#;

    #[test]
    fn loads_a_minimal_bundle() {
        let dir = bundle_with(MINIMAL);
        let b = Bundle::load(dir.path()).unwrap();
        assert!(b.rootfs.ends_with("rootfs"));
    }

    #[test]
    fn missing_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bundle::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::ConfigMissing(_)), "{err}");
    }

    #[test]
    fn invalid_json_is_named() {
        let dir = bundle_with("{not json");
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("invalid config.json"), "{err}");
    }

    #[test]
    fn unknown_namespace_is_rejected() {
        let dir = bundle_with(&MINIMAL.replace("\"pid\"", "\"bogus\""));
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let dir = bundle_with(&MINIMAL.replace("\"mount\"", "\"pid\""));
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn missing_rootfs_is_named() {
        let dir = bundle_with(MINIMAL);
        std::fs::remove_dir(dir.path().join("rootfs")).unwrap();
        let err = Bundle::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::RootfsMissing(_)), "{err}");
    }
}
