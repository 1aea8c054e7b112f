//! CHECK: verify that an attachment is still as ADD left it — the container interface
//! with its MAC and addresses, its routes, the host veth on the bridge, the IPAM record
//! and the masquerade entries. Any difference is an error that says what changed.

use std::net::IpAddr;

use minik_shared::cni::{CniError, CniResult, PluginEnv};
use minik_shared::netlink;

use crate::cmd::add::open_netns;
use crate::config::BridgeConf;
use crate::ipam::Ipam;
use crate::links::{self, nl_err};
use crate::masq;

fn tampered(msg: String) -> CniError {
    CniError::internal(msg)
}

/// Runs CHECK.
pub async fn check(env: &PluginEnv, conf: &BridgeConf) -> Result<(), CniError> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::invalid_config("prevResult: required for CHECK; pass the result of ADD"))?;
    let prev = CniResult::from_json(prev)?;
    let want_if = prev.interfaces.iter().find(|i| i.name == env.ifname && !i.sandbox.is_empty()).ok_or_else(|| {
        CniError::invalid_config(format!("prevResult.interfaces: no container interface named {:?}", env.ifname))
    })?;
    let if_index = prev.interfaces.iter().position(|i| std::ptr::eq(i, want_if));
    let want_ips: Vec<IpAddr> =
        prev.ips.iter().filter(|ip| ip.interface.is_none() || ip.interface == if_index).map(|ip| ip.address.addr()).collect();

    // The container side.
    let ns = open_netns(&env.netns)?;
    let cont = netlink::connect_in(&ns).map_err(nl_err)?;
    let link = netlink::link_by_name(&cont, &env.ifname)
        .await
        .map_err(nl_err)?
        .ok_or_else(|| tampered(format!("interface {} is missing from {}", env.ifname, env.netns)))?;
    let mac = netlink::link_mac(&link).unwrap_or_default();
    if !want_if.mac.is_empty() && !mac.eq_ignore_ascii_case(&want_if.mac) {
        return Err(tampered(format!("interface {} has MAC {mac}, ADD gave it {}", env.ifname, want_if.mac)));
    }
    let have = netlink::addresses(&cont, link.header.index).await.map_err(nl_err)?;
    for ip in prev.ips.iter().filter(|ip| want_ips.contains(&ip.address.addr())) {
        if !have.contains(&ip.address) {
            return Err(tampered(format!("address {} is missing from {} in {}", ip.address, env.ifname, env.netns)));
        }
    }
    let mut routes = netlink::routes(&cont, false).await.map_err(nl_err)?;
    routes.extend(netlink::routes(&cont, true).await.map_err(nl_err)?);
    for r in &prev.routes {
        if !routes.iter().any(|have| have.dst == r.dst) {
            return Err(tampered(format!("route to {} is missing in {}", r.dst, env.netns)));
        }
    }

    // The host side.
    let host = netlink::connect().map_err(nl_err)?;
    let bridge = netlink::link_by_name(&host, &conf.bridge)
        .await
        .map_err(nl_err)?
        .ok_or_else(|| tampered(format!("bridge {} is missing", conf.bridge)))?;
    let veth_name = links::host_veth_name(&env.container_id, &env.ifname);
    let veth = netlink::link_by_name(&host, &veth_name)
        .await
        .map_err(nl_err)?
        .ok_or_else(|| tampered(format!("host veth {veth_name} is missing")))?;
    if netlink::link_controller(&veth) != Some(bridge.header.index) {
        return Err(tampered(format!("host veth {veth_name} is not attached to bridge {}", conf.bridge)));
    }

    // The records.
    let ipam = Ipam::open(&conf.name, &conf.ipam)?;
    let mut recorded = ipam.lookup(&env.container_id, &env.ifname)?;
    let mut expected = want_ips.clone();
    recorded.sort();
    expected.sort();
    if recorded != expected {
        return Err(tampered(format!(
            "IPAM records {recorded:?} for {}/{}, the result says {expected:?}",
            env.container_id, env.ifname
        )));
    }
    if conf.ip_masq {
        let masqueraded: Vec<IpAddr> = masq::list(&conf.name)?.into_iter().map(|(ip, _)| ip).collect();
        if let Some(ip) = expected.iter().find(|ip| !masqueraded.contains(ip)) {
            return Err(tampered(format!("masquerade entry for {ip} is missing")));
        }
    }
    Ok(())
}
