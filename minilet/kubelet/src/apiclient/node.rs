//! The Node object of this node and its heartbeat: created if missing, then its status
//! (capacity, allocatable, addresses, conditions, nodeInfo, kubelet endpoint) and its
//! Lease renewed every `interval`, as the kubelet does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

/// What the Node reports about itself.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Its InternalIP.
    pub internal_ip: Option<String>,
    /// The kubelet server's port (0 = none).
    pub kubelet_port: u16,
}

fn capacity() -> BTreeMap<String, Quantity> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).map(String::from))
        .unwrap_or_else(|| "0".into());
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpus.to_string())),
        ("memory".to_string(), Quantity(format!("{mem_kib}Ki"))),
        ("pods".to_string(), Quantity("110".into())),
        ("ephemeral-storage".to_string(), Quantity("10Gi".into())),
    ])
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Creates the Node if it does not exist.
pub async fn register(client: &Client, info: &NodeInfo) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(&info.name).await?.is_none() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(info.name.clone()),
                labels: Some(BTreeMap::from([
                    ("kubernetes.io/hostname".to_string(), info.name.clone()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                    ("kubernetes.io/arch".to_string(), std::env::consts::ARCH.replace("x86_64", "amd64")),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        nodes.create(&PostParams::default(), &node).await?;
        tracing::info!(node = %info.name, "registered the node");
    }
    Ok(())
}

/// Posts the node's status once.
pub async fn post_status(client: &Client, info: &NodeInfo) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Time(Timestamp::now());
    let mut addresses = vec![NodeAddress { type_: "Hostname".into(), address: info.name.clone() }];
    if let Some(ip) = &info.internal_ip {
        addresses.insert(0, NodeAddress { type_: "InternalIP".into(), address: ip.clone() });
    }
    let cap = capacity();
    let status = json!({
        "status": {
            "capacity": cap,
            "allocatable": cap,
            "addresses": addresses,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", &now),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", &now),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", &now),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", &now),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": info.kubelet_port}},
            "nodeInfo": NodeSystemInfo {
                architecture: std::env::consts::ARCH.replace("x86_64", "amd64"),
                operating_system: "linux".into(),
                kernel_version: kernel(),
                os_image: "minik".into(),
                kubelet_version: "v1.33.0-minik".into(),
                kube_proxy_version: "v1.33.0-minik".into(),
                container_runtime_version: "minik-oci://0.1.0".into(),
                machine_id: String::new(),
                system_uuid: String::new(),
                boot_id: String::new(),
                ..Default::default()
            },
        }
    });
    nodes.patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// Renews the node's Lease in `kube-node-lease`.
pub async fn renew_lease(client: &Client, info: &NodeInfo) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec = LeaseSpec {
        holder_identity: Some(info.name.clone()),
        lease_duration_seconds: Some(40),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..Default::default()
    };
    match leases.get_opt(&info.name).await? {
        Some(mut l) => {
            l.spec = Some(spec);
            leases.replace(&info.name, &PostParams::default(), &l).await?;
        }
        None => {
            let l = Lease {
                metadata: ObjectMeta { name: Some(info.name.clone()), namespace: Some("kube-node-lease".into()), ..Default::default() },
                spec: Some(spec),
            };
            leases.create(&PostParams::default(), &l).await?;
        }
    }
    Ok(())
}

/// Registers, then keeps the Node Ready every `interval` until the task is dropped.
pub async fn heartbeat(client: Client, info: NodeInfo, interval: Duration) {
    let mut registered = false;
    loop {
        if !registered {
            match register(&client, &info).await {
                Ok(()) => registered = true,
                Err(e) => tracing::warn!(error = %e, "cannot register the node; retrying"),
            }
        }
        if registered {
            if let Err(e) = post_status(&client, &info).await {
                tracing::warn!(error = %e, "cannot post the node status");
            }
            if let Err(e) = renew_lease(&client, &info).await {
                tracing::warn!(error = %e, "cannot renew the node lease");
            }
        }
        tokio::time::sleep(interval).await;
    }
}
