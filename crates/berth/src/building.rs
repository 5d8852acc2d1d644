//! `berth build` (and `image build`, `builder prune`): docker's and
//! podman's flags over `berth_engine::build`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_image::store::{Image, ImageStore, StoreError};

use crate::transfer::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name (and tag) of the image; repeat for more names
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile); - reads it from stdin
    #[arg(short, long, value_name = "FILE")]
    file: Option<String>,
    /// A build argument (KEY alone takes its value from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// Build this stage (and what it needs) only
    #[arg(long)]
    target: Option<String>,
    /// Run every step instead of using cached results
    #[arg(long)]
    no_cache: bool,
    /// Pull base images: missing (default), always, never (true means always, false missing)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pull: Option<String>,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// A label for the image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Print only the image id
    #[arg(short, long)]
    quiet: bool,
    /// Progress output: auto, plain, tty or quiet
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Also write the result: type=local,dest=DIR | type=tar,dest=FILE | type=oci,dest=FILE (a bare DIR means local)
    #[arg(short, long, value_name = "SPEC")]
    output: Option<String>,
    /// The new layers of the target stage as one
    #[arg(long)]
    squash: bool,
    /// Keep a layer per step and use the cache (false: one layer per stage, no cache)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    layers: Option<bool>,
    /// Every time in the image set to this (seconds since 1970), for reproducible builds; SOURCE_DATE_EPOCH does the same
    #[arg(long, value_name = "SECONDS")]
    timestamp: Option<i64>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR
    #[arg(long, value_name = "SPEC")]
    secret: Vec<String>,
    /// RUN's network: default (the host's), none or host
    #[arg(long, default_value = "default")]
    network: String,
    /// The platform to build for: only the host's
    #[arg(long)]
    platform: Option<String>,
    /// Remove intermediate containers (always: the builder keeps none)
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    rm: Option<bool>,
    /// Remove intermediate containers even after a failure (always)
    #[arg(long, hide = true)]
    force_rm: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The context: a directory, or - for a tar (or a lone Dockerfile) on stdin
    context: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache
    Prune {
        /// Remove it all (the only kind there is)
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `builder prune`.
pub fn builder(root: &Path, c: &BuilderCommand) -> Result<()> {
    match c {
        BuilderCommand::Prune { .. } => {
            let mut store = ImageStore::open(root)
                .with_context(|| format!("open the store at {}", root.display()))?;
            let n = store.cache_prune()?;
            println!("Deleted build cache entries: {n}");
            Ok(())
        }
    }
}

/// The Dockerfile and context, wherever they come from.
struct Inputs {
    context: PathBuf,
    /// Keeps a context unpacked from stdin alive.
    _unpacked: Option<tempfile::TempDir>,
    name: String,
    text: String,
    dockerfile_path: Option<PathBuf>,
}

fn read_inputs(a: &BuildArgs, scratch: &Path) -> Result<Inputs> {
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
        if !p.is_dir() {
            bail!("context {:?}: not a directory", a.context);
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
            let p = if p.exists() || p.is_absolute() {
                p
            } else {
                context.join(f)
            };
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
                bail!(
                    "no Containerfile or Dockerfile in {}: name one with -f",
                    context.display()
                );
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
fn read_named(p: &Path) -> Result<(String, String)> {
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
fn build_args(list: &[String]) -> Result<BTreeMap<String, String>> {
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
fn labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|l| crate::run_flags::key_value("--label", l))
        .collect()
}

fn secrets(
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

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// docker build --progress=plain's log: `#N [stage i/n] STEP`, output
    /// lines with their time into the step, `#N CACHED` or `#N DONE 0.3s`.
    Plain,
    /// On a terminal: one line per step, the running step's last lines of
    /// output redrawn under it, its whole output printed if it fails.
    Live,
    /// Nothing until a failure, then the failed step's last lines.
    Quiet,
}

/// Lines of a running step's output kept (for a failure's report).
const KEPT_LINES: usize = 200;
/// Lines of the running step's output shown live.
const LIVE_LINES: usize = 6;

struct Progress {
    mode: Mode,
    started: Vec<Instant>,
    /// Partial output lines per step.
    partial: Vec<Vec<u8>>,
    /// The running step's title and its last lines of output.
    title: String,
    lines: std::collections::VecDeque<String>,
    /// Lines of the live region now on the terminal.
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Progress {
    fn new(mode: Mode) -> Progress {
        Progress {
            mode,
            started: Vec::new(),
            partial: Vec::new(),
            title: String::new(),
            lines: Default::default(),
            drawn: 0,
            last_draw: None,
        }
    }

    /// One write per line, so lines of processes sharing stderr never mix.
    fn emit(text: &str) {
        let _ = std::io::stderr()
            .lock()
            .write_all(format!("{text}\n").as_bytes());
    }

    fn slot(&mut self, id: usize) {
        while self.started.len() <= id {
            self.started.push(Instant::now());
            self.partial.push(Vec::new());
        }
    }

    fn output_line(&mut self, id: usize, text: String) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(text.clone());
        match self.mode {
            Mode::Plain => {
                let t = self.started[id].elapsed().as_secs_f64();
                Self::emit(&format!("#{} {t:.3} {text}", id + 1));
            }
            Mode::Live => self.draw(false),
            Mode::Quiet => {}
        }
    }

    fn flush_partial(&mut self, id: usize) {
        if self.partial.get(id).is_some_and(|p| !p.is_empty()) {
            let rest = std::mem::take(&mut self.partial[id]);
            self.output_line(id, String::from_utf8_lossy(&rest).into_owned());
        }
    }

    /// Clears the live region.
    fn clear(&mut self) {
        if self.drawn > 0 {
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("\x1b[{}A\x1b[J", self.drawn).as_bytes());
            self.drawn = 0;
        }
    }

    /// Redraws the running step and its last lines (at most every 50 ms
    /// unless `force`).
    fn draw(&mut self, force: bool) {
        if !force
            && self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        self.clear();
        let width = terminal_width();
        let mut out = format!("{}\n", clip(&format!("=> {}", self.title), width));
        let shown: Vec<&String> = self.lines.iter().rev().take(LIVE_LINES).collect();
        for l in shown.iter().rev() {
            out.push_str(&clip(&format!("   {l}"), width));
            out.push('\n');
        }
        self.drawn = 1 + shown.len();
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }

    /// After a failure: what the user needs to see of the failed step
    /// (if a step was running).
    fn failed(&mut self) {
        if self.mode == Mode::Plain || self.title.is_empty() {
            return;
        }
        self.clear();
        Self::emit(&format!("=> ERROR {}", self.title));
        for l in &self.lines {
            Self::emit(&format!("   {l}"));
        }
        self.title.clear();
    }
}

fn terminal_width() -> usize {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we pass and nothing else.
    let rc = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

/// `s` cut to `width` characters (a line of the live view must not wrap).
fn clip(s: &str, width: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(width.saturating_sub(1).max(1))
        .collect()
}

impl berth_engine::build::Reporter for Progress {
    fn failed(&mut self) {
        Progress::failed(self);
    }

    fn concurrent_ok(&self) -> bool {
        self.mode != Mode::Live
    }

    fn start(&mut self, id: usize, title: &str) {
        self.slot(id);
        self.started[id] = Instant::now();
        self.title = title.to_string();
        self.lines.clear();
        match self.mode {
            Mode::Plain => Self::emit(&format!("#{} {title}", id + 1)),
            Mode::Live => self.draw(true),
            Mode::Quiet => {}
        }
    }

    fn output(&mut self, id: usize, data: &[u8]) {
        self.slot(id);
        self.partial[id].extend_from_slice(data);
        while let Some(nl) = self.partial[id].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[id].drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.output_line(id, text);
        }
    }

    fn cached(&mut self, id: usize) {
        match self.mode {
            Mode::Plain => Self::emit(&format!("#{} CACHED", id + 1)),
            Mode::Live => {
                self.clear();
                Self::emit(&format!("=> CACHED {}", self.title));
            }
            Mode::Quiet => {}
        }
        self.title.clear();
    }

    fn done(&mut self, id: usize, took: Duration) {
        self.slot(id);
        self.flush_partial(id);
        match self.mode {
            Mode::Plain => Self::emit(&format!("#{} DONE {:.1}s", id + 1, took.as_secs_f64())),
            Mode::Live => {
                self.clear();
                Self::emit(&format!("=> {} {:.1}s", self.title, took.as_secs_f64()));
            }
            Mode::Quiet => {}
        }
        self.title.clear();
    }

    fn note(&mut self, text: &str) {
        match self.mode {
            Mode::Plain => Self::emit(&format!("# {text}")),
            Mode::Live => {
                self.clear();
                Self::emit(&format!("=> {text}"));
            }
            Mode::Quiet => {}
        }
    }
}

/// Docker 20.10's classic builder log (`DOCKER_BUILDKIT=0`), on stdout as
/// docker prints it: `Step n/m : INSTRUCTION` numbered over the whole
/// Dockerfile, ` ---> Running in <id>` and `Removing intermediate
/// container <id>` around a RUN (berth makes a container for RUN only),
/// ` ---> Using cache`, ` ---> <id>` after every step (the base image's
/// id for FROM, the step's cache key otherwise), then `Successfully
/// built` and `Successfully tagged` lines. Scripts parse this form.
struct Classic {
    /// Every instruction of the Dockerfile: its line and text as written.
    instructions: Vec<(usize, String)>,
    /// The global ARGs (before the first FROM) are shown as steps first.
    meta_shown: bool,
    /// The running RUN's container, short.
    container: Option<String>,
    /// The RUN that failed: its command and exit code.
    failure: Option<(String, i32)>,
    /// The last step's ` ---> <id>`, shown when the next step begins: the
    /// build's last one shows the image's id, as docker's last line
    /// before `Successfully built` does.
    made: Option<String>,
    /// With -q: the log kept, shown on stderr only if the build fails.
    kept: Option<Vec<u8>>,
    /// The reader of our stdout left (`build . | head`): the build stops
    /// (SIGPIPE interrupts it) and we end quietly, as docker's client does.
    reader_gone: bool,
}

impl Classic {
    fn new(dockerfile: Option<&berth_build::parser::Dockerfile>, quiet: bool) -> Classic {
        Classic {
            instructions: dockerfile
                .iter()
                .flat_map(|d| &d.instructions)
                .map(|i| (i.line, i.text.clone()))
                .collect(),
            meta_shown: false,
            container: None,
            failure: None,
            made: None,
            kept: quiet.then(Vec::new),
            reader_gone: false,
        }
    }

    fn write(&mut self, data: &[u8]) {
        match &mut self.kept {
            Some(k) => k.extend_from_slice(data),
            None => {
                if let Err(e) = std::io::stdout().lock().write_all(data) {
                    self.reader_gone |= e.kind() == std::io::ErrorKind::BrokenPipe;
                }
            }
        }
    }

    /// A failed -q build: what it kept, on stderr, as docker shows it.
    fn show_kept(&mut self) {
        if let Some(k) = self.kept.take() {
            let _ = std::io::stderr().lock().write_all(&k);
        }
    }

    fn show_made(&mut self) {
        if let Some(m) = self.made.take() {
            self.emit(&format!(" ---> {m}"));
        }
    }

    /// The end of a build that made `image`.
    fn finish(&mut self, image: &str, tags: &[berth_image::reference::Reference]) {
        let hex = image.strip_prefix("sha256:").unwrap_or(image);
        let short = &hex[..hex.len().min(12)];
        if self.made.take().is_some() {
            self.emit(&format!(" ---> {short}"));
        }
        self.emit(&format!("Successfully built {short}"));
        for t in tags {
            self.emit(&format!("Successfully tagged {}", t.familiar()));
        }
    }

    fn emit(&mut self, text: &str) {
        self.write(format!("{text}\n").as_bytes());
    }

    fn step(&mut self, index: usize) {
        let text = self.instructions.get(index).map_or("", |(_, t)| t.as_str());
        let line = format!("Step {}/{} : {text}", index + 1, self.instructions.len());
        self.emit(&line);
    }
}

impl berth_engine::build::Reporter for Classic {
    fn concurrent_ok(&self) -> bool {
        // Steps are numbered in one sequence: stages one after another.
        false
    }

    fn start(&mut self, _id: usize, _title: &str) {}

    fn begin(&mut self, _id: usize, _title: &str, line: usize) {
        let Some(index) = self.instructions.iter().position(|(l, _)| *l == line) else {
            return;
        };
        if !self.meta_shown {
            self.meta_shown = true;
            for k in 0..index {
                if self.instructions[k]
                    .1
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("ARG"))
                {
                    self.step(k);
                }
            }
        }
        self.show_made();
        self.container = None;
        self.step(index);
    }

    fn output(&mut self, _id: usize, data: &[u8]) {
        self.write(data);
    }

    fn cached(&mut self, _id: usize) {
        self.emit(" ---> Using cache");
    }

    fn done(&mut self, _id: usize, _took: Duration) {
        if let Some(c) = self.container.take() {
            self.emit(&format!("Removing intermediate container {c}"));
        }
    }

    fn made(&mut self, _id: usize, made: &str) {
        let hex = made.strip_prefix("sha256:").unwrap_or(made);
        self.show_made();
        self.made = Some(hex[..hex.len().min(12)].to_string());
    }

    fn container(&mut self, _id: usize, container: &str) {
        let hex = container.strip_prefix("build-").unwrap_or(container);
        let short = hex[..hex.len().min(12)].to_string();
        self.emit(&format!(" ---> Running in {short}"));
        self.container = Some(short);
    }

    fn run_failed(&mut self, _id: usize, command: &str, code: i32) {
        self.failure = Some((command.to_string(), code));
    }

    fn note(&mut self, _text: &str) {}
}

/// The size of the context as docker's client sends it (a tar of what
/// .dockerignore keeps: a 512-byte header per entry, file data padded to
/// 512, two zero blocks at the end), for `Sending build context`.
fn context_tar_size(context: &Path, ignore: Option<&berth_build::ignore::IgnoreMatcher>) -> u64 {
    fn walk(
        dir: &Path,
        rel: &str,
        ignore: Option<&berth_build::ignore::IgnoreMatcher>,
        total: &mut u64,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            let excluded = ignore.is_some_and(|i| i.is_excluded(&path));
            if meta.is_dir() {
                if !excluded {
                    *total += 512;
                }
                // Exceptions (`!x`) may keep what is under an excluded
                // directory.
                if !excluded || ignore.is_some_and(|i| i.has_exceptions()) {
                    walk(&e.path(), &path, ignore, total);
                }
            } else if !excluded {
                *total += 512;
                if meta.is_file() {
                    *total += meta.len().div_ceil(512) * 512;
                }
            }
        }
    }
    let mut total = 1024;
    walk(context, "", ignore, &mut total);
    total
}

/// docker's HumanSize: decimal units, four significant digits ("3.072kB").
fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    // Precision is what matters here, not the cast: sizes are far below
    // 2^52.
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    // %.4g: four significant digits, trailing zeros dropped.
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[u])
}

/// Whether DOCKER_BUILDKIT turns BuildKit off (Go's ParseBool false), as
/// docker's client reads it: the classic builder's log then.
fn classic_log() -> bool {
    std::env::var("DOCKER_BUILDKIT")
        .is_ok_and(|v| matches!(v.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "False"))
}

/// `build`: the exit code once the image is stored (and tagged), or the
/// failed RUN's code in the classic log's form.
pub fn build(root: &Path, runroot: &Path, max_layer: u64, a: &BuildArgs) -> Result<u8> {
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
    };
    let mode = match a.progress.as_str() {
        _ if a.quiet => Mode::Quiet,
        "quiet" => Mode::Quiet,
        "plain" => Mode::Plain,
        "tty" => Mode::Live,
        _ if std::io::stderr().is_terminal() => Mode::Live,
        _ => Mode::Plain,
    };
    let classic_df = (classic_log() && (a.quiet || mode != Mode::Quiet))
        .then(|| berth_build::parser::parse(&inputs.name, &inputs.text))
        .transpose()?;
    let is_classic = classic_df.is_some();
    let mut classic = Classic::new(classic_df.as_ref(), a.quiet);
    if is_classic {
        let size = human_size(context_tar_size(&opts.context, opts.ignore.as_ref()));
        classic.emit(&format!("Sending build context to Docker daemon  {size}"));
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

/// Where `--output` goes.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    Local(PathBuf),
    Tar(PathBuf),
    Oci(PathBuf),
}

fn parse_output(s: &str) -> Result<Output> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(2048), "2.048kB");
        assert_eq!(human_size(6656), "6.656kB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(45_600_000), "45.6MB");
    }

    #[test]
    fn context_size_counts_what_the_tar_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::create_dir(dir.path().join("skip")).unwrap();
        std::fs::write(dir.path().join("skip/big"), vec![0u8; 5000]).unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 513]).unwrap();
        // Headers: Dockerfile, skip, skip/big, a; data 512 + 5120 + 1024;
        // two zero blocks.
        assert_eq!(
            context_tar_size(dir.path(), None),
            4 * 512 + 512 + 5120 + 1024 + 1024
        );
        let ignore = berth_build::ignore::IgnoreMatcher::parse(".dockerignore", "skip\n").unwrap();
        assert_eq!(
            context_tar_size(dir.path(), Some(&ignore)),
            2 * 512 + 512 + 1024 + 1024
        );
    }

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
