//! The cluster's shape (what `minik up`'s flags say) and where its state lives.
//!
//! `up` checks the flags, writes them to `<state-dir>/cluster.json`, and the keeper, `down`,
//! `shell`, `status` and `trace` read that file back, so every command agrees on the
//! addresses and paths without repeating flags.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/minik/cluster";

/// What the nodes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Network namespaces in the sandbox, sharing the host's kernel.
    #[default]
    Netns,
    /// QEMU virtual machines booted from the node image, each with its own kernel.
    Vm,
}

/// Everything that defines one cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// How many nodes (node1 also runs the control plane).
    pub nodes: u8,
    /// Where all state lives (absolute).
    pub state_dir: PathBuf,
    /// The underlay network the nodes share (a /24 or larger).
    pub underlay: Ipv4Net,
    /// The cluster's pod CIDR; each node gets a /24 of it.
    pub pod_cidr: Ipv4Net,
    /// The Service ClusterIP range.
    pub service_cidr: Ipv4Net,
    /// The port the API is published on, on the host's loopback.
    pub api_port: u16,
    /// The directory of OCI layouts (busybox, demo-api, demo-db).
    pub images: PathBuf,
    /// Deploy the course's demo in `service-lab`.
    pub demo: bool,
    /// Where the cluster's binaries are.
    pub bin_dir: PathBuf,
    /// Passed to the controller manager (`--node-monitor-grace-period`), e.g. `5s`.
    pub node_monitor_grace_period: Option<String>,
    /// Passed to the controller manager (`--pod-eviction-timeout`), e.g. `5s`.
    pub pod_eviction_timeout: Option<String>,
    /// What node1..nodeN are.
    #[serde(default)]
    pub backend: Backend,
}

/// The first node's address is the underlay's network address plus this (…11).
const NODE_IP_OFFSET: u32 = 10;
/// The underlay host that is not a node (…2).
const EXT_IP_OFFSET: u32 = 2;
/// The underlay's gateway, on the bridge (…1).
const GATEWAY_IP_OFFSET: u32 = 1;
/// LoadBalancer IPs come from …200/29.
const LB_POOL_OFFSET: u32 = 200;
/// The cluster DNS Service's address: the Service CIDR's network address plus this (10.96.0.10).
const DNS_IP_OFFSET: u32 = 10;

fn offset(net: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

impl ClusterConfig {
    /// Checks that the addresses fit together; the message says which flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > 50 {
            bail!("--nodes {}: a cluster has 1 to 50 nodes", self.nodes);
        }
        if self.underlay.prefix_len() > 24 {
            bail!("--underlay {}: use a /24 or larger (nodes are .11 and up, LoadBalancer IPs .200-.207)", self.underlay);
        }
        if self.pod_cidr.prefix_len() > 23 {
            bail!("--pod-cidr {}: use a /23 or larger, each node gets a /24 of it", self.pod_cidr);
        }
        let node_subnets = 1u32 << (24 - self.pod_cidr.prefix_len());
        if u32::from(self.nodes) >= node_subnets {
            bail!("--pod-cidr {} has room for {} node /24s; use a larger one for {} nodes", self.pod_cidr, node_subnets - 1, self.nodes);
        }
        if self.service_cidr.prefix_len() > 28 {
            bail!("--service-cidr {}: use a /28 or larger", self.service_cidr);
        }
        for (a, an, b, bn) in [
            (&self.underlay, "--underlay", &self.pod_cidr, "--pod-cidr"),
            (&self.underlay, "--underlay", &self.service_cidr, "--service-cidr"),
            (&self.pod_cidr, "--pod-cidr", &self.service_cidr, "--service-cidr"),
        ] {
            if a.contains(&b.network()) || b.contains(&a.network()) {
                bail!("{an} {a} overlaps {bn} {b}; the three ranges must be disjoint");
            }
        }
        if !self.state_dir.is_absolute() {
            bail!("--state-dir {}: give an absolute path", self.state_dir.display());
        }
        Ok(())
    }

    /// The node names, node1..nodeN.
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("node{i}")).collect()
    }

    /// A node's index (1-based) from its name.
    pub fn node_index(&self, name: &str) -> Option<u8> {
        let i: u8 = name.strip_prefix("node")?.parse().ok()?;
        (1..=self.nodes).contains(&i).then_some(i)
    }

    /// The address of node `i` (1-based) on the underlay.
    pub fn node_ip(&self, i: u8) -> Ipv4Addr {
        offset(&self.underlay, NODE_IP_OFFSET + u32::from(i))
    }

    /// The address of the `ext` host.
    pub fn ext_ip(&self) -> Ipv4Addr {
        offset(&self.underlay, EXT_IP_OFFSET)
    }

    /// The underlay's gateway (the bridge's own address).
    pub fn gateway_ip(&self) -> Ipv4Addr {
        offset(&self.underlay, GATEWAY_IP_OFFSET)
    }

    /// The LoadBalancer pool, on the underlay.
    pub fn lb_pool(&self) -> Ipv4Net {
        Ipv4Net::new(offset(&self.underlay, LB_POOL_OFFSET), 29).unwrap_or(self.underlay)
    }

    /// The cluster DNS Service's ClusterIP.
    pub fn dns_ip(&self) -> Ipv4Addr {
        offset(&self.service_cidr, DNS_IP_OFFSET)
    }

    /// Whether node1..nodeN are VMs.
    pub fn vm_nodes(&self) -> bool {
        self.backend == Backend::Vm
    }

    /// The address the API server listens on inside the sandbox (node1).
    pub fn api_inner_url(&self) -> String {
        format!("https://{}:6443", self.node_ip(1))
    }

    /// The paths of this cluster's state.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.state_dir)
    }

    /// Saves the config as `<state-dir>/cluster.json`.
    pub fn save(&self) -> anyhow::Result<()> {
        let path = self.layout().config();
        let text = serde_json::to_string_pretty(self).context("encoding the cluster config")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Loads `<state-dir>/cluster.json`; the error says when there is no cluster there.
    pub fn load(state_dir: &Path) -> anyhow::Result<Self> {
        let path = Layout::new(state_dir).config();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("no cluster in {} (no cluster.json); start one with `minik up --state-dir {}`", state_dir.display(), state_dir.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("{} is not a cluster config", path.display()))
    }
}

/// Where a cluster keeps its state, all under one directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The state directory.
    pub root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        Layout { root: root.to_path_buf() }
    }
    /// The saved flags.
    pub fn config(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    /// The keeper's PID.
    pub fn keeper_pid(&self) -> PathBuf {
        self.root.join("keeper.pid")
    }
    /// The keeper's progress lines, which `up` follows.
    pub fn progress(&self) -> PathBuf {
        self.root.join("progress.jsonl")
    }
    /// The processes the keeper runs (name, node, PID, state).
    pub fn processes(&self) -> PathBuf {
        self.root.join("processes.json")
    }
    /// The kubeconfig for the host (server `https://127.0.0.1:<api-port>`).
    pub fn host_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }
    /// miniapi's data dir.
    pub fn api_dir(&self) -> PathBuf {
        self.root.join("api")
    }
    /// The kubeconfig used inside the sandbox (server on node1's address).
    pub fn inner_kubeconfig(&self) -> PathBuf {
        self.api_dir().join("admin.kubeconfig")
    }
    /// A node's directory (minilet's root, CNI dirs, config, credentials).
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join(node)
    }
    /// Log files.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The demo's manifests as applied.
    pub fn demo_dir(&self) -> PathBuf {
        self.root.join("demo")
    }
    /// kubectl's discovery cache.
    pub fn kube_cache(&self) -> PathBuf {
        self.root.join("kubecache")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The default three-node cluster, for the launcher's unit tests.
    pub(crate) fn cfg() -> ClusterConfig {
        ClusterConfig {
            nodes: 3,
            state_dir: PathBuf::from("/var/lib/minik/cluster"),
            underlay: "192.168.50.0/24".parse().expect("net"),
            pod_cidr: "10.244.0.0/16".parse().expect("net"),
            service_cidr: "10.96.0.0/12".parse().expect("net"),
            api_port: 6443,
            images: PathBuf::from("target/images/oci"),
            demo: true,
            bin_dir: PathBuf::from("target/debug"),
            node_monitor_grace_period: None,
            pod_eviction_timeout: None,
            backend: Backend::Netns,
        }
    }

    #[test]
    fn addresses_follow_the_course() {
        let c = cfg();
        assert_eq!(c.node_ip(1).to_string(), "192.168.50.11");
        assert_eq!(c.node_ip(3).to_string(), "192.168.50.13");
        assert_eq!(c.ext_ip().to_string(), "192.168.50.2");
        assert_eq!(c.dns_ip().to_string(), "10.96.0.10");
        assert_eq!(c.lb_pool().to_string(), "192.168.50.200/29");
        assert_eq!(c.node_index("node2"), Some(2));
        assert_eq!(c.node_index("node4"), None);
        c.validate().expect("valid");
    }

    #[test]
    fn bad_flags_say_which() {
        let mut c = cfg();
        c.pod_cidr = "192.168.0.0/16".parse().expect("net");
        let e = c.validate().expect_err("overlap").to_string();
        assert!(e.contains("--underlay") && e.contains("--pod-cidr"), "{e}");
        let mut c = cfg();
        c.nodes = 0;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.state_dir = PathBuf::from("relative");
        assert!(c.validate().expect_err("relative").to_string().contains("absolute"));
    }
}
