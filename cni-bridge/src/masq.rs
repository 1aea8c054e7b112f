//! IP masquerade in nftables: pod traffic that leaves the cluster's pod CIDRs is
//! source-NATed to the node's address; pod-to-pod traffic (local subnet and the other
//! nodes' pod CIDRs) never is.
//!
//! Layout, in the table `inet minik_cni`, per network (suffix = hash of its name):
//! - set `pods4_<h>` / `pods6_<h>`: the masqueraded pod IPs, each with the comment
//!   `<containerID>/<ifname>` so DEL and GC can find a container's entries;
//! - set `dst4_<h>` / `dst6_<h>` (intervals): the destinations never masqueraded;
//! - chain `masq_<h>` (nat, postrouting): `saddr @pods… daddr != @dst… masquerade`.
//!
//! ADD writes all of that in one transaction (idempotent: the chain is flushed and its
//! rules rewritten, sets are added if missing); DEL deletes the container's elements.

use std::net::IpAddr;

use ipnet::IpNet;
use minik_shared::cni::{Attachment, CniError};
use minik_shared::nft::{self, NftError};
use serde_json::{json, Value};

/// The nftables table cni-bridge owns.
pub const TABLE: &str = "minik_cni";
const FAMILY: &str = "inet";

fn nft_err(what: &str) -> impl FnOnce(NftError) -> CniError + '_ {
    move |e| CniError::internal(format!("{what}: {e}"))
}

/// Names of one network's nftables objects.
struct Names {
    suffix: String,
    network: String,
}

impl Names {
    fn new(network: &str) -> Self {
        let h = crate::hash::fnv1a32(&[network.as_bytes()]);
        Names { suffix: format!("{h:08x}"), network: network.to_string() }
    }
    fn pods(&self, v6: bool) -> String {
        format!("pods{}_{}", if v6 { 6 } else { 4 }, self.suffix)
    }
    fn dst(&self, v6: bool) -> String {
        format!("dst{}_{}", if v6 { 6 } else { 4 }, self.suffix)
    }
    fn chain(&self) -> String {
        format!("masq_{}", self.suffix)
    }
}

fn comment(container_id: &str, ifname: &str) -> String {
    format!("{container_id}/{ifname}")
}

fn set_obj(name: &str, v6: bool, interval: bool) -> Value {
    let mut s = json!({"family": FAMILY, "table": TABLE, "name": name,
        "type": if v6 { "ipv6_addr" } else { "ipv4_addr" }});
    if interval {
        s["flags"] = json!(["interval"]);
    }
    json!({"set": s})
}

fn elements(set: &str, elems: Vec<Value>) -> Value {
    json!({"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": elems}})
}

fn masq_rule(chain: &str, pods: &str, dst: &str, v6: bool) -> Value {
    let proto = if v6 { "ip6" } else { "ip" };
    json!({"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}}, "right": format!("@{pods}")}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": proto, "field": "daddr"}}, "right": format!("@{dst}")}},
        {"masquerade": null}
    ]}})
}

/// Masquerades `ips` of one attachment; `no_masq` are the cluster destinations.
pub fn add(network: &str, att: &Attachment, ips: &[IpAddr], no_masq: &[IpNet]) -> Result<(), CniError> {
    let n = Names::new(network);
    let chain = n.chain();
    let mut cmds = vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": chain, "type": "nat",
            "hook": "postrouting", "prio": 100, "policy": "accept", "comment": format!("cni-bridge masquerade for network {}", n.network)}}}),
        json!({"flush": {"chain": {"family": FAMILY, "table": TABLE, "name": chain}}}),
    ];
    for v6 in [false, true] {
        let mine: Vec<&IpAddr> = ips.iter().filter(|ip| ip.is_ipv6() == v6).collect();
        let family_dsts: Vec<Value> = no_masq
            .iter()
            .filter(|d| d.addr().is_ipv6() == v6)
            .map(|d| json!({"prefix": {"addr": d.network().to_string(), "len": d.prefix_len()}}))
            .chain(std::iter::once(if v6 {
                json!({"prefix": {"addr": "ff00::", "len": 8}})
            } else {
                json!({"prefix": {"addr": "224.0.0.0", "len": 4}})
            }))
            .collect();
        let (pods, dst) = (n.pods(v6), n.dst(v6));
        cmds.push(json!({"add": set_obj(&pods, v6, false)}));
        cmds.push(json!({"add": set_obj(&dst, v6, true)}));
        cmds.push(json!({"flush": set_obj(&dst, v6, true)}));
        cmds.push(json!({"add": elements(&dst, family_dsts)}));
        if !mine.is_empty() {
            let elems = mine
                .iter()
                .map(|ip| json!({"elem": {"val": ip.to_string(), "comment": comment(&att.container_id, &att.ifname)}}))
                .collect();
            cmds.push(json!({"add": elements(&pods, elems)}));
        }
        cmds.push(json!({"add": masq_rule(&chain, &pods, &dst, v6)}));
    }
    nft::apply(cmds).map_err(nft_err("cannot program the masquerade rules"))
}

/// Stops masquerading `ips`; entries that are already gone are fine.
pub fn del(network: &str, ips: &[IpAddr]) -> Result<(), CniError> {
    let n = Names::new(network);
    for ip in ips {
        let cmd = json!({"delete": elements(&n.pods(ip.is_ipv6()), vec![json!(ip.to_string())])});
        match nft::apply(vec![cmd]) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(nft_err("cannot remove a masquerade entry")(e)),
        }
    }
    Ok(())
}

/// The masqueraded IPs of a network, with the attachment each belongs to.
pub fn list(network: &str) -> Result<Vec<(IpAddr, String)>, CniError> {
    let n = Names::new(network);
    let mut out = Vec::new();
    for v6 in [false, true] {
        let objs = match nft::list(&["list", "set", FAMILY, TABLE, &n.pods(v6)]) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(nft_err("cannot list the masquerade entries")(e)),
        };
        for set in objs.iter().filter_map(|o| o.get("set")) {
            for e in set.get("elem").and_then(Value::as_array).into_iter().flatten() {
                let (val, comment) = match e.get("elem") {
                    Some(inner) => (inner.get("val"), inner.get("comment").and_then(Value::as_str).unwrap_or("")),
                    None => (Some(e), ""),
                };
                if let Some(ip) = val.and_then(Value::as_str).and_then(|s| s.parse().ok()) {
                    out.push((ip, comment.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// Removes every entry whose attachment is not in `valid`; returns the freed IPs.
pub fn gc(network: &str, valid: &[Attachment]) -> Result<Vec<IpAddr>, CniError> {
    let keep: Vec<String> = valid.iter().map(|a| comment(&a.container_id, &a.ifname)).collect();
    let stale: Vec<IpAddr> =
        list(network)?.into_iter().filter(|(_, c)| !keep.contains(c)).map(|(ip, _)| ip).collect();
    del(network, &stale)?;
    Ok(stale)
}
