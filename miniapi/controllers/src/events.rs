//! A core/v1 Event recorder with upstream-style aggregation: a repeat of the same
//! (object, type, reason, message) bumps `count` and `lastTimestamp` of the event
//! already posted instead of creating a new one, so `kubectl describe` shows
//! `Normal  Scheduled  ...  (x3 over 10s)`.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::util::{is_status, now};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

type Key = (String, &'static str, String, String);

/// Posts core/v1 Events for one component (`replicaset-controller`, `default-scheduler`, ...).
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
    seen: Mutex<HashMap<Key, (String, String, i32)>>,
}

/// An object reference for `obj`, as `involvedObject`.
pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder posting as `component` (and `host`, when set).
    pub fn new(client: Client, component: &str, host: Option<String>) -> Self {
        Recorder {
            client,
            component: component.into(),
            host,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Post (or aggregate) one event about `obj`. Failures are logged, never returned.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        ty: EventType,
        reason: &str,
        message: &str,
    ) {
        self.publish_ref(object_ref(obj), ty, reason, message).await;
    }

    /// Same as [`Recorder::publish`], for an object reference.
    pub async fn publish_ref(
        &self,
        involved: ObjectReference,
        ty: EventType,
        reason: &str,
        message: &str,
    ) {
        // Events of cluster-scoped objects (nodes, namespaces) live in `default`.
        let ns = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let key: Key = (
            involved
                .uid
                .clone()
                .unwrap_or_else(|| involved.name.clone().unwrap_or_default()),
            ty.as_str(),
            reason.to_string(),
            message.to_string(),
        );
        let prev = self.seen.lock().ok().and_then(|m| m.get(&key).cloned());
        let t = now();
        if let Some((ens, name, count)) = prev {
            let patch = json!({"count": count + 1, "lastTimestamp": t});
            let api: Api<Event> = Api::namespaced(self.client.clone(), &ens);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    if let Ok(mut m) = self.seen.lock() {
                        m.insert(key, (ens, name, count + 1));
                    }
                    return;
                }
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    tracing::warn!(event = %name, error = %e, "could not update event");
                    return;
                }
            }
        }
        let obj_name = involved.name.clone().unwrap_or_default();
        let name = format!("{}.{:x}", obj_name, Timestamp::now().as_nanosecond().max(0));
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(ty.as_str().into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            count: Some(1),
            first_timestamp: Some(t.clone()),
            last_timestamp: Some(t),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(created) => {
                tracing::debug!(event = %created.name_any(), reason, "event posted");
                if let Ok(mut m) = self.seen.lock() {
                    if m.len() > 4096 {
                        m.clear();
                    }
                    m.insert(key, (ns, name, 1));
                }
            }
            Err(e) => tracing::warn!(reason, error = %e, "could not post event"),
        }
    }
}
