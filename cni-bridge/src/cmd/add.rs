//! ADD: attach a container to the node's bridge.
//!
//! Top to bottom: open the netns → ensure the bridge → allocate IPs → veth pair →
//! addresses and routes in the container → gateway on the bridge → masquerade →
//! node routes → result. A failure after IPs were allocated undoes the attachment, so a
//! failed ADD leaks neither an IP nor a veth.

use std::net::IpAddr;

use ipnet::IpNet;
use minik_shared::cni::{Attachment, CniError, CniResult, Interface, IpConfig, PluginEnv, Route};
use minik_shared::netlink::{self, RouteSpec};
use minik_shared::netns::NetNs;
use minik_shared::node_routes;
use rtnetlink::Handle;
use serde_json::Value;

use crate::config::BridgeConf;
use crate::ipam::{Allocation, Ipam};
use crate::links::{self, nl_err, VethRequest};
use crate::masq;

/// Opens the container's netns, with the spec's "container unknown" error when it is gone.
pub fn open_netns(path: &str) -> Result<NetNs, CniError> {
    NetNs::open(path).map_err(|e| {
        CniError::unknown_container(format!("CNI_NETNS {path:?} cannot be opened; does the container still exist?"))
            .with_details(e)
    })
}

/// Runs ADD and returns the result in the config's version.
pub async fn add(env: &PluginEnv, conf: &BridgeConf) -> Result<Value, CniError> {
    let ns = open_netns(&env.netns)?;
    let host = netlink::connect().map_err(nl_err)?;
    let bridge = links::ensure_bridge(&host, &conf.bridge, conf.mtu, conf.promisc_mode).await?;
    let ipam = Ipam::open(&conf.name, &conf.ipam)?;
    let allocs = if conf.requested_ips.is_empty() {
        ipam.allocate(&env.container_id, &env.ifname)?
    } else {
        ipam.allocate_requested(&env.container_id, &env.ifname, &conf.requested_ips)?
    };
    match attach(env, conf, &ns, &host, bridge, &allocs).await {
        Ok(result) => Ok(result.to_json(conf.cni_version)),
        Err(e) => {
            // Undo what this ADD did; the error the user sees is the one that made it fail.
            let _ = ipam.release(&env.container_id, &env.ifname);
            let host_veth = links::host_veth_name(&env.container_id, &env.ifname);
            if let Ok(Some(l)) = netlink::link_by_name(&host, &host_veth).await {
                let _ = netlink::delete_link(&host, l.header.index).await;
            }
            if conf.ip_masq {
                let ips: Vec<IpAddr> = allocs.iter().map(|a| a.address.addr()).collect();
                let _ = masq::del(&conf.name, &ips);
            }
            Err(e)
        }
    }
}

async fn attach(
    env: &PluginEnv,
    conf: &BridgeConf,
    ns: &NetNs,
    host: &Handle,
    bridge: links::Bridge,
    allocs: &[Allocation],
) -> Result<CniResult, CniError> {
    let cont = netlink::connect_in(ns).map_err(nl_err)?;
    let host_name = links::host_veth_name(&env.container_id, &env.ifname);
    let veth = links::create_veth(
        host,
        &cont,
        ns,
        &VethRequest { host_name: &host_name, ifname: &env.ifname, bridge: bridge.index, mtu: conf.mtu, hairpin: conf.hairpin_mode },
    )
    .await?;

    let routes = container_routes(conf, allocs);
    configure_container(&cont, veth.container_index, allocs, &routes).await?;

    if conf.is_gateway {
        let pairs: Vec<(IpNet, Option<IpAddr>)> = allocs.iter().map(|a| (a.address, a.gateway)).collect();
        links::ensure_gateway_addresses(host, bridge.index, &links::gateway_nets(&pairs)).await?;
        enable_forwarding(allocs)?;
    }
    let ips: Vec<IpAddr> = allocs.iter().map(|a| a.address.addr()).collect();
    if conf.ip_masq {
        let att = Attachment { container_id: env.container_id.clone(), ifname: env.ifname.clone() };
        masq::add(&conf.name, &att, &ips, &conf.cluster_destinations())?;
    }
    if !conf.node_routes.is_empty() {
        node_routes::reconcile(host, &conf.node_routes).await.map_err(nl_err)?;
    }

    Ok(CniResult {
        interfaces: vec![
            Interface { name: conf.bridge.clone(), mac: bridge.mac, mtu: None, sandbox: String::new() },
            Interface { name: veth.host_name, mac: veth.host_mac, mtu: None, sandbox: String::new() },
            Interface { name: env.ifname.clone(), mac: veth.container_mac, mtu: conf.mtu, sandbox: env.netns.clone() },
        ],
        ips: allocs
            .iter()
            .map(|a| IpConfig { address: a.address, gateway: a.gateway, interface: Some(2) })
            .collect(),
        routes,
        dns: conf.dns.clone(),
    })
}

/// The container's routes: IPAM's, plus a default route per family when `isDefaultGateway`.
pub fn container_routes(conf: &BridgeConf, allocs: &[Allocation]) -> Vec<Route> {
    let mut routes: Vec<Route> = conf.ipam.routes().to_vec();
    if conf.is_default_gateway {
        for a in allocs {
            let Some(gw) = a.gateway else { continue };
            let default: IpNet = if gw.is_ipv4() {
                IpNet::new(IpAddr::from([0u8; 4]), 0)
            } else {
                IpNet::new(IpAddr::from([0u16; 8]), 0)
            }
            .unwrap_or_default();
            if !routes.iter().any(|r| r.dst == default) {
                routes.push(Route::new(default, Some(gw)));
            }
        }
    }
    routes
}

/// Addresses, link up and routes on the container's interface.
async fn configure_container(cont: &Handle, index: u32, allocs: &[Allocation], routes: &[Route]) -> Result<(), CniError> {
    for a in allocs {
        netlink::ensure_address(cont, index, a.address).await.map_err(nl_err)?;
    }
    netlink::set_up(cont, index).await.map_err(nl_err)?;
    for r in routes {
        let gw = r.gw.or_else(|| {
            allocs.iter().find(|a| a.address.addr().is_ipv4() == r.dst.addr().is_ipv4()).and_then(|a| a.gateway)
        });
        let spec = RouteSpec {
            dst: r.dst,
            gateway: gw,
            oif: Some(index),
            protocol: 3, // RTPROT_BOOT, what `ip route add` uses
            mtu: r.mtu,
            priority: r.priority,
        };
        netlink::ensure_route(cont, &spec).await.map_err(nl_err)?;
    }
    Ok(())
}

/// A gateway node forwards between the bridge and its other links.
fn enable_forwarding(allocs: &[Allocation]) -> Result<(), CniError> {
    let io = |e: std::io::Error| CniError::io(e.to_string());
    if allocs.iter().any(|a| a.address.addr().is_ipv4()) {
        netlink::set_sysctl("net/ipv4/ip_forward", "1").map_err(io)?;
    }
    if allocs.iter().any(|a| a.address.addr().is_ipv6()) {
        netlink::set_sysctl("net/ipv6/conf/all/forwarding", "1").map_err(io)?;
    }
    Ok(())
}
