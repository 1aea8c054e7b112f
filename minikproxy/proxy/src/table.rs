//! The fixed part of minikproxy's table (`table ip minik-proxy` by default): the base
//! chains on the netfilter hooks, the four verdict maps every Service adds elements to,
//! and the shared helper chains, as kube-proxy's nftables mode lays them out:
//!
//! ```text
//! nat-prerouting  (nat prerouting dstnat)   jump services
//! nat-output      (nat output -100)         jump services
//! nat-postrouting (nat postrouting srcnat)  jump masquerading
//! filter-input    (filter input -110)       ct state new jump nodeport-endpoints-check
//!                                           ct state new jump service-endpoints-check
//! filter-forward  (filter forward -110)     ct state new jump service-endpoints-check
//! filter-output   (filter output -110)      ct state new jump service-endpoints-check
//! services                 ip daddr . meta l4proto . th dport vmap @service-ips
//!                          fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//! service-endpoints-check  ip daddr . meta l4proto . th dport vmap @no-endpoint-services
//! nodeport-endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
//! mark-for-masquerade      meta mark set meta mark | 0x4000
//! masquerading             meta mark & 0x4000 == 0 return; meta mark set meta mark ^ 0x4000; masquerade fully-random
//! reject-chain             meta l4proto tcp reject with tcp reset; reject
//! ```
//!
//! The filter chains sit at priority -110, before the nat output chain (-100), so a
//! connection to a Service without endpoints is refused before anything else looks at it.

use serde_json::{json, Value};

use crate::expr::{self, MASQ_MARK};

/// Verdict map: ClusterIP / LB IP . protocol . port → service or external chain.
pub const SERVICE_IPS: &str = "service-ips";
/// Verdict map: protocol . NodePort → external chain.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// Verdict map: Service IP . protocol . port without ready endpoints → reject.
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// Verdict map: protocol . NodePort without ready endpoints → reject.
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// Sets the masquerade mark.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
/// Refuses a connection (TCP reset, else ICMP port unreachable).
pub const REJECT_CHAIN: &str = "reject-chain";
/// The chain the nat hooks jump to; the drift check looks at it.
pub const SERVICES_CHAIN: &str = "services";

/// The maps, with their key types.
pub const MAPS: [(&str, bool); 4] =
    [(SERVICE_IPS, true), (SERVICE_NODEPORTS, false), (NO_ENDPOINT_SERVICES, true), (NO_ENDPOINT_NODEPORTS, false)];

/// A base chain: name, and (type, hook, priority) when it is attached to a hook.
struct Chain {
    name: &'static str,
    hook: Option<(&'static str, &'static str, i32)>,
    rules: fn() -> Vec<Vec<Value>>,
}

fn base_chains() -> Vec<Chain> {
    vec![
        Chain {
            name: "nat-prerouting",
            hook: Some(("nat", "prerouting", -100)),
            rules: || vec![vec![expr::jump(SERVICES_CHAIN)]],
        },
        Chain {
            name: "nat-output",
            hook: Some(("nat", "output", -100)),
            rules: || vec![vec![expr::jump(SERVICES_CHAIN)]],
        },
        Chain {
            name: "nat-postrouting",
            hook: Some(("nat", "postrouting", 100)),
            rules: || vec![vec![expr::jump("masquerading")]],
        },
        Chain {
            name: "filter-input",
            hook: Some(("filter", "input", -110)),
            rules: || {
                vec![
                    vec![expr::ct_new(), expr::jump("nodeport-endpoints-check")],
                    vec![expr::ct_new(), expr::jump("service-endpoints-check")],
                ]
            },
        },
        Chain {
            name: "filter-forward",
            hook: Some(("filter", "forward", -110)),
            rules: || vec![vec![expr::ct_new(), expr::jump("service-endpoints-check")]],
        },
        Chain {
            name: "filter-output",
            hook: Some(("filter", "output", -110)),
            rules: || vec![vec![expr::ct_new(), expr::jump("service-endpoints-check")]],
        },
        Chain {
            name: SERVICES_CHAIN,
            hook: None,
            rules: || {
                vec![
                    vec![expr::vmap_named(daddr_proto_port_key(), SERVICE_IPS)],
                    vec![
                        expr::fib_local("daddr"),
                        expr::not_loopback_daddr(),
                        expr::vmap_named(proto_port_key(), SERVICE_NODEPORTS),
                    ],
                ]
            },
        },
        Chain {
            name: "service-endpoints-check",
            hook: None,
            rules: || vec![vec![expr::vmap_named(daddr_proto_port_key(), NO_ENDPOINT_SERVICES)]],
        },
        Chain {
            name: "nodeport-endpoints-check",
            hook: None,
            rules: || {
                vec![vec![
                    expr::fib_local("daddr"),
                    expr::not_loopback_daddr(),
                    expr::vmap_named(proto_port_key(), NO_ENDPOINT_NODEPORTS),
                ]]
            },
        },
        Chain { name: MARK_FOR_MASQUERADE, hook: None, rules: || vec![vec![expr::mark_set("|", MASQ_MARK)]] },
        Chain {
            name: "masquerading",
            hook: None,
            rules: || {
                vec![
                    vec![expr::mark_clear(MASQ_MARK), json!({"return": null})],
                    vec![expr::mark_set("^", MASQ_MARK)],
                    vec![json!({"masquerade": {"flags": ["fully-random"]}})],
                ]
            },
        },
        Chain {
            name: REJECT_CHAIN,
            hook: None,
            rules: || {
                vec![
                    vec![expr::eq(expr::meta("l4proto"), json!("tcp")), json!({"reject": {"type": "tcp reset"}})],
                    vec![json!({"reject": null})],
                ]
            },
        },
    ]
}

fn daddr_proto_port_key() -> Value {
    expr::concat(vec![expr::ip("daddr"), expr::meta("l4proto"), expr::th_dport()])
}

fn proto_port_key() -> Value {
    expr::concat(vec![expr::meta("l4proto"), expr::th_dport()])
}

/// The names of the base chains (everything else in the table belongs to a Service).
pub fn base_chain_names() -> Vec<&'static str> {
    base_chains().iter().map(|c| c.name).collect()
}

/// `add rule` for `chain` in `table`.
pub fn add_rule(table: &str, chain: &str, exprs: &[Value]) -> Value {
    json!({"add": {"rule": {"family": "ip", "table": table, "chain": chain, "expr": exprs}}})
}

/// `add chain` (a regular chain).
pub fn add_chain(table: &str, chain: &str) -> Value {
    json!({"add": {"chain": {"family": "ip", "table": table, "name": chain}}})
}

/// `flush chain`.
pub fn flush_chain(table: &str, chain: &str) -> Value {
    json!({"flush": {"chain": {"family": "ip", "table": table, "name": chain}}})
}

/// `delete chain`.
pub fn delete_chain(table: &str, chain: &str) -> Value {
    json!({"delete": {"chain": {"family": "ip", "table": table, "name": chain}}})
}

/// Creates the table, its maps and base chains if missing, and (re)writes the base
/// chains' rules, all as commands for one batch. Maps keep their elements.
pub fn base_commands(table: &str) -> Vec<Value> {
    let mut cmds = vec![json!({"add": {"table": {"family": "ip", "name": table}}})];
    for (name, with_addr) in MAPS {
        let ty: Vec<&str> = if with_addr {
            vec!["ipv4_addr", "inet_proto", "inet_service"]
        } else {
            vec!["inet_proto", "inet_service"]
        };
        cmds.push(
            json!({"add": {"map": {"family": "ip", "table": table, "name": name, "type": ty, "map": "verdict"}}}),
        );
    }
    let chains = base_chains();
    for c in &chains {
        cmds.push(match c.hook {
            Some((ty, hook, prio)) => json!({"add": {"chain": {
                "family": "ip", "table": table, "name": c.name, "type": ty, "hook": hook, "prio": prio, "policy": "accept"
            }}}),
            None => add_chain(table, c.name),
        });
    }
    for c in &chains {
        cmds.push(flush_chain(table, c.name));
        for r in (c.rules)() {
            cmds.push(add_rule(table, c.name, &r));
        }
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_table_has_hooks_maps_and_rules() {
        let cmds = base_commands("t");
        let text = serde_json::to_string(&cmds).expect("json");
        for needle in [
            "\"hook\":\"prerouting\"",
            "\"hook\":\"postrouting\"",
            "\"hook\":\"forward\"",
            "@service-ips",
            "@no-endpoint-nodeports",
            "fully-random",
        ] {
            assert!(text.contains(needle), "{needle} missing");
        }
        assert_eq!(cmds.iter().filter(|c| c["add"]["map"].is_object()).count(), 4);
        assert!(base_chain_names().contains(&REJECT_CHAIN));
    }
}
