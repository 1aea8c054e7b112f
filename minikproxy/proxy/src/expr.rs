//! Small builders for the nftables JSON expressions minikproxy's rules are made of
//! (libnftables-json(5)), so the rule code reads like the rules it makes.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

/// The mark bit that asks the masquerading chain to masquerade a packet (as kube-proxy's).
pub const MASQ_MARK: u32 = 0x4000;

/// `ip saddr` / `ip daddr`.
pub fn ip(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

/// `th dport` (the transport header's destination port, any protocol).
pub fn th_dport() -> Value {
    json!({"payload": {"protocol": "th", "field": "dport"}})
}

/// `meta KEY`.
pub fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

/// `LEFT == RIGHT` (`!=` with `op`).
pub fn cmp(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

/// `LEFT == RIGHT`.
pub fn eq(left: Value, right: Value) -> Value {
    cmp("==", left, right)
}

/// A prefix (`10.244.0.0/16`) as a match operand.
pub fn prefix(net: Ipv4Net) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

/// An address as a match operand.
pub fn addr(a: Ipv4Addr) -> Value {
    Value::String(a.to_string())
}

/// `fib FLAG type local` (FLAG: `daddr` or `saddr`).
pub fn fib_local(flag: &str) -> Value {
    eq(json!({"fib": {"result": "type", "flags": [flag]}}), json!("local"))
}

/// `ip daddr != 127.0.0.0/8`.
pub fn not_loopback_daddr() -> Value {
    cmp("!=", ip("daddr"), json!({"prefix": {"addr": "127.0.0.0", "len": 8}}))
}

/// `ct state new`.
pub fn ct_new() -> Value {
    cmp("in", json!({"ct": {"key": "state"}}), json!("new"))
}

/// `jump CHAIN`.
pub fn jump(chain: &str) -> Value {
    json!({"jump": {"target": chain}})
}

/// `goto CHAIN`.
pub fn goto(chain: &str) -> Value {
    json!({"goto": {"target": chain}})
}

/// `KEY vmap @MAP`.
pub fn vmap_named(key: Value, map: &str) -> Value {
    json!({"vmap": {"key": key, "data": format!("@{map}")}})
}

/// `concat(parts…)`.
pub fn concat(parts: Vec<Value>) -> Value {
    json!({"concat": parts})
}

/// `numgen random mod N vmap { 0 : goto C0, 1 : goto C1, … }`.
pub fn numgen_goto(chains: &[String]) -> Value {
    let elems: Vec<Value> = chains.iter().enumerate().map(|(i, c)| json!([i, goto(c)])).collect();
    json!({"vmap": {"key": {"numgen": {"mode": "random", "mod": chains.len(), "offset": 0}}, "data": {"set": elems}}})
}

/// `update @SET { ip saddr }`.
pub fn update_saddr(set: &str) -> Value {
    json!({"set": {"op": "update", "elem": ip("saddr"), "set": format!("@{set}")}})
}

/// `ip saddr @SET`.
pub fn saddr_in(set: &str) -> Value {
    eq(ip("saddr"), json!(format!("@{set}")))
}

/// `meta l4proto PROTO dnat to ADDR:PORT`, as two expressions.
pub fn dnat(proto: &str, to: Ipv4Addr, port: u16) -> [Value; 2] {
    [eq(meta("l4proto"), json!(proto)), json!({"dnat": {"addr": to.to_string(), "port": port}})]
}

/// `meta mark set meta mark OP VALUE` (OP: `|` or `^`).
pub fn mark_set(op: &str, value: u32) -> Value {
    json!({"mangle": {"key": meta("mark"), "value": {op: [meta("mark"), value]}}})
}

/// `meta mark & VALUE == 0`.
pub fn mark_clear(value: u32) -> Value {
    eq(json!({"&": [meta("mark"), value]}), json!(0))
}
