//! Docker's variable expansion of Dockerfile words (BuildKit's shell lexer):
//! `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?msg}`,
//! `${V?msg}`; the escape char escapes; single quotes suppress expansion;
//! quotes are removed from the result.

/// An expansion error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    #[error("bad substitution in {0:?}")]
    BadSubstitution(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// The instructions whose arguments Docker expands before running them.
/// RUN, CMD and ENTRYPOINT are left to the shell; ONBUILD is expanded when
/// the trigger runs in the child build, not here. ARG defaults are expanded
/// too (`ARG B=$A`), as BuildKit does.
pub fn expands(keyword: &str) -> bool {
    matches!(
        keyword.to_ascii_uppercase().as_str(),
        "ADD"
            | "ARG"
            | "COPY"
            | "ENV"
            | "EXPOSE"
            | "FROM"
            | "LABEL"
            | "STOPSIGNAL"
            | "USER"
            | "VOLUME"
            | "WORKDIR"
    )
}

/// Expand one word; `lookup` gives a variable's value (`None`: unset).
pub fn expand_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let chars: Vec<char> = word.chars().collect();
    let mut lx = Lexer {
        chars: &chars,
        pos: 0,
        escape,
        lookup,
        word,
    };
    lx.run(None)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    word: &'a str,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (consumed) or the end.
    fn run(&mut self, stop: Option<char>) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok(out);
            }
            self.pos += 1;
            if c == self.escape {
                // A trailing escape is dropped.
                if let Some(n) = self.next() {
                    out.push(n);
                }
            } else if c == '\'' {
                loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(x) => out.push(x),
                        None => return Err(ExpandError::Unterminated("single-quote")),
                    }
                }
            } else if c == '"' {
                out.push_str(&self.double_quoted()?);
            } else if c == '$' {
                out.push_str(&self.dollar()?);
            } else {
                out.push(c);
            }
        }
        if stop.is_some() {
            return Err(ExpandError::BadSubstitution(self.word.to_string()));
        }
        Ok(out)
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.next() else {
                return Err(ExpandError::Unterminated("double-quote"));
            };
            if c == '"' {
                return Ok(out);
            }
            if c == '$' {
                out.push_str(&self.dollar()?);
                continue;
            }
            if c == self.escape {
                match self.peek() {
                    None => continue,
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            out.push(c);
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(ExpandError::BadSubstitution(self.word.to_string()));
        }
        let value = (self.lookup)(&name);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(c) => {
                let colon = c == ':';
                let op = if colon { self.next() } else { Some(c) };
                let Some(op @ ('-' | '+' | '?')) = op else {
                    return Err(ExpandError::BadSubstitution(self.word.to_string()));
                };
                let word = self.run(Some('}'))?;
                // With a colon an empty value counts as unset.
                let set = match &value {
                    Some(v) => !colon || !v.is_empty(),
                    None => false,
                };
                match op {
                    '-' => Ok(if set { value.unwrap_or_default() } else { word }),
                    '+' => Ok(if set { word } else { String::new() }),
                    _ => {
                        if set {
                            Ok(value.unwrap_or_default())
                        } else {
                            let message = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            Err(ExpandError::Required { name, message })
                        }
                    }
                }
            }
            None => Err(ExpandError::BadSubstitution(self.word.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "E" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    fn x(w: &str) -> String {
        expand_word(w, '\\', &env).unwrap()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(x("$A"), "alpha");
        assert_eq!(x("${A}"), "alpha");
        assert_eq!(x("x${A}y"), "xalphay");
        assert_eq!(x("$A-y"), "alpha-y");
        assert_eq!(x("$U"), "");
        assert_eq!(x("$"), "$");
        assert_eq!(x("a$ b"), "a$ b");
        assert_eq!(x("$A$A"), "alphaalpha");
    }

    #[test]
    fn modifiers() {
        assert_eq!(x("${U:-def}"), "def");
        assert_eq!(x("${E:-def}"), "def");
        assert_eq!(x("${E-def}"), "");
        assert_eq!(x("${U-def}"), "def");
        assert_eq!(x("${A:-def}"), "alpha");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${E:+alt}"), "");
        assert_eq!(x("${E+alt}"), "alt");
        assert_eq!(x("${U+alt}"), "");
        assert_eq!(x("${U:-$A}"), "alpha");
        assert_eq!(x("${U:-${E:-nested}}"), "nested");
        assert_eq!(
            expand_word("${U:?need it}", '\\', &env)
                .unwrap_err()
                .to_string(),
            "U: need it"
        );
        assert_eq!(x("${E?x}"), "");
        assert!(expand_word("${E:?}", '\\', &env).is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A\""), "alpha");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"\\$A\""), "$A");
        assert_eq!(x("\"a\\nb\""), "a\\nb");
        assert_eq!(x("\"a\\\"b\""), "a\"b");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(x("\"x y\""), "x y");
        assert_eq!(x("a\\"), "a");
        assert_eq!(expand_word("`$A", '`', &env).unwrap(), "$A");
        assert_eq!(expand_word("\\$A", '`', &env).unwrap(), "\\alpha");
    }

    #[test]
    fn errors() {
        assert_eq!(
            expand_word("'a", '\\', &env).unwrap_err().to_string(),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert!(expand_word("\"a", '\\', &env).is_err());
        assert!(expand_word("${A", '\\', &env).is_err());
        assert!(expand_word("${}", '\\', &env).is_err());
        assert!(expand_word("${A:x}", '\\', &env).is_err());
        assert!(expand_word("${A:-x", '\\', &env).is_err());
        for w in ["${", "${A:", "$", "\\", "\"\\", "${:-}", "${A-${"] {
            let _ = expand_word(w, '\\', &env);
        }
    }

    #[test]
    fn where_docker_expands() {
        for k in [
            "ADD",
            "COPY",
            "ENV",
            "EXPOSE",
            "FROM",
            "LABEL",
            "STOPSIGNAL",
            "USER",
            "VOLUME",
            "WORKDIR",
            "arg",
        ] {
            assert!(expands(k), "{k}");
        }
        for k in [
            "RUN",
            "CMD",
            "ENTRYPOINT",
            "ONBUILD",
            "SHELL",
            "HEALTHCHECK",
            "MAINTAINER",
        ] {
            assert!(!expands(k), "{k}");
        }
    }
}
