//! What can go wrong loading a project or driving it: each a variant a
//! caller can match, its message one line naming the file, the path in it
//! and the problem (or the container, network or volume at fault).

/// A compose error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No file named, and none of the default names in the directory or
    /// its parents.
    #[error(
        "no configuration file provided: not found (looked for {names} in {dir} and its parents)"
    )]
    NoFile { names: String, dir: String },
    /// A file that cannot be read.
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// YAML that does not parse.
    #[error("{file}: {problem}")]
    Yaml { file: String, problem: String },
    /// A file that parses but breaks the Compose Specification (its JSON
    /// schema) or one of Compose's rules: `path` is dotted
    /// (`services.web.ports.0`).
    #[error("{file}: {path}: {problem}")]
    Invalid {
        file: String,
        path: String,
        problem: String,
    },
    /// A `${VAR:?message}` whose variable is unset (or empty), or a `$`
    /// that starts nothing.
    #[error("{file}: {path}: {problem}")]
    Interpolation {
        file: String,
        path: String,
        problem: String,
    },
    /// A `.env` or `--env-file` line that is not `KEY=VALUE`.
    #[error("{file}:{line}: {problem}")]
    EnvFile {
        file: String,
        line: usize,
        problem: String,
    },
    /// A bad project name (`-p`, `name:`, COMPOSE_PROJECT_NAME).
    #[error("invalid project name {0:?}: it must contain only lowercase letters, decimal digits, dashes, and underscores, and must begin with a lowercase letter or decimal digit")]
    ProjectName(String),
    /// A service named on the command line that the project lacks.
    #[error("no such service: {0}")]
    NoSuchService(String),
    /// A user's option that makes no sense (`--scale web=x`...).
    #[error("{0}")]
    Option(String),
    /// `depends_on` that cannot be satisfied: a dependency exited badly,
    /// became unhealthy, or the wait ran out.
    #[error("{0}")]
    Dependency(String),
    /// The engine refused or failed.
    #[error("{context}: {source}")]
    Engine {
        context: String,
        source: berth_engine::Error,
    },
}

impl Error {
    /// The engine's error with what compose was doing.
    pub fn engine(context: impl Into<String>) -> impl FnOnce(berth_engine::Error) -> Error {
        let context = context.into();
        move |source| Error::Engine { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
