//! `-v` and `--mount`: the mounts `run` and `create` take, as docker
//! reads them.

use anyhow::{bail, Result};
use berth_engine::config::{Mount, MountSyntax};

/// `-v [SOURCE:]DESTINATION[:OPTIONS]`: a bind when the source is a path,
/// else a named (or, with no source, anonymous) volume.
pub(super) fn parse_volume(v: &str) -> Result<Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        // An anonymous volume at this path.
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => bail!("invalid volume specification {v:?}"),
    };
    let mut m = Mount {
        kind: if src.is_empty() || !src.starts_with('/') {
            "volume"
        } else {
            "bind"
        }
        .into(),
        source: src.to_string(),
        destination: dst.to_string(),
        read_only: false,
        options: vec![],
        create_source: src.starts_with('/'),
        syntax: MountSyntax::Short,
        mode: opts.to_string(),
    };
    if m.kind == "volume" && !src.is_empty() {
        berth_engine::volumes::validate(src)?;
    }
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "rw" | "z" | "Z" | "consistent" | "cached" | "delegated" | "nocopy" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                m.options.push(o.to_string())
            }
            _ => bail!("invalid volume option {o:?} in {v:?}"),
        }
    }
    Ok(m)
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly]`.
pub(super) fn parse_mount(s: &str) -> Result<Mount> {
    let mut m = Mount {
        kind: "volume".into(),
        syntax: MountSyntax::Long,
        ..Default::default()
    };
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => m.kind = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.destination = v.to_string(),
            "readonly" | "ro" => m.read_only = v.is_empty() || v == "true" || v == "1",
            "bind-propagation" => m.options.push(v.to_string()),
            "tmpfs-size" => m.options.push(format!("size={v}")),
            "tmpfs-mode" => m.options.push(format!("mode={v}")),
            _ => bail!("invalid --mount field {k:?} in {s:?}"),
        }
    }
    match m.kind.as_str() {
        "bind" if m.source.starts_with('/') => {}
        "bind" => bail!("invalid --mount {s:?}: a bind needs an absolute source"),
        "tmpfs" => m.source = "tmpfs".into(),
        "volume" if m.source.is_empty() => {}
        "volume" => berth_engine::volumes::validate(&m.source)?,
        k => bail!("invalid --mount type {k:?}"),
    }
    if m.destination.is_empty() {
        bail!("invalid --mount {s:?}: target is required");
    }
    Ok(m)
}
