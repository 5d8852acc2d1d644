//! `berth volume ...`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use berth_engine::Engine;
use clap::Subcommand;

use crate::format;
/// `berth volume ...`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Set metadata (key=value)
        #[arg(short, long)]
        label: Vec<String>,
        /// Driver (only "local")
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// The local driver's options: type=TYPE, device=DEVICE, o=MOUNT-OPTIONS
        /// (type=tmpfs,device=tmpfs,o=size=64m; type=none,o=bind,device=/path)
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        /// dangling=true|false, name=PART, label=KEY[=VALUE]
        #[arg(short, long)]
        filter: Vec<String>,
        /// Go template ({{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels}} {{.Label "k"}} ...), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on volumes
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (refused while a container uses one)
    Rm {
        /// Accepted for docker compatibility: in-use volumes are still kept
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (-a: all unused volumes)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: label=KEY[=VALUE], label!=KEY[=VALUE]
        #[arg(long)]
        filter: Vec<String>,
    },
}

/// Runs a volume command.
pub fn volume(root: &Path, runroot: &Path, cmd: &VolumeCommand) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    match cmd {
        VolumeCommand::Create {
            label,
            driver,
            opt,
            name,
        } => {
            // docker's daemon answers, naming the volume.
            let daemon = |e: anyhow::Error| {
                crate::FromDaemon::wrap(
                    e.context(format!("create {}", name.as_deref().unwrap_or(""))),
                    false,
                )
            };
            berth_engine::volumes::check_driver(driver).map_err(|e| daemon(e.into()))?;
            let mut labels = BTreeMap::new();
            for l in label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels.insert(k.to_string(), v.to_string());
            }
            // docker's map flag: `key=value`, or a key alone (empty value).
            let options: BTreeMap<String, String> = opt
                .iter()
                .map(|o| {
                    let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let v = engine
                .volume_create(name.as_deref(), &labels, &options)
                .map_err(|e| daemon(e.into()))?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCommand::Ls {
            quiet,
            filter,
            format,
        } => {
            let filters = crate::prune::parse_filters("volume ls", "-f, --filter", filter)?;
            let list =
                berth_engine::filters::select_volumes(&engine, &filters, engine.volume_list()?)
                    .map_err(|e| crate::FromDaemon::wrap(e.into(), true))?;
            if *quiet {
                for v in &list {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            let fmt = format::ListFormat::new(format.as_deref(), r"table {{.Driver}}\t{{.Name}}")?;
            let rows = list.iter().map(|v| volume_context(v, None));
            let header = format::header(&[
                ("Name", "VOLUME NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Labels", "LABELS"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ]);
            fmt.write(&header, rows, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        VolumeCommand::Inspect { format, names } => {
            format::inspect_each(names, format.as_deref(), |n| {
                let json = engine
                    .volume_inspect(n)
                    .map(|v| berth_engine::inspect::types::to_value(&v))
                    .map_err(|e| format!("Error: {e}"))?;
                // Docker has no raw JSON of a volume to fall back on.
                Ok(format::Found {
                    json,
                    type_name: "types.Volume",
                    raw_fallback: false,
                })
            })
        }
        VolumeCommand::Rm { names, force } => {
            let mut code = 0;
            for n in names {
                match engine.remove_volume(n) {
                    Ok(()) => println!("{n}"),
                    // Docker: -f removes what is not there without a word.
                    Err(berth_engine::Error::NoSuchVolume(_)) if *force => println!("{n}"),
                    Err(e @ berth_engine::Error::NoSuchVolume(_)) => {
                        eprintln!("Error: {e}");
                        code = 1;
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        VolumeCommand::Prune { all, force, filter } => {
            let kind = crate::prune::Kind::Volumes { all: *all };
            crate::prune::prune_in(engine, kind, *force, filter)
        }
    }
}

/// Docker's `*formatter.volumeContext`; `usage` (links, bytes) is what only
/// `system df -v` knows.
pub(crate) fn volume_context(
    v: &berth_engine::volumes::Volume,
    usage: Option<(usize, u64)>,
) -> berth_template::Value {
    use berth_template::Value as V;
    let [label, labels] = format::label_fields(&v.labels);
    let (links, size) = match usage {
        Some((links, size)) => (links.to_string(), format::human_size(size, 4)),
        None => ("N/A".into(), "N/A".into()),
    };
    format::context(
        "*formatter.volumeContext",
        vec![
            ("Driver", V::from(v.driver.as_str())),
            label,
            labels,
            ("Links", V::from(links)),
            ("Mountpoint", V::from(v.mountpoint.display().to_string())),
            ("Name", V::from(v.name.as_str())),
            ("Scope", V::from(v.scope.as_str())),
            ("Size", V::from(size)),
        ],
    )
}
