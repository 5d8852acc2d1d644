//! `import`, `load`, `save`: images into and out of archives.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_image::archive;
use berth_image::store::{Image, ImageStore};

use crate::images::{familiar, image_event, parse_ref};

/// `import FILE|- [REFERENCE]`: a rootfs tarball as a one-layer image.
pub(crate) fn import(
    store: &mut ImageStore,
    file: &str,
    reference: Option<&str>,
    change: &[String],
    message: Option<&str>,
    platform: Option<&str>,
) -> Result<()> {
    let tags = reference
        .iter()
        .map(|r| parse_ref(r))
        .collect::<Result<Vec<_>>>()?;
    let platform = platform
        .filter(|p| !p.is_empty())
        .map(import_platform)
        .transpose()
        .map_err(|e| crate::FromDaemon::wrap(anyhow::anyhow!(e), false))?;
    let img = if file == "-" {
        archive::import(
            store,
            std::io::stdin().lock(),
            change,
            message,
            platform.as_ref(),
            &tags,
        )?
    } else {
        let f = crate::errors::open_as_docker(Path::new(file))?;
        archive::import_file(store, f, change, message, platform.as_ref(), &tags)?
    };
    image_event(store, "import", &img, None);
    println!("{}", img.id);
    Ok(())
}

/// `import --platform`, read as docker's daemon reads it (containerd's
/// platform syntax: `os`, `arch`, `os/arch` or `os/arch/variant`, common
/// aliases normalised), in its words; only Linux images can be imported.
/// Docker 20.10 then records the host's architecture whatever was asked
/// (later Dockers record the platform given, as berth does).
fn import_platform(s: &str) -> Result<berth_image::oci::Platform, String> {
    const OSES: &[&str] = &[
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "windows",
        "zos",
    ];
    const ARCHES: &[&str] = &[
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "ppc64",
        "ppc64le",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    ];
    let unknown = || format!("{s:?}: unknown operating system or architecture: invalid argument");
    let lower = s.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    if let Some(bad) = s.split('/').find(|part| {
        part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }) {
        return Err(format!(
            "{bad:?} is an invalid component of {s:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
        ));
    }
    if parts.len() > 3 {
        return Err(format!(
            "{s:?}: cannot parse platform specifier: invalid argument"
        ));
    }
    let arch = |a: &str| -> Option<String> {
        let a = match a {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "i386" => "386",
            a => a,
        };
        ARCHES.contains(&a).then(|| a.to_string())
    };
    // With the OS named, containerd takes any architecture.
    let named = |a: &str| arch(a).unwrap_or_else(|| a.to_string());
    let (os, architecture, variant) = match parts[..] {
        [one] if OSES.contains(&one) => (
            one.to_string(),
            berth_image::oci::host_platform().architecture,
            None,
        ),
        [one] => ("linux".to_string(), arch(one).ok_or_else(unknown)?, None),
        [os, a] if OSES.contains(&os) => (os.to_string(), named(a), None),
        [os, a, v] if OSES.contains(&os) => (os.to_string(), named(a), Some(v.to_string())),
        _ => return Err(unknown()),
    };
    if os != "linux" {
        return Err("operating system is not supported".into());
    }
    Ok(berth_image::oci::Platform {
        os,
        architecture,
        variant,
    })
}

/// `load [-i FILE|DIR]`: a docker or OCI archive, or an OCI layout directory.
pub(crate) fn load(
    store: &mut ImageStore,
    input: Option<&Path>,
    platform: Option<&berth_image::oci::Platform>,
) -> Result<()> {
    let loaded = match input {
        Some(p) if p.is_dir() => archive::load_dir(store, p, platform)?,
        Some(p) => archive::load_file(store, crate::errors::open_as_docker(p)?, platform)?,
        None => archive::load(store, std::io::stdin().lock(), platform)?,
    };
    for archive::Loaded { image: img, names } in loaded {
        image_event(store, "load", &img, None);
        // The names the archive gave, not the others the image had.
        if names.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        // -q quiets progress only: docker prints these lines still.
        for t in &names {
            println!("Loaded image: {}", familiar(&t.to_string()));
        }
    }
    Ok(())
}

/// `save [-o FILE] [--format F] IMAGE...`; `open` opens the store once
/// the format is known to be one berth writes.
pub(crate) fn save(
    open: impl FnOnce() -> Result<ImageStore>,
    output: Option<&Path>,
    format: &str,
    images: &[String],
) -> Result<()> {
    if format == "oci-dir" {
        let store = open()?;
        let dir = output.context("save --format oci-dir needs -o DIRECTORY")?;
        let mut sel = Vec::new();
        for name in images {
            let img = store.resolve(name)?;
            let tags = img.tags.iter().map(|t| familiar(t)).collect();
            sel.push((img, tags));
        }
        archive::save_oci_dir(&store, &sel, dir)?;
        return Ok(());
    }
    type Saver = fn(
        &ImageStore,
        &[(Image, Vec<String>)],
        Box<dyn std::io::Write>,
    ) -> Result<(), berth_image::store::StoreError>;
    let save: Saver = match format {
        "docker-archive" => |s, i, o| archive::save_docker(s, i, o),
        "oci-archive" => |s, i, o| archive::save_oci(s, i, o),
        other => {
            bail!("save --format {other:?}: use docker-archive, oci-archive or oci-dir")
        }
    };
    let store = open()?;
    let mut sel = Vec::new();
    for name in images {
        let img = store.resolve(name)?;
        let tags = match parse_ref(name) {
            Ok(r) if img.tags.contains(&r.to_string()) => vec![familiar(&r.to_string())],
            _ => img.tags.iter().map(|t| familiar(t)).collect(),
        };
        sel.push((img, tags));
    }
    match output {
        Some(p) => {
            // A device, fifo or socket (`-o /dev/null`, a pipe) is
            // written into, as docker does: renaming a file over it
            // would replace the host's /dev/null with a file.
            let target = follow_links(p);
            let special = std::fs::metadata(&target).is_ok_and(|m| !m.is_file());
            if special {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .with_context(|| format!("open {}", p.display()))?;
                save(&store, &sel, Box::new(std::io::BufWriter::new(f)))?;
            } else {
                // A file is written beside (through a symlink, beside
                // its target) and renamed when complete: an
                // interrupted save leaves no half archive under the
                // name.
                let tmp = target.with_extension("berth-partial");
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("create {}", tmp.display()))?;
                save(&store, &sel, Box::new(std::io::BufWriter::new(f)))?;
                std::fs::rename(&tmp, &target).with_context(|| format!("write {}", p.display()))?;
            }
        }
        None => {
            let out = std::io::stdout();
            if std::io::IsTerminal::is_terminal(&out) {
                bail!("refusing to write an archive to a terminal: use -o FILE or a redirect");
            }
            save(&store, &sel, Box::new(out.lock()))?;
        }
    }
    Ok(())
}

/// Where writing to `p` lands: its symlinks followed, even to a name that
/// does not exist yet (as opening it for writing would).
fn follow_links(p: &Path) -> PathBuf {
    let mut at = p.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&at) {
            Ok(next) => {
                at = match at.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                }
            }
            Err(_) => break,
        }
    }
    at
}
