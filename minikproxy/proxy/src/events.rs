//! `RulesProgrammed` Events on Services, for the trace feature: once the rules for a
//! Service change on this node are live, a core/v1 Event says so (`source.component:
//! minikproxy`, `source.host` and `reportingInstance`: the node). At most one per
//! Service per second: a change inside that second is posted when it ends, with the
//! latest message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::model::ServiceKey;

/// The component name on the Events.
pub const COMPONENT: &str = "minikproxy";
/// The reason.
pub const REASON: &str = "RulesProgrammed";
/// The shortest gap between two Events about one Service.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// One Event to post.
#[derive(Debug, Clone)]
pub struct Programmed {
    /// The Service.
    pub key: ServiceKey,
    /// Its reference (uid included).
    pub involved: ObjectReference,
    /// The message.
    pub message: String,
}

/// Posts Events from the channel until it closes.
pub async fn run(client: Client, node: String, mut rx: mpsc::UnboundedReceiver<Programmed>) {
    let mut last: HashMap<ServiceKey, Instant> = HashMap::new();
    let mut pending: HashMap<ServiceKey, Programmed> = HashMap::new();
    loop {
        let next_due = pending.keys().filter_map(|k| last.get(k).map(|t| *t + MIN_GAP)).min();
        let wait = next_due.map(|d| d.saturating_duration_since(Instant::now())).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(p) => { pending.insert(p.key.clone(), p); }
                None => return,
            },
            _ = tokio::time::sleep(wait) => {}
        }
        let now = Instant::now();
        let due: Vec<ServiceKey> = pending
            .keys()
            .filter(|k| last.get(*k).is_none_or(|t| now.duration_since(*t) >= MIN_GAP))
            .cloned()
            .collect();
        for k in due {
            if let Some(p) = pending.remove(&k) {
                post(&client, &node, &p).await;
                last.insert(k, Instant::now());
            }
        }
        if last.len() > 10_000 {
            last.retain(|_, t| now.duration_since(*t) < MIN_GAP);
        }
    }
}

async fn post(client: &Client, node: &str, p: &Programmed) {
    let api: Api<Event> = Api::namespaced(client.clone(), &p.key.namespace);
    let now = Timestamp::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", p.key.name, now.as_nanosecond().max(0))),
            namespace: Some(p.key.namespace.clone()),
            ..Default::default()
        },
        involved_object: p.involved.clone(),
        reason: Some(REASON.into()),
        message: Some(p.message.clone()),
        type_: Some("Normal".into()),
        source: Some(EventSource { component: Some(COMPONENT.into()), host: Some(node.into()) }),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some("Program".into()),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(node.into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ev).await {
        Ok(_) => tracing::debug!(service = %p.key, "event posted"),
        Err(e) => tracing::warn!(service = %p.key, error = %e, "could not post event"),
    }
}
