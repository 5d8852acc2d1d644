//! Go's text/template, as docker's `--format` runs it, over JSON-like
//! values; and Go's text/tabwriter, which docker's tables go through.
//!
//! One engine for every command: list commands hand it a struct per row
//! (its fields the columns, methods such as `.Label "k"` as functions;
//! `reads_field` says which columns are worth computing), inspect commands
//! their JSON, typed (structs and maps told apart) or raw (all maps,
//! docker's fallback).
//!
//! Why our own: `gtmpl` 0.7 ranges maps in hash order (Go sorts the keys),
//! runs a range's `else` after a non-empty range too, refuses to range over
//! nothing, has no `break`/`continue` and no method arguments (so no
//! `{{.Label "k"}}`); `gotmpl` 0.6 is a thorough port, but its values have
//! no structs or methods (neither docker's "can't evaluate field" error nor
//! `{{.Label "k"}}` can be expressed) and it needs Rust 1.89 (we declare
//! 1.80). The behaviour is pinned against Go itself: `tests/corpus.json`
//! holds templates with the output Go 1.19 gave (regenerate with
//! `cd tests/gen && go run . ../corpus.json`).
//!
//! Nesting is bounded (100 levels of parentheses and actions, 100 nested
//! runs) where Go's bounds assume growable stacks: a pathological format is
//! an error, not a stack overflow.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

mod exec;
mod fmt;
mod funcs;
mod lex;
mod parse;
pub mod tabwriter;
mod value;

pub use fmt::quote;
pub use value::{Elem, Map, Method, Struct, Value};

/// Why a template could not be parsed or run. The message is Go's, with
/// the template named as docker names it (empty).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `template: :1: unclosed action`
    #[error("template: {name}:{line}: {msg}")]
    Parse {
        name: String,
        line: usize,
        msg: String,
    },
    /// `template: :1:2: executing "" at <.Foo>: map has no entry for key "Foo"`
    #[error("template: {name}:{line}:{col}: executing {name:?} at <{node}>: {msg}")]
    Exec {
        name: String,
        line: usize,
        col: usize,
        node: String,
        msg: String,
    },
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    name: String,
    src: String,
    main: Vec<parse::Node>,
    defs: parse::Trees,
    missing_key_error: bool,
    header_functions: bool,
    usage: std::sync::OnceLock<parse::Usage>,
}

/// Line (1-based) and column (byte offset in the line, 0-based) as Go's
/// ErrorContext counts them.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src[..pos.min(src.len())];
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(i) => before.len() - i - 1,
        None => before.len(),
    };
    (line, col)
}

impl Template {
    /// Parses `src` with docker's function map.
    pub fn parse(src: &str) -> Result<Template, Error> {
        Self::parse_named(src, "")
    }

    /// Parses `src` as a template named `name` (errors say
    /// `template: NAME:1: ...`); docker's are unnamed except `version`'s.
    pub fn parse_named(src: &str, name: &str) -> Result<Template, Error> {
        let name = name.to_string();
        match parse::parse(src, &funcs::exists) {
            Ok((main, defs)) => Ok(Template {
                name,
                src: src.to_string(),
                main,
                defs,
                missing_key_error: false,
                header_functions: false,
                usage: std::sync::OnceLock::new(),
            }),
            Err(e) => Err(Error::Parse {
                line: line_col(src, e.pos).0,
                name,
                msg: e.msg,
            }),
        }
    }

    /// Go's `Option("missingkey=error")`: a missing map key is an error
    /// instead of `<no value>` (docker's inspect fallback over raw JSON).
    pub fn missing_key_error(mut self, on: bool) -> Template {
        self.missing_key_error = on;
        self
    }

    /// Docker's `HeaderFunctions`, for a table's header row: `json`,
    /// `split`, `join`, `title`, `lower`, `upper` and `truncate` return
    /// their (string) first argument untouched, so a column's title stays
    /// as it is.
    pub fn header_functions(mut self, on: bool) -> Template {
        self.header_functions = on;
        self
    }

    /// Whether running the template may read field `name` of its data
    /// (mentioned anywhere, or the data used whole, as by `{{json .}}`):
    /// list commands compute only what is read.
    pub fn reads_field(&self, name: &str) -> bool {
        let u = self.usage.get_or_init(|| {
            let mut u = parse::Usage::default();
            u.add_list(&self.main);
            for t in self.defs.values() {
                u.add_list(t);
            }
            u
        });
        u.whole || u.names.contains(name)
    }

    /// Runs the template over `data`, appending to `out`. On error, `out`
    /// holds what was written before it (as Go's writer would).
    pub fn execute_into(&self, data: &Value, out: &mut String) -> Result<(), Error> {
        let mut s = exec::State::new(&self.defs, self.missing_key_error, out, data);
        s.header_functions = self.header_functions;
        s.walk_list(data, &self.main).map_err(|e| {
            let (line, col) = line_col(&self.src, e.pos);
            Error::Exec {
                name: self.name.clone(),
                line,
                col,
                node: e.node,
                msg: e.msg,
            }
        })
    }

    pub fn execute(&self, data: &Value) -> Result<String, Error> {
        let mut out = String::new();
        self.execute_into(data, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Go's own limits are for growable stacks; ours must end in an error
    // before a thread's stack does.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let parens = format!("{{{{{}1{}}}}}", "(".repeat(100_000), ")".repeat(100_000));
        let e = Template::parse(&parens).unwrap_err();
        assert_eq!(e.to_string(), "template: :1: max expression depth exceeded");
        let ifs = format!(
            "{}x{}",
            "{{if 1}}".repeat(100_000),
            "{{end}}".repeat(100_000)
        );
        assert!(Template::parse(&ifs).is_err());
        let t = Template::parse(r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#)
            .unwrap();
        let e = t.execute(&Value::Missing).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("exceeded maximum template depth (100)"),
            "{e}"
        );
        // The deepest calls, each at the deepest expression: still an error.
        let deep = format!(
            r#"{{{{define "r"}}}}{}{{{{template "r" .}}}}{}{{{{end}}}}{{{{template "r" .}}}}"#,
            "{{if 1}}".repeat(40),
            "{{end}}".repeat(40)
        );
        let deep = deep.replace(
            r#"{{template "r" .}}{{end}}"#,
            &format!(
                r#"{{{{{}1{}}}}}{{{{template "r" .}}}}{{{{end}}}}"#,
                "(".repeat(59),
                ")".repeat(59)
            ),
        );
        let t = Template::parse(&deep).unwrap();
        assert!(t.execute(&Value::Missing).is_err());
        // What real templates need still works.
        let ok = format!("{{{{{}1{}}}}}", "(".repeat(90), ")".repeat(90));
        assert_eq!(
            Template::parse(&ok)
                .unwrap()
                .execute(&Value::Missing)
                .unwrap(),
            "1"
        );
    }

    #[test]
    fn reads_field_sees_every_mention() {
        let t = Template::parse(
            r#"{{if .A}}{{.B.C}}{{end}}{{range $x := .D}}{{$x.E}}{{end}}{{(index .F 0).G}}"#,
        )
        .unwrap();
        for f in ["A", "B", "C", "D", "E", "F", "G"] {
            assert!(t.reads_field(f), "{f}");
        }
        assert!(!t.reads_field("H"));
        // The data used whole: every field may be read.
        assert!(Template::parse("{{json .}}").unwrap().reads_field("H"));
        assert!(Template::parse("{{with .A}}{{.}}{{end}}")
            .unwrap()
            .reads_field("H"));
    }
}
