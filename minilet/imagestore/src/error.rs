//! The image store's error type: every variant says what failed and how to fix it,
//! and [`ImageError::waiting_reason`] maps it to a Kubernetes container waiting reason.

use std::path::PathBuf;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A reference (from a pod spec or a command line) is not a valid image name.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The image is not in this node's store. minik never pulls: the message says how
    /// to import it.
    #[error(
        "image {reference:?} is not in this node's image store (looked up as {normalized}); {hint}"
    )]
    NotFound {
        /// The reference as written (e.g. `demo-api`).
        reference: String,
        /// The names it was looked up as (e.g. `localhost/demo-api:latest`).
        normalized: String,
        /// How to get it there, e.g. `import it with: minilet image import
        /// <layout-dir|oci-archive.tar> --name demo-api`.
        hint: String,
    },

    /// A blob's content does not hash to its digest.
    #[error("{what} {digest} is corrupt: its content hashes to {actual} ({path}); re-export the image (e.g. `skopeo copy ... oci-archive:image.tar`) and import it again")]
    DigestMismatch {
        /// What the blob is (`manifest`, `config`, `layer`, `uncompressed layer`).
        what: String,
        /// The digest it should have.
        digest: String,
        /// The digest it has.
        actual: String,
        /// Where it was read from.
        path: PathBuf,
    },

    /// A blob's length is not the one its descriptor gives.
    #[error("{what} {digest} is {actual} bytes but its descriptor says {expected} ({path}); the layout is truncated or corrupt: re-export the image and import it again")]
    SizeMismatch {
        /// What the blob is.
        what: String,
        /// Its digest.
        digest: String,
        /// The size in the descriptor.
        expected: u64,
        /// The size of the blob.
        actual: u64,
        /// Where it was read from.
        path: PathBuf,
    },

    /// The directory (or archive) is not a usable OCI image layout.
    #[error("{path} is not a usable OCI image layout: {reason}")]
    InvalidLayout {
        /// The layout directory, archive or file in it.
        path: PathBuf,
        /// What is wrong, and how to fix it.
        reason: String,
    },

    /// A manifest names a media type the store cannot handle.
    #[error("{what} {digest} has media type {media_type:?}, which minilet cannot use; supported layers are OCI tar, tar+gzip, tar+zstd and Docker's rootfs.diff.tar.gzip: convert the image with `skopeo copy --format oci` and import it again")]
    UnsupportedMediaType {
        /// What the blob is.
        what: String,
        /// Its digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },

    /// A layer could not be unpacked.
    #[error("cannot unpack layer {layer} (entry {entry:?}): {reason}")]
    Unpack {
        /// The layer's diff_id.
        layer: String,
        /// The tar entry being unpacked (empty if none).
        entry: String,
        /// What failed.
        reason: String,
    },

    /// overlayfs could not be mounted (or unmounted).
    #[error("cannot {action} overlayfs at {target}: {errno} ({hint})")]
    Mount {
        /// `mount` or `unmount`.
        action: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        errno: nix::errno::Errno,
        /// What to check.
        hint: String,
    },

    /// The store's own files are damaged.
    #[error("image store {path}: {reason}")]
    Store {
        /// The file or directory in the store.
        path: PathBuf,
        /// What is wrong, and how to fix it.
        reason: String,
    },

    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `create directory`, ...).
        action: String,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// The Kubernetes container waiting reason for a container whose image failed with
    /// this error: `ErrImageNeverPull` for a missing image (minik never pulls),
    /// `InvalidImageName` for a bad reference, `CreateContainerError` otherwise.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            ImageError::NotFound { .. } => "ErrImageNeverPull",
            ImageError::InvalidReference { .. } => "InvalidImageName",
            _ => "CreateContainerError",
        }
    }

    /// Whether this is [`ImageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NotFound { .. })
    }
}

/// Builds a `map_err` closure for an I/O error on `path`.
pub(crate) fn io_err(
    action: impl Into<String>,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ImageError {
    let action = action.into();
    let path = path.into();
    move |source| ImageError::Io {
        action,
        path,
        source,
    }
}
