//! IP addresses written as one DNS label, as Kubernetes names pods and hostname-less
//! endpoints: `10-244-1-5` for 10.244.1.5, `fd00--1` for fd00::1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `10.244.1.5` → `10-244-1-5`; `fd00::1` → `fd00--1`.
pub fn dashed_ip(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The inverse of [`dashed_ip`]: `10-244-1-5` → 10.244.1.5 (four dashed decimal parts),
/// else an IPv6 address with `-` for `:`; `None` when the label is neither.
pub fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.split('-').count() == 4 {
        if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
            return Some(IpAddr::V4(v4));
        }
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for ip in ["10.244.1.5", "fd00::1", "2001:db8::a:b"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(parse_dashed_ip(&dashed_ip(ip)), Some(ip));
        }
        assert_eq!(dashed_ip("10.244.1.5".parse().expect("ip")), "10-244-1-5");
    }

    #[test]
    fn rejects_non_addresses() {
        for label in ["web", "10-244-1", "10-244-1-500", "a-b-c-d", ""] {
            assert_eq!(parse_dashed_ip(label), None, "{label}");
        }
    }
}
