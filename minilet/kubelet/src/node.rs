//! What every pod worker shares: the config, the image store, the CNI executor and the
//! OCI runtime, plus the per-pod paths derived from them.

use std::path::PathBuf;

use minik_imagestore::ImageStore;
use minik_shared::cni::exec::{CniExecutor, ExecutorConfig};

use crate::config::KubeletConfig;
use crate::runtime::OciRuntime;

/// The node's shared services.
pub struct Node {
    /// Configuration.
    pub cfg: KubeletConfig,
    /// Images.
    pub images: ImageStore,
    /// CNI.
    pub cni: CniExecutor,
    /// The OCI runtime.
    pub runtime: OciRuntime,
}

impl Node {
    /// Opens the image store and sets up the CNI executor and runtime from the config.
    pub fn new(cfg: KubeletConfig) -> anyhow::Result<Self> {
        for d in [cfg.pods_dir(), cfg.logs_dir(), cfg.runtime_root()] {
            std::fs::create_dir_all(&d).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
        }
        let images = ImageStore::open(cfg.images_dir())
            .map_err(|e| anyhow::anyhow!("cannot open the image store {}: {e}", cfg.images_dir().display()))?;
        let cni = CniExecutor::new(ExecutorConfig {
            conf_dir: cfg.cni_conf_dir.clone(),
            plugin_dirs: cfg.cni_bin_dirs.clone(),
            cache_dir: cfg.cni_cache_dir.clone(),
        });
        let runtime = OciRuntime { bin: cfg.runtime.clone(), root: cfg.runtime_root() };
        Ok(Node { cfg, images, cni, runtime })
    }

    /// A pod's directory.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.pods_dir().join(uid)
    }

    /// A container's log file for one attempt (`<ns>_<pod>_<uid>/<container>/<restart>.log`).
    pub fn log_path(&self, ns: &str, pod: &str, uid: &str, container: &str, restart: i32) -> PathBuf {
        self.cfg.logs_dir().join(format!("{ns}_{pod}_{uid}")).join(container).join(format!("{restart}.log"))
    }
}
