//! Variables in a Compose file's values, as the Compose Specification's
//! interpolation defines them: `$VAR`, `${VAR}`, `${VAR:-default}` (unset
//! or empty), `${VAR-default}` (unset), `${VAR:?message}` and
//! `${VAR?message}` (an error), `${VAR:+alt}` and `${VAR+alt}`, `$$` for
//! a `$`. Defaults may hold variables themselves (`${A:-${B}}`). Only
//! values are interpolated, never keys.

use serde_json::Value;

use crate::error::{Error, Result};

/// Replaces the variables of every string in `v`. An unset variable
/// without a default becomes empty and is named in `unset` (Compose warns
/// of each).
pub fn value(
    file: &str,
    v: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<()> {
    let mut path = Vec::new();
    walk(file, v, &mut path, lookup, unset)
}

fn walk(
    file: &str,
    v: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<()> {
    match v {
        Value::String(s) if s.contains('$') => {
            let mut missing = Vec::new();
            let out = expand(s, lookup, &mut missing).map_err(|problem| Error::Interpolation {
                file: file.to_string(),
                path: path.join("."),
                problem,
            })?;
            for m in missing {
                if !unset.contains(&m) {
                    unset.push(m);
                }
            }
            *s = out;
        }
        Value::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(file, item, path, lookup, unset)?;
                path.pop();
            }
        }
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                // Extension fields (`x-...`) are the user's: left as written.
                if path.is_empty() && k.starts_with("x-") {
                    continue;
                }
                path.push(k.clone());
                walk(file, item, path, lookup, unset)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// One string, unset variables empty (for `.env` values).
pub fn string(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    expand(s, lookup, &mut Vec::new())
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn invalid(s: &str) -> String {
    format!("invalid interpolation format in {s:?}: you may need to escape any $ with another $")
}

fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                // The matching brace, counting nested ones.
                let mut depth = 0;
                let mut end = None;
                for (j, &cj) in chars.iter().enumerate().skip(i + 2) {
                    match cj {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            end = Some(j);
                            break;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| invalid(s))?;
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&braced(&inner, s, lookup, missing)?);
                i = end + 1;
            }
            Some(&n) if is_name_start(n) => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_name(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                match lookup(&name) {
                    Some(v) => out.push_str(&v),
                    None => missing.push(name),
                }
                i = j;
            }
            _ => return Err(invalid(s)),
        }
    }
    Ok(out)
}

fn braced(
    inner: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> std::result::Result<String, String> {
    let name_len = inner
        .char_indices()
        .find(|&(i, c)| !(if i == 0 { is_name_start(c) } else { is_name(c) }))
        .map_or(inner.len(), |(i, _)| i);
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() {
        return Err(invalid(whole));
    }
    let value = lookup(name);
    let (op, arg) = if rest.is_empty() {
        ("", "")
    } else if let Some(op) = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find(|op| rest.starts_with(**op))
    {
        (*op, &rest[op.len()..])
    } else {
        return Err(invalid(whole));
    };
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let sub = |missing: &mut Vec<String>| expand(arg, lookup, missing);
    Ok(match op {
        "" => match value {
            Some(v) => v,
            None => {
                missing.push(name.to_string());
                String::new()
            }
        },
        ":-" if !non_empty => sub(missing)?,
        "-" if !set => sub(missing)?,
        ":?" if !non_empty => return Err(required(name, &sub(missing)?, "missing a value")),
        "?" if !set => return Err(required(name, &sub(missing)?, "unset")),
        ":+" => {
            if non_empty {
                sub(missing)?
            } else {
                String::new()
            }
        }
        "+" => {
            if set {
                sub(missing)?
            } else {
                String::new()
            }
        }
        _ => value.unwrap_or_default(),
    })
}

fn required(name: &str, message: &str, how: &str) -> String {
    if message.is_empty() {
        format!("required variable {name} is {how}")
    } else {
        format!("required variable {name} is {how}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("v".into()),
            "EMPTY" => Some(String::new()),
            "INNER" => Some("in".into()),
            _ => None,
        }
    }

    fn x(s: &str) -> std::result::Result<String, String> {
        string(s, &env)
    }

    #[test]
    fn every_form_of_the_specification() {
        assert_eq!(x("a${SET}b$SET.c").unwrap(), "avbv.c");
        assert_eq!(x("${UNSET:-d} ${EMPTY:-d} ${SET:-d}").unwrap(), "d d v");
        assert_eq!(x("${UNSET-d} [${EMPTY-d}]").unwrap(), "d []");
        assert_eq!(
            x("${SET:+alt} [${EMPTY:+alt}] ${EMPTY+alt} [${UNSET+alt}]").unwrap(),
            "alt [] alt []"
        );
        assert_eq!(x("$$SET $${SET}").unwrap(), "$SET ${SET}");
        assert_eq!(
            x("${UNSET:-${INNER}-x}").unwrap(),
            "in-x",
            "nested defaults"
        );
        assert_eq!(x("${UNSET:-{a}}").unwrap(), "{a}");
        assert_eq!(x("${SET:?not used}").unwrap(), "v");
        assert_eq!(x("[${UNSET}]").unwrap(), "[]");
    }

    #[test]
    fn required_variables_and_bad_forms_are_errors() {
        assert_eq!(
            x("${UNSET:?give it}").unwrap_err(),
            "required variable UNSET is missing a value: give it"
        );
        assert_eq!(
            x("${EMPTY:?}").unwrap_err(),
            "required variable EMPTY is missing a value"
        );
        assert!(x("${EMPTY?x}").is_ok(), "? only refuses unset");
        assert_eq!(
            x("${UNSET?x}").unwrap_err(),
            "required variable UNSET is unset: x"
        );
        for bad in ["${", "${}", "${1A}", "$ x", "a$", "${A B}"] {
            assert!(
                x(bad).unwrap_err().contains("invalid interpolation format"),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_not_keys_with_the_path_in_errors() {
        let mut v = json!({"services": {"w": {"image": "b:${SET}", "labels": {"${SET}": "$$"}}}, "x-raw": "${UNSET:?no}"});
        let mut unset = Vec::new();
        value("c.yaml", &mut v, &env, &mut unset).unwrap();
        assert_eq!(v["services"]["w"]["image"], "b:v");
        assert_eq!(v["services"]["w"]["labels"]["${SET}"], "$");
        let mut v = json!({"services": {"w": {"ports": ["${P:?set P}"]}}});
        let e = value("c.yaml", &mut v, &env, &mut unset)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c.yaml: services.w.ports.0: required variable P is missing a value: set P"
        );
        let mut v = json!({"services": {"w": {"image": "${NOPE}"}}});
        value("c.yaml", &mut v, &env, &mut unset).unwrap();
        assert_eq!(unset, vec!["NOPE"]);
    }
}
