//! The cluster's network, built inside the keeper's sandbox with iproute2 (the same
//! commands a person would type, so the keeper's log reads as a recipe): an `underlay`
//! namespace holding the bridge `br0` (with the underlay's gateway address), and one
//! namespace per host — `node1..nodeN` and `ext`, a machine on the underlay that is not a
//! node — each with `eth0` on a veth into the bridge, a default route via the gateway, and
//! IP forwarding on for the nodes.

use std::process::Command;

use anyhow::{bail, Context};
use minik_shared::netns::NetNs;

use crate::config::ClusterConfig;

/// The namespace holding the underlay bridge.
pub const UNDERLAY: &str = "underlay";
/// The underlay host that is not a node.
pub const EXT: &str = "ext";

/// Runs `ip ARGS…`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The path of a named namespace inside the sandbox.
pub fn netns_path(name: &str) -> String {
    format!("/run/netns/{name}")
}

/// Opens a named namespace of the sandbox.
pub fn open(name: &str) -> anyhow::Result<NetNs> {
    NetNs::open(netns_path(name)).with_context(|| format!("no network namespace {name:?} in the sandbox"))
}

fn add_host(name: &str, addr: &str, gateway: &str) -> anyhow::Result<()> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    let outer = format!("v-{name}");
    ip(&["-n", UNDERLAY, "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", name])?;
    ip(&["-n", UNDERLAY, "link", "set", &outer, "master", "br0", "up"])?;
    ip(&["-n", name, "addr", "add", addr, "dev", "eth0"])?;
    ip(&["-n", name, "link", "set", "eth0", "up"])?;
    ip(&["-n", name, "route", "add", "default", "via", gateway])?;
    Ok(())
}

fn enable_forwarding(name: &str) -> anyhow::Result<()> {
    let ns = open(name)?;
    // /proc/sys/net is the namespace of the thread that opens it.
    ns.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
        .with_context(|| format!("cannot enable ip_forward in {name}"))
}

/// Builds the underlay, the nodes and `ext`.
pub fn build(cfg: &ClusterConfig) -> anyhow::Result<()> {
    let plen = cfg.underlay.prefix_len();
    ip(&["netns", "add", UNDERLAY])?;
    ip(&["-n", UNDERLAY, "link", "set", "lo", "up"])?;
    ip(&["-n", UNDERLAY, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", UNDERLAY, "addr", "add", &format!("{}/{plen}", cfg.gateway_ip()), "dev", "br0"])?;
    ip(&["-n", UNDERLAY, "link", "set", "br0", "up"])?;
    let gw = cfg.gateway_ip().to_string();
    // VM nodes bring their own network stack: they join br0 through TAP devices.
    let netns_nodes = if cfg.vm_nodes() { Vec::new() } else { cfg.node_names() };
    for (i, node) in netns_nodes.iter().enumerate() {
        let addr = format!("{}/{plen}", cfg.node_ip(i as u8 + 1));
        add_host(node, &addr, &gw)?;
        enable_forwarding(node)?;
    }
    add_host(EXT, &format!("{}/{plen}", cfg.ext_ip()), &gw)?;
    Ok(())
}
