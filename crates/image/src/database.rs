//! Whether the store's database (`berth.db`) can be trusted with the
//! content on disk.
//!
//! Layers and blobs are only ever removed because the database does not
//! name them. A database that lost its rows (emptied, removed, replaced by
//! an empty one) or whose pages are damaged names too little, and trusting
//! it would delete every image the store holds. So no new database is
//! started over existing content, `system check` audits the database
//! before it removes anything, and a damaged database is reported as such,
//! naming the file.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// The database's file name in a store root.
pub const FILE: &str = berth_store::FILE;

/// A row in a database berth started over an empty store, or rebuilt on
/// the user's word (`system check --rebuild`): such a database may name
/// nothing while content exists (a first `load` killed between writing its
/// files and its rows), and `check` may then remove that content. A
/// database without it that names nothing is not trusted.
const BORN_EMPTY: &str = "born_over_empty_store";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(
        "database {} is {state} while the store holds {}: \
         refusing to start an empty database over them (`berth system check` says how to recover)",
        path.display(),
        holdings(*layers, *blobs)
    )]
    Lost {
        path: PathBuf,
        /// "missing" or "empty".
        state: &'static str,
        layers: usize,
        blobs: usize,
    },
    #[error("database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Its schema could not be brought to this berth's version (the cause
    /// is the source, printed after it in a chain).
    #[error("database {}", path.display())]
    Schema {
        path: PathBuf,
        #[source]
        source: berth_store::SchemaError,
    },
    #[error("read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why `system check` does not trust a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// The file is missing or empty while content exists.
    Lost {
        state: &'static str,
        layers: usize,
        blobs: usize,
    },
    /// SQLite's integrity check failed (its first findings), or the file
    /// could not be read as a database at all.
    Damaged(Vec<String>),
    /// The database names no image, layer or blob while content exists,
    /// and it was not started over an empty store.
    NamesNothing { layers: usize, blobs: usize },
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::Lost {
                state,
                layers,
                blobs,
            } => write!(
                f,
                "the database is {state}, but the store holds {}",
                holdings(*layers, *blobs)
            ),
            Distrust::Damaged(findings) => {
                write!(f, "the database is damaged: {}", findings.join("; "))
            }
            Distrust::NamesNothing { layers, blobs } => write!(
                f,
                "the database names no image, layer or blob, but the store holds {} \
                 (it was emptied or replaced)",
                holdings(*layers, *blobs)
            ),
        }
    }
}

/// "1 layer and 2 blobs".
fn holdings(layers: usize, blobs: usize) -> String {
    let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
    format!("{} and {}", n(layers, "layer"), n(blobs, "blob"))
}

/// Entries under `layers/` and `blobs/sha256/` (temp entries included: a
/// lost database cannot say what they were).
pub fn content_counts(root: &Path) -> Result<(usize, usize), DatabaseError> {
    let count = |dir: PathBuf| match fs::read_dir(&dir) {
        Ok(d) => Ok(d.flatten().count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(DatabaseError::Io { path: dir, source }),
    };
    Ok((
        count(root.join("layers"))?,
        count(root.join("blobs").join("sha256"))?,
    ))
}

/// Whether the database file is missing or empty, i.e. opening it would
/// start a new database.
pub(crate) fn file_state(path: &Path) -> Result<Option<&'static str>, DatabaseError> {
    match fs::metadata(path) {
        Ok(m) if m.len() == 0 => Ok(Some("empty")),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some("missing")),
        Err(source) => Err(DatabaseError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Refuses to start a new database over content (see [`DatabaseError::Lost`]);
/// whether the database will be new.
pub(crate) fn guard_new(root: &Path) -> Result<bool, DatabaseError> {
    let path = root.join(FILE);
    let Some(state) = file_state(&path)? else {
        return Ok(false);
    };
    let (layers, blobs) = content_counts(root)?;
    if layers + blobs > 0 {
        return Err(DatabaseError::Lost {
            path,
            state,
            layers,
            blobs,
        });
    }
    Ok(true)
}

/// Marks a database started over an empty store (see [`BORN_EMPTY`]).
pub(crate) fn mark_born_empty(db: &Connection) -> rusqlite::Result<()> {
    db.execute(
        "INSERT OR IGNORE INTO store_meta (key, value) VALUES (?1, '1')",
        [BORN_EMPTY],
    )?;
    Ok(())
}

/// Checks that the database of store `root` may decide what content to
/// remove: the file is there, passes SQLite's integrity check, and names
/// something when content exists (unless berth started it over an empty
/// store). Reads only; opens no connection that could create the file.
pub fn audit(root: &Path) -> Result<Option<Distrust>, DatabaseError> {
    let path = root.join(FILE);
    let (layers, blobs) = content_counts(root)?;
    if let Some(state) = file_state(&path)? {
        if layers + blobs > 0 {
            return Ok(Some(Distrust::Lost {
                state,
                layers,
                blobs,
            }));
        }
        return Ok(None);
    }
    let sqlite = |source| DatabaseError::Sqlite {
        path: path.clone(),
        source,
    };
    let db = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    db.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite)?;
    // The full check (indexes against their tables too): `system check` is
    // rare, and this is what decides whether content may be deleted.
    let findings: Vec<String> = match db.prepare("PRAGMA integrity_check(20)").and_then(|mut st| {
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()
    }) {
        Ok(rows) => rows,
        Err(e) if damaged(&e) => vec![e.to_string()],
        Err(e) => return Err(sqlite(e)),
    };
    if findings != ["ok"] {
        return Ok(Some(Distrust::Damaged(findings)));
    }
    if layers + blobs == 0 {
        return Ok(None);
    }
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sqlite)?;
    let mut named = 0i64;
    for t in ["images", "layers", "image_blobs"] {
        if tables.iter().any(|have| have == t) {
            named += db
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(sqlite)?;
        }
    }
    let born_empty = tables.iter().any(|t| t == "store_meta")
        && db
            .query_row(
                "SELECT COUNT(*) FROM store_meta WHERE key = ?1",
                [BORN_EMPTY],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sqlite)?
            > 0;
    if named == 0 && !born_empty {
        return Ok(Some(Distrust::NamesNothing { layers, blobs }));
    }
    Ok(None)
}

/// Whether SQLite says the file is damaged or not a database.
pub fn damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The SQLite error in `e`'s chain that says the database is damaged.
pub fn find_damage<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rusqlite::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(s) = err.downcast_ref::<rusqlite::Error>() {
            if damaged(s) {
                return Some(s);
            }
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("layers")).unwrap();
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        dir
    }

    fn add_content(root: &Path) {
        fs::create_dir(root.join("layers").join("ab".repeat(32))).unwrap();
        fs::write(root.join("blobs/sha256").join("cd".repeat(32)), b"x").unwrap();
    }

    #[test]
    fn a_new_database_starts_only_over_an_empty_store() {
        let dir = store();
        assert!(guard_new(dir.path()).unwrap());
        add_content(dir.path());
        let e = guard_new(dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains("is missing while the store holds 1 layer and 1 blob"),
            "{e}"
        );
        fs::write(dir.path().join(FILE), b"").unwrap();
        assert!(matches!(
            guard_new(dir.path()),
            Err(DatabaseError::Lost { state: "empty", .. })
        ));
    }

    #[test]
    fn a_database_born_empty_may_name_nothing_one_made_otherwise_may_not() {
        let dir = store();
        let db = crate::store::open_connection(dir.path()).unwrap();
        add_content(dir.path());
        assert_eq!(audit(dir.path()).unwrap(), None);
        db.execute_batch("DROP TABLE store_meta").unwrap();
        assert_eq!(
            audit(dir.path()).unwrap(),
            Some(Distrust::NamesNothing {
                layers: 1,
                blobs: 1
            })
        );
    }

    #[test]
    fn garbage_in_place_of_a_database_is_damaged() {
        let dir = store();
        fs::write(dir.path().join(FILE), vec![0x5a; 8192]).unwrap();
        assert!(matches!(
            audit(dir.path()).unwrap(),
            Some(Distrust::Damaged(_))
        ));
    }
}
