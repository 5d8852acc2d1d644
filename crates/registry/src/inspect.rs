//! `manifest inspect`: an image's manifest (or manifest list) as docker's
//! client shows it: re-read into its own types, so that its field order is
//! docker's whatever order the registry stored; with `verbose`, each image
//! manifest wrapped with its reference and descriptor (the platform from
//! the list, or from the image's config).

use berth_image::reference::Reference;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Client;
use crate::error::{RegistryError, Result};
use crate::pull::{fetch_config, fetch_manifest, manifest_reference, Fetched};

/// A descriptor as docker's distribution types order it.
#[derive(Debug, Serialize, Deserialize)]
struct Descriptor {
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    media_type: String,
    #[serde(default)]
    size: i64,
    digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

/// A platform as docker's manifest list types order it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    os_version: String,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    variant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    features: Option<Vec<String>>,
}

/// What every manifest starts with (docker's `manifest.Versioned`).
#[derive(Debug, Serialize, Deserialize)]
struct Versioned {
    #[serde(rename = "schemaVersion")]
    schema_version: i64,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    media_type: String,
}

/// An image manifest (Docker schema 2 or OCI) in docker's field order.
#[derive(Debug, Serialize, Deserialize)]
struct ImageManifest {
    #[serde(flatten)]
    versioned: Versioned,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Map<String, Value>>,
}

/// A manifest list (or OCI index) in docker's field order.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestList {
    #[serde(flatten)]
    versioned: Versioned,
    manifests: Vec<Descriptor>,
}

/// The manifest `r` names (its digest, tag, or `latest`), in docker's
/// shape.
pub fn inspect(client: &Client, r: &Reference, verbose: bool) -> Result<Value> {
    let fetched = fetch_manifest(
        client,
        &r.repository,
        &manifest_reference(r),
        r.digest.as_ref(),
    )?;
    if verbose {
        verbose_value(client, r, &fetched)
    } else {
        shaped(&fetched)
    }
}

fn protocol(f: &Fetched) -> impl Fn(serde_json::Error) -> RegistryError + '_ {
    move |e| RegistryError::Protocol(format!("manifest {}: {e}", f.digest))
}

/// The fetched manifest re-read into docker's shapes.
fn shaped(f: &Fetched) -> Result<Value> {
    if f.is_index() {
        let list: ManifestList = serde_json::from_slice(&f.bytes).map_err(protocol(f))?;
        serde_json::to_value(list).map_err(RegistryError::Encode)
    } else {
        let m: ImageManifest = serde_json::from_slice(&f.bytes).map_err(protocol(f))?;
        serde_json::to_value(m).map_err(RegistryError::Encode)
    }
}

/// `-v`: each image manifest with its reference and descriptor (the
/// platform from its config for a single image, from the list for a
/// list's members, which are listed as an array).
fn verbose_value(client: &Client, r: &Reference, f: &Fetched) -> Result<Value> {
    let one = |m: &Fetched, platform: Option<Platform>, reference: String| -> Result<Value> {
        let manifest: ImageManifest = serde_json::from_slice(&m.bytes).map_err(protocol(m))?;
        let platform = match platform {
            Some(p) => p,
            None => config_platform(client, &r.repository, &manifest.config)?,
        };
        let key = if m.media_type == berth_image::oci::OCI_MANIFEST {
            "OCIManifest"
        } else {
            "SchemaV2Manifest"
        };
        let mut v = serde_json::Map::new();
        v.insert("Ref".into(), Value::from(reference));
        v.insert(
            "Descriptor".into(),
            serde_json::json!({
                "mediaType": m.media_type,
                "digest": m.digest.to_string(),
                "size": m.bytes.len(),
                "platform": platform,
            }),
        );
        v.insert(
            key.into(),
            serde_json::to_value(&manifest).map_err(RegistryError::Encode)?,
        );
        Ok(Value::Object(v))
    };
    if !f.is_index() {
        return one(f, None, r.to_string());
    }
    let list: ManifestList = serde_json::from_slice(&f.bytes).map_err(protocol(f))?;
    let mut all = Vec::new();
    for d in list.manifests {
        let digest = d
            .digest
            .parse()
            .map_err(|e| RegistryError::Protocol(format!("manifest list {}: {e}", f.digest)))?;
        let m = fetch_manifest(client, &r.repository, &d.digest, Some(&digest))?;
        // Docker names each member by the list's reference plus its digest.
        all.push(one(&m, d.platform, format!("{r}@{}", d.digest))?);
    }
    Ok(Value::Array(all))
}

/// The platform an image's config names.
fn config_platform(client: &Client, repository: &str, config: &Descriptor) -> Result<Platform> {
    let size = u64::try_from(config.size).unwrap_or(0);
    let config = fetch_config(client, repository, &config.digest, size)?;
    let text = |k: &str| config[k].as_str().unwrap_or("").to_string();
    Ok(Platform {
        architecture: text("architecture"),
        os: text("os"),
        os_version: text("os.version"),
        os_features: None,
        variant: text("variant"),
        features: None,
    })
}
