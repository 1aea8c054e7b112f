//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
//! patch (Kubernetes' list-aware merge, used by `kubectl apply`'s client-side path)
//! and server-side apply.

pub mod apply;
pub mod fieldset;
pub mod json;
pub mod merge;
pub mod strategic;

use serde_json::Value;

use crate::resources::Kind;

/// The patch flavours, by request Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Parse a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// A patch that could not be applied (→ 400/422 by the caller).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed.
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch `test` failed or a path was missing.
    #[error("{0}")]
    Failed(String),
}

/// Apply a JSON, merge or strategic patch to `current` (apply patches go through
/// [`apply::server_side_apply`]).
pub fn apply_patch(
    kind: Kind,
    ty: PatchType,
    current: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match ty {
        PatchType::Json => json::apply(current, patch),
        PatchType::Merge => Ok(merge::merge(current, patch)),
        PatchType::Strategic => strategic::merge(kind, current, patch),
        PatchType::Apply => Err(PatchError::Malformed(
            "apply patches need a field manager".into(),
        )),
    }
}
