//! Capabilities from `process.capabilities`: the bounding set is dropped while still
//! root, the other sets are applied after the uid switch (kept across it with
//! `PR_SET_KEEPCAPS`). A config without `capabilities` gets runc's default set, which
//! is also what podman, containerd and docker write into config.json.

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

/// runc's default capability set (bounding mask 0xa80425fb).
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The five sets to give the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sets {
    /// Bounding set.
    pub bounding: CapsHashSet,
    /// Effective set.
    pub effective: CapsHashSet,
    /// Permitted set.
    pub permitted: CapsHashSet,
    /// Inheritable set.
    pub inheritable: CapsHashSet,
    /// Ambient set.
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| match format!("CAP_{c}").parse::<Capability>() {
            Ok(cap) => Some(cap),
            Err(_) => {
                tracing::warn!("capability {c} is unknown to this runtime; skipped");
                None
            }
        })
        .collect()
}

fn default_set() -> CapsHashSet {
    DEFAULT.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The sets for a process: the config's, or runc's default when it has none.
pub fn sets(caps: Option<&LinuxCapabilities>) -> Sets {
    match caps {
        Some(c) => Sets {
            bounding: convert(c.bounding()),
            effective: convert(c.effective()),
            permitted: convert(c.permitted()),
            inheritable: convert(c.inheritable()),
            ambient: convert(c.ambient()),
        },
        None => {
            let d = default_set();
            Sets {
                bounding: d.clone(),
                effective: d.clone(),
                permitted: d,
                inheritable: CapsHashSet::new(),
                ambient: CapsHashSet::new(),
            }
        }
    }
}

/// The kernel's mask for a set, as `/proc/PID/status` prints it.
pub fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

fn caps_err(what: &str) -> impl Fn(caps::errors::CapsError) -> Error + '_ {
    move |e| Error::Other(format!("capabilities: {what}: {e}"))
}

/// Drops every supported capability outside `bounding` from the bounding set.
pub fn drop_bounding(bounding: &CapsHashSet) -> Result<()> {
    for cap in caps::runtime::thread_all_supported() {
        if !bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(caps_err("drop from the bounding set"))?;
        }
    }
    Ok(())
}

/// Sets inheritable, effective, permitted and ambient (after the uid switch).
pub fn apply(sets: &Sets) -> Result<()> {
    let supported = caps::runtime::thread_all_supported();
    let keep = |s: &CapsHashSet| -> CapsHashSet { s.intersection(&supported).copied().collect() };
    let permitted = keep(&sets.permitted);
    let inheritable: CapsHashSet = keep(&sets.inheritable)
        .intersection(&sets.bounding)
        .copied()
        .collect();
    let effective: CapsHashSet = keep(&sets.effective)
        .intersection(&permitted)
        .copied()
        .collect();
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(caps_err("set inheritable"))?;
    caps::set(None, CapSet::Effective, &effective).map_err(caps_err("set effective"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(caps_err("set permitted"))?;
    let ambient: Vec<_> = keep(&sets.ambient)
        .into_iter()
        .filter(|c| permitted.contains(c) && inheritable.contains(c))
        .collect();
    if !ambient.is_empty() {
        caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient"))?;
        for cap in ambient {
            caps::raise(None, CapSet::Ambient, cap).map_err(caps_err("raise ambient"))?;
        }
    }
    Ok(())
}

/// Every capability name this runtime knows, for `features`.
pub fn known() -> Vec<String> {
    let mut all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_runcs_mask() {
        let s = sets(None);
        assert_eq!(mask(&s.bounding), 0xa80425fb);
        assert_eq!(s.bounding, s.effective);
        assert!(s.ambient.is_empty());
    }

    #[test]
    fn config_sets_convert() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE","CAP_AUDIT_WRITE"],
            "effective":["CAP_KILL"],"ambient":["CAP_NET_BIND_SERVICE"]}"#,
        )
        .unwrap();
        let s = sets(Some(&c));
        assert_eq!(mask(&s.bounding), 0x20000420);
        assert_eq!(mask(&s.effective), 1 << 5);
        assert!(s.permitted.is_empty());
        assert_eq!(s.ambient.len(), 1);
    }
}
