//! ClusterIP end to end: miniapi and minikproxy in a node namespace, pods attached by
//! cni-bridge, Services and EndpointSlices written with the real kubectl, traffic from a
//! client pod. Random balance (chi-square), ready endpoints only, the client's IP kept,
//! endpoints that go, UDP conntrack flush, affinity, hairpin, refusal without endpoints,
//! deletion, incremental changes, Events, /healthz and /metrics.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use common::{ask, ask_n, chi_square, counts, Cluster};
use serde_json::Value;

/// The chi-square value a uniform spread over 3 bins stays below with p > 0.001 (2 degrees of freedom).
const CHI2_DF2_P0001: f64 = 13.816;

fn rule_handles(c: &Cluster) -> BTreeMap<String, Vec<u64>> {
    let out = c.node.exec("nft", &["-j", "list", "table", "ip", "minik-proxy"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("nft json");
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        if let Some(r) = o.get("rule") {
            m.entry(r["chain"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(r["handle"].as_u64().unwrap_or_default());
        }
    }
    m
}

fn udp_ask(sock: &UdpSocket, to: &str) -> String {
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        sock.send_to(b"who", to).expect("send");
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).split_whitespace().next().unwrap_or_default().to_string();
        }
    }
    panic!("no UDP answer from {to}");
}

#[test]
fn cluster_ip_balances_over_ready_endpoints_keeps_the_client_ip_and_follows_changes() {
    let mut c = Cluster::new();
    let (a, b, d) = (c.pod("a"), c.pod("b"), c.pod("d"));
    let cc = c.pod("c");
    let client = c.pod("client");
    let ip = c.service("web", "");
    // d is terminating: it keeps its flows but gets no new connection.
    c.slice("web", &[(&a, true, false), (&b, true, false), (&cc, true, false), (&d, false, true)]);
    c.start_proxy();
    c.wait_rules("web's ClusterIP", |r| r.contains(&format!("{ip} . tcp . 80 : goto service-")));

    let answers = ask_n(&client.ns, &format!("{ip}:80"), 300);
    let n = counts(&answers);
    assert_eq!(n.keys().cloned().collect::<Vec<_>>(), ["a", "b", "c"], "only ready endpoints answer: {n:?}");
    let chi2 = chi_square(&n.values().copied().collect::<Vec<_>>());
    assert!(chi2 < CHI2_DF2_P0001, "not uniform (chi2 {chi2:.2}): {n:?}");
    assert!(answers.iter().all(|(_, seen)| *seen == client.ip), "pod to pod via a ClusterIP is not NATed");

    // UDP: a flow sticks to its endpoint through conntrack; when the endpoint goes, its
    // entries are flushed and the same socket reaches another endpoint.
    let sock = client.ns.run(|| UdpSocket::bind("0.0.0.0:0")).expect("udp socket");
    sock.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let udp_to = format!("{ip}:53");
    let first = udp_ask(&sock, &udp_to);
    assert_eq!(udp_ask(&sock, &udp_to), first, "a UDP flow stays on one endpoint");
    let gone = [&a, &b, &cc].into_iter().find(|p| p.name == first).expect("known server");
    let keep: Vec<_> = [&a, &b, &cc].into_iter().filter(|p| p.name != first).collect();
    c.slice("web", &[(keep[0], true, false), (keep[1], true, false)]);
    c.wait_rules("the removed endpoint gone", |r| !r.contains(&format!("__{}/8080", gone.ip)));
    // The change after the initial sync is reported as an Event on the Service once it is
    // live (rules applied and UDP entries flushed).
    let mut found = None;
    for _ in 0..100 {
        let ev: Value = serde_json::from_str(&c.api.ok(&["get", "events", "-o", "json"])).expect("events");
        found = ev["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["reason"] == "RulesProgrammed" && e["involvedObject"]["name"] == "web")
            .cloned();
        if found.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = found.unwrap_or_else(|| panic!("no RulesProgrammed event\n{}", c.log()));
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["source"]["component"], "minikproxy");
    assert_eq!(e["source"]["host"], common::NODE);
    assert_eq!(e["reportingInstance"], common::NODE);
    assert_eq!(e["message"], "node1: 2 endpoints programmed (nftables)");

    let after = udp_ask(&sock, &udp_to);
    assert_ne!(after, first, "the UDP flow moved off the removed endpoint");
    let n = counts(&ask_n(&client.ns, &format!("{ip}:80"), 60));
    assert!(!n.contains_key(&first), "a removed endpoint got requests: {n:?}");

    // /healthz and /metrics.
    let (code, body) = c.http_get(c.health_port, "/healthz").expect("healthz");
    assert_eq!(code, 200);
    let h: Value = serde_json::from_str(&body).expect("healthz json");
    assert!(h["lastUpdated"].as_str().is_some_and(|s| s.ends_with('Z')), "{body}");
    let (code, text) = c.http_get(c.health_port + 1, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    // web and the API server's own `kubernetes` Service.
    let services: f64 =
        text.lines().find_map(|l| l.strip_prefix("minikproxy_services ")).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!(services >= 1.0, "{text}");
    assert!(text.contains("minikproxy_sync_proxy_rules_duration_seconds_count"), "{text}");
    assert!(text.contains("minikproxy_partial_syncs_total"), "{text}");
}

#[test]
fn affinity_hairpin_refusal_incremental_changes_and_deletion() {
    let mut c = Cluster::new();
    let (a, b, cc) = (c.pod("a"), c.pod("b"), c.pod("c"));
    let client = c.pod("client");
    c.start_proxy();

    // ClientIP affinity: every request of one client to one endpoint.
    let sticky = c.service("sticky", "  sessionAffinity: ClientIP\n");
    c.slice("sticky", &[(&a, true, false), (&b, true, false), (&cc, true, false)]);
    c.wait_rules("sticky's ClusterIP", |r| r.contains(&format!("{sticky} . tcp . 80 : goto service-")));
    let n = counts(&ask_n(&client.ns, &format!("{sticky}:80"), 300));
    assert_eq!(n.len(), 1, "with ClientIP affinity one endpoint answers: {n:?}");
    assert!(c.rules().contains("timeout 3h"), "the default affinity timeout is 10800 s");

    // Hairpin: a reaches itself through its Service, masqueraded (else it would drop
    // its own packets as martians).
    let hair = c.service("hair", "");
    c.slice("hair", &[(&a, true, false)]);
    c.wait_rules("hair's ClusterIP", |r| r.contains(&format!("{hair} . tcp . 80 : goto service-")));
    let (server, seen) = ask(&a.ns, &format!("{hair}:80")).expect("hairpin request");
    assert_eq!(server, "a");
    assert_ne!(seen, a.ip, "hairpin traffic is masqueraded");
    // ...while another pod through the same Service keeps its IP.
    assert_eq!(ask(&client.ns, &format!("{hair}:80")).expect("request"), ("a".to_string(), client.ip.clone()));

    // One Service's change rewrites only its own chains.
    let before = rule_handles(&c);
    c.slice("hair", &[(&a, true, false), (&b, true, false)]);
    c.wait_rules("hair's second endpoint", |r| r.contains(&format!("default/hair/tcp/http__{}/8080", b.ip)));
    let after = rule_handles(&c);
    let changed: Vec<&String> = after.keys().chain(before.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(!changed.is_empty());
    assert!(changed.iter().all(|k| k.contains("default/hair/")), "chains of other Services changed: {changed:?}");

    // No endpoints: refused at once (TCP reset), not black-holed.
    let empty = c.service("empty", "");
    c.slice("empty", &[]);
    c.wait_rules("empty's reject element", |r| r.contains(&format!("{empty} . tcp . 80 : goto reject-chain")));
    let err = ask(&client.ns, &format!("{empty}:80")).expect_err("no endpoints");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // kubectl delete svc removes the Service's rules.
    c.api.ok(&["delete", "svc", "sticky"]);
    c.wait_rules("sticky's rules gone", |r| !r.contains("default/sticky/") && !r.contains(&format!("{sticky} . tcp")));
    assert!(!c.rules().contains("affinity-"), "affinity sets went with the Service");
}
