//! The batches against the real kernel, in a fresh namespace of the sandbox (no API
//! server): nft takes the base table and the Service chains, an incremental batch touches
//! only the Service that changed, and a full resync works in place on a table that
//! already has (stale) content.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use minik_tests::{require_sandbox, Netns};
use minikproxy::batch::{self, Existing};
use minikproxy::model::{Endpoint, Protocol, Service, ServiceEndpoints, ServiceKey, ServicePort};
use minikproxy::nftables;
use minikproxy::rules::{service_rules, RuleConfig, ServiceRules};
use serde_json::Value;

const TABLE: &str = "minik-proxy";

fn rules(
    name: &str,
    ip: [u8; 4],
    eps: &[&str],
    affinity: Option<u32>,
    node_port: Option<u16>,
) -> (ServiceKey, ServiceRules) {
    let cfg = RuleConfig { cluster_cidr: Some("10.244.0.0/16".parse().expect("cidr")), node_name: "n1".into() };
    let svc = Service {
        key: ServiceKey::new("default", name),
        cluster_ips: vec![Ipv4Addr::from(ip)],
        lb_ips: vec![Ipv4Addr::new(192, 168, 50, 200)].into_iter().filter(|_| node_port.is_some()).collect(),
        ports: vec![
            ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port },
            ServicePort { name: "dns".into(), protocol: Protocol::Udp, port: 53, node_port: None },
        ],
        affinity_timeout: affinity,
        external_local: false,
    };
    let list: Vec<Endpoint> = eps
        .iter()
        .map(|ip| Endpoint {
            ip: ip.parse().expect("ip"),
            port: 8080,
            ready: true,
            terminating: false,
            node: Some("n1".into()),
        })
        .collect();
    let e: ServiceEndpoints =
        [(("http".to_string(), Protocol::Tcp), list.clone()), (("dns".to_string(), Protocol::Udp), list)]
            .into_iter()
            .collect();
    (svc.key.clone(), service_rules(&cfg, &svc, &e))
}

fn listing(ns: &Netns) -> Vec<Value> {
    ns.run(|| minik_shared::nft::list(&["list", "table", "ip", TABLE])).expect("list table")
}

/// Rule handles per chain: a chain that was rewritten gets new handles.
fn handles(objects: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in objects {
        if let Some(c) = o.get("chain").and_then(|c| c["name"].as_str()) {
            out.entry(c.to_string()).or_default();
        }
        if let Some(r) = o.get("rule") {
            out.entry(r["chain"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(r["handle"].as_u64().unwrap_or_default());
        }
    }
    out
}

fn apply(ns: &Netns, cmds: Vec<Value>) {
    ns.run(|| nftables::apply(cmds)).expect("nft takes the batch");
}

#[test]
fn full_sync_then_one_service_change_touches_only_that_service() {
    require_sandbox();
    let ns = Netns::new("nft");
    let web = rules("web", [10, 96, 0, 10], &["10.244.1.2", "10.244.1.3"], Some(10800), Some(30001));
    let api = rules("api", [10, 96, 0, 11], &["10.244.1.4"], None, None);
    let mut desired: BTreeMap<_, _> = [web.clone(), api.clone()].into_iter().collect();
    apply(&ns, batch::full_sync(TABLE, &Existing::default(), &desired));
    let text = String::from_utf8_lossy(&ns.exec("nft", &["list", "table", "ip", TABLE]).stdout).into_owned();
    for needle in [
        "numgen random mod 2 vmap",
        "dnat to 10.244.1.2:8080",
        "update @affinity-",
        "10.96.0.10 . tcp . 80 : goto service-",
        "tcp . 30001 : goto external-",
        "192.168.50.200 . tcp . 80 : goto external-",
        "masquerade fully-random",
        "reject with tcp reset",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    let before = handles(&listing(&ns));

    // One more endpoint for api: only api's chains change.
    let api2 = rules("api", [10, 96, 0, 11], &["10.244.1.4", "10.244.1.5"], None, None);
    let cmds = batch::service_update(TABLE, Some(&api.1), Some(&api2.1));
    let text = serde_json::to_string(&cmds).expect("json");
    assert!(!text.contains("default/web/"), "the batch names only api's objects: {text}");
    apply(&ns, cmds);
    let after = handles(&listing(&ns));
    for (chain, h) in &before {
        if !chain.contains("default/api/") {
            assert_eq!(after.get(chain), Some(h), "chain {chain} was rewritten");
        }
    }
    let changed: Vec<_> = after.iter().filter(|(c, h)| before.get(*c) != Some(*h)).map(|(c, _)| c.clone()).collect();
    assert!(!changed.is_empty() && changed.iter().all(|c| c.contains("default/api/")), "{changed:?}");

    // Deleting web removes its chains, sets and elements.
    apply(&ns, batch::service_update(TABLE, Some(&web.1), None));
    let text = String::from_utf8_lossy(&ns.exec("nft", &["list", "table", "ip", TABLE]).stdout).into_owned();
    assert!(!text.contains("default/web/") && !text.contains("affinity-") && !text.contains("30001"), "{text}");
    desired.remove(&web.0);
    desired.insert(api2.0.clone(), api2.1.clone());

    // A full resync on a table that holds strangers removes them in place.
    ns.exec("nft", &["add", "chain", "ip", TABLE, "service-STALE-x"]);
    let table_handle = |l: &[Value]| l.iter().find_map(|o| o.get("table").map(|t| t["handle"].clone()));
    let handle_before = table_handle(&listing(&ns));
    let cheap = ns.run(|| nftables::existing_chains(TABLE)).expect("chains");
    assert!(cheap.table && cheap.chains.contains("service-STALE-x") && cheap.has_strangers(&desired));
    let existing = ns.run(|| nftables::existing(TABLE)).expect("existing");
    assert!(existing.chains.contains("service-STALE-x"));
    apply(&ns, batch::full_sync(TABLE, &existing, &desired));
    let l = listing(&ns);
    assert_eq!(table_handle(&l), handle_before, "the table was not recreated");
    assert!(!handles(&l).contains_key("service-STALE-x"));
    // Resyncing again (a restart with nothing changed) rewrites no Service chain.
    let before = handles(&listing(&ns));
    let existing = ns.run(|| nftables::existing(TABLE)).expect("existing");
    apply(&ns, batch::full_sync(TABLE, &existing, &desired));
    let after = handles(&listing(&ns));
    for (chain, h) in before.iter().filter(|(c, _)| c.contains("default/")) {
        assert_eq!(after.get(chain), Some(h), "{chain} was rewritten by a resync that changed nothing");
    }
    assert!(ns.run(|| nftables::intact(TABLE)).expect("check"));
    ns.exec("nft", &["delete", "table", "ip", TABLE]);
    assert!(!ns.run(|| nftables::intact(TABLE)).expect("check"));
}

#[test]
fn a_service_without_endpoints_becomes_reject_elements() {
    require_sandbox();
    let ns = Netns::new("nft");
    let (key, r) = rules("empty", [10, 96, 0, 12], &[], None, Some(30002));
    apply(&ns, batch::full_sync(TABLE, &Existing::default(), &[(key, r)].into_iter().collect()));
    let text = String::from_utf8_lossy(&ns.exec("nft", &["list", "map", "ip", TABLE, "no-endpoint-services"]).stdout)
        .into_owned();
    assert!(text.contains("10.96.0.12 . tcp . 80 : goto reject-chain"), "{text}");
    let text = String::from_utf8_lossy(&ns.exec("nft", &["list", "map", "ip", TABLE, "no-endpoint-nodeports"]).stdout)
        .into_owned();
    assert!(text.contains("tcp . 30002 : goto reject-chain"), "{text}");
}
