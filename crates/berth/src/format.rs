//! Output as docker prints it (sizes in units.rs, times in times.rs), and
//! `--format` through one Go template engine
//! (berth-template): lists (`ps`, `images`, ... with `table`, headers and
//! Go's tabwriter) and inspections (typed first, raw JSON as the fallback).

use std::io::Write;
use std::rc::Rc;

use berth_template::tabwriter::{align, DOCKER_MIN_WIDTH, DOCKER_PADDING};
use berth_template::{Struct, Template, Value};

// Sizes and times are printed by every listing: reached through here too.
pub use crate::times::{go_time, go_time_exact, rfc3339_seconds, since};
pub use crate::units::{binary_size, human_size, size};

/// JSON as docker's inspect prints it: indented four spaces (its client's
/// `json.Indent(.., "", "    ")`), not serde's two.
pub fn inspect_json(v: &serde_json::Value) -> serde_json::Result<String> {
    indented_json(v, "    ")
}

/// JSON indented with `unit` per level (Go's `json.MarshalIndent` or
/// `json.Indent` with that indent). Strings in JSON hold no raw newline,
/// so each line's leading spaces are serde's two per level.
pub fn indented_json(v: &serde_json::Value, unit: &str) -> serde_json::Result<String> {
    let two = serde_json::to_string_pretty(v)?;
    let mut out = String::with_capacity(two.len() * 5 / 4);
    for (n, line) in two.lines().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let body = line.trim_start_matches(' ');
        for _ in 0..(line.len() - body.len()) / 2 {
            out.push_str(unit);
        }
        out.push_str(body);
    }
    Ok(out)
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

/// A template failure, worded and coded as docker reports it; printed as
/// it is (no "Error: " before it).
#[derive(Debug)]
pub struct TemplateFailure {
    pub message: String,
    pub code: u8,
}

impl std::fmt::Display for TemplateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateFailure {}

pub(crate) fn failure(message: String, code: u8) -> anyhow::Error {
    TemplateFailure { message, code }.into()
}

/// A list context as docker's formatter builds it: a struct (named as Go
/// names its type, for errors) whose fields are methods, computed only if
/// the template uses them. Fields are given in the order `{{json .}}`
/// prints them (docker's: sorted by name; its MarshalJSON escapes `<>&`,
/// so a dangling image's `<none>` is `\u003cnone\u003e`).
pub fn context(type_name: &str, fields: Vec<(&str, Value)>) -> Value {
    go_struct(type_name, fields, true, Vec::new())
}

/// A Go struct value: fields in declaration order, whether its JSON
/// escapes `<>&`, and the json tags of the fields whose key or presence
/// differs from their name.
pub fn go_struct(
    type_name: &str,
    fields: Vec<(&str, Value)>,
    json_escapes_html: bool,
    json_tags: Vec<(&'static str, &'static str)>,
) -> Value {
    go_struct_with_json(type_name, fields, json_escapes_html, json_tags, Vec::new())
}

/// [`context`] of a type whose MarshalJSON writes some fields otherwise
/// than a template reads them (`json_values`: those fields' JSON values).
pub fn context_with_json(
    type_name: &str,
    fields: Vec<(&str, Value)>,
    json_values: Vec<(&'static str, Value)>,
) -> Value {
    go_struct_with_json(type_name, fields, true, Vec::new(), json_values)
}

fn go_struct_with_json(
    type_name: &str,
    fields: Vec<(&str, Value)>,
    json_escapes_html: bool,
    json_tags: Vec<(&'static str, &'static str)>,
    json_values: Vec<(&'static str, Value)>,
) -> Value {
    Value::Struct(Rc::new(Struct {
        type_name: type_name.to_string(),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        json_escapes_html,
        json_tags,
        json_values,
    }))
}

/// Docker's `formatter.Ellipsis` for the columns it truncates: `s` if
/// it has at most `width` characters, else its first `width - 1` and `…`.
/// (Docker counts the display width of wide characters; berth counts
/// characters.)
pub fn ellipsis(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let kept: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// A list row's `.Label "k"` method and `.Labels` ("k=v,k2=v2"), as
/// docker's container, volume and network contexts have them.
pub fn label_fields(
    labels: &std::collections::BTreeMap<String, String>,
) -> [(&'static str, Value); 2] {
    let owned = labels.clone();
    let joined = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    [
        (
            "Label",
            Value::method(move |args: &[Value]| match args {
                [Value::String(k)] => Ok(Value::from(owned.get(&**k).map_or("", String::as_str))),
                _ => Err(format!(
                    "wrong number of args for Label: want 1 got {}",
                    args.len()
                )),
            }),
        ),
        ("Labels", Value::from(joined)),
    ]
}

/// A table's header context: each field's column title, and `.Label "k"`
/// (docker's SubHeaderContext.Label: the key's last dotted part, `-` and
/// `_` as spaces).
pub fn header(titles: &[(&str, &str)]) -> Value {
    let mut fields: Vec<(String, Value)> = titles
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    fields.push((
        "Label".into(),
        Value::method(|args: &[Value]| match args {
            [Value::String(name)] => {
                let last = name.rsplit('.').next().unwrap_or(name);
                Ok(Value::from(last.replace(['-', '_'], " ")))
            }
            _ => Err("wrong number of args for Label: want 1".into()),
        }),
    ));
    Value::Struct(Rc::new(Struct {
        type_name: "formatter.SubHeaderContext".into(),
        fields,
        json_escapes_html: false,
        json_tags: Vec::new(),
        json_values: Vec::new(),
    }))
}

/// A list command's `--format` (docker's formatter.Context): `table ...`
/// gets a header row and Go's tabwriter; plain text one line per item.
#[derive(Debug)]
pub struct ListFormat {
    table: bool,
    tmpl: Template,
    header_tmpl: Template,
}

impl ListFormat {
    /// `format` as given (`None`: the command's default table); `table`
    /// alone is the default table too. Errors as docker words them:
    /// "template parsing error: ...", exit 1.
    pub fn new(format: Option<&str>, default_table: &str) -> anyhow::Result<Self> {
        let format = match format {
            None | Some("") | Some("table") => default_table,
            // Docker 23's shorthand; 20.10 printed the word.
            Some("json") => "{{json .}}",
            Some(f) => f,
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let parse = |header: bool| {
            Template::parse(&body)
                .map(|t| t.header_functions(header))
                .map_err(|e| failure(format!("template parsing error: {e}"), 1))
        };
        Ok(ListFormat {
            table,
            tmpl: parse(false)?,
            header_tmpl: parse(true)?,
        })
    }

    /// Whether the format reads field `name` of a row (what is not read
    /// need not be computed).
    pub fn reads_field(&self, name: &str) -> bool {
        self.tmpl.reads_field(name)
    }

    /// Writes one line per row, with the header (from `header`) first in
    /// table mode; nothing is written if a row fails.
    pub fn write(
        &self,
        header: &Value,
        rows: impl IntoIterator<Item = Value>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let mut body = String::new();
        for row in rows {
            self.tmpl
                .execute_into(&row, &mut body)
                .map_err(|e| failure(format!("template parsing error: {e}"), 1))?;
            body.push('\n');
        }
        if !self.table {
            out.write_all(body.as_bytes())?;
            return Ok(());
        }
        // Docker ignores a header that fails (a function meant for a row's
        // values): the title is what was written before the failure.
        let mut text = String::new();
        let _ = self.header_tmpl.execute_into(header, &mut text);
        text.push('\n');
        text.push_str(&body);
        out.write_all(align(&text, DOCKER_MIN_WIDTH, DOCKER_PADDING).as_bytes())?;
        Ok(())
    }
}

/// The order of docker's client for names it sorts (`network ls`,
/// `volume ls`): sortorder.NaturalLess, where runs of digits compare as
/// numbers (`net9` before `net10`), digits before other bytes, and of
/// equal numbers the one with fewer leading zeros first.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz_a, nz_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let by_value = (i - nz_a)
            .cmp(&(j - nz_b))
            .then_with(|| a[nz_a..i].cmp(&b[nz_b..j]))
            .then_with(|| nz_a.cmp(&nz_b));
        if by_value != Ordering::Equal {
            return by_value;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// Which objects of docker's inspect output are Go maps (missing keys are
/// `<no value>`, ranged in key order); every other object is a struct.
fn inspect_map(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    match last {
        "Labels" | "ExposedPorts" | "Volumes" | "Networks" | "Ports" | "PortBindings"
        | "Sysctls" | "Tmpfs" | "StorageOpt" | "Data" | "Options" | "Containers" | "DriverOpts"
        | "AuxiliaryAddresses" | "Annotations" | "Status" | "Attributes" | "Details" => true,
        "Config" => path.ends_with("LogConfig.Config"),
        _ => false,
    }
}

/// Go's declaration order of the structs a template may print whole
/// (`{{.State}}` prints the fields' values in that order); JSON objects
/// reach us with their keys sorted.
fn declared_order(path: &str) -> &'static [&'static str] {
    match path {
        "State" => &[
            "Status",
            "Running",
            "Paused",
            "Restarting",
            "OOMKilled",
            "Dead",
            "Pid",
            "ExitCode",
            "Error",
            "StartedAt",
            "FinishedAt",
            "Health",
        ],
        "IPAM" => &["Driver", "Options", "Config"],
        _ => &[],
    }
}

fn reorder(v: &mut Value, path: &str) {
    if let Value::List(items, _) = v {
        // A list's elements: the path says `[]` (`Mounts[]`).
        let elem = format!("{path}[]");
        for x in Rc::make_mut(items).iter_mut() {
            reorder(x, &elem);
        }
        return;
    }
    let Value::Struct(s) = v else { return };
    let s = Rc::make_mut(s);
    for (k, zero) in omitted_fields(path) {
        if s.field(k).is_none() {
            s.fields.push((k.to_string(), zero));
            // Read by a template, but `json` leaves it out as docker's does.
            s.json_tags.push((k, ",omitempty"));
        }
    }
    let order = declared_order(path);
    if !order.is_empty() {
        s.fields
            .sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(order.len()));
    }
    for (k, x) in &mut s.fields {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        reorder(x, &p);
    }
}

/// JSON as docker's typed inspect value holds it (structs and maps).
pub fn typed(v: &serde_json::Value, type_name: &str) -> Value {
    let mut t = Value::from_json_typed(v, &inspect_map);
    if let Value::Struct(s) = &mut t {
        let s = Rc::make_mut(s);
        s.type_name = type_name.to_string();
        // Pointers docker's JSON leaves out without `inspect --size`.
        if type_name == "*types.ContainerJSON" {
            for k in ["SizeRw", "SizeRootFs"] {
                if s.field(k).is_none() {
                    s.fields.push((k.to_string(), Value::Nil));
                }
            }
        }
        // An image's omitempty strings, read as "" when it has none.
        if type_name == "types.ImageInspect" {
            for k in ["Variant", "OsVersion"] {
                if s.field(k).is_none() {
                    s.fields.push((k.to_string(), Value::from("")));
                    s.json_tags.push((k, ",omitempty"));
                }
            }
        }
    }
    reorder(&mut t, "");
    t
}

/// Fields of docker's structs that its JSON leaves out when empty
/// (`omitempty`) but a template still reads, with Go's zero value:
/// `{{.State.Health}}` is `<nil>` without a healthcheck, not an error.
fn omitted_fields(path: &str) -> Vec<(&'static str, Value)> {
    let nil_map = || Value::from_json_typed(&serde_json::Value::Null, &|_| true);
    match path {
        "State" => vec![("Health", Value::Nil)],
        "Config" | "ContainerConfig" => vec![
            ("ExposedPorts", nil_map()),
            ("Healthcheck", Value::Nil),
            ("ArgsEscaped", Value::Bool(false)),
            ("NetworkDisabled", Value::Bool(false)),
            ("MacAddress", Value::from("")),
            ("StopSignal", Value::from("")),
            ("StopTimeout", Value::Nil),
            (
                "Shell",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::String),
            ),
        ],
        // docker's IPAMConfig: all but the subnet are omitempty.
        "IPAM.Config[]" => vec![
            ("IPRange", Value::from("")),
            ("Gateway", Value::from("")),
            ("AuxiliaryAddresses", nil_map()),
        ],
        // A MountPoint's Name and Driver are a volume's only.
        "Mounts[]" => vec![("Name", Value::from("")), ("Driver", Value::from(""))],
        "HostConfig" => vec![
            ("Tmpfs", nil_map()),
            ("Sysctls", nil_map()),
            (
                "Mounts",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
        ],
        _ => Vec::new(),
    }
}

/// `inspect -f` (docker's TemplateInspector): each object through the
/// template, typed first, then, if that fails and docker has the raw JSON,
/// over the raw JSON with missing keys as errors; output only at the end
/// (a blank line if there is none), errors after it, exit 1.
#[derive(Debug)]
pub struct Inspector {
    tmpl: Template,
    raw: Template,
    out: String,
    errors: Vec<String>,
}

impl Inspector {
    /// A template that does not parse: docker's exit 64.
    pub fn new(format: &str) -> anyhow::Result<Self> {
        let tmpl = Template::parse(format)
            .map_err(|e| failure(format!("template parsing error: {e}"), 64))?;
        let raw = Template::parse(format)
            .map_err(|e| failure(format!("template parsing error: {e}"), 64))?
            .missing_key_error(true);
        Ok(Inspector {
            tmpl,
            raw,
            out: String::new(),
            errors: Vec::new(),
        })
    }

    /// One object: `json` is what `inspect` without `-f` prints for it;
    /// `type_name` Go's name of its type; `raw_fallback` whether docker
    /// retries over the raw JSON (it does for containers, images and
    /// networks, not volumes).
    pub fn add(&mut self, json: &serde_json::Value, type_name: &str, raw_fallback: bool) {
        let mut buf = String::new();
        let r = match self.tmpl.execute_into(&typed(json, type_name), &mut buf) {
            Ok(()) => Ok(()),
            Err(_) if raw_fallback => {
                buf.clear();
                self.raw.execute_into(&Value::from_json(json), &mut buf)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => {
                self.out.push_str(&buf);
                self.out.push('\n');
            }
            Err(e) => self.errors.push(format!("template parsing error: {e}")),
        }
    }

    /// An object that could not be found or read.
    pub fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Prints what was gathered; the exit code.
    pub fn finish(self, out: &mut impl Write) -> anyhow::Result<i32> {
        if self.out.is_empty() {
            out.write_all(b"\n")?;
        } else {
            out.write_all(self.out.as_bytes())?;
        }
        out.flush()?;
        if self.errors.is_empty() {
            return Ok(0);
        }
        eprintln!("{}", self.errors.join("\n"));
        Ok(1)
    }
}

/// An object an inspect command found: its JSON, Go's name of its type
/// and whether docker retries a template over the raw JSON (see
/// [`Inspector::add`]).
pub struct Found {
    pub json: serde_json::Value,
    pub type_name: &'static str,
    pub raw_fallback: bool,
}

/// Docker's inspect of `names`, each looked up by `find` (an error is the
/// line docker prints for it): through the template `format` if given,
/// else as one JSON array. Exit 1 if any was not found.
pub fn inspect_each(
    names: &[String],
    format: Option<&str>,
    mut find: impl FnMut(&str) -> Result<Found, String>,
) -> anyhow::Result<i32> {
    let mut inspector = format.map(Inspector::new).transpose()?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match (find(n), inspector.as_mut()) {
            (Ok(f), Some(i)) => i.add(&f.json, f.type_name, f.raw_fallback),
            (Ok(f), None) => out.push(f.json),
            (Err(e), Some(i)) => i.error(e),
            (Err(e), None) => errors.push(e),
        }
    }
    if let Some(i) = inspector {
        return i.finish(&mut std::io::stdout().lock());
    }
    println!("{}", inspect_json(&serde_json::Value::Array(out))?);
    if errors.is_empty() {
        return Ok(0);
    }
    eprintln!("{}", errors.join("\n"));
    Ok(1)
}

/// One object through a template with no fallback and errors as docker's
/// `version` reports them (the template named, exit 1; 64 if it does not
/// parse).
pub fn render_named(format: &str, name: &str, v: &Value) -> anyhow::Result<String> {
    let t = Template::parse_named(format, name)
        .map_err(|e| failure(format!("template parsing error: {e}"), 64))?;
    let mut out = String::new();
    match t.execute_into(v, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => {
            // Docker has written what came before the failure.
            println!("{out}");
            Err(failure(e.to_string(), 1))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inspect_json_is_indented_four_spaces_as_docker_s() {
        let v = serde_json::json!([{"A": {"B": [1, "x  y"]}, "C": ""}]);
        assert_eq!(
            super::inspect_json(&v).unwrap(),
            "[\n    {\n        \"A\": {\n            \"B\": [\n                1,\n                \"x  y\"\n            ]\n        },\n        \"C\": \"\"\n    }\n]"
        );
    }

    #[test]
    fn names_sort_as_dockers_client_sorts_them() {
        let mut v = vec![
            "fd-10", "fd-9", "fd-2a", "fd-2", "Fd-1", "fd-01", "fd-001", "fd-1",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["Fd-1", "fd-1", "fd-01", "fd-001", "fd-2", "fd-2a", "fd-9", "fd-10"]
        );
    }

    use super::*;

    #[test]
    fn globs() {
        assert!(glob("busy*", "busybox"));
        assert!(!glob("busy?", "busybox"));
    }

    #[test]
    fn tables_have_headers_and_docker_padding() {
        let header = header(&[("Name", "NAME"), ("Size", "SIZE")]);
        let rows = ["a", "bbbbbbbbbbbbb"].map(|n| {
            context(
                "*test.ctx",
                vec![("Name", Value::from(n)), ("Size", Value::from("1B"))],
            )
        });
        let f = ListFormat::new(Some(r"table {{.Name}}\t{{.Size}}"), "").unwrap();
        let mut out = Vec::new();
        f.write(&header, rows.clone(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME            SIZE\na               1B\nbbbbbbbbbbbbb   1B\n"
        );
        // docker's contexts marshal themselves escaping <>&.
        let f = ListFormat::new(Some("{{json .}}"), "").unwrap();
        let mut out = Vec::new();
        let row = context("*test.ctx", vec![("Tag", Value::from("<none>"))]);
        f.write(&header, [row], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"Tag\":\"\\u003cnone\\u003e\"}\n"
        );
        let f = ListFormat::new(Some("{{.Nope}}"), "").unwrap();
        let e = f.write(&header, rows, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template parsing error: template: :1:2: executing \"\" at <.Nope>: \
             can't evaluate field Nope in type *test.ctx"
        );
    }
}
