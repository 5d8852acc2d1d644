//! `update`: new resource limits for a running container.

use oci_spec::runtime::LinuxResources;
use serde_json::Value;

use super::Container;
use crate::error::{Error, Result};
use crate::state::Status;

/// Overlays the fields set in `new` on `old` (JSON objects, recursively).
fn merge(old: &mut Value, new: &Value) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in n {
                if v.is_null() {
                    continue;
                }
                merge(o.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (o, n) => *o = n.clone(),
    }
}

impl Container {
    /// Applies the limits set in `resources` (the others stay) and records
    /// them in the container's config.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<()> {
        if self.status() == Status::Stopped {
            return Err(Error::NotRunning);
        }
        self.cgroups()?.update(resources)?;
        let mut linux = self.state.config.linux().clone().unwrap_or_default();
        let mut current = serde_json::to_value(linux.resources().clone().unwrap_or_default())
            .map_err(|source| Error::Encode {
                what: "resources",
                source,
            })?;
        let change = serde_json::to_value(resources).map_err(|source| Error::Encode {
            what: "resources",
            source,
        })?;
        merge(&mut current, &change);
        let merged: LinuxResources =
            serde_json::from_value(current).map_err(|source| Error::Encode {
                what: "resources",
                source,
            })?;
        linux.set_resources(Some(merged));
        self.state.config.set_linux(Some(linux));
        self.dir.save(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_is_not_changed() {
        let mut old = serde_json::json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        merge(
            &mut old,
            &serde_json::json!({"memory": {"limit": 3, "swap": null}}),
        );
        assert_eq!(
            old,
            serde_json::json!({"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}})
        );
    }
}
