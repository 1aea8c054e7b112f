//! The plugin configuration (stdin), parsed and validated field by field.
//!
//! Every bad value is an `invalid config` (code 7) error naming the field. Keys the plugin
//! does not know are accepted (runtimes add their own, as the spec allows), but a key that
//! is a near miss of a known one (`isGatway`) is reported instead of silently ignored.

use std::net::IpAddr;

use ipnet::IpNet;
use minik_shared::cni::{conf::VALID_ATTACHMENTS_KEY, Attachment, CniError, CniVersion, Dns};
use minik_shared::node_routes::NodeRoute;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ipam::config::{near_miss, IpamConfig};

/// The bridge used when the config names none.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// Every top-level key this plugin understands.
const KNOWN_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "args",
    "prevResult",
    "runtimeConfig",
    "capabilities",
    "bridge",
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "hairpinMode",
    "mtu",
    "promiscMode",
    "ipam",
    "dns",
    "nodeRoutes",
    "clusterCIDRs",
    "disableCheck",
    "disableGC",
    VALID_ATTACHMENTS_KEY,
];

/// cni-bridge's validated configuration.
#[derive(Debug, Clone)]
pub struct BridgeConf {
    /// The version the result must be in.
    pub cni_version: CniVersion,
    /// The network name (keys the IPAM store and the masquerade rules).
    pub name: String,
    /// The bridge device name.
    pub bridge: String,
    /// Give the bridge the gateway address of each subnet.
    pub is_gateway: bool,
    /// Install a default route via the gateway in the container (implies `is_gateway`).
    pub is_default_gateway: bool,
    /// Masquerade pod traffic that leaves the cluster's pod CIDRs.
    pub ip_masq: bool,
    /// Let a pod reach itself through the bridge (hairpin on its port).
    pub hairpin_mode: bool,
    /// MTU of the bridge and veth pair; `None` = the kernel's default.
    pub mtu: Option<u32>,
    /// Put the bridge in promiscuous mode.
    pub promisc_mode: bool,
    /// The built-in IPAM's settings.
    pub ipam: IpamConfig,
    /// DNS settings passed through to the result.
    pub dns: Dns,
    /// Routes to other nodes' pod CIDRs, installed on the node.
    pub node_routes: Vec<NodeRoute>,
    /// The whole cluster's pod CIDRs (e.g. 10.244.0.0/16): never masqueraded, even for
    /// nodes that join after a pod was attached.
    pub cluster_cidrs: Vec<IpNet>,
    /// The previous plugin's result (CHECK and DEL get the cached ADD result).
    pub prev_result: Option<Value>,
    /// IPs the runtime asks for (`runtimeConfig.ips`, `args.cni.ips`).
    pub requested_ips: Vec<IpAddr>,
    /// GC's attachments still in use.
    pub valid_attachments: Option<Vec<Attachment>>,
}

fn field<T: DeserializeOwned>(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<T>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| CniError::invalid_config(format!("{key}: expected {what}, got {v}")).with_details(e)),
    }
}

impl BridgeConf {
    /// Parses stdin. The `ipam` section is parsed only for verbs that use it (not VERSION).
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(stdin)
            .map_err(|e| CniError::decode("network configuration on stdin is not valid JSON").with_details(e))?;
        let obj = v.as_object().ok_or_else(|| CniError::decode("network configuration must be a JSON object"))?;
        check_keys(obj)?;

        let version: String = field(obj, "cniVersion", "a version string")?
            .ok_or_else(|| CniError::invalid_config("cniVersion: missing; set it to one of the versions VERSION reports"))?;
        let cni_version: CniVersion = version.parse()?;
        let name: String = field(obj, "name", "a string")?.unwrap_or_default();
        if name.is_empty() {
            return Err(CniError::invalid_config("name: missing or empty; every network needs a name"));
        }
        if name.contains('/') || name == "." || name == ".." {
            return Err(CniError::invalid_config(format!("name: {name:?} must not contain '/' or be '.'/'..'")));
        }
        let bridge: String = field(obj, "bridge", "a string")?.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        minik_shared::cni::env::valid_ifname(&bridge)
            .map_err(|why| CniError::invalid_config(format!("bridge: {bridge:?} is not a valid interface name: {why}")))?;
        let is_default_gateway = field(obj, "isDefaultGateway", "true or false")?.unwrap_or(false);
        let is_gateway = field(obj, "isGateway", "true or false")?.unwrap_or(false) || is_default_gateway;
        let hairpin_mode = field(obj, "hairpinMode", "true or false")?.unwrap_or(false);
        let promisc_mode = field(obj, "promiscMode", "true or false")?.unwrap_or(false);
        if hairpin_mode && promisc_mode {
            return Err(CniError::invalid_config(
                "hairpinMode and promiscMode: cannot both be true; choose one way for a pod to reach itself",
            ));
        }
        let mtu: Option<u32> = field(obj, "mtu", "an integer MTU")?;
        let mtu = match mtu {
            None | Some(0) => None,
            Some(m) if (68..=65535).contains(&m) => Some(m),
            Some(m) => return Err(CniError::invalid_config(format!("mtu: {m} is outside 68..65535"))),
        };
        let ipam_value = obj.get("ipam").cloned().unwrap_or(Value::Null);
        let ipam = IpamConfig::from_value(&ipam_value)?;
        let dns: Dns = field(obj, "dns", "an object with nameservers, domain, search, options")?.unwrap_or_default();
        let node_routes: Vec<NodeRoute> =
            field(obj, "nodeRoutes", "a list of {\"dst\": CIDR, \"via\": IP}")?.unwrap_or_default();
        for (i, r) in node_routes.iter().enumerate() {
            if r.dst.addr().is_ipv4() != r.via.is_ipv4() {
                return Err(CniError::invalid_config(format!(
                    "nodeRoutes[{i}]: dst {} and via {} are of different IP families",
                    r.dst, r.via
                )));
            }
            if r.dst.trunc() != r.dst {
                return Err(CniError::invalid_config(format!(
                    "nodeRoutes[{i}].dst: {} has host bits set; did you mean {}?",
                    r.dst,
                    r.dst.trunc()
                )));
            }
        }
        let cluster_cidrs: Vec<IpNet> = field(obj, "clusterCIDRs", "a list of CIDRs")?.unwrap_or_default();
        for (i, c) in cluster_cidrs.iter().enumerate() {
            if c.trunc() != *c {
                return Err(CniError::invalid_config(format!(
                    "clusterCIDRs[{i}]: {c} has host bits set; did you mean {}?",
                    c.trunc()
                )));
            }
        }
        let prev_result = obj.get("prevResult").filter(|v| !v.is_null()).cloned();
        let requested_ips = requested_ips(obj)?;
        let valid_attachments: Option<Vec<Attachment>> =
            field(obj, VALID_ATTACHMENTS_KEY, "a list of {\"containerID\", \"ifname\"}")?;
        Ok(BridgeConf {
            cni_version,
            name,
            bridge,
            is_gateway,
            is_default_gateway,
            ip_masq: field(obj, "ipMasq", "true or false")?.unwrap_or(false),
            hairpin_mode,
            mtu,
            promisc_mode,
            ipam,
            dns,
            node_routes,
            cluster_cidrs,
            prev_result,
            requested_ips,
            valid_attachments,
        })
    }

    /// The destinations that are pod-to-pod traffic and so never masqueraded: the local
    /// subnets and every other node's pod CIDR.
    pub fn cluster_destinations(&self) -> Vec<IpNet> {
        let mut nets = self.ipam.subnets();
        nets.extend(self.node_routes.iter().map(|r| r.dst));
        nets.extend(self.cluster_cidrs.iter().copied());
        IpNet::aggregate(&nets)
    }
}

/// Rejects near misses of known keys (at the top level; `ipam` checks its own).
fn check_keys(obj: &Map<String, Value>) -> Result<(), CniError> {
    for key in obj.keys() {
        if KNOWN_KEYS.contains(&key.as_str()) {
            continue;
        }
        if let Some(meant) = near_miss(key, KNOWN_KEYS) {
            return Err(CniError::invalid_config(format!("{key}: unknown key; did you mean {meant:?}?")));
        }
    }
    Ok(())
}

/// IPs asked for through `runtimeConfig.ips` (capability "ips") or `args.cni.ips`.
fn requested_ips(obj: &Map<String, Value>) -> Result<Vec<IpAddr>, CniError> {
    let sources = [
        ("runtimeConfig.ips", obj.get("runtimeConfig").and_then(|r| r.get("ips"))),
        ("args.cni.ips", obj.get("args").and_then(|a| a.get("cni")).and_then(|c| c.get("ips"))),
    ];
    let mut out = Vec::new();
    for (path, v) in sources {
        let Some(list) = v.and_then(Value::as_array) else { continue };
        for (i, item) in list.iter().enumerate() {
            let text = item.as_str().unwrap_or_default();
            // host-local accepts both "10.1.1.5" and "10.1.1.5/24".
            let ip = text
                .parse::<IpAddr>()
                .or_else(|_| text.parse::<IpNet>().map(|n| n.addr()))
                .map_err(|_| CniError::invalid_config(format!("{path}[{i}]: {item} is not an IP address")))?;
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik_shared::cni::codes;

    fn conf(extra: &str) -> Result<BridgeConf, CniError> {
        let s = format!(
            r#"{{"cniVersion":"1.1.0","name":"net1","type":"cni-bridge",
               "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.244.1.0/24"}}]]}}{extra}}}"#
        );
        BridgeConf::parse(s.as_bytes())
    }

    fn msg(r: Result<BridgeConf, CniError>) -> (u32, String) {
        match r {
            Ok(_) => (0, String::new()),
            Err(e) => (e.code, e.msg),
        }
    }

    #[test]
    fn defaults() {
        let c = conf("").expect("valid");
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && c.mtu.is_none());
        let c = conf(r#","isDefaultGateway":true"#).expect("valid");
        assert!(c.is_gateway, "isDefaultGateway implies isGateway");
    }

    #[test]
    fn near_miss_is_reported_unknown_is_accepted() {
        let (code, m) = msg(conf(r#","isGatway":true"#));
        assert_eq!(code, codes::INVALID_CONFIG);
        assert!(m.contains("isGatway") && m.contains("isGateway"), "{m}");
        assert!(conf(r#","io.kubernetes.cri/podName":"x","someRuntimeKey":1"#).is_ok());
    }

    #[test]
    fn bad_values_name_their_field() {
        for (extra, field) in [
            (r#","mtu":10"#, "mtu"),
            (r#","mtu":"big""#, "mtu"),
            (r#","ipMasq":"yes""#, "ipMasq"),
            (r#","bridge":"this-name-is-far-too-long""#, "bridge"),
            (r#","nodeRoutes":[{"dst":"10.244.2.0/24","via":"fd00::1"}]"#, "nodeRoutes[0]"),
            (r#","nodeRoutes":[{"dst":"10.244.2.1/24","via":"192.168.50.2"}]"#, "nodeRoutes[0].dst"),
            (r#","hairpinMode":true,"promiscMode":true"#, "hairpinMode"),
            (r#","runtimeConfig":{"ips":["nope"]}"#, "runtimeConfig.ips[0]"),
        ] {
            let (code, m) = msg(conf(extra));
            assert_eq!(code, codes::INVALID_CONFIG, "{extra}");
            assert!(m.starts_with(field), "{extra}: {m}");
        }
    }

    #[test]
    fn version_and_json_errors_have_their_codes() {
        let e = BridgeConf::parse(br#"{"cniVersion":"0.1.0","name":"n"}"#).err().map(|e| e.code);
        assert_eq!(e, Some(codes::INCOMPATIBLE_VERSION));
        let e = BridgeConf::parse(b"{not json").err().map(|e| e.code);
        assert_eq!(e, Some(codes::DECODE));
    }

    #[test]
    fn cluster_destinations_merge_local_and_node_cidrs() {
        let c = conf(r#","nodeRoutes":[{"dst":"10.244.2.0/24","via":"192.168.50.2"}]"#).expect("valid");
        let d: Vec<String> = c.cluster_destinations().iter().map(|n| n.to_string()).collect();
        assert_eq!(d, vec!["10.244.1.0/24", "10.244.2.0/24"]);
    }

    #[test]
    fn cluster_cidrs_cover_nodes_not_yet_routed() {
        let c = conf(r#","clusterCIDRs":["10.244.0.0/16"]"#).expect("valid");
        let d: Vec<String> = c.cluster_destinations().iter().map(|n| n.to_string()).collect();
        assert_eq!(d, vec!["10.244.0.0/16"]);
        let e = conf(r#","clusterCIDRs":["10.244.0.1/16"]"#).expect_err("host bits");
        assert!(e.msg.contains("clusterCIDRs[0]"), "{}", e.msg);
    }
}
