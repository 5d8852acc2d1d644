//! Container names: docker's rules, and generated `adjective_noun` names.

use crate::error::{Error, Result};

const ADJECTIVES: &[&str] = &[
    "agile", "brave", "calm", "clever", "eager", "gentle", "happy", "keen", "lucid", "merry",
    "nimble", "proud", "quiet", "rapid", "sharp", "steady", "swift", "tidy", "vivid", "witty",
];
const NOUNS: &[&str] = &[
    "anchor",
    "beacon",
    "bollard",
    "buoy",
    "cargo",
    "compass",
    "dock",
    "ferry",
    "harbor",
    "hull",
    "jetty",
    "keel",
    "lighthouse",
    "mast",
    "pier",
    "quay",
    "rudder",
    "schooner",
    "tug",
    "wharf",
];

/// A container's name by Docker's rule, `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`:
/// at least two characters, a leading `/` dropped (`--name /web` is web).
pub fn container_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.len() < 2 || validate(bare).is_err() {
        return Err(Error::InvalidName(name.to_string()));
    }
    Ok(bare.to_string())
}

/// Podman's rule for a pod's name, `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (one
/// character is enough).
pub fn validate(name: &str) -> Result<()> {
    let name_ok = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '.' | '-')));
    if name.is_empty() || name.len() > 253 || !name_ok {
        return Err(Error::InvalidName(name.to_string()));
    }
    Ok(())
}

/// A free `adjective_noun` name (a number appended when all are taken).
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    let id = crate::random_id();
    let seed = usize::from_str_radix(&id[..8], 16).unwrap_or(0);
    for attempt in 0..ADJECTIVES.len() * NOUNS.len() {
        let n = seed.wrapping_add(attempt.wrapping_mul(7919));
        let name = format!(
            "{}_{}",
            ADJECTIVES[n % ADJECTIVES.len()],
            NOUNS[(n / ADJECTIVES.len()) % NOUNS.len()]
        );
        let name = if attempt < 20 {
            name
        } else {
            format!("{name}{}", attempt)
        };
        if !taken(&name) {
            return name;
        }
    }
    format!("berth_{}", &id[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(validate("web-1.a_b").is_ok());
        assert!(validate("-x").is_err());
        assert!(validate("a/b").is_err());
        assert!(validate("").is_err());
        let n = generate(|_| false);
        assert!(validate(&n).is_ok());
        let n2 = generate(|c| c == n);
        assert_ne!(n, n2);
    }
}
