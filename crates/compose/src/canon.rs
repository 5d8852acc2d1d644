//! One file's services in the long forms of the specification, so that
//! files merge key by key and the rest of compose reads one shape:
//! `environment`, `labels`, `sysctls` and `depends_on` as mappings,
//! `ports`, `volumes`, `secrets` and `configs` as lists of mappings,
//! `networks` as a mapping, `command` and `entrypoint` as lists of words,
//! `build` as a mapping, single strings of `dns`, `env_file`, `tmpfs` as
//! lists.

use serde_json::{json, Map, Value};

/// Rewrites every service of the (validated) file `doc` in place; errors
/// are `(path, problem)`.
pub fn services(doc: &mut Value) -> Result<(), (String, String)> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (name, svc) in services.iter_mut() {
        let Some(svc) = svc.as_object_mut() else {
            continue;
        };
        service(svc).map_err(|(key, problem)| (format!("services.{name}.{key}"), problem))?;
    }
    Ok(())
}

fn service(s: &mut Map<String, Value>) -> Result<(), (String, String)> {
    for key in ["environment", "labels", "sysctls", "annotations"] {
        if let Some(v) = s.get_mut(key) {
            *v = key_values(v, key == "environment");
        }
    }
    if let Some(v) = s.get_mut("build") {
        if let Value::String(ctx) = v {
            *v = json!({"context": ctx});
        }
        if let Some(args) = v.get_mut("args") {
            *args = key_values(args, true);
        }
        if let Some(labels) = v.get_mut("labels") {
            *labels = key_values(labels, false);
        }
    }
    for key in ["command", "entrypoint"] {
        if let Some(Value::String(line)) = s.get(key) {
            let words = crate::shell::split(line).map_err(|e| (key.to_string(), e))?;
            s.insert(key.into(), json!(words));
        }
    }
    if let Some(Some(test)) = s.get_mut("healthcheck").map(|h| h.get_mut("test")) {
        if let Value::String(line) = test {
            *test = json!(["CMD-SHELL", line]);
        }
    }
    for key in ["dns", "dns_search", "env_file", "tmpfs", "dns_opt"] {
        if let Some(Value::String(one)) = s.get(key) {
            s.insert(key.into(), json!([one]));
        }
    }
    if let Some(Value::Array(e)) = s.get_mut("expose") {
        for p in e.iter_mut() {
            *p = Value::String(scalar_text(p));
        }
    }
    if let Some(v) = s.get_mut("extra_hosts") {
        if let Value::Object(m) = v {
            let list: Vec<String> = m
                .iter()
                .map(|(h, ip)| format!("{h}:{}", scalar_text(ip)))
                .collect();
            *v = json!(list);
        } else if let Value::Array(a) = v {
            for h in a.iter_mut() {
                if let Value::String(t) = h {
                    // `host=ip` is the other spelling of `host:ip`.
                    if let Some((host, ip)) = t.split_once('=') {
                        *t = format!("{host}:{ip}");
                    }
                }
            }
        }
    }
    if let Some(Value::Array(list)) = s.get("depends_on") {
        let mut m = Map::new();
        for d in list {
            m.insert(
                scalar_text(d),
                json!({"condition": "service_started", "required": true}),
            );
        }
        s.insert("depends_on".into(), Value::Object(m));
    } else if let Some(Value::Object(m)) = s.get_mut("depends_on") {
        for d in m.values_mut() {
            if let Value::Object(d) = d {
                d.entry("condition")
                    .or_insert_with(|| json!("service_started"));
                d.entry("required").or_insert_with(|| json!(true));
            }
        }
    }
    if let Some(Value::Array(list)) = s.get("networks") {
        let m: Map<String, Value> = list.iter().map(|n| (scalar_text(n), Value::Null)).collect();
        s.insert("networks".into(), Value::Object(m));
    }
    if let Some(Value::Array(list)) = s.get("ports") {
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            match p {
                Value::Object(_) => {
                    let mut p = p.clone();
                    if let Some(published) = p.get_mut("published") {
                        *published = Value::String(scalar_text(published));
                    }
                    if let Some(m) = p.as_object_mut() {
                        m.entry("protocol").or_insert_with(|| json!("tcp"));
                        m.entry("mode").or_insert_with(|| json!("ingress"));
                    }
                    out.push(p);
                }
                other => {
                    out.extend(port(&scalar_text(other)).map_err(|e| (format!("ports.{i}"), e))?)
                }
            }
        }
        s.insert("ports".into(), json!(out));
    }
    if let Some(Value::Array(list)) = s.get("volumes") {
        let mut out = Vec::new();
        for (i, v) in list.iter().enumerate() {
            match v {
                Value::String(short) => {
                    out.push(volume(short).map_err(|e| (format!("volumes.{i}"), e))?)
                }
                other => out.push(other.clone()),
            }
        }
        s.insert("volumes".into(), json!(out));
    }
    for key in ["secrets", "configs"] {
        if let Some(Value::Array(list)) = s.get_mut(key) {
            for item in list.iter_mut() {
                if let Value::String(src) = item {
                    *item = json!({"source": src});
                }
            }
        }
    }
    Ok(())
}

/// A number, bool or string as its text (`8080`, `true`).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `KEY=VALUE` lists and mappings as a mapping of strings; a bare `KEY`
/// in an environment is null (taken from the user's environment later).
fn key_values(v: &Value, environment: bool) -> Value {
    let mut m = Map::new();
    match v {
        Value::Array(list) => {
            for item in list {
                let text = scalar_text(item);
                match text.split_once('=') {
                    Some((k, val)) => m.insert(k.to_string(), json!(val)),
                    None if environment => m.insert(text, Value::Null),
                    None => m.insert(text, json!("")),
                };
            }
        }
        Value::Object(o) => {
            for (k, val) in o {
                let val = match val {
                    Value::Null if environment => Value::Null,
                    other => Value::String(scalar_text(other)),
                };
                m.insert(k.clone(), val);
            }
        }
        other => return other.clone(),
    }
    Value::Object(m)
}

/// `[IP:][HOST[-END]:]CONTAINER[-END][/PROTO]`: one long-form entry per
/// container port.
fn port(spec: &str) -> Result<Vec<Value>, String> {
    let bad = || format!("invalid port {spec:?}: want [IP:][HOST:]CONTAINER[/PROTOCOL]");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (spec, "tcp"),
    };
    if !["tcp", "udp", "sctp"].contains(&proto) {
        return Err(bad());
    }
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (target, published, ip) = match parts.as_slice() {
        [t] => (*t, "", ""),
        [t, p] => (*t, *p, ""),
        [t, p, ip] => (*t, *p, *ip),
        _ => return Err(bad()),
    };
    let range = |r: &str| -> Result<(u32, u32), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a == 0 || a > 65535 || b < a || b > 65535 {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (t0, t1) = range(target)?;
    let host = if published.is_empty() {
        None
    } else {
        Some(range(published)?)
    };
    let mut out = Vec::new();
    for (i, t) in (t0..=t1).enumerate() {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if !ip.is_empty() {
            m.insert("host_ip".into(), json!(ip.trim_matches(['[', ']'])));
        }
        m.insert("target".into(), json!(t));
        match host {
            Some((h0, h1)) if h1 - h0 == t1 - t0 => {
                m.insert(
                    "published".into(),
                    json!((h0 + u32::try_from(i).unwrap_or(0)).to_string()),
                );
            }
            // A host range for one container port: any port of the range.
            Some((h0, h1)) if t0 == t1 => {
                m.insert("published".into(), json!(format!("{h0}-{h1}")));
            }
            Some(_) => return Err(bad()),
            None => {}
        }
        m.insert("protocol".into(), json!(proto));
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// `SOURCE:TARGET[:MODE]` or `TARGET` (an anonymous volume).
fn volume(spec: &str) -> Result<Value, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => {
            return Err(format!(
                "invalid volume {spec:?}: want [SOURCE:]TARGET[:MODE]"
            ))
        }
    };
    if target.is_empty() || !target.starts_with('/') {
        return Err(format!(
            "invalid volume {spec:?}: the target must be an absolute path"
        ));
    }
    let bind = source.starts_with(['.', '/', '~']);
    let mut m = Map::new();
    m.insert("type".into(), json!(if bind { "bind" } else { "volume" }));
    if !source.is_empty() {
        m.insert("source".into(), json!(source));
    }
    m.insert("target".into(), json!(target));
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => {
                m.insert("read_only".into(), json!(true));
            }
            "rw" => {}
            "nocopy" if !bind => {
                m.insert("volume".into(), json!({"nocopy": true}));
            }
            "z" | "Z" | "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate"
                if bind =>
            {
                let b = m.entry("bind").or_insert_with(|| json!({}));
                if opt.eq_ignore_ascii_case("z") {
                    b["selinux"] = json!(opt);
                } else {
                    b["propagation"] = json!(opt);
                }
            }
            _ => return Err(format!("invalid volume {spec:?}: unknown mode {opt:?}")),
        }
    }
    if bind {
        let b = m.entry("bind").or_insert_with(|| json!({}));
        b["create_host_path"] = json!(true);
    } else if !m.contains_key("volume") {
        m.insert("volume".into(), json!({}));
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_become_long() {
        let mut doc = json!({"services": {"w": {
            "environment": ["A=1", "B", "C=x=y"],
            "labels": {"n": 1},
            "command": "sh -c 'echo hi'",
            "ports": ["8080:80", "127.0.0.1:9000-9001:90-91/udp", 53, {"target": 5, "published": 6}],
            "volumes": ["data:/d:ro", "./here:/h", "/anon"],
            "depends_on": ["db"],
            "networks": ["front"],
            "healthcheck": {"test": "true"},
            "secrets": ["s"],
            "extra_hosts": {"h": "1.2.3.4"},
            "build": "./ctx",
        }}});
        services(&mut doc).unwrap();
        let w = &doc["services"]["w"];
        assert_eq!(w["environment"], json!({"A": "1", "B": null, "C": "x=y"}));
        assert_eq!(w["labels"], json!({"n": "1"}));
        assert_eq!(w["command"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(
            w["ports"][0],
            json!({"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"})
        );
        assert_eq!(
            w["ports"][2],
            json!({"mode": "ingress", "host_ip": "127.0.0.1", "target": 91, "published": "9001", "protocol": "udp"})
        );
        assert_eq!(
            w["ports"][3],
            json!({"mode": "ingress", "target": 53, "protocol": "tcp"})
        );
        assert_eq!(
            w["ports"][4],
            json!({"target": 5, "published": "6", "protocol": "tcp", "mode": "ingress"})
        );
        assert_eq!(
            w["volumes"][0],
            json!({"type": "volume", "source": "data", "target": "/d", "read_only": true, "volume": {}})
        );
        assert_eq!(
            w["volumes"][1],
            json!({"type": "bind", "source": "./here", "target": "/h", "bind": {"create_host_path": true}})
        );
        assert_eq!(
            w["volumes"][2],
            json!({"type": "volume", "target": "/anon", "volume": {}})
        );
        assert_eq!(
            w["depends_on"],
            json!({"db": {"condition": "service_started", "required": true}})
        );
        assert_eq!(w["networks"], json!({"front": null}));
        assert_eq!(w["healthcheck"]["test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(w["secrets"], json!([{"source": "s"}]));
        assert_eq!(w["extra_hosts"], json!(["h:1.2.3.4"]));
        assert_eq!(w["build"], json!({"context": "./ctx"}));
    }

    #[test]
    fn bad_short_forms_name_their_path() {
        let mut doc = json!({"services": {"w": {"ports": ["80", "x:80"]}}});
        let (path, problem) = services(&mut doc).unwrap_err();
        assert_eq!(path, "services.w.ports.1");
        assert!(problem.contains("\"x:80\""), "{problem}");
        let mut doc = json!({"services": {"w": {"volumes": ["a:rel"]}}});
        assert_eq!(services(&mut doc).unwrap_err().0, "services.w.volumes.0");
    }
}
