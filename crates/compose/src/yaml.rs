//! A Compose file's YAML as a JSON value: what the schema validates and
//! the rest of the loader works on. Merge keys (`<<: *anchor`) are applied
//! first; keys that are not strings (`80: x`, `true: y`) become their text,
//! as Compose reads them; the tags `!reset` and `!override` of the merge
//! rules are kept as a marker object the merge understands.

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

use crate::error::{Error, Result};

/// The key of the marker object standing for a tagged value.
pub const TAG_KEY: &str = "\u{0}tag";
/// The key of the marker's value.
pub const TAGGED_VALUE: &str = "\u{0}value";

/// Parses `text` (the contents of `file`) into a JSON value.
pub fn parse(file: &str, text: &str) -> Result<Value> {
    let mut y: Yaml = serde_yaml_ng::from_str(text).map_err(|e| Error::Yaml {
        file: file.to_string(),
        problem: one_line(&e.to_string()),
    })?;
    y.apply_merge().map_err(|e| Error::Yaml {
        file: file.to_string(),
        problem: one_line(&e.to_string()),
    })?;
    let v = to_json(y).map_err(|problem| Error::Yaml {
        file: file.to_string(),
        problem,
    })?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(Error::Invalid {
            file: file.to_string(),
            path: "(top level)".into(),
            problem: "a Compose file must be a mapping".into(),
        }),
    }
}

/// Errors of the YAML parser run over several lines: one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_json(y: Yaml) -> std::result::Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(n.to_string()))
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(seq) => {
            Value::Array(seq.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Null => "null".to_string(),
                    other => {
                        return Err(format!(
                            "a mapping key must be a scalar, not {}",
                            serde_yaml_ng::to_string(&other).unwrap_or_default().trim()
                        ))
                    }
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            if tag == "reset" || tag == "override" {
                let mut m = Map::new();
                m.insert(TAG_KEY.into(), Value::String(tag.to_string()));
                m.insert(TAGGED_VALUE.into(), to_json(t.value)?);
                Value::Object(m)
            } else {
                return Err(format!(
                    "unknown YAML tag !{tag} (Compose knows !reset and !override)"
                ));
            }
        }
    })
}

/// The value of a `!reset`/`!override` marker and which it is.
pub fn tagged(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    Some((m.get(TAG_KEY)?.as_str()?, m.get(TAGGED_VALUE)?))
}

/// Removes the markers left where no merge consumed them (a single file):
/// `!reset` drops the key, `!override` keeps its value.
pub fn strip_tags(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let replace = match m.get(&k).and_then(tagged) {
                    Some(("reset", _)) => None,
                    Some((_, inner)) => Some(inner.clone()),
                    None => {
                        if let Some(child) = m.get_mut(&k) {
                            strip_tags(child);
                        }
                        continue;
                    }
                };
                match replace {
                    None => {
                        m.remove(&k);
                    }
                    Some(mut inner) => {
                        strip_tags(&mut inner);
                        m.insert(k, inner);
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_tags),
        _ => {}
    }
}

/// The value as YAML text (`config`).
pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anchors_merge_keys_and_odd_keys_become_json() {
        let v = parse(
            "c.yaml",
            "x-base: &b {image: busybox, init: true}\nservices:\n  a:\n    <<: *b\n    init: false\n    sysctls: {1: x, true: y}\n",
        )
        .unwrap();
        assert_eq!(v["services"]["a"]["image"], "busybox");
        assert_eq!(
            v["services"]["a"]["init"], false,
            "the mapping's own key wins over the merged"
        );
        assert_eq!(
            v["services"]["a"]["sysctls"],
            json!({"1": "x", "true": "y"})
        );
    }

    #[test]
    fn bad_yaml_is_one_line_naming_the_file() {
        let e = parse("bad.yaml", "services:\n  a: [\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.yaml: "), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = parse("list.yaml", "- a\n- b\n").unwrap_err().to_string();
        assert!(e.contains("must be a mapping"), "{e}");
        let e = parse("tag.yaml", "services: !weird {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("!weird"), "{e}");
    }

    #[test]
    fn tags_are_kept_for_the_merge_and_stripped_after() {
        let mut v = parse("t.yaml", "a: !reset []\nb: !override {x: 1}\nc: 2\n").unwrap();
        assert_eq!(tagged(&v["a"]).map(|t| t.0), Some("reset"));
        strip_tags(&mut v);
        assert_eq!(v, json!({"b": {"x": 1}, "c": 2}));
    }
}
