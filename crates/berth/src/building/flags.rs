//! `build`'s flags: what they name (the Dockerfile, the context, build
//! arguments, labels, secrets, outputs) read and checked before the build.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::transfer::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name (and tag) of the image; repeat for more names
    #[arg(short, long = "tag", value_name = "NAME[:TAG]", value_parser = crate::image_names::tag_flag)]
    pub(super) tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile); - reads it from stdin
    #[arg(short, long, value_name = "FILE")]
    pub(super) file: Option<String>,
    /// A build argument (KEY alone takes its value from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub(super) build_args: Vec<String>,
    /// Build this stage (and what it needs) only
    #[arg(long)]
    pub(super) target: Option<String>,
    /// Run every step instead of using cached results
    #[arg(long)]
    pub(super) no_cache: bool,
    /// Pull base images: missing (default), always, never (true means always, false missing)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pub(super) pull: Option<String>,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub(super) iidfile: Option<PathBuf>,
    /// A label for the image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(super) labels: Vec<String>,
    /// Print only the image id
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Progress output: auto, plain, tty or quiet
    #[arg(long, default_value = "auto")]
    pub(super) progress: String,
    /// Also write the result: type=local,dest=DIR | type=tar,dest=FILE | type=oci,dest=FILE (a bare DIR means local)
    #[arg(short, long, value_name = "SPEC")]
    pub(super) output: Option<String>,
    /// The new layers of the target stage as one
    #[arg(long)]
    pub(super) squash: bool,
    /// Keep a layer per step and use the cache (false: one layer per stage, no cache)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub(super) layers: Option<bool>,
    /// Every time in the image set to this (seconds since 1970), for reproducible builds; SOURCE_DATE_EPOCH does the same
    #[arg(long, value_name = "SECONDS")]
    pub(super) timestamp: Option<i64>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR
    #[arg(long, value_name = "SPEC")]
    pub(super) secret: Vec<String>,
    /// RUN's network: default (the host's), none or host
    #[arg(long, default_value = "default")]
    pub(super) network: String,
    /// The platform to build for: only the host's
    #[arg(long)]
    pub(super) platform: Option<String>,
    /// Remove intermediate containers (always: the builder keeps none)
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(super) rm: Option<bool>,
    /// Remove intermediate containers even after a failure (always)
    #[arg(long, hide = true)]
    pub(super) force_rm: bool,
    /// Skip image verification: berth checks digests, not signatures (=false is refused)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub(super) disable_content_trust: Option<bool>,
    /// Container isolation: default (the only one on Linux)
    #[arg(long)]
    pub(super) isolation: Option<String>,
    #[command(flatten)]
    pub(super) registry: RegistryArgs,
    /// RUN steps' limits, as run's (--memory, --cpu-shares, --cpuset-cpus...)
    #[command(flatten)]
    pub(super) resources: crate::run_flags::ResourceArgs,
    /// A host:ip line in RUN steps' /etc/hosts
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub(super) add_host: Vec<String>,
    /// RUN steps' ulimits: NAME=SOFT[:HARD]
    #[arg(long, value_name = "ULIMIT")]
    pub(super) ulimit: Vec<String>,
    /// Size of RUN steps' /dev/shm (b, k, m, g)
    #[arg(long, value_name = "SIZE")]
    pub(super) shm_size: Option<String>,
    /// The cgroup RUN steps run under
    #[arg(long, value_name = "PATH")]
    pub(super) cgroup_parent: Option<String>,
    /// RUN steps' seccomp=PROFILE|unconfined, no-new-privileges
    #[arg(long, value_name = "OPT")]
    pub(super) security_opt: Vec<String>,
    /// Images to take cached steps from: berth's cache is its store's own, so it warns that they are not used
    #[arg(long, value_name = "IMAGE")]
    pub(super) cache_from: Vec<String>,
    /// Compress the context on its way to the daemon: berth has none and reads the context in place
    #[arg(long)]
    pub(super) compress: bool,
    /// The context: a directory, or - for a tar (or a lone Dockerfile) on stdin
    pub(super) context: String,
}

/// The Dockerfile and context, wherever they come from.
pub(super) struct Inputs {
    pub(super) context: PathBuf,
    /// Keeps a context unpacked from stdin alive.
    _unpacked: Option<tempfile::TempDir>,
    pub(super) name: String,
    pub(super) text: String,
    pub(super) dockerfile_path: Option<PathBuf>,
}

/// docker's client's words for a context it cannot prepare (printed as
/// they are, without "Error:").
fn prepare(why: String) -> anyhow::Error {
    crate::errors::ClientSide(format!("unable to prepare context: {why}")).into()
}

/// No Dockerfile at `path` (docker names it by its absolute path, the way
/// Go's lstat reports it; berth also looks for a Containerfile).
fn no_dockerfile(path: &Path) -> anyhow::Error {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    prepare(format!(
        "unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
        abs.display()
    ))
}

pub(super) fn read_inputs(a: &BuildArgs, scratch: &Path) -> Result<Inputs> {
    if a.context.contains("://") || a.context.starts_with("git@") {
        bail!(
            "context {:?}: remote contexts (URLs, git) are not implemented yet",
            a.context
        );
    }
    let mut unpacked = None;
    let mut stdin_dockerfile = None;
    let context = if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("-f - and a context on stdin cannot both read stdin");
        }
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read the context from stdin")?;
        let dir = tempfile::tempdir_in(scratch).context("create a scratch directory")?;
        if is_tar(&data) {
            let root = std::fs::File::open(dir.path()).context("open the scratch directory")?;
            let reader: Box<dyn Read> =
                match berth_image::layer::decompress(std::io::Cursor::new(data)) {
                    Ok(r) => Box::new(r),
                    Err(e) => bail!("read the context from stdin: {e}"),
                };
            berth_image::layer::extract(
                reader,
                root.into(),
                berth_image::layer::ExtractOptions::default(),
            )
            .context("unpack the context from stdin")?;
        } else {
            // docker build - < Dockerfile: no context at all.
            stdin_dockerfile =
                Some(String::from_utf8(data).context("the Dockerfile on stdin is not UTF-8")?);
        }
        let p = dir.path().to_path_buf();
        unpacked = Some(dir);
        p
    } else {
        let p = PathBuf::from(&a.context);
        if !p.exists() {
            return Err(prepare(format!("path {:?} not found", a.context)));
        }
        if !p.is_dir() {
            let abs = std::path::absolute(&p).unwrap_or_else(|_| p.clone());
            return Err(prepare(format!(
                "context must be a directory: {}",
                abs.display()
            )));
        }
        p
    };
    let (name, text, path) = match (&a.file, stdin_dockerfile) {
        (_, Some(text)) => ("Dockerfile".to_string(), text, None),
        (Some(f), None) if f == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read the Dockerfile from stdin")?;
            ("Dockerfile".to_string(), text, None)
        }
        (Some(f), None) => {
            let p = PathBuf::from(f);
            // docker: relative to the working directory; podman also
            // looks in the context.
            let p = if p.exists() || p.is_absolute() || !context.join(f).exists() {
                p
            } else {
                context.join(f)
            };
            if !p.exists() {
                return Err(no_dockerfile(&p));
            }
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("read the Dockerfile {}", p.display()))?;
            (f.clone(), text, Some(p))
        }
        (None, None) => {
            let found = ["Containerfile", "Dockerfile"]
                .iter()
                .map(|n| context.join(n))
                .find(|p| p.is_file());
            let Some(p) = found else {
                return Err(no_dockerfile(&context.join("Dockerfile")));
            };
            let (name, text) = read_named(&p)?;
            (name, text, Some(p))
        }
    };
    Ok(Inputs {
        context,
        _unpacked: unpacked,
        name,
        text,
        dockerfile_path: path,
    })
}

/// A file's name (for messages) and its text.
pub(super) fn read_named(p: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((name, text))
}

/// A tar stream, plain or compressed, by its first bytes.
fn is_tar(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
        || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || data.get(257..262) == Some(b"ustar")
}

/// `--build-arg K=V`, or a bare `K` that takes its value from the
/// environment (left out when the environment has none, as docker does).
pub(super) fn build_args(list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in list {
        if item.contains('=') {
            let (k, v) = crate::run_flags::key_value("--build-arg", item)?;
            out.insert(k, v);
        } else if let Ok(v) = std::env::var(item) {
            out.insert(item.clone(), v);
        }
    }
    Ok(out)
}

/// `--label K=V`s.
pub(super) fn labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|l| crate::run_flags::key_value("--label", l))
        .collect()
}

pub(super) fn secrets(
    list: &[String],
    scratch: &Path,
) -> Result<(BTreeMap<String, PathBuf>, Vec<tempfile::NamedTempFile>)> {
    let mut out = BTreeMap::new();
    let mut keep = Vec::new();
    for spec in list {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => bail!("invalid --secret {spec:?}: use id=ID,src=FILE or id=ID,env=VAR"),
            }
        }
        let id = id.or_else(|| {
            src.as_ref()
                .and_then(|s| s.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        });
        let Some(id) = id else {
            bail!("invalid --secret {spec:?}: no id");
        };
        let path = match (src, env) {
            (Some(p), _) => {
                if !p.is_file() {
                    bail!("--secret {id}: {} is not a file", p.display());
                }
                std::path::absolute(&p).context("resolve the secret's path")?
            }
            (None, Some(var)) => {
                let value = std::env::var(&var).with_context(|| {
                    format!("--secret {id}: environment variable {var} is not set")
                })?;
                let mut f =
                    tempfile::NamedTempFile::new_in(scratch).context("create a secret file")?;
                f.write_all(value.as_bytes())
                    .context("write a secret file")?;
                let p = f.path().to_path_buf();
                keep.push(f);
                p
            }
            (None, None) => bail!("invalid --secret {spec:?}: give src=FILE or env=VAR"),
        };
        out.insert(id, path);
    }
    Ok((out, keep))
}

/// Where `--output` goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Output {
    Local(PathBuf),
    Tar(PathBuf),
    Oci(PathBuf),
}

pub(super) fn parse_output(s: &str) -> Result<Output> {
    if !s.contains('=') {
        return Ok(Output::Local(PathBuf::from(s)));
    }
    let mut kind = None;
    let mut dest = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => bail!("invalid --output {s:?}: use type=local|tar|oci,dest=PATH"),
        }
    }
    let Some(dest) = dest else {
        bail!("invalid --output {s:?}: dest= is required");
    };
    match kind.as_deref() {
        Some("local") => Ok(Output::Local(dest)),
        Some("tar") => Ok(Output::Tar(dest)),
        Some("oci") => Ok(Output::Oci(dest)),
        Some(k) => bail!("--output type={k} is not supported: use local, tar or oci"),
        None => bail!("invalid --output {s:?}: type= is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!(parse_output("out").unwrap(), Output::Local("out".into()));
        assert_eq!(
            parse_output("type=tar,dest=x.tar").unwrap(),
            Output::Tar("x.tar".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=-").unwrap(),
            Output::Oci("-".into())
        );
        for bad in [
            "type=registry,dest=x",
            "type=tar",
            "dest=x",
            "type=tar,dest=x,bogus=1",
        ] {
            assert!(parse_output(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_args_and_labels() {
        std::env::set_var("BERTH_TEST_BUILD_ARG", "fromenv");
        let m = build_args(&[
            "A=1".into(),
            "B=".into(),
            "BERTH_TEST_BUILD_ARG".into(),
            "BERTH_TEST_UNSET_ARG".into(),
        ])
        .unwrap();
        assert_eq!(m.get("A").map(String::as_str), Some("1"));
        assert_eq!(m.get("B").map(String::as_str), Some(""));
        assert_eq!(
            m.get("BERTH_TEST_BUILD_ARG").map(String::as_str),
            Some("fromenv")
        );
        assert!(!m.contains_key("BERTH_TEST_UNSET_ARG"));
        assert!(build_args(&["=x".into()]).is_err());
        assert!(labels(&["novalue".into()]).is_err());
        assert!(labels(&["=x".into()]).is_err());
    }

    #[test]
    fn tar_by_content() {
        assert!(is_tar(&[0x1f, 0x8b, 8]));
        assert!(!is_tar(b"FROM busybox\n"));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert!(is_tar(&t));
    }
}
