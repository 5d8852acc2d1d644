//! The stage model: stages split at FROM, `--target` and the stages it needs,
//! ARG scoping, and what each instruction does to the image config.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::command::{default_shell, to_argv};
use crate::expand::{expand_word, ExpandError};
use crate::parser::{Command, Dockerfile, Flag, Heredoc, Instruction, Kind};

/// A stage-level error; the message names the line when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    #[error("{file}:{line}: {keyword} before the first FROM: only ARG may precede FROM")]
    BeforeFrom {
        file: String,
        line: usize,
        keyword: &'static str,
    },
    #[error("the Dockerfile has no FROM instruction")]
    NoStages,
    #[error("there is no stage {0}")]
    NoSuchStage(usize),
    #[error("{file}:{line}: duplicate stage name {name:?}")]
    DuplicateName {
        file: String,
        line: usize,
        name: String,
    },
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    #[error("{file}:{line}: {keyword}: {source}")]
    Expand {
        file: String,
        line: usize,
        keyword: &'static str,
        source: ExpandError,
    },
    #[error("{file}:{line}: {keyword}: {message}")]
    Invalid {
        file: String,
        line: usize,
        keyword: &'static str,
        message: String,
    },
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    /// The FROM line's image, unexpanded.
    pub base: String,
    pub platform: Option<String>,
    pub line: usize,
    /// The instructions after FROM.
    pub instructions: Vec<Instruction>,
}

/// A Dockerfile split into global ARGs and stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub file: String,
    pub escape: char,
    /// ARGs before the first FROM, usable in FROM lines only.
    pub meta_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

/// An `ARG name[=default]` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
    pub line: usize,
}

/// Build arguments that need no ARG declaration and never reach the image's
/// history or config.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Platform arguments BuildKit defines itself: the caller passes their
/// values with the build args. Usable in FROM lines without a declaration,
/// inside a stage after `ARG TARGETARCH` and the like; never "unused".
pub const PLATFORM_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// Where a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Image(String),
    Stage(usize),
}

/// Split at FROM.
pub fn split_stages(df: &Dockerfile) -> Result<Plan, StageError> {
    let file = &df.file;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        match &ins.kind {
            Kind::From {
                image,
                name,
                platform,
            } => {
                if let Some(n) = name {
                    if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                        return Err(StageError::DuplicateName {
                            file: file.clone(),
                            line: ins.line,
                            name: n.clone(),
                        });
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: name.clone(),
                    base: image.clone(),
                    platform: platform.clone(),
                    line: ins.line,
                    instructions: Vec::new(),
                });
            }
            kind => match stages.last_mut() {
                Some(s) => s.instructions.push(ins.clone()),
                None => match kind {
                    Kind::Arg(a) => meta_args.extend(a.iter().map(|(name, default)| ArgDecl {
                        name: name.clone(),
                        default: default.clone(),
                        line: ins.line,
                    })),
                    k => {
                        return Err(StageError::BeforeFrom {
                            file: file.clone(),
                            line: ins.line,
                            keyword: k.keyword(),
                        })
                    }
                },
            },
        }
    }
    if stages.is_empty() {
        return Err(StageError::NoStages);
    }
    Ok(Plan {
        file: file.clone(),
        escape: df.directives.escape,
        meta_args,
        stages,
    })
}

impl Plan {
    /// The global ARG values after build-arg overrides (for FROM lines).
    pub fn meta_values(
        &self,
        build_args: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, StageError> {
        let file = &self.file;
        let mut vals: BTreeMap<String, String> = PLATFORM_ARGS
            .iter()
            .filter_map(|k| build_args.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        for ArgDecl {
            name: k,
            default,
            line,
        } in &self.meta_args
        {
            let v = match (build_args.get(k), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => {
                    let look = |n: &str| vals.get(n).cloned();
                    Some(expand_word(d, self.escape, &look).map_err(|source| {
                        StageError::Expand {
                            file: file.clone(),
                            line: *line,
                            keyword: "ARG",
                            source,
                        }
                    })?)
                }
                (None, None) => None,
            };
            if let Some(v) = v {
                vals.insert(k.clone(), v);
            }
        }
        Ok(vals)
    }

    /// A stage by name (case-insensitive) or index.
    pub fn find(&self, reference: &str) -> Option<usize> {
        let lower = reference.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                reference
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stages.len())
            })
    }

    /// What stage `index` starts from, FROM expanded with the global ARGs.
    pub fn base(
        &self,
        index: usize,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Base, StageError> {
        let stage = self
            .stages
            .get(index)
            .ok_or(StageError::NoSuchStage(index))?;
        let meta = self.meta_values(build_args)?;
        let image =
            expand_word(&stage.base, self.escape, &|n| meta.get(n).cloned()).map_err(|source| {
                StageError::Expand {
                    file: self.file.clone(),
                    line: stage.line,
                    keyword: "FROM",
                    source,
                }
            })?;
        if image.is_empty() {
            return Err(StageError::Invalid {
                file: self.file.clone(),
                line: stage.line,
                keyword: "FROM",
                message: "base name should not be blank".into(),
            });
        }
        let lower = image.to_ascii_lowercase();
        if let Some(i) = self.stages[..stage.index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Ok(Base::Stage(i));
        }
        if lower == "scratch" {
            return Ok(Base::Scratch);
        }
        Ok(Base::Image(image))
    }

    /// The stage's `--platform`, expanded with the global ARGs.
    pub fn platform(
        &self,
        index: usize,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Option<String>, StageError> {
        let stage = self
            .stages
            .get(index)
            .ok_or(StageError::NoSuchStage(index))?;
        let Some(raw) = &stage.platform else {
            return Ok(None);
        };
        let meta = self.meta_values(build_args)?;
        expand_word(raw, self.escape, &|n| meta.get(n).cloned())
            .map(Some)
            .map_err(|source| StageError::Expand {
                file: self.file.clone(),
                line: stage.line,
                keyword: "FROM",
                source,
            })
    }

    /// Stages a stage reads from: its base, `COPY --from`, `RUN --mount=from=`.
    pub fn dependencies(
        &self,
        index: usize,
        build_args: &BTreeMap<String, String>,
    ) -> Result<BTreeSet<usize>, StageError> {
        let mut deps = BTreeSet::new();
        if let Base::Stage(i) = self.base(index, build_args)? {
            deps.insert(i);
        }
        let meta = self.meta_values(build_args)?;
        let stage = self
            .stages
            .get(index)
            .ok_or(StageError::NoSuchStage(index))?;
        // `--from` sees the stage's own ARGs and ENVs (global ARGs only when
        // redeclared); the base image's ENV is not known before it is pulled.
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut env_names: BTreeSet<String> = BTreeSet::new();
        let escape = self.escape;
        let mut refer = |vars: &BTreeMap<String, String>, r: &str| {
            let r =
                expand_word(r, escape, &|n| vars.get(n).cloned()).unwrap_or_else(|_| r.to_string());
            if let Some(i) = self.find(&r).filter(|i| *i < index) {
                deps.insert(i);
            }
        };
        for ins in &stage.instructions {
            match &ins.kind {
                Kind::Arg(list) => {
                    for (k, default) in list {
                        let v = match (build_args.get(k), default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(d)) => {
                                expand_word(d, escape, &|n| vars.get(n).cloned()).ok()
                            }
                            (None, None) => meta.get(k).cloned(),
                        };
                        // ENV shadows ARG.
                        if let (Some(v), false) = (v, env_names.contains(k)) {
                            vars.insert(k.clone(), v);
                        }
                    }
                }
                Kind::Env(pairs) => {
                    let new: Vec<(String, String)> = pairs
                        .iter()
                        .filter_map(|(k, v)| {
                            let look = |n: &str| vars.get(n).cloned();
                            Some((
                                expand_word(k, escape, &look).ok()?,
                                expand_word(v, escape, &look).ok()?,
                            ))
                        })
                        .collect();
                    env_names.extend(new.iter().map(|(k, _)| k.clone()));
                    vars.extend(new);
                }
                Kind::Copy(c) => {
                    if let Some(f) = c.flag("from") {
                        refer(&vars, f);
                    }
                }
                Kind::Run { flags, .. } => {
                    for f in flags.iter().filter(|f| f.name == "mount") {
                        for opt in f.value.as_deref().unwrap_or("").split(',') {
                            if let Some(v) = opt.strip_prefix("from=") {
                                refer(&vars, v);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(deps)
    }

    /// The stages to build for `target` (the last stage when `None`), in
    /// build order, the target last.
    pub fn build_order(
        &self,
        target: Option<&str>,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Vec<usize>, StageError> {
        let t = match target {
            Some(name) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()))
                .ok_or_else(|| StageError::UnknownTarget(name.to_string()))?,
            None => self
                .stages
                .len()
                .checked_sub(1)
                .ok_or(StageError::NoStages)?,
        };
        let mut needed = BTreeSet::new();
        let mut todo = vec![t];
        while let Some(i) = todo.pop() {
            if needed.insert(i) {
                todo.extend(self.dependencies(i, build_args)?);
            }
        }
        // Dependencies always come earlier in the file.
        Ok(needed.into_iter().collect())
    }
}

/// A RUN as the later executor needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    pub line: usize,
    pub argv: Vec<String>,
    /// USER at this point ("" for root).
    pub user: String,
    /// WORKDIR at this point ("/" when unset).
    pub workdir: String,
    /// `KEY=value`: the config's Env, then ARGs not shadowed by ENV, then
    /// proxy build args.
    pub env: Vec<String>,
    pub flags: Vec<Flag>,
    pub heredocs: Vec<Heredoc>,
}

/// A COPY or ADD with its words expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    pub line: usize,
    pub add: bool,
    pub flags: Vec<Flag>,
    pub sources: Vec<String>,
    pub dest: String,
    pub heredocs: Vec<Heredoc>,
    pub workdir: String,
}

/// A WORKDIR: Docker's builders (classic and BuildKit) create the
/// directory in the image, in a layer of this step, when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdirStep {
    /// The directory, absolute and cleaned.
    pub path: String,
    /// USER at this point ("" for root): BuildKit makes the directories it
    /// creates the user's.
    pub user: String,
}

/// What an instruction asks of the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Only the config changes: no layer.
    Meta,
    Run(RunStep),
    Copy(CopyStep),
    /// A layer only when the directory had to be made.
    Workdir(WorkdirStep),
}

/// One instruction of a stage, in order, with its words expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub keyword: &'static str,
    /// The history entry's `created_by`, as buildah writes it
    /// (`/bin/sh -c #(nop) ENV A=1`; a RUN's command with its ARG prefix).
    /// COPY and ADD get theirs from the executor, which knows the content.
    pub created_by: String,
    /// The instruction as written (for progress output).
    pub text: String,
    /// MAINTAINER's value so far ("" before any): buildah writes it on
    /// every history entry after it.
    pub author: String,
    /// For the cache: everything that decides the instruction's outcome
    /// besides its parent and the files it reads (ARG values, expanded
    /// words, flags), without the line number.
    pub cache_text: String,
    pub action: Action,
}

impl Step {
    /// Whether the step makes a layer (a WORKDIR: when its directory is
    /// missing, which only the executor knows).
    pub fn makes_layer(&self) -> bool {
        !matches!(self.action, Action::Meta | Action::Workdir(_))
    }
}

/// What evaluating a stage gives.
#[derive(Debug, Clone, PartialEq)]
pub struct StageOutcome {
    /// The image config (OCI image config JSON with Docker's extensions).
    pub config: Value,
    /// The stage's instructions (the base image's ONBUILD triggers first).
    pub steps: Vec<Step>,
    /// ARGs declared in the stage with their values.
    pub args: BTreeMap<String, String>,
}

impl StageOutcome {
    /// The RUN steps, in order.
    pub fn runs(&self) -> Vec<&RunStep> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Run(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The COPY and ADD steps, in order.
    pub fn copies(&self) -> Vec<&CopyStep> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Copy(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

struct State<'a> {
    file: &'a str,
    escape: char,
    env: Vec<(String, String)>,
    args: BTreeMap<String, String>,
    build_args: &'a BTreeMap<String, String>,
}

impl State<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| self.args.get(name).cloned())
    }

    fn expand(&self, line: usize, keyword: &'static str, word: &str) -> Result<String, StageError> {
        expand_word(word, self.escape, &|n| self.lookup(n)).map_err(|source| StageError::Expand {
            file: self.file.to_string(),
            line,
            keyword,
            source,
        })
    }

    /// An error of the instruction `keyword` at `line`.
    fn invalid(&self, line: usize, keyword: &'static str, message: String) -> StageError {
        StageError::Invalid {
            file: self.file.to_string(),
            line,
            keyword,
            message,
        }
    }

    /// Flags with their values expanded.
    fn expand_flags(
        &self,
        line: usize,
        keyword: &'static str,
        flags: &[Flag],
    ) -> Result<Vec<Flag>, StageError> {
        flags
            .iter()
            .map(|f| {
                Ok(Flag {
                    name: f.name.clone(),
                    value: match &f.value {
                        Some(v) => Some(self.expand(line, keyword, v)?),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// ENV's or LABEL's `key=value` pairs, both sides expanded; a key that
    /// expands to nothing is refused ("ENV names can not be blank").
    fn expand_pairs(
        &self,
        line: usize,
        keyword: &'static str,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StageError> {
        pairs
            .iter()
            .map(|(k, v)| {
                let k = self.expand(line, keyword, k)?;
                if k.is_empty() {
                    return Err(self.invalid(
                        line,
                        keyword,
                        format!("{keyword} names can not be blank"),
                    ));
                }
                Ok((k, self.expand(line, keyword, v)?))
            })
            .collect()
    }
}

/// The PATH an image gets when its base sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A config-only instruction as buildah's history shows it: as written
/// (unexpanded), except ARG, which lists the stage's ARGs that have values.
fn history_text(ins: &Instruction, shown: &str) -> String {
    match &ins.kind {
        Kind::Arg(_) => shown.to_string(),
        _ => ins.text.clone(),
    }
}

/// Words as a JSON array, the way history shows exec forms.
fn json_words(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

fn obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !m.get(key).is_some_and(Value::is_object) {
        m.insert(key.to_string(), json!({}));
    }
    match m.get_mut(key) {
        Some(Value::Object(o)) => o,
        _ => unreachable!("inserted an object above"),
    }
}

/// Evaluate a stage's instructions over `base` (an OCI image config JSON;
/// `{}` for scratch): the resulting config, its RUN and COPY steps.
pub fn evaluate(
    plan: &Plan,
    index: usize,
    base: &Value,
    build_args: &BTreeMap<String, String>,
) -> Result<StageOutcome, StageError> {
    let file = &plan.file;
    let stage = plan
        .stages
        .get(index)
        .ok_or(StageError::NoSuchStage(index))?;
    let meta = plan.meta_values(build_args)?;
    let mut image = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut config = match image.remove("config") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    // The base image's ONBUILD triggers run first, at the FROM line, and
    // are not inherited by this image (Docker clears them).
    let mut instructions = Vec::new();
    if let Some(Value::Array(triggers)) = config.remove("OnBuild") {
        for t in triggers.iter().filter_map(Value::as_str) {
            let df = crate::parser::parse(file, t).map_err(|e| StageError::Invalid {
                file: file.clone(),
                line: stage.line,
                keyword: "FROM",
                message: format!("base image ONBUILD trigger {t:?}: {}", e.message),
            })?;
            for mut ins in df.instructions {
                if matches!(
                    ins.kind,
                    Kind::From { .. } | Kind::Onbuild(..) | Kind::Maintainer(_)
                ) {
                    return Err(StageError::Invalid {
                        file: file.clone(),
                        line: stage.line,
                        keyword: "FROM",
                        message: format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            ins.kind.keyword()
                        ),
                    });
                }
                ins.line = stage.line;
                instructions.push(ins);
            }
        }
    }
    instructions.extend(stage.instructions.iter().cloned());
    let env: Vec<(String, String)> = config
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    // The image gets a PATH when its base has none (BuildKit and buildah
    // both add it), so RUN finds its programs and so does the container.
    let mut env = env;
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    let mut st = State {
        file,
        escape: plan.escape,
        env,
        args: BTreeMap::new(),
        build_args,
    };
    let mut shell = config
        .get("Shell")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(default_shell);
    let mut cmd_set = false;
    let mut steps = Vec::new();
    let mut workdir = config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut user = config
        .get("User")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();

    for ins in &instructions {
        let line = ins.line;
        let kw = ins.kind.keyword();
        let mut action = Action::Meta;
        // The words after the keyword as history shows them (expanded).
        let mut shown = String::new();
        match &ins.kind {
            Kind::Arg(list) => {
                for (k, default) in list {
                    let v = match (st.build_args.get(k), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(st.expand(line, kw, d)?),
                        (None, None) => meta.get(k).cloned(),
                    };
                    // A bare redeclaration keeps an earlier value, as
                    // BuildKit skips ARGs without one.
                    if let Some(v) = v {
                        st.args.insert(k.clone(), v);
                    }
                }
                // buildah's history: every ARG of the stage with a value,
                // by name.
                shown = format!(
                    "ARG {}",
                    st.args.keys().cloned().collect::<Vec<_>>().join(" ")
                );
            }
            Kind::Env(pairs) => {
                let pairs = st.expand_pairs(line, kw, pairs)?;
                shown = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                for (k, v) in pairs {
                    match st.env.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v,
                        None => st.env.push((k, v)),
                    }
                }
            }
            Kind::Cmd(c) => {
                let argv = to_argv(c, &shell);
                shown = json_words(&argv);
                config.insert("Cmd".into(), strings(&argv));
                cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                let argv = match c {
                    Command::Exec(v) if v.is_empty() => Vec::new(),
                    c => to_argv(c, &shell),
                };
                shown = json_words(&argv);
                config.insert(
                    "Entrypoint".into(),
                    if argv.is_empty() {
                        Value::Null
                    } else {
                        strings(&argv)
                    },
                );
                // An ENTRYPOINT resets a CMD inherited from the base image.
                if !cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            Kind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let p = st.expand(line, kw, p)?;
                    out.extend(expose_ports(&p).map_err(|m| st.invalid(line, kw, m))?);
                }
                shown = out.join(" ");
                let m = obj(&mut config, "ExposedPorts");
                for p in out {
                    m.insert(p, json!({}));
                }
            }
            Kind::Label(pairs) => {
                let new = st.expand_pairs(line, kw, pairs)?;
                shown = new
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let m = obj(&mut config, "Labels");
                for (k, v) in new {
                    m.insert(k, Value::String(v));
                }
            }
            Kind::Maintainer(m) => {
                shown = m.clone();
                image.insert("author".into(), Value::String(m.clone()));
            }
            Kind::Onbuild(_, text) => {
                shown = text.clone();
                let mut list = config
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(Value::String(text.clone()));
                config.insert("OnBuild".into(), Value::Array(list));
            }
            Kind::Shell(s) => {
                shown = json_words(s);
                shell = s.clone();
                config.insert("Shell".into(), strings(s));
            }
            Kind::Stopsignal(s) => {
                let s = st.expand(line, kw, s)?;
                if !valid_signal(&s) {
                    return Err(st.invalid(line, kw, format!("invalid signal: {s}")));
                }
                shown = s.clone();
                config.insert("StopSignal".into(), Value::String(s));
            }
            Kind::User(u) => {
                let u = st.expand(line, kw, u)?;
                shown = u.clone();
                user = u.clone();
                config.insert("User".into(), Value::String(u));
            }
            Kind::Volume(vs) => {
                let mut out = Vec::new();
                for v in vs {
                    let v = st.expand(line, kw, v)?;
                    if v.trim().is_empty() {
                        return Err(st.invalid(
                            line,
                            kw,
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    out.push(v);
                }
                shown = json_words(&out);
                let m = obj(&mut config, "Volumes");
                for v in out {
                    m.insert(v, json!({}));
                }
            }
            Kind::Workdir(w) => {
                let w = st.expand(line, kw, w)?;
                workdir = join_workdir(&workdir, &w);
                shown = workdir.clone();
                config.insert("WorkingDir".into(), Value::String(workdir.clone()));
                action = Action::Workdir(WorkdirStep {
                    path: workdir.clone(),
                    user: user.clone(),
                });
            }
            Kind::Healthcheck(h) => {
                let v = healthcheck(h.as_ref()).map_err(|m| st.invalid(line, kw, m))?;
                shown = match h {
                    None => "NONE".into(),
                    Some((_, c)) => format!("CMD {}", json_words(&to_argv(c, &shell))),
                };
                config.insert("Healthcheck".into(), v);
            }
            Kind::Run {
                flags,
                command,
                heredocs,
            } => {
                let argv = to_argv(command, &shell);
                let mut env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                for (k, v) in &st.args {
                    if !st.env.iter().any(|(ek, _)| ek == k) {
                        env.push(format!("{k}={v}"));
                    }
                }
                for p in PROXY_ARGS {
                    if let (Some(v), false) = (st.build_args.get(*p), st.args.contains_key(*p)) {
                        env.push(format!("{p}={v}"));
                    }
                }
                // Docker's history: `|N k=v ...` with every ARG of the
                // stage by name (an ENV of the same name gives the value),
                // then the command as written. A proxy arg shows only when
                // the Dockerfile declares it, as Docker's reference says
                // (one given with --build-arg alone is not in `st.args`).
                let history_args: Vec<String> = st
                    .args
                    .keys()
                    .filter_map(|k| st.lookup(k).map(|v| format!("{k}={v}")))
                    .collect();
                let body = match command {
                    Command::Shell(text) => format!("{} {text}", shell.join(" ")),
                    Command::Exec(v) => format!(
                        "/bin/sh -c [{}]",
                        v.iter()
                            .map(|w| serde_json::to_string(w).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                shown = if history_args.is_empty() {
                    body
                } else {
                    format!("|{} {} {body}", history_args.len(), history_args.join(" "))
                };
                // Flag values (`--mount=from=$X`) are expanded by the
                // builder, the command itself by the shell.
                action = Action::Run(RunStep {
                    line,
                    argv,
                    user: user.clone(),
                    workdir: if workdir.is_empty() {
                        "/".into()
                    } else {
                        workdir.clone()
                    },
                    env,
                    flags: st.expand_flags(line, kw, flags)?,
                    heredocs: heredocs.clone(),
                });
            }
            Kind::Copy(c) | Kind::Add(c) => {
                let mut sources = Vec::new();
                for s in &c.sources {
                    sources.push(st.expand(line, kw, s)?);
                }
                action = Action::Copy(CopyStep {
                    line,
                    add: matches!(ins.kind, Kind::Add(_)),
                    flags: st.expand_flags(line, kw, &c.flags)?,
                    sources,
                    dest: st.expand(line, kw, &c.dest)?,
                    heredocs: c.heredocs.clone(),
                    workdir: if workdir.is_empty() {
                        "/".into()
                    } else {
                        workdir.clone()
                    },
                });
            }
            Kind::From { .. } => continue,
        }
        let created_by = match &action {
            Action::Run(_) => shown.clone(),
            Action::Copy(_) => String::new(),
            Action::Meta => format!("/bin/sh -c #(nop) {}", history_text(ins, &shown)),
            // Docker's builders (classic and BuildKit) write the directory
            // it resolved to, not the words (buildah keeps the words).
            Action::Workdir(w) => format!("/bin/sh -c #(nop) WORKDIR {}", w.path),
        };
        // ARG values and the environment decide a RUN, not only its text.
        let cache_text = match &action {
            // The expanded words and the instruction itself (its flags,
            // options): history's text is unexpanded.
            Action::Meta => match &ins.kind {
                Kind::Arg(list) => format!(
                    "{kw} {:?}",
                    list.iter()
                        .map(|(k, _)| (k, st.args.get(k)))
                        .collect::<Vec<_>>()
                ),
                kind => format!("{kw} {shown}\n{kind:?}"),
            },
            Action::Run(r) => {
                let mut r = r.clone();
                r.line = 0;
                format!("{kw} {r:?}")
            }
            Action::Copy(c) => {
                let mut c = c.clone();
                c.line = 0;
                format!("{kw} {c:?}")
            }
            // The user decides who owns what it creates.
            Action::Workdir(w) => format!("{kw} {w:?}"),
        };
        steps.push(Step {
            line,
            keyword: kw,
            text: ins.text.clone(),
            author: image
                .get("author")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            created_by,
            cache_text,
            action,
        });
    }
    if !st.env.is_empty() {
        let env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        config.insert("Env".into(), strings(&env));
    }
    image.insert("config".into(), Value::Object(config));
    Ok(StageOutcome {
        config: Value::Object(image),
        steps,
        args: st.args,
    })
}

/// Build args given but declared by no ARG of the built stages nor the
/// global ones (Docker warns about them); proxy args never count.
pub fn unused_build_args(
    plan: &Plan,
    built: &[usize],
    build_args: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut declared: BTreeSet<&str> = plan.meta_args.iter().map(|a| a.name.as_str()).collect();
    for &i in built {
        if let Some(s) = plan.stages.get(i) {
            for ins in &s.instructions {
                if let Kind::Arg(a) = &ins.kind {
                    declared.extend(a.iter().map(|(k, _)| k.as_str()));
                }
            }
        }
    }
    build_args
        .keys()
        .filter(|k| {
            !declared.contains(k.as_str())
                && !PROXY_ARGS.contains(&k.as_str())
                && !PLATFORM_ARGS.contains(&k.as_str())
        })
        .cloned()
        .collect()
}

/// A relative WORKDIR joins the previous one; the result is cleaned.
pub fn join_workdir(previous: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        let prev = if previous.is_empty() { "/" } else { previous };
        format!("{prev}/{dir}")
    };
    crate::ignore::clean_path(&joined)
}

/// `80`, `80/udp`, `8000-8002/tcp` into `port/proto` keys.
fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for container port: {ports}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    // RTMIN, RTMIN+n, RTMAX-n
    name == "RTMIN"
        || name == "RTMAX"
        || name
            .strip_prefix("RTMIN+")
            .or_else(|| name.strip_prefix("RTMAX-"))
            .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 30))
}

/// Go's `time.ParseDuration`, in nanoseconds, for a healthcheck's options:
/// None when it is not one or is negative.
pub fn parse_duration(s: &str) -> Option<i64> {
    berth_relay::clock::go_duration(s)
        .filter(|n| *n >= 0)
        .and_then(|n| i64::try_from(n).ok())
}

/// The config's `Healthcheck`: `{"Test":["NONE"]}` for NONE, otherwise Test
/// plus the options given (unset or zero ones are left out, as Docker and
/// buildah leave them: whoever runs the image applies the defaults).
fn healthcheck(h: Option<&(crate::parser::HealthOptions, Command)>) -> Result<Value, String> {
    let Some((o, cmd)) = h else {
        return Ok(json!({ "Test": ["NONE"] }));
    };
    let test: Vec<String> = match cmd {
        Command::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
    };
    // Only what is given is written (Docker and buildah alike: zero means
    // "the default" to whoever runs the image).
    let dur = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        match v {
            None => Ok(None),
            Some(s) => {
                let d =
                    parse_duration(s).ok_or_else(|| format!("invalid --{name} duration: {s}"))?;
                if d != 0 && d < 1_000_000 {
                    Err(format!("--{name} cannot be less than 1ms"))
                } else {
                    Ok(Some(d).filter(|d| *d != 0))
                }
            }
        }
    };
    let retries = match &o.retries {
        None => None,
        Some(r) => {
            let n: i64 = r
                .parse()
                .map_err(|_| format!("invalid --retries value: {r}"))?;
            if n < 0 {
                return Err("--retries cannot be negative".into());
            }
            Some(n).filter(|n| *n != 0)
        }
    };
    let mut v = json!({ "Test": test });
    for (key, value) in [
        ("Interval", dur("interval", &o.interval)?),
        ("Timeout", dur("timeout", &o.timeout)?),
        ("StartPeriod", dur("start-period", &o.start_period)?),
        ("StartInterval", dur("start-interval", &o.start_interval)?),
        ("Retries", retries),
    ] {
        if let Some(n) = value {
            v[key] = json!(n);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn plan(text: &str) -> Plan {
        split_stages(&parse("Dockerfile", text).unwrap()).unwrap()
    }

    fn args(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Evaluates the last stage; the PATH added to a base without one is
    /// taken out again (see `path_is_added_when_the_base_has_none`), so
    /// tests show only what they are about.
    fn eval(text: &str, base: Value, build: &[(&str, &str)]) -> StageOutcome {
        let p = plan(text);
        let mut o = evaluate(&p, p.stages.len() - 1, &base, &args(build)).unwrap();
        let default = format!("PATH={DEFAULT_PATH}");
        if let Some(env) = o.config["config"]
            .get_mut("Env")
            .and_then(Value::as_array_mut)
        {
            env.retain(|e| e.as_str() != Some(default.as_str()));
            if env.is_empty() {
                o.config["config"].as_object_mut().map(|c| c.remove("Env"));
            }
        }
        for s in &mut o.steps {
            if let Action::Run(r) = &mut s.action {
                r.env.retain(|e| *e != default);
            }
        }
        o
    }

    #[test]
    fn path_is_added_when_the_base_has_none() {
        let p = plan(
            "FROM a
RUN true
",
        );
        let o = evaluate(&p, 0, &json!({}), &args(&[])).unwrap();
        let path = format!("PATH={DEFAULT_PATH}");
        assert_eq!(o.config["config"]["Env"], json!([path]));
        assert_eq!(o.runs()[0].env, vec![path]);
        let o = evaluate(&p, 0, &json!({"config": {"Env": ["PATH=/x"]}}), &args(&[])).unwrap();
        assert_eq!(o.config["config"]["Env"], json!(["PATH=/x"]));
    }

    #[test]
    fn cache_text_has_the_expanded_values() {
        let text = "FROM a\nARG X\nENV P=$X\nLABEL l=$X\nRUN echo\n";
        let p = plan(text);
        let one = evaluate(&p, 0, &json!({}), &args(&[("X", "1")])).unwrap();
        let two = evaluate(&p, 0, &json!({}), &args(&[("X", "2")])).unwrap();
        for (a, b) in one.steps.iter().zip(&two.steps) {
            assert_eq!(
                a.created_by == b.created_by,
                a.keyword != "RUN",
                "{}",
                a.keyword
            );
            assert_ne!(a.cache_text, b.cache_text, "{}", a.keyword);
        }
        let p2 = plan("FROM a\nHEALTHCHECK --interval=5s CMD x\n");
        let p3 = plan("FROM a\nHEALTHCHECK --interval=6s CMD x\n");
        assert_ne!(
            evaluate(&p2, 0, &json!({}), &args(&[])).unwrap().steps[0].cache_text,
            evaluate(&p3, 0, &json!({}), &args(&[])).unwrap().steps[0].cache_text
        );
    }

    #[test]
    fn history_like_buildah() {
        let o = eval(
            "FROM a\nARG Z=z\nARG A=a\nenv   S=env\nARG S=s\nRUN echo $A \\\n  done\nLABEL x=\"$A\"\nRUN [\"/bin/echo\", \"hi\"]\nCOPY a /b\n",
            json!({}),
            &[],
        );
        let by: Vec<&str> = o.steps.iter().map(|s| s.created_by.as_str()).collect();
        assert_eq!(
            by,
            vec![
                "/bin/sh -c #(nop) ARG Z",
                "/bin/sh -c #(nop) ARG A Z",
                "/bin/sh -c #(nop) env   S=env",
                "/bin/sh -c #(nop) ARG A S Z",
                "|3 A=a S=env Z=z /bin/sh -c echo $A   done",
                "/bin/sh -c #(nop) LABEL x=\"$A\"",
                "|3 A=a S=env Z=z /bin/sh -c [\"/bin/echo\", \"hi\"]",
                "",
            ]
        );
        assert!(o.steps[..4].iter().all(|s| !s.makes_layer()));
        assert!(o.steps[4].makes_layer() && o.steps[7].makes_layer());
    }

    fn cfg(o: &StageOutcome) -> &Value {
        &o.config["config"]
    }

    #[test]
    fn stages_and_names() {
        let p = plan("ARG V=1\nFROM a:$V AS Build\nRUN x\nFROM build\nFROM scratch\n");
        assert_eq!(p.stages.len(), 3);
        assert_eq!(
            p.meta_args,
            vec![ArgDecl {
                name: "V".into(),
                default: Some("1".into()),
                line: 1
            }]
        );
        assert_eq!(p.stages[0].name.as_deref(), Some("build"));
        assert_eq!(p.base(0, &args(&[])).unwrap(), Base::Image("a:1".into()));
        assert_eq!(
            p.base(0, &args(&[("V", "2")])).unwrap(),
            Base::Image("a:2".into())
        );
        assert_eq!(p.base(1, &args(&[])).unwrap(), Base::Stage(0));
        assert_eq!(p.base(2, &args(&[])).unwrap(), Base::Scratch);
        let e = split_stages(&parse("D", "RUN x\nFROM a\n").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "D:1: RUN before the first FROM: only ARG may precede FROM"
        );
        let e = split_stages(&parse("D", "FROM a AS x\nFROM b AS X\n").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "D:2: duplicate stage name \"x\"");
        assert_eq!(
            split_stages(&parse("D", "ARG a\n").unwrap()).unwrap_err(),
            StageError::NoStages
        );
    }

    #[test]
    fn platform_args() {
        let p = plan("FROM --platform=$BUILDPLATFORM golang AS b\nARG TARGETARCH\nENV A=$TARGETARCH\nFROM --platform=${TARGETPLATFORM:-linux/amd64} alpine:$TARGETARCH\nENV A=${TARGETARCH:-none}\n");
        let b = args(&[
            ("BUILDPLATFORM", "linux/amd64"),
            ("TARGETPLATFORM", "linux/arm64"),
            ("TARGETARCH", "arm64"),
        ]);
        assert_eq!(p.platform(0, &b).unwrap().as_deref(), Some("linux/amd64"));
        assert_eq!(p.platform(1, &b).unwrap().as_deref(), Some("linux/arm64"));
        assert_eq!(
            p.platform(1, &args(&[])).unwrap().as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(p.base(1, &b).unwrap(), Base::Image("alpine:arm64".into()));
        let base = json!({"config": {"Env": ["PATH=/bin"]}});
        let o = evaluate(&p, 0, &base, &b).unwrap();
        assert_eq!(o.config["config"]["Env"], json!(["PATH=/bin", "A=arm64"]));
        let o = evaluate(&p, 1, &base, &b).unwrap();
        assert_eq!(o.config["config"]["Env"], json!(["PATH=/bin", "A=none"]));
        assert!(unused_build_args(&p, &[0, 1], &b).is_empty());
        assert_eq!(p.platform(5, &b).unwrap_err(), StageError::NoSuchStage(5));
    }

    #[test]
    fn target_and_dependencies() {
        let text = "FROM a AS base\nFROM b AS tools\nFROM base AS build\nCOPY --from=tools /x /x\nRUN --mount=type=cache,from=cache,target=/c make\nFROM c AS cache\nFROM d AS unused\nFROM scratch AS final\nCOPY --from=build /out /out\nCOPY --from=0 /y /y\n";
        let p = plan(text);
        let none = args(&[]);
        assert_eq!(
            p.build_order(Some("FINAL"), &none).unwrap(),
            vec![0, 1, 2, 5]
        );
        assert_eq!(p.build_order(None, &none).unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(p.build_order(Some("tools"), &none).unwrap(), vec![1]);
        assert_eq!(p.build_order(Some("build"), &none).unwrap(), vec![0, 1, 2]);
        assert_eq!(
            p.build_order(Some("nope"), &none).unwrap_err().to_string(),
            "target stage \"nope\" could not be found"
        );
        // A mount from a stage defined later is an image, not a stage.
        let p = plan("FROM a AS x\nRUN --mount=from=y,target=/y true\nFROM b AS y\n");
        assert_eq!(p.build_order(Some("x"), &none).unwrap(), vec![0]);
        // COPY --from sees a global ARG only when redeclared, and stage
        // ARGs, build args and ENV.
        let p = plan("ARG SRC=one\nFROM a AS one\nFROM b\nCOPY --from=$SRC / /\n");
        assert_eq!(p.build_order(None, &none).unwrap(), vec![1]);
        let p = plan("ARG SRC=one\nFROM a AS one\nFROM b\nARG SRC\nCOPY --from=$SRC / /\n");
        assert_eq!(p.build_order(None, &none).unwrap(), vec![0, 1]);
        let p = plan("FROM a AS one\nFROM c AS two\nFROM b\nARG S=one\nCOPY --from=${S} / /\n");
        assert_eq!(p.build_order(None, &none).unwrap(), vec![0, 2]);
        assert_eq!(
            p.build_order(None, &args(&[("S", "two")])).unwrap(),
            vec![1, 2]
        );
        let p = plan("FROM a AS one\nFROM c AS two\nFROM b\nENV S=two\nARG S=one\nRUN --mount=from=$S,target=/x true\n");
        assert_eq!(p.build_order(None, &none).unwrap(), vec![1, 2]);
    }

    #[test]
    fn arg_scoping() {
        // Global ARG not visible in the stage unless redeclared.
        let o = eval("ARG V=1\nFROM a\nENV A=$V\n", json!({}), &[]);
        assert_eq!(cfg(&o)["Env"], json!(["A="]));
        let o = eval("ARG V=1\nFROM a\nARG V\nENV A=$V\n", json!({}), &[]);
        assert_eq!(cfg(&o)["Env"], json!(["A=1"]));
        let o = eval(
            "ARG V=1\nFROM a\nARG V\nENV A=$V\n",
            json!({}),
            &[("V", "9")],
        );
        assert_eq!(cfg(&o)["Env"], json!(["A=9"]));
        // Stage default, override by build arg.
        let o = eval("FROM a\nARG X=d\nLABEL x=$X\n", json!({}), &[]);
        assert_eq!(cfg(&o)["Labels"], json!({"x": "d"}));
        let o = eval("FROM a\nARG X=d\nLABEL x=$X\n", json!({}), &[("X", "b")]);
        assert_eq!(cfg(&o)["Labels"], json!({"x": "b"}));
        // Undeclared build arg is not visible.
        let o = eval("FROM a\nLABEL x=${X:-none}\n", json!({}), &[("X", "b")]);
        assert_eq!(cfg(&o)["Labels"], json!({"x": "none"}));
        // ENV shadows ARG.
        let o = eval(
            "FROM a\nARG X=arg\nENV X=env\nLABEL x=$X\n",
            json!({}),
            &[("X", "b")],
        );
        assert_eq!(cfg(&o)["Labels"], json!({"x": "env"}));
        // ARG in one stage does not leak into the next.
        let o = eval(
            "FROM a\nARG X=1\nFROM b\nLABEL x=${X:-unset}\n",
            json!({}),
            &[],
        );
        assert_eq!(cfg(&o)["Labels"], json!({"x": "unset"}));
        // A bare redeclaration keeps the value.
        let o = eval("FROM a\nARG X=1\nARG X\nLABEL x=$X\n", json!({}), &[]);
        assert_eq!(cfg(&o)["Labels"], json!({"x": "1"}));
        // ARG default referencing an earlier ARG.
        let o = eval("FROM a\nARG A=x\nARG B=${A}y\nLABEL b=$B\n", json!({}), &[]);
        assert_eq!(cfg(&o)["Labels"], json!({"b": "xy"}));
        // ARGs never reach the config.
        assert!(cfg(&eval("FROM a\nARG X=1\n", json!({}), &[]))
            .get("Env")
            .is_none());
        // Unused build args, proxies excluded.
        let p = plan("ARG G\nFROM a\nARG S\n");
        assert_eq!(
            unused_build_args(
                &p,
                &[0],
                &args(&[("G", "1"), ("S", "1"), ("X", "1"), ("HTTP_PROXY", "p")])
            ),
            vec!["X".to_string()]
        );
    }

    /// The history text of the RUN steps.
    fn run_history(o: &StageOutcome) -> Vec<&str> {
        o.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Run(_)))
            .map(|s| s.created_by.as_str())
            .collect()
    }

    #[test]
    fn run_env_and_proxy_args() {
        let o = eval(
            "FROM a\nARG V=1\nENV E=2\nRUN echo $V\n",
            json!({"config": {"Env": ["PATH=/bin"]}}),
            &[("HTTP_PROXY", "http://p"), ("V", "3")],
        );
        let r = o.runs()[0];
        assert_eq!(r.argv, vec!["/bin/sh", "-c", "echo $V"]);
        assert_eq!(
            r.env,
            vec!["PATH=/bin", "E=2", "V=3", "HTTP_PROXY=http://p"]
        );
        assert_eq!(run_history(&o), ["|1 V=3 /bin/sh -c echo $V"]);
        assert_eq!(cfg(&o)["Env"], json!(["PATH=/bin", "E=2"]));
        let o = eval("FROM a\nRUN true\n", json!({}), &[("https_proxy", "x")]);
        assert_eq!(run_history(&o), ["/bin/sh -c true"]);
        assert_eq!(o.runs()[0].env, vec!["https_proxy=x"]);
        // A proxy ARG the Dockerfile declares is in the history, as in
        // Docker 20.10's (compared in tests/compat/build.txt).
        let o = eval(
            "FROM a\nARG HTTP_PROXY\nRUN true\n",
            json!({}),
            &[("HTTP_PROXY", "x")],
        );
        assert_eq!(run_history(&o), ["|1 HTTP_PROXY=x /bin/sh -c true"]);
    }

    #[test]
    fn run_flags_expanded_command_not() {
        let o = eval(
            "FROM a\nARG C=/cache\nRUN --mount=type=cache,target=$C --network=${N:-none} echo $C\n",
            json!({}),
            &[],
        );
        assert_eq!(
            o.runs()[0].flags[0].value.as_deref(),
            Some("type=cache,target=/cache")
        );
        assert_eq!(o.runs()[0].flags[1].value.as_deref(), Some("none"));
        assert_eq!(o.runs()[0].argv[2], "echo $C");
    }

    #[test]
    fn env_forms_and_expansion_time() {
        let o = eval(
            "FROM a\nENV A=1\nENV A=2 B=$A\nENV C x y\nENV D=\"a b\" E='$A'\n",
            json!({}),
            &[],
        );
        assert_eq!(
            cfg(&o)["Env"],
            json!(["A=2", "B=1", "C=x y", "D=a b", "E=$A"])
        );
        let o = eval(
            "FROM a\nENV PATH=$PATH:/x\n",
            json!({"config": {"Env": ["PATH=/bin"]}}),
            &[],
        );
        assert_eq!(cfg(&o)["Env"], json!(["PATH=/bin:/x"]));
    }

    #[test]
    fn cmd_entrypoint_in_config() {
        let base = json!({"config": {"Cmd": ["/bin/bash"]}});
        let o = eval("FROM a\nENTRYPOINT [\"/e\"]\n", base.clone(), &[]);
        assert_eq!(cfg(&o)["Cmd"], Value::Null);
        assert_eq!(cfg(&o)["Entrypoint"], json!(["/e"]));
        let o = eval(
            "FROM a\nCMD [\"x\"]\nENTRYPOINT [\"/e\"]\n",
            base.clone(),
            &[],
        );
        assert_eq!(cfg(&o)["Cmd"], json!(["x"]));
        let o = eval("FROM a\nCMD echo $HOME\n", base.clone(), &[]);
        assert_eq!(cfg(&o)["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
        let o = eval(
            "FROM a\nSHELL [\"/bin/bash\", \"-xc\"]\nENTRYPOINT run it\n",
            base,
            &[],
        );
        assert_eq!(cfg(&o)["Entrypoint"], json!(["/bin/bash", "-xc", "run it"]));
        assert_eq!(cfg(&o)["Shell"], json!(["/bin/bash", "-xc"]));
    }

    #[test]
    fn workdir_user_ports_labels_volumes_signal() {
        let text = "FROM a\nENV D=/srv\nWORKDIR $D\nWORKDIR app\nWORKDIR ../x/./y\nUSER ${U:-app}:1\nEXPOSE 80 53/udp 8000-8001\nLABEL a=1 \"b c\"=\"d e\"\nVOLUME /data [\"x\"]\nVOLUME [\"/v1\", \"/v2\"]\nSTOPSIGNAL SIGKILL\nMAINTAINER me\n";
        let o = eval(
            text,
            json!({"config": {"WorkingDir": "/old", "Labels": {"z": "0"}}}),
            &[],
        );
        let c = cfg(&o);
        assert_eq!(c["WorkingDir"], json!("/srv/x/y"));
        assert_eq!(c["User"], json!("app:1"));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["Labels"], json!({"z": "0", "a": "1", "b c": "d e"}));
        assert_eq!(
            c["Volumes"],
            json!({"/data": {}, "[x]": {}, "/v1": {}, "/v2": {}})
        );
        assert_eq!(c["StopSignal"], json!("SIGKILL"));
        assert_eq!(o.config["author"], json!("me"));
        let o = eval("FROM a\nWORKDIR rel\n", json!({}), &[]);
        assert_eq!(cfg(&o)["WorkingDir"], json!("/rel"));
        let p = plan("FROM a\nSTOPSIGNAL SIGNOPE\n");
        assert!(evaluate(&p, 0, &json!({}), &args(&[]))
            .unwrap_err()
            .to_string()
            .contains("invalid signal"));
        let p = plan("FROM a\nEXPOSE 80/xyz\n");
        assert!(evaluate(&p, 0, &json!({}), &args(&[])).is_err());
        let p = plan("FROM a\nEXPOSE 99999\n");
        assert!(evaluate(&p, 0, &json!({}), &args(&[])).is_err());
        let p = plan("FROM a\nUSER ${U:?must be set}\n");
        assert_eq!(
            evaluate(&p, 0, &json!({}), &args(&[]))
                .unwrap_err()
                .to_string(),
            "Dockerfile:2: USER: U: must be set"
        );
    }

    #[test]
    fn healthcheck_and_onbuild() {
        let o = eval("FROM a\nHEALTHCHECK CMD curl -f http://x\n", json!({}), &[]);
        assert_eq!(
            cfg(&o)["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "curl -f http://x"]})
        );
        let o = eval("FROM a\nHEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=5 CMD [\"/ok\"]\n", json!({}), &[]);
        assert_eq!(
            cfg(&o)["Healthcheck"],
            json!({"Test": ["CMD", "/ok"], "Interval": 90_000_000_000i64, "Timeout": 500_000_000, "StartPeriod": 2_000_000_000, "Retries": 5})
        );
        let o = eval(
            "FROM a\nHEALTHCHECK NONE\n",
            json!({"config": {"Healthcheck": {"Test": ["CMD", "x"]}}}),
            &[],
        );
        assert_eq!(cfg(&o)["Healthcheck"], json!({"Test": ["NONE"]}));
        for bad in [
            "--interval=1x",
            "--retries=-1",
            "--timeout=1ns",
            "--retries=z",
        ] {
            let p = plan(&format!("FROM a\nHEALTHCHECK {bad} CMD x\n"));
            assert!(evaluate(&p, 0, &json!({}), &args(&[])).is_err(), "{bad}");
        }
        let o = eval(
            "FROM a\nONBUILD RUN make $X\nONBUILD COPY . /src\n",
            json!({}),
            &[],
        );
        assert_eq!(cfg(&o)["OnBuild"], json!(["RUN make $X", "COPY . /src"]));
    }

    #[test]
    fn base_onbuild_triggers_run_first_and_are_not_inherited() {
        let base = json!({"config": {"OnBuild": ["ENV T=1", "COPY . /app", "RUN make"]}});
        let o = eval("FROM a\nENV U=$T\n", base, &[]);
        assert_eq!(cfg(&o)["Env"], json!(["T=1", "U=1"]));
        assert!(cfg(&o).get("OnBuild").is_none());
        assert_eq!(o.copies()[0].dest, "/app");
        assert_eq!(o.copies()[0].line, 1);
        assert_eq!(o.runs()[0].argv, vec!["/bin/sh", "-c", "make"]);
        let p = plan("FROM a\n");
        for bad in ["BOGUS x", "FROM b", "ONBUILD RUN x"] {
            let e =
                evaluate(&p, 0, &json!({"config": {"OnBuild": [bad]}}), &args(&[])).unwrap_err();
            assert!(e.to_string().starts_with("Dockerfile:1: FROM: "), "{e}");
        }
    }

    #[test]
    fn copy_steps_expanded() {
        let o = eval("FROM a\nWORKDIR /w\nARG F=src\nCOPY --chown=${U:-1}:1 $F/a \"b c\" ${D:-/dst/}\nADD <<EOF /x\nhi\nEOF\n", json!({}), &[]);
        let c = &o.copies()[0];
        assert_eq!(c.sources, vec!["src/a", "b c"]);
        assert_eq!(c.dest, "/dst/");
        assert_eq!(c.flags[0].value.as_deref(), Some("1:1"));
        assert_eq!(c.workdir, "/w");
        assert!(o.copies()[1].add);
        assert_eq!(o.copies()[1].heredocs[0].content, "hi\n");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h2m3s"), Some(3_723_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("99999999999h"), None);
    }

    #[test]
    fn odd_bases_never_panic() {
        let p = plan("FROM a\nENV A=1\n");
        for base in [
            json!(null),
            json!([]),
            json!({"config": 3}),
            json!({"config": {"Env": [1, "X"], "Shell": [], "Labels": 2}}),
        ] {
            let _ = evaluate(&p, 0, &base, &args(&[]));
        }
        assert_eq!(
            evaluate(&p, 9, &json!({}), &args(&[])).unwrap_err(),
            StageError::NoSuchStage(9)
        );
        assert!(p.base(9, &args(&[])).is_err());
        assert!(p.dependencies(9, &args(&[])).is_err());
        let empty = Plan {
            file: "D".into(),
            escape: '\\',
            meta_args: vec![],
            stages: vec![],
        };
        assert!(empty.build_order(None, &args(&[])).is_err());
    }

    /// Every prefix of a busy Dockerfile goes through the whole pipeline
    /// without a panic (cut mid-heredoc, mid-quote, mid-continuation).
    #[test]
    fn every_prefix_is_handled() {
        let text = "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine:3\nFROM --platform=$P ${BASE} AS b\nENV A=\"x y\" B='$A' \\\n  C=${A:-z}\nRUN --mount=type=cache,target=/c <<-EOF bash\n\techo \"é ${A}\"\n\tEOF\nCOPY --from=b --chmod=755 [\"a\", \"/b\"]\nHEALTHCHECK --interval=5s CMD [\"x\"]\nONBUILD RUN y\nFROM b\nEXPOSE 80/udp 1-2\nWORKDIR rel/../x\nLABEL \"k\"=\"v\" k2=v2\nUSER ${U:-u}\nVOLUME [\"/v\"]\nSTOPSIGNAL 9\nSHELL [\"sh\", \"-c\"]\nCMD run\nENTRYPOINT [\"e\"]\n";
        let build = args(&[("BASE", "debian"), ("HTTP_PROXY", "p")]);
        let mut cut = 0;
        while cut <= text.len() {
            if text.is_char_boundary(cut) {
                if let Ok(df) = parse("Dockerfile", &text[..cut]) {
                    if let Ok(p) = split_stages(&df) {
                        if let Ok(order) = p.build_order(None, &build) {
                            for i in order {
                                let _ = p.base(i, &build);
                                let _ = evaluate(&p, i, &json!({}), &build);
                            }
                        }
                    }
                }
            }
            cut += 1;
        }
        let p = plan(text);
        let o = evaluate(&p, 1, &json!({}), &build).unwrap();
        assert_eq!(o.config["config"]["Entrypoint"], json!(["e"]));
        assert_eq!(o.config["config"]["Cmd"], json!(["sh", "-c", "run"]));
        let o = evaluate(&p, 0, &json!({"config": {"Env": ["PATH=/bin"]}}), &build).unwrap();
        assert_eq!(
            o.config["config"]["Env"],
            json!(["PATH=/bin", "A=x y", "B=$A", "C=z"])
        );
    }
}
