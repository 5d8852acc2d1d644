//! Dockerfile/Containerfile parser: directives, logical lines, heredocs and
//! a typed instruction per line. Words are kept raw (quotes and `$VAR`
//! untouched) because Docker expands them later, per instruction, with the
//! environment of the stage.

use std::collections::HashSet;

/// A parse error; the message names the file, the line and the instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    pub syntax: Option<String>,
    pub escape: char,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The name errors use (`Dockerfile`, `app/Containerfile`).
    pub file: String,
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
}

/// One instruction with the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    pub kind: Kind,
    /// The instruction as written, continuations joined (what buildah's
    /// history shows).
    pub text: String,
}

/// A command in exec form (a JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// A heredoc attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the delimiter was quoted: the body is taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and the delimiter.
    pub strip_tabs: bool,
}

/// A `--name=value` flag (or a bare `--name`, value `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// HEALTHCHECK options; durations are kept as written (`30s`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOptions {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

/// COPY and ADD share their shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyArgs {
    pub flags: Vec<Flag>,
    pub sources: Vec<String>,
    pub dest: String,
    pub heredocs: Vec<Heredoc>,
}

impl CopyArgs {
    /// Every value of a repeatable flag, e.g. `--exclude`.
    pub fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| f.value.as_deref())
            .collect()
    }

    /// The value of a flag, e.g. `from` for `--from=builder`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        flag_value(&self.flags, name)
    }
}

fn flag_value<'a>(flags: &'a [Flag], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .and_then(|f| f.value.as_deref())
}

/// The typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Add(CopyArgs),
    /// `ARG name[=default]` (several per line allowed).
    Arg(Vec<(String, Option<String>)>),
    Cmd(Command),
    Copy(CopyArgs),
    Entrypoint(Command),
    /// `(key, raw value)` pairs; the value still carries its quotes.
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Healthcheck(Option<(HealthOptions, Command)>),
    Label(Vec<(String, String)>),
    Maintainer(String),
    Onbuild(Box<Kind>, String),
    Run {
        flags: Vec<Flag>,
        command: Command,
        heredocs: Vec<Heredoc>,
    },
    Shell(Vec<String>),
    Stopsignal(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
}

impl Kind {
    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::Add(_) => "ADD",
            Kind::Arg(_) => "ARG",
            Kind::Cmd(_) => "CMD",
            Kind::Copy(_) => "COPY",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Env(_) => "ENV",
            Kind::Expose(_) => "EXPOSE",
            Kind::From { .. } => "FROM",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Label(_) => "LABEL",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Onbuild(..) => "ONBUILD",
            Kind::Run { .. } => "RUN",
            Kind::Shell(_) => "SHELL",
            Kind::Stopsignal(_) => "STOPSIGNAL",
            Kind::User(_) => "USER",
            Kind::Volume(_) => "VOLUME",
            Kind::Workdir(_) => "WORKDIR",
        }
    }
}

/// Parse a Dockerfile's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let err = |line: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        message,
    };
    let (directives, mut i) = parse_directives(&lines).map_err(|(l, m)| err(l, m))?;
    let escape = directives.escape;
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // Join continuation lines; comment and empty lines inside a
        // continuation are dropped, as BuildKit does.
        let mut logical = String::new();
        let mut cur = trimmed.to_string();
        loop {
            // BuildKit's rule: `X\` at the end (spaces and tabs after it
            // allowed) where X is not itself the escape, or a lone `\`.
            let t = cur.trim_end_matches([' ', '\t']);
            let continued = t
                .strip_suffix(escape)
                .filter(|body| body.is_empty() || !body.ends_with(escape));
            if let Some(body) = continued {
                logical.push_str(body);
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let lt = l.trim_start();
                    if lt.is_empty() || lt.starts_with('#') {
                        continue;
                    }
                    next = Some(l.to_string());
                    break;
                }
                match next {
                    Some(n) => cur = n,
                    None => break,
                }
            } else {
                logical.push_str(&cur);
                break;
            }
        }
        let (keyword, rest) = split_keyword(&logical);
        let upper = keyword.to_ascii_uppercase();
        let mut heredocs = Vec::new();
        if matches!(upper.as_str(), "RUN" | "COPY" | "ADD") {
            let markers =
                heredoc_markers(rest).map_err(|m| err(start + 1, format!("{upper}: {m}")))?;
            for (name, expand, strip_tabs) in markers {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l2 = if strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if l2 == name {
                        closed = true;
                        break;
                    }
                    content.push_str(l2);
                    content.push('\n');
                }
                if !closed {
                    return Err(err(
                        start + 1,
                        format!("{upper}: heredoc <<{name} is not terminated"),
                    ));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    strip_tabs,
                });
            }
        }
        let kind = parse_instruction(&upper, keyword, rest, heredocs, false)
            .map_err(|m| err(start + 1, m))?;
        instructions.push(Instruction {
            line: start + 1,
            kind,
            text: logical.trim_end().to_string(),
        });
    }
    Ok(Dockerfile {
        file: file.to_string(),
        directives,
        instructions,
    })
}

type DirectiveError = (usize, String);

fn parse_directives(lines: &[&str]) -> Result<(Directives, usize), DirectiveError> {
    let mut d = Directives::default();
    let mut seen = HashSet::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(body) = lines[i].trim().strip_prefix('#') else {
            break;
        };
        let Some((name, value)) = body.split_once('=') else {
            break;
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            break;
        }
        let value = value.trim().to_string();
        // `# escape=` with no value is no directive but a comment.
        if value.is_empty() {
            break;
        }
        // An unknown directive is a comment and ends the directives.
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        if !seen.insert(name.clone()) {
            return Err((
                i + 1,
                format!("only one {name} parser directive can be used"),
            ));
        }
        match name.as_str() {
            "syntax" => d.syntax = Some(value),
            "check" => d.check = Some(value),
            _ => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err((
                            i + 1,
                            format!("invalid escape token {value:?}: it must be ` or \\"),
                        ))
                    }
                }
            }
        }
        i += 1;
    }
    Ok((d, i))
}

fn split_keyword(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.find(char::is_whitespace) {
        Some(p) => (&line[..p], line[p..].trim_start()),
        None => (line, ""),
    }
}

/// Heredoc markers on an instruction line, found as BuildKit does: a shell
/// word matching `^[0-9]*<<(-?)([^<]+)$` (`<<EOF`, `<<-EOF`, `2<<"EOF"`);
/// a quoted delimiter turns expansion off. Quoted `"a<<b"` is no marker.
fn heredoc_markers(rest: &str) -> Result<Vec<(String, bool, bool)>, String> {
    let mut out = Vec::new();
    for word in split_words(rest) {
        let w = word.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(w) = w.strip_prefix("<<") else {
            continue;
        };
        let (strip, w) = match w.strip_prefix('-') {
            Some(w) => (true, w),
            None => (false, w),
        };
        if w.is_empty() || w.contains('<') {
            continue;
        }
        let open = w.chars().next().filter(|c| matches!(c, '"' | '\''));
        let close = w.chars().last().filter(|c| matches!(c, '"' | '\''));
        if (open.is_some() || close.is_some()) && (open != close || w.len() < 2) {
            return Err(format!("quoted heredoc quotes do not match: <<{w}"));
        }
        let quoted = w.contains(['"', '\'', '\\']);
        let name: String = w
            .chars()
            .filter(|c| !matches!(c, '"' | '\'' | '\\'))
            .collect();
        if !name.is_empty() {
            out.push((name, !quoted, strip));
        }
    }
    Ok(out)
}

/// Flags each instruction accepts.
fn allowed_flags(kw: &str) -> &'static [&'static str] {
    match kw {
        "ADD" => &[
            "chown",
            "chmod",
            "link",
            "exclude",
            "keep-git-dir",
            "checksum",
            "unpack",
        ],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "FROM" => &["platform"],
        "RUN" => &["mount", "network", "security"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    }
}

/// Leading `--flag[=value]` words.
fn take_flags<'a>(kw: &str, mut rest: &'a str) -> Result<(Vec<Flag>, &'a str), String> {
    let mut flags = Vec::new();
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[2..end];
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word, None),
        };
        if !allowed_flags(kw).contains(&name) {
            return Err(format!("{kw}: unknown flag: --{name}"));
        }
        let boolean = matches!(name, "link" | "parents" | "keep-git-dir" | "unpack");
        if value.is_none() && !boolean {
            return Err(format!("{kw}: flag --{name} needs a value"));
        }
        flags.push(Flag {
            name: name.to_string(),
            value,
        });
        rest = &rest[end..];
    }
    Ok((flags, rest.trim()))
}

/// Exec form when `rest` is a JSON array of strings, shell form otherwise.
fn command(rest: &str) -> Command {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return Command::Exec(v);
        }
    }
    Command::Shell(t.to_string())
}

/// Split into words on whitespace, keeping quotes (and escapes) in the words.
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == '\\' && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                    continue;
                }
                in_word = true;
                cur.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// ENV/LABEL pairs: `k=v k2="v 2"` or the legacy `k v w`.
fn name_values(kw: &str, rest: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest);
    if words.is_empty() {
        return Err(format!("{kw} requires at least one argument"));
    }
    if !words[0].contains('=') {
        // Legacy form: one key, the rest of the line is the value.
        let (k, v) = split_keyword(rest);
        if v.is_empty() {
            return Err(format!("{kw} must have two arguments"));
        }
        return Ok(vec![(k.to_string(), v.to_string())]);
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                return Err(format!(
                    "{kw}: syntax error - can't find = in {w:?}; must be of the form: name=value"
                ))
            }
        }
    }
    Ok(out)
}

fn json_or_words(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    split_words(t)
}

fn one_arg(kw: &str, rest: &str) -> Result<String, String> {
    if rest.trim().is_empty() {
        return Err(format!("{kw} requires exactly one argument"));
    }
    Ok(rest.trim().to_string())
}

fn parse_instruction(
    upper: &str,
    keyword: &str,
    rest: &str,
    heredocs: Vec<Heredoc>,
    in_onbuild: bool,
) -> Result<Kind, String> {
    let (flags, rest) = take_flags(upper, rest).map_err(|e| {
        if allowed_flags(upper).is_empty() && is_known(upper) {
            format!(
                "{upper}: unknown flag: {}",
                rest.split_whitespace().next().unwrap_or("")
            )
        } else {
            e
        }
    })?;
    let kind = match upper {
        "ADD" | "COPY" => {
            let mut args = if heredocs.is_empty() {
                json_or_words(rest)
            } else {
                split_words(rest)
            };
            let need = if heredocs.is_empty() { 2 } else { 1 };
            if args.len() < need {
                return Err(format!("{upper} requires at least two arguments, but only one was provided. Destination could not be determined"));
            }
            let dest = args.pop().unwrap_or_default();
            let c = CopyArgs {
                flags,
                sources: args,
                dest,
                heredocs,
            };
            if upper == "ADD" {
                Kind::Add(c)
            } else {
                Kind::Copy(c)
            }
        }
        "ARG" => {
            let words = split_words(rest);
            if words.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let mut out = Vec::new();
            for w in words {
                match w.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
                if out.last().is_some_and(|(k, _)| k.is_empty()) {
                    return Err("ARG names can not be blank".into());
                }
            }
            Kind::Arg(out)
        }
        "CMD" => Kind::Cmd(command(rest)),
        "ENTRYPOINT" => Kind::Entrypoint(command(rest)),
        "ENV" => Kind::Env(name_values(upper, rest)?),
        "LABEL" => Kind::Label(name_values(upper, rest)?),
        "EXPOSE" => {
            let w = split_words(rest);
            if w.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            Kind::Expose(w)
        }
        "FROM" => {
            let w = split_words(rest);
            let (image, name) = match w.as_slice() {
                [image] => (image.clone(), None),
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    if !valid_stage_name(name) {
                        return Err(format!("FROM: invalid stage name {name:?}: it must start with a letter and contain only letters, digits, '-', '_' and '.'"));
                    }
                    (image.clone(), Some(name.to_ascii_lowercase()))
                }
                _ => {
                    return Err(
                        "FROM requires either one or three arguments: FROM <image> [AS <name>]"
                            .into(),
                    )
                }
            };
            Kind::From {
                image,
                name,
                platform: flag_value(&flags, "platform").map(str::to_string),
            }
        }
        "HEALTHCHECK" => {
            let (kw2, cmd_rest) = split_keyword(rest);
            if kw2.eq_ignore_ascii_case("NONE") {
                if !cmd_rest.is_empty() || !flags.is_empty() {
                    return Err("HEALTHCHECK NONE takes no arguments".into());
                }
                Kind::Healthcheck(None)
            } else if kw2.eq_ignore_ascii_case("CMD") {
                if cmd_rest.is_empty() {
                    return Err("HEALTHCHECK CMD needs a command".into());
                }
                let mut o = HealthOptions::default();
                for f in &flags {
                    let v = f.value.clone();
                    match f.name.as_str() {
                        "interval" => o.interval = v,
                        "timeout" => o.timeout = v,
                        "start-period" => o.start_period = v,
                        "start-interval" => o.start_interval = v,
                        _ => o.retries = v,
                    }
                }
                Kind::Healthcheck(Some((o, command(cmd_rest))))
            } else {
                return Err(format!(
                    "HEALTHCHECK: unknown type {kw2:?}: it must be CMD or NONE"
                ));
            }
        }
        "MAINTAINER" => Kind::Maintainer(one_arg(upper, rest)?),
        "ONBUILD" => {
            if in_onbuild {
                return Err("ONBUILD: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
            }
            let (kw2, rest2) = split_keyword(rest);
            let up2 = kw2.to_ascii_uppercase();
            match up2.as_str() {
                "" => return Err("ONBUILD requires at least one argument".into()),
                "ONBUILD" => {
                    return Err(
                        "ONBUILD: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    )
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!(
                        "ONBUILD: {up2} isn't allowed as an ONBUILD trigger"
                    ))
                }
                _ => {}
            }
            let inner = parse_instruction(&up2, kw2, rest2, Vec::new(), true)?;
            Kind::Onbuild(Box::new(inner), rest.trim().to_string())
        }
        "RUN" => {
            if rest.is_empty() && heredocs.is_empty() {
                return Err("RUN requires at least one argument".into());
            }
            let command = if heredocs.is_empty() {
                command(rest)
            } else {
                Command::Shell(rest.to_string())
            };
            Kind::Run {
                flags,
                command,
                heredocs,
            }
        }
        "SHELL" => match serde_json::from_str::<Vec<String>>(rest.trim()) {
            Ok(v) if !v.is_empty() => Kind::Shell(v),
            _ => return Err("SHELL requires the arguments to be in JSON form".into()),
        },
        "STOPSIGNAL" => Kind::Stopsignal(one_arg(upper, rest)?),
        "USER" => Kind::User(one_arg(upper, rest)?),
        "VOLUME" => {
            let v = json_or_words(rest);
            if v.is_empty() || v.iter().any(|s| s.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(v)
        }
        "WORKDIR" => Kind::Workdir(one_arg(upper, rest)?),
        _ => return Err(format!("unknown instruction: {keyword}")),
    };
    Ok(kind)
}

fn is_known(upper: &str) -> bool {
    matches!(
        upper,
        "ADD"
            | "ARG"
            | "CMD"
            | "COPY"
            | "ENTRYPOINT"
            | "ENV"
            | "EXPOSE"
            | "FROM"
            | "HEALTHCHECK"
            | "LABEL"
            | "MAINTAINER"
            | "ONBUILD"
            | "RUN"
            | "SHELL"
            | "STOPSIGNAL"
            | "USER"
            | "VOLUME"
            | "WORKDIR"
    )
}

fn valid_stage_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Kind {
        let d = parse("Dockerfile", text).unwrap();
        assert_eq!(d.instructions.len(), 1, "{d:?}");
        d.instructions.into_iter().next().unwrap().kind
    }

    fn error(text: &str) -> String {
        parse("Dockerfile", text).unwrap_err().to_string()
    }

    #[test]
    fn all_instructions_case_insensitive() {
        let text = "from alpine AS Build\nadd a b\narg X=1\ncmd [\"a\"]\ncopy a b\nentrypoint x\nenv A=1\nexpose 80\nhealthcheck NONE\nlabel a=b\nmaintainer me\nonbuild run x\nrun x\nshell [\"sh\",\"-c\"]\nstopsignal SIGTERM\nuser u\nvolume /v\nworkdir /w\n";
        let d = parse("Dockerfile", text).unwrap();
        let kws: Vec<_> = d.instructions.iter().map(|i| i.kind.keyword()).collect();
        assert_eq!(kws.len(), 18);
        assert_eq!(kws[0], "FROM");
        assert_eq!(kws[17], "WORKDIR");
        assert_eq!(d.instructions[17].line, 18);
        assert!(
            matches!(&d.instructions[0].kind, Kind::From { name: Some(n), .. } if n == "build")
        );
    }

    #[test]
    fn unknown_instruction_names_file_and_line() {
        assert_eq!(
            error("FROM a\n\n\n\n\n\nCOPPY a b\n"),
            "Dockerfile:7: unknown instruction: COPPY"
        );
    }

    #[test]
    fn directives() {
        let d = parse(
            "Dockerfile",
            "# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\nRUN a `\n  b\n",
        )
        .unwrap();
        assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
        assert_eq!(d.directives.escape, '`');
        assert_eq!(
            d.instructions[1].kind,
            Kind::Run {
                flags: vec![],
                command: Command::Shell("a   b".into()),
                heredocs: vec![]
            }
        );
    }

    #[test]
    fn directive_twice_is_an_error() {
        assert_eq!(
            error("# escape=`\n# escape=\\\nFROM a\n"),
            "Dockerfile:2: only one escape parser directive can be used"
        );
        assert!(error("# escape=x\nFROM a\n").starts_with("Dockerfile:1: invalid escape token"));
    }

    #[test]
    fn directive_after_instruction_comment_or_blank_is_a_comment() {
        let d = parse("Dockerfile", "FROM a\n# escape=`\nRUN a \\\n b\n").unwrap();
        assert_eq!(d.directives.escape, '\\');
        let d = parse("Dockerfile", "# a comment\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(d.directives.escape, '\\');
        let d = parse("Dockerfile", "\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(d.directives.escape, '\\');
        // An unknown directive is a comment and ends the directives.
        let d = parse("Dockerfile", "# unknown=x\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(d.directives.escape, '\\');
        // Case-insensitive names, spaces allowed.
        let d = parse("Dockerfile", "# escape=\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(d.directives.escape, '\\');
        let d = parse("Dockerfile", "#  ESCAPE = `\nFROM a\n").unwrap();
        assert_eq!(d.directives.escape, '`');
    }

    #[test]
    fn byte_order_mark_and_crlf() {
        let d = parse(
            "Dockerfile",
            "\u{feff}# escape=`\r\nFROM a\r\nRUN a `\r\n b\r\n",
        )
        .unwrap();
        assert_eq!(d.directives.escape, '`');
        assert_eq!(
            d.instructions[1].kind,
            Kind::Run {
                flags: vec![],
                command: Command::Shell("a  b".into()),
                heredocs: vec![]
            }
        );
    }

    #[test]
    fn continuation_skips_comments_and_blank_lines() {
        let k = one("RUN apt-get update \\\n# a comment\n\n    && apt-get install x\n");
        assert_eq!(
            k,
            Kind::Run {
                flags: vec![],
                command: Command::Shell("apt-get update     && apt-get install x".into()),
                heredocs: vec![]
            }
        );
        // An escaped escape at the end is no continuation; a lone one is.
        let d = parse("Dockerfile", "RUN echo a\\\\\nUSER u\n").unwrap();
        assert_eq!(d.instructions.len(), 2);
        let d = parse("Dockerfile", "RUN echo a \\\n\\\n b\n").unwrap();
        assert_eq!(
            d.instructions[0].kind,
            Kind::Run {
                flags: vec![],
                command: Command::Shell("echo a  b".into()),
                heredocs: vec![]
            }
        );
        let d = parse("Dockerfile", "RUN a \\ \t\nb\n").unwrap();
        assert_eq!(d.instructions.len(), 1);
        // Trailing escape at end of file.
        assert!(matches!(one("RUN a \\"), Kind::Run { .. }));
    }

    #[test]
    fn exec_form_and_fallback() {
        assert_eq!(
            one("CMD [\"a\", \"b c\"]"),
            Kind::Cmd(Command::Exec(vec!["a".into(), "b c".into()]))
        );
        assert_eq!(one("CMD ['a']"), Kind::Cmd(Command::Shell("['a']".into())));
        assert_eq!(
            one("ENTRYPOINT [\"a\", 1]"),
            Kind::Entrypoint(Command::Shell("[\"a\", 1]".into()))
        );
        assert_eq!(
            one("CMD echo hi"),
            Kind::Cmd(Command::Shell("echo hi".into()))
        );
    }

    #[test]
    fn flags() {
        let Kind::Copy(c) = one(
            "COPY --from=build --chown=1:1 --chmod=755 --link --parents --exclude=*.tmp a b /dst/",
        ) else {
            panic!()
        };
        assert_eq!(c.flag("from"), Some("build"));
        assert_eq!(c.flag("exclude"), Some("*.tmp"));
        let Kind::Copy(c2) = one("COPY --exclude=a --exclude=b . /") else {
            panic!()
        };
        assert_eq!(c2.flag_values("exclude"), vec!["a", "b"]);
        assert_eq!(c.sources, vec!["a", "b"]);
        assert_eq!(c.dest, "/dst/");
        assert!(c
            .flags
            .iter()
            .any(|f| f.name == "link" && f.value.is_none()));
        assert_eq!(
            error("COPY --frm=x a b"),
            "Dockerfile:1: COPY: unknown flag: --frm"
        );
        assert_eq!(
            error("ADD --from=x a b"),
            "Dockerfile:1: ADD: unknown flag: --from"
        );
        assert_eq!(error("CMD --x a"), "Dockerfile:1: CMD: unknown flag: --x");
        assert_eq!(
            error("COPY --from a b"),
            "Dockerfile:1: COPY: flag --from needs a value"
        );
        let Kind::Run { flags, .. } = one("RUN --mount=type=cache,target=/c --network=none make")
        else {
            panic!()
        };
        assert_eq!(flags[0].value.as_deref(), Some("type=cache,target=/c"));
        assert!(
            matches!(one("FROM --platform=linux/arm64 a"), Kind::From { platform: Some(p), .. } if p == "linux/arm64")
        );
    }

    #[test]
    fn heredocs() {
        let d = parse("Dockerfile", "FROM a\nRUN <<EOF\necho $HOME\n\tx\nEOF\nRUN <<-\"EOT\" bash\n\techo hi\n\tEOT\nCOPY <<A <<'B' /dst/\n1\nA\n2\nB\nUSER u\n").unwrap();
        let Kind::Run {
            heredocs, command, ..
        } = &d.instructions[1].kind
        else {
            panic!()
        };
        assert_eq!(
            heredocs[0],
            Heredoc {
                name: "EOF".into(),
                content: "echo $HOME\n\tx\n".into(),
                expand: true,
                strip_tabs: false
            }
        );
        assert_eq!(command, &Command::Shell("<<EOF".into()));
        let Kind::Run { heredocs, .. } = &d.instructions[2].kind else {
            panic!()
        };
        assert_eq!(
            heredocs[0],
            Heredoc {
                name: "EOT".into(),
                content: "echo hi\n".into(),
                expand: false,
                strip_tabs: true
            }
        );
        let Kind::Copy(c) = &d.instructions[3].kind else {
            panic!()
        };
        assert_eq!(c.heredocs.len(), 2);
        assert_eq!(c.heredocs[1].content, "2\n");
        assert!(!c.heredocs[1].expand);
        assert_eq!(c.dest, "/dst/");
        assert_eq!(d.instructions[4].line, 14);
        assert_eq!(
            error("RUN <<EOF\nx\n"),
            "Dockerfile:1: RUN: heredoc <<EOF is not terminated"
        );
    }

    #[test]
    fn env_and_label_forms() {
        assert_eq!(
            one("ENV a=1 b=\"x y\" c=z\\ w"),
            Kind::Env(vec![
                ("a".into(), "1".into()),
                ("b".into(), "\"x y\"".into()),
                ("c".into(), "z\\ w".into())
            ])
        );
        assert_eq!(
            one("ENV a  hello world"),
            Kind::Env(vec![("a".into(), "hello world".into())])
        );
        assert_eq!(error("ENV a"), "Dockerfile:1: ENV must have two arguments");
        assert!(error("ENV a=1 b").contains("can't find ="));
        assert_eq!(
            one("LABEL \"com.x\"=\"a b\""),
            Kind::Label(vec![("\"com.x\"".into(), "\"a b\"".into())])
        );
    }

    #[test]
    fn healthcheck() {
        let Kind::Healthcheck(Some((o, c))) =
            one("HEALTHCHECK --interval=5s --retries=2 CMD [\"curl\",\"x\"]")
        else {
            panic!()
        };
        assert_eq!(o.interval.as_deref(), Some("5s"));
        assert_eq!(o.retries.as_deref(), Some("2"));
        assert_eq!(c, Command::Exec(vec!["curl".into(), "x".into()]));
        assert_eq!(one("healthcheck none"), Kind::Healthcheck(None));
        assert!(error("HEALTHCHECK --bogus=1 CMD x").contains("unknown flag: --bogus"));
        assert!(error("HEALTHCHECK RUN x").contains("unknown type"));
    }

    #[test]
    fn onbuild() {
        assert_eq!(
            one("ONBUILD RUN make"),
            Kind::Onbuild(
                Box::new(Kind::Run {
                    flags: vec![],
                    command: Command::Shell("make".into()),
                    heredocs: vec![]
                }),
                "RUN make".into()
            )
        );
        assert!(error("ONBUILD FROM a").contains("FROM isn't allowed"));
        assert!(error("ONBUILD MAINTAINER a").contains("MAINTAINER isn't allowed"));
        assert!(error("ONBUILD ONBUILD RUN a").contains("chaining"));
        assert!(error("ONBUILD BOGUS a").contains("unknown instruction: BOGUS"));
    }

    #[test]
    fn argument_errors() {
        assert!(error("FROM").contains("FROM requires"));
        assert!(error("FROM a AS 1x").contains("invalid stage name"));
        assert!(error("FROM a b c").contains("FROM requires"));
        assert!(error("COPY a").contains("at least two arguments"));
        assert!(error("SHELL sh -c").contains("JSON form"));
        assert!(error("USER").contains("exactly one"));
        assert!(error("RUN").contains("RUN requires"));
        assert_eq!(
            one("ARG a b=2"),
            Kind::Arg(vec![("a".into(), None), ("b".into(), Some("2".into()))])
        );
        assert_eq!(
            one("VOLUME [\"/a\", \"/b\"]"),
            Kind::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            one("COPY [\"a b\", \"/c\"]"),
            Kind::Copy(CopyArgs {
                sources: vec!["a b".into()],
                dest: "/c".into(),
                ..Default::default()
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "\u{0}",
            "\\",
            "<<",
            "RUN <<",
            "RUN <<\"",
            "COPY <<-",
            "# escape=",
            "#",
            "--",
            "FROM --",
            "ENV =",
            "ARG =x",
            "ONBUILD",
            "HEALTHCHECK",
            "RUN [",
            "\u{feff}FROM a",
            "RUN é\\\n\n",
        ] {
            let _ = parse("Dockerfile", text);
        }
    }
}
