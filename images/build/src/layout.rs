//! Writes an OCI image layout: `oci-layout`, `index.json` and `blobs/sha256/…` (gzip'd
//! tar layers, the image config, the manifest).
//!
//! The layout is assembled in a staging directory next to the output and renamed into
//! place, so a failed build never leaves half a layout; an existing output is replaced
//! only if it is itself an OCI layout (or an empty directory).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType,
    OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder, ANNOTATION_REF_NAME,
};

use crate::canonical;
use crate::digest::sha256_hex;
use crate::layer::{write_layer, LayerBlob};
use crate::spec::ImageSpec;
use crate::time::rfc3339;

/// The containerd annotation holding an image's full name, set next to `ref.name` when
/// the spec has a name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// The layout directory.
    pub dir: PathBuf,
    /// `sha256:…` of the manifest (the image's digest).
    pub manifest_digest: String,
    /// Size of the manifest blob.
    pub manifest_size: u64,
    /// `sha256:…` of the image config (the image ID, in Docker's terms).
    pub config_digest: String,
    /// Size of the image config blob.
    pub config_size: u64,
    /// The layers, first to last.
    pub layers: Vec<LayerBlob>,
    /// The tags recorded in `index.json`.
    pub tags: Vec<String>,
}

impl BuildOutput {
    /// Bytes of all blobs: what the image weighs on disk and on the wire.
    pub fn blobs_size(&self) -> u64 {
        self.manifest_size + self.config_size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// Builds the image described by `spec` from `layer_dirs` (first to last) into the
/// layout directory `out`, with every timestamp set to `epoch` (seconds).
pub fn build_layout(spec: &ImageSpec, layer_dirs: &[PathBuf], out: &Path, epoch: u64) -> Result<BuildOutput> {
    spec.validate()?;
    if layer_dirs.is_empty() {
        bail!("an image needs at least one layer directory");
    }
    check_replaceable(out)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let stage = tempfile::Builder::new()
        .prefix(".oci-stage-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let blobs = stage.path().join("blobs").join("sha256");
    fs::create_dir_all(&blobs).context("creating blobs/sha256")?;

    let mut layers = Vec::new();
    for dir in layer_dirs {
        let layer = write_layer(dir, &blobs, epoch)
            .with_context(|| format!("writing the layer from {}", dir.display()))?;
        tracing::info!(
            dir = %dir.display(),
            digest = %format!("sha256:{}", layer.digest),
            size = layer.size,
            entries = layer.entries,
            "layer"
        );
        layers.push(layer);
    }

    let config = image_config(spec, &layers, epoch)?;
    let config_bytes = canonical::to_vec(&config).context("serializing the image config")?;
    let config_digest = put_blob(&blobs, &config_bytes)?;

    let manifest = image_manifest(&config_digest, config_bytes.len() as u64, &layers)?;
    let manifest_bytes = canonical::to_vec(&manifest).context("serializing the manifest")?;
    let manifest_digest = put_blob(&blobs, &manifest_bytes)?;

    let tags = spec.tags_or_default();
    let mut manifests = Vec::new();
    for tag in &tags {
        let mut d = Descriptor::new(MediaType::ImageManifest, manifest_bytes.len() as u64, digest(&manifest_digest)?);
        let mut ann = HashMap::new();
        ann.insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
        if let Some(name) = &spec.name {
            ann.insert(ANNOTATION_CONTAINERD_NAME.to_string(), format!("{name}:{tag}"));
        }
        d.set_annotations(Some(ann));
        d.set_platform(Some(
            PlatformBuilder::default().architecture(Arch::default()).os(Os::Linux).build()?,
        ));
        manifests.push(d);
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    fs::write(stage.path().join("index.json"), canonical::to_vec_pretty(&index)?).context("writing index.json")?;
    let layout = OciLayoutBuilder::default().image_layout_version("1.0.0").build()?;
    fs::write(stage.path().join("oci-layout"), canonical::to_vec(&layout)?).context("writing oci-layout")?;

    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("removing the old layout {}", out.display()))?;
    }
    let stage_path = stage.keep();
    fs::rename(&stage_path, out)
        .with_context(|| format!("moving the layout into {}", out.display()))?;
    // tempdir creates 0700; a layout is for anyone to read.
    set_mode(out, 0o755)?;

    Ok(BuildOutput {
        dir: out.to_path_buf(),
        manifest_digest: format!("sha256:{manifest_digest}"),
        manifest_size: manifest_bytes.len() as u64,
        config_digest: format!("sha256:{config_digest}"),
        config_size: config_bytes.len() as u64,
        layers,
        tags,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Refuses to replace anything but an OCI layout or an empty directory.
fn check_replaceable(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("{} exists and is not a directory", out.display());
    }
    let empty = fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .next()
        .is_none();
    if !empty && !out.join("oci-layout").is_file() {
        bail!("{} exists and is not an OCI layout; not replacing it", out.display());
    }
    Ok(())
}

fn digest(hex: &str) -> Result<Digest> {
    Digest::from_str(&format!("sha256:{hex}")).context("making a digest")
}

/// Writes `data` as a blob, returning its hex digest.
fn put_blob(blobs: &Path, data: &[u8]) -> Result<String> {
    let hex = sha256_hex(data);
    let path = blobs.join(&hex);
    fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    Ok(hex)
}

/// The image config for `spec` over `layers`.
pub fn image_config(spec: &ImageSpec, layers: &[LayerBlob], epoch: u64) -> Result<ImageConfiguration> {
    let mut c = ConfigBuilder::default().env(spec.env_with_path());
    if let Some(user) = &spec.user {
        c = c.user(user.clone());
    }
    let ports = spec.normalized_ports()?;
    if !ports.is_empty() {
        c = c.exposed_ports(ports);
    }
    if let Some(ep) = spec.entrypoint.as_ref().filter(|v| !v.is_empty()) {
        c = c.entrypoint(ep.clone());
    }
    if let Some(cmd) = spec.cmd.as_ref().filter(|v| !v.is_empty()) {
        c = c.cmd(cmd.clone());
    }
    if let Some(wd) = &spec.working_dir {
        c = c.working_dir(wd.clone());
    }
    if !spec.volumes.is_empty() {
        let mut v = spec.volumes.clone();
        v.sort();
        v.dedup();
        c = c.volumes(v);
    }
    if !spec.labels.is_empty() {
        c = c.labels(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>());
    }
    if let Some(sig) = &spec.stop_signal {
        c = c.stop_signal(sig.clone());
    }
    let created = rfc3339(epoch);
    let history = layers
        .iter()
        .map(|_| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by("minik-image-build".to_string())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect::<Vec<_>>())
        .build()?;
    let mut b = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::default())
        .os(Os::Linux)
        .config(c.build()?)
        .rootfs(rootfs)
        .history(history);
    if let Some(author) = &spec.author {
        b = b.author(author.clone());
    }
    Ok(b.build()?)
}

fn image_manifest(config_hex: &str, config_size: u64, layers: &[LayerBlob]) -> Result<ImageManifest> {
    let config = Descriptor::new(MediaType::ImageConfig, config_size, digest(config_hex)?);
    let layer_descs = layers
        .iter()
        .map(|l| Ok(Descriptor::new(MediaType::ImageLayerGzip, l.size, digest(&l.digest)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layer_descs)
        .build()?)
}
