//! OCI image layouts: the `oci-layout` marker, `index.json`, image manifests and image
//! configs (parsed with `oci-spec`), the choice of manifests to import (by tag, and by
//! platform inside nested indexes) and the image config the kubelet needs.

use crate::digest::Digest;
use crate::error::{io_err, ImageError};
use crate::unpack::Compression;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The annotation naming a manifest in an index (a tag, or a full reference).
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// OCI and Docker image manifests.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// OCI image indexes and Docker manifest lists.
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// OCI and Docker image configs.
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
/// The largest manifest, index or config read into memory.
pub(crate) const MAX_JSON_BLOB: u64 = 64 << 20;

/// The parts of an image config that decide how its containers run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `KEY=VALUE` strings in the image's order.
    pub env: Vec<String>,
    /// `WorkingDir` (`None` when unset or empty).
    pub working_dir: Option<String>,
    /// `User` (`None` when unset or empty): `user`, `uid`, `user:group`, `uid:gid`.
    pub user: Option<String>,
    /// `ExposedPorts` keys, sorted (`8080/tcp`).
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// A descriptor: what a blob is, its digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlobRef {
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// One entry of an index's `manifests`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) blob: BlobRef,
    /// The `org.opencontainers.image.ref.name` annotation.
    pub(crate) ref_name: Option<String>,
    /// `(os, architecture)` from the descriptor's platform.
    pub(crate) platform: Option<(String, String)>,
}

impl IndexEntry {
    pub(crate) fn is_manifest(&self) -> bool {
        MANIFEST_TYPES.contains(&self.blob.media_type.as_str())
    }

    pub(crate) fn is_index(&self) -> bool {
        INDEX_TYPES.contains(&self.blob.media_type.as_str())
    }
}

/// An image manifest: its config and layers (bottom first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) config: BlobRef,
    pub(crate) layers: Vec<BlobRef>,
}

/// An image config: the run parameters and the layers' uncompressed digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) config: ImageConfig,
    pub(crate) diff_ids: Vec<Digest>,
}

fn blob_ref(d: &oci_spec::image::Descriptor) -> Result<BlobRef, String> {
    Ok(BlobRef {
        media_type: d.media_type().to_string(),
        digest: Digest::parse(d.digest().as_ref())?,
        size: d.size(),
    })
}

/// Parses an `index.json` or a nested image index.
pub(crate) fn parse_index(bytes: &[u8]) -> Result<Vec<IndexEntry>, String> {
    let index = ImageIndex::from_reader(bytes).map_err(|e| format!("bad image index: {e}"))?;
    index
        .manifests()
        .iter()
        .map(|d| {
            Ok(IndexEntry {
                blob: blob_ref(d)?,
                ref_name: d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .cloned(),
                platform: d
                    .platform()
                    .as_ref()
                    .map(|p| (p.os().to_string(), p.architecture().to_string())),
            })
        })
        .collect()
}

/// Parses an image manifest, checking that its config is an image config and that
/// every layer's media type can be unpacked.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ImageError> {
    let m = ImageManifest::from_reader(bytes).map_err(|e| ImageError::InvalidLayout {
        path: PathBuf::from("manifest"),
        reason: format!("bad image manifest: {e}"),
    })?;
    let bad = |reason: String| ImageError::InvalidLayout {
        path: PathBuf::from("manifest"),
        reason,
    };
    let config = blob_ref(m.config()).map_err(bad)?;
    if !CONFIG_TYPES.contains(&config.media_type.as_str()) {
        return Err(ImageError::UnsupportedMediaType {
            what: "config".to_string(),
            digest: config.digest.to_string(),
            media_type: config.media_type,
        });
    }
    let layers = m
        .layers()
        .iter()
        .map(|d| blob_ref(d).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    for l in &layers {
        if Compression::for_media_type(&l.media_type).is_none() {
            return Err(ImageError::UnsupportedMediaType {
                what: "layer".to_string(),
                digest: l.digest.to_string(),
                media_type: l.media_type.clone(),
            });
        }
    }
    Ok(Manifest { config, layers })
}

/// Parses an image config.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<Config, String> {
    let c = ImageConfiguration::from_reader(bytes).map_err(|e| format!("bad image config: {e}"))?;
    if c.rootfs().typ() != "layers" {
        return Err(format!(
            "rootfs.type is {:?}, not \"layers\"",
            c.rootfs().typ()
        ));
    }
    let diff_ids = c
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let config = match c.config() {
        None => ImageConfig::default(),
        Some(cc) => {
            let mut exposed_ports = cc.exposed_ports().clone().unwrap_or_default();
            exposed_ports.sort();
            ImageConfig {
                entrypoint: cc.entrypoint().clone().unwrap_or_default(),
                cmd: cc.cmd().clone().unwrap_or_default(),
                env: cc.env().clone().unwrap_or_default(),
                working_dir: nonempty(cc.working_dir()),
                user: nonempty(cc.user()),
                exposed_ports,
                labels: cc
                    .labels()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            }
        }
    };
    Ok(Config { config, diff_ids })
}

/// Checks that `dir` holds an OCI image layout (its `oci-layout` file) and returns the
/// entries of its `index.json`.
pub(crate) fn read_layout_index(dir: &Path) -> Result<Vec<IndexEntry>, ImageError> {
    let marker = dir.join("oci-layout");
    let text = match std::fs::read_to_string(&marker) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let reason = if dir.join("manifest.json").exists() {
                "it has a manifest.json but no oci-layout file: it is a `docker save` archive in the old format; convert it with `skopeo copy docker-archive:IMAGE.tar oci-archive:IMAGE-oci.tar` and import that".to_string()
            } else {
                "it has no oci-layout file; make one with `skopeo copy <source> oci:DIR:TAG` or `umoci init`".to_string()
            };
            return Err(ImageError::InvalidLayout {
                path: dir.to_path_buf(),
                reason,
            });
        }
        Err(e) => return Err(io_err("read", &marker)(e)),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ImageError::InvalidLayout {
            path: marker.clone(),
            reason: format!("oci-layout is not JSON: {e}"),
        })?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(ver) if ver.starts_with("1.") => {}
        other => {
            return Err(ImageError::InvalidLayout {
                path: marker,
                reason: format!(
                    "imageLayoutVersion is {other:?}; only layout version 1.x is supported"
                ),
            })
        }
    }
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(io_err("read", &index_path))?;
    parse_index(&bytes).map_err(|reason| ImageError::InvalidLayout {
        path: index_path,
        reason,
    })
}

/// Where a blob lives in a layout (or in the store, which has the same `blobs/` tree).
pub(crate) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm.name())
        .join(&digest.hex)
}

/// This machine's platform, as OCI (Go) names it.
pub(crate) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    ("linux", arch)
}

/// The tag part of a `ref.name` annotation: the annotation itself when it is a plain
/// tag (`latest`, `1.0`), the tag of a full reference (`docker.io/library/busybox:1.36`
/// → `1.36`), `None` otherwise.
pub(crate) fn tag_of_ref_name(ref_name: &str) -> Option<String> {
    if crate::reference::check_tag(ref_name).is_ok() {
        return Some(ref_name.to_string());
    }
    crate::reference::Reference::parse(ref_name)
        .ok()
        .and_then(|r| r.tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "sha256:374380dee832adfed18ac3e230405b953bc5e6efed381748e2134dfb5440a64f";
    const C: &str = "sha256:a803ef3f3d91d8f3836c50a75db51cbeda897f9068de43b126a92329b362c03b";
    const L1: &str = "sha256:56495af8bdad194fca779342bf9afa2c7f48243cf3759a1fb4e51ba9bb799f48";
    const L2: &str = "sha256:8dff3fe4e77a44d9580c737a90c3d4247a686fb374897878085bc464a7d9aa5e";

    #[test]
    fn index_with_tags_and_platforms() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{M}","size":499,
                "annotations":{{"org.opencontainers.image.ref.name":"latest"}}}},
              {{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{C}","size":10,
                "platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
        );
        let entries = parse_index(json.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].is_manifest());
        assert_eq!(entries[0].ref_name.as_deref(), Some("latest"));
        assert_eq!(entries[0].blob.size, 499);
        assert_eq!(entries[0].blob.digest.to_string(), M);
        assert!(entries[1].is_index());
        assert_eq!(
            entries[1].platform,
            Some(("linux".to_string(), "arm64".to_string()))
        );
        assert!(parse_index(b"{\"schemaVersion\":2}").is_err());
        assert!(parse_index(b"not json").is_err());
    }

    #[test]
    fn manifest_layers_and_media_types() {
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{C}","size":439}},
               "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L1}","size":241}},
                         {{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{L2}","size":169}},
                         {{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{L2}","size":169}}]}}"#
        );
        let m = parse_manifest(json.as_bytes()).unwrap();
        assert_eq!(m.config.digest.to_string(), C);
        assert_eq!(m.layers.len(), 3);
        assert_eq!(m.layers[1].digest.to_string(), L2);

        let bad = json.replace(
            "application/vnd.oci.image.layer.v1.tar\"",
            "application/x-squashfs\"",
        );
        match parse_manifest(bad.as_bytes()) {
            Err(ImageError::UnsupportedMediaType { media_type, .. }) => {
                assert_eq!(media_type, "application/x-squashfs")
            }
            other => panic!("{other:?}"),
        }
        let artifact = json.replace(
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.dev.cosign.simplesigning.v1+json",
        );
        assert!(matches!(
            parse_manifest(artifact.as_bytes()),
            Err(ImageError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn config_fields() {
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux",
               "config":{{"User":"1000:1000","ExposedPorts":{{"9090/udp":{{}},"8080/tcp":{{}}}},
                 "Env":["PATH=/bin","A=1"],"Entrypoint":["/bin/api"],"Cmd":["--port","8080"],
                 "WorkingDir":"/srv","Labels":{{"b":"2","a":"1"}}}},
               "rootfs":{{"type":"layers","diff_ids":["{L1}","{L2}"]}}}}"#
        );
        let c = parse_config(json.as_bytes()).unwrap();
        assert_eq!(c.diff_ids.len(), 2);
        assert_eq!(c.config.entrypoint, ["/bin/api"]);
        assert_eq!(c.config.cmd, ["--port", "8080"]);
        assert_eq!(c.config.env, ["PATH=/bin", "A=1"]);
        assert_eq!(c.config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.config.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.config.exposed_ports, ["8080/tcp", "9090/udp"]);
        assert_eq!(c.config.labels.keys().collect::<Vec<_>>(), ["a", "b"]);

        let empty = r#"{"architecture":"amd64","os":"linux","config":{"WorkingDir":"","User":""},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = parse_config(empty.as_bytes()).unwrap();
        assert_eq!(c.config, ImageConfig::default());
        assert!(c.diff_ids.is_empty());
        let no_config =
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            parse_config(no_config.as_bytes()).unwrap().config,
            ImageConfig::default()
        );
        assert!(parse_config(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:zz\"]}}").is_err());
    }

    #[test]
    fn ref_name_tags() {
        assert_eq!(tag_of_ref_name("latest").as_deref(), Some("latest"));
        assert_eq!(tag_of_ref_name("1.0").as_deref(), Some("1.0"));
        assert_eq!(
            tag_of_ref_name("docker.io/library/busybox:1.36").as_deref(),
            Some("1.36")
        );
        assert_eq!(tag_of_ref_name("docker.io/library/busybox"), None);
    }
}
