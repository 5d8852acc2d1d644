//! `logs`: a container's json-file log, read through the engine's log
//! stream and written to our stdout and stderr by the stream each entry
//! came from.

use anyhow::Result;
use berth_engine::logs::LogOptions;
use berth_engine::Engine;

use crate::events::parse_time;

pub(crate) fn logs(
    engine: &Engine,
    container: &str,
    follow: bool,
    tail: &str,
    timestamps: bool,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<()> {
    // Docker's client names a missing container before it looks at flags.
    let r = engine.find(container)?;
    let mut opts = LogOptions::default();
    opts.follow = follow;
    opts.timestamps = timestamps;
    opts.since = since.map(parse_time).transpose()?;
    opts.until = until.map(parse_time).transpose()?;
    opts.tail = match tail {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: a number or \"all\""))?,
        ),
    };
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
        // A reader gone away (`| head`) ends the command quietly, as before.
        let _ = e?.write_to(
            timestamps,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
    }
    Ok(())
}
