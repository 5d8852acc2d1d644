//! The data a template walks: Go's dynamic values as far as docker's
//! templates meet them. Structs and maps are told apart because Go treats
//! them differently: an unknown field of a struct is an error, a missing key
//! of a map is `<no value>`.

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// A method of a struct: called with the template's arguments when the
/// field is evaluated (`{{.Label "k"}}`, or `{{.Size}}` with none).
pub type Method = Rc<dyn Fn(&[Value]) -> Result<Value, String>>;

/// A Go value.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's invalid `reflect.Value`: what a missing map key yields; prints
    /// `<no value>`.
    #[default]
    Missing,
    /// A nil pointer inside a typed value (docker's `State.Health`);
    /// prints `<nil>`.
    Nil,
    /// A nil `interface{}` (JSON's null): prints `<no value>` on its own
    /// (Go unwraps the interface to nothing) and `<nil>` inside a list, a
    /// map or a function's arguments.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Rc<str>),
    /// A slice; `Elem` says whether Go would see a `[]string` (which
    /// `join` takes) or a `[]interface{}`.
    List(Rc<Vec<Value>>, Elem),
    Map(Rc<Map>),
    Struct(Rc<Struct>),
    /// A method value (a struct's method, or a function for `call`).
    Func(Method),
}

/// The element type of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Any,
    String,
}

/// A Go map with string keys; Go ranges and prints it in key order.
#[derive(Debug, Clone, Default)]
pub struct Map {
    pub entries: BTreeMap<String, Value>,
    /// What `index` yields for a missing key: `""` for a `map[string]string`
    /// (docker's labels), `Missing` for a `map[string]interface{}`.
    pub zero: Value,
    /// A nil map (JSON's null where a typed value has a map): empty, but
    /// `json` writes `null`, as Go marshals one.
    pub nil: bool,
}

/// A Go struct: named fields in declaration order.
#[derive(Debug, Clone)]
pub struct Struct {
    /// The type as Go names it in errors (`*formatter.ContainerContext`).
    pub type_name: String,
    pub fields: Vec<(String, Value)>,
    /// Whether `json` shows it with `<`, `>` and `&` escaped: docker's list
    /// contexts marshal themselves with Go's json.Marshal, which does.
    pub json_escapes_html: bool,
    /// Go's `json:"..."` tags of the fields that have one (field name,
    /// tag): the key `json` writes (`CPUCfsPeriod` as `CpuCfsPeriod`),
    /// `omitempty`, `-`. A template still reads the field by its Go name.
    pub json_tags: Vec<(&'static str, &'static str)>,
    /// What the type's own MarshalJSON writes for a field instead of what
    /// a template reads (docker's search context: `[OK]` or nothing in a
    /// template, `"true"` or `"false"` in its JSON).
    pub json_values: Vec<(&'static str, Value)>,
}

impl Struct {
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The key `json` writes field `name` under, or None when its tag
    /// leaves it out (`-`, or `omitempty` and `v` is empty as Go judges).
    fn json_key<'a>(&'a self, name: &'a str, v: &Value) -> Option<&'a str> {
        let Some((_, tag)) = self.json_tags.iter().find(|(k, _)| *k == name) else {
            return Some(name);
        };
        if *tag == "-" {
            return None;
        }
        let (key, options) = tag.split_once(',').unwrap_or((tag, ""));
        if options.split(',').any(|o| o == "omitempty") && v.is_empty_for_json() {
            return None;
        }
        Some(if key.is_empty() { name } else { key })
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Func(_) => f.write_str("Func"),
            v => write!(f, "{}", v.to_go_string()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s.into())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl Value {
    /// A method taking no argument, evaluated only when a template uses it
    /// (docker's list columns: `.Size` walks a directory, `.Names` does not).
    pub fn lazy(f: impl Fn() -> Value + 'static) -> Value {
        Value::Func(Rc::new(move |args: &[Value]| {
            if args.is_empty() {
                Ok(f())
            } else {
                Err(format!("wrong number of args: got {} want 0", args.len()))
            }
        }))
    }

    /// A method taking arguments (`.Label "k"`).
    pub fn method(f: impl Fn(&[Value]) -> Result<Value, String> + 'static) -> Value {
        Value::Func(Rc::new(f))
    }

    pub fn strings<S: Into<Value>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::List(
            Rc::new(items.into_iter().map(Into::into).collect()),
            Elem::String,
        )
    }

    pub fn string_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(Rc::new(Map {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::from(v)))
                .collect(),
            zero: Value::from(""),
            nil: false,
        }))
    }

    /// JSON as Go's encoding/json decodes it into `interface{}`: every
    /// object a map (missing keys `<no value>`), numbers as written.
    pub fn from_json(v: &serde_json::Value) -> Value {
        if v.is_null() {
            // Go's template data `nil`: nothing at all.
            return Value::Missing;
        }
        convert(v, "", false, &|_| false)
    }

    /// JSON as a typed Go value would hold it: objects are structs, except
    /// those whose key `is_map` names (labels, options, networks...), which
    /// are maps. `path` is the keys from the root, dot-joined.
    pub fn from_json_typed(v: &serde_json::Value, is_map: &dyn Fn(&str) -> bool) -> Value {
        convert(v, "", true, is_map)
    }

    /// encoding/json's isEmptyValue, which `omitempty` asks: false, 0, "",
    /// nil, and empty lists and maps; a struct never is.
    fn is_empty_for_json(&self) -> bool {
        !matches!(self, Value::Struct(_) | Value::Func(_)) && !self.truth()
    }

    /// Go's truth: false, 0, nil, empty string, list or map are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Missing | Value::Nil | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_) | Value::Func(_) => true,
        }
    }

    /// The type as Go's `%T` names it.
    pub fn type_name(&self) -> String {
        match self {
            Value::Missing | Value::Nil | Value::Null => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::String(_) => "string".into(),
            Value::List(_, Elem::String) => "[]string".into(),
            Value::List(_, Elem::Any) => "[]interface {}".into(),
            Value::Map(m) => {
                if matches!(m.zero, Value::String(_)) {
                    "map[string]string".into()
                } else {
                    "map[string]interface {}".into()
                }
            }
            Value::Struct(s) => {
                if s.type_name.is_empty() {
                    "struct".into()
                } else {
                    s.type_name.clone()
                }
            }
            Value::Func(_) => "func".into(),
        }
    }

    /// How Go's fmt prints the value with `%v` (what `{{.}}` shows).
    pub fn to_go_string(&self) -> String {
        let mut s = String::new();
        self.write_go(&mut s, true);
        s
    }

    fn write_go(&self, out: &mut String, top: bool) {
        match self {
            Value::Missing | Value::Null => out.push_str(if top { "<no value>" } else { "<nil>" }),
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Float(f) => out.push_str(&go_float(*f)),
            Value::String(s) => out.push_str(s),
            Value::List(l, _) => {
                out.push('[');
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    x.write_go(out, false);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, x)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    x.write_go(out, false);
                }
                out.push(']');
            }
            Value::Struct(st) => {
                out.push('{');
                for (i, (_, x)) in st.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    x.write_go(out, false);
                }
                out.push('}');
            }
            Value::Func(_) => out.push_str("<func>"),
        }
    }

    /// Go's `encoding/json` as docker's `json` function calls it: compact,
    /// maps in key order, structs in field order, `<>&` left as they are.
    pub fn to_json(&self) -> Result<String, String> {
        let mut s = String::new();
        self.write_json(&mut s, false)?;
        Ok(s)
    }

    /// `escape_html`: Go's json.Marshal, which docker's list contexts call
    /// in their MarshalJSON (`<` as `\u003c`); the `json` function's own
    /// encoder leaves them.
    fn write_json(&self, out: &mut String, escape_html: bool) -> Result<(), String> {
        match self {
            Value::Missing | Value::Nil | Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Float(f) => {
                if !f.is_finite() {
                    return Err(format!("json: unsupported value: {}", go_float(*f)));
                }
                out.push_str(&json_float(*f));
            }
            Value::String(s) => json_string(s, out, escape_html),
            Value::List(l, _) => {
                out.push('[');
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_json(out, escape_html)?;
                }
                out.push(']');
            }
            Value::Map(m) if m.nil => out.push_str("null"),
            Value::Map(m) => {
                out.push('{');
                for (i, (k, x)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(k, out, escape_html);
                    out.push(':');
                    x.write_json(out, escape_html)?;
                }
                out.push('}');
            }
            Value::Struct(st) => {
                // A struct with methods is one of docker's list contexts.
                let escape_html = escape_html || st.json_escapes_html;
                out.push('{');
                let mut first = true;
                for (k, x) in &st.fields {
                    // Methods are what docker's list contexts marshal: each
                    // one called without arguments; those needing some are
                    // left out.
                    let own = st.json_values.iter().find(|(n, _)| n == k);
                    let x = match (own, x) {
                        (Some((_, v)), _) => v.clone(),
                        (None, Value::Func(f)) => match f(&[]) {
                            Ok(v) => v,
                            Err(_) => continue,
                        },
                        (None, x) => x.clone(),
                    };
                    let Some(key) = st.json_key(k, &x) else {
                        continue;
                    };
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    json_string(key, out, escape_html);
                    out.push(':');
                    x.write_json(out, escape_html)?;
                }
                out.push('}');
            }
            Value::Func(_) => return Err("json: unsupported type: func".into()),
        }
        Ok(())
    }
}

fn convert(v: &serde_json::Value, path: &str, typed: bool, is_map: &dyn Fn(&str) -> bool) -> Value {
    match v {
        serde_json::Value::Null => {
            if typed && is_map(path) {
                // A typed map field that is nil: `map[]`, and null as JSON.
                Value::Map(Rc::new(Map {
                    entries: BTreeMap::new(),
                    zero: Value::from(""),
                    nil: true,
                }))
            } else if typed {
                Value::Nil
            } else {
                Value::Missing
            }
        }
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                // Beyond i64: Go's uint64, printed the same way.
                Some(_) => Value::String(n.to_string().into()),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(a) => {
            let elem = if typed && a.iter().all(serde_json::Value::is_string) {
                Elem::String
            } else {
                Elem::Any
            };
            Value::List(
                Rc::new(a.iter().map(|x| convert(x, path, typed, is_map)).collect()),
                elem,
            )
        }
        serde_json::Value::Object(m) => {
            if !typed || is_map(path) {
                let all_strings = m.values().all(serde_json::Value::is_string);
                let zero = if typed && all_strings {
                    Value::from("")
                } else {
                    Value::Missing
                };
                Value::Map(Rc::new(Map {
                    entries: m
                        .iter()
                        // Inside a typed map, values are still typed
                        // (a network's settings are a struct).
                        .map(|(k, x)| (k.clone(), convert(x, &format!("{path}.*"), typed, is_map)))
                        .collect(),
                    zero,
                    nil: false,
                }))
            } else {
                Value::Struct(Rc::new(Struct {
                    type_name: String::new(),
                    fields: m
                        .iter()
                        .map(|(k, x)| {
                            let p = if path.is_empty() {
                                k.clone()
                            } else {
                                format!("{path}.{k}")
                            };
                            (k.clone(), convert(x, &p, typed, is_map))
                        })
                        .collect(),
                    json_escapes_html: false,
                    json_tags: Vec::new(),
                    json_values: Vec::new(),
                }))
            }
        }
    }
}

/// A JSON string as Go writes it with HTML escaping off: control
/// characters as `\u00XX` (`\n`, `\r`, `\t` short), U+2028/9 escaped.
fn json_string(s: &str, out: &mut String, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Shortest digits and decimal exponent of `f` (> 0): `digits` × 10^(exp-len).
fn shortest(f: f64) -> (String, i32) {
    // Rust's `{:e}` is the shortest representation that round-trips, as
    // Go's strconv with precision -1.
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// Go's `%v` of a float64 (strconv 'g', shortest): exponent form when the
/// decimal exponent is below -4 or at least 6 (`1e+06`).
pub fn go_float(f: f64) -> String {
    format_float(f, -4, 6, 'e')
}

fn json_float(f: f64) -> String {
    // encoding/json: 'f' format unless the magnitude is below 1e-6 or at
    // least 1e21, then 'e' with a two-digit-minimum exponent trimmed
    // ("1e-07", not "1e-007").
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format_float(f, i32::MAX, 0, 'e');
        // Go trims "e-07" to "e-7" for JSON.
        s.replace("e-0", "e-").replace("e+0", "e+")
    } else {
        format_float(f, -100, i32::MAX, 'e')
    }
}

/// Shortest float formatting: exponent form when the decimal exponent is
/// below `emin` or at least `eprec` (always, with `eprec` 0).
fn format_float(f: f64, emin: i32, eprec: i32, e: char) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, dp) = shortest(f);
    let neg = if f < 0.0 { "-" } else { "" };
    let exp = dp - 1;
    if exp < emin || exp >= eprec {
        let mut s = String::from(neg);
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push(e);
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.abs()));
        s
    } else if dp <= 0 {
        format!("{neg}0.{}{digits}", "0".repeat(dp.unsigned_abs() as usize))
    } else if dp as usize >= digits.len() {
        format!("{neg}{digits}{}", "0".repeat(dp as usize - digits.len()))
    } else {
        format!("{neg}{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(json_float(1e6), "1000000");
        assert_eq!(json_float(1e-7), "1e-7");
    }

    #[test]
    fn json_tags_rename_and_omit_as_go_does() {
        // docker's types.Runtime and swarm.Info, as `docker info -f` shows
        // them: `{{.}}` prints every field, `json` follows the tags.
        let runtime = Value::Struct(Rc::new(Struct {
            type_name: "types.Runtime".into(),
            fields: vec![
                ("Path".into(), Value::from("runc")),
                ("Args".into(), Value::strings(Vec::<String>::new())),
            ],
            json_escapes_html: false,
            json_tags: vec![("Path", "path"), ("Args", "runtimeArgs,omitempty")],
            json_values: Vec::new(),
        }));
        assert_eq!(runtime.to_go_string(), "{runc []}");
        assert_eq!(runtime.to_json().unwrap(), r#"{"path":"runc"}"#);
        let swarm = Value::Struct(Rc::new(Struct {
            type_name: "swarm.Info".into(),
            fields: vec![
                ("NodeID".into(), Value::from("")),
                ("Nodes".into(), Value::Int(0)),
                ("Managers".into(), Value::Int(2)),
                ("Cluster".into(), Value::Nil),
                ("Secret".into(), Value::from("x")),
            ],
            json_escapes_html: false,
            json_tags: vec![
                ("Nodes", ",omitempty"),
                ("Managers", ",omitempty"),
                ("Cluster", ",omitempty"),
                ("Secret", "-"),
            ],
            json_values: vec![("NodeID", Value::from("own"))],
        }));
        assert_eq!(swarm.to_json().unwrap(), r#"{"NodeID":"own","Managers":2}"#);
    }
}
