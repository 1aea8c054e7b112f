//! Unpacking one layer (a tar, maybe gzip- or zstd-compressed) into its own directory,
//! which later becomes an overlayfs lowerdir.
//!
//! * OCI whiteouts become overlayfs whiteouts, as containerd's overlay snapshotter
//!   makes them: `.wh.NAME` → a 0/0 character device `NAME`; `.wh..wh..opq` →
//!   `trusted.overlay.opaque=y` on its directory. A whiteout only hides lower layers
//!   (OCI image spec): when the same layer also has `NAME`, a directory becomes opaque
//!   instead and a file stays as it is.
//! * Paths with `..` are rejected, and every parent is resolved inside the layer
//!   directory (symlinks included, as if it were `/`), so nothing is written outside it.
//! * Owners, modes (setuid included), times, xattrs (PAX `SCHILY.xattr.*`, except
//!   `trusted.overlay.*`, which only the unpacker may set), hard links, symlinks,
//!   device nodes and fifos are kept. This needs root.
//! * The compressed stream is hashed against the blob's digest and the tar stream
//!   against the config's `diff_id`.

use crate::digest::{Digest, HashReader};
use crate::error::{io_err, ImageError};
use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The xattr that makes an overlayfs directory opaque.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The most symlinks followed while resolving one path.
const MAX_SYMLINKS: u32 = 40;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression of a layer media type, `None` if it is not a layer type the
    /// store can unpack.
    pub(crate) fn for_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }
}

/// A layer blob to unpack.
pub(crate) struct LayerBlob<'a> {
    pub(crate) path: &'a Path,
    pub(crate) digest: &'a Digest,
    pub(crate) diff_id: &'a Digest,
    pub(crate) compression: Compression,
}

type BlobReader = HashReader<BufReader<File>>;

/// The decompressing reader, which hands back the hashing blob reader at the end.
enum Decoder {
    Plain(BlobReader),
    Gzip(flate2::read::MultiGzDecoder<BlobReader>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<BlobReader>>),
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl Decoder {
    fn into_blob_reader(self) -> BlobReader {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish().into_inner(),
        }
    }
}

/// Unpacks `blob` into the (existing, empty) directory `dest`, verifying both digests.
pub(crate) fn unpack_layer(blob: &LayerBlob<'_>, dest: &Path) -> Result<(), ImageError> {
    let layer = blob.diff_id.to_string();
    let result = unpack_verified(blob, dest);
    if let Err(e) = &result {
        if !matches!(e, ImageError::DigestMismatch { .. }) {
            // A corrupt blob usually shows up as a bad gzip or tar stream: say so.
            if let Ok(actual) = hash_file(blob.path, blob.digest) {
                if &actual != blob.digest {
                    return Err(ImageError::DigestMismatch {
                        what: format!("layer (diff_id {layer})"),
                        digest: blob.digest.to_string(),
                        actual: actual.to_string(),
                        path: blob.path.to_path_buf(),
                    });
                }
            }
        }
    }
    result
}

fn hash_file(path: &Path, like: &Digest) -> io::Result<Digest> {
    let r = HashReader::new(BufReader::new(File::open(path)?), like.algorithm);
    Ok(r.finish()?.0)
}

fn unpack_verified(blob: &LayerBlob<'_>, dest: &Path) -> Result<(), ImageError> {
    let layer = blob.diff_id.to_string();
    let stream_err = |e: io::Error| ImageError::Unpack {
        layer: layer.clone(),
        entry: String::new(),
        reason: format!("cannot read the layer stream: {e}"),
    };
    let file = File::open(blob.path).map_err(io_err("open layer blob", blob.path))?;
    let hashed = HashReader::new(BufReader::new(file), blob.digest.algorithm);
    let mut decoder = match blob.compression {
        Compression::None => Decoder::Plain(hashed),
        Compression::Gzip => Decoder::Gzip(flate2::read::MultiGzDecoder::new(hashed)),
        Compression::Zstd => Decoder::Zstd(
            zstd::stream::read::Decoder::with_buffer(BufReader::new(hashed)).map_err(stream_err)?,
        ),
    };
    let mut plain = HashReader::new(&mut decoder, blob.diff_id.algorithm);
    let mut unpacker = Unpacker::new(dest);
    {
        let mut archive = tar::Archive::new(EndPadding::new(&mut plain));
        let entries = archive.entries().map_err(stream_err)?;
        for entry in entries {
            let mut entry = entry.map_err(|e| ImageError::Unpack {
                layer: layer.clone(),
                entry: String::new(),
                reason: format!("bad tar stream: {e}"),
            })?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            unpacker
                .apply(&mut entry)
                .map_err(|reason| ImageError::Unpack {
                    layer: layer.clone(),
                    entry: name,
                    reason,
                })?;
        }
    }
    let (diff_id, _) = plain.finish().map_err(stream_err)?;
    let (digest, _) = decoder.into_blob_reader().finish().map_err(stream_err)?;
    if &digest != blob.digest {
        return Err(ImageError::DigestMismatch {
            what: format!("layer (diff_id {layer})"),
            digest: blob.digest.to_string(),
            actual: digest.to_string(),
            path: blob.path.to_path_buf(),
        });
    }
    if &diff_id != blob.diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!(
                "uncompressed layer {} (its diff_id in the image config)",
                blob.digest
            ),
            digest: layer,
            actual: diff_id.to_string(),
            path: blob.path.to_path_buf(),
        });
    }
    unpacker.finish().map_err(|reason| ImageError::Unpack {
        layer,
        entry: String::new(),
        reason,
    })
}

/// Completes a tar stream that stops short: after the real end it gives zeros up to
/// the next 512-byte block and then the two zero blocks that end an archive. Some
/// writers (umoci 0.4's `insert`) leave out the last entry's padding and the end
/// blocks; the digests still cover exactly the bytes they wrote, since hashing happens
/// below this reader.
struct EndPadding<R> {
    inner: R,
    read: u64,
    /// Zeros still to give once `inner` has ended (`None`: not ended yet).
    zeros: Option<u64>,
}

impl<R: Read> EndPadding<R> {
    fn new(inner: R) -> Self {
        EndPadding {
            inner,
            read: 0,
            zeros: None,
        }
    }
}

impl<R: Read> Read for EndPadding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.zeros.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            let to_block = (512 - self.read % 512) % 512;
            self.zeros = Some(to_block + 1024);
        }
        let left = self.zeros.unwrap_or(0);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        buf[..n].fill(0);
        self.zeros = Some(left - n as u64);
        Ok(n)
    }
}

/// An entry's metadata.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn errstr<'p>(what: &str, path: &'p Path) -> impl FnOnce(io::Error) -> String + 'p {
    let what = what.to_string();
    move |e| format!("cannot {what} {}: {e}", path.display())
}

fn nixstr<'p>(what: &str, path: &'p Path) -> impl FnOnce(nix::errno::Errno) -> String + 'p {
    let what = what.to_string();
    move |e| {
        let hint = if e == nix::errno::Errno::EPERM {
            " (unpacking layers needs root: CAP_CHOWN, CAP_MKNOD, CAP_SYS_ADMIN)"
        } else {
            ""
        };
        format!("cannot {what} {}: {e}{hint}", path.display())
    }
}

/// A numeric header field, where an empty one (all NULs or spaces, as some writers
/// leave them) is 0, as Go's archive/tar reads it.
fn numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(T::default()),
        other => other,
    }
}

/// Parses a PAX time (`1700000000`, `1700000000.123456789`, `-1.5`).
fn parse_pax_time(s: &str) -> Option<TimeSpec> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    let nanos = if s.starts_with('-') { -nanos } else { nanos };
    Some(TimeSpec::new(secs, 0) + TimeSpec::new(0, nanos))
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, String> {
        let h = entry.header();
        let bad = |e: io::Error| format!("bad tar header: {e}");
        let old = h.as_old();
        let mode = numeric(h.mode(), &old.mode).map_err(bad)?;
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in 32 bits"))
        };
        let uid = id(numeric(h.uid(), &old.uid).map_err(bad)?, "uid")?;
        let gid = id(numeric(h.gid(), &old.gid).map_err(bad)?, "gid")?;
        let mtime = numeric(h.mtime(), &old.mtime).map_err(bad)?;
        let mut mtime = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let Ok(key) = ext.key() else { continue };
                if key == "mtime" {
                    if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }
}

/// Turns a tar path into a clean relative path: `None` for the root (`./`), an error
/// for `..`.
pub(crate) fn clean_path(raw: &Path) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(format!(
                    "the path {} contains '..' (path traversal); the layer is refused",
                    raw.display()
                ))
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Resolves `rel` inside `root` as if `root` were `/`: symlinks are followed but never
/// out of `root` (an absolute target restarts at `root`, `..` stops at it). Components
/// that do not exist are kept as they are.
pub(crate) fn resolve_in(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, rel);
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == OsStr::new("..") {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&c);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(format!(
                        "too many levels of symlinks resolving {}",
                        rel.display()
                    ));
                }
                let target = fs::read_link(&full).map_err(errstr("read symlink", &full))?;
                if target.has_root() {
                    resolved = PathBuf::new();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Pushes `p`'s components onto a stack so that the first one pops first.
fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let n = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: both strings are NUL-terminated and live across the call; value's pointer
    // and length describe a valid slice.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_opaque(dir: &Path) -> Result<(), String> {
    lsetxattr(dir, OPAQUE_XATTR, b"y").map_err(|e| {
        format!(
            "cannot set {OPAQUE_XATTR} on {}: {e} (the store needs a file system with trusted xattrs, e.g. ext4 or xfs, and root)",
            dir.display()
        )
    })
}

/// Applies one tar stream's entries to a layer directory.
struct Unpacker<'a> {
    root: &'a Path,
    /// Directories and their mtimes, set at the end (creating children changes them).
    dir_times: Vec<(PathBuf, TimeSpec)>,
    /// The whiteout devices this layer made (so that a later `NAME` in the same layer
    /// can tell a whiteout of a lower layer from its own content).
    whiteouts: HashSet<PathBuf>,
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a Path) -> Self {
        Unpacker {
            root,
            dir_times: Vec::new(),
            whiteouts: HashSet::new(),
        }
    }

    /// Creates (inside the root) and returns the directory that holds `rel`.
    fn parent_dir(&self, parent_rel: &Path) -> Result<PathBuf, String> {
        let parent = resolve_in(self.root, parent_rel)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(errstr("create directory", &parent))?;
        Ok(parent)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), String> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            return Ok(());
        }
        let raw = entry
            .path()
            .map_err(|e| format!("bad path: {e}"))?
            .into_owned();
        let meta = Meta::of(entry)?;
        let Some(rel) = clean_path(&raw)? else {
            if !kind.is_dir() {
                return Err("the layer's root entry is not a directory".to_string());
            }
            return self.finish_dir(self.root.to_path_buf(), &meta);
        };
        let (Some(name), parent_rel) = (rel.file_name(), rel.parent().unwrap_or(Path::new("")))
        else {
            return Err("the path has no file name".to_string());
        };
        let name = name.to_os_string();
        let parent = self.parent_dir(parent_rel)?;
        let name_bytes = name.as_bytes();

        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            return self.whiteout(&parent, hidden, &meta);
        }

        let target = parent.join(&name);
        // A hard link's source must be found before an existing target is replaced.
        let link_source = if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(|e| format!("bad link name: {e}"))?
                .ok_or("hard link without a target")?
                .into_owned();
            let link_rel = clean_path(&link)?.ok_or("hard link to the layer's root")?;
            let link_name = link_rel.file_name().ok_or("hard link target has no name")?;
            let link_parent = resolve_in(self.root, link_rel.parent().unwrap_or(Path::new("")))?;
            let source = link_parent.join(link_name);
            if source == target {
                return Ok(());
            }
            Some(source)
        } else {
            None
        };

        let was_whiteout = self.whiteouts.remove(&target);
        let mut keep_dir = false;
        if let Ok(existing) = fs::symlink_metadata(&target) {
            if kind.is_dir() && existing.is_dir() {
                keep_dir = true;
            } else if existing.is_dir() {
                fs::remove_dir_all(&target).map_err(errstr("remove", &target))?;
            } else {
                fs::remove_file(&target).map_err(errstr("remove", &target))?;
            }
        }

        if kind.is_dir() {
            if !keep_dir {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&target)
                    .map_err(errstr("create directory", &target))?;
            }
            if was_whiteout {
                // `.wh.NAME` and `NAME/` in one layer: NAME is replaced as a whole.
                set_opaque(&target)?;
            }
            return self.finish_dir(target, &meta);
        }
        if let Some(source) = link_source {
            fs::hard_link(&source, &target).map_err(|e| {
                format!(
                    "cannot hard-link {} to {}: {e} (the target must come earlier in the same layer)",
                    target.display(),
                    source.display()
                )
            })?;
            return Ok(());
        }
        if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&target)
                .map_err(errstr("create", &target))?;
            io::copy(entry, &mut f).map_err(errstr("write", &target))?;
            drop(f);
        } else if kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(|e| format!("bad symlink target: {e}"))?
                .ok_or("symlink without a target")?;
            std::os::unix::fs::symlink(&link, &target)
                .map_err(errstr("create symlink", &target))?;
            self.set_owner(&target, &meta)?;
            return set_time(&target, meta.mtime);
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let (sflag, dev) = if kind.is_fifo() {
                (SFlag::S_IFIFO, 0)
            } else {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let flag = if kind.is_character_special() {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (flag, makedev(u64::from(major), u64::from(minor)))
            };
            mknod(&target, sflag, Mode::from_bits_truncate(0o600), dev)
                .map_err(nixstr("create device node", &target))?;
        } else {
            tracing::warn!(path = %raw.display(), kind = ?kind, "skipping a tar entry of unsupported type");
            return Ok(());
        }
        self.set_meta(&target, &meta)?;
        set_time(&target, meta.mtime)
    }

    /// `.wh.<hidden>` in `parent`.
    fn whiteout(&mut self, parent: &Path, hidden: &[u8], meta: &Meta) -> Result<(), String> {
        if hidden == b".wh..opq" {
            return set_opaque(parent);
        }
        if hidden.starts_with(b".wh.") {
            // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err("a whiteout with no (or a bad) name".to_string());
        }
        let victim = parent.join(OsStr::from_bytes(hidden));
        match fs::symlink_metadata(&victim) {
            // This layer has its own NAME: the whiteout only hides lower layers.
            Ok(m) if m.is_dir() => set_opaque(&victim),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                mknod(&victim, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(nixstr("create whiteout device", &victim))?;
                self.set_owner(&victim, meta)?;
                self.whiteouts.insert(victim);
                Ok(())
            }
            Err(e) => Err(format!("cannot inspect {}: {e}", victim.display())),
        }
    }

    fn set_owner(&self, path: &Path, meta: &Meta) -> Result<(), String> {
        fchownat(
            AT_FDCWD,
            path,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(nixstr("change the owner of", path))
    }

    /// Owner, then mode (chown clears setuid bits), then xattrs (chown clears file
    /// capabilities).
    fn set_meta(&self, path: &Path, meta: &Meta) -> Result<(), String> {
        self.set_owner(path, meta)?;
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode & 0o7777))
            .map_err(errstr("set the mode of", path))?;
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") {
                tracing::warn!(path = %path.display(), xattr = %name, "ignoring an overlayfs xattr in a layer");
                continue;
            }
            match lsetxattr(path, name, value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                    tracing::warn!(path = %path.display(), xattr = %name, "the store's file system does not support this xattr; ignored");
                }
                Err(e) => {
                    return Err(format!(
                        "cannot set xattr {name} on {}: {e}",
                        path.display()
                    ))
                }
            }
        }
        Ok(())
    }

    fn finish_dir(&mut self, dir: PathBuf, meta: &Meta) -> Result<(), String> {
        self.set_meta(&dir, meta)?;
        self.dir_times.push((dir, meta.mtime));
        Ok(())
    }

    /// Sets the directories' times, deepest changes last undone first.
    fn finish(self) -> Result<(), String> {
        for (dir, t) in self.dir_times.iter().rev() {
            set_time(dir, *t)?;
        }
        Ok(())
    }
}

fn set_time(path: &Path, t: TimeSpec) -> Result<(), String> {
    utimensat(AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink)
        .map_err(nixstr("set the times of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        use Compression::*;
        let cases = [
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", Option::None),
        ];
        for (mt, want) in cases {
            assert_eq!(Compression::for_media_type(mt), want, "{mt}");
        }
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path(Path::new("./")).unwrap(), Option::None);
        assert_eq!(clean_path(Path::new("/")).unwrap(), Option::None);
        assert_eq!(
            clean_path(Path::new("./etc//passwd")).unwrap(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(
            clean_path(Path::new("/abs/x")).unwrap(),
            Some(PathBuf::from("abs/x"))
        );
        assert!(clean_path(Path::new("../x")).is_err());
        assert!(clean_path(Path::new("a/../../x")).is_err());
    }

    #[test]
    fn resolution_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in(root, Path::new("lib/x")).unwrap(),
            root.join("usr/lib/x")
        );
        assert_eq!(
            resolve_in(root, Path::new("abs")).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_in(root, Path::new("up/etc")).unwrap(),
            root.join("etc")
        );
        assert!(resolve_in(root, Path::new("loop/x")).is_err());
    }

    #[test]
    fn short_tar_streams_are_completed() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "c", &b"c\n"[..]).unwrap();
        let full = b.into_inner().unwrap();
        let short = &full[..514];
        let mut ar = tar::Archive::new(EndPadding::new(short));
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            names.push((e.path().unwrap().display().to_string(), body));
        }
        assert_eq!(names, [("c".to_string(), "c\n".to_string())]);
        assert_eq!(
            numeric::<u64>(Err(io::Error::other("x")), b"\0\0 ").unwrap(),
            0
        );
        assert!(numeric::<u64>(Err(io::Error::other("x")), b"12x").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("10"), Some(TimeSpec::new(10, 0)));
        assert_eq!(parse_pax_time("10.5"), Some(TimeSpec::new(10, 500_000_000)));
        assert_eq!(parse_pax_time("x"), Option::None);
    }
}
