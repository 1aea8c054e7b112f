//! The links cni-bridge manages: the node's bridge and each pod's veth pair.
//!
//! The host end of a veth pair is named from a hash of (container ID, ifname), so a DEL,
//! CHECK or GC finds it without the container's netns, and a retried ADD replaces it.
//! The pair is created with one netlink request: the host end attached to the bridge and
//! up, the container end created directly inside the pod's netns under its final name.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use ipnet::IpNet;
use minik_shared::cni::CniError;
use minik_shared::netlink::{self, NetlinkError};
use minik_shared::netns::NetNs;
use netlink_packet_route::link::{InfoBridgePort, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

/// Maps a netlink failure to a CNI error saying what failed.
pub fn nl_err(e: NetlinkError) -> CniError {
    CniError::internal(e.to_string())
}

/// The host-side veth name for an attachment: `veth` + 8 hex digits (FNV-1a of id and ifname).
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let h = crate::hash::fnv1a32(&[container_id.as_bytes(), ifname.as_bytes()]);
    format!("veth{h:08x}")
}

/// Whether a name looks like one [`host_veth_name`] makes.
pub fn is_host_veth_name(name: &str) -> bool {
    name.len() == 12 && name.starts_with("veth") && name[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// The bridge as it is after [`ensure_bridge`].
pub struct Bridge {
    /// Its index.
    pub index: u32,
    /// Its MAC address.
    pub mac: String,
}

/// Creates the bridge if missing (up, with the MTU and promiscuous mode asked for), or
/// checks that the existing device of that name is a bridge.
pub async fn ensure_bridge(h: &Handle, name: &str, mtu: Option<u32>, promisc: bool) -> Result<Bridge, CniError> {
    let link = match netlink::link_by_name(h, name).await.map_err(nl_err)? {
        Some(l) => l,
        None => {
            let mut b = LinkBridge::new(name);
            if let Some(m) = mtu {
                b = b.mtu(m);
            }
            if promisc {
                b = b.promiscuous(true);
            }
            match h.link().add(b.build()).execute().await {
                Ok(()) => {}
                // A concurrent ADD created it first.
                Err(e) if netlink::errno_of(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(CniError::internal(format!("cannot create bridge {name}: {e}"))),
            }
            netlink::link_by_name(h, name)
                .await
                .map_err(nl_err)?
                .ok_or_else(|| CniError::internal(format!("bridge {name} vanished right after it was created")))?
        }
    };
    if !is_bridge(&link) {
        return Err(CniError::invalid_config(format!(
            "bridge: a device named {name:?} exists and is not a bridge; pick another name"
        )));
    }
    let index = link.header.index;
    if !link.header.flags.contains(netlink_packet_route::link::LinkFlags::Up) {
        netlink::set_up(h, index).await.map_err(nl_err)?;
    }
    if promisc && !link.header.flags.contains(netlink_packet_route::link::LinkFlags::Promisc) {
        h.link()
            .set(LinkUnspec::new_with_index(index).promiscuous(true).build())
            .execute()
            .await
            .map_err(|e| CniError::internal(format!("cannot set bridge {name} promiscuous: {e}")))?;
    }
    Ok(Bridge { index, mac: netlink::link_mac(&link).unwrap_or_default() })
}

/// Gives the bridge each gateway address (the gateway with its subnet's prefix).
pub async fn ensure_gateway_addresses(h: &Handle, bridge: u32, gateways: &[IpNet]) -> Result<(), CniError> {
    if gateways.is_empty() {
        return Ok(());
    }
    let have = netlink::addresses(h, bridge).await.map_err(nl_err)?;
    for gw in gateways {
        if !have.contains(gw) {
            netlink::ensure_address(h, bridge, *gw).await.map_err(nl_err)?;
        }
    }
    Ok(())
}

/// The veth pair of one attachment.
pub struct VethPair {
    /// Host end name.
    pub host_name: String,
    /// Host end MAC.
    pub host_mac: String,
    /// Container end index (inside the netns).
    pub container_index: u32,
    /// Container end MAC.
    pub container_mac: String,
}

/// What [`create_veth`] needs.
pub struct VethRequest<'a> {
    /// The host end's name.
    pub host_name: &'a str,
    /// The container end's name (`CNI_IFNAME`).
    pub ifname: &'a str,
    /// The bridge to attach the host end to.
    pub bridge: u32,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Hairpin mode on the bridge port.
    pub hairpin: bool,
}

/// Creates the pair: host end on the bridge and up, container end inside `ns` named `ifname`.
/// A host end left from an earlier try is removed first, so a retried ADD starts clean.
pub async fn create_veth(host: &Handle, cont: &Handle, ns: &NetNs, req: &VethRequest<'_>) -> Result<VethPair, CniError> {
    if let Some(old) = netlink::link_by_name(host, req.host_name).await.map_err(nl_err)? {
        netlink::delete_link(host, old.header.index).await.map_err(nl_err)?;
    }
    if netlink::link_by_name(cont, req.ifname).await.map_err(nl_err)?.is_some() {
        return Err(CniError::invalid_env(format!(
            "CNI_IFNAME: an interface named {:?} already exists in {}; pick another name or DEL the old attachment",
            req.ifname,
            ns.path().display()
        )));
    }
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(req.ifname.to_string()).setns_by_fd(ns.as_fd().as_raw_fd());
    let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(req.host_name.to_string())
        .controller(req.bridge)
        .up();
    if let Some(m) = req.mtu {
        peer = peer.mtu(m);
        msg = msg.mtu(m);
    }
    let msg = msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
    host.link().add(msg).execute().await.map_err(|e| {
        CniError::internal(format!("cannot create veth pair {} / {}: {e}", req.host_name, req.ifname))
    })?;
    let host_link = netlink::link_by_name(host, req.host_name)
        .await
        .map_err(nl_err)?
        .ok_or_else(|| CniError::internal(format!("veth {} vanished right after it was created", req.host_name)))?;
    if req.hairpin {
        let port = LinkBridgePort::new(host_link.header.index).append_info_data(InfoBridgePort::HairpinMode(true));
        host.link().set_port(port.build()).execute().await.map_err(|e| {
            CniError::internal(format!("cannot set hairpin mode on {}: {e}", req.host_name))
        })?;
    }
    let cont_link = netlink::link_by_name(cont, req.ifname)
        .await
        .map_err(nl_err)?
        .ok_or_else(|| CniError::internal(format!("{} did not appear in the container netns", req.ifname)))?;
    Ok(VethPair {
        host_name: req.host_name.to_string(),
        host_mac: netlink::link_mac(&host_link).unwrap_or_default(),
        container_index: cont_link.header.index,
        container_mac: netlink::link_mac(&cont_link).unwrap_or_default(),
    })
}

/// Whether the bridge port of `link` has hairpin mode on.
pub fn hairpin_of(link: &LinkMessage) -> Option<bool> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::PortData(netlink_packet_route::link::InfoPortData::BridgePort(ps)) => ps.iter().find_map(|p| match p {
                InfoBridgePort::HairpinMode(b) => Some(*b),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// The gateway addresses a bridge gets: each allocation's gateway with its subnet's prefix.
pub fn gateway_nets(allocs: &[(IpNet, Option<IpAddr>)]) -> Vec<IpNet> {
    allocs
        .iter()
        .filter_map(|(net, gw)| gw.and_then(|g| IpNet::new(g, net.prefix_len()).ok()))
        .collect()
}
