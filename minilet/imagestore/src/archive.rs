//! Extracting an `oci-archive` (a tar, maybe gzip- or zstd-compressed, of an OCI
//! image layout) into a directory for import: files and directories only, nothing
//! outside the directory.

use crate::error::{io_err, ImageError};
use crate::fsutil::mkdir_p;
use crate::unpack;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Extracts an oci-archive (tar, tar.gz or tar.zst of a layout) into `dest`: regular
/// files and directories only, nothing outside `dest`.
pub(crate) fn extract_archive(tar_path: &Path, dest: &Path) -> Result<(), ImageError> {
    let mut f = File::open(tar_path).map_err(io_err("open archive", tar_path))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(io_err("read", tar_path))?;
    drop(f);
    let f = BufReader::new(File::open(tar_path).map_err(io_err("open archive", tar_path))?);
    let reader: Box<dyn Read> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(f)
                .map_err(io_err("read zstd archive", tar_path))?,
        )
    } else {
        Box::new(f)
    };
    let bad = |reason: String| ImageError::InvalidLayout {
        path: tar_path.to_path_buf(),
        reason,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("bad tar archive: {e}")))?;
        let kind = entry.header().entry_type();
        let raw = entry
            .path()
            .map_err(|e| bad(format!("bad path in archive: {e}")))?
            .into_owned();
        let Some(rel) = unpack::clean_path(&raw).map_err(bad)? else {
            continue;
        };
        let target = dest.join(&rel);
        if kind.is_dir() {
            mkdir_p(&target)?;
        } else if kind.is_file() || kind.is_contiguous() {
            if let Some(parent) = target.parent() {
                mkdir_p(parent)?;
            }
            let mut out = File::create(&target).map_err(io_err("create", &target))?;
            io::copy(&mut entry, &mut out).map_err(io_err("extract", &target))?;
            count += 1;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            return Err(bad(format!(
                "{} is a {kind:?} entry; an oci-archive holds only files and directories",
                raw.display()
            )));
        }
    }
    if count == 0 {
        return Err(bad("the archive is empty or not a tar archive".to_string()));
    }
    Ok(())
}
