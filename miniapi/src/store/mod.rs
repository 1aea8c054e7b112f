//! Storage: the [`Store`] trait, its embedded [`redb`](redb_store) backend, its
//! [`etcd`](etcd_store) backend and the in-memory [`WatchHub`](hub::WatchHub).
//!
//! The model is etcd's: one global, monotonically increasing revision; every write
//! gets the next revision, which becomes the object's `metadata.resourceVersion`
//! (as a decimal string); a watch starts *after* a given revision and replays what
//! happened since, or fails with "too old" once that history has been compacted.
//! The etcd backend implements the same trait one-to-one (mod_revision ↔
//! resourceVersion, `Txn` compare on mod_revision ↔ preconditions).
//!
//! The trait is synchronous: the HTTP layer runs registry calls on tokio's blocking
//! pool, and watches are delivered through a [`tokio::sync::broadcast`] receiver.

pub mod etcd_store;
pub mod hub;
pub mod redb_store;

use std::sync::Arc;

use serde_json::Value;

pub use etcd_store::EtcdStore;
pub use hub::{WatchHub, WatchStart};
pub use redb_store::RedbStore;

/// A stored object and the revision of its last modification.
#[derive(Debug, Clone)]
pub struct KeyValue {
    /// Storage key (`/registry/core/pods/default/x`).
    pub key: String,
    /// The object (with `metadata.resourceVersion` set to `mod_revision`).
    pub value: Value,
    /// Revision of the last write to this key.
    pub mod_revision: u64,
}

/// The result of a prefix list.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Matching objects ordered by key.
    pub items: Vec<KeyValue>,
    /// The store revision the list was read at.
    pub revision: u64,
}

/// Kind of change in a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    /// Key created.
    Added,
    /// Key updated.
    Modified,
    /// Key deleted.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in history and broadcast to watchers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreEvent {
    /// Revision of the change.
    pub revision: u64,
    /// What happened.
    pub kind: EventType,
    /// The key changed.
    pub key: String,
    /// The object after the change (for deletes: its last state, stamped with the
    /// deletion revision).
    pub object: Value,
    /// The object before the change (for MODIFIED and DELETED).
    pub prev: Option<Value>,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` of an existing key.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// A resourceVersion precondition failed.
    #[error("revision conflict on {key}: expected {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// Expected revision.
        expected: u64,
        /// Actual revision.
        actual: u64,
    },
    /// A watch asked for a revision older than the retained history.
    #[error("too old resource version: {requested} ({oldest})")]
    Compacted {
        /// Requested revision.
        requested: u64,
        /// Oldest revision still available.
        oldest: u64,
    },
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored value was not valid JSON.
    #[error("corrupt value at {0}: {1}")]
    Corrupt(String, String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A key-value store with revisions and watches (etcd's model).
pub trait Store: Send + Sync {
    /// Read one key.
    fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;
    /// Read every key starting with `prefix`, ordered by key.
    fn list(&self, prefix: &str) -> StoreResult<ListResult>;
    /// Create a key; fails with [`StoreError::AlreadyExists`].
    fn create(&self, key: &str, value: Value) -> StoreResult<KeyValue>;
    /// Replace a key's value. With `expected_revision`, fails with
    /// [`StoreError::Conflict`] unless the key's mod revision matches.
    fn update(
        &self,
        key: &str,
        value: Value,
        expected_revision: Option<u64>,
    ) -> StoreResult<KeyValue>;
    /// Delete a key (optionally guarded by its mod revision); returns its last state.
    fn delete(&self, key: &str, expected_revision: Option<u64>) -> StoreResult<KeyValue>;
    /// Start watching every change *after* `after_revision` (0 = from now on).
    fn watch(&self, after_revision: u64) -> StoreResult<WatchStart>;
    /// The current (latest committed) revision.
    fn current_revision(&self) -> u64;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// Write `rv` into `value.metadata.resourceVersion`.
pub fn stamp_revision(value: &mut Value, rv: u64) {
    if let Some(obj) = value.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
}
