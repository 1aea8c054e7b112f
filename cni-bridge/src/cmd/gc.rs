//! GC (CNI 1.1): release everything of this network that belongs to no attachment in
//! `cni.dev/valid-attachments`: IPAM records, masquerade entries, and host veths left on
//! the bridge by containers that died without a DEL.

use std::collections::HashSet;

use futures::TryStreamExt;
use minik_shared::cni::CniError;
use minik_shared::netlink;

use crate::config::BridgeConf;
use crate::ipam::Ipam;
use crate::links::{self, nl_err};
use crate::masq;

/// Runs GC.
pub async fn gc(conf: &BridgeConf) -> Result<(), CniError> {
    let valid = conf.valid_attachments.clone().ok_or_else(|| {
        CniError::invalid_config("cni.dev/valid-attachments: missing; GC needs the list of attachments to keep")
    })?;
    let ipam = Ipam::open(&conf.name, &conf.ipam)?;
    let freed = ipam.gc(&valid)?;
    if !freed.is_empty() {
        tracing::info!(network = %conf.name, count = freed.len(), "GC released leaked IPs");
    }
    if conf.ip_masq {
        masq::gc(&conf.name, &valid)?;
    }
    remove_stale_veths(conf, &valid).await
}

async fn remove_stale_veths(conf: &BridgeConf, valid: &[minik_shared::cni::Attachment]) -> Result<(), CniError> {
    let host = netlink::connect().map_err(nl_err)?;
    let Some(bridge) = netlink::link_by_name(&host, &conf.bridge).await.map_err(nl_err)? else {
        return Ok(());
    };
    let keep: HashSet<String> = valid.iter().map(|a| links::host_veth_name(&a.container_id, &a.ifname)).collect();
    let all: Vec<_> = host
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| CniError::internal(format!("cannot list links: {e}")))?;
    for link in all {
        let on_bridge = netlink::link_controller(&link) == Some(bridge.header.index);
        let name = netlink::link_name(&link).unwrap_or_default().to_string();
        if on_bridge && links::is_host_veth_name(&name) && !keep.contains(&name) {
            tracing::info!(veth = %name, "GC removes a veth of a container that is gone");
            netlink::delete_link(&host, link.header.index).await.map_err(nl_err)?;
        }
    }
    Ok(())
}
