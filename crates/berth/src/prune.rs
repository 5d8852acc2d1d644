//! The prune verbs as docker's client runs them: flags to typed filters,
//! the confirmation docker asks for without `-f` (a line read from stdin,
//! a terminal or not: `y` or `Y` goes on), one call into the engine, and
//! the report in docker's words. The removing and the filters' meaning
//! are the engine's (`berth_engine::prune`).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use berth_engine::filters::{FilterError, Filters};
use berth_engine::prune::{ImageDeletion, ImagePruneReport, PruneReport};
use berth_engine::Engine;

use crate::FromDaemon;

/// Which prune, for its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Containers,
    Images {
        all: bool,
    },
    Volumes {
        all: bool,
    },
    Networks,
    /// `builder prune`, and `system prune`'s last step (`all`: `-a`).
    BuildCache {
        all: bool,
    },
}

impl Kind {
    /// The command's name in docker's `See 'docker ... --help'.`
    fn command(self) -> &'static str {
        match self {
            Kind::Containers => "container prune",
            Kind::Images { .. } => "image prune",
            Kind::Volumes { .. } => "volume prune",
            Kind::Networks => "network prune",
            Kind::BuildCache { .. } => "builder prune",
        }
    }

    fn warning(self) -> &'static str {
        match self {
            Kind::Containers => "WARNING! This will remove all stopped containers.",
            Kind::Images { all: false } => "WARNING! This will remove all dangling images.",
            Kind::Images { all: true } => {
                "WARNING! This will remove all images without at least one container associated to them."
            }
            // berth prunes volumes as Docker 23 does (anonymous ones, all
            // with -a), and says so in Docker 23's words.
            Kind::Volumes { all: false } => {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            }
            Kind::Volumes { all: true } => {
                "WARNING! This will remove all local volumes not used by at least one container."
            }
            Kind::Networks => {
                "WARNING! This will remove all custom networks not used by at least one container."
            }
            Kind::BuildCache { all: false } => {
                "WARNING! This will remove all dangling build cache."
            }
            Kind::BuildCache { all: true } => "WARNING! This will remove all build cache.",
        }
    }
}

/// `--filter` values parsed; one without `=` is refused as docker's
/// client refuses it (its flag parser's words, exit 125).
pub fn parse_filters(command: &str, flag: &str, raw: &[String]) -> Result<Filters> {
    Filters::parse(raw).map_err(|e| match e {
        FilterError::BadFormat(ref arg) => crate::format::TemplateFailure {
            message: format!(
                "invalid argument {arg:?} for {flag:?} flag: {e}\nSee 'berth {command} --help'."
            ),
            code: 125,
        }
        .into(),
        e => anyhow::Error::from(e),
    })
}

/// Docker's `PromptForConfirmation`: the question on stdout, one line of
/// stdin as the answer (end of input: no).
fn confirm(question: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(out, "{question} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim_end_matches(['\n', '\r']);
    Ok(answer.eq_ignore_ascii_case("y"))
}

fn open(root: &Path, runroot: &Path) -> Result<Engine> {
    Engine::open(root, runroot).with_context(|| format!("open the store at {}", root.display()))
}

/// One prune's report as docker's client words it (`None`: nothing was
/// removed, and it prints nothing), and the bytes it freed.
enum Done {
    Removed(PruneReport),
    Images(ImagePruneReport),
}

impl Done {
    fn text(&self, kind: Kind) -> Option<String> {
        let (title, lines): (&str, Vec<String>) = match self {
            Done::Removed(r) => (
                match kind {
                    Kind::Containers => "Deleted Containers:",
                    Kind::Volumes { .. } => "Deleted Volumes:",
                    Kind::BuildCache { .. } => "Deleted build cache objects:",
                    _ => "Deleted Networks:",
                },
                r.removed.clone(),
            ),
            Done::Images(r) => (
                "Deleted Images:",
                r.deleted
                    .iter()
                    .map(|d| match d {
                        ImageDeletion::Untagged(t) => format!("untagged: {t}"),
                        ImageDeletion::Deleted(id) => format!("deleted: {id}"),
                    })
                    .collect(),
            ),
        };
        (!lines.is_empty()).then(|| {
            let mut s = format!("{title}\n");
            for l in lines {
                s.push_str(&l);
                s.push('\n');
            }
            s
        })
    }

    fn reclaimed(&self) -> u64 {
        match self {
            Done::Removed(r) => r.reclaimed,
            Done::Images(r) => r.reclaimed,
        }
    }
}

/// Runs one prune in the engine; its errors are the daemon's.
fn run_one(engine: &mut Engine, kind: Kind, filters: &Filters) -> Result<Done> {
    let r = match kind {
        Kind::Containers => engine.prune_containers(filters).map(Done::Removed),
        Kind::Images { all } => engine.prune_images(filters, all).map(Done::Images),
        Kind::Volumes { all } => engine.prune_volumes(filters, all).map(Done::Removed),
        Kind::Networks => engine.prune_networks(filters).map(Done::Removed),
        // Every entry of berth's cache is unused once its build is over:
        // -a changes only the warning.
        Kind::BuildCache { .. } => engine.prune_build_cache().map(Done::Removed),
    };
    r.map_err(|e| FromDaemon::wrap(e.into(), false))
}

/// `container|image|volume|network prune [-f] [--filter ...]`.
pub fn prune(
    root: &Path,
    runroot: &Path,
    kind: Kind,
    force: bool,
    raw_filters: &[String],
) -> Result<i32> {
    prune_in(open(root, runroot)?, kind, force, raw_filters)
}

/// `prune` for a command that opened the store already.
pub fn prune_in(
    mut engine: Engine,
    kind: Kind,
    force: bool,
    raw_filters: &[String],
) -> Result<i32> {
    let filters = parse_filters(kind.command(), "--filter", raw_filters)?;
    let total_line = kind != Kind::Networks;
    // builder prune asks on the warning's own line.
    let sep = if matches!(kind, Kind::BuildCache { .. }) {
        " "
    } else {
        "\n"
    };
    let question = format!("{}{sep}Are you sure you want to continue?", kind.warning());
    if !force && !confirm(&question)? {
        if total_line {
            println!("Total reclaimed space: 0B");
        }
        return Ok(0);
    }
    let done = run_one(&mut engine, kind, &filters)?;
    let mut out = std::io::stdout().lock();
    if let Some(text) = done.text(kind) {
        writeln!(out, "{text}")?;
    }
    if total_line {
        writeln!(
            out,
            "Total reclaimed space: {}",
            crate::format::human_size(done.reclaimed(), 4)
        )?;
    }
    Ok(0)
}

/// `system prune [-a] [--volumes] [-f] [--filter ...]`: containers,
/// networks, volumes (with `--volumes`), images, in docker's order, each
/// reported as it goes, then the build cache, then the total.
pub fn system(
    root: &Path,
    runroot: &Path,
    all: bool,
    volumes: bool,
    force: bool,
    raw_filters: &[String],
) -> Result<i32> {
    let filters = parse_filters("system prune", "--filter", raw_filters)?;
    if volumes && filters.contains("until") {
        return Err(crate::ClientSide(
            r#"ERROR: The "until" filter is not supported with "--volumes""#.into(),
        )
        .into());
    }
    if !force && !confirm(&system_warning(all, volumes, &filters))? {
        return Ok(0);
    }
    let mut engine = open(root, runroot)?;
    let mut kinds = vec![Kind::Containers, Kind::Networks];
    if volumes {
        kinds.push(Kind::Volumes { all: false });
    }
    kinds.push(Kind::Images { all });
    // The cache goes only when no filter narrows the prune: berth's entries
    // carry no labels, and Docker's filtered cache prune is BuildKit's.
    if filters.is_empty() {
        kinds.push(Kind::BuildCache { all });
    }
    let mut total = 0;
    let mut out = std::io::stdout().lock();
    for kind in kinds {
        let done = run_one(&mut engine, kind, &filters)?;
        total += done.reclaimed();
        if let Some(text) = done.text(kind) {
            writeln!(out, "{text}")?;
        }
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        crate::format::human_size(total, 4)
    )?;
    Ok(0)
}

/// Docker's confirmation for `system prune`, the filters listed in
/// natural order.
fn system_warning(all: bool, volumes: bool, filters: &Filters) -> String {
    let mut s = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container",
    );
    if volumes {
        // Docker 23's words: berth prunes anonymous volumes only.
        s.push_str("\n  - all anonymous volumes not used by at least one container");
    }
    s.push_str(if all {
        "\n  - all images without at least one container associated to them\n  - all build cache"
    } else {
        "\n  - all dangling images\n  - all dangling build cache"
    });
    let mut listed: Vec<String> = filters
        .pairs()
        .filter(|(k, _)| ["label", "label!", "until"].contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    listed.sort_by(|a, b| crate::format::natural_cmp(a, b));
    if !listed.is_empty() {
        s.push_str("\n\n  Items to be pruned will be filtered with:");
        for f in listed {
            s.push_str("\n  - ");
            s.push_str(&f);
        }
    }
    s.push_str("\n\nAre you sure you want to continue?");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_warning_lists_filters_in_natural_order() {
        let f = Filters::parse(&["until=1h", "label=b=2", "label!=x", "label=a10", "label=a9"])
            .unwrap();
        assert_eq!(
            system_warning(false, false, &f),
            "WARNING! This will remove:
  - all stopped containers
  - all networks not used by at least one container
  - all dangling images
  - all dangling build cache

  Items to be pruned will be filtered with:
  - label!=x
  - label=a9
  - label=a10
  - label=b=2
  - until=1h

Are you sure you want to continue?"
        );
    }
}
