//! The trace of what the zone serves: a core/v1 Event `DNSRecordAdded` on a Service when
//! its name first serves something, and again only when that changes (a new ClusterIP,
//! another endpoint set, another external name): `kubectl describe svc` then shows
//! `Normal  DNSRecordAdded  minik-dns  api.lab.svc.cluster.local A 10.96.3.4`.
//!
//! [`Tracer::observe`] is called by the watch with the zone's summary of a Service; it
//! decides without I/O whether to post and hands the Event to a task over a bounded
//! channel, so a slow API server never holds up the watch (events beyond the channel's
//! room are dropped and logged).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::zone::Key;

/// The Event's reason.
pub const REASON: &str = "DNSRecordAdded";
/// The Event's source and reporting component.
pub const COMPONENT: &str = "minik-dns";

/// The Service an Event is about.
#[derive(Debug, Clone)]
pub struct ServiceRef {
    /// Namespace and name.
    pub key: Key,
    /// Its UID.
    pub uid: Option<String>,
    /// Its resourceVersion.
    pub resource_version: Option<String>,
}

/// Remembers what was announced per Service and queues new announcements.
#[derive(Debug)]
pub struct Tracer {
    announced: HashMap<Key, String>,
    queue: mpsc::Sender<(ServiceRef, String)>,
}

impl Tracer {
    /// A tracer and the receiving end for [`post_events`].
    pub fn new(room: usize) -> (Tracer, mpsc::Receiver<(ServiceRef, String)>) {
        let (queue, rx) = mpsc::channel(room);
        (Tracer { announced: HashMap::new(), queue }, rx)
    }

    /// Called after a Service's records may have changed, with the zone's summary
    /// (`None`: the Service is gone or serves nothing). Queues an Event when the summary is
    /// new for this Service.
    pub fn observe(&mut self, svc: ServiceRef, summary: Option<String>) {
        let Some(summary) = summary else {
            self.announced.remove(&svc.key);
            return;
        };
        if self.announced.get(&svc.key) == Some(&summary) {
            return;
        }
        self.announced.insert(svc.key.clone(), summary.clone());
        if let Err(e) = self.queue.try_send((svc, summary)) {
            tracing::warn!(error = %e, "event queue full; a DNSRecordAdded event is dropped");
        }
    }
}

/// Posts the queued Events until the tracer is dropped. `instance` names this server
/// (`reportingInstance`, `source.host`).
pub async fn post_events(client: Client, instance: String, mut rx: mpsc::Receiver<(ServiceRef, String)>) {
    while let Some((svc, message)) = rx.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), &svc.key.namespace);
        let event = event(&svc, &message, &instance, Timestamp::now());
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => tracing::debug!(service = %svc.key, %message, "posted DNSRecordAdded"),
            Err(e) => tracing::warn!(service = %svc.key, error = %e, "cannot post a DNSRecordAdded event"),
        }
    }
}

/// The Event for one announcement.
pub fn event(svc: &ServiceRef, message: &str, instance: &str, now: Timestamp) -> Event {
    let name = format!("{}.{:x}", svc.key.name, now.as_nanosecond().max(0));
    Event {
        metadata: ObjectMeta { name: Some(name), namespace: Some(svc.key.namespace.clone()), ..Default::default() },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(svc.key.name.clone()),
            namespace: Some(svc.key.namespace.clone()),
            uid: svc.uid.clone(),
            resource_version: svc.resource_version.clone(),
            field_path: None,
        },
        reason: Some(REASON.into()),
        message: Some(message.into()),
        type_: Some("Normal".into()),
        source: Some(EventSource { component: Some(COMPONENT.into()), host: Some(instance.into()) }),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> ServiceRef {
        ServiceRef { key: Key::new("lab", name), uid: Some("u1".into()), resource_version: None }
    }

    #[test]
    fn announces_once_per_change() {
        let (mut t, mut rx) = Tracer::new(8);
        t.observe(svc("api"), Some("api.lab.svc.cluster.local A 10.96.3.4".into()));
        t.observe(svc("api"), Some("api.lab.svc.cluster.local A 10.96.3.4".into()));
        t.observe(svc("api"), None);
        t.observe(svc("api"), Some("api.lab.svc.cluster.local A 10.96.3.4".into()));
        t.observe(svc("api"), Some("api.lab.svc.cluster.local A 10.96.3.5".into()));
        t.observe(svc("db"), None);
        let mut got = Vec::new();
        while let Ok((s, m)) = rx.try_recv() {
            got.push(format!("{} {m}", s.key));
        }
        assert_eq!(
            got,
            [
                "lab/api api.lab.svc.cluster.local A 10.96.3.4",
                "lab/api api.lab.svc.cluster.local A 10.96.3.4",
                "lab/api api.lab.svc.cluster.local A 10.96.3.5"
            ]
        );
    }

    #[test]
    fn event_names_the_service_and_component() {
        let e = event(&svc("api"), "api.lab.svc.cluster.local A 10.96.3.4", "node1", Timestamp::UNIX_EPOCH);
        assert_eq!(e.reason.as_deref(), Some(REASON));
        assert_eq!(e.reporting_component.as_deref(), Some(COMPONENT));
        assert_eq!(e.source.and_then(|s| s.component).as_deref(), Some(COMPONENT));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Service"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
    }
}
