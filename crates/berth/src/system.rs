//! `system df` and `system check`: the store as a whole.

use anyhow::{bail, Context, Result};
use berth_engine::disk_usage::Usage;
use clap::Subcommand;

use crate::images::familiar;
use crate::{format, store, Cli};

#[derive(Debug, Subcommand)]
pub(crate) enum SystemCommand {
    /// Remove stopped containers, unused networks, dangling images (and
    /// with -a every unused image, with --volumes unused anonymous volumes)
    Prune {
        /// Remove every image no container uses, not only dangling ones
        #[arg(short, long)]
        all: bool,
        /// Prune anonymous volumes too
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Show disk use
    Df {
        /// Go template ({{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
        /// Show every image, container, volume and build cache entry
        #[arg(short, long)]
        verbose: bool,
    },
    /// Find and repair what interrupted commands left behind
    Check {
        /// When the database cannot be trusted: move it aside and make a new
        /// one from the images whose manifest, config and layers are on disk
        /// (deleting nothing)
        #[arg(long)]
        rebuild: bool,
    },
}

/// What `system check` says when the database cannot be trusted: what is
/// wrong, that nothing was touched, and how to recover.
pub(crate) fn untrusted_database(
    root: &std::path::Path,
    d: &berth_image::database::Distrust,
) -> String {
    let db = root.join(berth_image::database::FILE);
    let db = db.display();
    let root = root.display();
    format!(
        "Error: the store's database cannot be trusted, so nothing was checked or deleted\n\
         \x20 database: {db}\n\
         \x20 problem:  {d}\n\
         Removing what this database does not name would delete images that are still intact.\n\
         To recover the images on disk: berth system check --rebuild\n\
         \x20 (moves the database aside, keeps it, and records again every image whose files are all\n\
         \x20 there; tags come back where the old database still reads; containers do not)\n\
         Or start afresh (keeping everything that is there now):\n\
         \x20 1. move the database aside: mv {db} {db}.damaged (and its -wal and -shm files, if any)\n\
         \x20 2. move the content it described aside: mkdir {root}/orphaned && mv {root}/layers {root}/blobs {root}/orphaned/\n\
         \x20 3. load or pull your images again (berth load -i FILE, berth pull NAME); containers must be created again\n\
         \x20 4. once they work, remove {root}/orphaned and {db}.damaged"
    )
}

/// `system check --rebuild` on a database it does not trust.
pub(crate) fn rebuild_database(
    root: &std::path::Path,
    d: &berth_image::database::Distrust,
) -> Result<()> {
    eprintln!("the store's database cannot be trusted: {d}");
    let r = berth_image::rebuild::rebuild(root)
        .with_context(|| format!("rebuild the database of {}", root.display()))?;
    match &r.moved_aside {
        Some(p) => eprintln!(
            "moved the old database aside to {} (kept; remove it once you are done with it)",
            p.display()
        ),
        None => eprintln!("there was no database file to keep"),
    }
    for why in &r.incomplete {
        eprintln!("not recovered: {why}");
    }
    println!("images recovered: {}", r.images.len());
    for id in &r.images {
        println!("  {id}");
    }
    println!("tags recovered: {}", r.tags.len());
    for t in &r.tags {
        println!("  {}", familiar(t));
    }
    println!(
        "containers are not recovered (the next `berth system check` stops any still running from the old database)"
    );
    println!("nothing was deleted: `berth system check` removes what no recovered image names");
    Ok(())
}

/// `system df` as docker shows it: images, containers, local volumes and
/// the build cache (its entries; the layers only it keeps).
pub(crate) fn system_df(engine: &berth_engine::Engine, format: Option<&str>) -> Result<()> {
    use berth_template::Value as V;
    let fmt = format::ListFormat::new(
        format,
        r"table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    )?;
    // Docker's wording: the reclaimable share in percent when there is a
    // total to take it from (the build cache: all of it, and no percent).
    let reclaimable = |u: &Usage, percent: bool| {
        let r = u.reclaimable;
        match (r * 100).checked_div(u.size) {
            Some(pct) if percent => format!("{} ({pct}%)", format::human_size(r, 4)),
            _ => format::human_size(r, 4),
        }
    };
    let row = |kind: &str, type_name: &str, u: &Usage, percent: bool| {
        format::context(
            type_name,
            vec![
                ("Active", V::from(u.active.to_string())),
                ("Reclaimable", V::from(reclaimable(u, percent))),
                ("Size", V::from(format::human_size(u.size, 4))),
                ("TotalCount", V::from(u.count.to_string())),
                ("Type", V::from(kind)),
            ],
        )
    };
    let du = engine.disk_usage()?;
    let rows = vec![
        row(
            "Images",
            "*formatter.diskUsageImagesContext",
            &du.images,
            true,
        ),
        row(
            "Containers",
            "*formatter.diskUsageContainersContext",
            &du.containers,
            true,
        ),
        row(
            "Local Volumes",
            "*formatter.diskUsageVolumesContext",
            &du.volumes,
            true,
        ),
        row(
            "Build Cache",
            "*formatter.diskUsageBuilderContext",
            &du.build_cache,
            false,
        ),
    ];
    let header = format::header(&[
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ]);
    fmt.write(&header, rows, &mut std::io::stdout().lock())
}

/// `system check [--rebuild]`: what interrupted commands left behind, found
/// and removed, once the database is known to be the one that named it.
pub(crate) fn check(cli: &Cli, rebuild: bool) -> Result<()> {
    // Everything below removes what the database does not name (layers,
    // blobs, runtime state, network leftovers): first make sure it is
    // the database that named them.
    let distrust = berth_image::database::audit(&cli.root)
        .with_context(|| format!("audit the store at {}", cli.root.display()))?;
    match (distrust, rebuild) {
        (Some(d), false) => {
            eprintln!("{}", untrusted_database(&cli.root, &d));
            std::process::exit(1);
        }
        (Some(d), true) => return rebuild_database(&cli.root, &d),
        (None, true) => {
            eprintln!("the database is sound: nothing to rebuild; checking as usual");
        }
        (None, false) => {}
    }
    let mut store = store::open(cli)?;
    let r = store.check()?;
    println!("temp files removed: {}", r.temp_files);
    println!("unreferenced blobs removed: {}", r.unreferenced_blobs);
    println!("unreferenced layers removed: {}", r.unreferenced_layers);
    println!("corrupt blobs removed: {}", r.corrupt_blobs.len());
    println!("corrupt layers removed: {}", r.corrupt_layers.len());
    for m in &r.missing {
        println!("missing: {m}");
    }
    let engine = store::open_engine(cli)?;
    let running = |id: &str| {
        engine.find(id).is_ok_and(|c| {
            matches!(
                c.status,
                berth_engine::Status::Running
                    | berth_engine::Status::Paused
                    | berth_engine::Status::Starting
                    | berth_engine::Status::Restarting
            )
        })
    };
    let stale = engine.check_runtime()?;
    println!("container leftovers removed: {}", stale.len());
    for s in &stale {
        println!("  {s}");
    }
    // A pod's endpoint is held by the pod, not a container.
    let running = |id: &str| running(id) || engine.pod_exists(id);
    let mut fixed = engine.check_pods()?;
    fixed.extend(engine.networks().check(running)?);
    fixed.extend(engine.check_resolvers()?);
    println!("network leftovers removed: {}", fixed.len());
    for f in &fixed {
        println!("  {f}");
    }
    if !r.missing.is_empty() {
        bail!(
            "{} missing files: remove and reload the images that use them",
            r.missing.len()
        );
    }
    Ok(())
}

/// `system df -v`: every object with its figures. The default is docker's
/// four tables under their titles; a template (or `json`) runs once over
/// the whole (`.Images`, `.Containers`, `.Volumes`, `.BuildCache`), whose
/// ids and commands are then not shortened, as docker's are not.
pub(crate) fn system_df_verbose(engine: &berth_engine::Engine, format: Option<&str>) -> Result<()> {
    use berth_template::Value as V;
    use std::io::Write;
    let table = format.is_none_or(|f| f.is_empty() || f.starts_with("table"));
    let du = engine.disk_usage_verbose()?;
    let trunc = table;
    let images: Vec<V> = du
        .images
        .iter()
        .flat_map(|u| {
            crate::images::image_rows(&u.image, false)
                .into_iter()
                // docker's df rows carry no digest.
                .map(|(repo, tag, _digest)| {
                    crate::images::image_context(
                        &u.image,
                        &repo,
                        &tag,
                        "",
                        u.size,
                        !trunc,
                        Some(crate::images::ImageShare {
                            containers: u.containers,
                            shared: u.shared,
                        }),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut containers: Vec<_> = du.containers.iter().collect();
    containers.sort_by(|a, b| b.record.created.cmp(&a.record.created));
    let containers: Vec<V> = containers
        .iter()
        .map(|u| crate::ps::container_context(engine, &u.record, !trunc, format::size(u.size_rw)))
        .collect();
    let volumes: Vec<V> = du
        .volumes
        .iter()
        .map(|u| crate::volumes::volume_context(&u.volume, Some((u.links, u.size))))
        .collect();
    let cache: Vec<V> = du
        .build_cache
        .iter()
        .map(|e| {
            format::context(
                "*formatter.buildCacheContext",
                vec![
                    ("CacheType", V::from("regular")),
                    ("CreatedAt", V::from(format::go_time(&e.created))),
                    ("CreatedSince", V::from(format::since(Some(&e.created)))),
                    ("Description", V::from("")),
                    (
                        "ID",
                        V::from(if trunc {
                            e.key.chars().take(12).collect::<String>()
                        } else {
                            e.key.clone()
                        }),
                    ),
                    ("InUse", V::from(false)),
                    ("LastUsedAt", V::from(format::go_time(&e.last_used))),
                    ("LastUsedSince", V::from(format::since(Some(&e.last_used)))),
                    ("Parent", V::from("")),
                    ("Shared", V::from(e.shared)),
                    ("Size", V::from(format::human_size(e.size, 4))),
                    // berth keeps when an entry was last used, not how often.
                    ("UsageCount", V::from("N/A")),
                ],
            )
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if !table {
        let f = match format {
            Some("json") => "{{json .}}",
            Some(f) => f,
            None => unreachable!("a template was given"),
        };
        let list = |items: Vec<V>| V::List(std::rc::Rc::new(items), berth_template::Elem::Any);
        let whole = format::go_struct(
            "*formatter.diskUsageContext",
            vec![
                ("Images", list(images)),
                ("Containers", list(containers)),
                ("Volumes", list(volumes)),
                ("BuildCache", list(cache)),
            ],
            true,
            Vec::new(),
        );
        let t = berth_template::Template::parse(f)
            .map_err(|e| format::failure(format!("template parsing error: {e}"), 1))?;
        let text = t
            .execute(&whole)
            .map_err(|e| format::failure(e.to_string(), 1))?;
        // docker's client writes the template's output as it is, with no
        // newline after it.
        write!(out, "{text}")?;
        return Ok(());
    }
    let section = |out: &mut std::io::StdoutLock<'_>,
                   title: &str,
                   tmpl: &str,
                   header: &[(&str, &str)],
                   rows: Vec<V>|
     -> Result<()> {
        writeln!(out, "{title}\n")?;
        format::ListFormat::new(Some(tmpl), tmpl)?.write(&format::header(header), rows, out)
    };
    section(
        &mut out,
        "Images space usage:",
        r"table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.VirtualSize}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &[
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("ID", "IMAGE ID"),
            ("CreatedSince", "CREATED"),
            ("VirtualSize", "SIZE"),
            ("SharedSize", "SHARED SIZE"),
            ("UniqueSize", "UNIQUE SIZE"),
            ("Containers", "CONTAINERS"),
        ],
        images,
    )?;
    writeln!(out)?;
    section(
        &mut out,
        "Containers space usage:",
        r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &[
            ("ID", "CONTAINER ID"),
            ("Image", "IMAGE"),
            ("Command", "COMMAND"),
            ("LocalVolumes", "LOCAL VOLUMES"),
            ("Size", "SIZE"),
            ("RunningFor", "CREATED"),
            ("Status", "STATUS"),
            ("Names", "NAMES"),
        ],
        containers,
    )?;
    writeln!(out)?;
    section(
        &mut out,
        "Local Volumes space usage:",
        r"table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &[
            ("Name", "VOLUME NAME"),
            ("Links", "LINKS"),
            ("Size", "SIZE"),
        ],
        volumes,
    )?;
    writeln!(out)?;
    section(
        &mut out,
        &format!(
            "Build cache usage: {}",
            format::human_size(du.build_cache_size, 4)
        ),
        r"table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &[
            ("ID", "CACHE ID"),
            ("CacheType", "CACHE TYPE"),
            ("Size", "SIZE"),
            ("CreatedSince", "CREATED"),
            ("LastUsedSince", "LAST USED"),
            ("UsageCount", "USAGE"),
            ("Shared", "SHARED"),
        ],
        cache,
    )
}
