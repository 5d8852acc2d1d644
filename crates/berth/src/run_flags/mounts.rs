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
        ..Default::default()
    };
    if m.kind == "volume" && !src.is_empty() {
        berth_engine::volumes::validate(src)?;
    }
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "rw" | "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            // The image's files are not copied into the volume.
            "nocopy" => {
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .no_copy = true
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                m.options.push(o.to_string())
            }
            _ => bail!("invalid volume option {o:?} in {v:?}"),
        }
    }
    Ok(m)
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,option...]`, read
/// as docker's client reads it (a CSV record of key=value fields; its
/// words for what it refuses, which clap prints as `invalid argument "..."
/// for "--mount" flag: ...`). What docker's daemon refuses (a relative
/// path, a propagation mode it does not know...) the engine refuses at
/// create ([`Mount::validate`]).
pub(crate) fn parse_mount(s: &str) -> Result<Mount, String> {
    let mut m = Mount {
        kind: "volume".into(),
        syntax: MountSyntax::Long,
        ..Default::default()
    };
    let mut propagation = String::new();
    let (mut bind_opts, mut tmpfs_opts) = (false, false);
    let mut tmpfs_size = None;
    let mut tmpfs_mode = None;
    let invalid = |k: &str, v: &str| format!("invalid value for {k}: {v}");
    for field in csv_fields(s)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "volume-nocopy" => {
                    m.volume_options
                        .get_or_insert_with(Default::default)
                        .no_copy = true
                }
                "bind-nonrecursive" => {
                    m.nonrecursive = true;
                    bind_opts = true;
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match key.as_str() {
            "type" => m.kind = value.to_lowercase(),
            "source" | "src" => m.source = value.to_string(),
            "target" | "dst" | "destination" => m.destination = value.to_string(),
            "readonly" | "ro" => {
                m.read_only = go_bool(value).ok_or_else(|| invalid(&key, value))?
            }
            "consistency" => m.consistency = value.to_lowercase(),
            "bind-propagation" => {
                propagation = value.to_lowercase();
                bind_opts = true;
            }
            "bind-nonrecursive" => {
                m.nonrecursive = go_bool(value).ok_or_else(|| invalid(&key, value))?;
                bind_opts = true;
            }
            "volume-nocopy" => {
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .no_copy = go_bool(value).ok_or_else(|| invalid(&key, value))?;
            }
            "volume-label" | "volume-opt" => {
                let (k, v) = value.split_once('=').unwrap_or((value, ""));
                let o = m.volume_options.get_or_insert_with(Default::default);
                let map = if key == "volume-label" {
                    &mut o.labels
                } else {
                    &mut o.driver_options
                };
                map.insert(k.to_string(), v.to_string());
            }
            "volume-driver" => {
                m.volume_options.get_or_insert_with(Default::default).driver = value.to_string();
            }
            "tmpfs-size" => {
                tmpfs_size =
                    Some(berth_relay::size::ram_in_bytes(value).map_err(|_| invalid(&key, value))?);
                tmpfs_opts = true;
            }
            "tmpfs-mode" => {
                tmpfs_mode = Some(u32::from_str_radix(value, 8).map_err(|_| invalid(&key, value))?);
                tmpfs_opts = true;
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.kind.is_empty() {
        return Err("type is required".into());
    }
    if m.destination.is_empty() {
        return Err("target is required".into());
    }
    for (given, kind) in [
        (m.volume_options.is_some(), "volume"),
        (bind_opts, "bind"),
        (tmpfs_opts, "tmpfs"),
    ] {
        if given && m.kind != kind {
            return Err(format!(
                "cannot mix '{kind}-*' options with mount type '{}'",
                m.kind
            ));
        }
    }
    if !propagation.is_empty() {
        m.options.push(propagation);
    }
    if let Some(n) = tmpfs_size {
        m.options.push(format!("size={n}"));
    }
    if let Some(mode) = tmpfs_mode {
        m.options.push(format!("mode={mode:o}"));
    }
    Ok(m)
}

/// Go's strconv.ParseBool.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One CSV record's fields, as Go's encoding/csv reads them: a field that
/// starts with `"` runs to the closing quote (`""` is a quote in it).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => {
                        return Err(
                            "parse error on line 1: extraneous or missing \" in quoted-field"
                                .into(),
                        )
                    }
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {}
                Some(_) => {
                    return Err(
                        "parse error on line 1: extraneous or missing \" in quoted-field".into(),
                    )
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        out.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_fields_are_read_as_docker_s_client_reads_them() {
        let m = parse_mount("TYPE=BIND,SRC=/tmp,DST=/x,ro=0,bind-propagation=rshared").unwrap();
        assert_eq!((m.kind.as_str(), m.read_only), ("bind", false));
        assert_eq!(m.options, vec!["rshared".to_string()]);
        let m = parse_mount("type=tmpfs,dst=/x,tmpfs-size=1g,tmpfs-mode=0700").unwrap();
        assert_eq!(
            m.options,
            vec!["size=1073741824".to_string(), "mode=700".to_string()]
        );
        let m = parse_mount("type=volume,src=v,dst=/x,volume-nocopy,volume-label=a=b,volume-opt=o")
            .unwrap();
        let o = m.volume_options.unwrap();
        assert!(o.no_copy);
        assert_eq!(o.labels["a"], "b");
        assert_eq!(o.driver_options["o"], "");
        for (bad, why) in [
            (
                "type=tmpfs,dst=/x,tmpfs-size=-1",
                "invalid value for tmpfs-size: -1",
            ),
            (
                "type=tmpfs,dst=/x,tmpfs-mode=9",
                "invalid value for tmpfs-mode: 9",
            ),
            (
                "type=bind,src=/tmp,dst=/x,ro=yes",
                "invalid value for ro: yes",
            ),
            (
                "type=bind,src=/tmp,dst=/x,foo=bar",
                "unexpected key 'foo' in 'foo=bar'",
            ),
            ("foo", "invalid field 'foo' must be a key=value pair"),
            ("type=,dst=/x", "type is required"),
            ("type=bind,src=/tmp", "target is required"),
            ("\"type=bind,src=/tmp,dst=/x\"", "target is required"),
            (
                "type=tmpfs,dst=/x,volume-nocopy",
                "cannot mix 'volume-*' options with mount type 'tmpfs'",
            ),
            (
                "type=volume,dst=/x,tmpfs-size=1",
                "cannot mix 'tmpfs-*' options with mount type 'volume'",
            ),
            (
                "type=volume,dst=/x,bind-propagation=shared",
                "cannot mix 'bind-*' options with mount type 'volume'",
            ),
        ] {
            assert_eq!(parse_mount(bad).unwrap_err(), why, "{bad}");
        }
    }
}
