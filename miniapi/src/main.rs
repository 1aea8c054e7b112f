//! The `miniapi` binary: parse flags and run the API server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use miniapi::{Server, ServerConfig, StoreBackend};

/// minik's Kubernetes-compatible API server.
#[derive(Debug, Parser)]
#[command(name = "miniapi", version)]
struct Args {
    /// Directory for the database, certificates, tokens and kubeconfig.
    #[arg(long, default_value = "/var/lib/minik/apiserver")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Extra addresses for the serving certificate and the kubernetes Endpoints.
    #[arg(long = "advertise-address")]
    advertise_addresses: Vec<IpAddr>,
    /// Service ClusterIP range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// NodePort range, `LOW-HIGH`.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Storage backend: redb or etcd.
    #[arg(long, default_value = "redb")]
    store: String,
    /// etcd endpoints (with --store etcd).
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Where to write the admin kubeconfig (default <data-dir>/admin.kubeconfig).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Seconds between watch BOOKMARK events.
    #[arg(long, default_value_t = 15)]
    bookmark_interval: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Issue credentials: add a bearer token for USER to the data dir's token file (a
    /// running server accepts it at once) and write a kubeconfig with it, e.g. for a
    /// node: `miniapi kubeconfig --data-dir D --user system:node:node1 --group
    /// system:nodes --server https://192.168.50.11:6443 --out node1.kubeconfig`.
    Kubeconfig {
        /// The user name the token authenticates as.
        #[arg(long)]
        user: String,
        /// Groups of the user (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The API server URL written into the kubeconfig.
        #[arg(long)]
        server: String,
        /// Where to write the kubeconfig.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `miniapi kubeconfig`: a token in the token file and a kubeconfig that uses it.
fn issue_kubeconfig(data_dir: &std::path::Path, user: &str, groups: &[String], server: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let tokens = data_dir.join("tokens.csv");
    let ca = data_dir.join("pki/ca.crt");
    if !tokens.exists() || !ca.exists() {
        bail!("{} has no tokens.csv or pki/ca.crt: start miniapi with --data-dir {} once first", data_dir.display(), data_dir.display());
    }
    if !server.starts_with("https://") {
        bail!("--server {server:?} must be an https:// URL, e.g. https://192.168.50.11:6443");
    }
    let ca_pem = std::fs::read_to_string(&ca).with_context(|| format!("reading {}", ca.display()))?;
    let token = miniapi::http::auth::TokenAuth::add_user(&tokens, user, groups)
        .with_context(|| format!("adding a token for {user:?} to {}", tokens.display()))?;
    let tmp = out.with_extension("tmp");
    miniapi::kubeconfig::write(&tmp, server, &ca_pem, &token).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

fn port_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let (a, b) = s
        .split_once('-')
        .context("--service-node-port-range must be LOW-HIGH")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a > b {
        bail!("--service-node-port-range: {a} > {b}");
    }
    Ok((a, b))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Kubeconfig { user, groups, server, out }) = &args.command {
        return issue_kubeconfig(&args.data_dir, user, groups, server, out);
    }
    let mut cfg = ServerConfig::new(args.data_dir, args.listen);
    cfg.advertise_addresses = args.advertise_addresses;
    cfg.service_cluster_ip_range = args.service_cluster_ip_range;
    cfg.node_port_range = port_range(&args.service_node_port_range)?;
    cfg.kubeconfig_out = args.kubeconfig_out;
    cfg.bookmark_interval_secs = args.bookmark_interval;
    cfg.store = match args.store.as_str() {
        "redb" => StoreBackend::Redb,
        "etcd" => StoreBackend::Etcd {
            endpoints: args.etcd_endpoints,
        },
        other => bail!("unknown --store {other:?} (redb or etcd)"),
    };
    let server = Server::prepare(cfg).await.context("starting miniapi")?;
    let kc = server.kubeconfig_path.display().to_string();
    eprintln!("miniapi listening on https://{}", server.local_addr);
    eprintln!("admin kubeconfig: {kc}");
    eprintln!("  export KUBECONFIG={kc}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        r = server.serve() => r.context("serving")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = term.recv() => tracing::info!("terminated; shutting down"),
    }
    Ok(())
}
