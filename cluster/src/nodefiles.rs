//! The files of a VM node's `/minik` (what the image's `minik-node-start` reads):
//! `minilet.yaml`, `node.env` and `services`. One renderer for both kinds of VM node: the
//! QEMU nodes of `minik up` ([`crate::vm`]) and Vagrant's (`minik node-files`, which
//! vagrant/Vagrantfile runs), so a flag or path changes in one place.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::ClusterConfig;
use crate::{nodes, services};

/// One VM node, as its files describe it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// node1.. or vm1..
    pub name: String,
    /// Its address on the underlay.
    pub ip: Ipv4Addr,
    /// Whether it runs the control plane.
    pub control: bool,
    /// Its interface on the underlay (LoadBalancer IPs are announced there): eth0 under
    /// QEMU, eth1 under Vagrant (eth0 is Vagrant's management network).
    pub underlay_interface: String,
}

/// minilet's config as seen inside the VM.
pub fn minilet_config(cfg: &ClusterConfig, n: &NodeSpec) -> String {
    format!(
        "# minilet on the VM {node}, written by minik.\n\
         nodeName: {node}\n\
         nodeIP: {ip}\n\
         rootDir: /var/lib/minik/minilet\n\
         cniConfDir: /etc/cni/net.d\n\
         cniBinDirs: [/usr/bin]\n\
         cniCacheDir: /var/lib/cni\n\
         kubeconfig: /minik/kubeconfig\n\
         clusterDns: [{dns}]\n\
         cniConfigFromNode: true\n\
         clusterCIDR: {pods}\n",
        node = n.name,
        ip = n.ip,
        dns = cfg.dns_ip(),
        pods = cfg.pod_cidr,
    )
}

/// `node.env`: the images to import, and who the node is in the cluster (`all`: every
/// node's name), for provisioners.
pub fn node_env(cfg: &ClusterConfig, n: &NodeSpec, all: &[String]) -> String {
    format!(
        "# {node}'s settings, written by minik; sourced by minik-node-start.\n\
         ROLE={role}\nNODE={node}\nNODES=\"{all}\"\nAPI_SERVER={api}\nIMAGES=\"{images}\"\nCLUSTER_CIDR={pods}\n",
        node = n.name,
        role = if n.control { "control" } else { "node" },
        all = all.join(" "),
        api = cfg.api_inner_url(),
        images = nodes::IMAGES.join(" "),
        pods = cfg.pod_cidr,
    )
}

/// The three files, by name.
pub fn render(cfg: &ClusterConfig, n: &NodeSpec, all: &[String]) -> [(&'static str, String); 3] {
    [
        ("minilet.yaml", minilet_config(cfg, n)),
        ("node.env", node_env(cfg, n, all)),
        ("services", services::vm_services(cfg, &n.name, n.control, &n.underlay_interface)),
    ]
}

/// Writes the files into `dir` (only those whose content changed).
pub fn write(dir: &Path, files: &[(&'static str, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (f, text) in files {
        let p = dir.join(f);
        if std::fs::read_to_string(&p).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// `minik node-files`: `<out>/node1..nodeN/` for a cluster of `cfg.nodes` VM nodes
/// (node1 the control plane), for provisioners other than `minik up` (Vagrant).
pub fn command(cfg: &ClusterConfig, out: &Path, underlay_interface: &str) -> anyhow::Result<Vec<PathBuf>> {
    cfg.validate()?;
    let all = cfg.node_names();
    let mut dirs = Vec::new();
    for (i, name) in all.iter().enumerate() {
        let n = NodeSpec { name: name.clone(), ip: cfg.node_ip(i as u8 + 1), control: i == 0, underlay_interface: underlay_interface.to_string() };
        let dir = out.join(name);
        write(&dir, &render(cfg, &n, &all))?;
        dirs.push(dir);
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_name_the_node_its_role_and_its_interface() {
        let cfg = crate::config::tests::cfg();
        let all = cfg.node_names();
        let n = NodeSpec { name: "node2".into(), ip: cfg.node_ip(2), control: false, underlay_interface: "eth1".into() };
        let [(_, y), (_, env), (_, svc)] = render(&cfg, &n, &all);
        for want in ["nodeName: node2", "nodeIP: 192.168.50.12", "kubeconfig: /minik/kubeconfig", "cniConfigFromNode: true", "cniBinDirs: [/usr/bin]"] {
            assert!(y.contains(want), "{want} not in\n{y}");
        }
        for want in ["ROLE=node\n", "NODE=node2\n", "NODES=\"node1 node2 node3\"\n", "API_SERVER=https://192.168.50.11:6443\n", "IMAGES=\"busybox demo-api demo-db\"\n"] {
            assert!(env.contains(want), "{want} not in\n{env}");
        }
        assert!(svc.contains("--node-name node2") && svc.contains("--lb-interface eth1") && !svc.contains("miniapi "), "{svc}");
    }

    #[test]
    fn node_files_writes_every_node_and_only_what_changed() {
        let dir = std::env::temp_dir().join(format!("minik-node-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = crate::config::tests::cfg();
        let dirs = command(&cfg, &dir, "eth1").expect("node-files");
        assert_eq!(dirs.len(), 3);
        let svc1 = std::fs::read_to_string(dir.join("node1/services")).expect("services");
        assert!(svc1.starts_with("# node1") && svc1.contains("miniapi /usr/bin/miniapi"), "{svc1}");
        let before = std::fs::metadata(dir.join("node2/services")).and_then(|m| m.modified()).expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        command(&cfg, &dir, "eth1").expect("again");
        let after = std::fs::metadata(dir.join("node2/services")).and_then(|m| m.modified()).expect("mtime");
        assert_eq!(before, after, "an unchanged file was rewritten");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
