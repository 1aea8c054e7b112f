//! The builder end to end: a layout whose digests are the same across two builds of the
//! same tree, whose manifest and config parse back with oci-spec, whose archive holds
//! the same layout, and which `umoci unpack` accepts (skipped loudly if umoci is absent).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use minik_image_build::{archive, build_layout, ImageSpec};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType, OciLayout};

fn rootfs(root: &Path) {
    for d in ["bin", "etc", "tmp", "usr/bin", "data/db"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", root.join("bin/tool")).unwrap();
    fs::write(root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/hosts"), b"").unwrap();
}

fn spec() -> ImageSpec {
    serde_json::from_str(
        r#"{"name":"demo","tags":["latest","1.0"],"cmd":["/usr/bin/tool"],
            "env":["A=1"],"workingDir":"/","user":"0:0",
            "exposedPorts":["8080/tcp","27017/tcp","28017/tcp","53/udp"],
            "labels":{"z":"1","a":"2","m":"3"}}"#,
    )
    .unwrap()
}

fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn two_builds_give_identical_layouts_that_parse_back() {
    let work = tempfile::tempdir().unwrap();
    let fs1 = work.path().join("rootfs1");
    let fs2 = work.path().join("rootfs2");
    rootfs(&fs1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    rootfs(&fs2);
    let out1 = work.path().join("oci1");
    let out2 = work.path().join("oci2");
    let b1 = build_layout(&spec(), std::slice::from_ref(&fs1), &out1, 0).unwrap();
    let b2 = build_layout(&spec(), &[fs2], &out2, 0).unwrap();
    assert_eq!(b1.manifest_digest, b2.manifest_digest);
    assert_eq!(b1.config_digest, b2.config_digest);
    assert_eq!(b1.layers, b2.layers);
    assert_eq!(read_tree(&out1), read_tree(&out2), "layouts differ byte for byte");

    // Rebuilding into the same directory replaces it and gives the same digests.
    let b3 = build_layout(&spec(), std::slice::from_ref(&fs1), &out1, 0).unwrap();
    assert_eq!(b1.manifest_digest, b3.manifest_digest);
    assert_eq!(read_tree(&out1), read_tree(&out2));

    // Another epoch gives another digest.
    let out4 = work.path().join("oci4");
    let b4 = build_layout(&spec(), &[fs1], &out4, 1_700_000_000).unwrap();
    assert_ne!(b1.manifest_digest, b4.manifest_digest);

    // Parse back with oci-spec.
    let layout = OciLayout::from_file(out1.join("oci-layout")).unwrap();
    assert_eq!(layout.image_layout_version(), "1.0.0");
    let index = ImageIndex::from_file(out1.join("index.json")).unwrap();
    assert_eq!(index.manifests().len(), 2);
    let tags: Vec<&str> = index
        .manifests()
        .iter()
        .map(|d| d.annotations().as_ref().unwrap()["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(tags, ["latest", "1.0"]);
    let desc = &index.manifests()[0];
    assert_eq!(desc.media_type(), &MediaType::ImageManifest);
    assert_eq!(desc.digest().to_string(), b1.manifest_digest);
    assert_eq!(desc.annotations().as_ref().unwrap()["io.containerd.image.name"], "demo:latest");
    let manifest_bytes = blob(&out1, &b1.manifest_digest);
    assert_eq!(desc.size(), manifest_bytes.len() as u64);
    let manifest = ImageManifest::from_reader(&manifest_bytes[..]).unwrap();
    assert_eq!(manifest.schema_version(), 2);
    assert_eq!(manifest.config().media_type(), &MediaType::ImageConfig);
    assert_eq!(manifest.layers().len(), 1);
    assert_eq!(manifest.layers()[0].media_type(), &MediaType::ImageLayerGzip);
    let config_bytes = blob(&out1, manifest.config().digest().as_ref());
    let config = ImageConfiguration::from_reader(&config_bytes[..]).unwrap();
    let c = config.config().as_ref().unwrap();
    assert_eq!(c.cmd().as_deref(), Some(&["/usr/bin/tool".to_string()][..]));
    assert!(c.entrypoint().is_none());
    assert_eq!(c.working_dir().as_deref(), Some("/"));
    assert_eq!(c.user().as_deref(), Some("0:0"));
    let env = c.env().as_ref().unwrap();
    assert!(env.iter().any(|e| e.starts_with("PATH=")));
    assert!(env.contains(&"A=1".to_string()));
    let mut ports = c.exposed_ports().clone().unwrap();
    ports.sort();
    assert_eq!(ports, ["27017/tcp", "28017/tcp", "53/udp", "8080/tcp"]);
    assert_eq!(config.created().as_deref(), Some("1970-01-01T00:00:00Z"));

    // diff_id is the sha256 of the uncompressed layer.
    let layer = blob(&out1, manifest.layers()[0].digest().as_ref());
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&layer[..]), &mut raw).unwrap();
    use sha2::Digest as _;
    let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(&raw));
    assert_eq!(config.rootfs().diff_ids(), &[diff_id]);

    // Blob names are their digests.
    for (path, bytes) in read_tree(&out1.join("blobs/sha256")) {
        assert_eq!(
            format!("{:x}", sha2::Sha256::digest(&bytes)),
            path.to_string_lossy(),
            "blob name"
        );
    }
}

#[test]
fn archives_are_reproducible_and_unpack_to_the_layout() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    rootfs(&root);
    let out = work.path().join("oci");
    build_layout(&spec(), &[root], &out, 0).unwrap();
    let a1 = work.path().join("one.tar");
    let a2 = work.path().join("two.tar");
    archive::write_archive(&out, &a1, 0).unwrap();
    archive::write_archive(&out, &a2, 0).unwrap();
    assert_eq!(fs::read(&a1).unwrap(), fs::read(&a2).unwrap());
    let unpacked = work.path().join("unpacked");
    archive::unpack_archive(&a1, &unpacked).unwrap();
    assert_eq!(read_tree(&unpacked), read_tree(&out));
}

#[test]
fn refuses_to_replace_a_directory_that_is_not_a_layout() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    rootfs(&root);
    let out = work.path().join("precious");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("file"), b"keep me").unwrap();
    assert!(build_layout(&spec(), &[root], &out, 0).is_err());
    assert_eq!(fs::read(out.join("file")).unwrap(), b"keep me");
}

#[test]
fn the_cli_writes_a_layout_and_an_archive() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    rootfs(&root);
    let out = work.path().join("oci");
    let ar = work.path().join("img.tar");
    let st = Command::new(env!("CARGO_BIN_EXE_minik-image-build"))
        .args(["--out", out.to_str().unwrap(), "--name", "x", "--tag", "latest", "--tag", "1.0"])
        .args(["--cmd", r#"["mongod"]"#, "--env", "K=V", "--workdir", "/", "--expose", "27017/tcp"])
        .args(["--user", "0:0", "--layer-dir", root.to_str().unwrap(), "--archive", ar.to_str().unwrap()])
        .args(["--json"])
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(summary["tags"], serde_json::json!(["latest", "1.0"]));
    assert!(ar.is_file());
    let index = ImageIndex::from_file(out.join("index.json")).unwrap();
    assert_eq!(index.manifests()[0].digest().to_string(), summary["manifest"].as_str().unwrap());
}

/// `umoci unpack` is a strong check that other tools accept the layout.
#[test]
fn umoci_unpacks_the_layout() {
    let umoci = ["/usr/bin/umoci", "/usr/local/bin/umoci"].into_iter().find(|p| Path::new(p).exists());
    let Some(umoci) = umoci else {
        eprintln!("\n!!!!!! SKIPPED: umoci is not installed (Debian package `umoci`); the umoci compatibility check did not run !!!!!!\n");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    rootfs(&root);
    let out = work.path().join("oci");
    build_layout(&spec(), &[root], &out, 0).unwrap();
    let bundle = work.path().join("bundle");
    let mut cmd = Command::new(umoci);
    cmd.arg("unpack");
    // umoci needs --rootless when not uid 0.
    if !is_root() {
        cmd.arg("--rootless");
    }
    let st = cmd
        .arg("--image")
        .arg(format!("{}:latest", out.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "umoci unpack failed: {}{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read(rootfs.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(fs::read_link(rootfs.join("bin/tool")).unwrap(), Path::new("../usr/bin/tool"));
    let mode = fs::metadata(rootfs.join("tmp")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o1777);
    let config: serde_json::Value = serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"], serde_json::json!(["/usr/bin/tool"]));
    assert_eq!(config["process"]["cwd"], "/");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
