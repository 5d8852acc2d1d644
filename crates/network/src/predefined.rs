//! docker's two networks that are not bridges: `host` (the container
//! stays in the host's network namespace) and `none` (a namespace of its
//! own with loopback only). Every store has them, as every docker daemon
//! does: `network ls` and `inspect` show them, nobody makes or removes
//! them. What a container uses is its `--network` mode; these objects give
//! the mode an id and a place in the listings.
//!
//! Their ids and creation times are made once per store and kept in a
//! small file beside the database (no schema change for two constant
//! rows); concurrent first uses agree, as the file appears whole or not
//! at all (hard link of a complete temporary file).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::{now, random_hex};
use crate::{Context, Error, Result};

/// The file, in the store's root.
const FILE: &str = "predefined-networks.json";

/// Which of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Host,
    None,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Host, Kind::None];

    /// Its name, which is also the `--network` mode.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::None => "none",
        }
    }

    /// Its driver as docker names it.
    pub fn driver(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::None => "null",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One of them in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predefined {
    pub kind: Kind,
    pub id: String,
    pub created: String,
}

/// Both, made on first use.
pub fn list(root: &Path) -> Result<Vec<Predefined>> {
    let path = root.join(FILE);
    if let Some(found) = read(&path)? {
        return Ok(found);
    }
    let made: Vec<Predefined> = Kind::ALL
        .into_iter()
        .map(|kind| Predefined {
            kind,
            id: random_hex(64),
            created: now(),
        })
        .collect();
    let text = serde_json::to_vec(&made).map_err(|e| Error::Host(format!("encode {FILE}: {e}")))?;
    let tmp = root.join(format!(".{FILE}.{}", random_hex(8)));
    std::fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
    // Whoever links first wins; the others read what it wrote.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(made),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| Error::Damaged(format!("{} vanished", path.display())))
        }
        Err(e) => Err(e).ctx(|| format!("create {}", path.display())),
    }
}

fn read(path: &Path) -> Result<Option<Vec<Predefined>>> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            Error::Damaged(format!(
                "{} is damaged ({e}): remove it and new ids are made",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
    }
}

/// The one `key` names: its name, its id, or a prefix of its id.
pub fn find(root: &Path, key: &str) -> Result<Option<Predefined>> {
    if key.is_empty() {
        return Ok(None);
    }
    Ok(list(root)?
        .into_iter()
        .find(|p| p.kind.name() == key || p.id.starts_with(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_once_and_found_by_name_or_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let first = list(dir.path()).unwrap();
        assert_eq!(first.len(), 2);
        assert_ne!(first[0].id, first[1].id);
        assert_eq!(list(dir.path()).unwrap(), first, "ids must stay");
        let none = find(dir.path(), "none").unwrap().unwrap();
        assert_eq!(none.kind, Kind::None);
        assert_eq!(none.kind.driver(), "null");
        let host = &first[0];
        assert_eq!(
            find(dir.path(), &host.id[..12]).unwrap().as_ref(),
            Some(host)
        );
        assert_eq!(find(dir.path(), "bridge").unwrap(), None);
        assert_eq!(find(dir.path(), "").unwrap(), None);
    }
}
