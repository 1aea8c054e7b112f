//! Reproducible layers: a directory tree as a gzip'd tar whose bytes depend only on the
//! tree's names, file contents, permission bits and link targets.
//!
//! What makes it reproducible:
//! - entries are visited depth-first with each directory's names sorted bytewise, so a
//!   directory always precedes what it holds;
//! - every header has the same mtime (the caller's, normally `SOURCE_DATE_EPOCH` or 0),
//!   uid/gid 0 and empty user/group names; no xattrs, no atime/ctime, no device numbers;
//! - hard links inside the tree become tar hard links to the first path in that order;
//! - the gzip header carries no file name and mtime 0, at a fixed compression level.
//!
//! Sockets, FIFOs and device nodes are skipped with a warning: images don't need them and
//! an unprivileged unpack could not create them anyway.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use crate::digest::HashingWriter;

/// A layer as written to a layout's `blobs/sha256/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Hex SHA-256 of the compressed blob (its name under `blobs/sha256/`).
    pub digest: String,
    /// Hex SHA-256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// Size in bytes of the compressed blob.
    pub size: u64,
    /// Size in bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Number of tar entries (files, directories and links).
    pub entries: u64,
}

/// The gzip level used for layers; fixed, as it changes the output bytes.
pub const GZIP_LEVEL: u32 = 6;

/// Writes the tree under `root` as an uncompressed tar to `out`, with every header's
/// mtime set to `mtime`. Returns the number of entries written.
pub fn write_tar<W: Write>(root: &Path, mtime: u64, out: W) -> Result<(W, u64)> {
    write_tar_with(root, mtime, false, out)
}

/// Like [`write_tar`]; with `normalize_modes`, directories get mode 0755 and files 0644
/// (0755 if any execute bit is set) whatever their permission bits on disk, so the
/// output does not depend on the umask it was written under.
pub fn write_tar_with<W: Write>(root: &Path, mtime: u64, normalize_modes: bool, out: W) -> Result<(W, u64)> {
    let meta = fs::symlink_metadata(root)
        .with_context(|| format!("reading layer directory {}", root.display()))?;
    if !meta.is_dir() {
        bail!("layer source {} is not a directory", root.display());
    }
    let mut w = TarWriter {
        builder: tar::Builder::new(out),
        mtime,
        normalize_modes,
        links: HashMap::new(),
        entries: 0,
    };
    w.builder.follow_symlinks(false);
    w.dir_children(root, Path::new(""))?;
    let out = w.builder.into_inner().context("finishing the tar stream")?;
    Ok((out, w.entries))
}

/// Writes the tree under `root` as a gzip'd tar layer into `blobs_dir` (a layout's
/// `blobs/sha256`), named by its digest.
pub fn write_layer(root: &Path, blobs_dir: &Path, mtime: u64) -> Result<LayerBlob> {
    let tmp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(blobs_dir)
        .with_context(|| format!("creating a temporary file in {}", blobs_dir.display()))?;
    let file = tmp.as_file().try_clone().context("cloning the temporary file handle")?;
    let compressed = HashingWriter::new(BufWriter::new(file));
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(compressed, Compression::new(GZIP_LEVEL));
    let uncompressed = HashingWriter::new(gz);
    let (uncompressed, entries) = write_tar(root, mtime, uncompressed)?;
    let (gz, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = gz.finish().context("finishing the gzip stream")?;
    let (mut buffered, digest, size) = compressed.finish();
    buffered.flush().context("writing the layer")?;
    tmp.as_file().sync_all().context("syncing the layer")?;
    let dest = blobs_dir.join(&digest);
    tmp.persist(&dest)
        .map_err(|e| e.error)
        .with_context(|| format!("moving the layer to {}", dest.display()))?;
    // Temporary files are created 0600; blobs are for anyone to read.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting the mode of {}", dest.display()))?;
    Ok(LayerBlob { digest, diff_id, size, uncompressed_size, entries })
}

struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    mtime: u64,
    normalize_modes: bool,
    /// (dev, ino) of multiply-linked files already written, and the path they went in as.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
}

impl<W: Write> TarWriter<W> {
    /// Appends every entry under `dir` (whose path inside the layer is `rel`), sorted.
    fn dir_children(&mut self, dir: &Path, rel: &Path) -> Result<()> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            names.push(entry.file_name());
        }
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let path = dir.join(&name);
            let rel_path = rel.join(&name);
            self.entry(&path, &rel_path)?;
        }
        Ok(())
    }

    fn header(&self, kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let mode = if !self.normalize_modes {
            mode & 0o7777
        } else if kind == EntryType::Directory || mode & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    }

    fn entry(&mut self, path: &Path, rel: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let ft = meta.file_type();
        let ctx = || format!("adding {} to the layer", path.display());
        if ft.is_dir() {
            let mut h = self.header(EntryType::Directory, meta.mode());
            self.builder.append_data(&mut h, rel, io::empty()).with_context(ctx)?;
            self.entries += 1;
            self.dir_children(path, rel)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).with_context(ctx)?;
            let mut h = self.header(EntryType::Symlink, 0o777);
            self.builder.append_link(&mut h, rel, &target).with_context(ctx)?;
            self.entries += 1;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = self.links.get(&key).cloned() {
                    let mut h = self.header(EntryType::Link, meta.mode());
                    self.builder.append_link(&mut h, rel, &first).with_context(ctx)?;
                    self.entries += 1;
                    return Ok(());
                }
                self.links.insert(key, rel.to_path_buf());
            }
            let mut h = self.header(EntryType::Regular, meta.mode());
            h.set_size(meta.len());
            let file = File::open(path).with_context(ctx)?;
            // A file that changes size while being read would make the tar invalid;
            // `take` plus the size check catches a shrink, the header size bounds growth.
            let mut reader = io::Read::take(file, meta.len());
            let mut counted = CountingReader { inner: &mut reader, count: 0 };
            self.builder.append_data(&mut h, rel, &mut counted).with_context(ctx)?;
            if counted.count != meta.len() {
                bail!("{} changed size while being added to the layer", path.display());
            }
            self.entries += 1;
        } else {
            let kind = if ft.is_socket() {
                "socket"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "device node"
            };
            tracing::warn!(path = %path.display(), kind, "skipping a special file");
        }
        Ok(())
    }
}

struct CountingReader<'a, R> {
    inner: &'a mut R,
    count: u64,
}

impl<R: io::Read> io::Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("b/sub")).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("b/sub/file"), b"content").unwrap();
        fs::write(root.join("a/x"), b"x").unwrap();
        fs::set_permissions(root.join("a/x"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../b/sub/file", root.join("a/link")).unwrap();
        fs::hard_link(root.join("a/x"), root.join("b/hard")).unwrap();
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, EntryType, u64, u64, u32, Option<String>)> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                    e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn entries_are_sorted_owned_by_root_and_dated_fixed() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let (bytes, n) = write_tar(dir.path(), 42, Vec::new()).unwrap();
        let got = entries(&bytes);
        assert_eq!(n, got.len() as u64);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["a", "a/link", "a/x", "b", "b/hard", "b/sub", "b/sub/file"]);
        for e in &got {
            assert_eq!(e.2, 42, "mtime of {}", e.0);
            assert_eq!(e.3, 0, "uid of {}", e.0);
        }
        assert_eq!(got[1].1, EntryType::Symlink);
        assert_eq!(got[1].5.as_deref(), Some("../b/sub/file"));
        assert_eq!(got[2].4, 0o755);
        assert_eq!(got[4].1, EntryType::Link);
        assert_eq!(got[4].5.as_deref(), Some("a/x"));
    }

    #[test]
    fn same_tree_made_differently_gives_the_same_layer() {
        let one = tempfile::tempdir().unwrap();
        tree(one.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let two = tempfile::tempdir().unwrap();
        // Made in another order, at another time.
        fs::create_dir_all(two.path().join("a")).unwrap();
        fs::create_dir_all(two.path().join("b/sub")).unwrap();
        fs::write(two.path().join("a/x"), b"x").unwrap();
        fs::set_permissions(two.path().join("a/x"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(two.path().join("a/x"), two.path().join("b/hard")).unwrap();
        fs::write(two.path().join("b/sub/file"), b"content").unwrap();
        std::os::unix::fs::symlink("../b/sub/file", two.path().join("a/link")).unwrap();

        let blobs1 = tempfile::tempdir().unwrap();
        let blobs2 = tempfile::tempdir().unwrap();
        let l1 = write_layer(one.path(), blobs1.path(), 0).unwrap();
        let l2 = write_layer(two.path(), blobs2.path(), 0).unwrap();
        assert_eq!(l1, l2);
        let blob = fs::read(blobs1.path().join(&l1.digest)).unwrap();
        assert_eq!(crate::digest::sha256_hex(&blob), l1.digest);
        assert_eq!(blob.len() as u64, l1.size);
        // gzip header: magic, deflate, no flags (no name), mtime 0.
        assert_eq!(&blob[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn content_and_mode_changes_change_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let (a, _) = write_tar(dir.path(), 0, Vec::new()).unwrap();
        fs::set_permissions(dir.path().join("a/x"), fs::Permissions::from_mode(0o700)).unwrap();
        let (b, _) = write_tar(dir.path(), 0, Vec::new()).unwrap();
        assert_ne!(a, b);
        fs::write(dir.path().join("b/sub/file"), b"other").unwrap();
        let (c, _) = write_tar(dir.path(), 0, Vec::new()).unwrap();
        assert_ne!(b, c);
    }

    #[test]
    fn long_names_survive() {
        let dir = tempfile::tempdir().unwrap();
        let long = "d".repeat(120);
        fs::create_dir_all(dir.path().join(&long)).unwrap();
        fs::write(dir.path().join(&long).join("f"), b"1").unwrap();
        std::os::unix::fs::symlink("t".repeat(150), dir.path().join("l")).unwrap();
        let (bytes, _) = write_tar(dir.path(), 0, Vec::new()).unwrap();
        let got = entries(&bytes);
        assert_eq!(got[0].0, long);
        assert_eq!(got[1].0, format!("{long}/f"));
        assert_eq!(got[2].5.as_deref(), Some("t".repeat(150).as_str()));
    }
}
