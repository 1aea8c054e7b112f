//! minik-dns: the cluster DNS server. Parses the command line and wires the library's
//! parts together: zone, server, watch, events, health and self-registration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use minik_dns::events::{post_events, Tracer};
use minik_dns::forward::Forwarder;
use minik_dns::register::{self, Registration};
use minik_dns::server::{self, Handler};
use minik_dns::watch::Follower;
use minik_dns::zone::{Key, Zone};
use tokio::signal::unix::{signal, SignalKind};

/// The cluster DNS server: Service, endpoint and pod names under the cluster domain,
/// from the API by watch; other names forwarded upstream.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Address to serve DNS on, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53", value_name = "IP:PORT")]
    listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    cluster_domain: String,
    /// A server for names outside the cluster domain (repeatable; tried in order; port 53
    /// when omitted). Without one, such names are REFUSED.
    #[arg(long = "upstream", value_name = "IP:PORT", value_parser = parse_upstream)]
    upstreams: Vec<SocketAddr>,
    /// Address for /health and /ready over HTTP; `off` to serve neither.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "IP:PORT|off", value_parser = parse_health)]
    health_bind: HealthBind,
    /// Register this server as the cluster DNS Service NAMESPACE/NAME (with --service-ip
    /// and --advertise-address).
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_service, requires_all = ["service_ip", "advertise_address"])]
    service: Option<Key>,
    /// The ClusterIP of the registered Service.
    #[arg(long, value_name = "IP", requires = "service")]
    service_ip: Option<IpAddr>,
    /// The address the registered endpoints point at (this node's IP).
    #[arg(long, value_name = "IP", requires = "service")]
    advertise_address: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy)]
struct HealthBind(Option<SocketAddr>);

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not IP:PORT or IP (e.g. 10.0.0.2:53)"))
}

fn parse_health(s: &str) -> Result<HealthBind, String> {
    if s == "off" {
        return Ok(HealthBind(None));
    }
    s.parse().map(|a| HealthBind(Some(a))).map_err(|_| format!("{s:?} is not IP:PORT (e.g. 0.0.0.0:8080) or off"))
}

fn parse_service(s: &str) -> Result<Key, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(Key::new(ns, name)),
        _ => Err(format!("{s:?} is not NAMESPACE/NAME (e.g. kube-system/kube-dns)")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let serial = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
    let mut zone = Zone::new(&args.cluster_domain, serial)?;
    zone.set_dns_ip(args.service_ip);
    let zone = Arc::new(RwLock::new(zone));

    let client = minik_shared::apiclient::connect(args.kubeconfig.as_deref()).await?;
    let (mut dns, bound) = server::serve(Handler::new(zone.clone(), Forwarder::new(args.upstreams.clone())), args.listen).await?;
    tracing::info!(listen = %bound, domain = %args.cluster_domain, upstreams = ?args.upstreams, "serving DNS");

    let ready = Arc::new(AtomicBool::new(false));
    if let HealthBind(Some(addr)) = args.health_bind {
        let at = minik_dns::health::serve(addr, ready.clone())
            .await
            .with_context(|| format!("cannot serve /health on {addr}; choose another --health-bind or pass off"))?;
        tracing::info!(%at, "serving /health and /ready");
    }

    let instance = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "minik-dns".into());
    let (tracer, events) = Tracer::new(1024);
    tokio::spawn(post_events(client.clone(), instance, events));
    tokio::spawn(Follower::new(zone, tracer, ready).run(client.clone()));

    let registration = match (args.service, args.service_ip, args.advertise_address) {
        (Some(service), Some(service_ip), Some(address)) => {
            let r = Registration { service, service_ip, address, port: bound.port() };
            ensure_registered(&client, &r).await?;
            let refresher = tokio::spawn(keep_registered(client.clone(), r.clone()));
            Some((r, refresher))
        }
        _ => None,
    };

    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        res = dns.block_until_done() => res.context("the DNS server stopped")?,
    }
    tracing::info!("stopping");
    if let Some((r, refresher)) = registration {
        refresher.abort();
        match tokio::time::timeout(Duration::from_secs(3), register::deregister(&client, &r)).await {
            Ok(Ok(())) => tracing::info!(service = %r.service, "deregistered"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot deregister"),
            Err(_) => tracing::warn!("deregistering took too long; leaving it"),
        }
    }
    dns.shutdown_token().cancel();
    Ok(())
}

/// Registers, retrying a few times while the API server is not reachable yet.
async fn ensure_registered(client: &kube::Client, r: &Registration) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match register::register(client, r).await {
            Ok(()) => {
                tracing::info!(service = %r.service, ip = %r.service_ip, endpoint = %r.address, port = r.port, "registered");
                return Ok(());
            }
            Err(e) if e.is_permanent() => return Err(e.into()),
            Err(e) if attempt >= 10 => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot register yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Re-applies the registration now and then, so a deleted Service or slice comes back.
async fn keep_registered(client: kube::Client, r: Registration) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        if let Err(e) = register::register(&client, &r).await {
            tracing::warn!(error = %e, "cannot refresh the registration");
        }
    }
}
