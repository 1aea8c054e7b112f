//! The node IPAM controller (kube-controller-manager's `--allocate-node-cidrs`): every
//! Node without a `spec.podCIDR` gets the next free subnet of the cluster CIDR
//! (`--cluster-cidr`, default 10.244.0.0/16, split by `--node-cidr-mask-size`, default
//! 24). The first subnet (10.244.0.0/24) is kept back, so in a fresh cluster the N-th
//! node to join gets 10.244.N.0/24, the addresses the course notes show.
//!
//! There is no allocator state of its own: what is taken is read from the Nodes
//! themselves on every allocation, so allocations stay consistent across restarts of
//! the controller and of the API server. Allocations are serialised by a mutex (the
//! kube-rs controller reconciles different Nodes concurrently), and a Node that already
//! has a podCIDR is never changed (the field is immutable in Kubernetes).
//! minilet reads its Node's podCIDR to write its cni-bridge config, and every node
//! routes the others' podCIDRs via their InternalIP.

use std::collections::BTreeSet;
use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Mutex;

use crate::events::{EventType, Recorder};
use crate::runtime::{drain, error_policy, watch_config};
use crate::util::{Error, Result};

const NAME: &str = "node-ipam-controller";

/// What the controller allocates from.
#[derive(Debug, Clone)]
pub struct NodeIpamConfig {
    /// The cluster's pod CIDR.
    pub cluster_cidr: Ipv4Net,
    /// Prefix length of each node's subnet.
    pub node_mask: u8,
}

impl Default for NodeIpamConfig {
    fn default() -> Self {
        NodeIpamConfig { cluster_cidr: Ipv4Net::new([10, 244, 0, 0].into(), 16).unwrap_or_default(), node_mask: 24 }
    }
}

impl NodeIpamConfig {
    /// Checks that node subnets fit the cluster CIDR.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.node_mask < self.cluster_cidr.prefix_len() || self.node_mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {} must be between the cluster CIDR's prefix length ({}) and 30",
                self.node_mask,
                self.cluster_cidr.prefix_len()
            ));
        }
        Ok(())
    }
}

struct Ctx {
    client: Client,
    config: NodeIpamConfig,
    lock: Mutex<()>,
    recorder: Recorder,
}

/// Run the node IPAM controller until the watch stream ends.
pub async fn run(client: Client, config: NodeIpamConfig) {
    let recorder = Recorder::new(client.clone(), "node-ipam-controller", None);
    let ctx = Arc::new(Ctx { client: client.clone(), config, lock: Mutex::new(()), recorder });
    let stream = Controller::new(Api::<Node>::all(client), watch_config()).run(
        reconcile,
        |n, e, _| error_policy(n.as_ref(), e, NAME),
        ctx,
    );
    drain(NAME, stream).await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    if has_pod_cidr(&node) {
        return Ok(Action::await_change());
    }
    let _guard = ctx.lock.lock().await;
    let api: Api<Node> = Api::all(ctx.client.clone());
    // Read the taken subnets fresh, under the lock: the reflector cache may lag behind
    // an allocation this controller just made.
    let nodes = api.list(&ListParams::default()).await?;
    let name = node.name_any();
    if nodes.items.iter().any(|n| n.name_any() == name && has_pod_cidr(n)) {
        return Ok(Action::await_change());
    }
    let taken: BTreeSet<Ipv4Net> = nodes.items.iter().flat_map(pod_cidrs).collect();
    let Some(cidr) = next_free(&ctx.config, &taken) else {
        let msg = format!("no free /{} left in the cluster CIDR {}", ctx.config.node_mask, ctx.config.cluster_cidr);
        ctx.recorder.publish(node.as_ref(), EventType::Warning, "CIDRNotAvailable", &msg).await;
        return Err(Error::Other(msg));
    };
    let patch = serde_json::json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    tracing::info!(node = %name, pod_cidr = %cidr, "allocated the node's pod CIDR");
    let msg = format!("Node {name} was assigned pod CIDR {cidr}");
    ctx.recorder.publish(node.as_ref(), EventType::Normal, "CIDRAssignmentSucceeded", &msg).await;
    Ok(Action::await_change())
}

fn has_pod_cidr(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty())
}

/// The IPv4 pod CIDRs a node holds.
fn pod_cidrs(node: &Node) -> Vec<Ipv4Net> {
    let Some(spec) = node.spec.as_ref() else { return Vec::new() };
    spec.pod_cidr
        .iter()
        .chain(spec.pod_cidrs.iter().flatten())
        .filter_map(|c| c.parse::<Ipv4Net>().ok())
        .collect()
}

/// The first node subnet of the cluster CIDR (after the first one) that overlaps no
/// taken subnet.
fn next_free(cfg: &NodeIpamConfig, taken: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
    let subnets = cfg.cluster_cidr.subnets(cfg.node_mask).ok()?;
    subnets.skip(1).find(|s| !taken.iter().any(|t| t.contains(s) || s.contains(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn nth_node_gets_the_nth_subnet() {
        let cfg = NodeIpamConfig::default();
        let mut taken = BTreeSet::new();
        assert_eq!(next_free(&cfg, &taken), Some(net("10.244.1.0/24")));
        taken.insert(net("10.244.1.0/24"));
        taken.insert(net("10.244.3.0/24"));
        assert_eq!(next_free(&cfg, &taken), Some(net("10.244.2.0/24")));
    }

    #[test]
    fn a_larger_taken_block_covers_its_subnets() {
        let cfg = NodeIpamConfig::default();
        let taken: BTreeSet<_> = [net("10.244.0.0/22")].into();
        assert_eq!(next_free(&cfg, &taken), Some(net("10.244.4.0/24")));
    }

    #[test]
    fn a_full_range_gives_none() {
        let cfg = NodeIpamConfig { cluster_cidr: net("10.0.0.0/23"), node_mask: 24 };
        let taken: BTreeSet<_> = [net("10.0.1.0/24")].into();
        assert_eq!(next_free(&cfg, &taken), None);
    }

    #[test]
    fn mask_must_fit_the_cluster_cidr() {
        let cfg = NodeIpamConfig { cluster_cidr: net("10.244.0.0/16"), node_mask: 8 };
        assert!(cfg.validate().is_err());
        assert!(NodeIpamConfig::default().validate().is_ok());
    }
}
