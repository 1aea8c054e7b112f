//! minik-image-build: writes reproducible OCI image layouts (and `oci-archive` tarballs)
//! from root filesystem directories.
//!
//! The pieces:
//! - [`layer`] turns a directory into a gzip'd tar layer whose bytes depend only on the
//!   directory's names, contents, modes and link targets (sorted entries, fixed mtime,
//!   uid/gid 0, no xattrs, a gzip header without name or mtime);
//! - [`spec`] describes an image's runtime config (Entrypoint, Cmd, Env, …), from a JSON
//!   spec file and/or the command line;
//! - [`layout`] writes the blobs, the image config, the manifest, `index.json` and
//!   `oci-layout`;
//! - [`archive`] packs a layout into an `oci-archive` tar, as skopeo and umoci exchange.
//!
//! All JSON written goes through [`canonical`], so maps (which `oci-spec` keeps in
//! `HashMap`s) are serialized with sorted keys and the same input gives the same digest.

pub mod archive;
pub mod canonical;
pub mod digest;
pub mod layer;
pub mod layout;
pub mod spec;
pub mod time;

pub use layout::{build_layout, BuildOutput};
pub use spec::ImageSpec;
