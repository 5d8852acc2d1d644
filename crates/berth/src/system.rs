//! `system df` and `system check --rebuild`: the store as a whole.

use anyhow::{Context, Result};

use crate::{familiar, format, ps};

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
    // total to take it from.
    let reclaimable = |total: u64, used: u64| {
        let r = total.saturating_sub(used);
        match (r * 100).checked_div(total) {
            Some(pct) => format!("{} ({pct}%)", format::human_size(r, 4)),
            None => format::human_size(r, 4),
        }
    };
    let row =
        |kind: &str, type_name: &str, count: usize, active: usize, size: u64, recl: String| {
            format::context(
                type_name,
                vec![
                    ("Active", V::from(active.to_string())),
                    ("Reclaimable", V::from(recl)),
                    ("Size", V::from(format::human_size(size, 4))),
                    ("TotalCount", V::from(count.to_string())),
                    ("Type", V::from(kind)),
                ],
            )
        };
    let images = engine.images().list()?;
    let (_, all_layers, _) = engine.images().disk_usage()?;
    let (cache_entries, cache_size) = engine.images().cache_usage()?;
    let layers = all_layers.saturating_sub(cache_size);
    let mut active_images = 0;
    let mut used = 0;
    for img in &images {
        if engine.image_in_use(img)? {
            active_images += 1;
            used += img.size;
        }
    }
    let containers = engine.list()?;
    let (mut running, mut total_rw, mut running_rw) = (0, 0, 0);
    for r in &containers {
        let rw = ps::dir_size(&engine.container_dir(&r.id).join("fs/upper"));
        total_rw += rw;
        if matches!(
            r.status,
            berth_engine::Status::Running | berth_engine::Status::Paused
        ) {
            running += 1;
            running_rw += rw;
        }
    }
    let volumes = engine.volumes().list()?;
    let (mut in_use, mut total_vol, mut used_vol) = (0, 0, 0);
    for v in &volumes {
        let size = ps::dir_size(&v.mountpoint);
        total_vol += size;
        if engine.volume_users(&v.name).is_ok_and(|u| !u.is_empty()) {
            in_use += 1;
            used_vol += size;
        }
    }
    let rows = vec![
        row(
            "Images",
            "*formatter.diskUsageImagesContext",
            images.len(),
            active_images,
            layers,
            reclaimable(layers, used.min(layers)),
        ),
        row(
            "Containers",
            "*formatter.diskUsageContainersContext",
            containers.len(),
            running,
            total_rw,
            reclaimable(total_rw, running_rw),
        ),
        row(
            "Local Volumes",
            "*formatter.diskUsageVolumesContext",
            volumes.len(),
            in_use,
            total_vol,
            reclaimable(total_vol, used_vol),
        ),
        // Nothing is in use between builds: all of it can go.
        row(
            "Build Cache",
            "*formatter.diskUsageBuilderContext",
            cache_entries,
            0,
            cache_size,
            format::human_size(cache_size, 4),
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
