//! Address arithmetic shared by the config and the allocator: IPv4 and IPv6 addresses as
//! `u128` so ranges of either family walk the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address as a number (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The number `v` as an address of the same family as `like`; IPv4 keeps the low 32 bits.
pub(crate) fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        // Truncation is intended: callers only pass values taken from IPv4 addresses.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((v & u128::from(u32::MAX)) as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// Whether both addresses are of one family.
pub(crate) fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// The family's name, for messages.
pub(crate) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// The address `n` above the subnet's network address (no overflow check: `n` must fit).
pub(crate) fn nth(subnet: &IpNet, n: u128) -> IpAddr {
    from_u128(to_u128(subnet.network()).wrapping_add(n), subnet.network())
}

/// The subnet's last address (the broadcast address for IPv4).
pub(crate) fn last(subnet: &IpNet) -> IpAddr {
    subnet.broadcast()
}

/// The addresses of a subnet that are never handed out whatever the range says: the
/// network address (IPv4 up to /30, IPv6 up to /126: the subnet-router anycast address)
/// and the IPv4 broadcast address. Point-to-point /31 and /127 subnets reserve nothing
/// (RFC 3021).
pub(crate) fn reserved(subnet: &IpNet) -> [Option<IpAddr>; 2] {
    let point_to_point = subnet.prefix_len() + 1 >= subnet.max_prefix_len();
    if point_to_point {
        return [None, None];
    }
    match subnet {
        IpNet::V4(_) => [Some(subnet.network()), Some(subnet.broadcast())],
        IpNet::V6(_) => [Some(subnet.network()), None],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips_both_families() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(from_u128(to_u128(v4) + 1, v4).to_string(), "10.1.2.4");
        let v6: IpAddr = "fd00::ffff".parse().unwrap();
        assert_eq!(from_u128(to_u128(v6) + 1, v6).to_string(), "fd00::1:0");
    }

    #[test]
    fn reserved_addresses_per_family_and_size() {
        let s = net("10.0.0.0/24");
        assert_eq!(reserved(&s), [Some(nth(&s, 0)), Some(nth(&s, 255))]);
        assert_eq!(reserved(&net("10.0.0.0/31")), [None, None]);
        assert_eq!(reserved(&net("fd00::/64")), [Some(net("fd00::/64").network()), None]);
        assert_eq!(reserved(&net("fd00::/127")), [None, None]);
        assert_eq!(last(&net("fd00::/120")).to_string(), "fd00::ff");
    }
}
