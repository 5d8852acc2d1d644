//! `berth kube play|down|generate`: Kubernetes YAML in podman's command
//! lines and output, over berth_kube.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_engine::Engine;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// Run the pods of a Kubernetes YAML file (Pod, Deployment, DaemonSet,
    /// Job, ConfigMap, Secret, PersistentVolumeClaim, Service)
    Play {
        /// Remove the pods the file made instead
        #[arg(long)]
        down: bool,
        /// Remove pods of the same names first
        #[arg(long)]
        replace: bool,
        /// Start the pods (--start=false: only create them)
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        start: bool,
        /// The YAML file (- for stdin)
        file: PathBuf,
    },
    /// Remove the pods a Kubernetes YAML file made (kube play --down)
    Down { file: PathBuf },
    /// Write pods and containers as Kubernetes YAML
    Generate {
        /// A NodePort Service for the published ports too
        #[arg(short, long)]
        service: bool,
        /// Write to this file instead of stdout
        #[arg(short, long)]
        filename: Option<PathBuf>,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn read(file: &Path) -> Result<(String, String)> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("read the YAML from stdin")?;
        return Ok((text, "stdin".into()));
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    Ok((text, file.display().to_string()))
}

pub fn run(root: &Path, runroot: &Path, cmd: &KubeCommand) -> Result<i32> {
    let mut engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    match cmd {
        KubeCommand::Play {
            down: true, file, ..
        }
        | KubeCommand::Down { file } => {
            let (text, name) = read(file)?;
            let parsed = berth_kube::parse(&text, &name)?;
            let report = berth_kube::down(&engine, &parsed)?;
            if !report.pods.is_empty() {
                println!("Pods stopped:");
                for id in &report.pods {
                    println!("{id}");
                }
                println!("Pods removed:");
                for id in &report.pods {
                    println!("{id}");
                }
            }
            Ok(0)
        }
        KubeCommand::Play {
            down: false,
            replace,
            start,
            file,
        } => {
            let (text, name) = read(file)?;
            let parsed = berth_kube::parse(&text, &name)?;
            for w in &parsed.warnings {
                eprintln!("warning: {w}");
            }
            let mut opts = berth_kube::PlayOptions::default();
            opts.replace = *replace;
            opts.start = *start;
            let report = berth_kube::play(&mut engine, &parsed, &opts)?;
            // The file's own were printed above; these come of playing it.
            for w in report.warnings.iter().skip(parsed.warnings.len()) {
                eprintln!("warning: {w}");
            }
            for p in &report.pods {
                println!("Pod:\n{}", p.id);
                let ids: Vec<&String> = p
                    .containers
                    .iter()
                    .filter(|c| !c.starts_with("init:"))
                    .collect();
                println!(
                    "{}:",
                    if ids.len() == 1 {
                        "Container"
                    } else {
                        "Containers"
                    }
                );
                for id in ids {
                    println!("{id}");
                }
                println!();
            }
            Ok(0)
        }
        KubeCommand::Generate {
            service,
            filename,
            names,
        } => {
            let opts = berth_kube::GenerateOptions::with_service(*service);
            let yaml = berth_kube::generate(&engine, names, &opts)?;
            let text = format!(
                "# Save the output of this file and use kubectl create -f to import\n\
                 # it into Kubernetes.\n#\n# Created with berth {}\n{yaml}",
                env!("CARGO_PKG_VERSION")
            );
            match filename {
                Some(f) => {
                    std::fs::write(f, text).with_context(|| format!("write {}", f.display()))?
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
    }
}
