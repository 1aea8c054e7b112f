//! nft batches, pure: the small batch that moves one Service from the rules it had to
//! the rules it needs ([`service_update`]), and the full resync that brings a whole
//! table, whatever is in it, to the desired state in place ([`full_sync`]).
//!
//! Both are one transaction each (see [`minik_shared::nft::apply`]), so packets see the
//! old rules or the new, never a mix; neither flushes the table, so conntrack entries
//! (established flows) are untouched. Order inside a batch matters, because nftables
//! refuses to delete a chain or set something still refers to:
//! 1. delete map elements that go away or change;
//! 2. flush chains that change or go away (dropping their references);
//! 3. add sets, add chains, add the rules of new and changed chains;
//! 4. add new map elements;
//! 5. delete chains and sets that go away.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::model::ServiceKey;
use crate::rules::{Element, ServiceRules};
use crate::table::{self, add_chain, add_rule, delete_chain, flush_chain, MAPS};

fn element_cmd(verb: &str, table: &str, e: &Element) -> Value {
    let elem = if verb == "delete" { json!([e.key()]) } else { json!([[e.key(), {"goto": {"target": e.chain}}]]) };
    json!({verb: {"element": {"family": "ip", "table": table, "name": e.map, "elem": elem}}})
}

fn set_cmd(verb: &str, table: &str, name: &str, timeout: u32) -> Value {
    if verb == "delete" {
        return json!({"delete": {"set": {"family": "ip", "table": table, "name": name}}});
    }
    json!({"add": {"set": {"family": "ip", "table": table, "name": name, "type": "ipv4_addr", "flags": ["timeout"], "timeout": timeout}}})
}

/// The batch that changes one Service from `old` to `new` (`None`: absent). Chains whose
/// rules are unchanged are not touched. Empty when nothing changes.
pub fn service_update(table: &str, old: Option<&ServiceRules>, new: Option<&ServiceRules>) -> Vec<Value> {
    let empty = ServiceRules::default();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut cmds = Vec::new();
    // 1. Elements that go away (a changed verdict is a delete and an add).
    for e in old.elements.difference(&new.elements) {
        cmds.push(element_cmd("delete", table, e));
    }
    // 2. Changed or removed chains lose their rules.
    for (name, rules) in &old.chains {
        if new.chains.get(name) != Some(rules) {
            cmds.push(flush_chain(table, name));
        }
    }
    // 3. New sets, new chains, rules of new and changed chains.
    for (name, timeout) in &new.sets {
        if !old.sets.contains_key(name) {
            cmds.push(set_cmd("add", table, name, *timeout));
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            cmds.push(add_chain(table, name));
        }
    }
    for (name, rules) in &new.chains {
        if old.chains.get(name) != Some(rules) {
            cmds.extend(rules.iter().map(|r| add_rule(table, name, r)));
        }
    }
    // 4. New elements.
    for e in new.elements.difference(&old.elements) {
        cmds.push(element_cmd("add", table, e));
    }
    // 5. Chains and sets that go away (already flushed, no longer referenced).
    for name in old.chains.keys() {
        if !new.chains.contains_key(name) {
            cmds.push(delete_chain(table, name));
        }
    }
    for name in old.sets.keys() {
        if !new.sets.contains_key(name) {
            cmds.push(set_cmd("delete", table, name, 0));
        }
    }
    cmds
}

/// What a table holds now, as far as a full resync needs to know: its chain and set names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Whether the table exists at all.
    pub table: bool,
    /// Its chains.
    pub chains: BTreeSet<String>,
    /// Its (non-map) sets.
    pub sets: BTreeSet<String>,
}

impl Existing {
    /// Whether the table holds chains `desired` does not want (besides the base chains):
    /// then sets of gone Services may be there too.
    pub fn has_strangers(&self, desired: &BTreeMap<ServiceKey, ServiceRules>) -> bool {
        let base: BTreeSet<&str> = table::base_chain_names().into_iter().collect();
        self.chains.iter().any(|c| !base.contains(c.as_str()) && !desired.values().any(|r| r.chains.contains_key(c)))
    }
}

impl Existing {
    /// Reads the answer of `nft -j list table ip NAME` (its objects, without metainfo).
    pub fn from_listing(objects: &[Value]) -> Self {
        let mut out = Existing::default();
        for o in objects {
            if o.get("table").is_some() {
                out.table = true;
            }
            if let Some(name) = o.get("chain").and_then(|c| c.get("name")).and_then(Value::as_str) {
                out.chains.insert(name.to_string());
            }
            if let Some(name) = o.get("set").and_then(|c| c.get("name")).and_then(Value::as_str) {
                out.sets.insert(name.to_string());
            }
        }
        out
    }
}

/// The batch that makes the table hold exactly `desired`, in place: the base chains are
/// rewritten and the maps refilled; a Service chain that already exists is kept as it is
/// (its name stands for its rules, see [`crate::rules`]), missing ones are added, and
/// anything else minikproxy owns in the table (chains, sets of Services that are gone or
/// changed) is deleted. After a restart with nothing changed, only the base chains and
/// the maps are written, whatever the number of Services.
pub fn full_sync(table: &str, existing: &Existing, desired: &BTreeMap<ServiceKey, ServiceRules>) -> Vec<Value> {
    let base: BTreeSet<&str> = table::base_chain_names().into_iter().collect();
    let mut cmds = table::base_commands(table);
    for (map, _) in MAPS {
        cmds.push(json!({"flush": {"map": {"family": "ip", "table": table, "name": map}}}));
    }
    let wanted_chains: BTreeSet<&String> = desired.values().flat_map(|r| r.chains.keys()).collect();
    let wanted_sets: BTreeSet<&String> = desired.values().flat_map(|r| r.sets.keys()).collect();
    let stale: Vec<&String> =
        existing.chains.iter().filter(|c| !base.contains(c.as_str()) && !wanted_chains.contains(c)).collect();
    // Chains that go lose their rules (and references) first.
    for c in &stale {
        cmds.push(flush_chain(table, c));
    }
    for rules in desired.values() {
        for (name, timeout) in &rules.sets {
            if !existing.sets.contains(name) {
                cmds.push(set_cmd("add", table, name, *timeout));
            }
        }
        for name in rules.chains.keys() {
            if !existing.chains.contains(name) {
                cmds.push(add_chain(table, name));
            }
        }
    }
    for rules in desired.values() {
        for (name, list) in &rules.chains {
            if !existing.chains.contains(name) {
                cmds.extend(list.iter().map(|r| add_rule(table, name, r)));
            }
        }
        cmds.extend(rules.elements.iter().map(|e| element_cmd("add", table, e)));
    }
    for c in stale {
        cmds.push(delete_chain(table, c));
    }
    for s in existing.sets.iter().filter(|s| !wanted_sets.contains(s)) {
        cmds.push(set_cmd("delete", table, s, 0));
    }
    cmds
}

/// The whole rule set written from scratch, as an `iptables-restore`-style full rewrite
/// would (delete the table and create it again in one transaction): what the benchmark
/// compares the incremental batch with.
pub fn full_rewrite(table: &str, exists: bool, desired: &BTreeMap<ServiceKey, ServiceRules>) -> Vec<Value> {
    let mut cmds = Vec::new();
    if exists {
        cmds.push(json!({"delete": {"table": {"family": "ip", "name": table}}}));
    }
    cmds.extend(full_sync(table, &Existing::default(), desired));
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, Service, ServiceEndpoints, ServicePort};
    use crate::rules::{service_rules, RuleConfig};
    use std::net::Ipv4Addr;

    fn rules(eps: &[&str], affinity: Option<u32>) -> ServiceRules {
        let cfg = RuleConfig { cluster_cidr: Some("10.244.0.0/16".parse().expect("cidr")), node_name: "n1".into() };
        let svc = Service {
            key: ServiceKey::new("ns", "web"),
            cluster_ips: vec![Ipv4Addr::new(10, 96, 0, 10)],
            lb_ips: vec![],
            ports: vec![ServicePort { name: String::new(), protocol: Protocol::Tcp, port: 80, node_port: None }],
            affinity_timeout: affinity,
            external_local: false,
        };
        let list = eps
            .iter()
            .map(|ip| Endpoint { ip: ip.parse().expect("ip"), port: 8080, ready: true, terminating: false, node: None })
            .collect();
        let e: ServiceEndpoints = [((String::new(), Protocol::Tcp), list)].into_iter().collect();
        service_rules(&cfg, &svc, &e)
    }

    fn verbs(cmds: &[Value]) -> Vec<String> {
        cmds.iter()
            .map(|c| {
                let (verb, body) = c.as_object().and_then(|o| o.iter().next()).expect("command");
                let (kind, _) = body.as_object().and_then(|o| o.iter().next()).expect("object");
                format!("{verb} {kind}")
            })
            .collect()
    }

    #[test]
    fn an_unchanged_service_needs_no_batch() {
        let r = rules(&["10.244.1.2"], None);
        assert!(service_update("t", Some(&r), Some(&r)).is_empty());
    }

    #[test]
    fn adding_an_endpoint_replaces_the_service_chain_and_adds_one_endpoint_chain() {
        let old = rules(&["10.244.1.2"], None);
        let new = rules(&["10.244.1.2", "10.244.1.3"], None);
        let cmds = service_update("t", Some(&old), Some(&new));
        let v = verbs(&cmds);
        // A new service chain (new rules, new name) and a new endpoint chain; the map
        // element moves to the new service chain; the old service chain goes; the
        // unchanged endpoint chain is not touched.
        assert_eq!(v.iter().filter(|x| *x == "add chain").count(), 2, "{v:?}");
        assert_eq!(v.iter().filter(|x| *x == "flush chain").count(), 1, "{v:?}");
        assert_eq!(v.iter().filter(|x| *x == "delete chain").count(), 1, "{v:?}");
        assert_eq!(v.iter().filter(|x| x.ends_with("element")).count(), 2, "{v:?}");
        let text = serde_json::to_string(&cmds).expect("json");
        assert!(!text.contains("10.244.1.2__"), "the unchanged endpoint chain is not touched");
    }

    #[test]
    fn deleting_a_service_removes_elements_first_and_chains_last() {
        let old = rules(&["10.244.1.2"], Some(60));
        let v = verbs(&service_update("t", Some(&old), None));
        assert_eq!(v.first().map(String::as_str), Some("delete element"));
        assert_eq!(v.last().map(String::as_str), Some("delete set"));
        let first_delete_chain = v.iter().position(|x| x == "delete chain").expect("delete chain");
        let last_flush = v.iter().rposition(|x| x == "flush chain").expect("flush");
        assert!(last_flush < first_delete_chain);
    }

    #[test]
    fn full_sync_removes_strangers_and_keeps_base_chains() {
        let existing = Existing {
            table: true,
            chains: ["services".to_string(), "service-OLD-x".to_string()].into_iter().collect(),
            sets: ["affinity-OLD".to_string()].into_iter().collect(),
        };
        let desired: BTreeMap<_, _> =
            [(ServiceKey::new("ns", "web"), rules(&["10.244.1.2"], None))].into_iter().collect();
        let cmds = full_sync("t", &existing, &desired);
        let text = serde_json::to_string(&cmds).expect("json");
        assert!(text.contains(r#"{"delete":{"chain":{"family":"ip","name":"service-OLD-x","table":"t"}}}"#), "{text}");
        assert!(text.contains(r#"{"delete":{"set":{"family":"ip","name":"affinity-OLD","table":"t"}}}"#));
        assert!(!text.contains(r#""delete":{"chain":{"family":"ip","name":"services""#));
        assert!(!text.contains(r#""delete":{"table""#), "never deletes the table");
    }

    #[test]
    fn a_resync_with_nothing_changed_rewrites_no_service_chain() {
        let r = rules(&["10.244.1.2"], Some(60));
        let existing = Existing {
            table: true,
            chains: r.chains.keys().cloned().chain(["services".to_string()]).collect(),
            sets: r.sets.keys().cloned().collect(),
        };
        let desired: BTreeMap<_, _> = [(ServiceKey::new("ns", "web"), r.clone())].into_iter().collect();
        let cmds = full_sync("t", &existing, &desired);
        let text = serde_json::to_string(&cmds).expect("json");
        for name in r.chains.keys() {
            assert!(!text.contains(&format!(r#""chain":"{name}""#)), "{name} was rewritten");
        }
        assert!(text.contains(r#""add":{"element""#), "the maps are refilled");
    }

    #[test]
    fn existing_is_read_from_a_listing() {
        let listing = vec![
            json!({"table": {"family": "ip", "name": "t"}}),
            json!({"chain": {"family": "ip", "table": "t", "name": "services"}}),
            json!({"set": {"family": "ip", "table": "t", "name": "affinity-A"}}),
            json!({"map": {"family": "ip", "table": "t", "name": "service-ips"}}),
            json!({"rule": {"family": "ip", "table": "t", "chain": "services"}}),
        ];
        let e = Existing::from_listing(&listing);
        assert!(e.table);
        assert_eq!(e.chains.len(), 1);
        assert_eq!(e.sets.iter().collect::<Vec<_>>(), vec!["affinity-A"]);
    }
}
