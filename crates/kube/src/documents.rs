//! The documents of a Kubernetes YAML file, parsed with the API's own
//! types; keys those types do not know are errors, fields berth does not
//! do are warnings, each naming the field's path.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// One object of the file.
#[derive(Debug, Clone)]
pub enum Document {
    Pod(Box<Pod>),
    Deployment(Box<Deployment>),
    DaemonSet(Box<DaemonSet>),
    Job(Box<Job>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
    Service(Box<Service>),
}

/// A file's documents and what berth will not do of them.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub documents: Vec<Document>,
    /// One line each: the file, the document and the field ignored.
    pub warnings: Vec<String>,
}

/// The kinds berth plays, as the error for another kind lists them.
const KINDS: &str =
    "Pod, Deployment, DaemonSet, Job, ConfigMap, Secret, PersistentVolumeClaim, Service";

/// Pod spec fields berth does something with (the rest: a warning).
const POD_SPEC_DONE: &[&str] = &[
    "containers",
    "initContainers",
    "volumes",
    "restartPolicy",
    "hostname",
    "securityContext",
    "terminationGracePeriodSeconds",
    "hostNetwork",
    // Scheduling has one node to choose from: nothing to do, nothing lost.
    "nodeSelector",
    "affinity",
    "tolerations",
    "priorityClassName",
    "serviceAccountName",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "dnsPolicy",
    "schedulerName",
];

/// Container fields berth does something with.
const CONTAINER_DONE: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "volumeMounts",
    "workingDir",
    "resources",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "tty",
    "stdin",
    // Images are local to the store: IfNotPresent and Never are what
    // berth does; Always is warned about below.
    "imagePullPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
];

/// Parses every document of `text` (read from `file`, named in errors).
/// Empty documents are skipped.
pub fn parse(text: &str, file: &str) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let mut value = Value::deserialize(de)
            .map_err(|e| Error::Invalid(format!("{file}: document {n}: {e}")))?;
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(Error::Invalid(format!(
                "{file}: document {n}: not a Kubernetes object (a mapping with apiVersion and kind)"
            )));
        }
        let kind = value["kind"]
            .as_str()
            .ok_or_else(|| Error::Invalid(format!("{file}: document {n}: field kind is missing")))?
            .to_string();
        let name = value["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            return Err(Error::Invalid(format!(
                "{file}: document {n} ({kind}): field metadata.name is missing"
            )));
        }
        let at = format!("{file}: document {n} ({kind} {name})");
        quantities_as_strings(&mut value);
        let doc = match kind.as_str() {
            "Pod" => Document::Pod(Box::new(typed(&value, &at)?)),
            "Deployment" => Document::Deployment(Box::new(typed(&value, &at)?)),
            "DaemonSet" => Document::DaemonSet(Box::new(typed(&value, &at)?)),
            "Job" => Document::Job(Box::new(typed(&value, &at)?)),
            "ConfigMap" => Document::ConfigMap(Box::new(typed(&value, &at)?)),
            "Secret" => Document::Secret(Box::new(typed(&value, &at)?)),
            "PersistentVolumeClaim" => {
                Document::PersistentVolumeClaim(Box::new(typed(&value, &at)?))
            }
            "Service" => Document::Service(Box::new(typed(&value, &at)?)),
            other => {
                return Err(Error::Invalid(format!(
                    "{at}: kind {other} is not supported (berth plays {KINDS})"
                )))
            }
        };
        let spec = match kind.as_str() {
            "Pod" => Some(&value["spec"]),
            "Deployment" | "DaemonSet" | "Job" => Some(&value["spec"]["template"]["spec"]),
            _ => None,
        };
        if let Some(spec) = spec {
            let prefix = if kind == "Pod" {
                "spec"
            } else {
                "spec.template.spec"
            };
            unsupported(spec, prefix, &at, &mut parsed.warnings);
        }
        parsed.documents.push(doc);
    }
    Ok(parsed)
}

/// The document as type `T`; a wrong value or a key `T` does not know is
/// an error naming its path.
fn typed<T: DeserializeOwned + Serialize>(value: &Value, at: &str) -> Result<T> {
    let t: T = serde_json::from_value(value.clone()).map_err(|e| {
        let path = wrong_path::<T>(value).unwrap_or_default();
        if path.is_empty() {
            Error::Invalid(format!("{at}: {e}"))
        } else {
            Error::Invalid(format!("{at}: field {path}: {e}"))
        }
    })?;
    let back = serde_json::to_value(&t).map_err(|e| Error::Invalid(format!("{at}: {e}")))?;
    if let Some(path) = unknown_key(value, &back, "") {
        return Err(Error::Invalid(format!(
            "{at}: unknown field {path} (not in the Kubernetes v1.31 API)"
        )));
    }
    Ok(t)
}

/// Finds the path of the value that makes `T` fail: the shallowest
/// subtree whose removal lets the document parse, searched depth first.
/// serde's own error names the problem but not where it is.
fn wrong_path<T: DeserializeOwned>(value: &Value) -> Option<String> {
    fn search<T: DeserializeOwned>(root: &Value, at: &mut Vec<PathPart>) -> Option<String> {
        let node = get(root, at)?;
        let children: Vec<PathPart> = match node {
            Value::Object(m) => m.keys().cloned().map(PathPart::Key).collect(),
            Value::Array(a) => (0..a.len()).map(PathPart::Index).collect(),
            _ => return None,
        };
        for c in children {
            at.push(c);
            let mut pruned = root.clone();
            remove(&mut pruned, at);
            if serde_json::from_value::<T>(pruned).is_ok() {
                // The problem is in this subtree: deeper if a part of it
                // alone is wrong, else here.
                let deeper = search::<T>(root, at);
                let here = display(at);
                at.pop();
                return Some(deeper.unwrap_or(here));
            }
            at.pop();
        }
        None
    }
    search::<T>(value, &mut Vec::new())
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn get<'a>(v: &'a Value, path: &[PathPart]) -> Option<&'a Value> {
    let mut at = v;
    for p in path {
        at = match p {
            PathPart::Key(k) => at.get(k)?,
            PathPart::Index(i) => at.get(i)?,
        };
    }
    Some(at)
}

/// Removes the value at `path` (a missing optional field then; a required
/// one makes the parse fail, and the search looks elsewhere).
fn remove(v: &mut Value, path: &[PathPart]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut at = v;
    for p in parent {
        let next = match p {
            PathPart::Key(k) => at.get_mut(k),
            PathPart::Index(i) => at.get_mut(i),
        };
        let Some(n) = next else { return };
        at = n;
    }
    match (last, at) {
        (PathPart::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (PathPart::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

fn display(path: &[PathPart]) -> String {
    let mut s = String::new();
    for p in path {
        match p {
            PathPart::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathPart::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The first key of `given` that `back` (the typed value written again)
/// lacks: a key the types dropped. Nulls are absent values either way.
fn unknown_key(given: &Value, back: &Value, path: &str) -> Option<String> {
    match (given, back) {
        (Value::Object(g), Value::Object(b)) => {
            for (k, v) in g {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None if !v.is_null() => return Some(p),
                    None => {}
                    Some(bv) => {
                        if let Some(found) = unknown_key(v, bv, &p) {
                            return Some(found);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(g), Value::Array(b)) => g
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (gv, bv))| unknown_key(gv, bv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Quantities written as YAML numbers (`cpu: 1`, `storage: 1000`): the
/// API server takes them, the typed Quantity wants a string.
fn quantities_as_strings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let quantity_map = matches!(k.as_str(), "limits" | "requests");
                if quantity_map {
                    if let Value::Object(q) = child {
                        for qv in q.values_mut() {
                            if qv.is_number() {
                                *qv = Value::String(qv.to_string());
                            }
                        }
                    }
                } else if k == "sizeLimit" && child.is_number() {
                    *child = Value::String(child.to_string());
                }
                quantities_as_strings(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(quantities_as_strings),
        _ => {}
    }
}

/// Warnings for the fields of a pod spec (at `prefix`) that berth does
/// not do.
fn unsupported(spec: &Value, prefix: &str, at: &str, warnings: &mut Vec<String>) {
    let Some(m) = spec.as_object() else { return };
    for (k, v) in m {
        if !v.is_null() && !POD_SPEC_DONE.contains(&k.as_str()) {
            warnings.push(format!(
                "{at}: field {prefix}.{k} is not supported by berth; ignored"
            ));
        }
    }
    for list in ["containers", "initContainers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let Some(c) = c.as_object() else { continue };
            for (k, v) in c {
                if !v.is_null() && !CONTAINER_DONE.contains(&k.as_str()) {
                    warnings.push(format!(
                        "{at}: field {prefix}.{list}[{i}].{k} is not supported by berth; ignored"
                    ));
                }
            }
            if c.get("imagePullPolicy").and_then(Value::as_str) == Some("Always") {
                warnings.push(format!(
                    "{at}: field {prefix}.{list}[{i}].imagePullPolicy: Always is not done: the store's image is used"
                ));
            }
        }
    }
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let Some(v) = v.as_object() else { continue };
        for k in v.keys() {
            if !matches!(
                k.as_str(),
                "name" | "configMap" | "secret" | "emptyDir" | "hostPath" | "persistentVolumeClaim"
            ) {
                warnings.push(format!(
                    "{at}: field {prefix}.volumes[{i}].{k} is not supported by berth; ignored"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn several_documents_parse_and_empty_ones_are_skipped() {
        let text = format!("---\n{POD}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n---\n");
        let p = parse(&text, "f.yaml").unwrap();
        assert_eq!(p.documents.len(), 2);
        assert!(matches!(p.documents[1], Document::ConfigMap(_)));
    }

    #[test]
    fn a_misspelt_key_is_named_with_its_path() {
        let text = POD.replace(
            "image: busybox",
            "image: busybox\n    imagePullPolcy: Never",
        );
        let e = parse(&text, "f.yaml").unwrap_err().to_string();
        assert_eq!(
            e,
            "f.yaml: document 1 (Pod web): unknown field spec.containers[0].imagePullPolcy (not in the Kubernetes v1.31 API)"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_its_path() {
        let text = POD.replace(
            "image: busybox",
            "image: busybox\n    ports:\n    - containerPort: eighty",
        );
        let e = parse(&text, "f.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("f.yaml: document 1 (Pod web): field spec.containers[0].ports[0].containerPort: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn kinds_names_and_api_versions_are_checked() {
        let e = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("kind Namespace is not supported"), "{e}");
        let e = parse("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metadata.name is missing"), "{e}");
        let e = parse(&POD.replace("apiVersion: v1", "apiVersion: v2"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f: document 1 (Pod web):"), "{e}");
        let e = parse("a: [", "f").unwrap_err().to_string();
        assert!(e.starts_with("f: document 1:"), "{e}");
    }

    #[test]
    fn unsupported_fields_are_warnings_naming_them() {
        let text = POD.replace("  containers:", "  hostIPC: true\n  containers:");
        let p = parse(&text, "f").unwrap();
        assert_eq!(
            p.warnings,
            vec!["f: document 1 (Pod web): field spec.hostIPC is not supported by berth; ignored"]
        );
    }

    #[test]
    fn numeric_quantities_are_taken() {
        let text = POD.replace(
            "image: busybox",
            "image: busybox\n    resources:\n      limits:\n        cpu: 1\n        memory: 1000",
        );
        parse(&text, "f").unwrap();
    }
}
