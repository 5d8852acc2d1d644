//! `events`: the journal, past and live.

use std::io::Write;

use anyhow::Result;
use berth_engine::events::{EventOptions, FILTER_KEYS};
use berth_engine::Engine;
use serde_json::json;

use crate::format;

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
    opts.since = since.map(|s| parse_time("since", s)).transpose()?;
    opts.until = until.map(|s| parse_time("until", s)).transpose()?;
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

/// `--since`/`--until` (named `flag`) as docker's client reads them:
/// Docker's GetTimestamp (a Go duration before now, an RFC 3339 date or
/// date-time with or without a zone, Unix seconds), and its words.
pub(crate) fn parse_time(flag: &str, s: &str) -> Result<time::OffsetDateTime> {
    use berth_engine::filters::{local_offset, timestamp};
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let refused = |why: String| crate::ClientSide(format!("invalid value for {flag:?}: {why}"));
    let nanos = timestamp(s, now, local_offset()).map_err(|e| refused(e.to_string()))?;
    Ok(time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|e| refused(e.to_string()))?)
}
