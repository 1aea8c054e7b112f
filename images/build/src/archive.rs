//! `oci-archive`: an OCI image layout packed as a plain tar (`oci-layout`, `index.json`
//! and `blobs/` at the top), the form skopeo (`oci-archive:FILE`) and umoci users
//! exchange. Reproducible like layers: sorted entries, fixed mtime, uid/gid 0.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::layer::write_tar_with;

/// Packs the layout directory `layout` into the tar file `archive`, with every entry's
/// mtime set to `epoch`. The file is written next to its final name and renamed.
pub fn write_archive(layout: &Path, archive: &Path, epoch: u64) -> Result<u64> {
    if !layout.join("oci-layout").is_file() {
        bail!("{} is not an OCI layout (no oci-layout file)", layout.display());
    }
    let parent = match archive.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".oci-archive-")
        .tempfile_in(&parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    let file = tmp.as_file().try_clone().context("cloning the temporary file handle")?;
    let (mut w, _) = write_tar_with(layout, epoch, true, BufWriter::new(file))?;
    w.flush().context("writing the archive")?;
    drop(w);
    tmp.as_file().sync_all().context("syncing the archive")?;
    let size = tmp.as_file().metadata().context("reading the archive's size")?.len();
    tmp.persist(archive)
        .map_err(|e| e.error)
        .with_context(|| format!("moving the archive to {}", archive.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(archive, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting the mode of {}", archive.display()))?;
    Ok(size)
}

/// Unpacks an `oci-archive` into the directory `dest` (which must not exist or be
/// empty); the inverse of [`write_archive`], used by tests and tools.
pub fn unpack_archive(archive: &Path, dest: &Path) -> Result<()> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut ar = tar::Archive::new(file);
    ar.set_preserve_permissions(true);
    ar.unpack(dest).with_context(|| format!("unpacking {}", archive.display()))?;
    Ok(())
}
