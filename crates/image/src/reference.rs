//! Image references parsed like Docker's: `busybox` is
//! `docker.io/library/busybox:latest`; `localhost:5000/a/b@sha256:…` keeps
//! its registry and digest.
//!
//! Grammar (distribution/reference): `[domain/]path[:tag][@digest]`, where
//! the first component is a domain when it has a `.` or a `:` or is
//! `localhost`; path components are lowercase alphanumerics joined by `.`,
//! `_`, `__` or runs of `-`; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `quay.io`.
    pub registry: String,
    /// `library/busybox`, `team/app`.
    pub repository: String,
    /// The tag, if one was given or implied (`latest` when there is no
    /// digest either).
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a reference was refused; the message names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?} is not a valid repository name")]
    BadName(String),
    #[error("invalid reference format: {0:?} is not a valid tag (letters, digits, '_', '.', '-'; at most 128)")]
    BadTag(String),
    #[error("invalid reference format: {0}")]
    BadDigest(String),
    #[error("invalid reference format: repository name is longer than 255 characters")]
    TooLong,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ joined by separators: "." | "_" | "__" | "-"+
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || b"_.-".contains(x))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| ReferenceError::BadDigest(e.to_string()))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag(t.to_string()));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(ReferenceError::BadName(name.to_string()));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(name.to_string()));
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(ReferenceError::BadName(name.to_string()));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(ReferenceError::TooLong);
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `docker.io/library/busybox`
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form users type: `busybox:latest`, `team/app:1`,
    /// `localhost:5000/app:1`.
    pub fn familiar(&self) -> String {
        let mut s = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(p("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(
            p("busybox:1.36").to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(p("team/app").to_string(), "docker.io/team/app:latest");
        assert_eq!(
            p("docker.io/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(p("localhost/app").registry, "localhost");
        let r = p("localhost:5000/a/b:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "a/b", Some("v1"))
        );
        let r = p(&format!("quay.io/x/y@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.unwrap().to_string(), D);
        let r = p(&format!("busybox:1@{D}"));
        assert_eq!(r.tag.as_deref(), Some("1"));
        // A first component with a dot is a registry, as in Docker.
        assert_eq!(
            p("docker.io/a__b-c.d_e/f---g").repository,
            "a__b-c.d_e/f---g"
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(p("busybox").familiar(), "busybox:latest");
        assert_eq!(p("team/app:2").familiar(), "team/app:2");
        assert_eq!(p("localhost:5000/app:1").familiar(), "localhost:5000/app:1");
    }

    #[test]
    fn bad_references_are_named() {
        assert_eq!("".parse::<Reference>().unwrap_err(), ReferenceError::Empty);
        assert!(matches!(
            "BusyBox".parse::<Reference>(),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            "busybox:".parse::<Reference>(),
            Err(ReferenceError::BadTag(_))
        ));
        assert!(matches!(
            "busybox:-x".parse::<Reference>(),
            Err(ReferenceError::BadTag(_))
        ));
        assert!(matches!(
            "a//b".parse::<Reference>(),
            Err(ReferenceError::BadName(_))
        ));
        assert!(matches!(
            "-a".parse::<Reference>(),
            Err(ReferenceError::BadName(_))
        ));
        assert!(matches!(
            "a@sha256:xyz".parse::<Reference>(),
            Err(ReferenceError::BadDigest(_))
        ));
        assert!(matches!(
            "host:port/a".parse::<Reference>(),
            Err(ReferenceError::BadName(_))
        ));
        let long = "a".repeat(300);
        assert_eq!(
            long.parse::<Reference>().unwrap_err(),
            ReferenceError::TooLong
        );
        assert!("busybox:1.0"
            .parse::<Reference>()
            .unwrap()
            .to_string()
            .ends_with(":1.0"));
    }
}
