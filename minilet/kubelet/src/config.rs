//! minilet's configuration: a YAML file (`--config`), every key optional, in the spirit of
//! the kubelet's KubeletConfiguration; defaults suit one node of a minik cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything minilet needs to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct KubeletConfig {
    /// This node's name (static pods are named `<pod>-<node>`).
    pub node_name: String,
    /// State: pods, logs, images, runtime state.
    pub root_dir: PathBuf,
    /// Static pod manifests (`*.yaml`, `*.yml`, `*.json`); files appear, change, disappear → pods follow.
    pub static_pod_path: Option<PathBuf>,
    /// The OCI runtime binary (minik-oci by default; crun and runc work too).
    pub runtime: PathBuf,
    /// The shim binary.
    pub shim: PathBuf,
    /// CNI config directory.
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// CNI result cache.
    pub cni_cache_dir: PathBuf,
    /// The network to attach pods to; the first conflist's name when unset.
    pub cni_network: Option<String>,
    /// Cluster DNS servers for pods' resolv.conf.
    pub cluster_dns: Vec<String>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// Write the cni-bridge conflist from this node's `spec.podCIDR` (given by the
    /// controller manager) and route the other nodes' pod CIDRs; needs `kubeconfig`.
    pub cni_config_from_node: bool,
    /// The whole cluster's pod CIDR (e.g. 10.244.0.0/16), never masqueraded; used with
    /// `cniConfigFromNode`.
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    /// First restart back-off (the kubelet's is 10 s).
    #[serde(with = "secs")]
    pub backoff_base: Duration,
    /// Longest back-off (the kubelet's is 300 s).
    #[serde(with = "secs")]
    pub backoff_max: Duration,
    /// Container log rotation size.
    pub container_log_max_size: u64,
    /// Rotated log files kept.
    pub container_log_max_files: usize,
    /// The API server to join (a kubeconfig); without it minilet runs static pods only.
    pub kubeconfig: Option<PathBuf>,
    /// This node's InternalIP, as reported in its Node object.
    #[serde(rename = "nodeIP")]
    pub node_ip: Option<String>,
    /// `pids.max` of every container (the kubelet's podPidsLimit); none by default.
    pub pod_pids_limit: Option<i64>,
    /// Address of the kubelet HTTPS server (logs, exec, attach, port-forward; `server`).
    pub kubelet_address: String,
    /// Port of the kubelet HTTPS server (10250); 0 turns it off.
    pub kubelet_port: u16,
    /// The CA whose client certificates the kubelet server accepts (the API server's);
    /// default: the CA of `kubeconfig`. Without either the server does not start.
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
    /// The kubelet server's certificate (PEM); self-signed under `rootDir/pki` when unset.
    pub tls_cert_file: Option<PathBuf>,
    /// The key of `tlsCertFile`.
    pub tls_private_key_file: Option<PathBuf>,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        if s.is_finite() && s >= 0.0 {
            Ok(Duration::from_secs_f64(s))
        } else {
            Err(serde::de::Error::custom("expected a non-negative number of seconds"))
        }
    }
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            node_name: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "node".into()),
            root_dir: PathBuf::from("/var/lib/minik/minilet"),
            static_pod_path: None,
            runtime: sibling("minik-oci"),
            shim: sibling("minilet-shim"),
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cni_cache_dir: PathBuf::from("/var/lib/cni"),
            cni_network: None,
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            cni_config_from_node: false,
            cluster_cidr: None,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            container_log_max_size: 10 << 20,
            container_log_max_files: 5,
            pod_pids_limit: None,
            kubelet_address: "0.0.0.0".into(),
            kubelet_port: 10250,
            client_ca_file: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            kubeconfig: None,
            node_ip: None,
        }
    }
}

impl KubeletConfig {
    /// Reads a config file; unknown keys are errors that name the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read minilet config {}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("minilet config {}: {e}", path.display()))
    }

    /// Where pods keep their state.
    pub fn pods_dir(&self) -> PathBuf {
        self.root_dir.join("pods")
    }
    /// Where container logs go (`<ns>_<pod>_<uid>/<container>/<restart>.log`).
    pub fn logs_dir(&self) -> PathBuf {
        self.root_dir.join("logs")
    }
    /// The image store.
    pub fn images_dir(&self) -> PathBuf {
        self.root_dir.join("images")
    }
    /// The OCI runtime's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.root_dir.join("runtime")
    }
}
