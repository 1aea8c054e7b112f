//! The `ipam` object of the plugin config, parsed and validated the way the reference
//! `host-local` plugin does, only more strictly.
//!
//! Accepted keys: `type` (`"host-local"`, `"cni-bridge"` or absent), `ranges` (a list of
//! range sets, each a list of `{subnet, rangeStart?, rangeEnd?, gateway?}`), the legacy
//! single range (`subnet`, `rangeStart`, `rangeEnd`, `gateway` directly in `ipam`, which
//! becomes range set 0 ahead of `ranges`, as in host-local), `routes`, `dataDir` and
//! `resolvConf` (accepted, not used). Other keys are ignored unless they are a near miss
//! of a known key ([`near_miss`]), which is an error.
//!
//! Decisions where host-local is lax:
//! - a subnet with host bits set (`10.1.1.5/24`) is rejected, naming the network address;
//! - rangeStart, rangeEnd and gateway must be of the subnet's family and inside it, with
//!   rangeStart <= rangeEnd; the gateway must not be the network or broadcast address;
//! - IPv4 /32 and IPv6 /128 are rejected (nothing to hand out); /31 and /127 are
//!   point-to-point (RFC 3021): both addresses are usable, the default rangeStart is the
//!   first address and the default gateway the second;
//! - a range whose only addresses are the gateway, network or broadcast is rejected;
//! - `dataDir` must be an absolute path.
//!
//! Every error is [`CniError::invalid_config`] and its message starts with the JSON path
//! of the bad field, e.g. `ipam.ranges[0][0].subnet: "10.1.0.0/33" is not a valid CIDR`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use minik_shared::cni::{CniError, Route};
use serde_json::{Map, Value};

use super::addr;

/// Where allocations live when `dataDir` is not set (host-local's default).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The keys of the `ipam` object.
const IPAM_KEYS: &[&str] = &["type", "ranges", "subnet", "rangeStart", "rangeEnd", "gateway", "routes", "dataDir", "resolvConf"];
/// The keys of one range.
const RANGE_KEYS: &[&str] = &["subnet", "rangeStart", "rangeEnd", "gateway"];
/// The keys of one route.
const ROUTE_KEYS: &[&str] = &["dst", "gw", "mtu", "advmss", "priority", "table", "scope"];
/// The values of `type` this IPAM answers to.
const IPAM_TYPES: &[&str] = &["host-local", "cni-bridge"];

/// One range of a range set, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet; allocated addresses carry its prefix length.
    pub subnet: IpNet,
    /// The first address of the range (inclusive).
    pub range_start: IpAddr,
    /// The last address of the range (inclusive).
    pub range_end: IpAddr,
    /// The gateway returned with addresses of this range; never handed out.
    pub gateway: IpAddr,
}

impl Range {
    /// Whether `ip` lies between rangeStart and rangeEnd (gateway included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        addr::same_family(ip, self.range_start)
            && addr::to_u128(ip) >= addr::to_u128(self.range_start)
            && addr::to_u128(ip) <= addr::to_u128(self.range_end)
    }

    /// Whether `ip` may be handed out: in the range and not the gateway, network or broadcast address.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && ip != self.gateway && !addr::reserved(&self.subnet).contains(&Some(ip))
    }

    /// How many addresses of the range may be handed out (saturating for huge IPv6 ranges).
    pub fn capacity(&self) -> u128 {
        if addr::to_u128(self.range_start) > addr::to_u128(self.range_end) {
            return 0;
        }
        let span = addr::to_u128(self.range_end) - addr::to_u128(self.range_start);
        let mut excluded: Vec<IpAddr> = addr::reserved(&self.subnet)
            .into_iter()
            .flatten()
            .chain(std::iter::once(self.gateway))
            .filter(|ip| self.contains(*ip))
            .collect();
        excluded.sort();
        excluded.dedup();
        match excluded.len() as u128 {
            // span + 1 would overflow on a full /0.
            0 => span.saturating_add(1),
            n => span.saturating_sub(n - 1),
        }
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.contains(other.range_start)
            || self.contains(other.range_end)
            || other.contains(self.range_start)
            || other.contains(self.range_end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// A range set: the ranges one address per container is taken from, all of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// The ranges, walked in order.
    pub ranges: Vec<Range>,
}

impl RangeSet {
    /// The range that contains `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Whether a range of the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// Whether `ip` may be handed out from this set.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some_and(|r| r.is_allocatable(ip))
    }

    /// How many addresses the set can hand out in all (saturating).
    pub fn capacity(&self) -> u128 {
        self.ranges.iter().fold(0u128, |n, r| n.saturating_add(r.capacity()))
    }

    /// Whether any range of one set overlaps any range of the other.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges.iter().any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The validated `ipam` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// The `type` given, if any (`host-local` or `cni-bridge`).
    pub ipam_type: Option<String>,
    /// The range sets; a container gets one address from each, in this order.
    pub range_sets: Vec<RangeSet>,
    /// Routes to return with the addresses.
    pub routes: Vec<Route>,
    /// The directory holding one subdirectory of allocations per network.
    pub data_dir: PathBuf,
    /// `resolvConf`, accepted for compatibility and not used.
    pub resolv_conf: Option<String>,
}

impl IpamConfig {
    /// Parses and validates the plugin config's `ipam` object.
    pub fn from_value(ipam: &Value) -> Result<IpamConfig, CniError> {
        let obj = as_object(ipam, "ipam")?;
        check_keys(obj, "ipam", IPAM_KEYS)?;
        let ipam_type = parse_type(obj)?;
        let (range_sets, paths) = parse_range_sets(obj)?;
        check_set_overlaps(&range_sets, &paths)?;
        let routes = parse_routes(obj)?;
        let data_dir = parse_data_dir(obj)?;
        let resolv_conf = opt_str(obj, "resolvConf", "ipam")?.map(str::to_string);
        Ok(IpamConfig { ipam_type, range_sets, routes, data_dir, resolv_conf })
    }

    /// The routes to return with the addresses.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The subnets of every range, in range-set order, each once.
    pub fn subnets(&self) -> Vec<IpNet> {
        let mut nets: Vec<IpNet> = Vec::new();
        for r in self.range_sets.iter().flat_map(|s| &s.ranges) {
            if !nets.contains(&r.subnet) {
                nets.push(r.subnet);
            }
        }
        nets
    }
}

/// The known key that `key` probably misspells, if it is not itself known: the closest
/// key whose case-insensitive edit distance (insertions, deletions, substitutions and
/// swaps of neighbours) is at most 2, or at most 1 for keys of up to 4 letters. A key
/// that differs from a known one only in case (`datadir`) is a near miss too.
///
/// Public so the plugin's top-level config can apply the same rule to its own keys:
/// `near_miss("isGatway", &["isGateway", "ipMasq"]) == Some("isGateway")`.
pub fn near_miss(key: &str, known: &[&'static str]) -> Option<&'static str> {
    if known.contains(&key) {
        return None;
    }
    let lower = key.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= if k.chars().count() <= 4 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Rejects any key of `obj` that is a near miss of one of `known` (see [`near_miss`]),
/// naming both: `ipam.rangeStrat: unknown key; did you mean "rangeStart"?`. Other unknown
/// keys pass. Public for the plugin's top-level config too.
pub fn check_keys(obj: &Map<String, Value>, path: &str, known: &[&'static str]) -> Result<(), CniError> {
    for key in obj.keys() {
        if let Some(k) = near_miss(key, known) {
            return Err(CniError::invalid_config(format!("{path}.{key}: unknown key; did you mean {k:?}?")));
        }
    }
    Ok(())
}

/// Optimal-string-alignment distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// A JSON type's name, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, CniError> {
    if v.is_null() && path == "ipam" {
        return Err(CniError::invalid_config(
            "ipam: missing; cni-bridge needs an ipam object such as {\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.244.1.0/24\"}]]}",
        ));
    }
    v.as_object().ok_or_else(|| CniError::invalid_config(format!("{path}: expected an object, got {}", kind(v))))
}

fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, CniError> {
    v.as_array().ok_or_else(|| CniError::invalid_config(format!("{path}: expected a list, got {}", kind(v))))
}

/// The string at `obj[key]`, if present; `path` is the object's path.
fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, CniError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(CniError::invalid_config(format!("{path}.{key}: expected a string, got {}", kind(v)))),
    }
}

fn parse_type(obj: &Map<String, Value>) -> Result<Option<String>, CniError> {
    let Some(t) = opt_str(obj, "type", "ipam")? else {
        return Ok(None);
    };
    if !IPAM_TYPES.contains(&t) {
        return Err(CniError::invalid_config(format!(
            "ipam.type: {t:?} is not supported; cni-bridge has a built-in host-local IPAM: set \"host-local\" or leave type out"
        )));
    }
    Ok(Some(t.to_string()))
}

/// The legacy range (if `subnet` is in `ipam`) followed by `ranges`, with their JSON paths.
fn parse_range_sets(obj: &Map<String, Value>) -> Result<(Vec<RangeSet>, Vec<String>), CniError> {
    let mut sets = Vec::new();
    let mut paths = Vec::new();
    if obj.contains_key("subnet") {
        sets.push(RangeSet { ranges: vec![parse_range(obj, "ipam")?] });
        paths.push("ipam".to_string());
    } else if let Some(k) = ["rangeStart", "rangeEnd", "gateway"].into_iter().find(|k| obj.contains_key(*k)) {
        return Err(CniError::invalid_config(format!(
            "ipam.{k}: set only together with ipam.subnet (the legacy single-range form); put it in a range of ipam.ranges instead"
        )));
    }
    if let Some(v) = obj.get("ranges") {
        for (i, set) in as_array(v, "ipam.ranges")?.iter().enumerate() {
            let path = format!("ipam.ranges[{i}]");
            sets.push(parse_range_set(set, &path)?);
            paths.push(path);
        }
    }
    if sets.is_empty() {
        return Err(CniError::invalid_config(
            "ipam: no addresses to allocate: set ipam.ranges (e.g. [[{\"subnet\":\"10.244.1.0/24\"}]]) or ipam.subnet",
        ));
    }
    Ok((sets, paths))
}

fn parse_range_set(v: &Value, path: &str) -> Result<RangeSet, CniError> {
    let items = as_array(v, path)?;
    if items.is_empty() {
        return Err(CniError::invalid_config(format!("{path}: empty range set; give at least one range with a subnet")));
    }
    let mut ranges: Vec<Range> = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let rpath = format!("{path}[{j}]");
        let r = parse_range(as_object(item, &rpath)?, &rpath)?;
        check_against_set(&r, &rpath, &ranges, path)?;
        ranges.push(r);
    }
    Ok(RangeSet { ranges })
}

/// A range must be of the set's family and must not overlap the ranges before it.
fn check_against_set(r: &Range, rpath: &str, earlier: &[Range], set_path: &str) -> Result<(), CniError> {
    for (k, other) in earlier.iter().enumerate() {
        if !addr::same_family(r.range_start, other.range_start) {
            return Err(CniError::invalid_config(format!(
                "{rpath}.subnet: {} is {} but {set_path}[{k}] is {}; a range set holds one family, put the other in its own range set",
                r.subnet,
                addr::family(r.range_start),
                addr::family(other.range_start)
            )));
        }
        if r.overlaps(other) {
            return Err(CniError::invalid_config(format!(
                "{rpath}: range {r} overlaps {set_path}[{k}] ({other}); ranges of a set must be disjoint"
            )));
        }
    }
    Ok(())
}

fn check_set_overlaps(sets: &[RangeSet], paths: &[String]) -> Result<(), CniError> {
    for (i, a) in sets.iter().enumerate() {
        for (j, b) in sets.iter().enumerate().take(i) {
            if a.overlaps(b) {
                return Err(CniError::invalid_config(format!(
                    "{}: range set {a} overlaps range set {} ({b}); range sets must be disjoint",
                    paths[i], paths[j]
                )));
            }
        }
    }
    Ok(())
}

/// One range; `path` is the path of the object holding `subnet` & co.
fn parse_range(obj: &Map<String, Value>, path: &str) -> Result<Range, CniError> {
    if path != "ipam" {
        check_keys(obj, path, RANGE_KEYS)?;
    }
    let subnet = parse_subnet(obj, path)?;
    let field = |key: &str| -> Result<Option<IpAddr>, CniError> {
        match opt_str(obj, key, path)? {
            None => Ok(None),
            Some(s) => parse_ip_in(s, &format!("{path}.{key}"), &subnet).map(Some),
        }
    };
    let (gateway, range_start, range_end) = (field("gateway")?, field("rangeStart")?, field("rangeEnd")?);
    let point_to_point = subnet.prefix_len() + 1 == subnet.max_prefix_len();
    let gateway = gateway.unwrap_or_else(|| addr::nth(&subnet, 1));
    if addr::reserved(&subnet).contains(&Some(gateway)) {
        return Err(CniError::invalid_config(format!(
            "{path}.gateway: {gateway} is the network or broadcast address of {subnet}; pick a host address"
        )));
    }
    let range_start = range_start.unwrap_or_else(|| addr::nth(&subnet, u128::from(!point_to_point)));
    let range_end = range_end.unwrap_or_else(|| default_end(&subnet));
    if addr::to_u128(range_start) > addr::to_u128(range_end) {
        return Err(CniError::invalid_config(format!(
            "{path}.rangeStart: {range_start} is after rangeEnd {range_end}; rangeStart must not exceed rangeEnd"
        )));
    }
    let r = Range { subnet, range_start, range_end, gateway };
    if r.capacity() == 0 {
        return Err(CniError::invalid_config(format!(
            "{path}: range {r} holds no address to hand out (the gateway {gateway} and the network and broadcast addresses are never handed out); widen it"
        )));
    }
    Ok(r)
}

/// The default rangeEnd: broadcast - 1 for IPv4, the last address for IPv6 and /31.
fn default_end(subnet: &IpNet) -> IpAddr {
    let last = addr::last(subnet);
    match addr::reserved(subnet) {
        [_, Some(broadcast)] => addr::from_u128(addr::to_u128(broadcast) - 1, broadcast),
        _ => last,
    }
}

fn parse_subnet(obj: &Map<String, Value>, path: &str) -> Result<IpNet, CniError> {
    let p = format!("{path}.subnet");
    let s = opt_str(obj, "subnet", path)?.ok_or_else(|| {
        CniError::invalid_config(format!("{p}: missing; every range needs a subnet such as \"10.244.1.0/24\""))
    })?;
    let net: IpNet = s.trim().parse().map_err(|_| {
        CniError::invalid_config(format!("{p}: {s:?} is not a valid CIDR; expected address/prefix such as \"10.244.1.0/24\""))
    })?;
    let net = canonical_net(net);
    if net.trunc() != net {
        return Err(CniError::invalid_config(format!(
            "{p}: {s:?} has host bits set (rejected, not normalised); the network address is \"{}\"",
            net.trunc()
        )));
    }
    if net.prefix_len() == net.max_prefix_len() {
        return Err(CniError::invalid_config(format!(
            "{p}: {s:?} holds a single address, too small to allocate from; use a /31 (or /127) or larger"
        )));
    }
    Ok(net)
}

/// An IPv4-mapped IPv6 subnet (`::ffff:10.0.0.0/104`) as the IPv4 subnet it stands for.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// An address that must lie inside `subnet`.
fn parse_ip_in(s: &str, path: &str, subnet: &IpNet) -> Result<IpAddr, CniError> {
    let ip = parse_ip(s, path)?;
    if !addr::same_family(ip, subnet.network()) {
        return Err(CniError::invalid_config(format!(
            "{path}: {ip} is {} but the subnet {subnet} is {}",
            addr::family(ip),
            addr::family(subnet.network())
        )));
    }
    if !subnet.contains(&ip) {
        return Err(CniError::invalid_config(format!("{path}: {ip} is not inside the subnet {subnet}")));
    }
    Ok(ip)
}

fn parse_ip(s: &str, path: &str) -> Result<IpAddr, CniError> {
    s.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| CniError::invalid_config(format!("{path}: {s:?} is not a valid IP address")))
}

fn parse_routes(obj: &Map<String, Value>) -> Result<Vec<Route>, CniError> {
    let Some(v) = obj.get("routes") else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::new();
    for (i, item) in as_array(v, "ipam.routes")?.iter().enumerate() {
        let path = format!("ipam.routes[{i}]");
        check_keys(as_object(item, &path)?, &path, ROUTE_KEYS)?;
        let route: Route = serde_json::from_value(item.clone()).map_err(|e| {
            CniError::invalid_config(format!("{path}: invalid route ({e}); expected {{\"dst\":\"0.0.0.0/0\",\"gw\":\"10.1.1.1\"}}"))
        })?;
        if let Some(gw) = route.gw {
            if !addr::same_family(gw, route.dst.network()) {
                return Err(CniError::invalid_config(format!(
                    "{path}.gw: {gw} is {} but dst {} is {}",
                    addr::family(gw),
                    route.dst,
                    addr::family(route.dst.network())
                )));
            }
        }
        routes.push(route);
    }
    Ok(routes)
}

fn parse_data_dir(obj: &Map<String, Value>) -> Result<PathBuf, CniError> {
    let Some(s) = opt_str(obj, "dataDir", "ipam")? else {
        return Ok(PathBuf::from(DEFAULT_DATA_DIR));
    };
    let dir = PathBuf::from(s);
    if s.is_empty() || !dir.is_absolute() {
        return Err(CniError::invalid_config(format!(
            "ipam.dataDir: {s:?} is not an absolute path; use e.g. {DEFAULT_DATA_DIR:?} (the default)"
        )));
    }
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use minik_shared::cni::codes;
    use serde_json::json;

    fn ok(v: Value) -> IpamConfig {
        IpamConfig::from_value(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    /// The error message for an invalid config (asserting the code).
    fn err(v: Value) -> String {
        let e = IpamConfig::from_value(&v).err().unwrap_or_else(|| panic!("{v} was accepted"));
        assert_eq!(e.code, codes::INVALID_CONFIG, "{e}");
        e.msg
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_of_a_v4_range() {
        let c = ok(json!({"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]]}));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cni/networks"));
        assert_eq!(c.ipam_type.as_deref(), Some("host-local"));
        let r = &c.range_sets[0].ranges[0];
        assert_eq!((r.range_start, r.range_end, r.gateway), (ip("10.244.1.1"), ip("10.244.1.254"), ip("10.244.1.1")));
        assert_eq!(r.capacity(), 253);
        assert!(!r.is_allocatable(ip("10.244.1.1")));
        assert!(r.is_allocatable(ip("10.244.1.2")));
        assert_eq!(c.range_sets[0].to_string(), "10.244.1.1-10.244.1.254");
        assert!(c.routes.is_empty());
    }

    #[test]
    fn defaults_of_v6_and_small_v4() {
        let c = ok(json!({"ranges":[[{"subnet":"fd00:1::/120"}],[{"subnet":"10.9.0.0/31"}],[{"subnet":"10.8.0.0/30"}]]}));
        let v6 = &c.range_sets[0].ranges[0];
        assert_eq!((v6.range_start, v6.range_end, v6.gateway), (ip("fd00:1::1"), ip("fd00:1::ff"), ip("fd00:1::1")));
        assert_eq!(v6.capacity(), 254);
        let p2p = &c.range_sets[1].ranges[0];
        assert_eq!((p2p.range_start, p2p.range_end, p2p.gateway), (ip("10.9.0.0"), ip("10.9.0.1"), ip("10.9.0.1")));
        assert_eq!(p2p.capacity(), 1);
        assert_eq!(c.range_sets[2].ranges[0].capacity(), 1);
        assert!(err(json!({"subnet":"10.9.0.7/32"})).starts_with("ipam.subnet: \"10.9.0.7/32\" holds a single address"));
        assert!(err(json!({"ranges":[[{"subnet":"fd00::1/128"}]]})).starts_with("ipam.ranges[0][0].subnet:"));
    }

    #[test]
    fn legacy_form_is_range_set_zero() {
        let c = ok(json!({
            "subnet":"10.1.0.0/16","rangeStart":"10.1.1.10","rangeEnd":"10.1.1.20","gateway":"10.1.0.254",
            "ranges":[[{"subnet":"fd00::/64"}]],
            "routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.1.0.254"}],
            "dataDir":"/run/ipam","resolvConf":"/etc/resolv.conf"
        }));
        assert_eq!(c.range_sets.len(), 2);
        let r = &c.range_sets[0].ranges[0];
        assert_eq!((r.range_start, r.range_end, r.gateway), (ip("10.1.1.10"), ip("10.1.1.20"), ip("10.1.0.254")));
        assert_eq!(c.range_sets[1].ranges[0].range_end, ip("fd00::ffff:ffff:ffff:ffff"));
        assert_eq!(c.routes[1], Route::new("192.168.0.0/16".parse().unwrap(), Some(ip("10.1.0.254"))));
        assert_eq!(c.data_dir, PathBuf::from("/run/ipam"));
        assert_eq!(c.resolv_conf.as_deref(), Some("/etc/resolv.conf"));
        assert_eq!(c.routes().len(), 2);
        let subnets: Vec<IpNet> = vec!["10.1.0.0/16".parse().unwrap(), "fd00::/64".parse().unwrap()];
        assert_eq!(c.subnets(), subnets);
    }

    #[test]
    fn invalid_values_name_their_path() {
        let cases = [
            (json!({"ranges":[[{"subnet":"10.1.0.0/33"}]]}), "ipam.ranges[0][0].subnet: \"10.1.0.0/33\" is not a valid CIDR"),
            (json!({"ranges":[[{"subnet":"10.1.0.0"}]]}), "ipam.ranges[0][0].subnet: \"10.1.0.0\" is not a valid CIDR"),
            (json!({"ranges":[[{"subnet":"10.1.1.5/24"}]]}), "ipam.ranges[0][0].subnet: \"10.1.1.5/24\" has host bits set"),
            (json!({"ranges":[[{}]]}), "ipam.ranges[0][0].subnet: missing"),
            (json!({"ranges":[[{"subnet":24}]]}), "ipam.ranges[0][0].subnet: expected a string, got a number"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.1.5"}]]}), "ipam.ranges[0][0].rangeStart: 10.1.1.5 is not inside the subnet 10.1.0.0/24"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","rangeEnd":"10.1.0.300"}]]}), "ipam.ranges[0][0].rangeEnd: \"10.1.0.300\" is not a valid IP address"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","rangeEnd":"fd00::1"}]]}), "ipam.ranges[0][0].rangeEnd: fd00::1 is IPv6 but the subnet 10.1.0.0/24 is IPv4"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.50","rangeEnd":"10.1.0.10"}]]}), "ipam.ranges[0][0].rangeStart: 10.1.0.50 is after rangeEnd 10.1.0.10"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","gateway":"10.2.0.1"}]]}), "ipam.ranges[0][0].gateway: 10.2.0.1 is not inside the subnet"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","gateway":"10.1.0.255"}]]}), "ipam.ranges[0][0].gateway: 10.1.0.255 is the network or broadcast address"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.1","rangeEnd":"10.1.0.1"}]]}), "ipam.ranges[0][0]: range 10.1.0.1-10.1.0.1 holds no address"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"fd00::/64"}]]}), "ipam.ranges[0][1].subnet: fd00::/64 is IPv6 but ipam.ranges[0][0] is IPv4"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.1.0.0/25"}]]}), "ipam.ranges[0][1]: range 10.1.0.1-10.1.0.126 overlaps ipam.ranges[0][0]"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.1.0.128/25"}]]}), "ipam.ranges[1]: range set 10.1.0.129-10.1.0.254 overlaps range set ipam.ranges[0]"),
            (json!({"subnet":"10.1.0.0/24","ranges":[[{"subnet":"10.1.0.0/24"}]]}), "ipam.ranges[0]: range set 10.1.0.1-10.1.0.254 overlaps range set ipam "),
            (json!({"ranges":[[]]}), "ipam.ranges[0]: empty range set"),
            (json!({"ranges":[{"subnet":"10.1.0.0/24"}]}), "ipam.ranges[0]: expected a list, got an object"),
            (json!({"ranges":[]}), "ipam: no addresses to allocate"),
            (json!({"rangeStart":"10.1.0.5"}), "ipam.rangeStart: set only together with ipam.subnet"),
            (json!({"type":"dhcp","subnet":"10.1.0.0/24"}), "ipam.type: \"dhcp\" is not supported"),
            (json!({"subnet":"10.1.0.0/24","dataDir":"state"}), "ipam.dataDir: \"state\" is not an absolute path"),
            (json!({"subnet":"10.1.0.0/24","routes":[{"dst":"0.0.0.0/0"},{"dst":"nope"}]}), "ipam.routes[1]: invalid route"),
            (json!({"subnet":"10.1.0.0/24","routes":[{"dst":"::/0","gw":"10.1.0.1"}]}), "ipam.routes[0].gw: 10.1.0.1 is IPv4 but dst ::/0 is IPv6"),
            (json!({"subnet":"10.1.0.0/24","routes":{}}), "ipam.routes: expected a list, got an object"),
            (json!("10.1.0.0/24"), "ipam: expected an object, got a string"),
            (Value::Null, "ipam: missing; cni-bridge needs an ipam object"),
        ];
        for (v, want) in cases {
            let got = err(v.clone());
            assert!(got.starts_with(want), "{v}\n got: {got}\nwant: {want}…");
        }
    }

    #[test]
    fn near_misses_are_errors_and_other_unknown_keys_pass() {
        let c = ok(json!({"subnet":"10.1.0.0/24","someVendorKey":true,"ranges":[]}));
        assert_eq!(c.range_sets.len(), 1);
        let cases = [
            (json!({"subnet":"10.1.0.0/24","rangeStrat":"10.1.0.5"}), "ipam.rangeStrat: unknown key; did you mean \"rangeStart\"?"),
            (json!({"subnet":"10.1.0.0/24","datadir":"/x"}), "ipam.datadir: unknown key; did you mean \"dataDir\"?"),
            (json!({"range":[[{"subnet":"10.1.0.0/24"}]]}), "ipam.range: unknown key; did you mean \"ranges\"?"),
            (json!({"ranges":[[{"subnet":"10.1.0.0/24","gatway":"10.1.0.1"}]]}), "ipam.ranges[0][0].gatway: unknown key; did you mean \"gateway\"?"),
            (json!({"subnet":"10.1.0.0/24","routes":[{"dts":"0.0.0.0/0"}]}), "ipam.routes[0].dts: unknown key; did you mean \"dst\"?"),
        ];
        for (v, want) in cases {
            assert_eq!(err(v), want);
        }
    }

    #[test]
    fn near_miss_thresholds() {
        assert_eq!(near_miss("rangeStart", IPAM_KEYS), None);
        assert_eq!(near_miss("RANGEEND", IPAM_KEYS), Some("rangeEnd"));
        assert_eq!(near_miss("subnte", IPAM_KEYS), Some("subnet"));
        assert_eq!(near_miss("subnetx2", IPAM_KEYS), Some("subnet"));
        assert_eq!(near_miss("subnetxyz", IPAM_KEYS), None);
        assert_eq!(near_miss("tpe", IPAM_KEYS), Some("type"));
        assert_eq!(near_miss("ty", IPAM_KEYS), None);
        assert_eq!(near_miss("ipMasq", IPAM_KEYS), None);
        assert_eq!(near_miss("isGatway", &["isGateway", "ipMasq"]), Some("isGateway"));
        assert_eq!(edit_distance("abcd", "acbd"), 1);
    }

    #[test]
    fn explicit_network_and_broadcast_are_in_range_but_never_allocatable() {
        let c = ok(json!({"subnet":"10.1.0.0/29","rangeStart":"10.1.0.0","rangeEnd":"10.1.0.7"}));
        let r = &c.range_sets[0].ranges[0];
        assert!(r.contains(ip("10.1.0.0")) && r.contains(ip("10.1.0.7")));
        assert!(!r.is_allocatable(ip("10.1.0.0")) && !r.is_allocatable(ip("10.1.0.7")) && !r.is_allocatable(ip("10.1.0.1")));
        assert_eq!(r.capacity(), 5);
        let v6 = ok(json!({"subnet":"fd00::/120","rangeStart":"fd00::"}));
        assert_eq!(v6.range_sets[0].ranges[0].capacity(), 254);
    }

    #[test]
    fn ipv4_mapped_addresses_are_canonicalised() {
        let c = ok(json!({"ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"::ffff:10.1.0.9"}]]}));
        assert_eq!(c.range_sets[0].ranges[0].range_start, ip("10.1.0.9"));
    }
}
