//! The rules of one Service, pure: from its [`model`](crate::model) to the chains,
//! affinity sets and verdict-map elements that forward it, in the shape of kube-proxy's
//! nftables mode.
//!
//! Per Service port (`ns/name/proto/port`):
//! - `service-HASH-ns/name/proto/port`: masquerade ClusterIP traffic from outside the
//!   cluster CIDR, then (with affinity) `ip saddr @affinity-… goto endpoint-…` per
//!   endpoint, then `numgen random mod N vmap { i : goto endpoint-… }` over the ready
//!   endpoints;
//! - `endpoint-HASH-…__IP/PORT`: masquerade hairpin traffic (source == endpoint), remember
//!   the client in the affinity set, `dnat to IP:PORT`;
//! - `external-HASH-…` (NodePort and load-balancer IPs): `Cluster` policy masquerades
//!   traffic from outside the cluster CIDR and goes to the service chain; `Local` keeps the
//!   client IP and picks among this node's endpoints only;
//! - elements of `service-ips` (ClusterIP and LB IP), `service-nodeports`, or, when no
//!   endpoint is ready, of `no-endpoint-services` / `no-endpoint-nodeports` (rejected in
//!   the filter chains).
//!
//! Names carry a short hash: of the readable part and the rules for chains, of the
//! readable part and the timeout for affinity sets. A name therefore stands for exactly
//! one content, which keeps incremental batches and restarts simple (see [`crate::batch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::expr;
use crate::model::{Endpoint, Protocol, Service, ServiceEndpoints};
use crate::table::{
    MARK_FOR_MASQUERADE, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, REJECT_CHAIN, SERVICE_IPS, SERVICE_NODEPORTS,
};

/// What the rules depend on besides the Service.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// The cluster's pod CIDR: traffic from outside it is masqueraded (ClusterIP and
    /// `Cluster` external traffic). `None`: ClusterIP traffic is never masqueraded and
    /// external traffic always is.
    pub cluster_cidr: Option<Ipv4Net>,
    /// This node's name (for `externalTrafficPolicy: Local`).
    pub node_name: String,
}

/// One element of a verdict map: its key, and the chain it sends matching packets to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The map.
    pub map: &'static str,
    /// The destination address (`None` in the nodeport maps).
    pub addr: Option<Ipv4Addr>,
    /// The protocol.
    pub proto: Protocol,
    /// The destination port.
    pub port: u16,
    /// The chain (`goto`).
    pub chain: String,
}

impl Element {
    /// The element's key as nft JSON.
    pub fn key(&self) -> Value {
        match self.addr {
            Some(a) => json!({"concat": [a.to_string(), self.proto.nft(), self.port]}),
            None => json!({"concat": [self.proto.nft(), self.port]}),
        }
    }
}

/// Everything one Service owns in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Chain name → its rules (each a list of expressions), in order.
    pub chains: BTreeMap<String, Vec<Vec<Value>>>,
    /// Affinity sets: name → timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Verdict-map elements.
    pub elements: BTreeSet<Element>,
    /// How many endpoints are programmed (ready endpoints over all ports, counted once per address).
    pub endpoints: usize,
    /// The ready endpoints of its UDP ports (their conntrack entries are flushed when they go).
    pub udp_endpoints: BTreeSet<Ipv4Addr>,
}

impl ServiceRules {
    /// How many rules the Service's chains hold.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().take(4).map(|b| format!("{b:02X}")).collect()
}

/// A chain's name: its kind, a hash of what it is for *and of its rules*, and the
/// readable part. So a chain with a given name always holds the same rules: a change
/// makes a new chain (the old one goes in the same transaction), and a full resync can
/// keep every chain that already exists under a wanted name without rewriting it.
fn chain_name(kind: &str, readable: &str, rules: &[Vec<Value>]) -> String {
    named(kind, readable, &serde_json::to_string(rules).unwrap_or_default())
}

fn named(kind: &str, readable: &str, extra: &str) -> String {
    format!("{kind}-{}-{readable}", short_hash(&[readable, extra]))
}

/// The rules of `svc` with `eps` as its endpoints.
pub fn service_rules(cfg: &RuleConfig, svc: &Service, eps: &ServiceEndpoints) -> ServiceRules {
    let mut out = ServiceRules::default();
    let mut counted: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for port in &svc.ports {
        let base = format!("{}/{}/{}/{}", svc.key.namespace, svc.key.name, port.protocol.nft(), port.name);
        let proto = port.protocol;
        let ready: Vec<&Endpoint> =
            eps.get(&(port.name.clone(), proto)).map(|v| v.iter().filter(|e| e.ready).collect()).unwrap_or_default();
        if ready.is_empty() {
            for a in svc.cluster_ips.iter().chain(&svc.lb_ips) {
                out.elements.insert(Element {
                    map: NO_ENDPOINT_SERVICES,
                    addr: Some(*a),
                    proto,
                    port: port.port,
                    chain: REJECT_CHAIN.into(),
                });
            }
            if let Some(np) = port.node_port {
                out.elements.insert(Element {
                    map: NO_ENDPOINT_NODEPORTS,
                    addr: None,
                    proto,
                    port: np,
                    chain: REJECT_CHAIN.into(),
                });
            }
            continue;
        }
        counted.extend(ready.iter().map(|e| e.ip));
        if proto == Protocol::Udp {
            out.udp_endpoints.extend(ready.iter().map(|e| e.ip));
        }

        // One chain (and affinity set) per ready endpoint.
        let mut targets: Vec<(&Endpoint, String, Option<String>)> = Vec::new();
        for ep in &ready {
            let readable = format!("{base}__{}/{}", ep.ip, ep.port);
            let set = svc.affinity_timeout.map(|t| named("affinity", &readable, &t.to_string()));
            let mut rules = vec![vec![expr::eq(expr::ip("saddr"), expr::addr(ep.ip)), expr::jump(MARK_FOR_MASQUERADE)]];
            if let (Some(set), Some(t)) = (&set, svc.affinity_timeout) {
                out.sets.insert(set.clone(), t);
                rules.push(vec![expr::update_saddr(set)]);
            }
            rules.push(expr::dnat(proto.nft(), ep.ip, ep.port).to_vec());
            let chain = chain_name("endpoint", &readable, &rules);
            out.chains.insert(chain.clone(), rules);
            targets.push((ep, chain, set));
        }

        // The service chain: masquerade off-cluster ClusterIP clients, affinity, pick one.
        let mut rules = Vec::new();
        if let Some(cidr) = cfg.cluster_cidr {
            for cip in &svc.cluster_ips {
                rules.push(vec![
                    expr::eq(expr::ip("daddr"), expr::addr(*cip)),
                    expr::eq(expr::meta("l4proto"), json!(proto.nft())),
                    expr::eq(expr::th_dport(), json!(port.port)),
                    expr::cmp("!=", expr::ip("saddr"), expr::prefix(cidr)),
                    expr::jump(MARK_FOR_MASQUERADE),
                ]);
            }
        }
        rules.extend(pick(&targets.iter().collect::<Vec<_>>()));
        let svc_chain = chain_name("service", &base, &rules);
        out.chains.insert(svc_chain.clone(), rules);
        for cip in &svc.cluster_ips {
            out.elements.insert(Element {
                map: SERVICE_IPS,
                addr: Some(*cip),
                proto,
                port: port.port,
                chain: svc_chain.clone(),
            });
        }

        // External traffic: NodePort and load-balancer IPs.
        if port.node_port.is_none() && svc.lb_ips.is_empty() {
            continue;
        }
        let mut rules = Vec::new();
        if svc.external_local {
            if let Some(cidr) = cfg.cluster_cidr {
                // Pods may use any endpoint (as through the ClusterIP).
                rules.push(vec![expr::eq(expr::ip("saddr"), expr::prefix(cidr)), expr::goto(&svc_chain)]);
            }
            // The node itself: masquerade, any endpoint.
            rules.push(vec![expr::fib_local("saddr"), expr::jump(MARK_FOR_MASQUERADE)]);
            rules.push(vec![expr::fib_local("saddr"), expr::goto(&svc_chain)]);
            let local: Vec<_> =
                targets.iter().filter(|(e, _, _)| e.node.as_deref() == Some(cfg.node_name.as_str())).collect();
            if local.is_empty() {
                rules.push(vec![json!({"drop": null})]);
            } else {
                rules.extend(pick(&local));
            }
        } else {
            match cfg.cluster_cidr {
                Some(cidr) => rules.push(vec![
                    expr::cmp("!=", expr::ip("saddr"), expr::prefix(cidr)),
                    expr::jump(MARK_FOR_MASQUERADE),
                ]),
                None => rules.push(vec![expr::jump(MARK_FOR_MASQUERADE)]),
            }
            rules.push(vec![expr::goto(&svc_chain)]);
        }
        let ext_chain = chain_name("external", &base, &rules);
        out.chains.insert(ext_chain.clone(), rules);
        for lb in &svc.lb_ips {
            out.elements.insert(Element {
                map: SERVICE_IPS,
                addr: Some(*lb),
                proto,
                port: port.port,
                chain: ext_chain.clone(),
            });
        }
        if let Some(np) = port.node_port {
            out.elements.insert(Element {
                map: SERVICE_NODEPORTS,
                addr: None,
                proto,
                port: np,
                chain: ext_chain.clone(),
            });
        }
    }
    out.endpoints = counted.len();
    out
}

/// Affinity lookups, then a random pick among `targets`.
fn pick(targets: &[&(&Endpoint, String, Option<String>)]) -> Vec<Vec<Value>> {
    let mut rules: Vec<Vec<Value>> = targets
        .iter()
        .filter_map(|(_, chain, set)| set.as_ref().map(|s| vec![expr::saddr_in(s), expr::goto(chain)]))
        .collect();
    let chains: Vec<String> = targets.iter().map(|(_, c, _)| c.clone()).collect();
    rules.push(vec![expr::numgen_goto(&chains)]);
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceKey, ServicePort};

    fn cfg() -> RuleConfig {
        RuleConfig { cluster_cidr: Some("10.244.0.0/16".parse().expect("cidr")), node_name: "n1".into() }
    }

    fn svc(node_port: Option<u16>, affinity: Option<u32>, local: bool) -> Service {
        Service {
            key: ServiceKey::new("ns", "web"),
            cluster_ips: vec![Ipv4Addr::new(10, 96, 0, 10)],
            lb_ips: vec![],
            ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port }],
            affinity_timeout: affinity,
            external_local: local,
        }
    }

    fn eps(list: &[(&str, bool, &str)]) -> ServiceEndpoints {
        let v = list
            .iter()
            .map(|(ip, ready, node)| Endpoint {
                ip: ip.parse().expect("ip"),
                port: 8080,
                ready: *ready,
                terminating: !ready,
                node: Some(node.to_string()),
            })
            .collect();
        [(("http".to_string(), Protocol::Tcp), v)].into_iter().collect()
    }

    fn chain<'a>(r: &'a ServiceRules, kind: &str) -> Vec<(&'a String, &'a Vec<Vec<Value>>)> {
        r.chains.iter().filter(|(n, _)| n.starts_with(kind)).collect()
    }

    #[test]
    fn cluster_ip_picks_among_ready_endpoints_only() {
        let r = service_rules(
            &cfg(),
            &svc(None, None, false),
            &eps(&[("10.244.1.2", true, "n1"), ("10.244.1.3", false, "n1"), ("10.244.2.2", true, "n2")]),
        );
        assert_eq!(chain(&r, "endpoint-").len(), 2, "{:?}", r.chains.keys());
        let s = chain(&r, "service-");
        assert_eq!(s.len(), 1);
        let (name, rules) = s[0];
        assert!(name.ends_with("-ns/web/tcp/http"), "{name}");
        let last = rules.last().expect("numgen rule");
        assert_eq!(last[0]["vmap"]["key"]["numgen"]["mod"], 2);
        assert_eq!(r.elements.len(), 1);
        let e = r.elements.iter().next().expect("element");
        assert_eq!((e.map, e.chain.as_str()), (SERVICE_IPS, name.as_str()));
        assert_eq!(e.key(), json!({"concat": ["10.96.0.10", "tcp", 80]}));
        assert_eq!(r.endpoints, 2);
        // The endpoint chain masquerades hairpin traffic and DNATs.
        let (_, ep) =
            *chain(&r, "endpoint-").iter().find(|(n, _)| n.contains("__10.244.1.2/8080")).expect("endpoint chain");
        assert_eq!(ep[0][0]["match"]["right"], "10.244.1.2");
        assert_eq!(ep[1][1]["dnat"], json!({"addr": "10.244.1.2", "port": 8080}));
    }

    #[test]
    fn no_ready_endpoint_means_reject_elements_and_no_chain() {
        let r = service_rules(&cfg(), &svc(Some(30001), None, false), &eps(&[("10.244.1.3", false, "n1")]));
        assert!(r.chains.is_empty());
        let maps: Vec<_> = r.elements.iter().map(|e| (e.map, e.chain.as_str())).collect();
        assert_eq!(maps, vec![(NO_ENDPOINT_NODEPORTS, REJECT_CHAIN), (NO_ENDPOINT_SERVICES, REJECT_CHAIN)]);
    }

    #[test]
    fn affinity_adds_a_set_per_endpoint_named_with_its_timeout() {
        let a = service_rules(&cfg(), &svc(None, Some(10800), false), &eps(&[("10.244.1.2", true, "n1")]));
        let b = service_rules(&cfg(), &svc(None, Some(60), false), &eps(&[("10.244.1.2", true, "n1")]));
        assert_eq!(a.sets.len(), 1);
        assert_eq!(a.sets.values().next(), Some(&10800));
        assert_ne!(a.sets.keys().next(), b.sets.keys().next(), "a new timeout is a new set");
        let (_, svc_rules) = chain(&a, "service-")[0];
        assert!(svc_rules.iter().any(|r| r[0]["match"]["right"].as_str().is_some_and(|s| s.starts_with("@affinity-"))));
    }

    #[test]
    fn nodeport_cluster_policy_masquerades_off_cluster_clients() {
        let r = service_rules(&cfg(), &svc(Some(30001), None, false), &eps(&[("10.244.1.2", true, "n2")]));
        let ext = chain(&r, "external-");
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].1[0][0]["match"]["op"], "!=");
        assert!(r.elements.iter().any(|e| e.map == SERVICE_NODEPORTS && e.port == 30001 && e.addr.is_none()));
    }

    #[test]
    fn nodeport_local_policy_uses_local_endpoints_or_drops() {
        let r = service_rules(
            &cfg(),
            &svc(Some(30001), None, true),
            &eps(&[("10.244.1.2", true, "n1"), ("10.244.2.2", true, "n2")]),
        );
        let (_, ext) = chain(&r, "external-")[0];
        assert_eq!(ext.last().expect("rule")[0]["vmap"]["key"]["numgen"]["mod"], 1);
        let none = service_rules(&cfg(), &svc(Some(30001), None, true), &eps(&[("10.244.2.2", true, "n2")]));
        let (_, ext) = chain(&none, "external-")[0];
        assert_eq!(ext.last().expect("rule")[0], json!({"drop": null}));
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let one = service_rules(&cfg(), &svc(None, None, false), &eps(&[("10.244.1.2", true, "n1")]));
        let two = service_rules(&cfg(), &svc(None, None, false), &eps(&[("10.244.1.2", true, "n1")]));
        assert_eq!(one, two);
        let mut other = svc(None, None, false);
        other.key.name = "api".into();
        let three = service_rules(&cfg(), &other, &eps(&[("10.244.1.2", true, "n1")]));
        assert!(one.chains.keys().all(|k| !three.chains.contains_key(k)));
    }
}
