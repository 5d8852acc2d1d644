//! `images`, `image ls`, `history`: the image store's listings; and what
//! every image command shares: references, platforms and names as docker
//! prints them, image events.

use anyhow::{bail, Context, Result};
use berth_image::store::{Image, ImageStore};
use berth_image::Reference;
use clap::Subcommand;

use crate::{building, format, invalid_filter, transfer};

#[derive(Debug, clap::Args)]
pub(crate) struct ImagesArgs {
    /// Show all images (no intermediate images exist yet)
    #[arg(short, long)]
    all: bool,
    /// Print only the ids
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Do not truncate ids
    #[arg(long)]
    no_trunc: bool,
    /// Filter: dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE, label=KEY[=VALUE]
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go-template-like format ({{.Repository}} {{.Tag}} {{.ID}} ...) or json
    #[arg(long)]
    format: Option<String>,
    /// Only images of this repository (and tag): REPOSITORY[:TAG], globs allowed
    reference: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Build an image from a Dockerfile and a context
    Build(Box<building::BuildArgs>),
    /// Display detailed information on images (Docker's JSON)
    Inspect {
        /// Go template over the JSON ({{.Id}}, {{json .Config}}, {{range .RepoTags}}...)
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove images
    Rm {
        #[arg(short, long)]
        force: bool,
        /// Do not delete untagged parents (berth's images have none: accepted)
        #[arg(long)]
        no_prune: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Add a name to an image
    Tag { source: String, target: String },
    /// Download an image from a registry
    Pull(transfer::PullArgs),
    /// Upload an image to a registry
    Push(transfer::PushArgs),
    /// Remove untagged images (-a: every image, no container uses one yet)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE], dangling=false
        #[arg(long)]
        filter: Vec<String>,
    },
}

/// `docker.io/library/busybox:latest` as docker prints it: `busybox:latest`.
pub(crate) fn familiar(full: &str) -> String {
    full.parse::<Reference>()
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// An image reference from the command line; the error names what was given.
pub(crate) fn parse_ref(s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
}

/// `linux/arm64`, `linux/arm/v7`.
pub(crate) fn parse_platform(s: &str) -> Result<berth_image::oci::Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match parts[..] {
        [os, arch] | [os, arch, _] if ok(os) && ok(arch) && parts.get(2).is_none_or(|v| ok(v)) => {
            Ok(berth_image::oci::Platform {
                os: os.to_ascii_lowercase(),
                architecture: arch.to_ascii_lowercase(),
                variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            })
        }
        _ => Err(format!(
            "invalid platform {s:?}: use os/arch or os/arch/variant, as linux/arm64"
        )),
    }
}

/// Journals an image event (best effort, like every event).
pub(crate) fn image_event(store: &ImageStore, action: &str, img: &Image, name: Option<&str>) {
    // Through the store's connection: one per command.
    let db = berth_engine::Db::with_connection(store.connection());
    let name = match name {
        Some(n) => n.to_string(),
        None => img.tags.first().map(|t| familiar(t)).unwrap_or_default(),
    };
    db.event("image", action, &img.id.to_string(), &[("name", &name)]);
}

pub(crate) fn split_tag(t: &str) -> (String, String) {
    let f = familiar(t);
    let slash = f.rfind('/').map_or(0, |i| i + 1);
    match f[slash..].rfind(':') {
        Some(i) => (f[..slash + i].to_string(), f[slash + i + 1..].to_string()),
        None => (f, "<none>".into()),
    }
}

/// The rows of one image as docker's client makes them: one per tag,
/// with its repository's digest when digests are shown (one row per
/// digest if there are several), then one per repository known only by
/// digest; `<none>` everywhere for an image nothing names.
pub(crate) fn image_rows(img: &Image, show_digests: bool) -> Vec<(String, String, String)> {
    if !img.is_referenced() {
        return vec![("<none>".into(), "<none>".into(), "<none>".into())];
    }
    let mut digests: Vec<(String, String)> = img
        .digests
        .iter()
        .map(|d| {
            let f = familiar(d);
            match f.split_once('@') {
                Some((repo, dgst)) => (repo.to_string(), dgst.to_string()),
                None => (f, String::new()),
            }
        })
        .collect();
    let mut rows = Vec::new();
    for t in &img.tags {
        let (repo, tag) = split_tag(t);
        let of_repo: Vec<&String> = digests
            .iter()
            .filter(|(r, _)| *r == repo)
            .map(|(_, d)| d)
            .collect();
        if !show_digests || of_repo.is_empty() {
            rows.push((repo, tag, "<none>".into()));
        } else {
            for d in of_repo {
                rows.push((repo.clone(), tag.clone(), d.clone()));
            }
        }
    }
    let tagged: Vec<String> = rows.iter().map(|(r, ..)| r.clone()).collect();
    digests.retain(|(r, _)| !tagged.contains(r));
    for (repo, dgst) in digests {
        if show_digests {
            rows.push((repo, "<none>".into(), dgst));
        } else if !rows.iter().any(|(r, ..)| *r == repo) {
            rows.push((repo, "<none>".into(), String::new()));
        }
    }
    rows
}

pub(crate) fn images(store: &ImageStore, a: &ImagesArgs) -> Result<()> {
    // docker's client shows digests for --digests, or when the format
    // names `{{.Digest}}` as written so.
    let show_digests = a.digests
        || a.format
            .as_deref()
            .is_some_and(|f| f.contains("{{.Digest}}"));
    let mut rows: Vec<(Image, String, String, String)> = Vec::new();
    for img in store.list()? {
        for (repo, tag, digest) in image_rows(&img, show_digests) {
            rows.push((img.clone(), repo, tag, digest));
        }
    }
    // `images REPO[:TAG]` is Docker's reference filter.
    let positional = a.reference.as_ref().map(|r| format!("reference={r}"));
    for f in a.filter.iter().chain(positional.as_ref()) {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("invalid filter {f:?}: use key=value"))?;
        match k {
            "dangling" => {
                let want = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter {f:?}: dangling is true or false"),
                };
                rows.retain(|(img, ..)| img.tags.is_empty() == want);
            }
            "reference" => rows.retain(|(_, repo, tag, _)| {
                format::glob(v, &format!("{repo}:{tag}")) || format::glob(v, repo)
            }),
            "before" | "since" => {
                // docker's daemon names the image it could not find.
                let pivot = store
                    .resolve(v)
                    .map_err(|e| crate::FromDaemon::wrap(e.into(), false))?;
                let at = created_at(&pivot);
                rows.retain(|(img, ..)| {
                    let t = created_at(img);
                    if k == "before" {
                        t < at
                    } else {
                        t > at
                    }
                });
            }
            "label" => {
                let (key, value) = match v.split_once('=') {
                    Some((key, value)) => (key, Some(value)),
                    None => (v, None),
                };
                if key.is_empty() {
                    bail!("invalid filter {f:?}: use label=KEY or label=KEY=VALUE");
                }
                let mut keep = std::collections::HashMap::new();
                for (img, ..) in &rows {
                    if !keep.contains_key(&img.id) {
                        let (_, config) = store.manifest_and_config(img)?;
                        let label = &config["config"]["Labels"][key];
                        let hit = match value {
                            Some(want) => label.as_str() == Some(want),
                            None => !label.is_null(),
                        };
                        keep.insert(img.id.clone(), hit);
                    }
                }
                rows.retain(|(img, ..)| keep[&img.id]);
            }
            other => return Err(invalid_filter(other)),
        }
    }
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for (img, ..) in &rows {
            if seen.insert(img.id.clone()) {
                println!(
                    "{}",
                    if a.no_trunc {
                        img.id.to_string()
                    } else {
                        img.id.hex()[..12].to_string()
                    }
                );
            }
        }
        return Ok(());
    }
    let default = if a.digests {
        r"table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        r"table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    // docker adds the column to a table of the user's that lacks it.
    let user_table = a.format.as_deref().map(|f| {
        if a.digests && f.starts_with("table") && f != "table" && !f.contains("{{.Digest}}") {
            format!("{f}\t{{{{.Digest}}}}")
        } else {
            f.to_string()
        }
    });
    let fmt = format::ListFormat::new(user_table.as_deref(), default)?;
    // docker's size: the layers' file bytes (each image once).
    let mut sizes = std::collections::HashMap::new();
    for (img, ..) in &rows {
        if !sizes.contains_key(&img.id) {
            sizes.insert(img.id.clone(), store.content_size(img)?);
        }
    }
    let contexts = rows.iter().map(|(img, repo, tag, digest)| {
        let size = sizes.get(&img.id).copied().unwrap_or(0);
        image_context(img, repo, tag, digest, size, a.no_trunc, None)
    });
    let header = format::header(&[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Containers", "CONTAINERS"),
        ("VirtualSize", "SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
    ]);
    fmt.write(&header, contexts, &mut std::io::stdout().lock())?;
    Ok(())
}

/// What only `system df -v` knows of an image: how many containers use
/// it, and how much of its size it shares with other images.
pub(crate) struct ImageShare {
    pub containers: usize,
    pub shared: u64,
}

/// Docker's `*formatter.imageContext` of one image row.
pub(crate) fn image_context(
    img: &Image,
    repo: &str,
    tag: &str,
    digest: &str,
    size: u64,
    no_trunc: bool,
    share: Option<ImageShare>,
) -> berth_template::Value {
    use berth_template::Value as V;
    // Docker knows these only from `system df -v`.
    let (containers, shared, unique) = match share {
        Some(s) => (
            s.containers.to_string(),
            format::human_size(s.shared, 4),
            format::human_size(size.saturating_sub(s.shared), 4),
        ),
        None => ("N/A".into(), "N/A".into(), "N/A".into()),
    };
    format::context(
        "*formatter.imageContext",
        vec![
            ("Containers", V::from(containers)),
            (
                "CreatedAt",
                V::from(
                    img.created
                        .as_deref()
                        .map(format::go_time)
                        .unwrap_or_default(),
                ),
            ),
            (
                "CreatedSince",
                V::from(format::since(img.created.as_deref())),
            ),
            ("Digest", V::from(digest)),
            (
                "ID",
                V::from(if no_trunc {
                    img.id.to_string()
                } else {
                    img.id.hex()[..12].to_string()
                }),
            ),
            ("Repository", V::from(repo)),
            ("SharedSize", V::from(shared)),
            ("Size", V::from(format::size(size))),
            ("Tag", V::from(tag)),
            ("UniqueSize", V::from(unique)),
            ("VirtualSize", V::from(format::human_size(size, 4))),
        ],
    )
}

/// When an image was created, for before/since (no time: the start of
/// time, as docker's zero time).
pub(crate) fn created_at(img: &Image) -> time::OffsetDateTime {
    img.created
        .as_deref()
        .and_then(|c| {
            time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn history(
    store: &ImageStore,
    name: &str,
    no_trunc: bool,
    quiet: bool,
    format: Option<&str>,
    human: bool,
) -> Result<()> {
    use berth_template::Value as V;
    let img = store.resolve(name)?;
    let (_, config) = store.manifest_and_config(&img)?;
    let entries = config["history"].as_array().cloned().unwrap_or_default();
    // --human=false: times as RFC 3339 and sizes in bytes (docker's).
    let fmt = format::ListFormat::new(
        format,
        if human {
            r"table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
        } else {
            r"table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
        },
    )?;
    let size_text = |n: u64| {
        if human {
            format::size(n)
        } else {
            n.to_string()
        }
    };
    // Each entry that made a layer has that layer's size, in order, bottom
    // first; the others made none (0B). Sizes the store cannot match to
    // entries are not guessed: N/A.
    let mut sizes = img
        .layers
        .iter()
        .map(|c| store.layer_content_size(c))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter();
    let sizes: Vec<String> = entries
        .iter()
        .map(|h| {
            if h["empty_layer"].as_bool().unwrap_or(false) {
                size_text(0)
            } else {
                sizes.next().map_or_else(|| "N/A".to_string(), size_text)
            }
        })
        .collect();
    let mut rows = Vec::new();
    for (i, h) in entries.iter().enumerate().rev() {
        let id = if i + 1 == entries.len() {
            if no_trunc {
                img.id.to_string()
            } else {
                img.id.hex()[..12].to_string()
            }
        } else {
            "<missing>".to_string()
        };
        if quiet {
            println!("{id}");
            continue;
        }
        let by = h["created_by"].as_str().unwrap_or("").to_string();
        let by = if no_trunc {
            by
        } else {
            format::ellipsis(&by, 45)
        };
        let created = h["created"].as_str();
        let created_at = created.map(format::rfc3339_seconds).unwrap_or_default();
        rows.push(format::context(
            "*image.historyContext",
            vec![
                ("Comment", V::from(h["comment"].as_str().unwrap_or(""))),
                ("CreatedAt", V::from(created_at.as_str())),
                ("CreatedBy", V::from(by)),
                (
                    "CreatedSince",
                    V::from(if human {
                        format::since(created)
                    } else {
                        created_at.clone()
                    }),
                ),
                ("ID", V::from(id)),
                ("Size", V::from(sizes[i].as_str())),
            ],
        ));
    }
    if !quiet {
        let header = format::header(&[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ]);
        fmt.write(&header, rows, &mut std::io::stdout().lock())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_docker_prints_them() {
        assert_eq!(
            split_tag("docker.io/library/busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_tag("localhost:5000/a/b:1"),
            ("localhost:5000/a/b".into(), "1".into())
        );
    }

    #[test]
    fn platforms_parse_as_os_arch_variant() {
        let p = parse_platform("linux/arm/v7").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm", Some("v7"))
        );
        assert_eq!(parse_platform("linux/amd64").unwrap().variant, None);
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/am d64",
        ] {
            let e = parse_platform(bad).unwrap_err();
            assert!(e.contains("os/arch"), "{bad}: {e}");
        }
    }
}
