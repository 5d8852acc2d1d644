//! `extends`: a service built on another, of the same files or of another
//! file (`file:`, relative to the file that names it), the extending
//! service's keys merged over the base's by the merge rules. Chains are
//! followed; a loop is an error naming it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Resolves every `extends` of `model` (merged, in its long forms);
/// `origin` says which file each service came from.
pub fn apply(
    model: &mut Value,
    origin: &BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<()> {
    let names: Vec<String> = model["services"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for name in names {
        if model["services"][&name].get("extends").is_none() {
            continue;
        }
        let file = origin.get(&name).cloned().unwrap_or_default();
        let resolved = resolve(model, &name, &file, lookup, unset, &mut Vec::new())?;
        model["services"][&name] = resolved;
    }
    Ok(())
}

fn resolve(
    model: &Value,
    name: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    chain: &mut Vec<String>,
) -> Result<Value> {
    let key = format!("{file}:{name}");
    let bad = |problem: String| Error::Invalid {
        file: file.to_string(),
        path: format!("services.{name}.extends"),
        problem,
    };
    if chain.contains(&key) {
        chain.push(key);
        return Err(bad(format!("circular extends: {}", chain.join(" -> "))));
    }
    chain.push(key);
    let svc = model["services"]
        .get(name)
        .cloned()
        .ok_or_else(|| bad(format!("no service {name:?} to extend")))?;
    let Some(ext) = svc.get("extends").cloned() else {
        chain.pop();
        return Ok(svc);
    };
    let (base_name, base_file) = match &ext {
        Value::String(s) => (s.clone(), None),
        v => (
            v["service"].as_str().unwrap_or("").to_string(),
            v["file"].as_str().map(String::from),
        ),
    };
    let base = match base_file {
        None => {
            if model["services"].get(&base_name).is_none() {
                return Err(bad(format!(
                    "service {base_name:?} to extend is not defined"
                )));
            }
            resolve(model, &base_name, file, lookup, unset, chain)?
        }
        Some(f) => {
            let dir = Path::new(file).parent().unwrap_or(Path::new("."));
            let path = dir.join(&f);
            let other_file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                file: other_file.clone(),
                source,
            })?;
            let mut doc = crate::yaml::parse(&other_file, &text)?;
            crate::interpolate::value(&other_file, &mut doc, lookup, unset)?;
            crate::yaml::strip_tags(&mut doc);
            crate::schema::validate(&other_file, &doc)?;
            crate::canon::services(&mut doc).map_err(|(path, problem)| Error::Invalid {
                file: other_file.clone(),
                path,
                problem,
            })?;
            if doc["services"].get(&base_name).is_none() {
                return Err(bad(format!("{other_file} has no service {base_name:?}")));
            }
            resolve(&doc, &base_name, &other_file, lookup, unset, chain)?
        }
    };
    chain.pop();
    let mut merged = serde_json::json!({"services": {"x": base}});
    let mut own = svc;
    if let Some(m) = own.as_object_mut() {
        m.remove("extends");
    }
    crate::merge::files(&mut merged, serde_json::json!({"services": {"x": own}}));
    let mut out = merged["services"]["x"].take();
    // What only makes sense for one service is not inherited.
    if let Some(m) = out.as_object_mut() {
        if model["services"][name].get("depends_on").is_none() {
            m.remove("depends_on");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_extends_another_and_loops_are_named() {
        let mut m = json!({"services": {
            "base": {"image": "busybox", "environment": {"A": "1"}, "command": ["a"], "depends_on": {"x": {}}},
            "mid": {"extends": {"service": "base"}, "environment": {"B": "2"}},
            "top": {"extends": "mid", "command": ["t"]},
            "x": {"image": "busybox"},
        }});
        apply(&mut m, &BTreeMap::new(), &|_| None, &mut Vec::new()).unwrap();
        assert_eq!(
            m["services"]["top"]["environment"],
            json!({"A": "1", "B": "2"})
        );
        assert_eq!(m["services"]["top"]["command"], json!(["t"]));
        assert_eq!(m["services"]["top"]["image"], "busybox");
        assert!(m["services"]["top"].get("extends").is_none());
        assert!(
            m["services"]["top"].get("depends_on").is_none(),
            "depends_on is not inherited"
        );
        let mut m = json!({"services": {"a": {"extends": "b"}, "b": {"extends": "a"}}});
        let e = apply(&mut m, &BTreeMap::new(), &|_| None, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("circular extends"), "{e}");
    }
}
