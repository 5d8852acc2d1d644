//! The store's database, `ROOT/berth.db`: one SQLite file for images,
//! layers, the build cache, containers, events, volumes and networks, one
//! connection per command, and one schema with a version.
//!
//! The schema is a list of migrations applied in order. The database's
//! `PRAGMA user_version` says how many of them it has had; a command that
//! finds it behind applies the rest inside one `BEGIN IMMEDIATE`
//! transaction (two commands starting at once: the second waits, reads the
//! version again and finds nothing left to do). A current database costs
//! one pragma read: no schema text runs on it.
//!
//! Stores made before the schema had a version (`user_version` 0) are
//! adopted by the first migration, which is written to be idempotent over
//! them: every table `IF NOT EXISTS`, then the columns older berths lacked,
//! added when `table_info` says they are missing. Later migrations are
//! plain steps and must never be edited once released: add one instead.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

/// The database's file name in a store root.
pub const FILE: &str = "berth.db";

/// What opening or upgrading the database can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database was made or upgraded by a newer berth.
    #[error(
        "the database's schema version is {found}, newer than this berth knows ({known}): \
         use the berth that upgraded it"
    )]
    TooNew { found: i64, known: usize },
    /// SQLite refused a statement.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The database file could not be created with its private mode.
    #[error("create {}: {source}", path.display())]
    Create {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One step of the schema.
enum Step {
    Sql(&'static str),
    Fn(fn(&Connection) -> rusqlite::Result<()>),
}

/// A migration: what it does (for the reader), and its steps.
struct Migration {
    #[allow(dead_code)] // documentation that stays next to the steps
    what: &'static str,
    steps: &'static [Step],
}

/// The schema, oldest first. Never edit a released entry: append one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        what: "the schema as berth made it before versions (adopts such stores)",
        steps: &[Step::Sql(V1_TABLES), Step::Fn(v1_added_columns)],
    },
    Migration {
        what: "pods: a row per pod (berth pod, kube play), its options as JSON",
        steps: &[Step::Sql(V2_PODS)],
    },
    Migration {
        what: "the pool of user namespace id ranges, one row per container holding one",
        steps: &[Step::Sql(V3_USERNS_RANGES)],
    },
    Migration {
        what: "a pod's user namespace range goes with the pod's row",
        steps: &[Step::Sql(V4_POD_USERNS_RANGES)],
    },
    Migration {
        what: "per-network endpoint settings: the aliases a container had on all its networks stay on each",
        steps: &[Step::Sql(V5_ENDPOINTS)],
    },
    Migration {
        what: "a network's IPAM settings (--ip-range, --aux-address, --ipam-opt, --attachable) as JSON",
        steps: &[Step::Sql(V6_NETWORK_IPAM)],
    },
];

/// The version this berth brings a database to.
pub const VERSION: usize = MIGRATIONS.len();

/// Pods: their members are containers whose config names the pod's id;
/// the shared namespaces are files of the run directory, not rows.
const V2_PODS: &str = "
CREATE TABLE pods (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    config TEXT NOT NULL          -- JSON: berth_engine::pods::PodConfig
);
";

/// Each container with a user namespace of its own holds `size` ids from
/// `offset` of the host's pool (the same offset in the uid and the gid
/// pool). Containers that share one namespace (`--network container:X`)
/// each hold a row for it, so the range is free only when the last of them
/// is gone. A container's rows go with its row (the trigger), in the same
/// statement: removal cannot leak them.
const V3_USERNS_RANGES: &str = "
CREATE TABLE userns_ranges (container_id TEXT PRIMARY KEY, offset INTEGER NOT NULL,
    size INTEGER NOT NULL);
CREATE INDEX userns_ranges_offset ON userns_ranges (offset);
CREATE TRIGGER userns_ranges_released AFTER DELETE ON containers BEGIN
    DELETE FROM userns_ranges WHERE container_id = old.id;
END;
";

/// A pod with a user namespace of its own holds its range in
/// `userns_ranges` under the pod's id (its members share it, each with a
/// row of its own); the pod's row going frees it, as a container's does.
const V4_POD_USERNS_RANGES: &str = "
CREATE TRIGGER userns_ranges_released_by_pod AFTER DELETE ON pods BEGIN
    DELETE FROM userns_ranges WHERE container_id = old.id;
END;
";

/// A container's config (JSON) kept one alias list for all its networks;
/// now the first network's stay in `network_aliases` and each of
/// `extra_networks` has its own entry in `endpoints`. Containers made
/// before answered their aliases on every network: each extra network
/// gets the list, so nothing a peer resolves changes with the upgrade.
const V6_NETWORK_IPAM: &str = "
ALTER TABLE networks ADD COLUMN ipam TEXT NOT NULL DEFAULT '{}';
";

const V5_ENDPOINTS: &str = "
UPDATE containers SET config = json_set(config, '$.endpoints', (
    SELECT json_group_object(n.value,
        json_object('aliases', json(json_extract(containers.config, '$.network_aliases'))))
    FROM json_each(containers.config, '$.extra_networks') AS n))
WHERE json_valid(config)
    AND json_array_length(config, '$.extra_networks') > 0
    AND json_array_length(config, '$.network_aliases') > 0
    AND json_type(config, '$.endpoints') IS NULL;
";

const V1_TABLES: &str = "
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,          -- config digest: the image id
    manifest TEXT NOT NULL,       -- manifest blob digest
    created TEXT,
    size INTEGER NOT NULL,        -- uncompressed size of its layers
    added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,        -- docker.io/library/busybox:latest
    image TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS layers (
    chain TEXT PRIMARY KEY,       -- chain id: the layer with all below it
    diff TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image TEXT NOT NULL REFERENCES images(id),
    position INTEGER NOT NULL,
    chain TEXT NOT NULL REFERENCES layers(chain),
    PRIMARY KEY (image, position)
);
CREATE TABLE IF NOT EXISTS image_blobs (
    image TEXT NOT NULL REFERENCES images(id),
    digest TEXT NOT NULL,
    PRIMARY KEY (image, digest)
);

CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,         -- sha256 of the step and all before it
    diffs TEXT NOT NULL,          -- JSON array: the diff_ids after the step
    created TEXT NOT NULL,        -- when the step ran: its history time
    used TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache_layers (
    key TEXT NOT NULL REFERENCES build_cache(key) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain TEXT NOT NULL REFERENCES layers(chain),
    PRIMARY KEY (key, position)
);

CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    config TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    pid_start INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    monitor_start INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL DEFAULT '',
    finished_at TEXT NOT NULL DEFAULT '',
    restart_count INTEGER NOT NULL DEFAULT 0,
    stopped_by_user INTEGER NOT NULL DEFAULT 0,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    health TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);

CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    internal INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS network_leases (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    veth TEXT NOT NULL,
    iface TEXT NOT NULL,
    names TEXT NOT NULL,
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE TABLE IF NOT EXISTS network_ports (
    container_id TEXT NOT NULL,
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    UNIQUE (proto, host_ip, host_port)
);
";

/// Columns that berths before versions added to tables they had made
/// earlier: a store of theirs may lack them (`CREATE TABLE IF NOT EXISTS`
/// leaves an existing table as it is).
const V1_COLUMNS: &[(&str, &str, &str)] = &[("containers", "health", "TEXT NOT NULL DEFAULT ''")];

fn v1_added_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, def) in V1_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )?;
        if !present {
            // Inside the migration's immediate transaction: no other
            // command can add it meanwhile.
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {def}"))?;
        }
    }
    Ok(())
}

/// The database's schema version (`PRAGMA user_version`).
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the database to [`VERSION`]; does nothing (one pragma read) on a
/// current one. Returns the version it found.
pub fn migrate(conn: &mut Connection) -> Result<usize, SchemaError> {
    let found = known(version(conn)?)?;
    if found == VERSION {
        return Ok(found);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another command may have migrated while this one waited for the lock.
    let now = known(version(&tx)?)?;
    for m in &MIGRATIONS[now..] {
        for step in m.steps {
            match step {
                Step::Sql(sql) => tx.execute_batch(sql)?,
                Step::Fn(f) => f(&tx)?,
            }
        }
    }
    // A pragma takes no bound parameter; VERSION is our own constant.
    tx.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
    tx.commit()?;
    tracing::info!("store database: schema version {now} brought to {VERSION}");
    Ok(found)
}

/// A version this berth has migrations up to (a negative one is no
/// berth's: refused as well).
fn known(found: i64) -> Result<usize, SchemaError> {
    usize::try_from(found)
        .ok()
        .filter(|v| *v <= VERSION)
        .ok_or(SchemaError::TooNew {
            found,
            known: VERSION,
        })
}

/// Opens `path` the way every berth connection is set up: WAL (readers
/// never wait for a writer), synchronous=NORMAL, foreign keys, a busy
/// timeout (two commands writing at once wait for each other instead of
/// failing), and no checkpoint on close (each berth command is a short
/// process: a checkpoint when it exits would cost fsyncs every time;
/// SQLite's auto-checkpoint runs as the WAL grows, kept short: see below).
/// The schema is not touched: see [`open`].
pub fn configure(path: &Path) -> Result<Connection, SchemaError> {
    // The database holds every container's environment (secrets): it is
    // made 0600 before SQLite creates it with 0644, and SQLite gives its
    // WAL and shared-memory files the database's mode.
    saferoot::private::append_private_file(path).map_err(|source| SchemaError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "foreign_keys", "ON")?;
    db.busy_timeout(std::time::Duration::from_secs(30))?;
    // Every command is a new process, so every command's first connection
    // rebuilds the WAL index from the whole WAL (SQLite's recovery: about
    // 1.6 us a frame here, 1.5 ms at the default 1000-page threshold). A
    // short WAL keeps that small; the checkpoints it takes (two fsyncs)
    // come every few runs instead of every fiftieth.
    db.pragma_update(None, "wal_autocheckpoint", 128)?;
    db.pragma_update(None, "journal_size_limit", 4 << 20)?;
    db.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(db)
}

/// [`configure`] and [`migrate`]: a connection to a current database.
pub fn open(path: &Path) -> Result<Connection, SchemaError> {
    let mut db = configure(path)?;
    migrate(&mut db)?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(c: &Connection) -> Vec<String> {
        c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn new_database_gets_every_table_and_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join(FILE)).unwrap();
        assert_eq!(known(version(&c).unwrap()).unwrap(), VERSION);
        let t = tables(&c);
        for want in [
            "images",
            "tags",
            "layers",
            "build_cache",
            "containers",
            "events",
            "volumes",
            "networks",
            "network_leases",
            "network_ports",
            "store_meta",
            "userns_ranges",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn current_database_runs_no_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        drop(open(&path).unwrap());
        // A table dropped behind the schema's back stays dropped: proof
        // that a current database's schema is not executed again.
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE volumes")
            .unwrap();
        let c = open(&path).unwrap();
        assert!(!tables(&c).iter().any(|t| t == "volumes"));
    }

    #[test]
    fn store_before_versions_gains_missing_column_keeps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        // The containers table as the first berths made it (no health).
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 image_id TEXT NOT NULL, config TEXT NOT NULL, created TEXT NOT NULL,
                 status TEXT NOT NULL);
             INSERT INTO containers VALUES ('c1', 'web', 'i1', '{}', 'now', 'exited');",
        )
        .unwrap();
        drop(old);
        let c = open(&path).unwrap();
        assert_eq!(known(version(&c).unwrap()).unwrap(), VERSION);
        let (name, health): (String, String) = c
            .query_row("SELECT name, health FROM containers", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((name.as_str(), health.as_str()), ("web", ""));
    }

    #[test]
    fn aliases_of_a_v4_container_stay_on_each_of_its_networks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut c = Connection::open(&path).unwrap();
        for step in [V1_TABLES, V2_PODS, V3_USERNS_RANGES] {
            c.execute_batch(step).unwrap();
        }
        c.execute_batch("PRAGMA user_version = 3").unwrap();
        let rows = [
            // On two networks: the one list goes to the second as well.
            (
                "c1",
                r#"{"network":"n1","extra_networks":["n2","n3"],"network_aliases":["a","b"]}"#,
            ),
            // One network, or no aliases: left as they were.
            ("c2", r#"{"network":"n1","network_aliases":["a"]}"#),
            (
                "c3",
                r#"{"network":"n1","extra_networks":["n2"],"network_aliases":[]}"#,
            ),
        ];
        for (id, cfg) in rows {
            c.execute(
                "INSERT INTO containers (id, name, image_id, config, created, status)
                 VALUES (?1, ?1, 'i', ?2, 'now', 'created')",
                [id, cfg],
            )
            .unwrap();
        }
        migrate(&mut c).unwrap();
        let config = |id: &str| -> String {
            c.query_row("SELECT config FROM containers WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let c1 = config("c1");
        assert!(
            c1.contains(r#""endpoints":{"n2":{"aliases":["a","b"]},"n3":{"aliases":["a","b"]}}"#)
                && c1.contains(r#""network_aliases":["a","b"]"#),
            "{c1}"
        );
        assert_eq!(config("c2"), rows[1].1);
        assert_eq!(config("c3"), rows[2].1);
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {}", VERSION + 1))
            .unwrap();
        let err = open(&path).unwrap_err();
        assert!(matches!(err, SchemaError::TooNew { .. }), "{err}");
    }

    #[test]
    fn concurrent_first_opens_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || open(&p).map(|c| known(version(&c).unwrap()).unwrap()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), VERSION);
        }
    }
}
