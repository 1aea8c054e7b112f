//! The Service proxy benchmark (`bench-proxy`): with N Services programmed in a
//! namespace, the time from one Service change to its rules being live, for minikproxy's
//! incremental batch ([`minikproxy::batch::service_update`]: only that Service's chains
//! and map elements, one small `nft -j -f -` transaction) against a full rewrite of the
//! same rule set (the `iptables-restore` way: the whole table deleted and written again,
//! [`minikproxy::batch::full_rewrite`], also one transaction).
//!
//! Fairness: both sides program the same rules (built by the same
//! [`minikproxy::rules::service_rules`]), through the same `nft` binary and JSON path, in
//! two namespaces built the same way, and each sample covers the same span: building the
//! batch from the rules and nft applying it (the clock stops when nft has returned, i.e.
//! when the kernel committed the transaction). The change is the same on both sides: one
//! Service gains or loses an endpoint, alternating.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use minik_tests::Netns;
use minikproxy::batch;
use minikproxy::model::{Endpoint, Protocol, Service, ServiceEndpoints, ServiceKey, ServicePort};
use minikproxy::rules::{service_rules, RuleConfig, ServiceRules};

use crate::stats::percentile;

/// The table both sides program.
pub const TABLE: &str = "minik-proxy";

/// The results for one number of Services.
#[derive(Debug)]
pub struct ProxyRun {
    /// How many Services were programmed.
    pub services: usize,
    /// Rules in the table's Service chains.
    pub rules: usize,
    /// minikproxy's incremental batches, in call order.
    pub incremental: Vec<Duration>,
    /// Full rewrites, in call order.
    pub full: Vec<Duration>,
    /// minikproxy's resync at start when nothing changed (read the chain names, then one
    /// batch that rewrites the base chains and refills the maps).
    pub resync: Vec<Duration>,
    /// Commands in one incremental batch (the last one).
    pub incremental_commands: usize,
    /// Commands in one full rewrite.
    pub full_commands: usize,
}

fn cfg() -> RuleConfig {
    RuleConfig { cluster_cidr: Some("10.244.0.0/16".parse().unwrap_or_default()), node_name: "bench".into() }
}

/// Service `i` with `eps` endpoints: a ClusterIP in 10.96.0.0/12, a port 80 → 8080, and
/// endpoints in 10.244.0.0/16.
fn service(i: usize, eps: usize) -> (ServiceKey, ServiceRules) {
    let n = u32::try_from(i).unwrap_or(0);
    let svc = Service {
        key: ServiceKey::new("bench", &format!("svc-{i}")),
        cluster_ips: vec![Ipv4Addr::from(0x0a60_0000u32 + 1 + n)],
        lb_ips: vec![],
        ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
        affinity_timeout: None,
        external_local: false,
    };
    let list = (0..eps)
        .map(|e| Endpoint {
            ip: Ipv4Addr::from(0x0af4_0000u32 + (n * 4 + u32::try_from(e).unwrap_or(0)) % 0xffff),
            port: 8080,
            ready: true,
            terminating: false,
            node: None,
        })
        .collect();
    let eps: ServiceEndpoints = [(("http".to_string(), Protocol::Tcp), list)].into_iter().collect();
    (svc.key.clone(), service_rules(&cfg(), &svc, &eps))
}

fn apply(ns: &Netns, cmds: Vec<serde_json::Value>) -> Result<()> {
    ns.run(|| minikproxy::nftables::apply(cmds)).context("nft refused a batch")
}

/// Programs `services` Services in two fresh namespaces, then times `changes` changes
/// each way; full rewrites stop early (after at least 2) once they have taken
/// `full_budget` in all, since one takes about a minute at 10 000 Services.
pub fn run(services: usize, changes: usize, full_budget: Duration) -> Result<ProxyRun> {
    let inc_ns = Netns::new("bpi");
    let full_ns = Netns::new("bpf");
    let mut desired: BTreeMap<ServiceKey, ServiceRules> = (0..services).map(|i| service(i, 2)).collect();
    let rules = desired.values().map(ServiceRules::rule_count).sum();
    apply(&inc_ns, batch::full_sync(TABLE, &batch::Existing::default(), &desired))?;
    apply(&full_ns, batch::full_sync(TABLE, &batch::Existing::default(), &desired))?;

    let mut out = ProxyRun {
        services,
        rules,
        incremental: Vec::with_capacity(changes),
        full: Vec::with_capacity(changes),
        resync: Vec::new(),
        incremental_commands: 0,
        full_commands: 0,
    };
    for c in 0..changes {
        // Spread the changes over the table; odd changes add an endpoint, even ones remove it.
        let i = (c * 7919) % services;
        let (key, new) = service(i, if c % 2 == 0 { 3 } else { 1 });
        let old = desired.insert(key.clone(), new.clone());

        let t = Instant::now();
        let cmds = batch::service_update(TABLE, old.as_ref(), Some(&new));
        out.incremental_commands = cmds.len();
        apply(&inc_ns, cmds)?;
        out.incremental.push(t.elapsed());

        let spent: Duration = out.full.iter().sum();
        if out.full.len() < 2 || spent < full_budget {
            let t = Instant::now();
            let cmds = batch::full_rewrite(TABLE, true, &desired);
            out.full_commands = cmds.len();
            apply(&full_ns, cmds)?;
            out.full.push(t.elapsed());
        }

        // Put the Service back, so every change starts from the same table.
        let restore = old.context("the service was programmed")?;
        apply(&inc_ns, batch::service_update(TABLE, Some(&new), Some(&restore)))?;
        desired.insert(key, restore);
    }
    for _ in 0..3 {
        let t = Instant::now();
        let existing = inc_ns.run(|| minikproxy::nftables::existing_chains(TABLE)).context("listing chains")?;
        apply(&inc_ns, batch::full_sync(TABLE, &existing, &desired))?;
        out.resync.push(t.elapsed());
    }
    Ok(out)
}

/// The median and 99th percentile of some samples (`None` without samples).
pub fn p50_p99(samples: &[Duration]) -> Option<(Duration, Duration)> {
    let mut v = samples.to_vec();
    v.sort_unstable();
    Some((percentile(&v, 0.5)?, percentile(&v, 0.99)?))
}
