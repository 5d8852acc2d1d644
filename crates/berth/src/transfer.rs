//! `pull`, `push`, `login`, `logout`: flags, output and progress over the
//! registry crate.
//!
//! Progress goes to stdout as Docker's does: a bar per layer (bytes, rate,
//! ETA) on a terminal, one line per layer event otherwise, nothing with
//! `-q`.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use berth_image::store::ImageStore;
use berth_image::Reference;
use berth_registry::auth::{self, Credentials};
use berth_registry::progress::{Progress, Silent};
use berth_registry::{Client, Endpoint};

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
    fn client(&self, r: &Reference, scopes: Vec<String>) -> Result<Client> {
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
}

/// Bars on a terminal, lines otherwise.
pub struct Reporter {
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<HashMap<String, indicatif::ProgressBar>>,
    )>,
    /// Everything on stderr (a pull for `run`: stdout is the container's).
    stderr: bool,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl Reporter {
    fn new(stderr: bool) -> Reporter {
        // Drawn where the lines around them go (stdout, as Docker does,
        // unless this pull serves `run`).
        let tty = if stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let bars = tty.then(|| {
            let target = if stderr {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::stdout()
            };
            (
                indicatif::MultiProgress::with_draw_target(target),
                Mutex::new(HashMap::new()),
            )
        });
        Reporter { bars, stderr }
    }

    fn line(&self, s: &str) {
        if self.stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    /// Ends the bars' block: indicatif leaves the cursor after the last
    /// bar, so what is printed next would join its line.
    fn end(&self) {
        if let Some((_, bars)) = &self.bars {
            if !bars.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                self.line("");
            }
        }
    }

    fn bar(&self, id: &str, total: Option<u64>) -> Option<indicatif::ProgressBar> {
        let (multi, bars) = self.bars.as_ref()?;
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            bars.entry(id.to_string())
                .or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new(total.unwrap_or(0)));
                    b.set_prefix(id.to_string());
                    b
                })
                .clone(),
        )
    }
}

impl Progress for Reporter {
    fn start(&self, id: &str, action: &str, total: u64) {
        match self.bar(id, Some(total)) {
            Some(b) => {
                b.set_length(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(action.to_string());
            }
            // Without a terminal docker prints the phases, not the bytes.
            None if action == "Downloading" => self.line(&format!("{id}: Pulling fs layer")),
            None => self.line(&format!("{id}: {action}")),
        }
    }

    fn advance(&self, id: &str, n: u64) {
        if let Some(b) = self.bar(id, None) {
            b.inc(n);
        }
    }

    fn finish(&self, id: &str, status: &str) {
        match self.bar(id, None) {
            Some(b) => {
                b.set_style(
                    indicatif::ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.finish_with_message(status.to_string());
            }
            None => {
                if status == "Pull complete" {
                    // The layer is streamed, checked and unpacked at once:
                    // its end is all three of docker's last phases.
                    self.line(&format!("{id}: Verifying Checksum"));
                    self.line(&format!("{id}: Download complete"));
                }
                self.line(&format!("{id}: {status}"));
            }
        }
    }

    fn message(&self, line: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => self.line(line),
        }
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
    #[arg(long, value_parser = crate::parse_platform)]
    pub platform: Option<berth_image::oci::Platform>,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_downloads: u16,
    /// Image to pull: NAME[:TAG] or NAME@DIGEST
    pub image: String,
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
    #[arg(long, value_parser = crate::parse_size)]
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
}

/// `berth login`
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry (default: docker.io)
    pub server: Option<String>,
}

/// `berth logout`
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Auth file to remove the credentials from
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
    /// Registry (default: docker.io)
    pub server: Option<String>,
}

fn parse_ref(s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
}

/// A registry as `login` takes it: `https://r.example:5000/v2/` is
/// `r.example:5000`; Docker Hub's names are `docker.io`.
fn registry_name(server: Option<&str>) -> Result<String> {
    let s = server.unwrap_or("docker.io").trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        bail!("{s:?} is not a registry name (host or host:port)");
    }
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    })
}

/// `berth pull`: what docker prints, and its daemon's words for what
/// failed on the registry's side.
pub fn pull(store: &mut ImageStore, a: &PullArgs) -> Result<()> {
    let r = parse_ref(&a.image)?;
    if !a.quiet && r.digest.is_none() && !has_tag(&a.image) {
        println!("Using default tag: latest");
    }
    pull_with(store, a, false).map_err(|e| crate::FromDaemon::wrap(e, false))
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
        registry: registry.clone(),
        quiet,
        platform: None,
        max_concurrent_downloads: 3,
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
    let opts = berth_registry::pull::PullOptions {
        platform: a.platform.clone(),
        max_concurrent_downloads: usize::from(a.max_concurrent_downloads),
    };
    let pulled = berth_registry::pull::pull(store, &client, &r, &opts, progress);
    reporter.end();
    // docker's daemon says what failed without naming the pull.
    let pulled = pulled?;
    if a.quiet {
        reporter.line(&r.to_string());
    } else {
        reporter.line(&format!("Digest: {}", pulled.digest));
        if pulled.up_to_date {
            reporter.line(&format!("Status: Image is up to date for {}", r.familiar()));
        } else {
            reporter.line(&format!(
                "Status: Downloaded newer image for {}",
                r.familiar()
            ));
        }
        // `run`'s pull ends with the status: the name line is pull's.
        if !stderr {
            reporter.line(&r.to_string());
        }
    }
    Ok(())
}

pub fn push(store: &ImageStore, a: &PushArgs) -> Result<()> {
    let img = store.resolve(&a.image)?;
    let dest = match &a.destination {
        Some(d) => parse_ref(d.strip_prefix("docker://").unwrap_or(d))?,
        None => {
            let r = parse_ref(&a.image).with_context(|| {
                format!(
                    "{:?} is an image id: give a DESTINATION to push it to",
                    a.image
                )
            })?;
            if !img.tags.contains(&r.to_string()) {
                bail!(
                    "{:?} is not one of the image's names: give a DESTINATION to push it to",
                    a.image
                );
            }
            r
        }
    };
    if dest.digest.is_some() {
        bail!(
            "cannot push to a digest reference ({}): give a tag or none",
            dest.familiar()
        );
    }
    let client = a
        .registry
        .client(&dest, berth_registry::push::scopes(&img, &dest))?;
    let reporter = Reporter::new(false);
    let progress: &dyn Progress = if a.quiet { &Silent } else { &reporter };
    progress.message(&format!("The push refers to repository [{}]", dest.name()));
    let opts = berth_registry::push::PushOptions {
        max_concurrent_uploads: usize::from(a.max_concurrent_uploads),
        chunk_size: a.chunk_size,
        gzip: a.compression_format.is_some(),
    };
    let pushed = berth_registry::push::push(store, &client, &img, &dest, &opts, progress);
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

/// Reads a line from the terminal, echo off when `secret`.
fn prompt(label: &str, secret: bool) -> Result<String> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("no terminal to ask for the {label}: give --username and --password-stdin");
    }
    eprint!("{label}: ");
    let _ = std::io::stderr().flush();
    let saved = if secret {
        let t = termios::tcgetattr(&stdin).context("read terminal settings")?;
        let mut quiet = t.clone();
        quiet.local_flags.remove(termios::LocalFlags::ECHO);
        termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &quiet)
            .context("turn terminal echo off")?;
        Some(t)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &t);
        eprintln!();
    }
    read.context("read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(a: &LoginArgs) -> Result<()> {
    let registry = registry_name(a.server.as_deref())?;
    if a.registry.creds.is_some() {
        bail!("login takes --username and --password (or --password-stdin), not --creds");
    }
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match &a.username {
        Some(u) if !u.is_empty() => u.clone(),
        Some(_) => bail!("the user name is empty"),
        None if a.password_stdin => bail!("--password-stdin needs --username"),
        None => prompt("Username", false)?,
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &a.password {
        p.clone()
    } else {
        prompt("Password", true)?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let creds = Credentials { username, password };
    let insecure = a.registry.insecure(&registry)?;
    let endpoint = Endpoint::new(&registry, insecure, a.registry.cert_dir.clone());
    let client = Client::new(endpoint, Some(creds.clone()), Vec::new())?;
    client
        .check_login()
        .with_context(|| format!("log in to {registry}"))?;
    let file = a
        .registry
        .authfile
        .clone()
        .unwrap_or_else(auth::default_auth_file);
    auth::store(&file, &registry, &creds)?;
    println!("Login Succeeded!");
    Ok(())
}

pub fn logout(a: &LogoutArgs) -> Result<()> {
    let file = a.authfile.clone().unwrap_or_else(auth::default_auth_file);
    if a.all {
        if a.server.is_some() {
            bail!("--all removes every registry's credentials: give no registry with it");
        }
        auth::remove(&file, None)?;
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let registry = registry_name(a.server.as_deref())?;
    if auth::remove(&file, Some(&registry))? {
        println!("Removed login credentials for {registry}");
        return Ok(());
    }
    if let Some(docker) = auth::docker_config_file() {
        if auth::lookup(&registry, std::slice::from_ref(&docker))?.is_some() {
            bail!(
                "not logged in to {registry} in {}; the credentials in {} were written by docker: use `docker logout`",
                file.display(),
                docker.display()
            );
        }
    }
    bail!("not logged in to {registry}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_servers_are_normalized() {
        assert_eq!(registry_name(None).unwrap(), "docker.io");
        assert_eq!(
            registry_name(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert_eq!(
            registry_name(Some("http://LOCALHOST:5000/v2/")).unwrap(),
            "localhost:5000"
        );
        assert!(registry_name(Some("")).is_err());
    }
}
