//! The event journal behind `berth events`: what happened to containers,
//! images and volumes, one row each in berth.db, written by whichever
//! command or monitor made it happen (there is no daemon to hold them).
//!
//! Recording is best effort: an event that cannot be written never fails
//! the operation it describes. The journal keeps the last
//! [`KEEP`] events.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::error::{Error, Result};
use crate::stream::{self, StopHandle};
use crate::Engine;

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

/// The filters `events` takes (`--filter KEY=VALUE`).
pub const FILTER_KEYS: &[&str] = &["container", "event", "image", "type", "volume"];

/// Which events `events` returns.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct EventOptions {
    /// Past events from this time on; without it only new ones.
    pub since: Option<time::OffsetDateTime>,
    /// The stream ends once this time has passed; without it, it waits
    /// for new events until stopped or its deadline.
    pub until: Option<time::OffsetDateTime>,
    /// KEY=VALUE pairs, keys from [`FILTER_KEYS`]: an event passes when,
    /// for each key given, one of its values matches.
    pub filters: Vec<(String, String)>,
    /// The stream ends here at the latest.
    pub deadline: Option<Instant>,
}

impl EventOptions {
    fn matches(&self, wanted: &BTreeMap<&str, Vec<&str>>, e: &Event) -> bool {
        let attr = |k: &str| e.attributes.get(k).map_or("", String::as_str);
        wanted.iter().all(|(k, vals)| {
            vals.iter().any(|v| match *k {
                "container" => {
                    e.kind == "container" && (e.actor.starts_with(v) || attr("name") == *v)
                }
                "event" => e.action == *v || e.action.split(':').next() == Some(v),
                "image" => {
                    attr("image") == *v
                        || (e.kind == "image"
                            && (attr("name") == *v
                                || e.actor.trim_start_matches("sha256:").starts_with(v)))
                }
                "type" => e.kind == *v,
                "volume" => e.kind == "volume" && e.actor == *v,
                _ => false,
            })
        })
    }
}

/// Events of the journal, oldest first: past ones (with `since`), then
/// new ones as they are written, polled.
#[derive(Debug)]
pub struct EventStream<'a> {
    engine: &'a Engine,
    opts: EventOptions,
    seq: i64,
    batch: VecDeque<Event>,
    /// The last read was a full batch: read again before waiting.
    more: bool,
    stop: StopHandle,
    done: bool,
}

/// How many events are read at once.
const BATCH: i64 = 500;

/// How often the journal is read for new events.
const EVENTS_POLL: Duration = Duration::from_millis(100);

fn nanos(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0)
}

impl Engine {
    /// The journal's events as `opts` selects them; an unknown filter key
    /// is an error.
    pub fn events(&self, opts: &EventOptions) -> Result<EventStream<'_>> {
        if let Some((k, _)) = opts
            .filters
            .iter()
            .find(|(k, _)| !FILTER_KEYS.contains(&k.as_str()))
        {
            return Err(Error::InvalidOption(format!("invalid filter '{k}'")));
        }
        let seq = if opts.since.is_some() {
            0
        } else {
            self.db.last_event()?
        };
        Ok(EventStream {
            engine: self,
            opts: opts.clone(),
            seq,
            batch: VecDeque::new(),
            more: true,
            stop: StopHandle::default(),
            done: false,
        })
    }
}

impl EventStream<'_> {
    /// A handle that ends the stream from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }
}

impl Iterator for EventStream<'_> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        let since = self.opts.since.map(nanos);
        let until = self.opts.until.map(nanos);
        let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &self.opts.filters {
            wanted.entry(k.as_str()).or_default().push(v.as_str());
        }
        loop {
            if self.done || self.stop.is_stopped() {
                return None;
            }
            while let Some(e) = self.batch.pop_front() {
                if since.is_some_and(|s| e.time_nano < s) || until.is_some_and(|u| e.time_nano > u)
                {
                    continue;
                }
                if self.opts.matches(&wanted, &e) {
                    return Some(Ok(e));
                }
            }
            if !self.more
                && (until.is_some_and(|u| nanos(time::OffsetDateTime::now_utc()) > u)
                    || !stream::pause(EVENTS_POLL, self.opts.deadline, &self.stop))
            {
                self.done = true;
                return None;
            }
            match self.engine.db.events_after(self.seq, BATCH) {
                Ok(batch) => {
                    self.more = i64::try_from(batch.len()).unwrap_or(0) == BATCH;
                    if let Some(last) = batch.last() {
                        self.seq = last.seq;
                    }
                    self.batch = batch.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
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

    #[test]
    fn filters_match_as_docker_reads_them() {
        let ev = |kind: &str, action: &str, actor: &str, attrs: &[(&str, &str)]| Event {
            seq: 1,
            time_nano: 1,
            kind: kind.into(),
            action: action.into(),
            actor: actor.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let passes = |filters: &[(&str, &str)], e: &Event| {
            let opts = EventOptions {
                filters: filters
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..EventOptions::default()
            };
            let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (k, v) in &opts.filters {
                wanted.entry(k.as_str()).or_default().push(v.as_str());
            }
            opts.matches(&wanted, e)
        };
        let exec = ev(
            "container",
            "exec_start: sh -c true",
            "abc123",
            &[("name", "web"), ("image", "busybox")],
        );
        // an action with details matches its verb
        assert!(passes(&[("event", "exec_start")], &exec));
        assert!(!passes(&[("event", "exec_die")], &exec));
        // a container by id prefix or name, not by another name
        assert!(passes(&[("container", "abc")], &exec));
        assert!(passes(&[("container", "web")], &exec));
        assert!(!passes(&[("container", "db")], &exec));
        // values of one key: any; keys: all
        assert!(passes(&[("container", "db"), ("container", "web")], &exec));
        assert!(!passes(&[("container", "web"), ("type", "image")], &exec));
        // an image by the container's image, or an image event by name or id
        assert!(passes(&[("image", "busybox")], &exec));
        let pulled = ev("image", "pull", "sha256:feed", &[("name", "alpine")]);
        assert!(passes(&[("image", "alpine")], &pulled));
        assert!(passes(&[("image", "fee")], &pulled));
        assert!(!passes(&[("container", "feed")], &pulled));
        // a volume by its exact name
        let vol = ev("volume", "create", "data", &[]);
        assert!(passes(&[("volume", "data")], &vol));
        assert!(!passes(&[("volume", "dat")], &vol));
        assert!(passes(&[], &vol));
    }
}
