//! The image commands through the real binary: import, images, inspect,
//! history, tag, rmi, save, load, system df/check; interchange with
//! podman; and SIGKILL at random points of load and import.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{busybox_rootfs, busybox_tar, expect_code, output_via_files, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

fn berth() -> Berth {
    Berth::empty(BIN)
}

#[test]
fn import_list_inspect_tag_remove() {
    let b = berth();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());
    let id = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        "-c",
        "ENV A=1",
        "-m",
        "from a test",
        tar.to_str().unwrap(),
        "bb:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let list = b.ok(&["images"]);
    assert!(
        list.lines().next().unwrap().starts_with("REPOSITORY"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("bb ") && l.contains(" 1 ") && l.contains(&id.trim()[7..19])),
        "{list}"
    );
    assert_eq!(b.ok(&["images", "-q"]).trim(), &id.trim()[7..19]);
    assert_eq!(
        b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .trim(),
        "bb:1"
    );

    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", "bb:1"])).unwrap();
    assert_eq!(v[0]["Id"], id.trim());
    assert_eq!(v[0]["RepoTags"][0], "bb:1");
    assert_eq!(v[0]["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(v[0]["Config"]["Env"][0], "A=1");
    assert_eq!(v[0]["Os"], "linux");
    // docker's import history: no CREATED BY, the message as the comment
    let hist = b.ok(&["history", "--format", "{{.CreatedBy}}|{{.Comment}}", "bb:1"]);
    assert_eq!(hist.trim(), "|from a test", "{hist}");

    b.ok(&["tag", "bb:1", "localhost:5000/team/bb:2"]);
    assert!(
        b.ok(&["images"]).contains("localhost:5000/team/bb"),
        "tagged"
    );
    let o = b.run(&["rmi", &id.trim()[7..19]]);
    expect_code(&o, 1, "rmi by id with two tags");
    assert!(
        stderr(&o).contains("image is referenced in multiple repositories"),
        "{}",
        stderr(&o)
    );
    assert!(b
        .ok(&["rmi", "localhost:5000/team/bb:2"])
        .contains("Untagged"));
    let layers = b.root.path().join("layers");
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 1);
    let df = b.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert_eq!(df.lines().next(), Some("Images 1"), "{df}");
    // An OCI layout directory, both ways.
    let layout = work.path().join("layout");
    b.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        layout.to_str().unwrap(),
        "bb:1",
    ]);
    let other = berth();
    assert!(other
        .ok(&["load", "-i", layout.to_str().unwrap()])
        .contains("Loaded image: bb:1"));

    let out = b.ok(&["rmi", "bb:1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(
        std::fs::read_dir(&layers).unwrap().count(),
        0,
        "the last image's layer left the disk"
    );
    assert_eq!(
        b.ok(&["system", "df"])
            .lines()
            .nth(1)
            .map(str::split_whitespace)
            .and_then(|mut w| w.nth(1)),
        Some("0"),
        "no image left"
    );

    let o = b.run(&["rmi", "nosuch:1"]);
    expect_code(&o, 1, "rmi of a missing image");
    assert!(stderr(&o).contains("No such image"), "{}", stderr(&o));
    let o = b.run(&["tag", "bb", "Bad:Tag"]);
    expect_code(&o, 1, "bad reference");
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));
}

fn podman_env(dir: &Path, script: &str) -> Output {
    let tests = berth_testkit::snippet::tests_dir();
    output_via_files(
        Command::new("timeout")
            .args(["-k", "10", "300", "bash", "-c"])
            .arg(format!(
                "source {}/podman-env.sh {} >/dev/null || exit 99; {script}",
                tests.display(),
                dir.display()
            )),
    )
}

/// berth save → podman load → run; podman save (docker- and oci-archive) →
/// berth load: the same config digest and the same files.
#[test]
fn interchange_with_podman() {
    if !berth_testkit::snippet::installed("podman") {
        assert!(
            std::env::var_os("CI").is_none(),
            "podman is missing (install-deps.sh)"
        );
        eprintln!("skipped: podman not installed");
        return;
    }
    let b = berth();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());
    let id = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\", \"-c\", \"echo from-berth\"]",
        tar.to_str().unwrap(),
        "localhost/bb:1",
    ]);
    let saved = work.path().join("berth-saved.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "localhost/bb:1"]);
    let saved_oci = work.path().join("berth-saved-oci.tar");
    b.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        saved_oci.to_str().unwrap(),
        "localhost/bb:1",
    ]);
    let env = work.path().join("podman");
    let o = podman_env(
        &env,
        &format!(
            "podman load -i {saved_oci} >/dev/null && podman inspect --format '{{{{.Id}}}}' localhost/bb:1 && podman rmi localhost/bb:1 >/dev/null \
             && podman load -i {saved} >/dev/null && podman inspect --format '{{{{.Id}}}}' localhost/bb:1 && podman run --rm --network none localhost/bb:1 \
             && podman save --format docker-archive -o {w}/p-docker.tar localhost/bb:1 && podman save --format oci-archive -o {w}/p-oci.tar localhost/bb:1; \
             rc=$?; podman_env_cleanup >/dev/null 2>&1; exit $rc",
            saved = saved.display(),
            saved_oci = saved_oci.display(),
            w = work.path().display()
        ),
    );
    expect_code(&o, 0, "podman load/run/save");
    let out = stdout(&o);
    let podman_id = out.lines().next().unwrap().trim().to_string();
    assert_eq!(
        format!("sha256:{podman_id}"),
        id.trim(),
        "podman sees berth's config digest"
    );
    assert!(
        out.contains("from-berth"),
        "the image runs in podman: {out}"
    );

    for archive in ["p-docker.tar", "p-oci.tar"] {
        // The config digest podman wrote into the archive (its oci-archive
        // converts the config, so it differs from the docker-archive's).
        let x = tempfile::tempdir().unwrap();
        let st = Command::new("tar")
            .arg("-C")
            .arg(x.path())
            .arg("-xf")
            .arg(work.path().join(archive))
            .status()
            .unwrap();
        assert!(st.success());
        let want = if archive == "p-docker.tar" {
            let m: Value =
                serde_json::from_slice(&std::fs::read(x.path().join("manifest.json")).unwrap())
                    .unwrap();
            format!(
                "sha256:{}",
                m[0]["Config"].as_str().unwrap().trim_end_matches(".json")
            )
        } else {
            let idx: Value =
                serde_json::from_slice(&std::fs::read(x.path().join("index.json")).unwrap())
                    .unwrap();
            let md = idx["manifests"][0]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string();
            let m: Value = serde_json::from_slice(
                &std::fs::read(x.path().join("blobs/sha256").join(md)).unwrap(),
            )
            .unwrap();
            m["config"]["digest"].as_str().unwrap().to_string()
        };
        let other = berth();
        let loaded = other.ok(&["load", "-i", work.path().join(archive).to_str().unwrap()]);
        assert!(
            loaded.contains("Loaded image: localhost/bb:1"),
            "{archive}: {loaded}"
        );
        let v: Value =
            serde_json::from_str(&other.ok(&["image", "inspect", "localhost/bb:1"])).unwrap();
        assert_eq!(v[0]["Id"], want, "{archive}: the archive's config digest");
        let layer = std::fs::read_dir(other.root.path().join("layers"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("diff");
        let diff = Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(busybox_rootfs())
            .arg(&layer)
            .output()
            .unwrap();
        assert!(
            diff.status.success(),
            "{archive}: files differ:\n{}",
            String::from_utf8_lossy(&diff.stdout)
        );
    }
}

/// SIGKILL at random points of load and import never leaves a blob under
/// a wrong digest, a row without its files, or files the DB cannot account
/// for (after `system check`).
#[test]
fn sigkill_during_load_and_import_leaves_the_store_consistent() {
    let b = berth();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());
    b.ok(&["import", tar.to_str().unwrap(), "base:1"]);
    let saved = work.path().join("saved.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "base:1"]);
    b.ok(&["rmi", "base:1"]);
    let mut seed = 0x9e37_79b9_u64 ^ u64::from(std::process::id());
    for i in 0..20 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = std::time::Duration::from_micros(seed % 40_000);
        let mut child = if i % 2 == 0 {
            b.cmd()
                .args(["load", "-i", saved.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        } else {
            b.cmd()
                .args(["import", tar.to_str().unwrap(), &format!("imp:{i}")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let out = b.ok(&["system", "check"]);
        assert!(!out.contains("missing:"), "iteration {i}: {out}");
        // Every image that is listed is whole: inspectable, and its layer
        // is on disk.
        for id in b.ok(&["images", "-q", "--no-trunc"]).lines() {
            b.ok(&["image", "inspect", id]);
        }
        for blob in std::fs::read_dir(b.root.path().join("blobs/sha256"))
            .unwrap()
            .flatten()
        {
            let data = std::fs::read(blob.path()).unwrap();
            let name = blob.file_name().to_string_lossy().into_owned();
            let digest = berth_image::Digest::of(&data);
            assert_eq!(
                digest.hex(),
                name,
                "iteration {i}: a blob under a wrong digest"
            );
        }
    }
    // And the store still works.
    b.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(b.ok(&["images"]).contains("base"));
}

/// A docker-archive whose one layer is the hostile set: `../` and absolute
/// names, a symlink to a host directory and a write through it, a hard
/// link to a host file, a whiteout aimed outside. Loaded, everything lands
/// inside the layer (or is refused); then a bomb under --max-layer-size
/// and a wrong diff_id are refused, leaving nothing.
#[test]
fn hostile_archives_through_load() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim"), "keep").unwrap();
    let o = outside
        .path()
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let raw = |b: &mut tar::Builder<Vec<u8>>,
               name: &str,
               kind: tar::EntryType,
               data: &[u8],
               link: &str| {
        berth_testkit::raw_tar_entry(b, name, kind, data, link, 0o644);
    };
    let archive = |layer: &[u8], diff: Option<String>| -> Vec<u8> {
        let diff = diff.unwrap_or_else(|| berth_image::Digest::of(layer).to_string());
        let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}});
        let config = serde_json::to_vec(&config).unwrap();
        let mut a = tar::Builder::new(Vec::new());
        for (name, data) in [("c.json", &config[..]), ("l/layer.tar", layer)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            a.append_data(&mut h, name, data).unwrap();
        }
        let m = serde_json::to_vec(&serde_json::json!([{"Config": "c.json", "RepoTags": ["hostile:1"], "Layers": ["l/layer.tar"]}])).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        a.append_data(&mut h, "manifest.json", &m[..]).unwrap();
        a.into_inner().unwrap()
    };
    let work = tempfile::tempdir().unwrap();

    let mut l = tar::Builder::new(Vec::new());
    raw(&mut l, "../../../escape", tar::EntryType::Regular, b"x", "");
    raw(
        &mut l,
        &format!("/{o}/abs"),
        tar::EntryType::Regular,
        b"x",
        "",
    );
    raw(
        &mut l,
        "link",
        tar::EntryType::Symlink,
        b"",
        &format!("/{o}"),
    );
    raw(
        &mut l,
        "link/through-symlink",
        tar::EntryType::Regular,
        b"x",
        "",
    );
    raw(
        &mut l,
        &format!("../../{o}/.wh.victim"),
        tar::EntryType::Regular,
        b"",
        "",
    );
    let contained = l.into_inner().unwrap();
    let path = work.path().join("contained.tar");
    std::fs::write(&path, archive(&contained, None)).unwrap();
    let b = berth();
    b.ok(&["load", "-i", path.to_str().unwrap()]);
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("victim")],
        "nothing written outside"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim")).unwrap(),
        "keep"
    );

    // A hard link to a host file: refused, the host file untouched.
    let mut l = tar::Builder::new(Vec::new());
    raw(
        &mut l,
        "hl",
        tar::EntryType::Link,
        b"",
        outside.path().join("victim").to_str().unwrap(),
    );
    let hl = l.into_inner().unwrap();
    let path = work.path().join("hardlink.tar");
    std::fs::write(&path, archive(&hl, None)).unwrap();
    let c = berth();
    let out = c.run(&["load", "-i", path.to_str().unwrap()]);
    expect_code(&out, 1, "load with a hard link out");
    assert!(
        stderr(&out).contains("hard link target"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(
            &std::fs::metadata(outside.path().join("victim")).unwrap()
        ),
        1
    );

    // A bomb: 8 MiB of zeros, gzip'd to a few KiB, under a 1 MiB limit.
    let mut l = tar::Builder::new(Vec::new());
    raw(
        &mut l,
        "zeros",
        tar::EntryType::Regular,
        &vec![0u8; 8 << 20],
        "",
    );
    let big = l.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &big).unwrap();
    let gz = gz.finish().unwrap();
    let path = work.path().join("bomb.tar");
    std::fs::write(
        &path,
        archive(&gz, Some(berth_image::Digest::of(&big).to_string())),
    )
    .unwrap();
    let out = c.run(&[
        "--max-layer-size",
        "1m",
        "load",
        "-i",
        path.to_str().unwrap(),
    ]);
    expect_code(&out, 1, "load of a bomb");
    assert!(
        stderr(&out).contains("larger than the limit"),
        "{}",
        stderr(&out)
    );

    // A wrong diff_id.
    let path = work.path().join("diff.tar");
    std::fs::write(
        &path,
        archive(
            &contained,
            Some(berth_image::Digest::of(b"other").to_string()),
        ),
    )
    .unwrap();
    let out = c.run(&["load", "-i", path.to_str().unwrap()]);
    expect_code(&out, 1, "load with a wrong diff_id");
    assert!(
        stderr(&out).contains("diff_id mismatch"),
        "{}",
        stderr(&out)
    );

    // Nothing of the three refusals is listed, and check clears what they left.
    assert_eq!(c.ok(&["images", "-q"]), "");
    c.ok(&["system", "check"]);
    assert_eq!(
        std::fs::read_dir(c.root.path().join("layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(c.root.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

/// images --filter: before/since by creation time, label=KEY and
/// label=KEY=VALUE, and unknown keys or bad values as one-line errors.
#[test]
fn images_filters_before_since_label() {
    let b = berth();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());
    let mut ids = Vec::new();
    for (i, label) in ["LABEL tier=base", "LABEL tier=app", "LABEL other=1"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            // Creation times are in seconds.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let id = b.ok(&[
            "import",
            "-c",
            label,
            "-m",
            &format!("image {i}"),
            tar.to_str().unwrap(),
            &format!("f{i}:1"),
        ]);
        ids.push(id.trim()[7..19].to_string());
    }
    let q = |filter: &str| -> Vec<String> {
        let mut v: Vec<String> = b
            .ok(&["images", "-q", "--filter", filter])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let sorted = |v: &[&String]| -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(q("before=f1:1"), sorted(&[&ids[0]]));
    assert_eq!(q("since=f1:1"), sorted(&[&ids[2]]));
    assert_eq!(q(&format!("since={}", ids[0])), sorted(&[&ids[1], &ids[2]]));
    assert_eq!(q("label=tier"), sorted(&[&ids[0], &ids[1]]));
    assert_eq!(q("label=tier=app"), sorted(&[&ids[1]]));
    assert!(q("label=tier=none").is_empty());
    for (bad, says) in [
        ("color=red", "Invalid filter 'color'"),
        ("before=nosuch:1", "No such image"),
        ("dangling=maybe", "dangling is true or false"),
        ("label=", "label=KEY"),
        ("nokey", "use key=value"),
    ] {
        let o = b.run(&["images", "--filter", bad]);
        expect_code(&o, 1, bad);
        assert_eq!(
            berth_testkit::error_lines(&stderr(&o)),
            1,
            "{bad}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(says), "{bad}: {}", stderr(&o));
    }
}

/// `save -o` onto what is not a regular file writes into it, as docker
/// does; renaming a finished file over it would replace a device (once,
/// the host's /dev/null) with a plain file. A private null device, a fifo
/// with a reader, and a symlink to a file (which stays a symlink).
#[test]
fn save_into_a_device_fifo_or_symlink_keeps_it() {
    if !berth_testkit::root_or_skip("save_into_a_device_fifo_or_symlink_keeps_it") {
        return;
    }
    use std::os::unix::fs::FileTypeExt;
    let b = berth();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());
    b.ok(&["import", tar.to_str().unwrap(), "bb:1"]);

    let null = work.path().join("null");
    nix::sys::stat::mknod(
        &null,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod a null device");
    b.ok(&["save", "-o", null.to_str().unwrap(), "bb:1"]);
    let m = std::fs::symlink_metadata(&null).unwrap();
    assert!(m.file_type().is_char_device(), "still the null device");
    assert_eq!(
        std::fs::read_dir(work.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("partial"))
            .count(),
        0,
        "no temp file beside it"
    );

    let fifo = work.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    b.ok(&["save", "-o", fifo.to_str().unwrap(), "bb:1"]);
    let bytes = reader.join().unwrap();
    let names: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    let file = work.path().join("real.tar");
    let link = work.path().join("link.tar");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    b.ok(&["save", "-o", link.to_str().unwrap(), "bb:1"]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::metadata(&file).unwrap().len() > 1024);
}
