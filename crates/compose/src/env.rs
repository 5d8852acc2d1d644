//! `.env` and `--env-file` (and a service's `env_file`): `KEY=VALUE`
//! lines as Compose reads them. `#` starts a comment line, `export ` is
//! allowed before a key, a value may be single-quoted (literal),
//! double-quoted (`\n`, `\t`, `\"`, `\\` escapes) or bare (trimmed, cut at
//! ` #`); `${VAR}` in a bare or double-quoted value is replaced from what
//! the file set above it, then from `lookup`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads the file at `path`.
pub fn read(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text, lookup)
}

/// Parses `text`, the contents of `file`.
pub fn parse(
    file: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let bad = |problem: String| Error::EnvFile {
            file: file.to_string(),
            line: n + 1,
            problem,
        };
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), v.trim_start()),
            // A bare name: the variable is taken from the environment
            // (for a service's env_file) or left out.
            None => {
                let key = line.trim_end();
                check_key(key).map_err(bad)?;
                if let Some(v) = lookup(key) {
                    vars.insert(key.to_string(), v);
                }
                continue;
            }
        };
        check_key(key).map_err(bad)?;
        let known = |name: &str| vars.get(name).cloned().or_else(|| lookup(name));
        let value = if let Some(rest) = value.strip_prefix('\'') {
            let end = rest
                .find('\'')
                .ok_or_else(|| bad("unterminated single-quoted value".into()))?;
            rest[..end].to_string()
        } else if let Some(rest) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some('r') => out.push('\r'),
                        Some(c @ ('"' | '\\' | '$')) => {
                            if c == '$' {
                                out.push_str("$$");
                            } else {
                                out.push(c);
                            }
                        }
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => out.push('\\'),
                    },
                    c => out.push(c),
                }
            }
            if !closed {
                return Err(bad("unterminated double-quoted value".into()));
            }
            crate::interpolate::string(&out, &known).map_err(bad)?
        } else {
            let bare = match value.find(" #") {
                Some(i) => &value[..i],
                None => value,
            };
            crate::interpolate::string(bare.trim_end(), &known).map_err(bad)?
        };
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

fn check_key(key: &str) -> std::result::Result<(), String> {
    if key.is_empty() || key.chars().any(|c| c.is_whitespace()) {
        return Err(format!("{key:?} is not a variable name (want KEY=VALUE)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn dotenv_lines_as_compose_reads_them() {
        let text = "# comment\n\nA=1\nexport B = two words \nC='lit ${A} # x'\nD=\"q\\n${A}\"\nE=bare # comment\nF=${A}-${HOST_ONLY:-dflt}\nG=\n";
        let v = parse(".env", text, &none).unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "lit ${A} # x", "single quotes are literal");
        assert_eq!(v["D"], "q\n1");
        assert_eq!(v["E"], "bare");
        assert_eq!(v["F"], "1-dflt");
        assert_eq!(v["G"], "");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse("my.env", "A=1\nB C=2\n", &none)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("my.env:2: "), "{e}");
        let e = parse("my.env", "A='open\n", &none).unwrap_err().to_string();
        assert!(e.starts_with("my.env:1: unterminated"), "{e}");
    }
}
