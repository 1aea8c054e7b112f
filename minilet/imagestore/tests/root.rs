//! Root tests: layouts made by umoci (and skopeo, when installed) are imported,
//! unpacked and mounted as overlayfs rootfs, and the merged view is checked (whiteouts,
//! opaque directories, modes, owners, links, devices). They must run inside
//! `scripts/sandbox.sh` (a private mount namespace); each asserts that first.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use minik_imagestore::{merge_command, ImageError, ImageStore};
use serde_json::json;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Reads an xattr (no symlink following); `None` if it is not set.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

/// Checks the merged view of the umoci fixture.
fn check_fixture_rootfs(r: &Path) {
    assert!(!r.join("etc/gone").exists(), "the whiteout hides etc/gone");
    let mut conf: Vec<_> = fs::read_dir(r.join("etc/conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    conf.sort();
    assert_eq!(
        conf,
        ["c"],
        "the opaque etc/conf.d has only the new content"
    );
    assert_eq!(fs::read_to_string(r.join("etc/conf.d/c")).unwrap(), "c");

    let tool = fs::metadata(r.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid mode kept");
    assert_eq!(fs::read_to_string(r.join("bin/tool")).unwrap(), "tool");
    let tool2 = fs::metadata(r.join("bin/tool2")).unwrap();
    assert_eq!(tool.ino(), tool2.ino(), "hard link kept");
    assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("tool"));
    let null = fs::symlink_metadata(r.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o777, 0o666);
    assert!(fs::symlink_metadata(r.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let owned = fs::metadata(r.join("srv/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1234, 5678, 0o640)
    );
    assert_eq!(
        fs::metadata(r.join("secret")).unwrap().mode() & 0o777,
        0o700
    );
}

#[test]
fn umoci_layout_import_rootfs_and_release() {
    require_sandbox();
    let t = tempfile::tempdir().unwrap();
    let l = umoci_fixture(t.path());
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let refs = store.import_layout(&l, None, "demo-api").unwrap();
    let mut names: Vec<_> = refs.iter().map(|r| r.reference.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        ["localhost/demo-api:1.0", "localhost/demo-api:latest"]
    );

    let image = store.resolve("demo-api").unwrap();
    assert_eq!(image.reference, "localhost/demo-api:latest");
    assert_eq!(image.layers().len(), 3);
    let c = &image.config;
    assert_eq!(c.entrypoint, ["/bin/tool"]);
    assert_eq!(c.cmd, ["serve"]);
    assert_eq!(c.env, ["MODE=prod"]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.user.as_deref(), Some("1000:1000"));
    assert_eq!(c.exposed_ports, ["8080/tcp"]);
    assert_eq!(c.labels.get("app").map(String::as_str), Some("demo"));
    let cmd = merge_command(c, &[], &["--debug".to_string()], &[], None);
    assert_eq!(cmd.args, ["/bin/tool", "--debug"]);
    assert_eq!(cmd.working_dir, "/srv");

    let cdir = t.path().join("containers/c1");
    let rootfs = store.prepare_rootfs(&image, &cdir).unwrap();
    assert_eq!(rootfs.path, cdir.join("rootfs"));
    check_fixture_rootfs(&rootfs.path);

    // Layers hold overlayfs whiteouts, not OCI ones.
    let layers = unpacked_layers(store.root());
    assert_eq!(layers.len(), 3);
    let whiteout_layer = store
        .root()
        .join("layers")
        .join(&image.layers()[1].diff_id[7..])
        .join("fs");
    let wh = fs::symlink_metadata(whiteout_layer.join("etc/gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "0/0 whiteout device"
    );
    assert!(!whiteout_layer.join("etc/.wh.gone").exists());
    let opaque_layer = store
        .root()
        .join("layers")
        .join(&image.layers()[2].diff_id[7..]);
    assert!(opaque_layer.join(".complete").exists());
    assert_eq!(
        xattr(
            &opaque_layer.join("fs/etc/conf.d"),
            "trusted.overlay.opaque"
        )
        .as_deref(),
        Some(&b"y"[..]),
        "the opaque directory carries overlayfs's opaque xattr"
    );
    assert_eq!(
        xattr(&opaque_layer.join("fs/etc"), "trusted.overlay.opaque"),
        None
    );
    assert!(!opaque_layer.join("fs/etc/conf.d/.wh..wh..opq").exists());

    // Writes go to the container's upper dir, never into a shared layer.
    fs::write(rootfs.path.join("etc/conf.d/new"), "x").unwrap();
    fs::remove_file(rootfs.path.join("bin/tool2")).unwrap();
    assert!(rootfs.upper.join("etc/conf.d/new").exists());
    let layer1 = store
        .root()
        .join("layers")
        .join(&image.layers()[0].diff_id[7..])
        .join("fs");
    assert!(layer1.join("bin/tool2").exists());

    // Preparing again (a kubelet restart) keeps the mount.
    let again = store.prepare_rootfs(&image, &cdir).unwrap();
    assert!(again.path.join("etc/conf.d/new").exists());

    store.release_rootfs(&cdir).unwrap();
    assert!(!cdir.join("rootfs").exists());
    assert!(!cdir.join("upper").exists() && !cdir.join("work").exists());
    store.release_rootfs(&cdir).unwrap(); // missing is fine
    assert!(
        layer1.join("bin/tool").exists(),
        "layers outlive containers"
    );
}

#[test]
fn archive_import_shares_blobs_and_layers() {
    require_sandbox();
    let t = tempfile::tempdir().unwrap();
    let l = umoci_fixture(t.path());
    let archive = t.path().join("a.tar");
    run("tar", &["-C", s(&l), "-cf", s(&archive), "."]);
    let store = ImageStore::open(t.path().join("store")).unwrap();

    store.import_layout(&l, Some("latest"), "demo-api").unwrap();
    let blobs = count(&store.root().join("blobs/sha256"));
    let refs = store.import_archive(&archive, "demo-copy").unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(
        count(&store.root().join("blobs/sha256")),
        blobs,
        "blobs are shared"
    );
    assert_eq!(
        count(&store.root().join("tmp")),
        0,
        "the extracted archive is removed"
    );

    // Two containers, concurrently, from two names of one image: one unpack per layer.
    let a = store.resolve("demo-api").unwrap();
    let b = store.resolve("localhost/demo-copy:1.0").unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest);
    let dirs = [t.path().join("c/a"), t.path().join("c/b")];
    std::thread::scope(|sc| {
        let hs: Vec<_> = [(&a, &dirs[0]), (&b, &dirs[1])]
            .into_iter()
            .map(|(img, d)| {
                let store = store.clone();
                sc.spawn(move || store.prepare_rootfs(img, d).unwrap())
            })
            .collect();
        for h in hs {
            check_fixture_rootfs(&h.join().unwrap().path);
        }
    });
    assert_eq!(unpacked_layers(store.root()).len(), 3);
    let tmp_left = fs::read_dir(store.root().join("layers"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".tmp"));
    assert!(!tmp_left);
    for d in &dirs {
        store.release_rootfs(d).unwrap();
    }

    // Importing again copies and unpacks nothing new.
    store.import_archive(&archive, "demo-api").unwrap();
    assert_eq!(count(&store.root().join("blobs/sha256")), blobs);
}

#[test]
fn corrupt_layer_is_rejected_naming_its_digest() {
    require_sandbox();
    let t = tempfile::tempdir().unwrap();
    let l = umoci_fixture(t.path());
    let store = ImageStore::open(t.path().join("store")).unwrap();
    store.import_layout(&l, Some("latest"), "demo-api").unwrap();
    let image = store.resolve("demo-api").unwrap();

    // In the layout: refused at import.
    let layer = &image.layers()[0];
    let p = l.join("blobs/sha256").join(&layer.digest[7..]);
    let mut bytes = fs::read(&p).unwrap();
    bytes[20] ^= 0x55;
    fs::write(&p, &bytes).unwrap();
    let fresh = ImageStore::open(t.path().join("fresh")).unwrap();
    let e = fresh.import_layout(&l, None, "demo-api").unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains(&layer.digest), "{e}");

    // In the store (damaged after import): refused at unpack, nothing left behind.
    fs::write(
        store.root().join("blobs/sha256").join(&layer.digest[7..]),
        &bytes,
    )
    .unwrap();
    let e = store
        .prepare_rootfs(&image, &t.path().join("c"))
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains(&layer.digest), "{e}");
    assert!(
        !unpacked_layers(store.root()).contains(&layer.diff_id[7..].to_string()),
        "the corrupt layer is not unpacked"
    );
    let tmp_left = fs::read_dir(store.root().join("layers"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".tmp"));
    assert!(!tmp_left, "no temp dir left behind");
}

#[test]
fn hostile_layers_cannot_write_outside() {
    require_sandbox();
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let store = ImageStore::open(t.path().join("store")).unwrap();

    // `../` in a name.
    let l = t.path().join("L1");
    let d = write_image(
        &l,
        &[(tar_of(&[E::RawName(b"../../evil", "x")]), TAR)],
        json!({}),
    );
    write_index(&l, vec![tagged(d, "latest")]);
    store.import_layout(&l, None, "evil1").unwrap();
    let e = store
        .prepare_rootfs(&store.resolve("evil1").unwrap(), &t.path().join("c1"))
        .unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
    assert!(unpacked_layers(store.root()).is_empty());

    // Through an absolute symlink: lands inside the layer, as the container sees it.
    let l = t.path().join("L2");
    let link = format!("{}", outside.display());
    let d = write_image(
        &l,
        &[(
            tar_of(&[E::Symlink("out", &link), E::File("out/escaped", "x", 0o644)]),
            TAR_GZ,
        )],
        json!({}),
    );
    write_index(&l, vec![tagged(d, "latest")]);
    store.import_layout(&l, None, "evil2").unwrap();
    let img = store.resolve("evil2").unwrap();
    let r = store.prepare_rootfs(&img, &t.path().join("c2")).unwrap();
    assert_eq!(count(&outside), 0, "nothing written outside the layer");
    let inside = r
        .path
        .join(outside.strip_prefix("/").unwrap())
        .join("escaped");
    assert_eq!(fs::read_to_string(inside).unwrap(), "x");
    store.release_rootfs(&t.path().join("c2")).unwrap();
}

#[test]
fn many_layers_and_empty_images_mount() {
    require_sandbox();
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("L");
    // 120 layers: absolute lowerdirs would not fit in a page of mount options.
    let layers: Vec<_> = (0..120)
        .map(|i| {
            let name = format!("f{i}");
            let content = format!("{i}");
            (
                tar_of(&[
                    E::File(&name, &content, 0o644),
                    E::File("top", &content, 0o644),
                ]),
                TAR,
            )
        })
        .collect();
    let many = write_image(&l, &layers, json!({}));
    let empty = write_image(&l, &[], json!({}));
    write_index(&l, vec![tagged(many, "many"), tagged(empty, "empty")]);
    let store = ImageStore::open(t.path().join("store")).unwrap();
    store.import_layout(&l, None, "stack").unwrap();

    let r = store
        .prepare_rootfs(&store.resolve("stack:many").unwrap(), &t.path().join("c1"))
        .unwrap();
    assert_eq!(
        fs::read_to_string(r.path.join("top")).unwrap(),
        "119",
        "top layer wins"
    );
    assert_eq!(fs::read_to_string(r.path.join("f0")).unwrap(), "0");
    assert_eq!(count(&r.path), 121);
    store.release_rootfs(&t.path().join("c1")).unwrap();

    let r = store
        .prepare_rootfs(&store.resolve("stack:empty").unwrap(), &t.path().join("c2"))
        .unwrap();
    assert_eq!(count(&r.path), 0);
    fs::write(r.path.join("x"), "x").unwrap();
    store.release_rootfs(&t.path().join("c2")).unwrap();
    assert_eq!(count(&store.root().join("layers/empty/fs")), 0);
}

#[test]
fn skopeo_made_archive() {
    require_sandbox();
    if !have("skopeo") {
        eprintln!("\n*** SKIPPED skopeo_made_archive: skopeo is not installed (apt-get install -y skopeo) ***\n");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let l = umoci_fixture(t.path());
    let archive = t.path().join("x.tar");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("oci:{}:latest", s(&l)),
            &format!("oci-archive:{}", s(&archive)),
        ],
    );
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let refs = store
        .import_archive(&archive, "localhost/demo-api")
        .unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].reference, "localhost/demo-api:latest");
    let image = store.resolve("demo-api").unwrap();
    let r = store.prepare_rootfs(&image, &t.path().join("c")).unwrap();
    check_fixture_rootfs(&r.path);
    store.release_rootfs(&t.path().join("c")).unwrap();
}

#[test]
fn same_layer_whiteouts_hide_only_lower_layers() {
    require_sandbox();
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("L");
    let long = format!("deep/{}/file", "n".repeat(150));
    let lower = tar_of(&[
        E::Dir("d/", 0o755),
        E::File("d/old", "old", 0o644),
        E::File("f", "lower", 0o644),
        E::File("g", "lower", 0o644),
        E::File(&long, "long", 0o600),
    ]);
    // OCI: a whiteout applies to lower layers only, whatever the order in the tar.
    let upper = tar_of(&[
        E::File(".wh.d", "", 0o644),
        E::Dir("d/", 0o750),
        E::File("d/new", "new", 0o644),
        E::File("f", "upper", 0o644),
        E::File(".wh.f", "", 0o644),
        E::File(".wh.g", "", 0o644),
        E::File(".wh..wh.plnk", "", 0o644),
    ]);
    let d = write_image(&l, &[(lower, TAR_GZ), (upper, TAR_ZST)], json!({}));
    write_index(&l, vec![tagged(d, "latest")]);
    let store = ImageStore::open(t.path().join("store")).unwrap();
    store.import_layout(&l, None, "wh").unwrap();
    let cdir = t.path().join("c");
    let r = store
        .prepare_rootfs(&store.resolve("wh").unwrap(), &cdir)
        .unwrap();
    let names: Vec<_> = fs::read_dir(r.path.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["new"],
        "a re-created directory hides the lower one's content"
    );
    assert_eq!(
        fs::metadata(r.path.join("d")).unwrap().mode() & 0o777,
        0o750
    );
    assert_eq!(fs::read_to_string(r.path.join("f")).unwrap(), "upper");
    assert!(!r.path.join("g").exists());
    assert!(!r.path.join(".wh..wh.plnk").exists());
    assert_eq!(fs::read_to_string(r.path.join(&long)).unwrap(), "long");
    store.release_rootfs(&cdir).unwrap();
}
