//! The event journal behind `berth events`: what happened to containers,
//! images and volumes, one row each in berth.db, written by whichever
//! command or monitor made it happen (there is no daemon to hold them).
//!
//! Recording is best effort: an event that cannot be written never fails
//! the operation it describes. The journal keeps the last
//! [`KEEP`] events.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use crate::error::Result;

/// How many events the journal keeps.
pub const KEEP: i64 = 10_000;

/// One event, as docker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
    /// container, image, volume.
    pub kind: String,
    /// create, start, die, ... (`exec_start: CMD`, `health_status: healthy`).
    pub action: String,
    /// The id of what it happened to.
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
}

/// Appends an event (errors ignored: see the module's doc).
pub fn record(conn: &Connection, kind: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) {
    let attributes: BTreeMap<&str, &str> = attrs.iter().copied().collect();
    let Ok(text) = serde_json::to_string(&attributes) else {
        return;
    };
    let inserted = conn.execute(
        "INSERT INTO events (time_nano, type, action, actor, attributes) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![berth_relay::clock::unix_nanos(), kind, action, actor, text],
    );
    match inserted {
        Ok(_) => {
            let seq = conn.last_insert_rowid();
            // Trimmed now and then, not on every write.
            if seq % 256 == 0 {
                if let Err(e) =
                    conn.execute("DELETE FROM events WHERE seq <= ?1", params![seq - KEEP])
                {
                    tracing::warn!("trim the event journal: {e}");
                }
            }
        }
        // The change it journals is made: an event lost is only logged.
        Err(e) => tracing::warn!("journal event {kind} {action} of {actor}: {e}"),
    }
}

/// The events after `seq`, oldest first, at most `limit`.
pub fn after(conn: &Connection, seq: i64, limit: i64) -> Result<Vec<Event>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, time_nano, type, action, actor, attributes FROM events \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![seq, limit], |r| {
        let attrs: String = r.get(5)?;
        Ok(Event {
            seq: r.get(0)?,
            time_nano: r.get(1)?,
            kind: r.get(2)?,
            action: r.get(3)?,
            actor: r.get(4)?,
            attributes: serde_json::from_str(&attrs).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The last event's sequence number (0 for none).
pub fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_recorded_in_order_and_trimmed() {
        let mut conn = Connection::open_in_memory().unwrap();
        berth_store::migrate(&mut conn).unwrap();
        record(&conn, "container", "create", "abc", &[("name", "web")]);
        record(&conn, "container", "die", "abc", &[("exitCode", "3")]);
        let all = after(&conn, 0, 100).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].action, "create");
        assert_eq!(all[1].attributes["exitCode"], "3");
        assert!(all[0].time_nano <= all[1].time_nano);
        assert_eq!(after(&conn, all[0].seq, 100).unwrap().len(), 1);
        for _ in 0..(KEEP + 300) {
            record(&conn, "volume", "create", "v", &[]);
        }
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert!(n <= KEEP + 256, "{n} events kept");
        assert_eq!(last_seq(&conn).unwrap(), KEEP + 302);
    }
}
