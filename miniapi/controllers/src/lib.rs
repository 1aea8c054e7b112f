//! minik's controllers and scheduler, as clients of the Kubernetes API only (HTTPS
//! with a bearer token from a kubeconfig), built on kube-rs's watcher, reflector and
//! `Controller`: ReplicaSet, Deployment, Endpoints, EndpointSlice, garbage
//! collector, namespace, node lifecycle (with pod GC), and the scheduler.

pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod runtime;
pub mod scheduler;
pub mod servicelb;
pub mod util;

use std::path::Path;

use kube::Client;

pub use nodeipam::NodeIpamConfig;
pub use nodelifecycle::NodeLifecycleConfig;
pub use scheduler::SchedulerOptions;

/// A client from a kubeconfig file (or the usual inference: `$KUBECONFIG`,
/// `~/.kube/config`, in-cluster); the shared crate builds it.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    minik_shared::apiclient::connect(kubeconfig).await
}

/// Which controllers the controller manager runs.
#[derive(Debug, Clone)]
pub struct ControllerManagerOptions {
    /// Node lifecycle settings.
    pub node_lifecycle: NodeLifecycleConfig,
    /// Controller names to run (`*` for all).
    pub controllers: Vec<String>,
    /// Node pod-CIDR allocation (the `nodeipam` controller).
    pub node_ipam: NodeIpamConfig,
    /// Where LoadBalancer IPs come from (the `servicelb` controller); none: they stay pending.
    pub load_balancer_pool: Option<ipnet::Ipv4Net>,
}

impl Default for ControllerManagerOptions {
    fn default() -> Self {
        ControllerManagerOptions {
            node_lifecycle: NodeLifecycleConfig::default(),
            controllers: vec!["*".into()],
            node_ipam: NodeIpamConfig::default(),
            load_balancer_pool: None,
        }
    }
}

/// Every controller the manager knows.
pub const CONTROLLERS: &[&str] = &[
    "replicaset",
    "deployment",
    "endpoint",
    "endpointslice",
    "garbagecollector",
    "namespace",
    "nodelifecycle",
    "nodeipam",
    "servicelb",
];

/// Run the selected controllers until one of them stops (which only happens when
/// its watches end for good).
pub async fn run_controller_manager(client: Client, opts: ControllerManagerOptions) {
    let enabled = |name: &str| {
        let mut on = false;
        for c in &opts.controllers {
            if c == "*" || c == name {
                on = true;
            } else if c.strip_prefix('-') == Some(name) {
                return false;
            }
        }
        on
    };
    let mut set = tokio::task::JoinSet::new();
    for name in CONTROLLERS.iter().copied().filter(|n| enabled(n)) {
        let c = client.clone();
        let nl = opts.node_lifecycle.clone();
        let ipam = opts.node_ipam.clone();
        let lb_pool = opts.load_balancer_pool;
        tracing::info!(controller = name, "starting controller");
        set.spawn(async move {
            match name {
                "replicaset" => replicaset::run(c).await,
                "deployment" => deployment::run(c).await,
                "endpoint" => endpoints::run_endpoints(c).await,
                "endpointslice" => endpoints::run_slices(c).await,
                "garbagecollector" => gc::run(c).await,
                "namespace" => namespace::run(c).await,
                "nodelifecycle" => nodelifecycle::run(c, nl).await,
                "nodeipam" => nodeipam::run(c, ipam).await,
                "servicelb" => servicelb::run(c, lb_pool).await,
                _ => {}
            }
            name
        });
    }
    if let Some(Ok(name)) = set.join_next().await {
        tracing::error!(controller = name, "controller stopped");
    }
}

/// Set up `tracing` from `RUST_LOG` (default `info`), as text or JSON.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
