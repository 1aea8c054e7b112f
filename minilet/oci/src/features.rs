//! `features`: what this runtime supports, in the runtime-spec features format.

use serde_json::{json, Value};

use crate::container::OCI_VERSION;
use crate::{capabilities, hooks, rootfs, seccomp};

/// The features document.
pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": hooks::Kind::all().iter().map(|k| k.name()).collect::<Vec<_>>(),
        "mountOptions": rootfs::options::known(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": capabilities::known(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": seccomp::known_actions(),
                "operators": seccomp::known_operators(),
                "archs": [if cfg!(target_arch = "aarch64") { "SCMP_ARCH_AARCH64" } else { "SCMP_ARCH_X86_64" }],
                "knownFlags": [],
                "supportedFlags": []
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features": "minik-oci",
            "io.github.minik.oci.version": env!("CARGO_PKG_VERSION")
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn shape() {
        let f = super::features();
        assert_eq!(f["ociVersionMin"], "1.0.0");
        assert!(f["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "createContainer"));
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "rbind"));
        assert!(f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    }
}
