//! STATUS (CNI 1.1): can this plugin service an ADD right now? It cannot when the IPAM
//! data dir is unwritable or every range is full (code 50), or when nft is missing and
//! the network masquerades.

use minik_shared::cni::CniError;

use crate::config::BridgeConf;
use crate::ipam::Ipam;

/// Runs STATUS.
pub fn status(conf: &BridgeConf) -> Result<(), CniError> {
    let ipam = Ipam::open(&conf.name, &conf.ipam)
        .map_err(|e| CniError::not_available(format!("IPAM is not usable: {}", e.msg)).with_details(e.details))?;
    ipam.status()?;
    if conf.ip_masq {
        minik_shared::nft::nft_path()
            .map_err(|e| CniError::not_available(format!("ipMasq is on but masquerade cannot be programmed: {e}")))?;
    }
    Ok(())
}
