//! The CNI result: interfaces, IPs, routes and DNS, and its conversion between spec versions.
//!
//! minik keeps one internal form (the 1.1.0 shape) and converts when printing: results
//! before 1.0.0 carry a `version` field on each IP, and the route fields added in 1.1.0
//! (`mtu`, `advmss`, `priority`, `table`, `scope`) are dropped for older versions.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CniError;
use super::version::CniVersion;

/// One interface created or touched by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Its hardware address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Its MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for a container interface; absent for host interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One IP address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length, `10.244.1.5/24`.
    pub address: IpNet,
    /// The default gateway for this subnet, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The index into `interfaces` of the interface that holds the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route to install in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination, `0.0.0.0/0` for a default route.
    pub dst: IpNet,
    /// The next hop; absent means the subnet gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Route metric (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Route scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route with only a destination and an optional gateway.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

/// DNS settings for the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// A CNI result in minik's internal (1.1.0) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CniResult {
    /// The interfaces, host and container side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// The IP addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// Reads a result (e.g. a `prevResult`) of any supported version.
    ///
    /// The per-IP `version` field of results before 1.0.0 is ignored: the address says it.
    pub fn from_json(value: &Value) -> Result<Self, CniError> {
        let version = value.get("cniVersion").and_then(Value::as_str).unwrap_or("1.1.0");
        let _: CniVersion = version.parse()?;
        serde_json::from_value(value.clone())
            .map_err(|e| CniError::decode("failed to decode the CNI result").with_details(e))
    }

    /// Renders the result for the given spec version.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("cniVersion".into(), Value::String(version.as_str().into()));
            if version.ips_carry_version() {
                if let Some(Value::Array(ips)) = map.get_mut("ips") {
                    for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                        let fam = if cfg.address.addr().is_ipv4() { "4" } else { "6" };
                        if let Value::Object(o) = ip {
                            o.insert("version".into(), Value::String(fam.into()));
                        }
                    }
                }
            }
            if version < CniVersion::V1_1_0 {
                if let Some(Value::Array(routes)) = map.get_mut("routes") {
                    for r in routes.iter_mut().filter_map(Value::as_object_mut) {
                        r.retain(|k, _| k == "dst" || k == "gw");
                    }
                }
                if let Some(Value::Array(ifs)) = map.get_mut("interfaces") {
                    for i in ifs.iter_mut().filter_map(Value::as_object_mut) {
                        i.remove("mtu");
                    }
                }
            }
        }
        v
    }

    /// The index of the interface named `name` inside `sandbox`, if the result has it.
    pub fn container_interface(&self, name: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name && !i.sandbox.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:f4:01:05".into(),
                mtu: Some(1500),
                sandbox: "/run/netns/p".into(),
            }],
            ips: vec![IpConfig {
                address: "10.244.1.5/24".parse().expect("literal"),
                gateway: Some("10.244.1.1".parse().expect("literal")),
                interface: Some(0),
            }],
            routes: vec![Route { mtu: Some(1400), ..Route::new("0.0.0.0/0".parse().expect("literal"), None) }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn old_versions_carry_ip_version_and_drop_new_fields() {
        let v = sample().to_json(CniVersion::V0_4_0);
        assert_eq!(v["ips"][0]["version"], json!("4"));
        assert_eq!(v["routes"][0], json!({"dst":"0.0.0.0/0"}));
        assert!(v["interfaces"][0].get("mtu").is_none());
        let v = sample().to_json(CniVersion::V1_1_0);
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["routes"][0]["mtu"], json!(1400));
        assert_eq!(v["cniVersion"], json!("1.1.0"));
    }

    #[test]
    fn reads_results_of_every_version() {
        for ver in CniVersion::ALL {
            let back = CniResult::from_json(&sample().to_json(ver)).ok();
            assert_eq!(back.map(|r| r.ips), Some(sample().ips));
        }
    }
}
