//! `version`: berth's own version in Docker's layout.

use anyhow::Result;
use serde_json::json;

use crate::format;

/// `version`: Docker's fields, so that `version --format '{{.Server.Version}}'`
/// answers; the "server" is the engine each berth command runs.
pub(crate) fn version(format: Option<&str>) -> Result<()> {
    let v = env!("CARGO_PKG_VERSION");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let model = json!({
        "Client": {"Platform": {"Name": "berth"}, "Version": v, "Os": "linux", "Arch": arch, "Context": "default"},
        "Server": {
            "Platform": {"Name": "berth (no daemon: each command runs the engine)"},
            "Version": v, "Os": "linux", "Arch": arch,
            "Components": [
                {"Name": "Engine", "Version": v},
                {"Name": "berth-runtime", "Version": v, "Details": {"OCIVersion": berth_runtime::OCI_VERSION}},
            ],
        },
    });
    match format {
        Some("json") => println!("{model}"),
        Some(f) => println!(
            "{}",
            format::render_named(f, "version", &format::typed(&model, "system.versionInfo"))?
        ),
        None => {
            println!("Client:");
            println!(" Version:           {v}");
            println!(" OS/Arch:           linux/{arch}");
            println!(" Context:           default");
            println!();
            println!("Server: berth (no daemon: each command runs the engine)");
            println!(" Engine:");
            println!("  Version:          {v}");
            println!("  OS/Arch:          linux/{arch}");
            println!(" berth-runtime:");
            println!("  Version:          {v}");
            println!("  OCI runtime-spec: {}", berth_runtime::OCI_VERSION);
        }
    }
    Ok(())
}
