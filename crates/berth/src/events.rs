//! `events`: the journal, past and live.

use std::io::Write;

use anyhow::Result;
use berth_engine::events::{EventOptions, FILTER_KEYS};
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
    let mut opts = EventOptions::default();
    opts.since = since.map(parse_time).transpose()?;
    opts.until = until.map(parse_time).transpose()?;
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        if !FILTER_KEYS.contains(&k) {
            return Err(crate::invalid_filter(k));
        }
        opts.filters.push((k.to_string(), v.to_string()));
    }
    // Docker parses the format before it waits for events.
    let tmpl = format
        .map(berth_template::Template::parse)
        .transpose()
        .map_err(|e| format::TemplateFailure {
            message: format!("Error parsing format: {e}"),
            code: 64,
        })?;
    let mut out = std::io::stdout().lock();
    for e in engine.events(&opts)? {
        writeln!(out, "{}", event_line(&e?, tmpl.as_ref())?)?;
        out.flush()?;
    }
    Ok(())
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
