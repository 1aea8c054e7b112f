//! The keeper: the process `minik up` leaves behind. It starts in a fresh network and
//! mount namespace (`unshare --net --mount --propagation private`), makes that a sandbox
//! like `scripts/sandbox.sh` (tmpfs on `/run/netns`, `lo` up), builds the cluster in it
//! step by step (reporting to `progress.jsonl`), then supervises the processes and
//! publishes the API on the host's loopback until SIGTERM (`minik down`), when it stops
//! everything it started. When it and its children are gone, the sandbox's namespaces and
//! mounts go with them.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::mount::{mount, MsFlags};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::cgroups::{group_name, ClusterCgroups};
use crate::config::{ClusterConfig, Layout};
use crate::forward;
use crate::kubectl::{node_ready, Kubectl};
use crate::network;
use crate::procs::{Early, Supervisor};
use crate::progress::Reporter;
use crate::vm::VmConfig;
use crate::{demo, nodes, vm};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether SIGTERM or SIGINT arrived.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The cgroup tree's record, for `down` and `kill`.
pub fn cgroups_file(layout: &Layout) -> std::path::PathBuf {
    layout.root.join("cgroups.json")
}

/// Makes the fresh namespaces a sandbox. Runs before any thread exists.
fn enter_sandbox() -> anyhow::Result<()> {
    let own = std::fs::read_link("/proc/self/ns/net").context("cannot read /proc/self/ns/net")?;
    match std::env::var("MINIK_HOST_NETNS") {
        Ok(host) if Path::new(&host) != own => {}
        _ => bail!("the keeper must start in a network namespace of its own; `minik up` starts it that way"),
    }
    std::fs::create_dir_all("/run/netns").context("cannot create /run/netns")?;
    mount(Some("minik-netns"), "/run/netns", Some("tmpfs"), MsFlags::empty(), Some("mode=0755,size=16m"))
        .context("cannot mount a tmpfs on /run/netns in the sandbox")?;
    mount(None::<&str>, "/run/netns", None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
        .context("cannot make /run/netns shared")?;
    network::ip(&["link", "set", "lo", "up"])?;
    Ok(())
}

fn install_signals() -> anyhow::Result<()> {
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }.with_context(|| format!("cannot handle {sig}"))?;
    }
    Ok(())
}

/// `minik sandbox`: the keeper's whole life. Returns when the cluster is down again.
pub fn run(state_dir: &Path) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    // Take the listening socket first: it was bound in the host's namespace by `up`.
    // SAFETY: `up` passes its listening socket on LISTEN_FD and nothing else uses that fd.
    let listener = unsafe {
        if libc::fcntl(forward::LISTEN_FD, libc::F_GETFD) < 0 {
            bail!("no listening socket on fd {}; `minik up` passes one", forward::LISTEN_FD);
        }
        forward::inherited(forward::LISTEN_FD)
    };
    enter_sandbox()?;
    install_signals()?;
    std::fs::write(layout.keeper_pid(), std::process::id().to_string()).context("cannot write keeper.pid")?;
    let vms = VmConfig::load(&layout)?;
    let steps = if cfg.demo { 8 } else { 7 } + usize::from(vms.count > 0);
    let mut progress = Reporter::create(&layout.progress(), steps)?;
    progress.step("sandbox: private network and mount namespaces");
    let cgroups = ClusterCgroups::create(&group_name(&cfg.state_dir));
    cgroups.save(&cgroups_file(&layout))?;
    progress.ok(&format!("keeper pid {}", std::process::id()));

    let sup = Supervisor::new(layout.processes(), layout.logs(), cgroups.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("async runtime")?;
    let code = match boot(&cfg, &vms, &mut progress, &sup, &rt, listener) {
        Ok(()) => {
            progress.ready();
            tracing::info!("cluster up; supervising until SIGTERM");
            while !stopping() {
                sup.reap();
                std::thread::sleep(Duration::from_millis(300));
            }
            0
        }
        Err(e) => {
            progress.fail(&format!("{e:#}"));
            1
        }
    };
    tracing::info!("stopping the cluster");
    // Everything is removed afterwards, so a short grace: whatever has not exited by then
    // (minilet and miniapi with open watches often have not) gets SIGKILL.
    sup.stop_all(Duration::from_secs(2));
    let left = cgroups.kill_all(None, Duration::from_secs(5));
    if left > 0 {
        tracing::warn!(left, "processes still in the cluster's cgroup");
    }
    for dir in cgroups.remove(Duration::from_secs(3)) {
        tracing::warn!(dir = %dir.display(), "cgroup not removed");
    }
    rt.shutdown_timeout(Duration::from_millis(500));
    let _ = std::fs::remove_file(layout.keeper_pid());
    tracing::info!("keeper done");
    std::process::exit(code);
}

fn bin(cfg: &ClusterConfig, name: &str) -> Command {
    Command::new(cfg.bin_dir.join(name))
}

/// What to say about a process that ended right after its start.
fn ended(name: &str, state: &str, log: &str) -> String {
    if state == "exited 2" && log.contains("not built yet") {
        format!("{name} is not built yet (the binary is a skeleton)")
    } else {
        format!("{name} {state}: {}", log.lines().last().unwrap_or("").trim())
    }
}

fn boot(
    cfg: &ClusterConfig,
    vms: &VmConfig,
    progress: &mut Reporter,
    sup: &Supervisor,
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
) -> anyhow::Result<()> {
    let layout = cfg.layout();
    let node_names = cfg.node_names();

    progress.step(&format!("network: underlay {}, {} nodes, ext", cfg.underlay, cfg.nodes));
    network::build(cfg)?;
    progress.ok(&format!(
        "{}: {}..{}, ext: {}",
        if cfg.nodes == 1 { "node1".to_string() } else { format!("node1..node{}", cfg.nodes) },
        cfg.node_ip(1),
        cfg.node_ip(cfg.nodes),
        cfg.ext_ip()
    ));
    check_stop()?;

    // Node files and image imports need no API server: they run while it starts.
    let preparing = nodes::start_preparing(cfg);

    progress.step("API server (miniapi) on node1");
    let node1 = network::open("node1")?;
    let mut api = bin(cfg, "miniapi");
    api.arg("--data-dir").arg(layout.api_dir());
    api.args(["--listen", "0.0.0.0:6443", "--advertise-address", &cfg.node_ip(1).to_string(), "--advertise-address", "127.0.0.1"]);
    api.args(["--service-cluster-ip-range", &cfg.service_cidr.to_string()]);
    let api_pid = sup.spawn("miniapi", "node1", &node1, "control", api)?;
    let kubectl = Kubectl::new(network::open("node1")?, layout.inner_kubeconfig(), layout.kube_cache());
    kubectl
        .wait(Duration::from_secs(60), &stopping, |k| {
            if !sup.running(api_pid) {
                return Err(format!("miniapi ended: {}", sup.log_tail(api_pid, 3)));
            }
            if !layout.inner_kubeconfig().exists() {
                return Err("no kubeconfig yet".into());
            }
            k.ok(&["get", "--raw", "/readyz"]).map(|_| ()).map_err(|e| e.to_string())
        })
        .context("the API server did not become ready")?;
    if !sup.running(api_pid) {
        bail!("miniapi ended: {}", sup.log_tail(api_pid, 5));
    }
    write_host_kubeconfig(cfg)?;
    let target = SocketAddr::new(IpAddr::V4(cfg.node_ip(1)), 6443);
    forward::serve(rt, listener, network::open("node1")?, target)?;
    progress.ok(&format!("{}, on the host https://127.0.0.1:{}", cfg.api_inner_url(), cfg.api_port));
    check_stop()?;

    progress.step("control plane: controller manager, scheduler, cluster DNS");
    let kc = layout.inner_kubeconfig();
    let mut cm = bin(cfg, "minik-controller-manager");
    cm.arg("--kubeconfig").arg(&kc);
    cm.args(["--cluster-cidr", &cfg.pod_cidr.to_string(), "--node-cidr-mask-size", "24"]);
    if let Some(g) = &cfg.node_monitor_grace_period {
        cm.args(["--node-monitor-grace-period", g]);
    }
    if let Some(t) = &cfg.pod_eviction_timeout {
        cm.args(["--pod-eviction-timeout", t]);
    }
    cm.args(["--load-balancer-pool", &cfg.lb_pool().to_string()]);
    let cm_pid = sup.spawn("controller-manager", "node1", &node1, "control", cm)?;
    let mut sched = bin(cfg, "minik-scheduler");
    sched.arg("--kubeconfig").arg(&kc);
    let sched_pid = sup.spawn("scheduler", "node1", &node1, "control", sched)?;
    let mut dns = bin(cfg, "minik-dns");
    dns.arg("--kubeconfig").arg(&kc);
    // On node1's address, not 0.0.0.0: a UDP socket on the wildcard answers a pod of
    // node1 from the cni0 address, which conntrack cannot map back to the ClusterIP.
    let dns_listen = format!("{}:53", cfg.node_ip(1));
    dns.args(["--listen", &dns_listen, "--service", "kube-system/kube-dns", "--service-ip", &cfg.dns_ip().to_string()]);
    dns.args(["--advertise-address", &cfg.node_ip(1).to_string()]);
    let dns_pid = sup.spawn("minik-dns", "node1", &node1, "control", dns)?;
    let early = sup.early_all(&[cm_pid, sched_pid, dns_pid], Duration::from_millis(500));
    for (name, e) in ["controller manager", "scheduler"].iter().zip(&early) {
        if let Early::Ended(state, log) = e {
            bail!("{}", ended(name, state, log));
        }
    }
    match &early[2] {
        Early::Running => progress.ok(&format!("DNS at {}", cfg.dns_ip())),
        Early::Ended(state, log) => progress.warn(&format!("{}; Service names will not resolve", ended("minik-dns", state, log))),
    }
    check_stop()?;

    progress.step(&format!("nodes: images and minilet on {}", node_names.join(", ")));
    preparing.join().map_err(|_| anyhow::anyhow!("node preparation panicked"))??;
    nodes::write_all_credentials(cfg)?;
    let mut minilets = Vec::new();
    for name in &node_names {
        let ns = network::open(name)?;
        let mut m = bin(cfg, "minilet");
        m.arg("--config").arg(nodes::config_path(&layout, name)).arg("run");
        minilets.push((name.clone(), sup.spawn("minilet", name, &ns, name, m)?));
    }
    let pids: Vec<u32> = minilets.iter().map(|(_, p)| *p).collect();
    for ((name, _), e) in minilets.iter().zip(sup.early_all(&pids, Duration::from_millis(500))) {
        if let Early::Ended(state, log) = e {
            bail!("{}", ended(&format!("minilet on {name}"), &state, &log));
        }
    }
    progress.ok("");
    check_stop()?;

    progress.step("minikproxy on every node");
    let mut proxies = Vec::new();
    for name in &node_names {
        let ns = network::open(name)?;
        let mut p = bin(cfg, "minikproxy");
        p.arg("--kubeconfig").arg(nodes::kubeconfig_path(&layout, name));
        p.args(["--node-name", name, "--cluster-cidr", &cfg.pod_cidr.to_string(), "--lb-interface", "eth0"]);
        proxies.push((name.clone(), sup.spawn("minikproxy", name, &ns, name, p)?));
    }
    let mut broken = Vec::new();
    let pids: Vec<u32> = proxies.iter().map(|(_, p)| *p).collect();
    for ((name, _), e) in proxies.iter().zip(sup.early_all(&pids, Duration::from_millis(500))) {
        if let Early::Ended(state, log) = e {
            broken.push(format!("{name}: {}", ended("minikproxy", &state, &log)));
        }
    }
    if broken.is_empty() {
        progress.ok("");
    } else {
        progress.warn(&format!("{}; Services will not forward", broken.join("; ")));
    }
    check_stop()?;

    if vms.count > 0 {
        progress.step(&format!("VM nodes: {} under QEMU", vms.names().join(", ")));
        let accel = vm::boot_all(cfg, vms, sup, &stopping)?;
        progress.ok(&format!("{accel:?} at {}..{}", cfg.node_ip(cfg.nodes + 1), cfg.node_ip(cfg.nodes + vms.count)));
        check_stop()?;
    }

    progress.step("nodes Ready");
    let node_names: Vec<String> = node_names.iter().cloned().chain(vms.names()).collect();
    let summary = kubectl
        .wait(Duration::from_secs(90), &stopping, |k| {
            let nodes = k.json(&["get", "nodes"]).map_err(|e| e.to_string())?;
            let items = nodes["items"].as_array().cloned().unwrap_or_default();
            let mut ready = Vec::new();
            for name in &node_names {
                match items.iter().find(|n| n["metadata"]["name"] == name.as_str()) {
                    Some(n) if node_ready(n) => {
                        ready.push(format!("{name} {}", n["spec"]["podCIDR"].as_str().unwrap_or("(no podCIDR)")))
                    }
                    Some(_) => return Err(format!("{name} is not Ready")),
                    None => return Err(format!("{name} has not registered")),
                }
            }
            Ok(ready.join(", "))
        })
        .context("the nodes did not become Ready (see the minilet logs)")?;
    progress.ok(&summary);
    check_stop()?;

    if cfg.demo {
        progress.step(&format!("demo: {} (db, API x3, replicaset-svc, api-service on :30002)", demo::NAMESPACE));
        let dir = layout.demo_dir();
        demo::write(&dir)?;
        // The course's order: the db and its Service first; the API once the db answers
        // (demo-api, like go-demo-2, exits when its db is not there yet).
        let (first, then) = demo::FILES.split_at(demo::API_FILES_FROM);
        for (file, _) in first {
            kubectl.ok(&["apply", "-f", &dir.join(file).display().to_string()])?;
        }
        let _ = kubectl.wait(Duration::from_secs(60), &stopping, |k| rs_ready(k, &demo::REPLICASETS[..1]));
        for (file, _) in then {
            kubectl.ok(&["apply", "-f", &dir.join(file).display().to_string()])?;
        }
        let res = kubectl.wait(Duration::from_secs(120), &stopping, |k| rs_ready(k, demo::REPLICASETS));
        match res {
            Ok(()) => progress.ok(""),
            Err(e) if !broken.is_empty() => progress.warn(&format!("{e:#} (minikproxy is not working, so the API cannot reach the db)")),
            Err(e) => progress.warn(&format!("{e:#}; see `kubectl -n {} get pods -o wide`", demo::NAMESPACE)),
        }
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

fn check_stop() -> anyhow::Result<()> {
    if stopping() {
        bail!("interrupted (SIGTERM: `minik down` or Ctrl-C)");
    }
    Ok(())
}

/// Writes `<state>/admin.kubeconfig`: the in-sandbox one with the server on the host's loopback.
fn write_host_kubeconfig(cfg: &ClusterConfig) -> anyhow::Result<()> {
    let layout = cfg.layout();
    let inner = std::fs::read_to_string(layout.inner_kubeconfig()).context("cannot read miniapi's kubeconfig")?;
    let host = format!("https://127.0.0.1:{}", cfg.api_port);
    let mut replaced = false;
    let text: Vec<String> = inner
        .lines()
        .map(|l| match l.trim_start().strip_prefix("server:") {
            Some(_) => {
                replaced = true;
                format!("{}server: {host}", &l[..l.len() - l.trim_start().len()])
            }
            None => l.to_string(),
        })
        .collect();
    if !replaced {
        bail!("miniapi's kubeconfig has no server line");
    }
    let path = layout.host_kubeconfig();
    std::fs::write(&path, text.join("\n") + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).context("kubeconfig permissions")?;
    Ok(())
}
