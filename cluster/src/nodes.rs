//! A node's files before its minilet starts: its directory under the state dir, its
//! credentials (`miniapi kubeconfig --user system:node:NAME` when miniapi has that
//! command, else the admin kubeconfig), minilet's config (`cniConfigFromNode`: minilet
//! writes its cni-bridge conflist from the Node's `spec.podCIDR` and routes the other
//! nodes' pod CIDRs), and the images imported into the node's own store.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::config::{ClusterConfig, Layout};
use crate::network;

/// The images every node gets.
pub const IMAGES: &[&str] = &["busybox", "demo-api", "demo-db"];

/// minilet's config file for `node`.
pub fn config_path(layout: &Layout, node: &str) -> PathBuf {
    layout.node_dir(node).join("minilet.yaml")
}

/// The kubeconfig `node`'s agents use.
pub fn kubeconfig_path(layout: &Layout, node: &str) -> PathBuf {
    layout.node_dir(node).join("kubeconfig")
}

/// Checks that every image layout is there; the error says how to build them.
pub fn check_images(images: &Path) -> anyhow::Result<()> {
    for img in IMAGES {
        let p = images.join(img).join("index.json");
        if !p.exists() {
            bail!("image {img} is missing ({} not found); build the images with images/build.sh (make images)", p.display());
        }
    }
    Ok(())
}

fn minilet_config(cfg: &ClusterConfig, i: u8, node: &str) -> String {
    let layout = cfg.layout();
    let d = layout.node_dir(node);
    format!(
        "# minilet on {node}, written by `minik up`.\n\
         nodeName: {node}\n\
         nodeIP: {ip}\n\
         rootDir: {root}\n\
         cniConfDir: {net}\n\
         cniBinDirs: [{bins}, /usr/lib/cni]\n\
         cniCacheDir: {cache}\n\
         kubeconfig: {kc}\n\
         clusterDns: [{dns}]\n\
         cniConfigFromNode: true\n\
         clusterCIDR: {pods}\n",
        ip = cfg.node_ip(i),
        root = d.join("root").display(),
        net = d.join("net.d").display(),
        bins = cfg.bin_dir.display(),
        cache = d.join("cni-cache").display(),
        kc = kubeconfig_path(&layout, node).display(),
        dns = cfg.dns_ip(),
        pods = cfg.pod_cidr,
    )
}

/// Writes the node's credentials: its own user when miniapi can issue one.
pub fn write_credentials(cfg: &ClusterConfig, node: &str) -> anyhow::Result<()> {
    let layout = cfg.layout();
    let out = kubeconfig_path(&layout, node);
    let issued = Command::new(cfg.bin_dir.join("miniapi"))
        .arg("--data-dir")
        .arg(layout.api_dir())
        .arg("kubeconfig")
        .args(["--user", &format!("system:node:{node}"), "--group", "system:nodes", "--server", &cfg.api_inner_url()])
        .arg("--out")
        .arg(&out)
        .output();
    let issued = match issued {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            tracing::warn!(node, stderr = %String::from_utf8_lossy(&o.stderr).trim(), "miniapi kubeconfig failed");
            false
        }
        Err(e) => {
            tracing::warn!(node, error = %e, "cannot run miniapi kubeconfig");
            false
        }
    };
    if !issued {
        tracing::warn!(node, "no node credentials from miniapi; the node uses the admin kubeconfig");
        std::fs::copy(layout.inner_kubeconfig(), &out).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

fn prepare(cfg: &ClusterConfig, i: u8, node: &str) -> anyhow::Result<()> {
    let layout = cfg.layout();
    let d = layout.node_dir(node);
    for sub in ["root", "net.d", "cni-cache"] {
        std::fs::create_dir_all(d.join(sub)).with_context(|| format!("cannot create {}", d.join(sub).display()))?;
    }
    let conf = config_path(&layout, node);
    std::fs::write(&conf, minilet_config(cfg, i, node)).with_context(|| format!("cannot write {}", conf.display()))?;
    let ns = network::open(node)?;
    for img in IMAGES {
        let mut c = Command::new(cfg.bin_dir.join("minilet"));
        c.arg("--config").arg(&conf).args(["image", "import"]).arg(cfg.images.join(img)).args(["--name", img]);
        let out = ns.run(|| c.output())?.context("cannot run minilet image import")?;
        if !out.status.success() {
            bail!("{node}: minilet image import {img}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    Ok(())
}

/// Prepares every node's files and images, in parallel. It needs no API server, so the
/// keeper runs it in the background while the control plane starts
/// ([`start_preparing`]); the credentials come after ([`write_all_credentials`]).
pub fn prepare_all(cfg: &ClusterConfig) -> anyhow::Result<()> {
    check_images(&cfg.images)?;
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = cfg
            .node_names()
            .into_iter()
            .enumerate()
            .map(|(i, node)| s.spawn(move || prepare(cfg, i as u8 + 1, &node)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("node preparation panicked")))).collect()
    });
    results.into_iter().collect()
}

/// Runs [`prepare_all`] on a thread of its own.
pub fn start_preparing(cfg: &ClusterConfig) -> std::thread::JoinHandle<anyhow::Result<()>> {
    let cfg = cfg.clone();
    std::thread::spawn(move || prepare_all(&cfg))
}

/// Writes every node's credentials (the API server must be up).
pub fn write_all_credentials(cfg: &ClusterConfig) -> anyhow::Result<()> {
    for node in cfg.node_names() {
        write_credentials(cfg, &node)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minilet_config_names_the_node_and_its_dirs() {
        let cfg = ClusterConfig { nodes: 2, state_dir: PathBuf::from("/s"), bin_dir: PathBuf::from("/b"), ..crate::config::tests::cfg() };
        let y = minilet_config(&cfg, 2, "node2");
        for want in [
            "nodeName: node2",
            "nodeIP: 192.168.50.12",
            "rootDir: /s/node2/root",
            "cniBinDirs: [/b, /usr/lib/cni]",
            "kubeconfig: /s/node2/kubeconfig",
            "clusterDns: [10.96.0.10]",
            "clusterCIDR: 10.244.0.0/16",
        ] {
            assert!(y.contains(want), "{want} not in\n{y}");
        }
    }
}
