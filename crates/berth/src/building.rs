//! `berth build` (and `image build`, `builder prune`): docker's and
//! podman's flags over `berth_engine::build`. The flags are read in
//! flags.rs, progress shown by progress.rs (BuildKit's forms) or
//! classic_log.rs (the classic builder's log).

mod classic_log;
mod flags;
mod progress;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_image::store::{Image, ImageStore, StoreError};

use classic_log::{classic_log, context_tar_size, Classic};
pub use flags::BuildArgs;
use flags::{build_args, labels, parse_output, read_inputs, read_named, secrets, Output};
use progress::{Mode, Progress};

#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache
    Prune {
        /// Remove all unused build cache, not just dangling ones (berth's entries are all unused once a build is over)
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `builder prune`: docker's confirmation, list and total.
pub fn builder(engine: berth_engine::Engine, c: &BuilderCommand) -> Result<i32> {
    match c {
        BuilderCommand::Prune { all, force } => crate::prune::prune_in(
            engine,
            crate::prune::Kind::BuildCache { all: *all },
            *force,
            &[],
        ),
    }
}

/// `build`: the exit code once the image is stored (and tagged), or the
/// failed RUN's code in the classic log's form.
pub fn build(root: &Path, runroot: &Path, max_layer: u64, a: &BuildArgs) -> Result<u8> {
    crate::transfer::no_content_trust(a.disable_content_trust)?;
    if let Some(i) = a
        .isolation
        .as_deref()
        .filter(|i| !matches!(*i, "" | "default"))
    {
        bail!("Invalid isolation: {i:?} - linux only supports 'default'");
    }
    if let Some(p) = &a.platform {
        let host = berth_image::oci::host_platform();
        let want = crate::images::parse_platform(p).map_err(anyhow::Error::msg)?;
        if want.os != "linux" || want.architecture != host.architecture {
            bail!(
                "--platform {p}: only the host's platform (linux/{}) can be built here",
                host.architecture
            );
        }
    }
    let pull = match a.pull.as_deref() {
        None | Some("missing") | Some("false") => "missing",
        Some("always") | Some("true") => "always",
        Some("never") => "never",
        Some(p) => bail!("invalid --pull={p}: use always, missing or never"),
    };
    if !matches!(a.network.as_str(), "default" | "none" | "host") {
        bail!(
            "invalid --network {:?}: use default, none or host",
            a.network
        );
    }
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty" | "quiet") {
        bail!(
            "invalid --progress {:?}: use auto, plain, tty or quiet",
            a.progress
        );
    }
    let output = a.output.as_deref().map(parse_output).transpose()?;
    let tags = a
        .tags
        .iter()
        .map(|t| crate::images::parse_ref(t))
        .collect::<Result<Vec<_>>>()?;
    let timestamp = match a.timestamp {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(v.trim().parse::<i64>().map_err(|_| {
                anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?}: not a number of seconds")
            })?),
            _ => None,
        },
    };
    let mut engine = berth_engine::Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    engine.images_mut().max_layer_bytes = max_layer;
    let scratch = root.join("tmp");
    let inputs = read_inputs(a, &scratch)?;
    let ignore = match berth_build::ignore::find_ignore_file(
        &inputs.context,
        inputs
            .dockerfile_path
            .as_deref()
            .unwrap_or(Path::new("Dockerfile")),
    ) {
        Some(p) => {
            let (name, text) = read_named(&p)?;
            Some(berth_build::ignore::IgnoreMatcher::parse(&name, &text)?)
        }
        None => None,
    };
    let (secrets, _secret_files) = secrets(&a.secret, &scratch)?;
    let opts = berth_engine::build::Options {
        context: std::path::absolute(&inputs.context).context("resolve the context")?,
        dockerfile_name: inputs.name.clone(),
        dockerfile: inputs.text.clone(),
        ignore,
        tags,
        build_args: build_args(&a.build_args)?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels: labels(&a.labels)?,
        no_layers: a.layers == Some(false),
        squash: a.squash,
        timestamp,
        secrets,
        network: a.network.clone(),
        step: step_settings(a)?,
    };
    let mode = match a.progress.as_str() {
        _ if a.quiet => Mode::Quiet,
        "quiet" => Mode::Quiet,
        "plain" => Mode::Plain,
        "tty" => Mode::Live,
        _ if std::io::stderr().is_terminal() => Mode::Live,
        _ => Mode::Plain,
    };
    let is_classic = classic_log() && (a.quiet || mode != Mode::Quiet);
    let mut classic = Classic::new(a.quiet);
    if is_classic {
        // docker's HumanSize: four significant digits ("3.072kB").
        let size =
            crate::format::human_size(context_tar_size(&opts.context, opts.ignore.as_ref()), 4);
        classic.emit(&format!("Sending build context to Docker daemon  {size}"));
        // Docker's daemon reads the Dockerfile once the context arrived,
        // and refuses one it cannot build in its own words.
        let read = classic.read_dockerfile(
            &inputs.name,
            &inputs.text,
            opts.target.as_deref(),
            &opts.build_args,
        );
        if let Err(words) = read {
            classic.show_kept();
            eprintln!("Error response from daemon: {words}");
            return Ok(1);
        }
    }
    let mut progress = Progress::new(mode);
    let rep: &mut dyn berth_engine::build::Reporter = if is_classic {
        &mut classic
    } else {
        &mut progress
    };
    let quiet_pull = mode == Mode::Quiet;
    let registry = a.registry.clone();
    let mut resolve = |store: &mut ImageStore, name: &str| -> berth_engine::Result<Image> {
        let pulled = |store: &mut ImageStore| -> berth_engine::Result<Image> {
            crate::transfer::pull_for_run(store, &registry, name, quiet_pull)
                .map_err(|e| berth_engine::Error::Pull(format!("{e:#}")))?;
            Ok(store.resolve(name)?)
        };
        if pull == "always" {
            return pulled(store);
        }
        match store.resolve(name) {
            Err(StoreError::NotFound(_)) if pull == "missing" => pulled(store),
            Err(StoreError::NotFound(_)) => Err(berth_engine::Error::NotInStore(format!(
                "image {name:?} is not in the store and --pull=never"
            ))),
            r => Ok(r?),
        }
    };
    let outcome = match berth_engine::build::build(&mut engine, &opts, &mut resolve, rep) {
        Ok(o) => o,
        Err(e) => {
            if classic.reader_gone {
                crate::die_of_broken_pipe();
            }
            classic.show_kept();
            if let Some((command, code)) = classic.failure.take() {
                // The classic builder's words, and the command's own code.
                eprintln!("The command '{command}' returned a non-zero code: {code}");
                return Ok(u8::try_from(code & 0xff).unwrap_or(1));
            }
            if let Some(words) = is_classic.then(|| classic_log::step_words(&e)).flatten() {
                eprintln!("{words}");
                return Ok(1);
            }
            Progress::failed(&mut progress);
            bail!("{e}");
        }
    };
    let img = outcome.image;
    if let Some(out) = &output {
        write_output(&mut engine, &img, &a.tags, out)?;
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, img.id.to_string())
            .with_context(|| format!("write --iidfile {}", f.display()))?;
    }
    engine.db().event(
        "image",
        "build",
        &img.id.to_string(),
        &[("name", &a.tags.first().cloned().unwrap_or_default())],
    );
    if is_classic && !a.quiet {
        classic.finish(&img.id.to_string(), &opts.tags);
    } else {
        println!("{}", img.id);
    }
    Ok(0)
}

fn write_output(
    engine: &mut berth_engine::Engine,
    img: &Image,
    tags: &[String],
    out: &Output,
) -> Result<()> {
    let open = |p: &Path| -> Result<Box<dyn Write>> {
        if p == Path::new("-") {
            Ok(Box::new(std::io::stdout().lock()))
        } else {
            Ok(Box::new(
                std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
            ))
        }
    };
    match out {
        Output::Oci(p) => {
            let w = std::io::BufWriter::new(open(p)?);
            berth_image::archive::save_oci(engine.images(), &[(img.clone(), tags.to_vec())], w)?;
        }
        Output::Tar(p) => {
            let w = std::io::BufWriter::new(open(p)?);
            berth_engine::build::export_rootfs(engine, img, w)?;
        }
        Output::Local(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            let root =
                std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
            let (r, w) = std::io::pipe().context("pipe")?;
            let reader = std::thread::spawn(move || {
                berth_image::layer::extract(
                    std::io::BufReader::new(r),
                    root.into(),
                    berth_image::layer::ExtractOptions::default(),
                )
            });
            let written =
                berth_engine::build::export_rootfs(engine, img, std::io::BufWriter::new(w));
            let extracted = reader
                .join()
                .map_err(|_| anyhow::anyhow!("unpacking the output panicked"))?;
            written?;
            extracted.with_context(|| format!("write {}", dir.display()))?;
        }
    }
    Ok(())
}

/// What every RUN step's container gets from build's flags.
fn step_settings(a: &BuildArgs) -> Result<berth_engine::build::StepSettings> {
    let mut security = berth_engine::ContainerConfig::default();
    crate::run_flags::config::security_opts(&a.security_opt, &mut security)?;
    for image in &a.cache_from {
        eprintln!(
            "WARNING: --cache-from {image}: berth's build cache is its store's own; the image is not used as a cache source"
        );
    }
    Ok(berth_engine::build::StepSettings {
        resources: a.resources.resources()?,
        ulimits: crate::run_flags::config::ulimits(&a.ulimit)?,
        shm_size: match &a.shm_size {
            Some(s) => crate::run_flags::size_flag("--shm-size", s)?,
            None => 0,
        },
        extra_hosts: a.add_host.clone(),
        cgroup_parent: a.cgroup_parent.clone().unwrap_or_default(),
        seccomp: security.seccomp,
        no_new_privileges: security.no_new_privileges,
    })
}
