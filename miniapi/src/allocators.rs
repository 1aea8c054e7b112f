//! ClusterIP and NodePort allocators.
//!
//! The allocation state is the set of Services in the store: an address or port is
//! taken exactly when a stored Service holds it, so allocations survive restarts,
//! can never leak, and are released when the Service is deleted or changed. The
//! registry holds [`Allocators::guard`] across "compute used set → allocate →
//! commit", which makes concurrent Service writes race-free.
//!
//! Reserved: the network and broadcast addresses, the first address (the
//! `kubernetes` Service in `default`) and the tenth (cluster DNS, allocated only
//! when asked for explicitly).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use ipnet::Ipv4Net;
use rand::Rng;
use serde_json::Value;

/// Addresses and ports held by existing Services.
#[derive(Debug, Default, Clone)]
pub struct InUse {
    /// ClusterIPs in use.
    pub ips: HashSet<Ipv4Addr>,
    /// NodePorts in use.
    pub ports: HashSet<u16>,
}

impl InUse {
    /// Collect from stored Service objects, skipping the one at `except_key`'s object
    /// (given by namespace/name) so an update does not collide with itself.
    pub fn from_services<'a>(
        services: impl Iterator<Item = &'a Value>,
        except: Option<(&str, &str)>,
    ) -> Self {
        let mut u = InUse::default();
        for svc in services {
            let ns = svc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = svc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if except == Some((ns, name)) {
                continue;
            }
            if let Some(ips) = svc.pointer("/spec/clusterIPs").and_then(Value::as_array) {
                for ip in ips.iter().filter_map(Value::as_str) {
                    if let Ok(a) = ip.parse() {
                        u.ips.insert(a);
                    }
                }
            }
            if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
                if let Ok(a) = ip.parse() {
                    u.ips.insert(a);
                }
            }
            if let Some(ports) = svc.pointer("/spec/ports").and_then(Value::as_array) {
                for p in ports {
                    if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                        u.ports.insert(np as u16);
                    }
                }
            }
        }
        u
    }
}

/// The configured ranges, plus the lock that serialises allocation.
#[derive(Debug)]
pub struct Allocators {
    range: Ipv4Net,
    ports: (u16, u16),
    lock: Mutex<()>,
}

/// Why an explicit request was refused (the detail of a 422 cause).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Outside the range.
    #[error("provided {what} is not in the valid range. The range of valid {what}s is {range}")]
    OutOfRange {
        /// `IP` or `port`.
        what: &'static str,
        /// The range, rendered.
        range: String,
    },
    /// Taken by another Service.
    #[error("provided {0} is already allocated")]
    Allocated(&'static str),
    /// Nothing left.
    #[error("range is full")]
    Full,
}

impl Allocators {
    /// Allocators for a ClusterIP range and NodePort range.
    pub fn new(range: Ipv4Net, ports: (u16, u16)) -> Self {
        Allocators {
            range,
            ports,
            lock: Mutex::new(()),
        }
    }

    /// Hold this across computing [`InUse`], allocating and committing.
    pub fn guard(&self) -> MutexGuard<'_, ()> {
        match self.lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The ClusterIP range.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The NodePort range.
    pub fn port_range(&self) -> (u16, u16) {
        self.ports
    }

    /// The n-th address of the range.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.range.network()).wrapping_add(n))
    }

    /// The `kubernetes` Service address (first usable).
    pub fn kubernetes_ip(&self) -> Ipv4Addr {
        self.nth(1)
    }

    /// The cluster DNS address (tenth).
    pub fn dns_ip(&self) -> Ipv4Addr {
        self.nth(10)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.range.prefix_len())).min(31)
    }

    /// Check an explicitly requested ClusterIP.
    pub fn check_ip(&self, ip: Ipv4Addr, used: &InUse) -> Result<(), AllocError> {
        let size = self.size();
        let off = u32::from(ip).wrapping_sub(u32::from(self.range.network()));
        if !self.range.contains(&ip) || off == 0 || off >= size - 1 {
            return Err(AllocError::OutOfRange {
                what: "IP",
                range: self.range.to_string(),
            });
        }
        if used.ips.contains(&ip) {
            return Err(AllocError::Allocated("IP"));
        }
        Ok(())
    }

    /// Pick a free ClusterIP (never the reserved first and tenth addresses).
    pub fn allocate_ip(&self, used: &InUse) -> Result<Ipv4Addr, AllocError> {
        let size = self.size();
        if size < 4 {
            return Err(AllocError::Full);
        }
        let reserved = |off: u32| off == 0 || off == 1 || off == 10 || off >= size - 1;
        let low = if size > 64 { 16 } else { 2 };
        let mut rng = rand::rng();
        for _ in 0..64 {
            let off = rng.random_range(low..size - 1);
            let ip = self.nth(off);
            if !reserved(off) && !used.ips.contains(&ip) {
                return Ok(ip);
            }
        }
        (2..size - 1)
            .filter(|o| !reserved(*o))
            .map(|o| self.nth(o))
            .find(|ip| !used.ips.contains(ip))
            .ok_or(AllocError::Full)
    }

    /// Check an explicitly requested NodePort.
    pub fn check_port(&self, port: i64, used: &InUse) -> Result<(), AllocError> {
        if port < i64::from(self.ports.0) || port > i64::from(self.ports.1) {
            return Err(AllocError::OutOfRange {
                what: "port",
                range: format!("{}-{}", self.ports.0, self.ports.1),
            });
        }
        if used.ports.contains(&(port as u16)) {
            return Err(AllocError::Allocated("port"));
        }
        Ok(())
    }

    /// Pick a free NodePort.
    pub fn allocate_port(&self, used: &InUse) -> Result<u16, AllocError> {
        let (lo, hi) = self.ports;
        let mut rng = rand::rng();
        for _ in 0..64 {
            let p = rng.random_range(lo..=hi);
            if !used.ports.contains(&p) {
                return Ok(p);
            }
        }
        (lo..=hi)
            .find(|p| !used.ports.contains(p))
            .ok_or(AllocError::Full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alloc() -> Allocators {
        let range: Ipv4Net = "10.96.0.0/12".parse().expect("cidr");
        Allocators::new(range, (30000, 32767))
    }

    #[test]
    fn ips_are_in_range_and_unique() {
        let a = alloc();
        assert_eq!(a.kubernetes_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(a.dns_ip(), Ipv4Addr::new(10, 96, 0, 10));
        let mut used = InUse::default();
        for _ in 0..100 {
            let ip = a.allocate_ip(&used).expect("ip");
            assert!(a.range().contains(&ip));
            assert!(used.ips.insert(ip));
        }
        assert!(matches!(
            a.check_ip(Ipv4Addr::new(1, 2, 3, 4), &used),
            Err(AllocError::OutOfRange { .. })
        ));
    }

    #[test]
    fn ports_from_services() {
        let a = alloc();
        let svc = json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80, "nodePort": 30001}]}});
        let used = InUse::from_services([&svc].into_iter(), None);
        assert_eq!(
            a.check_port(30001, &used),
            Err(AllocError::Allocated("port"))
        );
        assert_eq!(
            a.check_port(30001, &used).map_err(|e| e.to_string()),
            Err("provided port is already allocated".to_string())
        );
        assert!(a.check_port(80, &used).is_err());
        let except = InUse::from_services([&svc].into_iter(), Some(("n", "s")));
        assert!(a.check_port(30001, &except).is_ok());
        assert!(!used.ports.contains(&a.allocate_port(&used).expect("port")));
    }
}
