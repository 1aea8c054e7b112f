//! `minik start NODE`: the other half of `minik kill NODE` — a VM node booted again, or a
//! netns node's minilet and minikproxy started again — after which the node rejoins.
//!
//! The keeper owns the processes, so the command asks it: it writes
//! `<state>/run/requests/start-NODE`, the keeper ([`serve`], called from its supervising
//! loop) starts the node and writes `start-NODE.done` ("ok ..." or "error ..."), and the
//! command then waits for the node to be Ready again through the API.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::boot::netns_place;
use crate::config::{ClusterConfig, Layout};
use crate::procs::Supervisor;
use crate::state::running_keeper;
use crate::vm::{Accel, VmConfig};
use crate::{network, services, vm};

/// How long the keeper may take to start a node (a VM boots under TCG).
const START_LIMIT: Duration = Duration::from_secs(240);
/// How long the node may take to be Ready after its start.
const READY_LIMIT: Duration = Duration::from_secs(120);

fn requests(layout: &Layout) -> PathBuf {
    layout.root.join("run/requests")
}

/// `minik start NODE`.
pub fn start(state_dir: &Path, node: &str) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    let vc = VmConfig::load(&layout)?;
    if !vc.all_names(&cfg).iter().any(|n| n == node) {
        bail!("no node {node:?} in this cluster; nodes are {}", vc.all_names(&cfg).join(", "));
    }
    if running_keeper(&layout).is_none() {
        bail!("the cluster in {} is not running; start it with `minik up`", state_dir.display());
    }
    let dir = requests(&layout);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let done = dir.join(format!("start-{node}.done"));
    let _ = std::fs::remove_file(&done);
    let req = dir.join(format!("start-{node}"));
    std::fs::write(&req, "").with_context(|| format!("cannot write {}", req.display()))?;
    let t0 = Instant::now();
    println!("{node}: starting ...");
    let answer = loop {
        if let Ok(a) = std::fs::read_to_string(&done) {
            if !a.is_empty() {
                break a;
            }
        }
        if t0.elapsed() > START_LIMIT {
            let _ = std::fs::remove_file(&req);
            bail!("the keeper did not start {node} within {}s; see {}", START_LIMIT.as_secs(), layout.logs().display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = std::fs::remove_file(&done);
    match answer.trim().strip_prefix("ok ") {
        Some(what) => println!("{node}: {what} ({:.1}s)", t0.elapsed().as_secs_f64()),
        None => bail!("{node}: {}", answer.trim().trim_start_matches("error ")),
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("async runtime")?;
    rt.block_on(wait_ready(&layout.host_kubeconfig(), node))?;
    println!("{node}: Ready ({:.1}s)", t0.elapsed().as_secs_f64());
    Ok(())
}

async fn wait_ready(kubeconfig: &Path, node: &str) -> anyhow::Result<()> {
    let client = minik_shared::apiclient::connect(Some(kubeconfig)).await?;
    let api: Api<Node> = Api::all(client);
    let end = Instant::now() + READY_LIMIT;
    let mut last = String::from("not asked yet");
    while Instant::now() < end {
        match api.get_opt(node).await {
            Ok(Some(n)) => {
                let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
                // Back means Ready and rid of the taints the node lifecycle controller put
                // on it while it was gone (pods given to it meanwhile would be evicted).
                let away = n.spec.as_ref().and_then(|s| s.taints.as_ref()).map(|ts| {
                    ts.iter().filter(|t| t.key == "node.kubernetes.io/unreachable" || t.key == "node.kubernetes.io/not-ready").map(|t| t.key.clone()).collect::<Vec<_>>()
                });
                match ready {
                    Some(c) if c.status == "True" && away.as_ref().is_none_or(|a| a.is_empty()) => return Ok(()),
                    Some(c) if c.status == "True" => last = format!("Ready, still tainted {:?}", away.unwrap_or_default()),
                    Some(c) => last = format!("Ready={} ({})", c.status, c.reason.clone().unwrap_or_default()),
                    None => last = "no Ready condition".into(),
                }
            }
            Ok(None) => last = "not registered".into(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("{node} is not Ready after {}s: {last}", READY_LIMIT.as_secs())
}

/// The keeper's side: starts every node asked for; the answer is written when the node's
/// processes run (a VM: when its console says its services run).
pub fn serve(cfg: &ClusterConfig, vc: &VmConfig, accel: Option<Accel>, sup: &Supervisor) {
    let dir = requests(&cfg.layout());
    let Ok(rd) = std::fs::read_dir(&dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(node) = name.strip_prefix("start-").filter(|n| !n.ends_with(".done")).map(str::to_string) else { continue };
        let _ = std::fs::remove_file(e.path());
        let done = dir.join(format!("{name}.done"));
        let (cfg, vc, sup) = (cfg.clone(), vc.clone(), sup.clone());
        std::thread::spawn(move || {
            let answer = match start_node(&cfg, &vc, accel, &sup, &node) {
                Ok(what) => format!("ok {what}\n"),
                Err(e) => format!("error {e:#}\n"),
            };
            tracing::info!(node, answer = answer.trim(), "start request");
            if let Err(e) = std::fs::write(&done, answer) {
                tracing::warn!(error = %e, "cannot answer the start request");
            }
        });
    }
}

fn start_node(cfg: &ClusterConfig, vc: &VmConfig, accel: Option<Accel>, sup: &Supervisor, node: &str) -> anyhow::Result<String> {
    let running = |name: &str| crate::procs::load_status(&cfg.layout().processes()).iter().any(|p| p.node == node && p.name == name && p.state == "running" && crate::procs::alive(p.pid));
    if let Some(v) = vc.find(cfg, node) {
        if running("qemu") {
            bail!("its VM runs already; `minik kill {node}` powers it off");
        }
        let accel = accel.unwrap_or(Accel::Tcg);
        let pid = v.start(cfg, vc, accel, sup)?;
        vm::wait_ready(cfg, &[(v, pid)], sup, &crate::keeper::stopping)?;
        return Ok(format!("VM booted again ({accel:?}, QEMU pid {pid})"));
    }
    if running("minilet") {
        bail!("its minilet runs already; `minik kill {node}` stops it");
    }
    let ns = network::open(node)?;
    let place = netns_place(cfg, node);
    let m = sup.spawn("minilet", node, &ns, node, services::minilet(&place))?;
    let p = sup.spawn("minikproxy", node, &ns, node, services::minikproxy(cfg, &place, node, "eth0"))?;
    Ok(format!("minilet (pid {m}) and minikproxy (pid {p}) started again"))
}
