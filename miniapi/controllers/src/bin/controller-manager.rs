//! `minik-controller-manager --kubeconfig F [--node-monitor-grace-period 40s] [--pod-eviction-timeout 5m]
//! [--cluster-cidr 10.244.0.0/16] [--node-cidr-mask-size 24] [--load-balancer-pool CIDR]`

use std::path::PathBuf;

use clap::Parser;
use minik_controllers::util::parse_duration;
use minik_controllers::{ControllerManagerOptions, NodeLifecycleConfig};

/// Runs minik's controllers against a Kubernetes API server.
#[derive(Parser, Debug)]
#[command(name = "minik-controller-manager", version)]
struct Args {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long a node may go without a heartbeat before it is marked NotReady.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// Longest wait before pods are evicted from an unreachable or not-ready node.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pod_eviction_timeout: std::time::Duration,
    /// How often node health is checked (default: min(5s, grace/4)).
    #[arg(long, value_parser = parse_duration)]
    node_monitor_period: Option<std::time::Duration>,
    /// Controllers to run: `*` for all, `NAME` to enable, `-NAME` to disable
    /// (replicaset, deployment, endpoint, endpointslice, garbagecollector, namespace, nodelifecycle, nodeipam, servicelb).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// The cluster's pod CIDR, from which each Node gets its `spec.podCIDR`.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Pool of load-balancer IPs for `type: LoadBalancer` Services (e.g. 192.168.50.200/29);
    /// without it they stay `<pending>`.
    #[arg(long)]
    load_balancer_pool: Option<ipnet::Ipv4Net>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    minik_controllers::init_tracing(args.log_json);
    let client = minik_controllers::client(args.kubeconfig.as_deref()).await?;
    let mut nl =
        NodeLifecycleConfig::new(args.node_monitor_grace_period, args.pod_eviction_timeout);
    if let Some(p) = args.node_monitor_period {
        nl.node_monitor_period = p;
    }
    tracing::info!(
        grace = ?nl.node_monitor_grace_period,
        eviction = ?nl.pod_eviction_timeout,
        "controller manager starting"
    );
    let node_ipam = minik_controllers::NodeIpamConfig {
        cluster_cidr: args.cluster_cidr,
        node_mask: args.node_cidr_mask_size,
    };
    node_ipam.validate().map_err(anyhow::Error::msg)?;
    let opts = ControllerManagerOptions {
        node_lifecycle: nl,
        controllers: args.controllers,
        node_ipam,
        load_balancer_pool: args.load_balancer_pool,
    };
    tokio::select! {
        _ = minik_controllers::run_controller_manager(client, opts) => {
            anyhow::bail!("a controller stopped");
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted, exiting");
        }
    }
    Ok(())
}
