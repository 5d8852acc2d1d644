//! Validation against the Compose Specification's JSON schema, vendored
//! as schema/compose-spec.json from compose-spec/compose-spec at commit
//! 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (23 June 2026; Apache-2.0).
//! Each file is checked on its own, after interpolation, as Compose does,
//! so an error names the file it is in.

use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{Error, Result};

const SCHEMA: &str = include_str!("../schema/compose-spec.json");

/// The compiled schema (once per process). The vendored document is
/// fixed and tested (see the tests below): failing here means a broken
/// build, said as an error rather than a panic.
fn validator() -> Result<&'static jsonschema::Validator> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
        jsonschema::draft7::new(&schema).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| {
        Error::Option(format!(
            "the vendored compose-spec.json does not compile: {e}"
        ))
    })
}

/// Checks `doc` (the contents of `file`): the first problem, as one line
/// naming the dotted path and what is wrong there.
pub fn validate(file: &str, doc: &Value) -> Result<()> {
    let mut errors: Vec<(String, String)> = validator()?
        .iter_errors(doc)
        .map(|e| {
            let pointer = e.instance_path().to_string();
            let path = pointer
                .trim_start_matches('/')
                .split('/')
                .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
                .collect::<Vec<_>>()
                .join(".");
            (path, problem(&e))
        })
        .collect();
    // The deepest path first: a oneOf at `services.web.ports.0` also fails
    // every alternative, the nearest error is the useful one.
    errors.sort_by_key(|(path, _)| std::cmp::Reverse(path.matches('.').count()));
    match errors.into_iter().next() {
        None => Ok(()),
        Some((path, problem)) => Err(Error::Invalid {
            file: file.to_string(),
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path
            },
            problem,
        }),
    }
}

/// The validator's message in Compose's words where they differ, one
/// line; an unexpected key is named as such.
fn problem(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match e.kind() {
        K::AdditionalProperties { unexpected } => {
            let keys: Vec<String> = unexpected.iter().map(|k| format!("{k:?}")).collect();
            format!(
                "additional {} {} not allowed (unknown or unsupported key)",
                if keys.len() == 1 {
                    "property"
                } else {
                    "properties"
                },
                keys.join(", ")
            )
        }
        _ => {
            let text = e.to_string();
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_vendored_schema_compiles_and_accepts_a_project() {
        let doc = json!({"name": "p", "services": {"web": {"image": "busybox", "ports": ["80:80"],
            "depends_on": {"db": {"condition": "service_healthy"}}}, "db": {"image": "busybox"}},
            "volumes": {"data": null}, "networks": {"front": {"internal": true}}});
        validate("compose.yaml", &doc).unwrap();
    }

    #[test]
    fn problems_name_file_path_and_key() {
        let e = validate(
            "c.yaml",
            &json!({"services": {"web": {"image": "b", "imagee": "x"}}}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "c.yaml: services.web: additional property \"imagee\" not allowed (unknown or unsupported key)"
        );
        let e = validate(
            "c.yaml",
            &json!({"services": {"web": {"image": "b", "cap_add": "ALL"}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml: services.web.cap_add: "), "{e}");
        let e = validate("c.yaml", &json!({"servics": {}}))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml: (top level): ") && e.contains("servics"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }
}
