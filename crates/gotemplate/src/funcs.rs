//! The functions a template may call: Go's builtins (and, or, not, len,
//! index, slice, print, printf, println, eq, ne, lt, le, gt, ge, html, js,
//! urlquery, call) and docker's (json, split, join, title, lower, upper,
//! pad, truncate).

use std::rc::Rc;

use crate::exec::{State, R};
use crate::fmt::{sprint, sprintf, sprintln};
use crate::parse::Arg;
use crate::value::{Elem, Value};

const NAMES: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "call", "json", "split", "join", "title", "lower",
    "upper", "pad", "truncate",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// A parameter's Go type, as far as argument checks go.
#[derive(Clone, Copy)]
enum P {
    Any,
    Str,
    Int,
    StrList,
}

fn params(name: &str, header: bool) -> (&'static [P], Option<P>) {
    use P::*;
    match name {
        "json" | "title" | "lower" | "upper" if header => (&[Str], None),
        "split" | "join" if header => (&[Str, Str], None),
        "not" | "len" | "json" => (&[Any], None),
        "index" | "slice" | "eq" | "call" => (&[Any], Some(Any)),
        "print" | "println" | "html" | "js" | "urlquery" => (&[], Some(Any)),
        "printf" => (&[Str], Some(Any)),
        "ne" | "lt" | "le" | "gt" | "ge" => (&[Any, Any], None),
        "split" => (&[Str, Str], None),
        "join" => (&[StrList, Str], None),
        "title" | "lower" | "upper" => (&[Str], None),
        "pad" => (&[Str, Int, Int], None),
        "truncate" => (&[Str, Int], None),
        _ => (&[], Some(Any)),
    }
}

/// Go's evalArg: a literal of the wrong kind is refused as written, any
/// other argument is evaluated and its value checked.
fn typed_arg(s: &mut State<'_>, dot: &Value, a: &Arg, p: P) -> R<Value> {
    let literal = matches!(
        a,
        Arg::Bool(..) | Arg::Number { .. } | Arg::String { .. } | Arg::Nil(_)
    );
    if literal {
        match (p, a) {
            (P::Any, _) | (P::Str, Arg::String { .. }) => {}
            (P::Int, Arg::Number { num, .. }) if num.int.is_some() => {
                return Ok(Value::Int(num.int.unwrap_or(0)))
            }
            (P::Str | P::Int | P::StrList, Arg::Nil(_)) => {
                s.set_at((a.pos(), a.to_string()));
                let t = match p {
                    P::Str => "string",
                    P::Int => "int",
                    _ => "[]string",
                };
                return s.err(format!("cannot assign nil to {t}"));
            }
            (P::Str, _) => {
                s.set_at((a.pos(), a.to_string()));
                return s.err(format!("expected string; found {a}"));
            }
            (P::Int, _) => {
                s.set_at((a.pos(), a.to_string()));
                return s.err(format!("expected integer; found {a}"));
            }
            (P::StrList, _) => {
                s.set_at((a.pos(), a.to_string()));
                return s.err(format!("can't handle {a} for arg of type []string"));
            }
        }
    }
    let v = s.eval_arg(dot, a)?;
    check(s, &v, p)?;
    Ok(v)
}

/// Go's validateType for an evaluated argument.
fn check(s: &State<'_>, v: &Value, p: P) -> R<()> {
    let want = match p {
        P::Any => return Ok(()),
        P::Str => "string",
        P::Int => "int",
        P::StrList => "[]string",
    };
    let ok = matches!(
        (p, v),
        (P::Str, Value::String(_))
            | (P::Int, Value::Int(_))
            | (P::StrList, Value::List(_, Elem::String))
    );
    if ok {
        return Ok(());
    }
    match v {
        Value::Missing => s.err(format!("invalid value; expected {want}")),
        Value::Null => s.err(format!(
            "wrong type for value; expected {want}; got interface {{}}"
        )),
        v => s.err(format!(
            "wrong type for value; expected {want}; got {}",
            v.type_name()
        )),
    }
}

/// Calls function `name` with argument nodes `args` and, in a pipeline,
/// the previous stage's value `fin` as the last argument.
/// `cmd` is the whole command, where Go reports a failed call.
pub(crate) fn call(
    s: &mut State<'_>,
    dot: &Value,
    name: &str,
    args: &[Arg],
    fin: Option<Value>,
    cmd: (usize, String),
) -> R<Value> {
    let n = args.len() + usize::from(fin.is_some());
    // and/or evaluate their arguments only as far as needed (Go 1.18).
    if name == "and" || name == "or" {
        if n < 1 {
            return s.err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            ));
        }
        let mut last = Value::Missing;
        for a in args {
            last = s.eval_arg(dot, a)?;
            if last.truth() != (name == "and") {
                return Ok(last);
            }
        }
        if let Some(v) = fin {
            last = v;
        }
        return Ok(last);
    }
    let (fixed, variadic) = params(name, s.header_functions);
    let at = s.at();
    if variadic.is_none() && n != fixed.len() {
        return s.err(format!(
            "wrong number of args for {name}: want {} got {n}",
            fixed.len()
        ));
    }
    if n < fixed.len() {
        return s.err(format!(
            "wrong number of args for {name}: want at least {} got {n}",
            fixed.len()
        ));
    }
    let mut vals = Vec::with_capacity(n);
    for (i, a) in args.iter().enumerate() {
        let p = fixed.get(i).copied().or(variadic).unwrap_or(P::Any);
        vals.push(typed_arg(s, dot, a, p)?);
    }
    if let Some(v) = fin {
        let p = fixed.get(n - 1).copied().or(variadic).unwrap_or(P::Any);
        check(s, &v, p)?;
        vals.push(v);
    }
    s.set_at(at);
    let want = |s: &State<'_>, k: usize| -> R<()> {
        if n != k {
            return s.err(format!("wrong number of args for {name}: want {k} got {n}"));
        }
        Ok(())
    };
    let at_least = |s: &State<'_>, k: usize| -> R<()> {
        if n < k {
            return s.err(format!(
                "wrong number of args for {name}: want at least {k} got {n}"
            ));
        }
        Ok(())
    };
    if s.header_functions
        && matches!(
            name,
            "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
        )
    {
        // Docker's header variants: func(v string, ...) string { return v }.
        return Ok(vals.swap_remove(0));
    }
    let fail = |s: &State<'_>, e: String| -> R<Value> {
        s.err_at(&cmd, format!("error calling {name}: {e}"))
    };
    match name {
        "not" => {
            want(s, 1)?;
            Ok(Value::Bool(!vals[0].truth()))
        }
        "len" => {
            want(s, 1)?;
            match &vals[0] {
                Value::String(x) => Ok(count(x.len())),
                Value::List(l, _) => Ok(count(l.len())),
                Value::Map(m) => Ok(count(m.entries.len())),
                Value::Nil | Value::Null => fail(s, "len of nil pointer".into()),
                Value::Missing => fail(
                    s,
                    "reflect: call of reflect.Value.Type on zero Value".into(),
                ),
                v => fail(s, format!("len of type {}", v.type_name())),
            }
        }
        "index" => {
            at_least(s, 1)?;
            index(&vals[0], &vals[1..]).or_else(|e| fail(s, e))
        }
        "slice" => {
            at_least(s, 1)?;
            slice(&vals[0], &vals[1..]).or_else(|e| fail(s, e))
        }
        "print" => Ok(Value::from(sprint(&vals))),
        "println" => Ok(Value::from(sprintln(&vals))),
        "printf" => {
            at_least(s, 1)?;
            let Value::String(f) = &vals[0] else {
                return s.err(format!(
                    "wrong type for value; expected string; got {}",
                    vals[0].type_name()
                ));
            };
            Ok(Value::from(sprintf(f, &vals[1..])))
        }
        "html" => Ok(Value::from(html(&eval_args(&vals)))),
        "js" => Ok(Value::from(js(&eval_args(&vals)))),
        "urlquery" => Ok(Value::from(urlquery(&eval_args(&vals)))),
        "eq" => {
            at_least(s, 1)?;
            eq(&vals[0], &vals[1..])
                .map(Value::Bool)
                .or_else(|e| fail(s, e))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(s, 2)?;
            let (a, b) = (&vals[0], &vals[1]);
            let r = match name {
                "ne" => eq(a, std::slice::from_ref(b)).map(|x| !x),
                "lt" => lt(a, b),
                "le" => le(a, b),
                "gt" => le(a, b).map(|x| !x),
                _ => lt(a, b).map(|x| !x),
            };
            r.map(Value::Bool).or_else(|e| fail(s, e))
        }
        "call" => {
            at_least(s, 1)?;
            match &vals[0] {
                Value::Func(f) => f(&vals[1..]).or_else(|e| fail(s, e)),
                Value::Missing | Value::Nil | Value::Null => fail(s, "call of nil".into()),
                v => fail(s, format!("non-function of type {}", v.type_name())),
            }
        }
        "json" => {
            want(s, 1)?;
            vals[0].to_json().map(Value::from).or_else(|e| fail(s, e))
        }
        "split" => {
            want(s, 2)?;
            let (x, sep) = (string_arg(s, &vals[0])?, string_arg(s, &vals[1])?);
            Ok(Value::List(
                Rc::new(go_split(&x, &sep).into_iter().map(Value::from).collect()),
                Elem::String,
            ))
        }
        "join" => {
            want(s, 2)?;
            let sep = string_arg(s, &vals[1])?;
            let Value::List(l, _) = &vals[0] else {
                return s.err(format!(
                    "wrong type for value; expected []string; got {}",
                    vals[0].type_name()
                ));
            };
            let parts: Vec<String> = l.iter().map(Value::to_go_string).collect();
            Ok(Value::from(parts.join(&sep)))
        }
        "title" => {
            want(s, 1)?;
            Ok(Value::from(title(&string_arg(s, &vals[0])?)))
        }
        "lower" => {
            want(s, 1)?;
            Ok(Value::from(map_case(&string_arg(s, &vals[0])?, false)))
        }
        "upper" => {
            want(s, 1)?;
            Ok(Value::from(map_case(&string_arg(s, &vals[0])?, true)))
        }
        "pad" => {
            want(s, 3)?;
            let x = string_arg(s, &vals[0])?;
            let (pre, post) = (int_arg(s, &vals[1])?, int_arg(s, &vals[2])?);
            if x.is_empty() {
                return Ok(Value::from(x));
            }
            let rep = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
            Ok(Value::from(format!("{}{x}{}", rep(pre), rep(post))))
        }
        "truncate" => {
            want(s, 2)?;
            let x = string_arg(s, &vals[0])?;
            let n = int_arg(s, &vals[1])?;
            let n = usize::try_from(n).unwrap_or(0);
            if x.len() < n {
                return Ok(Value::from(x));
            }
            // Go slices bytes: a cut inside a character leaves a broken
            // one, which is shown (and which Go's JSON shows) as U+FFFD.
            Ok(Value::from(
                String::from_utf8_lossy(&x.as_bytes()[..n]).into_owned(),
            ))
        }
        _ => s.err(format!("{name:?} is not a defined function")),
    }
}

fn count(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn string_arg(s: &State<'_>, v: &Value) -> R<String> {
    match v {
        Value::String(x) => Ok(x.to_string()),
        Value::Missing => s.err("invalid value; expected string"),
        v => s.err(format!(
            "wrong type for value; expected string; got {}",
            v.type_name()
        )),
    }
}

fn int_arg(s: &State<'_>, v: &Value) -> R<i64> {
    match v {
        Value::Int(x) => Ok(*x),
        Value::Missing => s.err("invalid value; expected int"),
        v => s.err(format!(
            "wrong type for value; expected int; got {}",
            v.type_name()
        )),
    }
}

/// Go's strings.Split: an empty separator splits into characters.
fn go_split(x: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return x.chars().map(String::from).collect();
    }
    x.split(sep).map(str::to_string).collect()
}

/// Go's strings.Title: a letter after a non-letter (and non-digit,
/// non-underscore) becomes upper case.
fn title(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    let mut prev_sep = true;
    for c in x.chars() {
        if prev_sep {
            out.push_str(&map_case(c.encode_utf8(&mut [0; 4]), true));
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphabetic() || c.is_numeric()) && c.is_whitespace()
        };
    }
    out
}

/// The string of html/js/urlquery's arguments: the one string as it is,
/// else fmt.Sprint of them all.
fn eval_args(vals: &[Value]) -> String {
    if let [Value::String(x)] = vals {
        return x.to_string();
    }
    sprint(vals)
}

fn html(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for c in x.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for c in x.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            // Go escapes what unicode.IsPrint refuses.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's unicode.ToUpper/ToLower, rune by rune: a character whose case
/// mapping is several characters (`ß`) stays as it is.
fn map_case(x: &str, upper: bool) -> String {
    x.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.remove(0)
            } else {
                c
            }
        })
        .collect()
}

fn urlquery(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for b in x.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn index(item: &Value, idx: &[Value]) -> Result<Value, String> {
    let mut item = item.clone();
    if matches!(item, Value::Missing | Value::Null) {
        return Err("index of untyped nil".into());
    }
    for i in idx {
        item = match &item {
            Value::Nil => return Err("index of nil pointer".into()),
            Value::List(l, _) => l[index_arg(i, l.len())?].clone(),
            Value::String(x) => Value::Int(i64::from(x.as_bytes()[index_arg(i, x.len())?])),
            Value::Map(m) => match i {
                Value::String(k) => m
                    .entries
                    .get(&**k)
                    .cloned()
                    .unwrap_or_else(|| m.zero.clone()),
                Value::Missing | Value::Null => {
                    return Err("value is nil; should be of type string".into())
                }
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ))
                }
            },
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn index_arg(i: &Value, len: usize) -> Result<usize, String> {
    match i {
        Value::Int(n) => {
            if *n < 0 || *n as u64 >= len as u64 {
                return Err(format!("index out of range: {n}"));
            }
            Ok(*n as usize)
        }
        Value::Missing => Err("cannot index slice/array with nil".into()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

fn slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if matches!(item, Value::Missing | Value::Null) {
        return Err("slice of untyped nil".into());
    }
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match item {
        Value::String(x) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            x.len()
        }
        Value::List(l, _) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len, len];
    for (k, i) in idx.iter().enumerate() {
        let n = match i {
            Value::Int(n) if *n >= 0 && *n as u64 <= len as u64 => *n as usize,
            Value::Int(n) => return Err(format!("index out of range: {n}")),
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    other.type_name()
                ))
            }
        };
        bounds[k] = n;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    if idx.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[1], bounds[2]
        ));
    }
    Ok(match item {
        Value::String(x) => match x.get(bounds[0]..bounds[1]) {
            Some(sub) => Value::from(sub),
            None => Value::from(
                String::from_utf8_lossy(&x.as_bytes()[bounds[0]..bounds[1]]).into_owned(),
            ),
        },
        Value::List(l, e) => Value::List(Rc::new(l[bounds[0]..bounds[1]].to_vec()), *e),
        _ => Value::Missing,
    })
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Basic {
    Invalid,
    Bool,
    Int,
    Float,
    String,
}

fn basic(v: &Value) -> Basic {
    match v {
        Value::Bool(_) => Basic::Bool,
        Value::Int(_) => Basic::Int,
        Value::Float(_) => Basic::Float,
        Value::String(_) => Basic::String,
        _ => Basic::Invalid,
    }
}

fn eq(a: &Value, rest: &[Value]) -> Result<bool, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let ka = basic(a);
    for b in rest {
        let kb = basic(b);
        let truth = if ka != kb {
            let valid = |v: &Value| !matches!(v, Value::Missing | Value::Null);
            if valid(a) && valid(b) {
                return Err("incompatible types for comparison".into());
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::String(x), Value::String(y)) => x == y,
                (Value::Missing | Value::Null, Value::Missing | Value::Null) => true,
                (Value::Nil, Value::Nil) => true,
                (Value::Nil, _) | (_, Value::Nil) => false,
                (Value::Missing | Value::Null, _) | (_, Value::Missing | Value::Null) => false,
                (x, _) => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        sprintf("%s", std::slice::from_ref(x)),
                        x.type_name()
                    ))
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic(a), basic(b));
    if ka == Basic::Invalid || kb == Basic::Invalid {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::String(x), Value::String(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".into()),
    }
}

fn le(a: &Value, b: &Value) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}
