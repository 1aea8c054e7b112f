//! The registry: typed API requests in, store operations out.
//!
//! The HTTP layer builds an [`ApiRequest`] (verb, resource, namespace, name,
//! subresource, options, body) and calls [`Registry::handle`] on the blocking pool.
//! Per-kind behaviour (defaulting, validation, status subresources, allocation)
//! lives in the [`strategy`] dispatch and the per-kind modules.

pub mod apps;
pub mod binding;
pub mod bootstrap;
pub mod core;
pub mod delete;
pub mod ops;
pub mod patching;
pub mod pods;
pub mod read;
pub mod services;
pub mod strategy;
pub mod typed;
pub mod validation;
pub mod watch;

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::allocators::Allocators;
use crate::patch::PatchType;
use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult};
use crate::store::{SharedStore, StoreError};

pub use watch::WatchStream;

/// What the request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET a collection with `watch=1`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH of the given type.
    Patch(PatchType),
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

/// `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them with a `Warning` header (the default).
    #[default]
    Warn,
    /// Refuse the request (400).
    Strict,
}

/// Query (and DeleteOptions body) options.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `timeoutSeconds` (watch).
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` (server-side apply).
    pub force: bool,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
}

/// A typed API request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// What to do.
    pub verb: Verb,
    /// On which resource.
    pub resource: &'static ResourceInfo,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Name from the path.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `binding`, `finalize`).
    pub subresource: Option<String>,
    /// Options.
    pub options: RequestOptions,
    /// Decoded body (JSON or YAML).
    pub body: Option<Value>,
    /// Authenticated user name.
    pub user: String,
}

/// A non-streaming answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub code: u16,
    /// The object, list or Status.
    pub body: Value,
    /// `Warning:` headers.
    pub warnings: Vec<String>,
}

impl ApiResponse {
    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        ApiResponse {
            code: 200,
            body,
            warnings: Vec::new(),
        }
    }
}

/// The registry's answer.
pub enum Outcome {
    /// A single response.
    Response(ApiResponse),
    /// A watch stream.
    Watch(Box<WatchStream>),
}

/// The registry: strategies over a store.
pub struct Registry {
    store: SharedStore,
    alloc: Allocators,
    ns_queue: mpsc::Sender<String>,
    bookmark_interval: Duration,
    ca_pem: std::sync::Mutex<Option<String>>,
}

impl Registry {
    /// A registry over `store`; returns the receiver of namespaces to finalize
    /// (feed it to [`bootstrap::run_namespace_finalizer`]).
    pub fn new(
        store: SharedStore,
        alloc: Allocators,
        bookmark_interval: Duration,
    ) -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        (
            Registry {
                store,
                alloc,
                ns_queue: tx,
                bookmark_interval,
                ca_pem: Default::default(),
            },
            rx,
        )
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The allocators.
    pub fn allocators(&self) -> &Allocators {
        &self.alloc
    }

    /// Serve one request.
    pub fn handle(&self, req: ApiRequest) -> ApiResult<Outcome> {
        let sub = req.subresource.as_deref();
        if let Some(s) = sub {
            if !req.resource.has_subresource(s) {
                return Err(ApiError::path_not_found());
            }
        }
        let resp = match (req.verb, sub) {
            (Verb::Watch, None) => return self.watch(&req).map(|w| Outcome::Watch(Box::new(w))),
            (Verb::Get, _) => self.get(&req)?,
            (Verb::List, None) => self.list(&req)?,
            (Verb::Create, None) => self.create(&req)?,
            (Verb::Create, Some("binding")) => self.bind(&req)?,
            (Verb::Update, _) => self.update(&req)?,
            (Verb::Patch(ty), _) => self.patch(&req, ty)?,
            (Verb::Delete, None) => self.delete(&req)?,
            (Verb::DeleteCollection, None) => self.delete_collection(&req)?,
            _ => return Err(ApiError::method_not_allowed()),
        };
        Ok(Outcome::Response(resp))
    }

    /// Queue a namespace for content deletion.
    fn enqueue_namespace(&self, name: &str) {
        let _ = self.ns_queue.send(name.to_string());
    }
}

/// Map a store error for `res`/`name`.
pub fn store_err(res: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(res.group, res.plural, name),
        StoreError::NotFound(_) => ApiError::not_found(res.group, res.plural, name),
        StoreError::Conflict { .. } => ApiError::conflict(res.group, res.plural, name),
        StoreError::Compacted { requested, oldest } => {
            ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// Name from the path or fail.
pub fn required_name(req: &ApiRequest) -> ApiResult<&str> {
    req.name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("resource name may not be empty"))
}

/// `metadata.name` of an object.
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.namespace` of an object.
pub fn namespace_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/namespace").and_then(Value::as_str)
}

/// Fill or check `apiVersion` and `kind` of a request body.
pub fn check_gvk(res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let want_av = res.api_version();
    let Some(m) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    };
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av != want_av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
        _ => {}
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("kind".into(), json!(res.kind));
        }
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"{}\" cannot be handled as a {}: no kind \"{k}\" is registered for version \"{want_av}\"",
                res.version, res.kind
            )))
        }
        _ => {}
    }
    if !m.get("metadata").is_some_and(Value::is_object) {
        m.insert("metadata".into(), json!({}));
    }
    Ok(())
}

/// Typed decode with unknown-field handling; returns the normalized object and warnings.
pub fn decode(
    res: &ResourceInfo,
    obj: &Value,
    mode: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let normalized = typed::normalize(res.id, obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            res.kind, res.version, res.kind
        ))
    })?;
    let unknown = typed::unknown_fields(obj, &normalized);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        let rendered: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match mode {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    res.kind,
                    res.version,
                    res.kind,
                    rendered.join(", ")
                )))
            }
            FieldValidation::Warn => warnings = rendered,
            FieldValidation::Ignore => {}
        }
    }
    Ok((normalized, warnings))
}
