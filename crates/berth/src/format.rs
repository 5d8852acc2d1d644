//! Output as docker prints it: aligned tables, sizes in decimal units,
//! "2 hours ago", and `--format` templates.

use std::io::Write;

/// `4.26MB`: decimal units, three significant digits, as docker shows sizes.
pub fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        return format!("{bytes}B");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let digits: String = s
        .chars()
        .take(if s.contains('.') { 4 } else { 3 })
        .collect();
    format!("{}{}", digits.trim_end_matches('.'), units[u])
}

/// How long ago an RFC 3339 time was: "2 hours ago".
pub fn since(t: Option<&str>) -> String {
    let Some(t) = t.and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return "N/A".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    let (n, unit) = match secs {
        s if s < 60 => {
            return if s < 2 {
                "Less than a second ago".into()
            } else {
                format!("{s} seconds ago")
            }
        }
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 365 * 2 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    if n == 1 {
        format!(
            "{} {unit} ago",
            if unit == "hour" { "About an" } else { "1" }
        )
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Replaces `{{.Field}}` (and `{{ .Field }}`) with the field's value; `\t`
/// becomes a tab.
pub fn template(fmt: &str, fields: &[(&str, String)]) -> String {
    let mut out = fmt.replace("\\t", "\t").replace("table ", "");
    for (k, v) in fields {
        out = out
            .replace(&format!("{{{{.{k}}}}}"), v)
            .replace(&format!("{{{{ .{k} }}}}"), v);
    }
    out
}

/// Go's text/template as `docker inspect --format` uses it, the common
/// part: `{{.A.B}}`, `{{json .A}}`, `{{index .A "key"}}`, `{{lower .A}}`,
/// `{{upper .A}}`; strings print bare, other values as JSON, `<no value>`
/// for a missing field.
pub fn go_template(fmt: &str, v: &serde_json::Value) -> String {
    let fmt = fmt.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = fmt.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let action = rest[start + 2..start + end].trim();
        out.push_str(&eval_action(action, v));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup<'a>(path: &str, v: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
    let path = path.strip_prefix('.')?;
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn plain(v: Option<&serde_json::Value>) -> String {
    match v {
        None => "<no value>".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) => "<nil>".into(),
        Some(serde_json::Value::Array(a)) => format!(
            "[{}]",
            a.iter()
                .map(|x| plain(Some(x)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(serde_json::Value::Object(m)) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, x)| format!("{k}:{}", plain(Some(x))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(other) => other.to_string(),
    }
}

fn eval_action(action: &str, v: &serde_json::Value) -> String {
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        ["json", path] => lookup(path, v).map_or("null".into(), |x| x.to_string()),
        ["index", path, key] => {
            let key = key.trim_matches('"');
            plain(lookup(path, v).and_then(|x| x.get(key)))
        }
        ["lower", path] => plain(lookup(path, v)).to_lowercase(),
        ["upper", path] => plain(lookup(path, v)).to_uppercase(),
        [path] => plain(lookup(path, v)),
        _ => format!("<unsupported template action {action:?}>"),
    }
}

/// `*` and `?` wildcards (a reference filter).
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// An aligned table: columns three spaces apart, as docker prints them.
pub fn table(header: &[&str], rows: &[Vec<String>], out: &mut impl Write) -> std::io::Result<()> {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>, out: &mut dyn Write| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = width[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(header.to_vec(), out)?;
    for r in rows {
        line(r.iter().map(String::as_str).collect(), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(512), "512B");
        assert_eq!(size(4_261_412), "4.26MB");
        assert_eq!(size(1_000_000), "1MB");
        assert_eq!(size(12_345_678_901), "12.3GB");
    }

    #[test]
    fn templates_and_globs() {
        let f = [
            ("Repository", "busybox".to_string()),
            ("Tag", "latest".to_string()),
        ];
        assert_eq!(template("{{.Repository}}:{{ .Tag }}", &f), "busybox:latest");
        assert!(glob("busy*", "busybox"));
        assert!(!glob("busy?", "busybox"));
        let v = serde_json::json!({"State": {"Status": "running", "Pid": 7}, "Config": {"Labels": {"a": "b"}}});
        assert_eq!(
            go_template("{{.State.Status}} {{ .State.Pid }}", &v),
            "running 7"
        );
        assert_eq!(go_template("{{json .Config.Labels}}", &v), r#"{"a":"b"}"#);
        assert_eq!(go_template(r#"{{index .Config.Labels "a"}}"#, &v), "b");
        assert_eq!(go_template("{{.Nope}}", &v), "<no value>");
    }
}
