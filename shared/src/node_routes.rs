//! Routes from this node to the other nodes' pod CIDRs (`podCIDR via nodeIP`), the piece
//! that lets pods on different nodes reach each other by pod IP without NAT.
//!
//! minik tags these routes with its own routing protocol number ([`MINIK_ROUTE_PROTO`]),
//! so a reconcile can tell its routes from everyone else's: it replaces every desired
//! route and deletes minik routes that are no longer desired, and running it twice
//! changes nothing. cni-bridge calls it on ADD (from `nodeRoutes`) and in its `routes`
//! subcommand; minilet calls it when the set of Nodes changes.

use std::net::IpAddr;

use ipnet::IpNet;
use rtnetlink::Handle;
use serde::{Deserialize, Serialize};

use crate::netlink::{self, NetlinkError, RouteInfo, RouteSpec};

/// The `rtm_protocol` value of minik's node routes (`ip route show proto 211`).
pub const MINIK_ROUTE_PROTO: u8 = 211;

/// One route to another node's pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeRoute {
    /// The other node's pod CIDR.
    pub dst: IpNet,
    /// The other node's address on the underlay.
    pub via: IpAddr,
}

/// What a reconcile changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteChanges {
    /// Routes added or replaced because they were missing or different.
    pub installed: Vec<NodeRoute>,
    /// minik routes removed because they are no longer wanted.
    pub removed: Vec<IpNet>,
}

/// Makes the main table's minik routes exactly `desired`.
pub async fn reconcile(h: &Handle, desired: &[NodeRoute]) -> Result<RouteChanges, NetlinkError> {
    let mut current: Vec<RouteInfo> = netlink::routes(h, false).await?;
    if desired.iter().any(|r| r.dst.addr().is_ipv6()) || !current.is_empty() {
        current.extend(netlink::routes(h, true).await?);
    }
    let mut changes = RouteChanges::default();
    for want in desired {
        if want.dst.addr().is_ipv4() != want.via.is_ipv4() {
            return Err(NetlinkError::Invalid(format!(
                "node route {} via {}: destination and gateway are of different IP families",
                want.dst, want.via
            )));
        }
        let have = current.iter().any(|r| {
            r.dst == want.dst && r.gateway == Some(want.via) && r.protocol == MINIK_ROUTE_PROTO
        });
        if !have {
            let spec = RouteSpec {
                dst: want.dst,
                gateway: Some(want.via),
                oif: None,
                protocol: MINIK_ROUTE_PROTO,
                mtu: None,
                priority: None,
            };
            netlink::replace_route(h, &spec).await?;
            changes.installed.push(want.clone());
        }
    }
    for r in current.iter().filter(|r| r.protocol == MINIK_ROUTE_PROTO) {
        if !desired.iter().any(|d| d.dst == r.dst) {
            netlink::delete_route(h, r).await?;
            changes.removed.push(r.dst);
        }
    }
    Ok(changes)
}
