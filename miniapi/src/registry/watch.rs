//! Watches: the registry side. A [`WatchStream`] holds what the HTTP layer streams:
//! synthetic ADDED events for the initial state (when no resourceVersion, or
//! `sendInitialEvents`), history replay, then the live receiver — each store event
//! filtered by prefix and selectors, with selector transitions turned into
//! ADDED/DELETED as the real server does.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::read::Filter;
use super::{strategy, ApiRequest, Registry};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult};
use crate::store::{EventType, StoreError, StoreEvent};

/// Default server-side watch timeout when the client sets none (30 minutes).
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything needed to stream one watch.
pub struct WatchStream {
    /// The resource watched.
    pub resource: &'static ResourceInfo,
    /// Key prefix (namespace scope).
    pub prefix: String,
    /// Selectors.
    pub filter: Filter,
    /// Initial ADDED objects (served form).
    pub initial: Vec<Value>,
    /// Replayed history.
    pub replay: Vec<Arc<StoreEvent>>,
    /// Live events.
    pub live: Option<broadcast::Receiver<Arc<StoreEvent>>>,
    /// An error to send as the only event (e.g. 410 Expired).
    pub error: Option<ApiError>,
    /// Revision at start.
    pub revision: u64,
    /// Stop after this long.
    pub timeout: Duration,
    /// Send BOOKMARK events.
    pub bookmarks: bool,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial events.
    pub initial_end_bookmark: bool,
    /// Interval between bookmarks.
    pub bookmark_interval: Duration,
}

impl WatchStream {
    /// Turn a store event into a watch event (`type`, served object), or drop it.
    pub fn transform(&self, ev: &StoreEvent) -> Option<(&'static str, Value)> {
        if !ev.key.starts_with(&self.prefix) {
            return None;
        }
        let res = self.resource;
        let now = strategy::from_storage(res, ev.object.clone());
        let now_match = self.filter.matches(&now);
        match ev.kind {
            EventType::Added => now_match.then_some(("ADDED", now)),
            EventType::Deleted => {
                let was = ev
                    .prev
                    .as_ref()
                    .map(|p| strategy::from_storage(res, p.clone()));
                let was_match = was.as_ref().is_none_or(|w| self.filter.matches(w));
                (was_match || now_match).then_some(("DELETED", now))
            }
            EventType::Modified => {
                let was_match = ev
                    .prev
                    .as_ref()
                    .map(|p| self.filter.matches(&strategy::from_storage(res, p.clone())))
                    .unwrap_or(true);
                match (was_match, now_match) {
                    (true, true) => Some(("MODIFIED", now)),
                    (false, true) => Some(("ADDED", now)),
                    (true, false) => Some(("DELETED", now)),
                    (false, false) => None,
                }
            }
        }
    }

    /// A BOOKMARK object at revision `rv`.
    pub fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta})
    }
}

impl Registry {
    /// Start a watch.
    pub(super) fn watch(&self, req: &ApiRequest) -> ApiResult<WatchStream> {
        let res = req.resource;
        let filter = Filter::from_request(req)?;
        let rv = req
            .options
            .resource_version
            .as_deref()
            .filter(|s| !s.is_empty());
        let send_initial = req
            .options
            .send_initial_events
            .unwrap_or(matches!(rv, None | Some("0")));
        let timeout = req
            .options
            .timeout_seconds
            .filter(|t| *t > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT);
        let mut stream = WatchStream {
            resource: res,
            prefix: res.prefix(req.namespace.as_deref()),
            filter,
            initial: Vec::new(),
            replay: Vec::new(),
            live: None,
            error: None,
            revision: 0,
            timeout,
            bookmarks: req.options.allow_watch_bookmarks,
            initial_end_bookmark: req.options.send_initial_events == Some(true)
                && req.options.allow_watch_bookmarks,
            bookmark_interval: self.bookmark_interval,
        };
        let after = if send_initial {
            let (items, rev) = self.matching(req, &stream.filter)?;
            stream.initial = items.into_iter().map(|(_, v)| v).collect();
            rev
        } else {
            match rv.and_then(|s| s.parse::<u64>().ok()) {
                Some(n) => n,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "invalid resource version: {}",
                        rv.unwrap_or("")
                    )))
                }
            }
        };
        match self.store.watch(after) {
            Ok(start) => {
                stream.replay = start.replay;
                stream.live = Some(start.live);
                stream.revision = start.revision.max(after);
            }
            Err(StoreError::Compacted { requested, oldest }) => {
                stream.error = Some(ApiError::expired(format!(
                    "too old resource version: {requested} ({oldest})"
                )));
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
        Ok(stream)
    }
}
