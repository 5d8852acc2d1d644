//! The store's database schema through the real binary: a store made by the
//! berth before the schema had a version is adopted in place (rows kept,
//! usable, version set), a new store starts at the current version, and a
//! store from a newer berth is refused with one line.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::Path;

use berth_testkit::stderr;
use berth_testkit::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// The database of a store made by berth at 9803ce2 (see the file's head).
const BEFORE_VERSIONS: &str = include_str!("fixtures/store-before-versions.sql");

/// These tests create containers and networks: root only. Without it they
/// say they were skipped, and fail under CI.
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

fn store() -> Store {
    let run = tempfile::tempdir().unwrap();
    let runroot = run.path().to_path_buf();
    Store::empty(BIN).flag("--runroot").flag(&runroot).keep(run)
}

fn user_version(root: &Path) -> usize {
    let db = rusqlite::Connection::open(root.join("berth.db")).unwrap();
    db.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn store_made_before_schema_versions_is_upgraded_in_place() {
    if !root_or_skip("store_made_before_schema_versions_is_upgraded_in_place") {
        return;
    }
    let s = store();
    {
        let db = rusqlite::Connection::open(s.path().join("berth.db")).unwrap();
        db.execute_batch(BEFORE_VERSIONS).unwrap();
    }
    assert_eq!(user_version(s.path()), 0, "the fixture predates versions");

    // The first command migrates, and says so at --log-level info (the
    // library's tracing event through the binary's subscriber)...
    let o = s.run(&["--log-level", "info", "volume", "ls", "-q"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // (Before it, the notice that the fixture's modes were tightened.)
    let said: Vec<&str> = err.lines().filter(|l| l.contains("schema")).collect();
    assert_eq!(
        said,
        [format!(
            "berth: info: store database: schema version 0 brought to {}",
            berth_store::VERSION
        )],
        "{err}"
    );
    // ...and the next one, on a current store, has nothing to do or say.
    let o = s.run(&["--log-level", "info", "volume", "ls", "-q"]);
    assert_eq!(stderr(&o), "", "a current store migrated again");

    // Its rows, read by today's berth.
    let ps = s.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(
        sorted_lines(&ps),
        ["old-done exited", "old-netted created", "old-web created"]
    );
    assert_eq!(berth_store::VERSION, user_version(s.path()));
    assert_eq!(s.inspect("old-web", "{{.Config.Labels.tier}}"), "web");
    assert_eq!(
        s.inspect("old-web", "{{.Config.Healthcheck.Test}}"),
        "[CMD-SHELL true]"
    );
    assert_eq!(s.inspect("old-done", "{{.State.ExitCode}}"), "0");
    assert!(s
        .ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "old-vol"));
    assert!(s
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "old-net"));
    assert!(s
        .ok(&["images", "--format", "{{.Repository}}"])
        .lines()
        .any(|l| l == "busybox"));

    // And written: a new image and container beside the old ones, the old
    // ones removed.
    s.import_busybox("fresh", &[]);
    s.ok(&["run", "--rm", "--network", "none", "fresh", "true"]);
    s.ok(&["rm", "old-web", "old-done", "old-netted"]);
    s.ok(&["network", "rm", "old-net"]);
    s.ok(&["volume", "rm", "old-vol"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    assert_eq!(berth_store::VERSION, user_version(s.path()));
}

#[test]
fn new_store_starts_at_the_current_schema_version() {
    if !root_or_skip("new_store_starts_at_the_current_schema_version") {
        return;
    }
    let s = store();
    s.import_busybox("busybox", &[]);
    assert_eq!(berth_store::VERSION, user_version(s.path()));
}

#[test]
fn store_from_a_newer_berth_is_refused_in_one_line() {
    if !root_or_skip("store_from_a_newer_berth_is_refused_in_one_line") {
        return;
    }
    let s = store();
    s.import_busybox("busybox", &[]);
    {
        let db = rusqlite::Connection::open(s.path().join("berth.db")).unwrap();
        db.execute_batch(&format!(
            "PRAGMA user_version = {}",
            berth_store::VERSION + 1
        ))
        .unwrap();
    }
    let o = s.run(&["ps", "-a"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "ps on a newer store passed: {err}");
    assert_eq!(berth_testkit::error_lines(&err), 1, "{err}");
    assert!(err.contains("newer than this berth knows"), "{err}");
}
