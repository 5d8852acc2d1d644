//! Containers in the store's SQLite database (the same `berth.db` the image
//! store uses, in WAL mode): one row per container, every change one
//! transaction, names unique by constraint.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::config::ContainerConfig;
use crate::error::{Error, Result};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Made, never started (or its start was cut short).
    Created,
    /// A monitor is starting it.
    Starting,
    Running,
    Paused,
    Restarting,
    Exited,
    /// Being removed.
    Removing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "starting" => Status::Starting,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "exited" => Status::Exited,
            "removing" => Status::Removing,
            _ => Status::Created,
        }
    }

    /// Whether a process of the container may be alive.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Starting | Status::Running | Status::Paused | Status::Restarting
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's row.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub created: String,
    pub status: Status,
    /// The container's init, as the host sees it.
    pub pid: i32,
    /// Its start time (clock ticks after boot), to tell a reused pid apart.
    pub pid_start: u64,
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    pub restart_count: u32,
    pub stopped_by_user: bool,
    pub oom_killed: bool,
    pub error: String,
    /// The healthcheck's state, for containers that have one.
    pub health: Option<crate::health::Health>,
}

impl Record {
    /// A new container's row: created, never started.
    pub fn new(
        id: String,
        name: String,
        image_id: String,
        config: ContainerConfig,
        created: String,
    ) -> Record {
        Record {
            id,
            name,
            image_id,
            config,
            created,
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            exit_code: 0,
            started_at: String::new(),
            finished_at: String::new(),
            restart_count: 0,
            stopped_by_user: false,
            oom_killed: false,
            error: String::new(),
            health: None,
        }
    }
}

const COLUMNS: &str = "id, name, image_id, config, created, status, pid, pid_start, monitor_pid, \
     monitor_start, exit_code, started_at, finished_at, restart_count, stopped_by_user, \
     oom_killed, error, health";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Record> {
    let config: String = r.get(3)?;
    let config = serde_json::from_str(&config).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Record {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        config,
        created: r.get(4)?,
        status: Status::parse(&r.get::<_, String>(5)?),
        pid: r.get(6)?,
        pid_start: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        monitor_pid: r.get(8)?,
        monitor_start: u64::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
        exit_code: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        restart_count: r.get(13)?,
        stopped_by_user: r.get(14)?,
        oom_killed: r.get(15)?,
        error: r.get(16)?,
        health: serde_json::from_str(&r.get::<_, String>(17)?).ok(),
    })
}

/// The containers table.
#[derive(Debug)]
pub struct Db {
    /// Shared with the volumes table's handle: one connection per engine.
    conn: std::rc::Rc<Connection>,
}

impl Db {
    pub fn open(root: &Path) -> Result<Db> {
        saferoot::private::private_dir(root).map_err(|source| Error::Io {
            context: format!("create {}", root.display()),
            source,
        })?;
        // The schema is the store's (berth_store), brought up to date by
        // the connection's opening.
        let conn = berth_image::store::open_connection(root)
            .map_err(berth_image::store::StoreError::from)?;
        Ok(Db::with_connection(std::rc::Rc::new(conn)))
    }

    /// The containers table through a connection the command already has
    /// open (the image store's: one connection per command).
    pub fn with_connection(conn: std::rc::Rc<Connection>) -> Db {
        Db { conn }
    }

    /// The connection, for the other tables of the engine (volumes).
    pub(crate) fn connection(&self) -> std::rc::Rc<Connection> {
        std::rc::Rc::clone(&self.conn)
    }

    /// Runs `f`'s statements as one write transaction: one WAL commit (its
    /// locks, header and page writes) instead of one per statement, and
    /// readers see them all or none. Taken for writing at once
    /// (IMMEDIATE), so the busy timeout covers waiting for another
    /// command's writes; `f`'s error rolls everything back.
    pub fn in_transaction<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let out = f(self)?;
        tx.commit()?;
        Ok(out)
    }

    /// Journals an event (best effort: see [`crate::events`]).
    pub fn event(&self, kind: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) {
        crate::events::record(&self.conn, kind, action, actor, attrs);
    }

    /// Journals an event of a volume (all of berth's are the local
    /// driver's).
    pub fn volume_event(&self, action: &str, name: &str) {
        self.event("volume", action, name, &[("driver", "local")]);
    }

    /// Journals an event of a container, with its labels, name and image
    /// (as docker's daemon does: a label named `name` or `image` gives way).
    pub fn container_event(&self, r: &Record, action: &str, extra: &[(&str, &str)]) {
        let mut attrs: Vec<(&str, &str)> = r
            .config
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        attrs.push(("name", r.name.as_str()));
        attrs.push(("image", r.config.image.as_str()));
        attrs.extend_from_slice(extra);
        self.event("container", action, &r.id, &attrs);
    }

    /// Journaled events after `seq`, oldest first.
    pub fn events_after(&self, seq: i64, limit: i64) -> Result<Vec<crate::events::Event>> {
        crate::events::after(&self.conn, seq, limit)
    }

    /// The last journaled event's number.
    pub fn last_event(&self) -> Result<i64> {
        crate::events::last_seq(&self.conn)
    }

    /// Frees SQLite's page cache of this connection.
    pub fn shrink_memory(&self) {
        // Only a cache: a connection that keeps it works the same.
        let _ = self.conn.execute_batch("PRAGMA shrink_memory");
    }

    /// Inserts a new container; a taken name is refused.
    pub fn insert(&self, r: &Record) -> Result<()> {
        let config = serde_json::to_string(&r.config).map_err(|source| Error::Encode {
            what: "config",
            source,
        })?;
        let res = self.conn.execute(
            "INSERT INTO containers (id, name, image_id, config, created, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                r.id,
                r.name,
                r.image_id,
                config,
                r.created,
                r.status.as_str()
            ],
        );
        match res {
            Ok(_) => Ok(()),
            // The name is the table's only UNIQUE column (the id is its
            // primary key, a code of its own).
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(Error::NameInUse {
                    name: r.name.clone(),
                    holder: self.holder_of(&r.name)?,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Db::insert`], and for a container with a user namespace of its
    /// own its id range taken from the pool (recorded in its config), in
    /// one IMMEDIATE transaction: two containers made at once never get
    /// the same ids. With `shares`, it holds that container's range.
    pub fn insert_with_ids(
        &self,
        r: &mut Record,
        mode: crate::userns::Mode,
        shares: Option<&str>,
    ) -> Result<()> {
        let crate::userns::Mode::Private { size } = mode else {
            return self.insert(r);
        };
        let tx = crate::userns::begin(&self.conn)?;
        match shares {
            Some(other) => crate::userns::share(&tx, &r.id, other)?,
            None => {
                let pool = crate::userns::Pool::of_host()?;
                r.config.id_map = Some(crate::userns::allocate(&tx, &r.id, size, &pool)?);
            }
        }
        self.insert(r)?;
        tx.commit()?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                params![id],
                from_row,
            )
            .optional()?)
    }

    /// Finds a container by full id, name, or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Record> {
        let key = key.strip_prefix('/').unwrap_or(key);
        if key.is_empty() {
            return Err(Error::NoSuchContainer(String::new()));
        }
        if let Some(r) = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1"),
                params![key],
                from_row,
            )
            .optional()?
        {
            return Ok(r);
        }
        if !key.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::NoSuchContainer(key.to_string()));
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE id >= ?1 AND id < ?1 || 'g' LIMIT 2"
        ))?;
        let mut found: Vec<Record> = stmt
            .query_map(params![key.to_ascii_lowercase()], from_row)?
            .collect::<rusqlite::Result<_>>()?;
        match found.len() {
            0 => Err(Error::NoSuchContainer(key.to_string())),
            1 => Ok(found.remove(0)),
            _ => Err(Error::Ambiguous(key.to_string())),
        }
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers ORDER BY created DESC, rowid DESC"
        ))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Whether any container uses the image.
    pub fn users_of_image(&self, image_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM containers WHERE image_id = ?1")?;
        let rows = stmt
            .query_map(params![image_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Marks the container started by a monitor.
    pub fn set_running(&self, r: &Record) -> Result<()> {
        self.conn.execute(
            "UPDATE containers SET status = ?2, pid = ?3, pid_start = ?4, monitor_pid = ?5, \
             monitor_start = ?6, started_at = ?7, restart_count = ?8, error = '', \
             exit_code = 0, oom_killed = 0 WHERE id = ?1",
            params![
                r.id,
                r.status.as_str(),
                r.pid,
                i64::try_from(r.pid_start).unwrap_or(0),
                r.monitor_pid,
                i64::try_from(r.monitor_start).unwrap_or(0),
                r.started_at,
                r.restart_count,
            ],
        )?;
        Ok(())
    }

    /// Replaces the stored config (`update`).
    pub fn set_config(&self, id: &str, config: &ContainerConfig) -> Result<()> {
        let text = serde_json::to_string(config).map_err(|source| Error::Encode {
            what: "config",
            source,
        })?;
        self.conn.execute(
            "UPDATE containers SET config = ?2 WHERE id = ?1",
            params![id, text],
        )?;
        Ok(())
    }

    /// Records the healthcheck's state.
    pub fn set_health(&self, id: &str, h: Option<&crate::health::Health>) -> Result<()> {
        let text = h
            .and_then(|h| serde_json::to_string(h).ok())
            .unwrap_or_default();
        self.conn.execute(
            "UPDATE containers SET health = ?2 WHERE id = ?1",
            params![id, text],
        )?;
        Ok(())
    }

    /// Records an exit (or a start that failed, with `error`).
    pub fn set_exited(
        &self,
        id: &str,
        status: Status,
        exit_code: i32,
        error: &str,
        oom_killed: bool,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE containers SET status = ?2, exit_code = ?3, error = ?4, oom_killed = ?5, \
             finished_at = ?6, pid = 0, pid_start = 0 WHERE id = ?1",
            params![
                id,
                status.as_str(),
                exit_code,
                error,
                oom_killed,
                crate::now()
            ],
        )?;
        Ok(())
    }

    /// Marks an active container whose processes are all gone as `status`
    /// (exited 255, or created) — only if the row is still as it was read
    /// (same status and monitor): a monitor that recorded the real exit just
    /// before it ended wins. Returns whether the row was changed.
    pub fn mark_lost(
        &self,
        r: &Record,
        status: Status,
        exit_code: i32,
        error: &str,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE containers SET status = ?2, exit_code = ?3, error = ?4, finished_at = ?5, \
             pid = 0, pid_start = 0 WHERE id = ?1 AND status = ?6 AND monitor_pid = ?7 \
             AND monitor_start = ?8",
            params![
                r.id,
                status.as_str(),
                exit_code,
                error,
                crate::now(),
                r.status.as_str(),
                r.monitor_pid,
                i64::try_from(r.monitor_start).unwrap_or(0)
            ],
        )?;
        Ok(n == 1)
    }

    /// Sets the status alone (`status_from`: only if it is still that one).
    pub fn set_status(
        &self,
        id: &str,
        status: Status,
        status_from: Option<Status>,
    ) -> Result<bool> {
        let n = match status_from {
            Some(from) => self.conn.execute(
                "UPDATE containers SET status = ?2 WHERE id = ?1 AND status = ?3",
                params![id, status.as_str(), from.as_str()],
            )?,
            None => self.conn.execute(
                "UPDATE containers SET status = ?2 WHERE id = ?1",
                params![id, status.as_str()],
            )?,
        };
        Ok(n == 1)
    }

    /// Records who is starting the container (before it runs); the row as
    /// it is then (None when it is gone), read by the same statement.
    pub fn set_monitor(
        &self,
        id: &str,
        status: Status,
        pid: i32,
        start: u64,
    ) -> Result<Option<Record>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "UPDATE containers SET status = ?2, monitor_pid = ?3, monitor_start = ?4 \
                     WHERE id = ?1 RETURNING {COLUMNS}"
                ),
                params![id, status.as_str(), pid, i64::try_from(start).unwrap_or(0)],
                from_row,
            )
            .optional()?)
    }

    pub fn set_stopped_by_user(&self, id: &str, stopped: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE containers SET stopped_by_user = ?2 WHERE id = ?1",
            params![id, stopped],
        )?;
        Ok(())
    }

    /// Whether the user stopped or removed the container (a missing row
    /// counts): what a monitor in restart back-off watches for.
    pub fn stop_requested(&self, id: &str) -> Result<bool> {
        let stopped = self
            .conn
            .query_row(
                "SELECT stopped_by_user FROM containers WHERE id = ?1",
                params![id],
                |r| r.get::<_, bool>(0),
            )
            .optional()?;
        Ok(stopped.unwrap_or(true))
    }

    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        match self.conn.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, name],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::NewNameInUse {
                    name: name.to_string(),
                    holder: self.holder_of(name)?,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The id of the container named `name` (for a conflict's words; empty
    /// when it went meanwhile).
    fn holder_of(&self, name: &str) -> Result<String> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default())
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> Record {
        Record::new(
            id.into(),
            name.into(),
            "sha256:0".into(),
            ContainerConfig::default(),
            "2026-01-01T00:00:00Z".into(),
        )
    }

    /// "name in use" is decided by SQLite's constraint code, and only the
    /// name's: a clash of ids is another failure, not docker's Conflict.
    #[test]
    fn a_taken_name_is_name_in_use_and_a_taken_id_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.insert(&record("a1", "web")).unwrap();
        let e = db.insert(&record("b2", "web")).unwrap_err();
        assert!(
            matches!(&e, Error::NameInUse { name, .. } if name == "web"),
            "{e}"
        );
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        let e = db.insert(&record("a1", "other")).unwrap_err();
        assert!(matches!(e, Error::Db(_)), "{e}");
    }
}
