//! The node's pod network from the API (`cniConfigFromNode: true`): minilet waits for
//! the controller manager to give its Node a `spec.podCIDR`, writes the cni-bridge
//! conflist for that subnet, and then follows every Node so that this node routes each
//! other node's pod CIDR via that node's InternalIP — pods on different nodes reach
//! each other by pod IP, without NAT.
//!
//! The routes are reconciled with the shared crate's [`node_routes`] (tagged `proto
//! 211`, so minik's routes are told apart from everyone else's), and the conflist is
//! rewritten with the same list in `nodeRoutes` (cni-bridge reconciles them again on
//! each ADD). The conflist also carries `clusterCIDRs`, so pod-to-pod traffic to a node
//! that joins later is never masqueraded.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use minik_shared::node_routes::{self, NodeRoute};

use crate::config::KubeletConfig;

/// The conflist minilet writes (the first one in the directory, so it is the one used).
pub const CONFLIST: &str = "10-minik.conflist";

/// Where the conflist goes.
pub fn conflist_path(cfg: &KubeletConfig) -> PathBuf {
    cfg.cni_conf_dir.join(CONFLIST)
}

/// Waits (bounded) until this node's Node has a pod CIDR.
pub async fn wait_pod_cidr(client: &Client, node: &str, limit: Duration) -> anyhow::Result<IpNet> {
    let api: Api<Node> = Api::all(client.clone());
    let end = Instant::now() + limit;
    let mut said = false;
    loop {
        if let Some(n) = api.get_opt(node).await? {
            if let Some(c) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).filter(|c| !c.is_empty()) {
                return c.parse().map_err(|e| anyhow::anyhow!("Node {node} has an invalid spec.podCIDR {c:?}: {e}"));
            }
        }
        if !said {
            tracing::info!(node, "waiting for the node's pod CIDR (allocated by the controller manager's nodeipam controller)");
            said = true;
        }
        if Instant::now() >= end {
            anyhow::bail!(
                "Node {node} got no spec.podCIDR within {}s; is minik-controller-manager running with --cluster-cidr?",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cni-bridge conflist for this node.
pub fn conflist(cfg: &KubeletConfig, pod_cidr: IpNet, routes: &[NodeRoute]) -> serde_json::Value {
    let mut routes = routes.to_vec();
    routes.sort_by_key(|r| r.dst);
    let mut plugin = serde_json::json!({
        "type": "cni-bridge",
        "bridge": "cni0",
        "isDefaultGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": pod_cidr.to_string()}]],
            "dataDir": cfg.root_dir.join("ipam"),
        },
        "nodeRoutes": routes,
    });
    if let Some(c) = &cfg.cluster_cidr {
        plugin["clusterCIDRs"] = serde_json::json!([c]);
    }
    serde_json::json!({"cniVersion": "1.1.0", "name": "minik", "plugins": [plugin]})
}

/// Writes `value` to `path` atomically, and only when it changed; says whether it did.
pub fn write_if_changed(path: &Path, value: &serde_json::Value) -> anyhow::Result<bool> {
    let text = serde_json::to_string_pretty(value)?;
    if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("cannot rename {} into place: {e}", tmp.display()))?;
    Ok(true)
}

/// The routes this node needs: every other Node's pod CIDRs via its InternalIP.
pub fn desired_routes(me: &str, nodes: &[Node]) -> Vec<NodeRoute> {
    let mut out = Vec::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) || n.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(via) = internal_ip(n) else { continue };
        let Some(spec) = n.spec.as_ref() else { continue };
        let cidrs = spec.pod_cidrs.clone().unwrap_or_default().into_iter().chain(spec.pod_cidr.clone());
        for c in cidrs {
            if let Ok(dst) = c.parse::<IpNet>() {
                let r = NodeRoute { dst, via };
                if dst.addr().is_ipv4() == via.is_ipv4() && !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out.sort_by_key(|r| r.dst);
    out
}

fn internal_ip(n: &Node) -> Option<IpAddr> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse().ok())
}

/// Follows the Nodes for as long as minilet runs: routes and conflist follow them.
pub async fn follow_nodes(client: Client, cfg: KubeletConfig, pod_cidr: IpNet) {
    let api: Api<Node> = Api::all(client);
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer).touched_objects();
    let mut stream = std::pin::pin!(stream);
    let mut last: Option<Vec<NodeRoute>> = None;
    loop {
        // Changes come in bursts (every heartbeat is a Node update): wait for one,
        // then take whatever else arrived, and reconcile once.
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "node watch error");
                continue;
            }
            Ok(Some(Ok(_))) | Err(_) => {}
        }
        let nodes: Vec<Node> = reader.state().iter().map(|n| n.as_ref().clone()).collect();
        let routes = desired_routes(&cfg.node_name, &nodes);
        // Re-applied on a timer too, so a route someone deleted comes back.
        if let Err(e) = apply(&cfg, pod_cidr, &routes).await {
            tracing::warn!(error = %e, "cannot reconcile the routes to other nodes");
            continue;
        }
        if last.as_ref() != Some(&routes) {
            tracing::info!(routes = ?routes.iter().map(|r| format!("{} via {}", r.dst, r.via)).collect::<Vec<_>>(), "routes to other nodes' pod CIDRs");
            last = Some(routes);
        }
    }
    tracing::warn!("the node watch ended; routes to other nodes are no longer followed");
}

async fn apply(cfg: &KubeletConfig, pod_cidr: IpNet, routes: &[NodeRoute]) -> anyhow::Result<()> {
    let handle = minik_shared::netlink::connect()?;
    node_routes::reconcile(&handle, routes).await?;
    write_if_changed(&conflist_path(cfg), &conflist(cfg, pod_cidr, routes))?;
    Ok(())
}

/// Sets up the node's pod network from its Node: waits for the pod CIDR, writes the
/// conflist, and starts following the other Nodes.
pub async fn start(client: &Client, cfg: &KubeletConfig) -> anyhow::Result<()> {
    let pod_cidr = wait_pod_cidr(client, &cfg.node_name, Duration::from_secs(60)).await?;
    tracing::info!(pod_cidr = %pod_cidr, conflist = %conflist_path(cfg).display(), "pod network from the Node");
    apply(cfg, pod_cidr, &[]).await?;
    tokio::spawn(follow_nodes(client.clone(), cfg.clone(), pod_cidr));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { pod_cidr: cidr.map(Into::into), ..Default::default() }),
            status: Some(NodeStatus {
                addresses: ip.map(|a| vec![NodeAddress { type_: "InternalIP".into(), address: a.into() }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn routes_to_every_other_node_with_a_cidr_and_an_address() {
        let nodes = vec![
            node("node1", Some("10.244.1.0/24"), Some("192.168.50.11")),
            node("node2", Some("10.244.2.0/24"), Some("192.168.50.12")),
            node("node3", None, Some("192.168.50.13")),
            node("node4", Some("10.244.4.0/24"), None),
        ];
        let r = desired_routes("node1", &nodes);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].dst.to_string(), "10.244.2.0/24");
        assert_eq!(r[0].via.to_string(), "192.168.50.12");
    }

    #[test]
    fn conflist_names_the_subnet_routes_and_cluster_cidr() {
        let cfg = KubeletConfig { cluster_cidr: Some("10.244.0.0/16".into()), ..Default::default() };
        let routes = desired_routes("a", &[node("b", Some("10.244.2.0/24"), Some("192.168.50.12"))]);
        let c = conflist(&cfg, "10.244.1.0/24".parse().expect("cidr"), &routes);
        let p = &c["plugins"][0];
        assert_eq!(p["type"], "cni-bridge");
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(p["nodeRoutes"][0]["via"], "192.168.50.12");
        assert_eq!(p["clusterCIDRs"][0], "10.244.0.0/16");
    }

    #[test]
    fn unchanged_conflist_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.conflist");
        let v = serde_json::json!({"a": 1});
        assert!(write_if_changed(&p, &v).expect("write"));
        assert!(!write_if_changed(&p, &v).expect("write"));
        assert!(write_if_changed(&p, &serde_json::json!({"a": 2})).expect("write"));
    }
}
