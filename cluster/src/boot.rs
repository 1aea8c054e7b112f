//! The boot, one function per step the way `minik up` shows them: the network, the API
//! server (and the forwarder on the host's loopback), the control plane, the nodes'
//! minilets, minikproxy, VM nodes (when asked), nodes Ready, and the course's demo. Each
//! step reports to the progress file; a step that fails ends the boot, while a part that
//! does not work (minik-dns, minikproxy) is reported as NOT READY and the boot goes on.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::ClusterConfig;
use crate::keeper::stopping;
use crate::kubectl::{node_ready, Kubectl};
use crate::procs::{Early, Supervisor};
use crate::progress::Reporter;
use crate::vm::{Accel, VmConfig};
use crate::{demo, forward, network, nodes, services, vm};

/// How long a process must keep running after its start to count as started.
const START_GRACE: Duration = Duration::from_millis(500);

/// How many steps `minik up` shows (the keeper's first, the sandbox, included).
pub fn steps(cfg: &ClusterConfig, vms: &VmConfig) -> usize {
    let demo = usize::from(cfg.demo);
    if cfg.vm_nodes() {
        // sandbox, network, VMs, API, node agents, nodes Ready
        6 + demo
    } else {
        // sandbox, network, API, control plane, minilets, minikproxy, nodes Ready
        7 + demo + usize::from(vms.count > 0)
    }
}

/// Builds the cluster, step by step.
pub fn boot(
    cfg: &ClusterConfig,
    vms: &VmConfig,
    progress: &mut Reporter,
    sup: &Supervisor,
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
) -> anyhow::Result<Option<Accel>> {
    if cfg.vm_nodes() {
        return boot_vms(cfg, vms, progress, sup, rt, listener).map(Some);
    }
    network_step(cfg, progress)?;
    check_stop()?;
    // Node files and image imports need no API server: they run while it starts.
    let preparing = nodes::start_preparing(cfg);
    let kubectl = api_step(cfg, progress, sup, rt, listener)?;
    check_stop()?;
    control_plane_step(cfg, progress, sup)?;
    check_stop()?;
    progress.step(&format!("nodes: images and minilet on {}", cfg.node_names().join(", ")));
    preparing.join().map_err(|_| anyhow::anyhow!("node preparation panicked"))??;
    minilet_step(cfg, progress, sup)?;
    check_stop()?;
    let proxies_work = proxy_step(cfg, progress, sup)?;
    check_stop()?;
    let mut accel = None;
    if vms.count > 0 {
        progress.step(&format!("VM nodes: {} under QEMU", vms.names().join(", ")));
        let a = vm::boot_extras(cfg, vms, sup, &stopping)?;
        progress.ok(&format!("{a:?} at {}..{}", cfg.node_ip(cfg.nodes + 1), cfg.node_ip(cfg.nodes + vms.count)));
        accel = Some(a);
        check_stop()?;
    }
    let all_nodes = vms.all_names(cfg);
    nodes_ready_step(&all_nodes, progress, &kubectl)?;
    check_stop()?;
    if cfg.demo {
        demo_step(cfg, progress, &kubectl, proxies_work)?;
    }
    Ok(accel)
}

/// A `--backend vm` cluster: every node a VM, the control plane in node1's. The VMs boot
/// in parallel; the others' services wait (in the VM) for the credentials the keeper
/// issues once node1's API answers.
fn boot_vms(
    cfg: &ClusterConfig,
    vc: &VmConfig,
    progress: &mut Reporter,
    sup: &Supervisor,
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
) -> anyhow::Result<Accel> {
    network_step(cfg, progress)?;
    check_stop()?;
    let vms = vc.all(cfg);
    let names: Vec<String> = vms.iter().map(|v| v.name.clone()).collect();
    progress.step(&format!("VM nodes: {} under QEMU", names.join(", ")));
    for vm in &vms {
        vm.prepare(cfg, vc)?;
    }
    let accel = vm::choose_accel(vc, &cfg.layout().logs())?;
    let started = vm::start_all(cfg, vc, vms, accel, sup)?;
    progress.ok(&format!("{accel:?}, {} MiB each, at {}..{}", vc.memory_mib, cfg.node_ip(1), cfg.node_ip(cfg.nodes)));
    check_stop()?;

    progress.step("API server (miniapi) in node1's VM");
    let layout = cfg.layout();
    let node1_pid = started.first().map(|(_, pid)| *pid).context("no VM nodes")?;
    let kubectl = Kubectl::new(network::open(network::UNDERLAY)?, layout.inner_kubeconfig(), layout.kube_cache());
    let console = &started[0].0.console;
    let alive = || {
        if !sup.running(node1_pid) {
            return Err(format!("node1's QEMU ended: {}", sup.log_tail(node1_pid, 3)));
        }
        match std::fs::read_to_string(console).ok().and_then(|t| t.lines().find(|l| l.contains(vm::FAILED_LINE)).map(str::to_string)) {
            Some(l) => Err(l),
            None => Ok(()),
        }
    };
    publish_api(cfg, &kubectl, Duration::from_secs(240), alive, rt, listener, network::open(network::UNDERLAY)?)
        .context("the API server in node1's VM did not become ready (see logs/node1-console.log and node1/logs/)")?;
    progress.ok(&format!("{}, on the host https://127.0.0.1:{}", cfg.api_inner_url(), cfg.api_port));
    check_stop()?;

    progress.step("nodes: credentials; control plane, minilet and minikproxy in every VM");
    for n in &names {
        nodes::write_credentials(cfg, n)?;
    }
    vm::wait_ready(cfg, &started, sup, &stopping)?;
    progress.ok("");
    check_stop()?;
    nodes_ready_step(&names, progress, &kubectl)?;
    check_stop()?;
    if cfg.demo {
        demo_step(cfg, progress, &kubectl, true)?;
    }
    Ok(accel)
}

/// Where a netns node's services find their binaries and files (the host's paths).
pub fn netns_place(cfg: &ClusterConfig, node: &str) -> services::Place {
    let layout = cfg.layout();
    services::Place {
        bin: cfg.bin_dir.clone(),
        api_dir: layout.api_dir(),
        admin_kubeconfig: layout.inner_kubeconfig(),
        node_kubeconfig: nodes::kubeconfig_path(&layout, node),
        minilet_config: nodes::config_path(&layout, node),
    }
}

/// What to say about a process that ended right after its start.
fn ended(name: &str, state: &str, log: &str) -> String {
    if state == "exited 2" && log.contains("not built yet") {
        format!("{name} is not built yet (the binary is a skeleton)")
    } else {
        format!("{name} {state}: {}", log.lines().last().unwrap_or("").trim())
    }
}

fn check_stop() -> anyhow::Result<()> {
    if stopping() {
        bail!("interrupted (SIGTERM: `minik down` or Ctrl-C)");
    }
    Ok(())
}

/// The underlay, the nodes and `ext`.
fn network_step(cfg: &ClusterConfig, progress: &mut Reporter) -> anyhow::Result<()> {
    if cfg.vm_nodes() {
        progress.step(&format!("network: underlay {}, ext", cfg.underlay));
        network::build(cfg)?;
        progress.ok(&format!("bridge br0 at {}, ext: {}", cfg.gateway_ip(), cfg.ext_ip()));
        return Ok(());
    }
    progress.step(&format!("network: underlay {}, {} nodes, ext", cfg.underlay, cfg.nodes));
    network::build(cfg)?;
    progress.ok(&format!(
        "{}: {}..{}, ext: {}",
        if cfg.nodes == 1 { "node1".to_string() } else { format!("node1..node{}", cfg.nodes) },
        cfg.node_ip(1),
        cfg.node_ip(cfg.nodes),
        cfg.ext_ip()
    ));
    Ok(())
}

/// miniapi on node1, ready; the host kubeconfig; the forwarder. Returns the kubectl the
/// later steps use.
fn api_step(
    cfg: &ClusterConfig,
    progress: &mut Reporter,
    sup: &Supervisor,
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
) -> anyhow::Result<Kubectl> {
    progress.step("API server (miniapi) on node1");
    let layout = cfg.layout();
    let node1 = network::open("node1")?;
    let api = services::miniapi(cfg, &netns_place(cfg, "node1"));
    let api_pid = sup.spawn("miniapi", "node1", &node1, "control", api)?;
    let kubectl = Kubectl::new(network::open("node1")?, layout.inner_kubeconfig(), layout.kube_cache());
    let alive = || if sup.running(api_pid) { Ok(()) } else { Err(format!("miniapi ended: {}", sup.log_tail(api_pid, 3))) };
    publish_api(cfg, &kubectl, Duration::from_secs(60), alive, rt, listener, node1).context("the API server did not become ready")?;
    progress.ok(&format!("{}, on the host https://127.0.0.1:{}", cfg.api_inner_url(), cfg.api_port));
    Ok(kubectl)
}

/// The controller manager, the scheduler and minik-dns on node1.
fn control_plane_step(cfg: &ClusterConfig, progress: &mut Reporter, sup: &Supervisor) -> anyhow::Result<()> {
    progress.step("control plane: controller manager, scheduler, cluster DNS");
    let place = netns_place(cfg, "node1");
    let node1 = network::open("node1")?;
    let cm_pid = sup.spawn("controller-manager", "node1", &node1, "control", services::controller_manager(cfg, &place))?;
    let sched_pid = sup.spawn("scheduler", "node1", &node1, "control", services::scheduler(&place))?;
    let dns_pid = sup.spawn("minik-dns", "node1", &node1, "control", services::dns(cfg, &place))?;
    let early = sup.early_all(&[cm_pid, sched_pid, dns_pid], START_GRACE);
    for (name, e) in ["controller manager", "scheduler"].iter().zip(&early) {
        if let Early::Ended(state, log) = e {
            bail!("{}", ended(name, state, log));
        }
    }
    match &early[2] {
        Early::Running => progress.ok(&format!("DNS at {}", cfg.dns_ip())),
        Early::Ended(state, log) => progress.warn(&format!("{}; Service names will not resolve", ended("minik-dns", state, log))),
    }
    Ok(())
}

/// Every node's credentials and minilet (the step's title is already out: the images
/// were imported in the background).
fn minilet_step(cfg: &ClusterConfig, progress: &mut Reporter, sup: &Supervisor) -> anyhow::Result<()> {
    nodes::write_all_credentials(cfg)?;
    let mut minilets = Vec::new();
    for name in cfg.node_names() {
        let ns = network::open(&name)?;
        let pid = sup.spawn("minilet", &name, &ns, &name, services::minilet(&netns_place(cfg, &name)))?;
        minilets.push((name, pid));
    }
    let pids: Vec<u32> = minilets.iter().map(|(_, p)| *p).collect();
    for ((name, _), e) in minilets.iter().zip(sup.early_all(&pids, START_GRACE)) {
        if let Early::Ended(state, log) = e {
            bail!("{}", ended(&format!("minilet on {name}"), &state, &log));
        }
    }
    progress.ok("");
    Ok(())
}

/// minikproxy on every node; returns whether all of them run.
fn proxy_step(cfg: &ClusterConfig, progress: &mut Reporter, sup: &Supervisor) -> anyhow::Result<bool> {
    progress.step("minikproxy on every node");
    let mut proxies = Vec::new();
    for name in cfg.node_names() {
        let ns = network::open(&name)?;
        let pid = sup.spawn("minikproxy", &name, &ns, &name, services::minikproxy(cfg, &netns_place(cfg, &name), &name, "eth0"))?;
        proxies.push((name, pid));
    }
    let mut broken = Vec::new();
    let pids: Vec<u32> = proxies.iter().map(|(_, p)| *p).collect();
    for ((name, _), e) in proxies.iter().zip(sup.early_all(&pids, START_GRACE)) {
        if let Early::Ended(state, log) = e {
            broken.push(format!("{name}: {}", ended("minikproxy", &state, &log)));
        }
    }
    if broken.is_empty() {
        progress.ok("");
    } else {
        progress.warn(&format!("{}; Services will not forward", broken.join("; ")));
    }
    Ok(broken.is_empty())
}

/// Waits until every node is registered and Ready.
fn nodes_ready_step(names: &[String], progress: &mut Reporter, kubectl: &Kubectl) -> anyhow::Result<()> {
    progress.step("nodes Ready");
    let summary = kubectl
        .wait(Duration::from_secs(90), &stopping, |k| {
            let nodes = k.json(&["get", "nodes"]).map_err(|e| e.to_string())?;
            let items = nodes["items"].as_array().cloned().unwrap_or_default();
            let mut ready = Vec::new();
            for name in names {
                match items.iter().find(|n| n["metadata"]["name"] == name.as_str()) {
                    // A node without a pod CIDR cannot run pods yet (its CNI config waits for it).
                    Some(n) if node_ready(n) => match n["spec"]["podCIDR"].as_str() {
                        Some(cidr) => ready.push(format!("{name} {cidr}")),
                        None => return Err(format!("{name} has no pod CIDR yet")),
                    },
                    Some(_) => return Err(format!("{name} is not Ready")),
                    None => return Err(format!("{name} has not registered")),
                }
            }
            Ok(ready.join(", "))
        })
        .context("the nodes did not become Ready (see the minilet logs)")?;
    progress.ok(&summary);
    Ok(())
}

/// The course's demo, in the course's order: the db and its Service first; the API once
/// the db runs (demo-api, like go-demo-2, exits when its db is not there yet).
fn demo_step(cfg: &ClusterConfig, progress: &mut Reporter, kubectl: &Kubectl, proxies_work: bool) -> anyhow::Result<()> {
    progress.step(&format!("demo: {} (db, API x3, replicaset-svc, api-service on :30002)", demo::NAMESPACE));
    let dir = cfg.layout().demo_dir();
    demo::write(&dir)?;
    let (first, then) = demo::FILES.split_at(demo::API_FILES_FROM);
    for (file, _) in first {
        kubectl.ok(&["apply", "-f", &dir.join(file).display().to_string()])?;
    }
    let _ = kubectl.wait(Duration::from_secs(60), &stopping, |k| rs_ready(k, &demo::REPLICASETS[..1]));
    for (file, _) in then {
        kubectl.ok(&["apply", "-f", &dir.join(file).display().to_string()])?;
    }
    match kubectl.wait(Duration::from_secs(120), &stopping, |k| rs_ready(k, demo::REPLICASETS)) {
        Ok(()) => progress.ok(""),
        Err(e) if !proxies_work => progress.warn(&format!("{e:#} (minikproxy is not working, so the API cannot reach the db)")),
        Err(e) => progress.warn(&format!("{e:#}; see `kubectl -n {} get pods -o wide`", demo::NAMESPACE)),
    }
    Ok(())
}

/// Whether each of `sets` (name, replicas) in the demo's namespace has its replicas ready.
fn rs_ready(k: &Kubectl, sets: &[(&str, i64)]) -> Result<(), String> {
    let rs = k.json(&["get", "rs", "-n", demo::NAMESPACE]).map_err(|e| e.to_string())?;
    let items = rs["items"].as_array().cloned().unwrap_or_default();
    for (name, want) in sets {
        let got = items
            .iter()
            .find(|r| r["metadata"]["name"] == *name)
            .and_then(|r| r["status"]["readyReplicas"].as_i64())
            .unwrap_or(0);
        if got < *want {
            return Err(format!("{name}: {got}/{want} ready"));
        }
    }
    Ok(())
}

/// Waits (at most `limit`, failing early when `alive` says so) until miniapi has written
/// its kubeconfig and answers `/readyz`; then writes the host's kubeconfig and forwards
/// the host's listening socket to node1's API from `netns`.
fn publish_api(
    cfg: &ClusterConfig,
    kubectl: &Kubectl,
    limit: Duration,
    alive: impl Fn() -> Result<(), String>,
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    netns: minik_shared::netns::NetNs,
) -> anyhow::Result<()> {
    let layout = cfg.layout();
    kubectl.wait(limit, &stopping, |k| {
        alive()?;
        if !layout.inner_kubeconfig().exists() {
            return Err("miniapi has not written its kubeconfig yet".into());
        }
        k.ok(&["get", "--raw", "/readyz"]).map(|_| ()).map_err(|e| e.to_string())
    })?;
    write_host_kubeconfig(cfg)?;
    let target = SocketAddr::new(IpAddr::V4(cfg.node_ip(1)), 6443);
    forward::serve(rt, listener, netns, target)
}

/// Writes `<state>/admin.kubeconfig`: miniapi's, with the server on the host's loopback.
fn write_host_kubeconfig(cfg: &ClusterConfig) -> anyhow::Result<()> {
    let layout = cfg.layout();
    let inner = std::fs::read_to_string(layout.inner_kubeconfig()).context("cannot read miniapi's kubeconfig")?;
    let text = host_kubeconfig(&inner, cfg.api_port).context("miniapi's kubeconfig has no server line")?;
    let path = layout.host_kubeconfig();
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).context("kubeconfig permissions")?;
    Ok(())
}

/// `inner` with every `server:` line pointing at `https://127.0.0.1:<port>`; `None`
/// without one.
fn host_kubeconfig(inner: &str, port: u16) -> Option<String> {
    let mut replaced = false;
    let lines: Vec<String> = inner
        .lines()
        .map(|l| {
            let rest = l.trim_start();
            if rest.starts_with("server:") {
                replaced = true;
                format!("{}server: https://127.0.0.1:{port}", &l[..l.len() - rest.len()])
            } else {
                l.to_string()
            }
        })
        .collect();
    replaced.then(|| lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_kubeconfig_points_at_the_loopback_and_keeps_the_rest() {
        let inner = "clusters:\n- name: minik\n  cluster:\n    server: https://192.168.50.11:6443\n    certificate-authority-data: X\n";
        let out = host_kubeconfig(inner, 7443).expect("server line");
        assert!(out.contains("    server: https://127.0.0.1:7443\n"), "{out}");
        assert!(out.contains("certificate-authority-data: X") && !out.contains("192.168.50.11"), "{out}");
        assert!(host_kubeconfig("users: []\n", 1).is_none());
    }

    #[test]
    fn a_skeleton_binary_is_named_as_such() {
        assert!(ended("minik-dns", "exited 2", "minik-dns: not built yet").contains("not built yet"));
        assert_eq!(ended("minilet", "exited 1", "a\nbad config"), "minilet exited 1: bad config");
    }
}
