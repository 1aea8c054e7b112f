//! Store tests that need no root: importing hand-made layouts (tags, untagged and
//! nested-index manifests, Docker and zstd media types), names, lookups and their
//! fallbacks, removal, corrupt and incomplete layouts, restart.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use minik_imagestore::{ImageError, ImageStore};
use serde_json::json;
use std::fs;

fn simple_layout(dir: &std::path::Path, tags: &[&str]) -> serde_json::Value {
    let layer = tar_of(&[E::Dir("etc/", 0o755), E::File("etc/hello", "hi", 0o644)]);
    let desc = write_image(
        dir,
        &[(layer, TAR_GZ)],
        json!({"Entrypoint": ["/bin/api"], "Env": ["A=1"], "ExposedPorts": {"8080/tcp": {}}}),
    );
    write_index(dir, tags.iter().map(|t| tagged(desc.clone(), t)).collect());
    desc
}

#[test]
fn import_names_every_tag_and_resolves_normalized() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("L");
    let desc = simple_layout(&l, &["latest", "1.0"]);
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let refs = store.import_layout(&l, None, "demo-api").unwrap();
    let names: Vec<_> = refs.iter().map(|r| r.reference.as_str()).collect();
    assert_eq!(
        names,
        ["localhost/demo-api:latest", "localhost/demo-api:1.0"]
    );
    assert_eq!(refs[0].manifest_digest, desc["digest"].as_str().unwrap());

    for r in [
        "demo-api",
        "localhost/demo-api",
        "demo-api:1.0",
        "docker.io/library/demo-api:latest",
    ] {
        let img = store
            .resolve(r)
            .unwrap_or_else(|e| panic!("resolve {r}: {e}"));
        assert_eq!(img.manifest_digest, refs[0].manifest_digest);
        assert_eq!(img.config.entrypoint, ["/bin/api"]);
        assert_eq!(img.config.exposed_ports, ["8080/tcp"]);
        assert_eq!(img.layers().len(), 1);
    }
    let by_digest = format!("demo-api@{}", refs[0].manifest_digest);
    assert_eq!(
        store.resolve(&by_digest).unwrap().reference,
        format!("localhost/demo-api@{}", refs[0].manifest_digest)
    );

    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "localhost/demo-api");
    assert!(list.iter().any(|i| i.tag.as_deref() == Some("1.0")));
    assert!(list[0].size > 0);

    // A restarted kubelet finds everything again.
    let again = ImageStore::open(t.path().join("store")).unwrap();
    assert_eq!(again.list().unwrap(), list);

    // One tag only, under a name with its own tag.
    let only = store.import_layout(&l, Some("1.0"), "other:2.0").unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].reference, "localhost/other:2.0");
    match store.import_layout(&l, Some("nope"), "x") {
        Err(ImageError::InvalidLayout { reason, .. }) => {
            assert!(
                reason.contains("nope") && reason.contains("latest"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.import_layout(&l, None, "x:1"),
        Err(ImageError::InvalidReference { .. })
    ));

    store.remove("demo-api:1.0").unwrap();
    assert!(store.resolve("demo-api:1.0").unwrap_err().is_not_found());
    assert!(store.resolve("demo-api").is_ok());
    store.remove(&by_digest).unwrap();
    assert!(store.resolve("demo-api").unwrap_err().is_not_found());
    assert!(store.remove("demo-api").unwrap_err().is_not_found());
}

#[test]
fn missing_image_says_how_to_import_it() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let e = store.resolve("demo-api").unwrap_err();
    assert_eq!(e.waiting_reason(), "ErrImageNeverPull");
    match &e {
        ImageError::NotFound {
            reference,
            normalized,
            hint,
        } => {
            assert_eq!(reference, "demo-api");
            assert_eq!(normalized, "localhost/demo-api:latest");
            assert!(
                hint.contains("import it with: minilet image import <layout-dir|oci-archive.tar> --name demo-api"),
                "{hint}"
            );
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("\"demo-api\"") && msg.contains("localhost/demo-api:latest"),
        "{msg}"
    );

    // Other tags of the same repository are named.
    let l = t.path().join("L");
    simple_layout(&l, &["1.0"]);
    store.import_layout(&l, None, "localhost/demo-api").unwrap();
    let hint = match store.resolve("localhost/demo-api:2.0").unwrap_err() {
        ImageError::NotFound { hint, .. } => hint,
        other => panic!("{other:?}"),
    };
    assert!(hint.contains("--name localhost/demo-api:2.0"), "{hint}");
    assert!(hint.contains("localhost/demo-api:1.0"), "{hint}");

    let bad = store.resolve("Demo-API").unwrap_err();
    assert_eq!(bad.waiting_reason(), "InvalidImageName");
}

#[test]
fn untagged_media_types_and_nested_index() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("L");
    let a = write_image(&l, &[(tar_of(&[E::File("a", "a", 0o644)]), TAR)], json!({}));
    let b = write_image(
        &l,
        &[
            (tar_of(&[E::File("b", "b", 0o644)]), DOCKER_GZ),
            (tar_of(&[E::File("c", "c", 0o644)]), TAR_ZST),
        ],
        json!({"Cmd": ["/b"]}),
    );
    // A nested index with this platform and another one.
    let other = write_image(&l, &[], json!({}));
    let mut mine = b.clone();
    mine["platform"] = json!({"os": "linux", "architecture": host_arch()});
    let mut theirs = other.clone();
    theirs["platform"] = json!({"os": "linux", "architecture": "s390x-not-this-one"});
    let nested = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [theirs, mine]})).unwrap();
    let nd = write_blob(&l, &nested);
    let nested_desc = json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": nd, "size": nested.len()});
    write_index(&l, vec![a.clone(), tagged(nested_desc, "multi")]);

    let store = ImageStore::open(t.path().join("store")).unwrap();
    let refs = store.import_layout(&l, None, "mix").unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(
        refs[0].reference,
        format!("localhost/mix@{}", a["digest"].as_str().unwrap())
    );
    assert_eq!(refs[1].reference, "localhost/mix:multi");
    assert_eq!(refs[1].manifest_digest, b["digest"].as_str().unwrap());
    let img = store.resolve("mix:multi").unwrap();
    assert_eq!(img.config.cmd, ["/b"]);
    let types: Vec<_> = img.layers().iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(types, [DOCKER_GZ, TAR_ZST]);
    assert!(store.resolve(&refs[0].reference).is_ok());

    // A single untagged manifest is `latest`.
    let l2 = t.path().join("L2");
    let one = write_image(&l2, &[], json!({}));
    write_index(&l2, vec![one]);
    assert_eq!(
        store.import_layout(&l2, None, "solo").unwrap()[0].reference,
        "localhost/solo:latest"
    );
}

#[test]
fn corrupt_truncated_and_incomplete_layouts_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("L");
    simple_layout(&l, &["latest"]);
    let store = ImageStore::open(t.path().join("store")).unwrap();

    // The layer blob: the manifest's first layer.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(l.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(l.join("blobs/sha256").join(&md[7..])).unwrap()).unwrap();
    let ld = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let lpath = l.join("blobs/sha256").join(&ld[7..]);
    let good = fs::read(&lpath).unwrap();

    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs::write(&lpath, &bad).unwrap();
    let e = store.import_layout(&l, None, "x").unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains(&ld), "{e}");

    fs::write(&lpath, &good[..good.len() - 1]).unwrap();
    let e = store.import_layout(&l, None, "x").unwrap_err();
    assert!(matches!(e, ImageError::SizeMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains(&ld), "{e}");

    fs::remove_file(&lpath).unwrap();
    let e = store.import_layout(&l, None, "x").unwrap_err();
    assert!(
        e.to_string().contains("missing") && e.to_string().contains(&ld),
        "{e}"
    );
    assert!(
        store.list().unwrap().is_empty(),
        "nothing named after failed imports"
    );

    fs::remove_file(l.join("oci-layout")).unwrap();
    let e = store.import_layout(&l, None, "x").unwrap_err();
    assert!(e.to_string().contains("oci-layout"), "{e}");

    let e = store
        .import_archive(&t.path().join("nope.tar"), "x")
        .unwrap_err();
    assert!(e.to_string().contains("nope.tar"), "{e}");
}

#[test]
fn corrupt_images_json_is_reported() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("images.json"), "{nope").unwrap();
    let e = ImageStore::open(t.path()).unwrap_err();
    assert!(e.to_string().contains("images.json"), "{e}");
}
