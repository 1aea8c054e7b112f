//! DEL: detach a container. Idempotent: a missing netns, veth or IP is not an error,
//! and DEL twice succeeds. The host end of the veth is found by name, so DEL works even
//! when the container's netns is already gone (deleting one end deletes the pair).

use minik_shared::cni::{CniError, PluginEnv};
use minik_shared::netlink;

use crate::config::BridgeConf;
use crate::ipam::Ipam;
use crate::links::{self, nl_err};
use crate::masq;

/// Runs DEL.
pub async fn del(env: &PluginEnv, conf: &BridgeConf) -> Result<(), CniError> {
    let ipam = Ipam::open(&conf.name, &conf.ipam)?;
    let released = ipam.release(&env.container_id, &env.ifname)?;
    if conf.ip_masq && !released.is_empty() {
        masq::del(&conf.name, &released)?;
    }
    let host = netlink::connect().map_err(nl_err)?;
    let host_veth = links::host_veth_name(&env.container_id, &env.ifname);
    if let Some(link) = netlink::link_by_name(&host, &host_veth).await.map_err(nl_err)? {
        netlink::delete_link(&host, link.header.index).await.map_err(nl_err)?;
    }
    Ok(())
}
