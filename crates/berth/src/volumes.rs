//! `berth volume ...`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use berth_engine::Engine;
use clap::Subcommand;
use serde_json::Value;

use crate::format;
use crate::ps::dir_size;
use crate::run_flags::key_value;
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
        #[arg(short, long)]
        force: bool,
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
            name,
        } => {
            // docker's daemon answers, naming the volume.
            let daemon = |e: anyhow::Error| {
                crate::FromDaemon::wrap(
                    e.context(format!("create {}", name.as_deref().unwrap_or(""))),
                    false,
                )
            };
            if driver != "local" {
                return Err(daemon(anyhow::anyhow!(
                    "error looking up volume plugin {driver}: plugin {driver:?} not found"
                )));
            }
            let mut labels = BTreeMap::new();
            for l in label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let v = engine
                .volumes()
                .create(name.as_deref(), &labels)
                .map_err(|e| daemon(e.into()))?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCommand::Ls {
            quiet,
            filter,
            format,
        } => {
            let mut list = engine.volume_list()?;
            for f in filter {
                let (k, v) = key_value("--filter", f)?;
                let keep: Box<dyn Fn(&berth_engine::volumes::Volume) -> bool> = match k.as_str() {
                    "dangling" => {
                        let want = v == "true" || v == "1";
                        let used: Vec<bool> = list
                            .iter()
                            .map(|x| engine.volume_users(&x.name).is_ok_and(|u| !u.is_empty()))
                            .collect();
                        let names: Vec<String> = list
                            .iter()
                            .zip(used)
                            .filter(|(_, u)| *u != want)
                            .map(|(x, _)| x.name.clone())
                            .collect();
                        Box::new(move |x| names.contains(&x.name))
                    }
                    "name" => Box::new(move |x| x.name.contains(v.as_str())),
                    "label" => Box::new(move |x| match v.split_once('=') {
                        Some((k, val)) => x.labels.get(k).is_some_and(|y| y == val),
                        None => x.labels.contains_key(v.as_str()),
                    }),
                    _ => return Err(crate::invalid_filter(&k)),
                };
                list.retain(|x| keep(x));
            }
            if *quiet {
                for v in &list {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            let fmt = format::ListFormat::new(format.as_deref(), r"table {{.Driver}}\t{{.Name}}")?;
            let rows = list.iter().map(|v| {
                use berth_template::Value as V;
                let [label, labels] = format::label_fields(&v.labels);
                format::context(
                    "*formatter.volumeContext",
                    vec![
                        ("Driver", V::from(v.driver.as_str())),
                        label,
                        labels,
                        // Docker knows these only from `system df`.
                        ("Links", V::from("N/A")),
                        ("Mountpoint", V::from(v.mountpoint.display().to_string())),
                        ("Name", V::from(v.name.as_str())),
                        ("Scope", V::from(v.scope.as_str())),
                        ("Size", V::from("N/A")),
                    ],
                )
            });
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
            let mut inspector = format.as_deref().map(format::Inspector::new).transpose()?;
            let mut out = Vec::new();
            let mut code = 0;
            for n in names {
                match (engine.volume_inspect(n), inspector.as_mut()) {
                    // Docker has no raw JSON of a volume to fall back on.
                    (Ok(v), Some(i)) => i.add(&v, "types.Volume", false),
                    (Ok(v), None) => out.push(v),
                    (Err(e), Some(i)) => i.error(format!("Error: {e}")),
                    (Err(e), None) => {
                        eprintln!("Error: {e}");
                        code = 1;
                    }
                }
            }
            match inspector {
                Some(i) => i.finish(&mut std::io::stdout().lock()),
                None => {
                    println!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
                    Ok(code)
                }
            }
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
        VolumeCommand::Prune { all, .. } => {
            println!("Deleted Volumes:");
            let mut freed = 0;
            for v in engine.volumes().list()? {
                if (*all || v.anonymous) && engine.volume_users(&v.name)?.is_empty() {
                    freed += dir_size(&v.mountpoint);
                    engine.volumes().remove(&v.name)?;
                    println!("{}", v.name);
                }
            }
            println!("\nTotal reclaimed space: {}", format::size(freed));
            Ok(0)
        }
    }
}
