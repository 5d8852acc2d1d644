//! `berth manifest inspect`: docker's `manifest inspect`, which reads an
//! image's manifest (or manifest list) from its registry and prints it as
//! docker's client re-encodes it: its own field order, tab-indented; `-v`
//! wraps each image manifest with its reference and descriptor.
//!
//! Local manifest lists (`manifest create`, `annotate`, `push`, `rm`) are
//! not implemented: those subcommands say so.

use anyhow::{bail, Result};
use berth_image::reference::Reference;
use berth_registry::{Client, RegistryError};
use serde_json::Value;

use crate::errors::ClientSide;
use crate::transfer::RegistryArgs;

#[derive(Debug, clap::Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list
    #[command(override_usage = "berth manifest inspect [OPTIONS] [MANIFEST_LIST] MANIFEST")]
    Inspect {
        /// Allow communication with an insecure registry
        #[arg(long)]
        insecure: bool,
        /// Output additional info including layers and platform
        #[arg(short, long)]
        verbose: bool,
        #[arg(value_name = "MANIFEST", required = true, num_args = 1..=2)]
        names: Vec<String>,
    },
    /// Create a local manifest list (not implemented in berth)
    Create {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Add information to a local manifest list (not implemented in berth)
    Annotate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Push a local manifest list (not implemented in berth)
    Push {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Delete local manifest lists (not implemented in berth)
    Rm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

pub fn manifest(c: &ManifestCommand) -> Result<i32> {
    let (insecure, verbose, names) = match c {
        ManifestCommand::Inspect {
            insecure,
            verbose,
            names,
        } => (*insecure, *verbose, names),
        ManifestCommand::Create { .. }
        | ManifestCommand::Annotate { .. }
        | ManifestCommand::Push { .. }
        | ManifestCommand::Rm { .. } => bail!(
            "berth has no local manifest lists: manifest create, annotate, push and rm are not implemented (berth pull --platform and push handle one platform's image)"
        ),
    };
    let given = names.last().map_or("", String::as_str);
    let Ok(r) = given.parse::<Reference>() else {
        return Err(ClientSide("invalid reference format".into()).into());
    };
    // `inspect LIST MANIFEST` reads a local list, and berth has none.
    if names.len() == 2 {
        return Err(ClientSide(format!("No such manifest: {r}")).into());
    }
    // Docker's manifest client trusts the registry's TLS unless told
    // --insecure, loopback included (unlike its daemon).
    let registry = RegistryArgs {
        tls_verify: Some(!insecure),
        cert_dir: None,
        authfile: None,
        creds: None,
    };
    let client = registry.client(&r, vec![Client::scope(&r.repository, "pull")])?;
    let value = berth_registry::inspect::inspect(&client, &r, verbose)
        .map_err(|e| as_docker(e, &r, &client))?;
    // Docker's client indents a manifest list three spaces, everything
    // else a tab.
    let unit = if !verbose && value.get("manifests").is_some() {
        "   "
    } else {
        "\t"
    };
    println!("{}", to_docker_json(&value, unit)?);
    Ok(0)
}

/// Docker's client's words for a failed fetch: what it could not find is
/// "no such manifest" (a registry that speaks plain HTTP without
/// --insecure included); nothing listening fails the transport's ping.
fn as_docker(e: RegistryError, r: &Reference, client: &Client) -> anyhow::Error {
    let host = &client.endpoint.host;
    match e {
        RegistryError::ManifestUnknown { .. }
        | RegistryError::RepositoryUnknown { .. }
        | RegistryError::Tls { .. } => ClientSide(format!("no such manifest: {r}")).into(),
        RegistryError::ConnectionRefused { .. } => ClientSide(format!(
            "failed to configure transport: error pinging v2 registry: Get \"https://{host}/v2/\": dial tcp {host}: connect: connection refused"
        ))
        .into(),
        e => e.into(),
    }
}

/// Go's `json.MarshalIndent(v, "", unit)`: `<`, `>` and `&` escaped as
/// Go escapes them.
fn to_docker_json(v: &Value, unit: &str) -> Result<String> {
    Ok(crate::format::indented_json(v, unit)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}
