//! Finding what a request names: the pod (by namespace and name, optionally checked
//! against its UID) among the pods this minilet runs, its container's status, the
//! runtime ID of its current attempt and its CRI log files. Everything is read from what
//! the daemon writes (`pods/<uid>/state.json` and `status.json`), as `minilet` CLI does.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

use super::HttpError;
use crate::config::KubeletConfig;
use crate::state::PodRecord;

/// A pod found on this node.
pub struct Found {
    /// The persisted record (spec, sandbox).
    pub record: PodRecord,
    /// The last written status.
    pub pod: Pod,
}

/// Finds pod `ns/name` (and, when given, checks its UID).
pub fn find(cfg: &KubeletConfig, ns: &str, name: &str, uid: Option<&str>) -> Result<Found, HttpError> {
    for record in PodRecord::load_all(&cfg.pods_dir()) {
        let m = &record.pod.metadata;
        if m.name.as_deref() != Some(name) || m.namespace.as_deref().unwrap_or("default") != ns {
            continue;
        }
        if uid.is_some_and(|u| u != record.uid) {
            continue;
        }
        let status_file = cfg.pods_dir().join(&record.uid).join("status.json");
        let pod: Pod = std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| record.pod.clone());
        return Ok(Found { record, pod });
    }
    Err(HttpError::not_found(format!("pod {ns}/{name} is not on this node")))
}

impl Found {
    /// The pod's name.
    pub fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    /// The container's spec.
    pub fn spec(&self, container: &str) -> Option<&Container> {
        self.record.pod.spec.as_ref()?.containers.iter().find(|c| c.name == container)
    }

    /// The container's status, or 400 as the kubelet answers for an unknown container.
    pub fn status(&self, container: &str) -> Result<ContainerStatus, HttpError> {
        let cs = self.pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        cs.into_iter().find(|c| c.name == container).ok_or_else(|| {
            HttpError::bad_request(format!("container {container} is not valid for pod {}", self.name()))
        })
    }

    /// The runtime ID of the container's running attempt.
    pub fn running_id(&self, container: &str) -> Result<String, HttpError> {
        let st = self.status(container)?;
        let running = st.state.as_ref().is_some_and(|s| s.running.is_some());
        match st.container_id.as_deref().and_then(|i| i.strip_prefix("minik://")) {
            Some(id) if running => Ok(id.to_string()),
            _ => Err(HttpError::bad_request(format!(
                "container {container} is not running in pod {} ({})",
                self.name(),
                waiting_reason(&st).unwrap_or("not started")
            ))),
        }
    }

    /// The CRI log of one attempt of the container.
    pub fn log_path(&self, cfg: &KubeletConfig, container: &str, restart: i32) -> PathBuf {
        let m = &self.record.pod.metadata;
        cfg.logs_dir()
            .join(format!(
                "{}_{}_{}",
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
                self.record.uid
            ))
            .join(container)
            .join(format!("{restart}.log"))
    }

    /// The pod's network namespace, once its sandbox exists.
    pub fn netns(&self) -> Option<PathBuf> {
        self.record.sandbox.as_ref().map(|s| s.netns.clone())
    }
}

/// Why a container is waiting, if it is.
pub fn waiting_reason(st: &ContainerStatus) -> Option<&str> {
    st.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

/// Whether attempt `restart` of the container is still the running one.
pub fn still_running(cfg: &KubeletConfig, ns: &str, pod: &str, container: &str, restart: i32) -> bool {
    find(cfg, ns, pod, None)
        .ok()
        .and_then(|f| f.status(container).ok())
        .is_some_and(|st| st.restart_count == restart && st.state.as_ref().is_some_and(|s| s.running.is_some()))
}
