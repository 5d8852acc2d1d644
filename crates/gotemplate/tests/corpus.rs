//! The engine against Go itself: every case of `corpus.json` was run
//! through Go 1.19's text/template with docker's functions by
//! `gen/main.go`; output or error must be the same, byte for byte.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::rc::Rc;

use berth_template::{Elem, Map, Struct, Template, Value};

/// The data as `gen/main.go` builds it (see its comment).
fn data(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => {
            Value::List(Rc::new(a.iter().map(data).collect()), Elem::Any)
        }
        serde_json::Value::Object(m) if m.contains_key("__struct__") => {
            Value::Struct(Rc::new(Struct {
                type_name: String::new(),
                // gen/main.go's structs: fields sorted by name (the file
                // keeps the order they were written in).
                fields: m
                    .iter()
                    .filter(|(k, _)| *k != "__struct__")
                    .map(|(k, x)| (k.clone(), data(x)))
                    .collect::<std::collections::BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
                json_escapes_html: false,
                json_tags: Vec::new(),
                json_values: Vec::new(),
            }))
        }
        serde_json::Value::Object(m) if m.contains_key("__strlist__") => Value::strings(
            m["__strlist__"]
                .as_array()
                .expect("__strlist__ is a list")
                .iter()
                .map(|x| x.as_str().expect("strings only")),
        ),
        serde_json::Value::Object(m) if m.contains_key("__strmap__") => Value::Map(Rc::new(Map {
            entries: m
                .iter()
                .filter(|(k, _)| *k != "__strmap__")
                .map(|(k, x)| (k.clone(), data(x)))
                .collect(),
            zero: Value::from(""),
            nil: false,
        })),
        serde_json::Value::Object(m) => Value::Map(Rc::new(Map {
            entries: m.iter().map(|(k, x)| (k.clone(), data(x))).collect(),
            zero: Value::Missing,
            nil: false,
        })),
    }
}

#[test]
fn templates_give_what_go_gives() {
    let corpus: serde_json::Value =
        serde_json::from_str(include_str!("corpus.json")).expect("corpus.json is JSON");
    let shared = data(&corpus["data"]);
    let cases = corpus["cases"].as_array().expect("cases");
    let mut differ = Vec::new();
    for c in cases {
        let tmpl = c["tmpl"].as_str().expect("tmpl");
        let d = match c.get("data") {
            Some(serde_json::Value::Null) => Value::Missing,
            Some(v) => data(v),
            None => shared.clone(),
        };
        let missing_error = c
            .get("missingkey_error")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let got = Template::parse(tmpl)
            .and_then(|t| t.missing_key_error(missing_error).execute(&d))
            .map_err(|e| e.to_string());
        let want = match (c.get("out"), c.get("err")) {
            (Some(o), _) => Ok(o.as_str().expect("out").to_string()),
            (_, Some(e)) => Err(e.as_str().expect("err").to_string()),
            _ => panic!("case {tmpl:?} has no result: run gen/main.go"),
        };
        if got != want {
            differ.push(format!("{tmpl:?}\n  go:   {want:?}\n  ours: {got:?}"));
        }
    }
    eprintln!(
        "{} of {} cases as Go gives them",
        cases.len() - differ.len(),
        cases.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn tables_align_as_gos_tabwriter_aligns_them() {
    use berth_template::tabwriter::{align, DOCKER_MIN_WIDTH, DOCKER_PADDING};
    let corpus: serde_json::Value =
        serde_json::from_str(include_str!("corpus.json")).expect("corpus.json is JSON");
    let tables = corpus["tables"].as_array().expect("tables");
    assert!(!tables.is_empty());
    for t in tables {
        let input = t["in"].as_str().expect("in");
        let want = t["out"].as_str().expect("out");
        assert_eq!(
            align(input, DOCKER_MIN_WIDTH, DOCKER_PADDING),
            want,
            "{input:?}"
        );
    }
}
