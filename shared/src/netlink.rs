//! rtnetlink connections bound to a network namespace, and the few link, address and
//! route operations minik's parts need, with "already there" and "already gone" folded
//! into `Ok` where the callers want idempotence.
//!
//! rtnetlink is the maintained async netlink client of the rust-netlink project; a
//! netlink socket belongs to the namespace it was *created* in, so [`connect_in`] enters
//! the namespace only for the socket call and the handle then works from any thread.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::netns::{NetNs, NetnsError};

/// A failed netlink operation, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Request {
        /// What was being done, e.g. "add address 10.1.1.2/24 to eth0".
        what: String,
        /// The netlink error.
        source: rtnetlink::Error,
    },
    /// The socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(std::io::Error),
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A request was malformed (a bug or a bad address family mix).
    #[error("{0}")]
    Invalid(String),
}

impl NetlinkError {
    /// The kernel's errno, when the kernel answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source: rtnetlink::Error::NetlinkError(m), .. } => {
                m.code.map(|c| -c.get())
            }
            _ => None,
        }
    }
}

fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

/// The errno of a kernel refusal, e.g. `libc::EEXIST`.
pub fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Opens a netlink connection in the calling thread's namespace; needs a tokio runtime.
pub fn connect() -> Result<Handle, NetlinkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Opens a netlink connection whose socket lives in `ns`.
pub fn connect_in(ns: &NetNs) -> Result<Handle, NetlinkError> {
    let (conn, handle, _) = {
        let _inside = ns.enter()?;
        rtnetlink::new_connection().map_err(NetlinkError::Socket)?
    };
    tokio::spawn(conn);
    Ok(handle)
}

/// The link called `name`, or `None` when there is none.
pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
    match h.link().get().match_name(name.to_string()).execute().try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(req(format!("look up link {name}"))(e)),
    }
}

/// The link with index `index`, or `None`.
pub async fn link_by_index(h: &Handle, index: u32) -> Result<Option<LinkMessage>, NetlinkError> {
    match h.link().get().match_index(index).execute().try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(req(format!("look up link #{index}"))(e)),
    }
}

/// The link's hardware address as `aa:bb:cc:dd:ee:ff`.
pub fn link_mac(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) if b.len() == 6 => {
            Some(b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"))
        }
        _ => None,
    })
}

/// The link's MTU.
pub fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// The index of the link's controller (its bridge), if enslaved.
pub fn link_controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

/// The link's name.
pub fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// Sets a link up.
pub async fn set_up(h: &Handle, index: u32) -> Result<(), NetlinkError> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(req(format!("set link #{index} up")))
}

/// Deletes a link; a link that is already gone is fine.
pub async fn delete_link(h: &Handle, index: u32) -> Result<(), NetlinkError> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(req(format!("delete link #{index}"))(e)),
    }
}

/// The addresses on a link (any family), with their prefix lengths.
pub async fn addresses(h: &Handle, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
    let msgs: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(req(format!("list addresses of link #{index}")))?;
    Ok(msgs
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => IpNet::new(*ip, m.header.prefix_len).ok(),
                _ => None,
            })
        })
        .collect())
}

/// Adds an address to a link; an address that is already there is fine.
pub async fn ensure_address(h: &Handle, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
    match h.address().add(index, addr.addr(), addr.prefix_len()).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(req(format!("add address {addr} to link #{index}"))(e)),
    }
}

/// One route as minik reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Destination prefix.
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
    /// The routing protocol number that installed it.
    pub protocol: u8,
    /// The table (254 = main).
    pub table: u32,
}

/// A route to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix.
    pub dst: IpNet,
    /// Next hop; `None` for a link-scope route via `oif`.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Protocol number to tag it with (so its owner can find it again).
    pub protocol: u8,
    /// Route MTU.
    pub mtu: Option<u32>,
    /// Route metric.
    pub priority: Option<u32>,
}

fn route_message(r: &RouteSpec) -> Result<RouteMessage, NetlinkError> {
    let bad = |e| NetlinkError::Invalid(format!("route to {}: {e}", r.dst));
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dst.addr(), r.dst.prefix_len())
        .map_err(bad)?
        .protocol(RouteProtocol::from(r.protocol));
    if let Some(gw) = r.gateway {
        b = b.gateway(gw).map_err(bad)?;
    } else {
        b = b.scope(netlink_packet_route::route::RouteScope::Link);
    }
    if let Some(oif) = r.oif {
        b = b.output_interface(oif);
    }
    if let Some(p) = r.priority {
        b = b.priority(p);
    }
    let mut msg = b.build();
    if let Some(mtu) = r.mtu {
        msg.attributes
            .push(RouteAttribute::Metrics(vec![netlink_packet_route::route::RouteMetric::Mtu(mtu)]));
    }
    Ok(msg)
}

/// Adds a route, or replaces the one with the same destination (`ip route replace`).
pub async fn replace_route(h: &Handle, r: &RouteSpec) -> Result<(), NetlinkError> {
    let msg = route_message(r)?;
    h.route().add(msg).replace().execute().await.map_err(req(format!("replace route to {}", r.dst)))
}

/// Adds a route; a route that is already there is fine.
pub async fn ensure_route(h: &Handle, r: &RouteSpec) -> Result<(), NetlinkError> {
    let msg = route_message(r)?;
    match h.route().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(req(format!("add route to {}", r.dst))(e)),
    }
}

/// Deletes a route in the main table; one that is already gone is fine.
pub async fn delete_route(h: &Handle, r: &RouteInfo) -> Result<(), NetlinkError> {
    let spec = RouteSpec { dst: r.dst, gateway: r.gateway, oif: r.oif, protocol: r.protocol, mtu: None, priority: None };
    let msg = route_message(&spec)?;
    match h.route().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(req(format!("delete route to {}", r.dst))(e)),
    }
}

/// Lists the main table's unicast routes of one family (`v6 = false` for IPv4).
pub async fn routes(h: &Handle, v6: bool) -> Result<Vec<RouteInfo>, NetlinkError> {
    let mut q = RouteMessageBuilder::<IpAddr>::new().build();
    q.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let msgs: Vec<RouteMessage> =
        h.route().get(q).execute().try_collect().await.map_err(req("list routes"))?;
    Ok(msgs.iter().filter_map(route_info).filter(|r| r.table == 254).collect())
}

fn route_info(m: &RouteMessage) -> Option<RouteInfo> {
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut table = u32::from(m.header.table);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => gateway = route_addr(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let dst = match dst {
        Some(ip) => IpNet::new(ip, m.header.destination_prefix_length).ok()?,
        None if m.header.address_family == AddressFamily::Inet6 => IpNet::new(IpAddr::from([0u16; 8]), 0).ok()?,
        None => IpNet::new(IpAddr::from([0u8; 4]), 0).ok()?,
    };
    Some(RouteInfo { dst, gateway, oif, protocol: u8::from(m.header.protocol), table })
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Writes a sysctl under `/proc/sys` of the calling thread's network namespace
/// (e.g. `net/ipv4/ip_forward`), skipping the write when the value is already set.
pub fn set_sysctl(key: &str, value: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).map(|v| v.trim() == value).unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(&path, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot set sysctl {key}={value}: {e}")))
}
