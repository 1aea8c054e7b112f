//! The static table of served resources: group/version/plural/kind, scope, verbs,
//! short names, categories and subresources. Discovery, routing, storage keys and the
//! registry's per-kind strategies are all driven from here.

/// Which strategy a resource uses (one per served kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Pod.
    Pod,
    /// core/v1 Node.
    Node,
    /// core/v1 Service.
    Service,
    /// core/v1 Endpoints.
    Endpoints,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Secret.
    Secret,
    /// core/v1 ServiceAccount.
    ServiceAccount,
    /// core/v1 Event (the storage form of all events).
    Event,
    /// events.k8s.io/v1 Event (a view of core/v1 events).
    EventV1,
    /// coordination.k8s.io/v1 Lease.
    Lease,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 Deployment.
    Deployment,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
}

/// Static description of one served resource.
#[derive(Debug)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version (always `v1` here).
    pub version: &'static str,
    /// Plural resource name (`pods`).
    pub plural: &'static str,
    /// Singular name (`pod`).
    pub singular: &'static str,
    /// Kind (`Pod`).
    pub kind: &'static str,
    /// Strategy selector.
    pub id: Kind,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs on the main resource.
    pub verbs: &'static [&'static str],
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources served.
    pub subresources: &'static [&'static str],
    /// Storage group segment: events.k8s.io events live with core events.
    pub storage_group: &'static str,
    /// Storage resource segment.
    pub storage_plural: &'static str,
}

/// All verbs of a namespaced or cluster resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

macro_rules! res {
    ($g:expr, $plural:expr, $singular:expr, $kind:expr, $id:ident, $ns:expr, $verbs:expr, $short:expr, $cat:expr, $sub:expr, $sg:expr, $sp:expr) => {
        ResourceInfo {
            group: $g,
            version: "v1",
            plural: $plural,
            singular: $singular,
            kind: $kind,
            id: Kind::$id,
            namespaced: $ns,
            verbs: $verbs,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            storage_group: $sg,
            storage_plural: $sp,
        }
    };
}

/// Every served resource.
pub static RESOURCES: &[ResourceInfo] = &[
    res!(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        Namespace,
        false,
        NS_VERBS,
        &["ns"],
        &[],
        &["status", "finalize"],
        "core",
        "namespaces"
    ),
    res!(
        "",
        "pods",
        "pod",
        "Pod",
        Pod,
        true,
        ALL_VERBS,
        &["po"],
        &["all"],
        &["status", "binding", "log", "exec", "attach", "portforward"],
        "core",
        "pods"
    ),
    res!(
        "",
        "nodes",
        "node",
        "Node",
        Node,
        false,
        ALL_VERBS,
        &["no"],
        &[],
        &["status"],
        "core",
        "nodes"
    ),
    res!(
        "",
        "services",
        "service",
        "Service",
        Service,
        true,
        ALL_VERBS,
        &["svc"],
        &["all"],
        &["status"],
        "core",
        "services"
    ),
    res!(
        "",
        "endpoints",
        "endpoints",
        "Endpoints",
        Endpoints,
        true,
        ALL_VERBS,
        &["ep"],
        &[],
        &[],
        "core",
        "endpoints"
    ),
    res!(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        ConfigMap,
        true,
        ALL_VERBS,
        &["cm"],
        &[],
        &[],
        "core",
        "configmaps"
    ),
    res!(
        "",
        "secrets",
        "secret",
        "Secret",
        Secret,
        true,
        ALL_VERBS,
        &[],
        &[],
        &[],
        "core",
        "secrets"
    ),
    res!(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        ServiceAccount,
        true,
        ALL_VERBS,
        &["sa"],
        &[],
        &[],
        "core",
        "serviceaccounts"
    ),
    res!(
        "",
        "events",
        "event",
        "Event",
        Event,
        true,
        ALL_VERBS,
        &["ev"],
        &[],
        &[],
        "core",
        "events"
    ),
    res!(
        "events.k8s.io",
        "events",
        "event",
        "Event",
        EventV1,
        true,
        ALL_VERBS,
        &["ev"],
        &[],
        &[],
        "core",
        "events"
    ),
    res!(
        "coordination.k8s.io",
        "leases",
        "lease",
        "Lease",
        Lease,
        true,
        ALL_VERBS,
        &[],
        &[],
        &[],
        "coordination.k8s.io",
        "leases"
    ),
    res!(
        "apps",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        ReplicaSet,
        true,
        ALL_VERBS,
        &["rs"],
        &["all"],
        &["status", "scale"],
        "apps",
        "replicasets"
    ),
    res!(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        Deployment,
        true,
        ALL_VERBS,
        &["deploy"],
        &["all"],
        &["status", "scale"],
        "apps",
        "deployments"
    ),
    res!(
        "discovery.k8s.io",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        EndpointSlice,
        true,
        ALL_VERBS,
        &[],
        &[],
        &[],
        "discovery.k8s.io",
        "endpointslices"
    ),
];

/// The API groups served under `/apis`, in discovery order.
pub const GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
];

/// Look a resource up by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Look a resource up by its strategy id.
pub fn by_kind(id: Kind) -> &'static ResourceInfo {
    RESOURCES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or(&RESOURCES[0])
}

/// Resources of one group/version.
pub fn in_group(group: &str) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
    RESOURCES.iter().filter(move |r| r.group == group)
}

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!(
                "/registry/{}/{}/{}/{}",
                self.storage_group, self.storage_plural, ns, name
            ),
            _ => format!(
                "/registry/{}/{}/{}",
                self.storage_group, self.storage_plural, name
            ),
        }
    }

    /// Storage prefix of a list (all namespaces when `namespace` is `None`).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!(
                "/registry/{}/{}/{}/",
                self.storage_group, self.storage_plural, ns
            ),
            _ => format!("/registry/{}/{}/", self.storage_group, self.storage_plural),
        }
    }

    /// Whether the resource has the named subresource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether writes to the main resource keep the stored status (status subresource).
    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lookup() {
        let pods = find("", "v1", "pods").map(|r| r.key(Some("default"), "x"));
        assert_eq!(pods.as_deref(), Some("/registry/core/pods/default/x"));
        let ns = find("", "v1", "namespaces").map(|r| r.key(None, "default"));
        assert_eq!(ns.as_deref(), Some("/registry/core/namespaces/default"));
        let ev = find("events.k8s.io", "v1", "events").map(|r| r.prefix(Some("a")));
        assert_eq!(ev.as_deref(), Some("/registry/core/events/a/"));
        assert_eq!(
            by_kind(Kind::Deployment).group_resource(),
            "deployments.apps"
        );
    }
}
