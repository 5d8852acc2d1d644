//! `logs`: a container's json-file log, read through the engine's log
//! stream and written to our stdout and stderr by the stream each entry
//! came from.

use anyhow::Result;
use berth_engine::logs::LogOptions;
use berth_engine::Engine;

use crate::events::parse_time;

/// `logs`' flags.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    follow: bool,
    /// Number of lines from the end ("all" for all)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show extra details provided to logs (berth's logs carry none: a
    /// blank before each line, as docker prints an empty set)
    #[arg(long)]
    details: bool,
    /// Only logs since this time (RFC 3339) or duration ago (10m, 1h)
    #[arg(long)]
    since: Option<String>,
    /// Only logs before this time or duration ago
    #[arg(long)]
    until: Option<String>,
    container: String,
}

pub(crate) fn logs(engine: &Engine, a: &LogsArgs) -> Result<()> {
    // Docker's client names a missing container before it looks at flags.
    let r = engine.find(&a.container)?;
    let timestamps = a.timestamps;
    let mut opts = LogOptions::default();
    opts.follow = a.follow;
    opts.timestamps = timestamps;
    opts.since = a
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    opts.until = a
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    // Docker's daemon reads --tail as a number and shows every line for
    // anything else ("all", a negative number, a word).
    opts.tail = a
        .tail
        .parse::<i64>()
        .ok()
        .and_then(|n| usize::try_from(n).ok());
    let stream = engine.container_logs(&r.id, &opts).map_err(|e| match e {
        // docker's daemon says this one.
        berth_engine::Error::LogsNotKept => crate::FromDaemon::wrap(e.into(), false),
        e => e.into(),
    })?;
    if stream.output_lost() {
        eprintln!(
            "warning: container {}: its monitor died, so what it printed since is not in its log",
            r.name
        );
    }
    for e in stream {
        let mut e = e?;
        if a.details {
            // docker's daemon puts the entry's attributes (none here) and
            // a blank between the time and the line.
            e.log.insert(0, ' ');
        }
        // A reader gone away (`| head`) ends the command quietly, as before.
        let _ = e.write_to(
            timestamps,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
    }
    Ok(())
}
