//! `events`: the journal, past and live.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use berth_engine::Engine;
use serde_json::json;

use crate::format;
use crate::run_flags::parse_duration;
/// `events`: the journal's events, past ones with `--since`, then new
/// ones as they are written (polled) until `--until` or forever.
pub(crate) fn events(
    engine: &Engine,
    since: Option<&str>,
    until: Option<&str>,
    filters: &[String],
    format: Option<&str>,
) -> Result<()> {
    const KEYS: &[&str] = &["container", "event", "image", "type", "volume"];
    let since = since.map(parse_time).transpose()?;
    let until = until.map(parse_time).transpose()?;
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        if !KEYS.contains(&k) {
            return Err(crate::invalid_filter(k));
        }
        wanted.entry(k.to_string()).or_default().push(v.to_string());
    }
    let nanos = |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0);
    let (since_n, until_n) = (since.map(nanos), until.map(nanos));
    let matches = |e: &berth_engine::events::Event| -> bool {
        let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
        wanted.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "container" => {
                    e.kind == "container" && (e.actor.starts_with(v.as_str()) || attr("name") == v)
                }
                "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
                "image" => {
                    attr("image") == v
                        || (e.kind == "image"
                            && (attr("name") == v
                                || e.actor
                                    .trim_start_matches("sha256:")
                                    .starts_with(v.as_str())))
                }
                "type" => e.kind == *v,
                "volume" => e.kind == "volume" && e.actor == *v,
                _ => false,
            })
        })
    };
    // Docker parses the format before it waits for events.
    let tmpl = format
        .map(berth_template::Template::parse)
        .transpose()
        .map_err(|e| format::TemplateFailure {
            message: format!("Error parsing format: {e}"),
            code: 64,
        })?;
    let mut out = std::io::stdout().lock();
    let mut seq = if since.is_some() {
        0
    } else {
        engine.db.last_event()?
    };
    loop {
        let batch = engine.db.events_after(seq, 500)?;
        for e in &batch {
            seq = e.seq;
            if since_n.is_some_and(|s| e.time_nano < s) || until_n.is_some_and(|u| e.time_nano > u)
            {
                continue;
            }
            if matches(e) {
                writeln!(out, "{}", event_line(e, tmpl.as_ref())?)?;
            }
        }
        out.flush()?;
        if batch.len() == 500 {
            continue;
        }
        if until_n.is_some_and(|u| nanos(time::OffsetDateTime::now_utc()) > u) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An event as docker prints it, or through `--format`.
fn event_line(
    e: &berth_engine::events::Event,
    format: Option<&berth_template::Template>,
) -> Result<String> {
    let secs = e.time_nano.div_euclid(1_000_000_000);
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.time_nano))
        .ok()
        .and_then(|t| {
            let f = time::format_description::parse_borrowed::<2>(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z",
            )
            .ok()?;
            t.format(&f).ok()
        })
        .unwrap_or_default();
    match format {
        Some(f) => {
            let v = json!({
                "status": e.action,
                "id": e.actor,
                "from": e.attributes.get("image").cloned().unwrap_or_default(),
                "Type": e.kind,
                "Action": e.action,
                "Actor": {"ID": e.actor, "Attributes": e.attributes},
                "scope": "local",
                "time": secs,
                "timeNano": e.time_nano,
            });
            f.execute(&format::typed(&v, "*events.Message"))
                .map_err(|e| {
                    format::TemplateFailure {
                        message: format!("Error parsing format: {e}"),
                        code: 64,
                    }
                    .into()
                })
        }
        None => {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Ok(format!(
                "{time} {} {} {} ({})",
                e.kind,
                e.action,
                e.actor,
                attrs.join(", ")
            ))
        }
    }
}

/// An RFC 3339 time, or a duration before now (`10m`, `1h30m`, `45s`).
pub(crate) fn parse_time(s: &str) -> Result<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| anyhow::anyhow!("invalid time {s:?}: {e}"));
    }
    let d = parse_duration(s).map_err(|_| anyhow::anyhow!("invalid time or duration {s:?}"))?;
    Ok(time::OffsetDateTime::now_utc() - d)
}
