//! Pod events (Scheduled, Pulled, Created, Started, Killing, Unhealthy, BackOff …), kept
//! per pod as JSON lines in `<pod dir>/events.jsonl`, for `minilet describe` now and for
//! the API server's Event objects later.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::timefmt::rfc3339;

/// Normal or Warning, as Kubernetes types events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Normal / Warning.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// What happened.
    pub message: String,
    /// When (RFC 3339).
    pub time: String,
    /// The pod's namespace/name.
    pub object: String,
}

/// Appends an event and logs it.
pub fn record(pod_dir: &Path, pod: &Pod, kind: EventType, reason: &str, message: &str) {
    let object = format!(
        "{}/{}",
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default()
    );
    tracing::info!(pod = %object, ?kind, reason, message, "event");
    let ev = Event { kind, reason: reason.into(), message: message.into(), time: rfc3339(SystemTime::now()), object };
    let _ = std::fs::create_dir_all(pod_dir);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(pod_dir.join("events.jsonl")) {
        if let Ok(line) = serde_json::to_string(&ev) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Reads a pod's events, oldest first.
pub fn read(pod_dir: &Path) -> Vec<Event> {
    std::fs::read_to_string(pod_dir.join("events.jsonl"))
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}
