//! Image content as an attacker (or an unusual but honest tool) writes it,
//! through the real binary: GNU sparse files that used to vanish from a
//! layer, a VOLUME whose copy held the whole tree in memory and lost hard
//! links and xattrs, whiteout names that reach the entry's own directory
//! or its parent.

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::{busybox_rootfs, busybox_tar, expect_code, output_via_files, stderr, stdout};
use sha2::{Digest as _, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

type Berth = berth_testkit::store::Store;

/// A tool the test cannot do without: missing fails under CI, and
/// otherwise the test says plainly that it was skipped.
fn need(tool: &str) -> bool {
    if berth_testkit::snippet::installed(tool) {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{tool} is not installed");
    eprintln!("skipped: {tool} is not installed");
    false
}

fn need_root() -> bool {
    if berth_testkit::is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "these tests need root");
    eprintln!("skipped: not root");
    false
}

/// sha256 of a file, streamed.
fn sha256_file(p: &Path) -> String {
    let mut f = File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A docker-archive of the layer files `layers` (bottom first) with
/// `config` (its rootfs section filled in) tagged `tag`, written to `out`
/// without holding the layers in memory.
fn docker_archive(out: &Path, layers: &[PathBuf], mut config: serde_json::Value, tag: &str) {
    let diffs: Vec<String> = layers.iter().map(|l| sha256_file(l)).collect();
    config["architecture"] = "amd64".into();
    config["os"] = "linux".into();
    config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diffs});
    let config = serde_json::to_vec(&config).unwrap();
    let mut a = tar::Builder::new(BufWriter::new(File::create(out).unwrap()));
    let mut h = tar::Header::new_gnu();
    h.set_size(config.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    a.append_data(&mut h, "config.json", &config[..]).unwrap();
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let name = format!("l{i}/layer.tar");
        let mut f = File::open(l).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(f.metadata().unwrap().len());
        h.set_mode(0o644);
        h.set_cksum();
        a.append_data(&mut h, &name, &mut f).unwrap();
        names.push(name);
    }
    let m = serde_json::to_vec(
        &serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": names}]),
    )
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(m.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    a.append_data(&mut h, "manifest.json", &m[..]).unwrap();
    a.into_inner().unwrap().flush().unwrap();
}

/// A docker-archive whose only layer is `layer` (bytes), tagged `tag`.
fn one_layer_archive(dir: &Path, layer: &[u8], tag: &str) -> PathBuf {
    let l = dir.join(format!("{}.layer", tag.replace(':', "-")));
    std::fs::write(&l, layer).unwrap();
    let out = dir.join(format!("{}.tar", tag.replace(':', "-")));
    docker_archive(&out, &[l], serde_json::json!({"config": {}}), tag);
    out
}

fn md5(p: &Path) -> String {
    let o = output_via_files(Command::new("md5sum").arg(p));
    expect_code(&o, 0, "md5sum");
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

/// The busybox rootfs plus sparse files as real images have them
/// (lastlog: a few records far apart in a large file), in `dir`.
fn rootfs_with_sparse_files(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    let o = output_via_files(
        Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(&root),
    );
    expect_code(&o, 0, "copy the busybox rootfs");
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    let f = File::create(root.join("var/log/lastlog")).unwrap();
    // Records not on block boundaries, the last one ending the file.
    f.write_all_at(b"root pts/0", 292).unwrap();
    f.write_all_at(&[0x5a; 5000], 292 * 1000 + 7).unwrap();
    f.write_all_at(b"uid 65534", 292 * 65534).unwrap();
    f.set_len(292 * 65535).unwrap();
    drop(f);
    // Nothing but a hole.
    File::create(root.join("var/log/faillog"))
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    root
}

/// GNU tar's sparse files, in each form it writes (old GNU `S` headers;
/// pax 0.0, 0.1, 1.0), through `berth import` and `berth load`: the file
/// in a container has the host's size and md5; `berth save` gives back
/// the layer byte for byte (the diff_id holds); podman loads the saved
/// archives of the pax forms and sees the same file. Before: the entries were dropped (old
/// GNU) or unpacked as `GNUSparseFile.N/lastlog` holding the packed data.
#[test]
fn gnu_sparse_files_survive_load_run_and_save() {
    if !need_root() || !need("tar") || !need("md5sum") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = rootfs_with_sparse_files(work.path());
    let want_md5 = md5(&root.join("var/log/lastlog"));
    let want_size = std::fs::metadata(root.join("var/log/lastlog"))
        .unwrap()
        .len();
    let b = Berth::empty(BIN);
    let forms = [
        ("gnu", &["--format=gnu"][..]),
        ("pax00", &["--format=posix", "--sparse-version=0.0"]),
        ("pax01", &["--format=posix", "--sparse-version=0.1"]),
        ("pax10", &["--format=posix", "--sparse-version=1.0"]),
    ];
    let mut saved = Vec::new();
    for (form, args) in forms {
        let layer = work.path().join(format!("{form}.tar"));
        let o = output_via_files(
            Command::new("tar")
                .args(["-S", "--numeric-owner", "-c", "-f"])
                .arg(&layer)
                .args(args)
                .arg("-C")
                .arg(&root)
                .arg("."),
        );
        expect_code(&o, 0, &format!("tar -S {args:?}"));
        let diff_id = sha256_file(&layer);

        // import: the tarball as a one-layer image.
        let tag_import = format!("sp-import:{form}");
        b.ok(&["import", layer.to_str().unwrap(), &tag_import]);
        // load: the same layer inside a docker-archive.
        let tag_load = format!("sp-load:{form}");
        let archive = work.path().join(format!("{form}-archive.tar"));
        docker_archive(
            &archive,
            std::slice::from_ref(&layer),
            serde_json::json!({"config": {"Cmd": ["sh"]}}),
            &tag_load,
        );
        b.ok(&["load", "-i", archive.to_str().unwrap()]);

        for tag in [&tag_import, &tag_load] {
            let out = b.ok(&[
                "run",
                "--rm",
                "--network",
                "none",
                tag,
                "sh",
                "-c",
                "md5sum /var/log/lastlog; stat -c %s /var/log/lastlog /var/log/faillog; ls /",
            ]);
            let mut lines = out.lines();
            assert_eq!(
                lines.next().unwrap().split_whitespace().next().unwrap(),
                want_md5,
                "{tag}: {out}"
            );
            assert_eq!(lines.next().unwrap(), want_size.to_string(), "{tag}: {out}");
            assert_eq!(
                lines.next().unwrap(),
                (32u64 << 20).to_string(),
                "{tag}: {out}"
            );
            assert!(
                !out.contains("GNUSparseFile"),
                "{tag}: no made-up directory: {out}"
            );

            // save: the layer comes back as it was, so the diff_id holds.
            let out_tar = work
                .path()
                .join(format!("saved-{}.tar", tag.replace(':', "-")));
            b.ok(&["save", "-o", out_tar.to_str().unwrap(), tag]);
            let x = work.path().join(format!("x-{}", tag.replace(':', "-")));
            std::fs::create_dir(&x).unwrap();
            let o = output_via_files(
                Command::new("tar")
                    .arg("-xf")
                    .arg(&out_tar)
                    .arg("-C")
                    .arg(&x),
            );
            expect_code(&o, 0, "untar the saved archive");
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(x.join("manifest.json")).unwrap()).unwrap();
            let saved_layer = x.join(m[0]["Layers"][0].as_str().unwrap());
            assert_eq!(
                sha256_file(&saved_layer),
                diff_id,
                "{tag}: the saved layer is the original tar"
            );
            saved.push((tag.clone(), out_tar));
        }
    }

    if !need("podman") {
        return;
    }
    let env = work.path().join("podman");
    std::fs::create_dir(&env).unwrap();
    let mut script = String::new();
    // Podman (containers/storage) refuses old GNU `S` headers in any layer
    // ("unhandled tar header type 83"), GNU tar's own included: only the
    // pax forms can be checked there.
    saved.retain(|(tag, _)| !tag.ends_with(":gnu"));
    for (tag, file) in &saved {
        script.push_str(&format!(
            "podman load -i {} >/dev/null || {{ echo load {tag} failed; exit 1; }}; \
             podman run --rm --network none localhost/{tag} md5sum /var/log/lastlog || exit 1; ",
            file.display()
        ));
    }
    let tests = berth_testkit::snippet::tests_dir();
    let o = output_via_files(
        Command::new("timeout")
            .args(["-k", "10", "300", "bash", "-c"])
            .arg(format!(
                "source {}/podman-env.sh {} >/dev/null || exit 99; {script} rc=$?; \
                 podman_env_cleanup >/dev/null 2>&1; exit $rc",
                tests.display(),
                env.display()
            )),
    );
    expect_code(&o, 0, "podman load and run of the saved archives");
    let sums: Vec<_> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(sums.len(), saved.len(), "{sums:?}");
    for s in sums {
        assert!(s.starts_with(&want_md5), "podman sees {s}");
    }
}

/// Lying sparse entries through `load`: an old GNU one claiming an
/// exabyte (read as zeros for ever by the tar crate) and a pax one whose
/// map points past its file: each refused in one line naming the entry.
#[test]
fn lying_sparse_entries_are_refused_by_load() {
    if !need_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut l = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_path("var/log/lastlog").unwrap();
    h.set_mode(0o644);
    h.set_size(512);
    let g = h.as_gnu_mut().unwrap();
    g.set_real_size(1 << 60);
    g.sparse[0].set_offset((1 << 60) - 512);
    g.sparse[0].set_length(512);
    h.set_cksum();
    l.append(&h, &[1u8; 512][..]).unwrap();
    let huge = one_layer_archive(work.path(), &l.into_inner().unwrap(), "huge:1");

    let mut l = tar::Builder::new(Vec::new());
    l.append_pax_extensions([
        ("GNU.sparse.size", &b"10"[..]),
        ("GNU.sparse.name", b"var/log/faillog"),
        ("GNU.sparse.map", b"8,4"),
    ])
    .unwrap();
    berth_testkit::raw_tar_entry(
        &mut l,
        "GNUSparseFile.1/faillog",
        tar::EntryType::Regular,
        b"data",
        "",
        0o644,
    );
    let past = one_layer_archive(work.path(), &l.into_inner().unwrap(), "past:1");

    let b = Berth::empty(BIN);
    for (archive, entry) in [(huge, "var/log/lastlog"), (past, "var/log/faillog")] {
        let o = b.run(&["load", "-i", archive.to_str().unwrap()]);
        assert!(!o.status.success(), "{entry}: loaded");
        let err = stderr(&o);
        assert_eq!(berth_testkit::error_lines(&err), 1, "one line: {err}");
        assert!(
            err.contains(&format!("{entry:?}")) && err.contains("sparse"),
            "{err}"
        );
    }
    assert_eq!(b.ok(&["images", "-q"]).trim(), "", "nothing was stored");
}

/// Whiteouts named `.wh.`, `.wh..` and `.wh...` whiteout no entry but the
/// directory holding them or its parent: "removing what is there" deleted
/// the staging directory of the layer (at the top) or the entry's own
/// directory tree. Each is refused, in one line naming the entry, and the
/// store keeps working.
#[test]
fn whiteouts_of_the_directory_or_its_parent_are_refused() {
    if !need_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let b = Berth::with_busybox(BIN, &[]);
    for name in [".wh..", ".wh...", ".wh.", "etc/.wh..", "etc/.wh..."] {
        let mut l = tar::Builder::new(Vec::new());
        berth_testkit::raw_tar_entry(&mut l, "etc/", tar::EntryType::Directory, b"", "", 0o755);
        berth_testkit::raw_tar_entry(&mut l, "etc/keep", tar::EntryType::Regular, b"k", "", 0o644);
        berth_testkit::raw_tar_entry(&mut l, name, tar::EntryType::Regular, b"", "", 0o644);
        let archive = one_layer_archive(work.path(), &l.into_inner().unwrap(), "wh:1");
        let o = b.run(&["load", "-i", archive.to_str().unwrap()]);
        assert!(!o.status.success(), "{name}: loaded");
        let err = stderr(&o);
        assert_eq!(
            berth_testkit::error_lines(&err),
            1,
            "{name}: one line: {err}"
        );
        assert!(
            err.contains(&format!("{name:?}")) && err.contains("whiteout refused"),
            "{name}: {err}"
        );
    }
    let layers: Vec<_> = std::fs::read_dir(b.path().join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        layers.iter().all(|n| !n.starts_with('.')),
        "no staging directory left: {layers:?}"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"])
            .trim(),
        "ok"
    );
}

/// Runs `cmd` under a child subreaper (python3, prctl) that waits for
/// every process of the tree, the double-forked monitor included: the
/// command's output and the largest peak RSS (kB) among them. The peak
/// survives the monitor's exec into berth-monitor: the kernel folds the
/// old image's high-water mark into the process's at exec.
fn peak_rss_of_tree(cmd: Command) -> (std::process::Output, u64) {
    const WRAPPER: &str = r#"
import ctypes, os, resource, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
rc = subprocess.call(sys.argv[1:])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
sys.stderr.write("maxrss=%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
"#;
    let mut w = Command::new("timeout");
    w.args(["-k", "10", "300", "python3", "-c", WRAPPER]);
    w.arg(cmd.get_program());
    w.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    let o = output_via_files(&mut w);
    let err = stderr(&o);
    let peak = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss="))
        .unwrap_or_else(|| panic!("no peak reported: {err}"))
        .parse()
        .unwrap();
    (o, peak)
}

/// A layer with `/data` (0700, 999:999) holding `files` files of
/// `size` bytes each (real bytes, no holes), written to `out`.
fn data_layer(out: &Path, files: usize, size: u64) {
    let mut l = tar::Builder::new(BufWriter::new(File::create(out).unwrap()));
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o700);
    h.set_uid(999);
    h.set_gid(999);
    h.set_mtime(1_600_000_000);
    h.set_size(0);
    l.append_data(&mut h, "data/", std::io::empty()).unwrap();
    for i in 0..files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(999);
        h.set_gid(999);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        let fill = b'a' + u8::try_from(i % 26).unwrap();
        l.append_data(
            &mut h,
            format!("data/f{i}"),
            std::io::repeat(fill).take(size),
        )
        .unwrap();
    }
    l.into_inner().unwrap().flush().unwrap();
}

/// An image with `VOLUME /data` holding 200 MB: filling the container's
/// anonymous volume keeps the peak RSS of every process of `run` small
/// (the monitor built the
/// whole tree as a tar in memory: 200 MB and more), and the volume's top
/// directory gets the image's owner and mode (it was 0755 root:root), for
/// an anonymous volume and a new named one alike.
#[test]
fn filling_a_volume_streams_and_keeps_the_top_directory() {
    if !need_root() || !need("python3") || !need("timeout") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = busybox_tar(work.path());
    let data = work.path().join("data.tar");
    data_layer(&data, 50, 4 << 20);
    let archive = work.path().join("vol.tar");
    docker_archive(
        &archive,
        &[base, data.clone()],
        serde_json::json!({"config": {"Cmd": ["sh"], "Volumes": {"/data": {}}}}),
        "vol:1",
    );
    std::fs::remove_file(&data).unwrap();
    let b = Berth::empty(BIN);
    b.ok(&["load", "-i", archive.to_str().unwrap()]);
    std::fs::remove_file(&archive).unwrap();

    let mut run = b.cmd();
    run.args([
        "run",
        "--rm",
        "--network",
        "none",
        "vol:1",
        "sh",
        "-c",
        "stat -c '%a %u:%g' /data; ls /data | wc -l; wc -c < /data/f49; head -c 4 /data/f49",
    ]);
    let (o, peak) = peak_rss_of_tree(run);
    expect_code(&o, 0, "run with a 200 MB volume");
    eprintln!("filling a 200 MB volume: peak RSS {peak} kB");
    assert!(
        peak < 64 * 1024,
        "filling a 200 MB volume peaked at {peak} kB of RSS"
    );
    let out = stdout(&o);
    let lines: Vec<_> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["700 999:999", "50", &(4u64 << 20).to_string(), "xxxx"],
        "the volume has the image's content and top directory"
    );

    b.ok(&["volume", "create", "named"]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "named:/data",
        "vol:1",
        "stat",
        "-c",
        "%a %u:%g",
        "/data",
    ]);
    assert_eq!(
        out.trim(),
        "700 999:999",
        "a new named volume's top directory"
    );
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated path and name, a buffer of the given size.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// What the image's volume directory holds lands in the volume as it is:
/// symlinks (to /etc/shadow, to /, up and out) as symlinks, never followed
/// into the host; two names of one file as one file with two names (they
/// were two copies); xattrs (file capabilities live there) and set-id
/// bits kept; a hard link to a file outside the volume directory as a
/// file of its own; a fifo as a fifo. Nothing else appears in the volume.
#[test]
fn filling_a_volume_copies_links_as_links_and_keeps_what_files_carry() {
    if !need_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = busybox_tar(work.path());
    let mut l = tar::Builder::new(Vec::new());
    let raw = |l: &mut tar::Builder<Vec<u8>>, name: &str, kind, data: &[u8], link: &str, mode| {
        berth_testkit::raw_tar_entry(l, name, kind, data, link, mode);
    };
    raw(&mut l, "etc/", tar::EntryType::Directory, b"", "", 0o755);
    raw(
        &mut l,
        "etc/image-file",
        tar::EntryType::Regular,
        b"img",
        "",
        0o644,
    );
    raw(&mut l, "data/", tar::EntryType::Directory, b"", "", 0o755);
    raw(
        &mut l,
        "data/shadow",
        tar::EntryType::Symlink,
        b"",
        "/etc/shadow",
        0o777,
    );
    raw(
        &mut l,
        "data/root",
        tar::EntryType::Symlink,
        b"",
        "/",
        0o777,
    );
    raw(
        &mut l,
        "data/up",
        tar::EntryType::Symlink,
        b"",
        "../../../../..",
        0o777,
    );
    l.append_pax_extensions([("SCHILY.xattr.user.berth", &b"kept"[..])])
        .unwrap();
    raw(&mut l, "data/a", tar::EntryType::Regular, b"A", "", 0o4755);
    raw(
        &mut l,
        "data/b",
        tar::EntryType::Link,
        b"",
        "data/a",
        0o4755,
    );
    raw(
        &mut l,
        "data/outside",
        tar::EntryType::Link,
        b"",
        "etc/image-file",
        0o644,
    );
    raw(&mut l, "data/fifo", tar::EntryType::Fifo, b"", "", 0o640);
    raw(
        &mut l,
        "data/sub/",
        tar::EntryType::Directory,
        b"",
        "",
        0o750,
    );
    raw(
        &mut l,
        "data/sub/deep",
        tar::EntryType::Regular,
        b"deep",
        "",
        0o600,
    );
    let layer = work.path().join("content.tar");
    std::fs::write(&layer, l.into_inner().unwrap()).unwrap();
    let archive = work.path().join("content-image.tar");
    docker_archive(
        &archive,
        &[base, layer],
        serde_json::json!({"config": {"Cmd": ["sh"], "Volumes": {"/data": {}}}}),
        "content:1",
    );
    let b = Berth::empty(BIN);
    b.ok(&["load", "-i", archive.to_str().unwrap()]);
    b.ok(&["volume", "create", "fid"]);
    b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "fid:/data",
        "content:1",
        "true",
    ]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["volume", "inspect", "fid"])).unwrap();
    let mp = PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());

    let mut names: Vec<_> = std::fs::read_dir(&mp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a", "b", "fifo", "outside", "root", "shadow", "sub", "up"],
        "only the image's entries"
    );
    for (name, target) in [
        ("shadow", "/etc/shadow"),
        ("root", "/"),
        ("up", "../../../../.."),
    ] {
        let p = mp.join(name);
        assert!(
            std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name} is a symlink"
        );
        assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(target), "{name}");
    }
    let a = std::fs::metadata(mp.join("a")).unwrap();
    let bm = std::fs::metadata(mp.join("b")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (bm.ino(), 2), "a and b are one file");
    assert_eq!(a.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        xattr(&mp.join("a"), "user.berth").as_deref(),
        Some(&b"kept"[..])
    );
    let o = std::fs::metadata(mp.join("outside")).unwrap();
    assert_eq!(
        o.nlink(),
        1,
        "a link out of the volume dir is a file of its own"
    );
    assert_eq!(std::fs::read(mp.join("outside")).unwrap(), b"img");
    assert!(std::fs::symlink_metadata(mp.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let sub = std::fs::metadata(mp.join("sub")).unwrap();
    assert_eq!(sub.permissions().mode() & 0o7777, 0o750);
    assert_eq!(sub.mtime(), 1_600_000_000, "directory times kept");
    assert_eq!(std::fs::read(mp.join("sub/deep")).unwrap(), b"deep");
    let o = b.run(&["volume", "rm", "fid"]);
    expect_code(&o, 0, "volume rm");
}

/// A tar record the tar reader keeps whole in memory (pax header, global
/// pax header, GNU long name) declared 128 MiB: a few hundred KB of gzip
/// in a layer, or plain in the archive `load` reads. Each is refused over
/// Go's 1 MiB limit before it is read, in one line, and `load`'s peak RSS
/// stays small (it was the record's size and more). Likewise a 128 MiB
/// manifest.json, over the 32 MiB that metadata may take.
#[test]
fn oversized_records_and_metadata_are_refused_in_constant_memory() {
    if !need_root() || !need("python3") || !need("timeout") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let big: u64 = 128 << 20;
    let record = |kind: tar::EntryType, out: &mut dyn Write| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path("ext").unwrap();
        h.set_mode(0o644);
        h.set_size(big);
        h.set_cksum();
        out.write_all(h.as_bytes()).unwrap();
        std::io::copy(&mut std::io::repeat(b'a').take(big), out).unwrap();
        out.write_all(&[0u8; 1024]).unwrap();
    };
    let b = Berth::empty(BIN);
    let mut cases = Vec::new();
    for (i, kind) in [
        tar::EntryType::XHeader,
        tar::EntryType::XGlobalHeader,
        tar::EntryType::GNULongName,
    ]
    .into_iter()
    .enumerate()
    {
        let layer = work.path().join(format!("layer{i}.tar.gz"));
        let mut gz = flate2::write::GzEncoder::new(
            BufWriter::new(File::create(&layer).unwrap()),
            flate2::Compression::fast(),
        );
        record(kind, &mut gz);
        gz.finish().unwrap().flush().unwrap();
        let archive = work.path().join(format!("archive{i}.tar"));
        docker_archive(
            &archive,
            &[layer],
            serde_json::json!({"config": {}}),
            &format!("big:{i}"),
        );
        cases.push((format!("{kind:?} in a layer"), archive, "1048576"));
    }
    // In the archive itself, before its manifest.
    let outer = work.path().join("outer.tar");
    {
        let mut f = BufWriter::new(File::create(&outer).unwrap());
        record(tar::EntryType::XHeader, &mut f);
        f.flush().unwrap();
    }
    cases.push(("a pax header in the archive".into(), outer, "1048576"));
    // A manifest.json of 128 MiB (read whole to be parsed).
    let fat = work.path().join("fat-manifest.tar");
    {
        let mut a = tar::Builder::new(BufWriter::new(File::create(&fat).unwrap()));
        let mut h = tar::Header::new_gnu();
        h.set_size(big);
        h.set_mode(0o644);
        a.append_data(&mut h, "manifest.json", std::io::repeat(b' ').take(big))
            .unwrap();
        a.into_inner().unwrap().flush().unwrap();
    }
    cases.push(("a 128 MiB manifest.json".into(), fat, "33554432"));

    for (what, archive, limit) in cases {
        let mut load = b.cmd();
        load.args(["load", "-i", archive.to_str().unwrap()]);
        let (o, peak) = peak_rss_of_tree(load);
        assert!(!o.status.success(), "{what}: loaded");
        let err = stderr(&o);
        let lines: Vec<_> = err.lines().filter(|l| !l.starts_with("maxrss=")).collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {err}");
        assert!(
            lines[0].contains(&format!("over the limit of {limit} bytes")),
            "{what}: {err}"
        );
        assert!(peak < 64 * 1024, "{what}: load peaked at {peak} kB of RSS");
    }
}
