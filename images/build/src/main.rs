//! `minik-image-build`: writes a reproducible OCI image layout (and optionally an
//! `oci-archive`) from root filesystem directories and an image spec.
//!
//! ```text
//! minik-image-build --out target/images/oci/demo-db --spec images/specs/demo-db.json \
//!     --layer-dir target/images/rootfs/demo-db --archive target/images/demo-db.tar
//! minik-image-build --out DIR --name NAME --tag latest --tag 1.0 --cmd /bin/sh \
//!     --env K=V --workdir / --expose 8080/tcp --user 0:0 --layer-dir ROOTFS
//! ```
//!
//! Timestamps come from `SOURCE_DATE_EPOCH` (or `--source-date-epoch`), default 0.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use minik_image_build::{archive, build_layout, time, ImageSpec};
use serde_json::json;

/// Command-line options. Values given here override the spec file's.
#[derive(Debug, Parser)]
#[command(name = "minik-image-build", version, about = "Builds a reproducible OCI image layout from root filesystem directories")]
struct Cli {
    /// The layout directory to write (replaced if it already is a layout).
    #[arg(long)]
    out: PathBuf,
    /// A JSON image spec (see images/specs/); the flags below override its values.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// The image name (recorded as io.containerd.image.name = NAME:TAG).
    #[arg(long)]
    name: Option<String>,
    /// A tag (repeatable); replaces the spec's tags. Default: latest.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// An entrypoint word (repeatable), or one JSON array such as '["/bin/sh","-c"]'.
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Leave the entrypoint unset even if the spec sets one.
    #[arg(long, conflicts_with = "entrypoint")]
    no_entrypoint: bool,
    /// A command word (repeatable), or one JSON array such as '["mongod"]'.
    #[arg(long, allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Leave the command unset even if the spec sets one.
    #[arg(long, conflicts_with = "cmd")]
    no_cmd: bool,
    /// An environment entry KEY=VALUE (repeatable; added to the spec's).
    #[arg(long)]
    env: Vec<String>,
    /// The working directory.
    #[arg(long)]
    workdir: Option<String>,
    /// An exposed port, PORT[/tcp|udp|sctp] (repeatable; added to the spec's).
    #[arg(long)]
    expose: Vec<String>,
    /// The user (name, uid, uid:gid, ...).
    #[arg(long)]
    user: Option<String>,
    /// A label KEY=VALUE (repeatable; added to the spec's).
    #[arg(long)]
    label: Vec<String>,
    /// A volume path (repeatable; added to the spec's).
    #[arg(long)]
    volume: Vec<String>,
    /// The stop signal, e.g. SIGTERM.
    #[arg(long)]
    stop_signal: Option<String>,
    /// A root filesystem directory to pack as a layer (repeatable, first to last).
    #[arg(long = "layer-dir", required = true)]
    layer_dirs: Vec<PathBuf>,
    /// Also write the layout as an oci-archive tar to this file.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Timestamp for every file and the config (seconds); default SOURCE_DATE_EPOCH or 0.
    #[arg(long)]
    source_date_epoch: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("minik-image-build: error: {e:#}");
        std::process::exit(1);
    }
}

/// A list of words given as repeated flags, or as one JSON array.
fn words(values: Vec<String>) -> Result<Vec<String>> {
    if let [one] = values.as_slice() {
        if one.trim_start().starts_with('[') {
            return serde_json::from_str(one).with_context(|| format!("{one:?} is not a JSON array of strings"));
        }
    }
    Ok(values)
}

fn spec_from(cli: &mut Cli) -> Result<ImageSpec> {
    let mut spec = match &cli.spec {
        Some(path) => ImageSpec::from_file(path)?,
        None => ImageSpec::default(),
    };
    if let Some(name) = cli.name.take() {
        spec.name = Some(name);
    }
    if !cli.tags.is_empty() {
        spec.tags = std::mem::take(&mut cli.tags);
    }
    if cli.no_entrypoint {
        spec.entrypoint = None;
    } else if !cli.entrypoint.is_empty() {
        spec.entrypoint = Some(words(std::mem::take(&mut cli.entrypoint))?);
    }
    if cli.no_cmd {
        spec.cmd = None;
    } else if !cli.cmd.is_empty() {
        spec.cmd = Some(words(std::mem::take(&mut cli.cmd))?);
    }
    spec.env.append(&mut cli.env);
    if let Some(wd) = cli.workdir.take() {
        spec.working_dir = Some(wd);
    }
    spec.exposed_ports.append(&mut cli.expose);
    if let Some(user) = cli.user.take() {
        spec.user = Some(user);
    }
    for l in cli.label.drain(..) {
        let Some((k, v)) = l.split_once('=') else { bail!("label {l:?} is not KEY=VALUE") };
        spec.labels.insert(k.to_string(), v.to_string());
    }
    spec.volumes.append(&mut cli.volume);
    if let Some(sig) = cli.stop_signal.take() {
        spec.stop_signal = Some(sig);
    }
    Ok(spec)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn run(mut cli: Cli) -> Result<()> {
    let spec = spec_from(&mut cli)?;
    let epoch = match cli.source_date_epoch {
        Some(e) => e,
        None => time::source_date_epoch()?,
    };
    let out = build_layout(&spec, &cli.layer_dirs, &cli.out, epoch)?;
    let archive_size = match &cli.archive {
        Some(path) => Some(archive::write_archive(&out.dir, path, epoch)?),
        None => None,
    };
    let uncompressed: u64 = out.layers.iter().map(|l| l.uncompressed_size).sum();
    if cli.json {
        let summary = json!({
            "name": spec.name,
            "layout": out.dir,
            "tags": out.tags,
            "manifest": out.manifest_digest,
            "config": out.config_digest,
            "layers": out.layers.iter().map(|l| json!({
                "digest": format!("sha256:{}", l.digest),
                "diffId": format!("sha256:{}", l.diff_id),
                "size": l.size,
                "uncompressedSize": l.uncompressed_size,
            })).collect::<Vec<_>>(),
            "size": out.blobs_size(),
            "uncompressedSize": uncompressed,
            "archive": cli.archive,
            "archiveSize": archive_size,
        });
        println!("{summary}");
    } else {
        println!(
            "{} {} tags={} layers={} size={} (uncompressed {}){}",
            spec.name.as_deref().unwrap_or("image"),
            out.manifest_digest,
            out.tags.join(","),
            out.layers.len(),
            mib(out.blobs_size()),
            mib(uncompressed),
            match (&cli.archive, archive_size) {
                (Some(p), Some(s)) => format!(" archive={} ({})", p.display(), mib(s)),
                _ => String::new(),
            }
        );
    }
    Ok(())
}
