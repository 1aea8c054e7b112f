//! `minikproxy --kubeconfig FILE --node-name NAME [--cluster-cidr 10.244.0.0/16]
//! [--healthz-bind-address 0.0.0.0:10256] [--metrics-bind-address 127.0.0.1:10249]
//! [--lb-interface IFACE] [--table minik-proxy]`: the node's Service proxy. Run it in the
//! node's network namespace; it programs `table ip minik-proxy` there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ipnet::Ipv4Net;
use minikproxy::metrics::Metrics;
use minikproxy::proxier::{ProxierConfig, Runner};
use minikproxy::rules::RuleConfig;

/// Programs Service forwarding (ClusterIP, NodePort, LoadBalancer) as nftables rules on this node.
#[derive(Debug, Parser)]
#[command(name = "minikproxy", version)]
struct Args {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// This node's name, as registered in the API (for externalTrafficPolicy: Local and LB announcing).
    #[arg(long)]
    node_name: String,
    /// The cluster's pod CIDR; traffic from outside it to a Service is masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    /// Where /healthz is served.
    #[arg(long, default_value = "0.0.0.0:10256")]
    healthz_bind_address: SocketAddr,
    /// Where /metrics is served.
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_bind_address: SocketAddr,
    /// Interface on which this node holds load-balancer IPs when it announces them.
    #[arg(long)]
    lb_interface: Option<String>,
    /// The nftables table (family ip) minikproxy owns.
    #[arg(long, default_value = "minik-proxy")]
    table: String,
    /// How long to collect a burst of changes before programming them, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=1000))]
    debounce_ms: u64,
    /// How often to check that the table is still there, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    drift_check_seconds: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_tracing(args.log_json);
    if args.node_name.trim().is_empty() {
        bail!("--node-name is empty; pass this node's name as registered in the API (kubectl get nodes)");
    }
    if args.table.is_empty() || !args.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("--table {:?}: use letters, digits, '-' and '_' only", args.table);
    }
    minik_shared::nft::nft_path().context("minikproxy programs nftables")?;
    let client =
        minik_shared::apiclient::connect(args.kubeconfig.as_deref()).await.context("connecting to the API server")?;
    // Services forward to pods: the node must route (this node's namespace only).
    minik_shared::netlink::set_sysctl("net/ipv4/ip_forward", "1")
        .context("enabling forwarding in this node's network namespace")?;
    let metrics = Arc::new(Metrics::default());
    let _servers =
        minikproxy::http::serve(args.healthz_bind_address, args.metrics_bind_address, metrics.clone()).await?;

    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(minikproxy::events::run(client.clone(), args.node_name.clone(), events_rx));

    let cfg = ProxierConfig {
        table: args.table.clone(),
        rules: RuleConfig { cluster_cidr: Some(args.cluster_cidr), node_name: args.node_name.clone() },
        lb_interface: args.lb_interface.clone(),
        debounce: Duration::from_millis(args.debounce_ms),
        drift_interval: Duration::from_secs(args.drift_check_seconds),
    };
    tracing::info!(node = %args.node_name, table = %args.table, cluster_cidr = %args.cluster_cidr, "minikproxy starting");
    let runner = Runner { cfg, client, metrics, events: Some(events_tx) };
    tokio::select! {
        _ = runner.run() => bail!("the API watches ended"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; the rules stay in place"),
        _ = terminate() => tracing::info!("terminated; the rules stay in place"),
    }
    Ok(())
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
