//! `minik status`: whether the keeper runs, each process it started (with its state),
//! and the nodes as the API sees them (through the host's loopback, as kubectl would).

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::cgroups::ClusterCgroups;
use crate::config::ClusterConfig;
use crate::keeper::cgroups_file;
use crate::procs::{alive, load_status};
use crate::state::running_keeper;
use crate::vm::VmConfig;

/// Prints the status; returns the exit code (0 up, 1 not running).
pub fn status(state_dir: &Path) -> anyhow::Result<u8> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    let Some(pid) = running_keeper(&layout) else {
        println!("cluster in {}: not running (start it with `minik up`)", state_dir.display());
        let left = ClusterCgroups::load(&cgroups_file(&layout)).pids(None).len();
        if left > 0 {
            println!("  but {left} of its processes are still there (the keeper died?); `minik down` removes them");
        }
        return Ok(1);
    };
    println!("cluster in {}: running (keeper pid {pid})", state_dir.display());
    println!("  API: https://127.0.0.1:{} (KUBECONFIG={})", cfg.api_port, layout.host_kubeconfig().display());
    println!("  underlay {}, nodes {}..{}, ext {}", cfg.underlay, cfg.node_ip(1), cfg.node_ip(cfg.nodes), cfg.ext_ip());
    println!();
    println!("{:<20} {:<7} {:<8} STATE", "PROCESS", "NODE", "PID");
    let procs = load_status(&layout.processes());
    for p in &procs {
        let state = if p.state == "running" && !alive(p.pid) { "gone".to_string() } else { p.state.clone() };
        println!("{:<20} {:<7} {:<8} {}", p.name, p.node, p.pid, state);
    }
    for vm in VmConfig::load(&layout)?.all(&cfg) {
        let on = procs.iter().any(|p| p.name == "qemu" && p.node == vm.name && p.state == "running" && alive(p.pid));
        for (name, state) in vm_services(&vm.dir, on) {
            println!("{:<20} {:<7} {:<8} {}", name, vm.name, "(in VM)", state);
        }
    }
    println!();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match rt.block_on(nodes(&layout.host_kubeconfig())) {
        Ok(lines) => {
            println!("{:<8} {:<9} {:<16} POD-CIDR", "NODE", "STATUS", "INTERNAL-IP");
            for l in lines {
                println!("{l}");
            }
        }
        Err(e) => println!("nodes: cannot ask the API: {e:#}"),
    }
    Ok(0)
}

/// The services of a VM node and their states, from what its `minik-node-start` wrote in
/// `status/` (through the 9p share); all "VM powered off" when its QEMU is not running.
fn vm_services(dir: &Path, on: bool) -> Vec<(String, String)> {
    let names: Vec<String> = std::fs::read_to_string(dir.join("services"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('@'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    names
        .into_iter()
        .map(|n| {
            let state = if !on {
                "VM powered off".to_string()
            } else {
                std::fs::read_to_string(dir.join("status").join(&n)).map(|t| t.trim().to_string()).unwrap_or_else(|_| "not started yet".into())
            };
            (n, state)
        })
        .collect()
}

async fn nodes(kubeconfig: &Path) -> anyhow::Result<Vec<String>> {
    let client = minik_shared::apiclient::connect(Some(kubeconfig)).await?;
    let list = Api::<Node>::all(client).list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|n| {
            let st = n.status.clone().unwrap_or_default();
            let ready = st.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
            let ip = st.addresses.unwrap_or_default().into_iter().find(|a| a.type_ == "InternalIP").map(|a| a.address).unwrap_or_default();
            let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone()).unwrap_or_else(|| "<none>".into());
            format!(
                "{:<8} {:<9} {:<16} {}",
                n.metadata.name.clone().unwrap_or_default(),
                if ready { "Ready" } else { "NotReady" },
                ip,
                cidr
            )
        })
        .collect())
}
