//! Several files as one model, in the Compose Specification's merge rules
//! (its "Merge and override" section), over files already in their long
//! forms (see canon.rs): mappings merge key by key, the later file winning
//! on scalars; sequences append (a string already present is not added
//! twice); `command`, `entrypoint` and `healthcheck.test` are replaced;
//! `ports` merge by host address, target, published port and protocol,
//! `volumes`, `secrets` and `configs` by target; `!reset` removes a key and
//! `!override` replaces its value whole.

use serde_json::{Map, Value};

use crate::yaml::tagged;

/// Merges `over` into `base`.
pub fn files(base: &mut Value, over: Value) {
    merge(base, over, &[]);
}

fn merge(base: &mut Value, over: Value, path: &[&str]) {
    if let Some((tag, inner)) = tagged(&over) {
        *base = if tag == "reset" {
            Value::Null
        } else {
            inner.clone()
        };
        return;
    }
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if let Some(("reset", _)) = tagged(&v) {
                    b.remove(&k);
                    continue;
                }
                let mut child: Vec<&str> = path.to_vec();
                child.push(&k);
                match b.get_mut(&k) {
                    Some(existing) if !replaced(&child) => merge(existing, v, &child),
                    _ => {
                        b.insert(k.clone(), v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            let key = unique_key(path);
            for item in o {
                if let Some(key) = key {
                    let k = key(&item);
                    if let Some(existing) = b.iter_mut().find(|e| key(e) == k) {
                        merge(existing, item, &[]);
                        continue;
                    }
                } else if item.is_string() && b.contains(&item) {
                    continue;
                }
                b.push(item);
            }
        }
        (b, o) => *b = o,
    }
}

/// Keys whose value the later file replaces rather than merges.
fn replaced(path: &[&str]) -> bool {
    matches!(
        path,
        ["services", _, "command" | "entrypoint"] | ["services", _, "healthcheck", "test"]
    )
}

type KeyFn = fn(&Value) -> String;

/// The identity of an entry of a sequence merged by key.
fn unique_key(path: &[&str]) -> Option<KeyFn> {
    match path {
        ["services", _, "ports"] => Some(|p: &Value| {
            format!(
                "{}|{}|{}|{}",
                p["host_ip"].as_str().unwrap_or(""),
                p["target"],
                p["published"].as_str().unwrap_or(""),
                p["protocol"].as_str().unwrap_or("tcp")
            )
        }),
        ["services", _, "volumes"] => {
            Some(|v: &Value| v["target"].as_str().unwrap_or("").to_string())
        }
        ["services", _, "secrets" | "configs"] => Some(|v: &Value| {
            v["target"]
                .as_str()
                .or(v["source"].as_str())
                .unwrap_or("")
                .to_string()
        }),
        _ => None,
    }
}

/// An empty model to merge files into.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(a: Value, b: Value) -> Value {
        let mut m = a;
        files(&mut m, b);
        m
    }

    #[test]
    fn the_specifications_examples() {
        let m = merged(
            json!({"services": {"foo": {"key1": "value1", "key2": "value2", "dns": ["1.1.1.1"], "command": ["echo", "foo"]}}}),
            json!({"services": {"foo": {"key2": "VALUE", "key3": "value3", "dns": ["8.8.8.8", "1.1.1.1"], "command": ["echo", "bar"]}}}),
        );
        assert_eq!(
            m,
            json!({"services": {"foo": {"key1": "value1", "key2": "VALUE", "key3": "value3",
                   "dns": ["1.1.1.1", "8.8.8.8"], "command": ["echo", "bar"]}}})
        );
        let m = merged(
            json!({"services": {"foo": {"volumes": [{"type": "volume", "source": "foo", "target": "/work"}],
                   "healthcheck": {"test": ["CMD", "a", "b"], "retries": 2}}}}),
            json!({"services": {"foo": {"volumes": [{"type": "volume", "source": "bar", "target": "/work"}, {"type": "volume", "target": "/other"}],
                   "healthcheck": {"test": ["CMD", "c"]}}}}),
        );
        assert_eq!(
            m["services"]["foo"]["volumes"],
            json!([{"type": "volume", "source": "bar", "target": "/work"}, {"type": "volume", "target": "/other"}])
        );
        assert_eq!(
            m["services"]["foo"]["healthcheck"],
            json!({"test": ["CMD", "c"], "retries": 2})
        );
    }

    #[test]
    fn ports_merge_by_their_identity_and_reset_override_work() {
        let p = |t: u32, pubd: &str| json!({"target": t, "published": pubd, "protocol": "tcp", "mode": "ingress"});
        let base = json!({"services": {"a": {"ports": [p(80, "8080")], "environment": {"A": "1", "B": "2"}, "labels": {"x": "1"}}}});
        let over = crate::yaml::parse(
            "o.yaml",
            "services:\n  a:\n    ports: [{target: 80, published: '8080', protocol: tcp, mode: host}, {target: 81, published: '8081', protocol: tcp, mode: ingress}]\n    environment: {A: !reset null, C: '3'}\n    labels: !override {y: '2'}\n",
        )
        .unwrap();
        let m = merged(base, over);
        let a = &m["services"]["a"];
        assert_eq!(a["ports"].as_array().unwrap().len(), 2);
        assert_eq!(a["ports"][0]["mode"], "host");
        assert_eq!(a["environment"], json!({"B": "2", "C": "3"}));
        assert_eq!(a["labels"], json!({"y": "2"}));
    }
}
