//! Column definitions and cells per kind, after `printers.go`.

use serde_json::{json, Value};

use super::Column;
use crate::resources::Kind;
use crate::selectors::{format_label_selector, format_labels};
use crate::timeutil::age;

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

const fn col(
    name: &'static str,
    ty: &'static str,
    description: &'static str,
    priority: u8,
) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority,
    }
}
const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: NAME_DESC,
    priority: 0,
};
const AGE: Column = col("Age", "string", AGE_DESC, 0);
const CONTAINERS: Column = col(
    "Containers",
    "string",
    "Names of each container in the template.",
    1,
);
const IMAGES: Column = col(
    "Images",
    "string",
    "Images referenced by each container in the template.",
    1,
);

/// Column definitions of a kind.
pub fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::Pod => vec![
            NAME,
            col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
            col("Status", "string", "The aggregate status of the containers in this pod.", 0),
            col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
            AGE,
            col("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
            col("Node", "string", "NodeName indicates in which node this pod is scheduled.", 1),
            col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1),
            col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
        ],
        Kind::Service => vec![
            NAME,
            col("Type", "string", "type determines how the Service is exposed.", 0),
            col("Cluster-IP", "string", "clusterIP is the IP address of the service.", 0),
            col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", 0),
            col("Port(s)", "string", "The list of ports that are exposed by this service.", 0),
            AGE,
            col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.", 1),
        ],
        Kind::Endpoints => vec![NAME, col("Endpoints", "string", "The set of all endpoints is the union of all subsets.", 0), AGE],
        Kind::ReplicaSet => vec![
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas.", 0),
            col("Current", "integer", "Replicas is the most recently observed number of replicas.", 0),
            col("Ready", "integer", "The number of ready replicas for this replica set.", 0),
            AGE,
            CONTAINERS,
            IMAGES,
            col("Selector", "string", "Selector is a label query over pods that should match the replica count.", 1),
        ],
        Kind::Deployment => vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state", 0),
            col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0),
            col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
            AGE,
            CONTAINERS,
            IMAGES,
            col("Selector", "string", "Label selector for pods.", 1),
        ],
        Kind::Namespace => vec![NAME, col("Status", "string", "The status of the namespace", 0), AGE],
        Kind::Node => vec![
            NAME,
            col("Status", "string", "The status of the node", 0),
            col("Roles", "string", "The roles of the node", 0),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node.", 0),
            col("Internal-IP", "string", "List of addresses reachable to the node.", 1),
            col("External-IP", "string", "List of addresses reachable to the node.", 1),
            col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
            col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
            col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
        ],
        Kind::Event | Kind::EventV1 => vec![
            col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded.", 0),
            col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future", 0),
            col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
            col("Object", "string", "The object that this event is about.", 0),
            col("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.", 1),
            col("Source", "string", "The component reporting this event. Should be a short machine understandable string.", 1),
            col("Message", "string", "A human-readable description of the status of this operation.", 0),
            col("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
            col("Count", "string", "The number of times this event has occurred.", 1),
            Column { name: "Name", ty: "string", format: "name", description: NAME_DESC, priority: 1 },
        ],
        Kind::ConfigMap => vec![NAME, col("Data", "string", "Data contains the configuration data.", 0), AGE],
        Kind::Secret => vec![
            NAME,
            col("Type", "string", "Used to facilitate programmatic handling of secret data.", 0),
            col("Data", "string", "Data contains the secret data.", 0),
            AGE,
        ],
        Kind::ServiceAccount => vec![NAME, col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", 0), AGE],
        Kind::EndpointSlice => vec![
            NAME,
            col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice.", 0),
            col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice.", 0),
            col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice.", 0),
            AGE,
        ],
        Kind::Lease => vec![NAME, col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease.", 0), AGE],
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn age_of(v: &Value) -> String {
    age(v
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str))
}

fn none_if_empty(x: String) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x
    }
}

fn container_cells(v: &Value) -> (String, String) {
    let cs = arr(v, "/spec/template/spec/containers");
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// The cells of one object's row (always with the wide columns).
pub fn cells(kind: Kind, v: &Value) -> Vec<Value> {
    let name = json!(s(v, "/metadata/name"));
    match kind {
        Kind::Pod => super::printers_pod::pod_cells(v),
        Kind::Service => {
            let ty = v
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ip = arr(v, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or("<none>")
                .to_string();
            let ext_ips: Vec<&str> = arr(v, "/spec/externalIPs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let external = match ty {
                "ClusterIP" | "NodePort" => {
                    if ext_ips.is_empty() {
                        "<none>".to_string()
                    } else {
                        ext_ips.join(",")
                    }
                }
                "LoadBalancer" => {
                    let mut lb: Vec<String> = arr(v, "/status/loadBalancer/ingress")
                        .iter()
                        .map(|g| {
                            if s(g, "/ip").is_empty() {
                                s(g, "/hostname").to_string()
                            } else {
                                s(g, "/ip").to_string()
                            }
                        })
                        .filter(|x| !x.is_empty())
                        .collect();
                    lb.sort();
                    lb.dedup();
                    lb.extend(ext_ips.iter().map(|x| x.to_string()));
                    if lb.is_empty() {
                        "<pending>".into()
                    } else {
                        lb.join(",")
                    }
                }
                "ExternalName" => s(v, "/spec/externalName").to_string(),
                _ => "<unknown>".into(),
            };
            let ports: Vec<String> = arr(v, "/spec/ports")
                .iter()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n > 0) {
                        Some(np) => format!("{}:{}/{}", i(p, "/port"), np, proto),
                        None => format!("{}/{}", i(p, "/port"), proto),
                    }
                })
                .collect();
            vec![
                name,
                json!(ty),
                json!(ip),
                json!(external),
                json!(none_if_empty(ports.join(","))),
                json!(age_of(v)),
                json!(format_labels(v.pointer("/spec/selector"))),
            ]
        }
        Kind::Endpoints => vec![name, json!(format_endpoints(v)), json!(age_of(v))],
        Kind::ReplicaSet => {
            let (c, im) = container_cells(v);
            vec![
                name,
                json!(i(v, "/spec/replicas")),
                json!(i(v, "/status/replicas")),
                json!(i(v, "/status/readyReplicas")),
                json!(age_of(v)),
                json!(c),
                json!(im),
                json!(format_label_selector(v.pointer("/spec/selector"))),
            ]
        }
        Kind::Deployment => {
            let (c, im) = container_cells(v);
            let desired = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{}", i(v, "/status/readyReplicas"), desired)),
                json!(i(v, "/status/updatedReplicas")),
                json!(i(v, "/status/availableReplicas")),
                json!(age_of(v)),
                json!(c),
                json!(im),
                json!(format_label_selector(v.pointer("/spec/selector"))),
            ]
        }
        Kind::Namespace => vec![name, json!(s(v, "/status/phase")), json!(age_of(v))],
        Kind::Node => super::printers_pod::node_cells(v),
        Kind::Event => super::printers_pod::event_cells(v),
        Kind::EventV1 => super::printers_pod::event_cells(&crate::registry::core::event_from_v1(v)),
        Kind::ConfigMap => {
            let n = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + v.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(n), json!(age_of(v))]
        }
        Kind::Secret => {
            let n = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![name, json!(s(v, "/type")), json!(n), json!(age_of(v))]
        }
        Kind::ServiceAccount => vec![name, json!(arr(v, "/secrets").len()), json!(age_of(v))],
        Kind::EndpointSlice => {
            let ports: Vec<String> = arr(v, "/ports")
                .iter()
                .map(|p| match p.get("port").and_then(Value::as_i64) {
                    Some(n) => n.to_string(),
                    None => p
                        .get("name")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or("*".into()),
                })
                .collect();
            let addrs: Vec<String> = arr(v, "/endpoints")
                .iter()
                .flat_map(|e| {
                    arr(e, "/addresses")
                        .iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                })
                .collect();
            vec![
                name,
                json!(s(v, "/addressType")),
                json!(list_with_more(&ports)),
                json!(list_with_more(&addrs)),
                json!(age_of(v)),
            ]
        }
        Kind::Lease => vec![name, json!(s(v, "/spec/holderIdentity")), json!(age_of(v))],
    }
}

fn list_with_more(items: &[String]) -> String {
    let max = 3;
    let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let ret = shown.join(",");
    if items.len() > max {
        return format!("{ret} + {} more...", items.len() - max);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

/// `formatEndpoints`: up to three `ip:port` pairs, then `+ N more...`.
pub fn format_endpoints(v: &Value) -> String {
    let subsets = arr(v, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let max = 3;
    let mut list = Vec::new();
    let mut count = 0;
    let mut more = false;
    for ss in subsets {
        let addrs = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == max {
                    more = true;
                    break;
                }
                list.push(s(a, "/ip").to_string());
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == max {
                    more = true;
                    break;
                }
                let ip = s(a, "/ip");
                let port = i(p, "/port");
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - max)
    } else {
        ret
    }
}
