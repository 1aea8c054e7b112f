//! Helpers for the image store's integration tests: OCI layouts built by hand (any
//! media type, nested indexes, hostile tars) and by `umoci`, and the sandbox check.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Root tests mount overlayfs: they must run inside scripts/sandbox.sh (a private
/// mount namespace), never in the host's.
pub fn require_sandbox() {
    assert_eq!(
        std::env::var("MINIK_SANDBOX").as_deref(),
        Ok("inside"),
        "this test mounts overlayfs and must run in a private mount namespace: \
         run `scripts/sandbox.sh cargo test -p minik-imagestore` from the workspace root"
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (mknod, chown, trusted xattrs, mount)"
    );
}

/// Runs a command, panicking with its output if it fails.
pub fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {prog}: {e}; install it (`apt-get install -y {prog}`; scripts/deps.sh lists the test tools)"
        )
    });
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes a blob into a layout; returns its digest.
pub fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(bytes));
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tar entry for hand-made layers.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a str, u32),
    Symlink(&'a str, &'a str),
    /// A file whose name is written into the header as is (`..` included).
    RawName(&'a [u8], &'a str),
}

pub fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, content, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, p, content.as_bytes()).unwrap();
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::RawName(name, content) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(content.len() as u64);
                let old = h.as_old_mut();
                old.name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, content.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const TAR_ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_GZ: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Writes an image (layers as `(uncompressed tar, media type)`) into a layout; returns
/// the manifest's descriptor (without annotations).
pub fn write_image(layout: &Path, layers: &[(Vec<u8>, &str)], config: Value) -> Value {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, mt) in layers {
        diff_ids.push(sha256(tar));
        let blob = match *mt {
            TAR => tar.clone(),
            TAR_ZST => zstd::encode_all(&tar[..], 3).unwrap(),
            _ => gzip(tar),
        };
        let d = write_blob(layout, &blob);
        descs.push(json!({"mediaType": mt, "digest": d, "size": blob.len()}));
    }
    let cfg = json!({
        "architecture": host_arch(), "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    });
    let cbytes = serde_json::to_vec(&cfg).unwrap();
    let cd = write_blob(layout, &cbytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cbytes.len()},
        "layers": descs
    });
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = write_blob(layout, &mbytes);
    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mbytes.len()})
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Adds `org.opencontainers.image.ref.name` to a descriptor.
pub fn tagged(mut desc: Value, tag: &str) -> Value {
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    desc
}

/// Writes `oci-layout` and `index.json`.
pub fn write_index(layout: &Path, manifests: Vec<Value>) {
    fs::create_dir_all(layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// Builds, with umoci, the layout `<base>/L` tagged `latest` and `1.0`:
///
/// * layer 1: `etc/conf.d/a`, `etc/gone`, `bin/tool` (4755, content "tool"),
///   `bin/tool2` (hard link), `bin/sh -> tool`, `dev/null` (c 1:3), `run/fifo`,
///   `srv/owned` (1234:5678, 0640), `secret/` (0700);
/// * layer 2: `etc/gone` deleted (a `.wh.gone` whiteout);
/// * layer 3: `etc/conf.d` replaced by a directory with only `c` (`.wh..wh..opq`);
/// * config: entrypoint `/bin/tool`, cmd `serve`, env `MODE=prod`, workdir `/srv`,
///   user `1000:1000`, port `8080/tcp`, label `app=demo`.
pub fn umoci_fixture(base: &Path) -> PathBuf {
    assert!(
        have("umoci"),
        "umoci is not installed: `apt-get install -y umoci` (the root tests build their fixture layouts with it)"
    );
    let l = base.join("L");
    let b = base.join("B");
    let img = format!("{}:latest", s(&l));
    run("umoci", &["init", "--layout", s(&l)]);
    run("umoci", &["new", "--image", &img]);
    run("umoci", &["unpack", "--image", &img, s(&b)]);
    let r = b.join("rootfs");
    for d in ["etc/conf.d", "bin", "dev", "run", "srv", "secret"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::write(r.join("etc/conf.d/a"), "a").unwrap();
    fs::write(r.join("etc/gone"), "old").unwrap();
    fs::write(r.join("bin/tool"), "tool").unwrap();
    set_mode(&r.join("bin/tool"), 0o4755);
    fs::hard_link(r.join("bin/tool"), r.join("bin/tool2")).unwrap();
    std::os::unix::fs::symlink("tool", r.join("bin/sh")).unwrap();
    nix::sys::stat::mknod(
        &r.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    set_mode(&r.join("dev/null"), 0o666);
    nix::unistd::mkfifo(
        &r.join("run/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    fs::write(r.join("srv/owned"), "mine").unwrap();
    std::os::unix::fs::chown(r.join("srv/owned"), Some(1234), Some(5678)).unwrap();
    set_mode(&r.join("srv/owned"), 0o640);
    set_mode(&r.join("secret"), 0o700);
    run("umoci", &["repack", "--image", &img, s(&b)]);
    fs::remove_dir_all(&b).unwrap();

    run("umoci", &["unpack", "--image", &img, s(&b)]);
    fs::remove_file(b.join("rootfs/etc/gone")).unwrap();
    run("umoci", &["repack", "--image", &img, s(&b)]);
    fs::remove_dir_all(&b).unwrap();

    let nd = base.join("nd");
    fs::create_dir_all(&nd).unwrap();
    fs::write(nd.join("c"), "c").unwrap();
    run(
        "umoci",
        &["insert", "--image", &img, "--opaque", s(&nd), "/etc/conf.d"],
    );
    run(
        "umoci",
        &[
            "config",
            "--image",
            &img,
            "--config.entrypoint",
            "/bin/tool",
            "--config.cmd",
            "serve",
            "--config.env",
            "MODE=prod",
            "--config.workingdir",
            "/srv",
            "--config.user",
            "1000:1000",
            "--config.exposedports",
            "8080/tcp",
            "--config.label",
            "app=demo",
        ],
    );
    run("umoci", &["tag", "--image", &img, "1.0"]);
    l
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Number of entries in a directory.
pub fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The unpacked layers (not `empty`, not temp dirs).
pub fn unpacked_layers(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    v.sort();
    v
}
