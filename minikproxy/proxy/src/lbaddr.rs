//! Announcing load-balancer IPs: the node that announces (the first of the sorted Ready
//! node names) holds every LB IP as a /32 on `--lb-interface`, so the kernel answers ARP
//! for it on the underlay; every other node holds none. Only /32 addresses are managed,
//! so the interface's own address is never touched. Uses `ip` (iproute2), like the tests.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

/// A failed address change.
#[derive(Debug, thiserror::Error)]
pub enum LbAddrError {
    /// `ip` could not be run.
    #[error("cannot run ip (install iproute2): {0}")]
    Spawn(std::io::Error),
    /// `ip` failed.
    #[error("ip {args} failed: {stderr}; check that --lb-interface names an interface of this node")]
    Failed {
        /// Its arguments.
        args: String,
        /// What it printed.
        stderr: String,
    },
}

fn ip(args: &[&str]) -> Result<String, LbAddrError> {
    let out = Command::new("ip").args(args).output().map_err(LbAddrError::Spawn)?;
    if !out.status.success() {
        return Err(LbAddrError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The /32 addresses on `iface`.
pub fn current(iface: &str) -> Result<BTreeSet<Ipv4Addr>, LbAddrError> {
    let text = ip(&["-4", "-o", "addr", "show", "dev", iface])?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            let cidr = words.next()?;
            cidr.strip_suffix("/32")?.parse().ok()
        })
        .collect())
}

/// Makes the /32 addresses on `iface` exactly `wanted`; returns (added, removed).
pub fn reconcile(iface: &str, wanted: &BTreeSet<Ipv4Addr>) -> Result<(usize, usize), LbAddrError> {
    let have = current(iface)?;
    let mut counts = (0, 0);
    for a in wanted.difference(&have) {
        ip(&["addr", "add", &format!("{a}/32"), "dev", iface])?;
        counts.0 += 1;
    }
    for a in have.difference(wanted) {
        ip(&["addr", "del", &format!("{a}/32"), "dev", iface])?;
        counts.1 += 1;
    }
    Ok(counts)
}

/// Whether `node` announces: the first of the sorted Ready node names.
pub fn is_announcer<'a>(node: &str, ready_nodes: impl IntoIterator<Item = &'a String>) -> bool {
    ready_nodes.into_iter().min().is_some_and(|first| first == node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ready_node_announces() {
        let nodes: Vec<String> = vec!["node2".into(), "node1".into(), "node3".into()];
        assert!(is_announcer("node1", &nodes));
        assert!(!is_announcer("node2", &nodes));
        assert!(!is_announcer("node1", &Vec::<String>::new()));
    }
}
