//! Faults a store survives: its database emptied, removed, damaged or
//! replaced (then `system check` deletes nothing, says what is wrong and how
//! to recover, and every other command fails with one line naming the
//! file), and a container stopped in its restart back-off (then `stop`,
//! `kill` and `rm -f` return at once, as Docker's do, and it stays stopped).

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use berth_testkit::store::Store;
use berth_testkit::{expect_code, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// These tests import images and run containers: root only. Without it
/// they say they were skipped, and fail under CI, where nothing may be
/// skipped silently.
fn root_or_skip(test: &str) -> bool {
    if berth_testkit::is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root, and CI is set"
    );
    eprintln!("skipped {test}: needs root");
    false
}

/// A store with busybox imported and a container made, on a runroot of
/// its own.
fn store() -> Store {
    store_and_image().0
}

/// As [`store`], and the image's id.
fn store_and_image() -> (Store, String) {
    let run = tempfile::tempdir().unwrap();
    let runroot = run.path().to_path_buf();
    let s = Store::empty(BIN).flag("--runroot").flag(&runroot).keep(run);
    let id = s.import_busybox("busybox", &[]);
    s.ok(&[
        "create",
        "--name",
        "kept",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    (s, id)
}

/// `system check --rebuild` on a database it does not trust: the old
/// database moved aside and kept as it was, the image recorded again from
/// its files (with its tag when `tag` could be salvaged), usable, and
/// nothing deleted then or by the next `system check`.
fn rebuild_recovers(s: &Store, before: &[PathBuf], id: &str, tag: bool) {
    let old = std::fs::read(db_path(s)).ok();
    let o = s.run(&["system", "check", "--rebuild"]);
    expect_code(&o, 0, "system check --rebuild");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    match old {
        Some(old) => {
            let aside = err
                .lines()
                .find_map(|l| l.strip_prefix("moved the old database aside to "))
                .and_then(|l| l.split(' ').next())
                .unwrap_or_else(|| panic!("does not say where the database went: {err}"));
            assert_eq!(
                std::fs::read(aside).unwrap(),
                old,
                "the old database was not kept as it was"
            );
        }
        None => assert!(err.contains("no database file to keep"), "{err}"),
    }
    assert!(
        stdout(&o).contains(id),
        "{id} not recovered: {}",
        stdout(&o)
    );
    let images = stdout(&s.run(&["images", "--no-trunc"]));
    assert!(images.contains(id), "images: {images}");
    assert_eq!(images.contains("busybox"), tag, "images: {images}");
    let o = s.run(&["run", "--rm", "--network", "none", id, "echo", "back"]);
    expect_code(&o, 0, "run the recovered image");
    assert_eq!(stdout(&o), "back\n");
    assert_eq!(content(s), before, "the rebuild deleted content");
    s.ok(&["system", "check"]);
    assert_eq!(
        content(s),
        before,
        "system check after the rebuild deleted content"
    );
}

fn db_path(s: &Store) -> PathBuf {
    s.path().join("berth.db")
}

/// Every path under `layers/` and `blobs/` (what a wrong `system check`
/// would delete).
fn content(s: &Store) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        let Ok(dir) = std::fs::read_dir(p) else {
            return;
        };
        for e in dir.flatten() {
            // A layer's size as docker counts it, which berth works out
            // on first use (`images`) and keeps: no content of the store.
            if e.file_name() == "content-size" {
                continue;
            }
            out.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&s.path().join("layers"), &mut out);
    walk(&s.path().join("blobs"), &mut out);
    out.sort();
    out
}

/// Moves everything from the WAL into the database file, as SQLite's
/// auto-checkpoint does as the WAL grows: the damage then hits the rows.
fn checkpoint(s: &Store) {
    let db = rusqlite::Connection::open(db_path(s)).unwrap();
    let (busy, _, _): (i64, i64, i64) = db
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "checkpoint blocked");
}

/// Overwrites the middle of the database file with pseudo-random bytes:
/// everything after its first page (the header and schema) up to its last
/// 512 bytes, as a bad disk or a stray write would.
fn corrupt(s: &Store) {
    let path = db_path(s);
    let mut bytes = std::fs::read(&path).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(bytes.len() > page + 1024, "database too small to damage");
    let mut x: u64 = 0x5eed_dead_beef;
    let end = bytes.len() - 512;
    for b in &mut bytes[page..end] {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
}

/// `args` fails with exactly one line on stderr that names the database
/// file and contains `cause`.
fn one_line_error(s: &Store, args: &[&str], cause: &str) {
    let o = s.run(args);
    let err = stderr(&o);
    let what = args.join(" ");
    assert!(
        !o.status.success(),
        "{what} succeeded on a bad database: {}",
        stdout(&o)
    );
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    assert_eq!(
        berth_testkit::error_lines(&err),
        1,
        "{what}: not one line: {err}"
    );
    let db = db_path(s).display().to_string();
    assert!(err.contains(&db), "{what}: does not name {db}: {err}");
    assert!(err.contains(cause), "{what}: does not say {cause:?}: {err}");
}

/// `system check` on a database it must not trust: exits non-zero, says
/// what is wrong, that nothing was deleted and how to recover, and
/// deletes nothing (nor touches the database).
fn check_refuses(s: &Store, before: &[PathBuf], problem: &str) {
    let db_before = std::fs::read(db_path(s)).ok();
    let o = s.run(&["system", "check"]);
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "system check passed: {err}");
    assert!(!err.contains("panicked"), "system check panicked: {err}");
    assert!(err.contains(problem), "does not say {problem:?}: {err}");
    assert!(err.contains("nothing was checked or deleted"), "{err}");
    let root = s.path().display().to_string();
    let db = db_path(s).display().to_string();
    // The recovery below is the one printed.
    assert!(err.contains(&format!("mv {db} {db}.damaged")), "{err}");
    assert!(
        err.contains(&format!(
            "mkdir {root}/orphaned && mv {root}/layers {root}/blobs {root}/orphaned/"
        )),
        "{err}"
    );
    assert_eq!(content(s), before, "system check deleted content");
    assert_eq!(
        std::fs::read(db_path(s)).ok(),
        db_before,
        "system check changed the database"
    );
}

/// Follows the printed recovery: the damaged database and the content it
/// described moved aside (kept), the image loaded again; the store works
/// and `system check` passes.
fn recover_as_documented(s: &Store, before: &[PathBuf]) {
    let root = s.path();
    for suffix in ["", "-wal", "-shm"] {
        let from = root.join(format!("berth.db{suffix}"));
        if from.exists() {
            std::fs::rename(&from, root.join(format!("berth.db.damaged{suffix}"))).unwrap();
        }
    }
    std::fs::create_dir(root.join("orphaned")).unwrap();
    for d in ["layers", "blobs"] {
        std::fs::rename(root.join(d), root.join("orphaned").join(d)).unwrap();
    }
    s.import_busybox("busybox", &[]);
    assert!(
        stdout(&s.run(&["images"])).contains("busybox"),
        "image not back"
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "back",
    ]);
    expect_code(&o, 0, "run after recovery");
    assert_eq!(stdout(&o), "back\n");
    s.ok(&["system", "check"]);
    // What was moved aside is all still there.
    let kept: Vec<PathBuf> = before
        .iter()
        .map(|p| root.join("orphaned").join(p.strip_prefix(root).unwrap()))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    assert_eq!(kept.len(), before.len(), "orphaned content lost");
}

#[test]
fn an_emptied_database_is_not_trusted_and_nothing_is_deleted() {
    if !root_or_skip("an_emptied_database_is_not_trusted_and_nothing_is_deleted") {
        return;
    }
    let s = store();
    checkpoint(&s);
    let before = content(&s);
    assert!(!before.is_empty());
    std::fs::write(db_path(&s), b"").unwrap();
    for args in [
        &["images"][..],
        &["ps", "-a"],
        &["import", "/dev/null", "x"],
        &["run", "--rm", "busybox", "true"],
    ] {
        one_line_error(&s, args, "is empty while the store holds");
    }
    // None of them started a new, empty database over the store.
    assert_eq!(std::fs::metadata(db_path(&s)).unwrap().len(), 0);
    check_refuses(&s, &before, "the database is empty");
    recover_as_documented(&s, &before);
}

#[test]
fn a_removed_database_is_not_trusted_and_nothing_is_deleted() {
    if !root_or_skip("a_removed_database_is_not_trusted_and_nothing_is_deleted") {
        return;
    }
    let s = store();
    let before = content(&s);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.path().join(format!("berth.db{suffix}")));
    }
    for args in [&["images"][..], &["ps", "-a"], &["pull", "busybox"]] {
        one_line_error(&s, args, "is missing while the store holds");
    }
    assert!(!db_path(&s).exists(), "a new database was started");
    check_refuses(&s, &before, "the database is missing");
    recover_as_documented(&s, &before);
}

#[test]
fn a_corrupted_database_is_reported_and_nothing_is_deleted() {
    if !root_or_skip("a_corrupted_database_is_reported_and_nothing_is_deleted") {
        return;
    }
    let s = store();
    checkpoint(&s);
    let before = content(&s);
    corrupt(&s);
    for args in [
        &["images"][..],
        &["ps", "-a"],
        &["inspect", "kept"],
        &["rmi", "-f", "busybox"],
    ] {
        one_line_error(&s, args, "database disk image is malformed");
    }
    check_refuses(&s, &before, "the database is damaged");
    recover_as_documented(&s, &before);
}

/// A database emptied of its rows (or recreated by an older berth over
/// the store) names nothing while layers and blobs exist: not trusted.
#[test]
fn a_database_that_names_nothing_is_not_trusted() {
    if !root_or_skip("a_database_that_names_nothing_is_not_trusted") {
        return;
    }
    let s = store();
    let before = content(&s);
    {
        let db = rusqlite::Connection::open(db_path(&s)).unwrap();
        db.execute_batch(
            "PRAGMA foreign_keys = OFF;
             DELETE FROM image_layers; DELETE FROM image_blobs; DELETE FROM tags;
             DELETE FROM images; DELETE FROM layers; DROP TABLE IF EXISTS store_meta;",
        )
        .unwrap();
    }
    check_refuses(&s, &before, "the database names no image, layer or blob");
}

#[test]
fn system_check_rebuild_recovers_images_from_an_emptied_database() {
    if !root_or_skip("system_check_rebuild_recovers_images_from_an_emptied_database") {
        return;
    }
    let (s, id) = store_and_image();
    checkpoint(&s);
    let before = content(&s);
    std::fs::write(db_path(&s), b"").unwrap();
    rebuild_recovers(&s, &before, &id, false);
}

#[test]
fn system_check_rebuild_recovers_images_without_a_database() {
    if !root_or_skip("system_check_rebuild_recovers_images_without_a_database") {
        return;
    }
    let (s, id) = store_and_image();
    let before = content(&s);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.path().join(format!("berth.db{suffix}")));
    }
    rebuild_recovers(&s, &before, &id, false);
}

#[test]
fn system_check_rebuild_recovers_images_from_a_corrupted_database() {
    if !root_or_skip("system_check_rebuild_recovers_images_from_a_corrupted_database") {
        return;
    }
    let (s, id) = store_and_image();
    checkpoint(&s);
    let before = content(&s);
    corrupt(&s);
    rebuild_recovers(&s, &before, &id, false);
}

/// Rows of the images lost, tags still there (in the WAL, as the last
/// changes are): the tags come back.
#[test]
fn system_check_rebuild_salvages_the_tags_the_old_database_still_reads() {
    if !root_or_skip("system_check_rebuild_salvages_the_tags_the_old_database_still_reads") {
        return;
    }
    let (s, id) = store_and_image();
    let before = content(&s);
    {
        let db = rusqlite::Connection::open(db_path(&s)).unwrap();
        db.execute_batch(
            "PRAGMA foreign_keys = OFF;
             DELETE FROM image_layers; DELETE FROM image_blobs;
             DELETE FROM images; DELETE FROM layers; DROP TABLE IF EXISTS store_meta;",
        )
        .unwrap();
    }
    rebuild_recovers(&s, &before, &id, true);
}

/// The audit does not get in the way of what `system check` is for: in a
/// store berth started empty, what a killed command left and no row names
/// is still removed.
#[test]
fn system_check_still_removes_leftovers_of_a_store_started_empty() {
    if !root_or_skip("system_check_still_removes_leftovers_of_a_store_started_empty") {
        return;
    }
    let s = Store::empty(BIN);
    s.ok(&["images"]);
    let layer = s.path().join("layers").join("ab".repeat(32));
    std::fs::create_dir_all(layer.join("diff")).unwrap();
    let blob = s.path().join("blobs/sha256").join("cd".repeat(32));
    std::fs::write(&blob, b"left by a killed load").unwrap();
    let out = s.ok(&["system", "check"]);
    assert!(!layer.exists(), "leftover layer kept: {out}");
    assert!(!blob.exists(), "leftover blob kept: {out}");
}

/// Inspects status, restart count and finish time.
fn state(s: &Store, name: &str) -> (String, u32, String) {
    let out = s.inspect(
        name,
        "{{.State.Status}} {{.RestartCount}} {{.State.FinishedAt}}",
    );
    let mut f = out.split_whitespace();
    let status = f.next().unwrap_or_default().to_string();
    let count = f.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let finished = f.next().unwrap_or_default().to_string();
    (status, count, finished)
}

/// Runs `name` with `--restart always` on a command that fails at once and
/// waits until it is in a back-off of at least 3.2 s (the fifth); returns
/// its restart count and when that back-off ends (its last exit plus the
/// monitor's 100 ms doubled per restart).
fn in_long_backoff(s: &Store, name: &str) -> (u32, SystemTime) {
    s.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "false",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, count, finished) = state(s, name);
        if status == "restarting" && count >= 5 {
            let at = time::OffsetDateTime::parse(
                &finished,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            let at = SystemTime::UNIX_EPOCH
                + Duration::from_nanos(u64::try_from(at.unix_timestamp_nanos()).unwrap());
            let backoff = Duration::from_millis(100 << count.min(10)).min(Duration::from_secs(60));
            return (count, at + backoff);
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached a long back-off: {status} {count}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After `args` (stop, kill) returned: it did so before the back-off
/// would have ended, the container is exited with its last exit code and
/// was not started again; and once the back-off is long over, still not.
fn stays_stopped(s: &Store, name: &str, args: &[&str], count: u32, backoff_end: SystemTime) {
    s.ok(args);
    let returned = SystemTime::now();
    let (status, now_count, _) = state(s, name);
    assert!(
        returned < backoff_end,
        "{} waited out the back-off ({:?} past its end)",
        args.join(" "),
        returned.duration_since(backoff_end).unwrap_or_default()
    );
    assert_eq!(
        (status.as_str(), now_count),
        ("exited", count),
        "right after {}",
        args.join(" ")
    );
    assert_eq!(s.inspect(name, "{{.State.ExitCode}}"), "1");
    let ps = stdout(&s.run(&["ps", "-a", "--filter", &format!("name={name}")]));
    assert!(ps.contains("Exited (1)"), "ps: {ps}");
    // Past the moment the monitor would have started it again.
    let wait = backoff_end
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_secs(1);
    std::thread::sleep(wait);
    let (status, later_count, _) = state(s, name);
    assert_eq!(
        (status.as_str(), later_count),
        ("exited", count),
        "after the back-off"
    );
    assert_eq!(s.inspect(name, "{{.State.Pid}}"), "0");
}

#[test]
fn stop_ends_a_restart_backoff_at_once_and_the_container_stays_stopped() {
    if !root_or_skip("stop_ends_a_restart_backoff_at_once_and_the_container_stays_stopped") {
        return;
    }
    let s = Store::with_busybox(BIN, &[]);
    let (count, end) = in_long_backoff(&s, "looping");
    stays_stopped(&s, "looping", &["stop", "looping"], count, end);
}

#[test]
fn kill_ends_a_restart_backoff_at_once_and_the_container_stays_stopped() {
    if !root_or_skip("kill_ends_a_restart_backoff_at_once_and_the_container_stays_stopped") {
        return;
    }
    let s = Store::with_busybox(BIN, &[]);
    let (count, end) = in_long_backoff(&s, "looping");
    stays_stopped(&s, "looping", &["kill", "looping"], count, end);
}

#[test]
fn rm_force_ends_a_restart_backoff_at_once() {
    if !root_or_skip("rm_force_ends_a_restart_backoff_at_once") {
        return;
    }
    let s = Store::with_busybox(BIN, &[]);
    let (_, end) = in_long_backoff(&s, "looping");
    s.ok(&["rm", "-f", "looping"]);
    assert!(SystemTime::now() < end, "rm -f waited out the back-off");
    assert_eq!(stdout(&s.run(&["ps", "-aq"])), "");
    // No monitor left to start it again, none holding its files.
    std::thread::sleep(
        end.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_secs(1),
    );
    assert_eq!(stdout(&s.run(&["ps", "-aq"])), "");
    assert_eq!(s.mounts(), 0, "mounts left under the store");
}
