//! Diagnostics: the libraries' `tracing` events, written to stderr as
//! `berth: LEVEL: message` lines.
//!
//! What is shown: `--log-level` (docker's flag and words: debug, info,
//! warn, error, fatal), else `BERTH_LOG` (a level, or tracing's target
//! list such as `berth_image=debug,warn`), else warnings and errors. A
//! detached container's monitor has no flag: it takes `BERTH_LOG` from the
//! command that started it, and its stderr is the container's
//! `monitor.log`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The environment variable read when no `--log-level` is given.
pub const ENV: &str = "BERTH_LOG";

/// A level as docker's `--log-level` takes it (logrus's words, any case:
/// panic, fatal, error, warn, warning, info, debug, trace); panic and
/// fatal are errors here, tracing having nothing above.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => Some(LevelFilter::ERROR),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

/// The filter for `level` (the flag's value) or, without it, `env`
/// (BERTH_LOG's); the error is the line to print.
pub fn filter(level: Option<&str>, env: Option<&str>) -> Result<Targets, String> {
    if let Some(l) = level {
        // docker's words for a bad --log-level.
        let l = parse_level(l).ok_or_else(|| format!("Unable to parse logging level: {l}"))?;
        return Ok(Targets::new().with_default(l));
    }
    let Some(v) = env.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Targets::new().with_default(LevelFilter::WARN));
    };
    if let Some(l) = parse_level(v) {
        return Ok(Targets::new().with_default(l));
    }
    let bad = |why: String| {
        format!(
            "invalid {ENV} {v:?}: {why} (a level: debug, info, warn, error, fatal; \
             or target=level,... as berth_image=debug,warn)"
        )
    };
    // Targets would take a bare word as a target name; here it can only
    // be a level, so a typo is not silently a filter that shows nothing.
    for d in v.split(',').map(str::trim) {
        if !d.contains('=') && parse_level(d).is_none() && d.parse::<LevelFilter>().is_err() {
            return Err(bad(format!("{d:?} is not a level")));
        }
    }
    v.parse::<Targets>().map_err(|e| bad(e.to_string()))
}

/// Installs the subscriber for this process (once; a second call does
/// nothing).
pub fn init(filter: Targets) {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Line { stamped: false });
    // Already installed (a test harness, a second call): keep that one.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// Installs a subscriber for a process nobody reads the stderr of (a
/// network's resolver): its lines, each with the time, appended to `log`.
pub fn init_to_file(filter: Targets, log: std::path::PathBuf) {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(AppendTo(log))
        .with_ansi(false)
        .event_format(Line { stamped: true });
    // Already installed (a second call): keep that one.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// Opens the log for each event (they are rare, and the resolver closes
/// every descriptor it did not open itself when it starts).
struct AppendTo(std::path::PathBuf);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AppendTo {
    type Writer = LogFile;

    fn make_writer(&'a self) -> LogFile {
        use std::os::unix::fs::OpenOptionsExt;
        LogFile(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&self.0)
                .ok(),
        )
    }
}

/// The log, or nothing when it cannot be opened: a diagnostic must never
/// stop what it describes.
struct LogFile(Option<std::fs::File>);

impl std::io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// docker's words for the levels.
fn level_word(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Installs the subscriber with the level from `--log-level` (`level`),
/// else `BERTH_LOG`; a bad level is one line and exit 1, as docker's.
pub fn install(level: Option<&str>) -> Result<(), std::process::ExitCode> {
    let env = std::env::var(ENV).ok();
    match filter(level, env.as_deref()) {
        Ok(f) => {
            init(f);
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            Err(std::process::ExitCode::from(1))
        }
    }
}

/// `berth: warning: message key=value`, the shape of berth's other
/// notices; in a log (`stamped`), the time instead of `berth:`
/// (`2026-01-02T03:04:05.123456789Z warning: message`).
struct Line {
    stamped: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = level_word(*event.metadata().level());
        if self.stamped {
            write!(w, "{} {level}: ", berth_relay::clock::rfc3339_nanos())?;
        } else {
            write!(w, "berth: {level}: ")?;
        }
        if *event.metadata().level() >= Level::DEBUG {
            write!(w, "{}: ", event.metadata().target())?;
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(t: &Targets, target: &str, level: Level) -> bool {
        t.would_enable(target, &level)
    }

    #[test]
    fn flag_wins_over_env_and_default_is_warn() {
        let f = filter(Some("debug"), Some("error")).unwrap();
        assert!(enabled(&f, "berth_image", Level::DEBUG));
        let f = filter(None, None).unwrap();
        assert!(enabled(&f, "berth_image", Level::WARN));
        assert!(!enabled(&f, "berth_image", Level::INFO));
        let f = filter(Some("FATAL"), None).unwrap();
        assert!(!enabled(&f, "berth_image", Level::WARN));
        assert!(enabled(&f, "berth_image", Level::ERROR));
        assert_eq!(
            filter(Some("loud"), None).unwrap_err(),
            "Unable to parse logging level: loud"
        );
    }

    #[test]
    fn env_takes_levels_and_targets() {
        let f = filter(None, Some("berth_store=info,error")).unwrap();
        assert!(enabled(&f, "berth_store", Level::INFO));
        assert!(!enabled(&f, "berth_image", Level::WARN));
        assert!(enabled(&f, "berth_image", Level::ERROR));
        let f = filter(None, Some("warning")).unwrap();
        assert!(enabled(&f, "x", Level::WARN));
        assert!(!enabled(&f, "x", Level::INFO));
        let err = filter(None, Some("loud")).unwrap_err();
        assert!(err.starts_with("invalid BERTH_LOG \"loud\""), "{err}");
        assert!(filter(None, Some("berth_image=debug,lod")).is_err());
    }
}
