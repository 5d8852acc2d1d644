//! `pull` and `push`: flags and output over the registry crate; their
//! progress in transfer/progress.rs (nothing with `-q`), `login` and
//! `logout` in transfer/login.rs.

mod login;
mod progress;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_image::store::ImageStore;
use berth_image::Reference;
use berth_registry::auth::{self, Credentials};
use berth_registry::progress::{Progress, Silent};
use berth_registry::{Client, Endpoint};

pub use login::{login, logout, LoginArgs, LogoutArgs};
use progress::Reporter;

use crate::images::parse_ref;

/// Flags every registry command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Require HTTPS with a verified certificate (false: unverified TLS, or plain HTTP, for a registry you trust; default: true unless the registry is on loopback, as Docker's 127.0.0.0/8, or registries.conf marks it insecure)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Directory of CA files (*.crt) and a client certificate pair (*.cert, *.key) for the registry
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Auth file to read credentials from and write them to (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Credentials USERNAME:PASSWORD for this command only
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
}

impl RegistryArgs {
    /// Whether plain HTTP and unverified TLS are allowed for `name` (a
    /// registry or a repository's full name): --tls-verify when given,
    /// else yes on loopback (as Docker's daemon, whose default insecure
    /// range is 127.0.0.0/8), else what the registries configuration says.
    fn insecure(&self, name: &str) -> Result<bool> {
        Ok(match self.tls_verify {
            Some(verify) => !verify,
            None if berth_registry::endpoint::loopback(name) => true,
            None => berth_registry::endpoint::marked_insecure(
                name,
                &berth_registry::endpoint::registries_conf_files(),
            )?,
        })
    }

    /// A client for the registry of `r`, with the credentials given or
    /// stored.
    pub(crate) fn client(&self, r: &Reference, scopes: Vec<String>) -> Result<Client> {
        let creds = match &self.creds {
            Some(c) => Some(Credentials::parse(c)?),
            None => auth::lookup(&r.registry, &auth::read_order(self.authfile.as_deref()))?,
        };
        let endpoint = Endpoint::new(
            &r.registry,
            self.insecure(&r.name())?,
            self.cert_dir.clone(),
        );
        Ok(Client::new(endpoint, creds, scopes)?)
    }

    /// A client for the v1 index `term` names (`search`), with the
    /// credentials given or stored for it.
    pub(crate) fn index_client(&self, term: &berth_registry::search::Term) -> Result<Client> {
        let creds = match &self.creds {
            Some(c) => Some(Credentials::parse(c)?),
            None => auth::lookup(&term.index, &auth::read_order(self.authfile.as_deref()))?,
        };
        let endpoint = term.endpoint(self.insecure(&term.index)?, self.cert_dir.clone());
        Ok(Client::for_index(endpoint, creds)?)
    }
}

/// `berth pull`
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print only the image's name when done
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform to pull from a multi-platform image, os/arch[/variant] (default: this host's)
    #[arg(long, value_parser = crate::images::parse_platform)]
    pub platform: Option<berth_image::oci::Platform>,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_downloads: u16,
    /// Skip image verification: berth checks digests, not signatures (=false is refused)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub disable_content_trust: Option<bool>,
    /// Pull every tag of the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Image to pull: NAME[:TAG] or NAME@DIGEST (NAME alone with --all-tags)
    pub image: String,
}

impl PullArgs {
    /// What the registry library's pull takes of these flags.
    fn options(&self) -> berth_registry::pull::PullOptions {
        berth_registry::pull::PullOptions {
            platform: self.platform.clone(),
            max_concurrent_downloads: usize::from(self.max_concurrent_downloads),
        }
    }
}

/// docker's last status line of a pull of `r` (a tag or, for --all-tags,
/// the repository).
fn status_line(up_to_date: bool, r: &Reference) -> String {
    let what = if up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    format!("Status: {what} {}", r.familiar())
}

/// `berth push`
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Blobs uploaded at once
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_uploads: u16,
    /// Upload blobs in chunks of this size (k, m, g suffixes) instead of one request each
    #[arg(long, value_parser = berth_relay::size::ram_in_bytes)]
    pub chunk_size: Option<u64>,
    /// Compress uncompressed layers on the way (only gzip; the pushed manifest then differs from the stored one)
    #[arg(long, value_name = "FORMAT", value_parser = ["gzip"])]
    pub compression_format: Option<String>,
    /// Write the pushed manifest's digest to this file
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    /// Local image to push (its name says where, unless DESTINATION is given)
    pub image: String,
    /// Where to push it: [REGISTRY/]NAME[:TAG] (default: the image's name)
    pub destination: Option<String>,
    /// Push every local tag of the repository
    #[arg(short = 'a', long, conflicts_with = "destination")]
    pub all_tags: bool,
    /// Not a flag: a caller's push that prints no name when quiet
    /// (compose's `push -q`, which prints nothing).
    #[arg(skip)]
    pub no_name: bool,
    /// Skip image signing: berth signs nothing (=false is refused)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub disable_content_trust: Option<bool>,
}

/// `berth pull`: what docker prints, and its daemon's words for what
/// failed on the registry's side.
pub fn pull(store: &mut ImageStore, a: &PullArgs) -> Result<()> {
    no_content_trust(a.disable_content_trust)?;
    let r = parse_ref(&a.image)?;
    if a.all_tags {
        if r.digest.is_some() || has_tag(&a.image) {
            // docker's client's words, without "Error:".
            return Err(crate::format::failure(
                "tag can't be used with --all-tags/-a".into(),
                1,
            ));
        }
        return pull_all_tags(store, a, &r).map_err(|e| crate::FromDaemon::wrap(e, false));
    }
    if !a.quiet && r.digest.is_none() && !has_tag(&a.image) {
        println!("Using default tag: latest");
    }
    pull_with(store, a, false).map_err(|e| crate::FromDaemon::wrap(e, false))
}

/// `pull --all-tags`: every tag the registry lists for the repository, in
/// its order, each with its "Digest:", then one status for the whole.
fn pull_all_tags(store: &mut ImageStore, a: &PullArgs, r: &Reference) -> Result<()> {
    // The repository, named without the tag the parser gave it.
    let repo = Reference {
        tag: None,
        digest: None,
        ..r.clone()
    };
    let client = a
        .registry
        .client(r, vec![Client::scope(&r.repository, "pull")])?;
    let tags = berth_registry::pull::list_tags(&client, &r.repository)?;
    let reporter = Reporter::new(false);
    let progress: &dyn Progress = if a.quiet { &Silent } else { &reporter };
    let opts = a.options();
    let mut up_to_date = true;
    for tag in &tags {
        let tagged = Reference {
            tag: Some(tag.clone()),
            digest: None,
            ..r.clone()
        };
        let pulled = berth_registry::pull::pull(store, &client, &tagged, &opts, progress);
        reporter.end();
        let pulled = pulled?;
        up_to_date &= pulled.up_to_date;
        if !a.quiet {
            reporter.line(&format!("Digest: {}", pulled.digest));
        }
    }
    if !a.quiet {
        reporter.line(&status_line(up_to_date, &repo));
    }
    reporter.line(&repo.to_string());
    Ok(())
}

/// `--disable-content-trust=false`: Docker Content Trust (Notary
/// signatures) is not something berth does; saying so beats pretending.
pub(crate) fn no_content_trust(disable: Option<bool>) -> Result<()> {
    if disable == Some(false) {
        bail!("berth does not verify image signatures (Docker Content Trust): --disable-content-trust=false cannot be honoured");
    }
    Ok(())
}

/// Whether a reference as written names a tag (a `:` after its last `/`:
/// `127.0.0.1:5000/app` has none).
fn has_tag(image: &str) -> bool {
    image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

/// A pull for `run`/`create` of an image not in the store: what `pull`
/// prints, on stderr.
pub fn pull_for_run(
    store: &mut ImageStore,
    registry: &RegistryArgs,
    image: &str,
    quiet: bool,
) -> Result<()> {
    let a = PullArgs {
        disable_content_trust: None,
        registry: registry.clone(),
        quiet,
        platform: None,
        max_concurrent_downloads: 3,
        all_tags: false,
        image: image.to_string(),
    };
    pull_with(store, &a, true)
}

fn pull_with(store: &mut ImageStore, a: &PullArgs, stderr: bool) -> Result<()> {
    let r = parse_ref(&a.image)?;
    let client = a
        .registry
        .client(&r, vec![Client::scope(&r.repository, "pull")])?;
    let reporter = Reporter::new(stderr);
    // "Pulling from" comes from the library, once the registry answered.
    let progress: &dyn Progress = if a.quiet { &Silent } else { &reporter };
    let opts = a.options();
    let pulled = berth_registry::pull::pull(store, &client, &r, &opts, progress);
    reporter.end();
    // docker's daemon says what failed without naming the pull.
    let pulled = pulled?;
    if a.quiet {
        reporter.line(&r.to_string());
    } else {
        reporter.line(&format!("Digest: {}", pulled.digest));
        reporter.line(&status_line(pulled.up_to_date, &r));
        // `run`'s pull ends with the status: the name line is pull's.
        if !stderr {
            reporter.line(&r.to_string());
        }
    }
    Ok(())
}

pub fn push(store: &ImageStore, a: &PushArgs) -> Result<()> {
    no_content_trust(a.disable_content_trust)?;
    if a.destination.is_some() {
        let img = store.resolve(&a.image)?;
        let dest = match &a.destination {
            Some(d) => parse_ref(d.strip_prefix("docker://").unwrap_or(d))?,
            None => unreachable!("checked above"),
        };
        return push_one(store, a, &img, &dest);
    }
    // docker's way: the image's own name says where; its daemon says
    // where to before it looks for the image.
    let Ok(r) = parse_ref(&a.image) else {
        let img = store.resolve(&a.image)?;
        bail!(
            "{:?} is an image id ({}): give a DESTINATION to push it to",
            a.image,
            img.id
        );
    };
    let repo = Reference {
        tag: None,
        digest: None,
        ..r.clone()
    };
    let tagged = has_tag(&a.image) || r.digest.is_some();
    if a.all_tags && tagged {
        return Err(crate::format::failure(
            "tag can't be used with --all-tags/-a".into(),
            1,
        ));
    }
    if !a.quiet && !tagged && !a.all_tags {
        println!("Using default tag: latest");
    }
    if r.digest.is_some() {
        bail!(
            "cannot push to a digest reference ({}): give a tag or none",
            r.familiar()
        );
    }
    if !a.quiet {
        println!("The push refers to repository [{}]", r.name());
    }
    // The repository's local tags, as docker's daemon sorts them.
    let mut local: Vec<(Reference, berth_image::store::Image)> = Vec::new();
    for img in store.list()? {
        for t in &img.tags {
            if let Ok(t) = t.parse::<Reference>() {
                if t.name() == r.name() && t.tag.is_some() {
                    local.push((t, img.clone()));
                }
            }
        }
    }
    local.sort_by(|(x, _), (y, _)| x.tag.cmp(&y.tag));
    let wanted: Vec<_> = if a.all_tags {
        local
    } else {
        local.into_iter().filter(|(t, _)| t.tag == r.tag).collect()
    };
    if wanted.is_empty() {
        let any = store.list()?.iter().any(|img| {
            img.tags
                .iter()
                .any(|t| t.parse::<Reference>().is_ok_and(|t| t.name() == r.name()))
        });
        let message = if any && !a.all_tags {
            format!("tag does not exist: {}", r.familiar())
        } else {
            format!(
                "An image does not exist locally with the tag: {}",
                repo.familiar()
            )
        };
        return Err(crate::format::failure(message, 1));
    }
    for (dest, img) in &wanted {
        push_one(store, a, img, dest)?;
    }
    if a.quiet && !a.no_name {
        println!(
            "{}",
            if a.all_tags {
                repo.familiar()
            } else {
                r.familiar()
            }
        );
    }
    Ok(())
}

/// Pushes `img` to `dest`, with docker's progress (the "push refers to"
/// line is the caller's) and its last line.
fn push_one(
    store: &ImageStore,
    a: &PushArgs,
    img: &berth_image::store::Image,
    dest: &Reference,
) -> Result<()> {
    let client = a
        .registry
        .client(dest, berth_registry::push::scopes(img, dest))?;
    let reporter = Reporter::new(false);
    let progress: &dyn Progress = if a.quiet { &Silent } else { &reporter };
    if a.destination.is_some() {
        progress.message(&format!("The push refers to repository [{}]", dest.name()));
    }
    let opts = berth_registry::push::PushOptions {
        max_concurrent_uploads: usize::from(a.max_concurrent_uploads),
        chunk_size: a.chunk_size,
        gzip: a.compression_format.is_some(),
    };
    let pushed = berth_registry::push::push(store, &client, img, dest, &opts, progress);
    reporter.end();
    let (digest, size) = pushed.with_context(|| format!("push {}", dest.familiar()))?;
    if let Some(f) = &a.digestfile {
        std::fs::write(f, digest.to_string()).with_context(|| format!("write {}", f.display()))?;
    }
    if !a.quiet {
        println!(
            "{}: digest: {digest} size: {size}",
            dest.tag.as_deref().unwrap_or("latest")
        );
    }
    Ok(())
}
