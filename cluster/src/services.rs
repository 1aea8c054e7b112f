//! The command lines of a node's services, one place for both backends: the keeper starts
//! them itself on netns nodes, and writes them into a VM node's `services` file, which the
//! image's `minik-node-start` runs. Only the paths differ ([`Place`]), so a flag added here
//! reaches both kinds of node.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::ClusterConfig;

/// Where a node finds its binaries and files.
#[derive(Debug, Clone)]
pub struct Place {
    /// The binaries' directory.
    pub bin: PathBuf,
    /// miniapi's data dir (control plane).
    pub api_dir: PathBuf,
    /// The admin kubeconfig miniapi writes there (the control plane's credentials).
    pub admin_kubeconfig: PathBuf,
    /// The node's own kubeconfig (minilet, minikproxy).
    pub node_kubeconfig: PathBuf,
    /// minilet's config file.
    pub minilet_config: PathBuf,
}

impl Place {
    /// The paths inside a node VM (the image's binaries, the 9p shares).
    pub fn in_vm() -> Self {
        Place {
            bin: PathBuf::from("/usr/bin"),
            api_dir: PathBuf::from("/var/lib/miniapi"),
            admin_kubeconfig: PathBuf::from("/var/lib/miniapi/admin.kubeconfig"),
            node_kubeconfig: PathBuf::from("/minik/kubeconfig"),
            minilet_config: PathBuf::from("/minik/minilet.yaml"),
        }
    }

    fn bin(&self, name: &str) -> Command {
        Command::new(self.bin.join(name))
    }
}

/// miniapi on node1: all addresses, node1's and the loopback's names in its certificate.
pub fn miniapi(cfg: &ClusterConfig, p: &Place) -> Command {
    let mut c = p.bin("miniapi");
    c.arg("--data-dir").arg(&p.api_dir);
    c.args(["--listen", "0.0.0.0:6443", "--advertise-address", &cfg.node_ip(1).to_string(), "--advertise-address", "127.0.0.1"]);
    c.args(["--service-cluster-ip-range", &cfg.service_cidr.to_string()]);
    c
}

/// The controller manager (node IPAM from the pod CIDR, the LoadBalancer pool).
pub fn controller_manager(cfg: &ClusterConfig, p: &Place) -> Command {
    let mut c = p.bin("minik-controller-manager");
    c.arg("--kubeconfig").arg(&p.admin_kubeconfig);
    c.args(["--cluster-cidr", &cfg.pod_cidr.to_string(), "--node-cidr-mask-size", "24"]);
    c.args(["--load-balancer-pool", &cfg.lb_pool().to_string()]);
    if let Some(g) = &cfg.node_monitor_grace_period {
        c.args(["--node-monitor-grace-period", g]);
    }
    if let Some(t) = &cfg.pod_eviction_timeout {
        c.args(["--pod-eviction-timeout", t]);
    }
    c
}

/// The scheduler.
pub fn scheduler(p: &Place) -> Command {
    let mut c = p.bin("minik-scheduler");
    c.arg("--kubeconfig").arg(&p.admin_kubeconfig);
    c
}

/// minik-dns on node1's address, registering itself as kube-dns.
pub fn dns(cfg: &ClusterConfig, p: &Place) -> Command {
    let mut c = p.bin("minik-dns");
    c.arg("--kubeconfig").arg(&p.admin_kubeconfig);
    // On node1's address, not 0.0.0.0: a UDP socket on the wildcard answers a pod of
    // node1 from the cni0 address, which conntrack cannot map back to the ClusterIP.
    let listen = format!("{}:53", cfg.node_ip(1));
    c.args(["--listen", &listen, "--service", "kube-system/kube-dns", "--service-ip", &cfg.dns_ip().to_string()]);
    c.args(["--advertise-address", &cfg.node_ip(1).to_string()]);
    c
}

/// minilet.
pub fn minilet(p: &Place) -> Command {
    let mut c = p.bin("minilet");
    c.arg("--config").arg(&p.minilet_config).arg("run");
    c
}

/// minikproxy for `node`, announcing LoadBalancer IPs on `underlay` (its interface on
/// the underlay).
pub fn minikproxy(cfg: &ClusterConfig, p: &Place, node: &str, underlay: &str) -> Command {
    let mut c = p.bin("minikproxy");
    c.arg("--kubeconfig").arg(&p.node_kubeconfig);
    c.args(["--node-name", node, "--cluster-cidr", &cfg.pod_cidr.to_string(), "--lb-interface", underlay]);
    c
}

/// `s` as one shell word (single-quoted unless it is plainly safe).
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A `services` line: `NAME PROGRAM ARG...` as shell words.
pub fn line(name: &str, c: &Command) -> String {
    let mut words = vec![shell_word(name), shell_word(&c.get_program().to_string_lossy())];
    words.extend(c.get_args().map(|a| shell_word(&a.to_string_lossy())));
    words.join(" ")
}

/// A `services` line that waits (at most `secs`) for `path` to exist.
pub fn wait_line(path: &Path, secs: u64) -> String {
    format!("@wait {} {secs}", shell_word(&path.display().to_string()))
}

/// The `services` file of a VM node: the control plane first on node1 (once miniapi has
/// written its kubeconfig), then, once the launcher has issued the node's credentials,
/// minilet and minikproxy.
pub fn vm_services(cfg: &ClusterConfig, node: &str, control: bool, underlay: &str) -> String {
    let p = Place::in_vm();
    let mut lines = vec![format!("# {node}'s services, written by minik; run by minik-node-start.")];
    if control {
        lines.push(line("miniapi", &miniapi(cfg, &p)));
        lines.push(wait_line(&p.admin_kubeconfig, 120));
        lines.push(line("controller-manager", &controller_manager(cfg, &p)));
        lines.push(line("scheduler", &scheduler(&p)));
        lines.push(line("minik-dns", &dns(cfg, &p)));
    }
    // The images after the control plane: the API answers sooner.
    lines.push("@import".to_string());
    lines.push(wait_line(&p.node_kubeconfig, 300));
    lines.push(line("minilet", &minilet(&p)));
    lines.push(line("minikproxy", &minikproxy(cfg, &p, node, underlay)));
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("--listen"), "--listen");
        assert_eq!(shell_word("0.0.0.0:6443"), "0.0.0.0:6443");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_control_node_starts_the_control_plane_before_its_agents() {
        let cfg = crate::config::tests::cfg();
        let s = vm_services(&cfg, "node1", true, "eth0");
        let names: Vec<&str> = s.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(' ').next().unwrap_or("")).collect();
        assert_eq!(names, ["miniapi", "@wait", "controller-manager", "scheduler", "minik-dns", "@import", "@wait", "minilet", "minikproxy"]);
        assert!(s.contains("miniapi /usr/bin/miniapi --data-dir /var/lib/miniapi --listen 0.0.0.0:6443 --advertise-address 192.168.50.11"), "{s}");
        assert!(s.contains("@wait /minik/kubeconfig 300"), "{s}");
        let n2 = vm_services(&cfg, "node2", false, "eth0");
        assert!(!n2.contains("miniapi ") && n2.contains("--node-name node2"), "{n2}");
    }
}
