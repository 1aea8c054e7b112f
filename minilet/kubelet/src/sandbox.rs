//! The pod sandbox: the namespaces a pod's containers share, and its network.
//!
//! Instead of a pause process, the sandbox's network, IPC and UTS namespaces are pinned
//! by bind mounts under the pod's directory (as CRI-O's pinns does): they live as long as
//! the pod, whatever its containers do, and survive a minilet restart. The network comes
//! from the node's CNI network through the shared executor (cni-bridge, run as a separate
//! binary like any CNI runtime runs plugins). The pod's `/etc/hosts`, `/etc/resolv.conf`
//! and `/etc/hostname` are written here and bind-mounted into each container.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use minik_shared::cni::exec::{CniExecutor, RuntimeConf};
use minik_shared::cni::{CniResult, NetConfList};
use minik_shared::netns;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use serde::{Deserialize, Serialize};

use crate::config::KubeletConfig;

/// What a sandbox is, as stored in the pod's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    /// The pod's directory.
    pub dir: PathBuf,
    /// The pinned network namespace.
    pub netns: PathBuf,
    /// The pinned IPC namespace.
    pub ipcns: PathBuf,
    /// The pinned UTS namespace.
    pub utsns: PathBuf,
    /// The CNI network the pod is attached to.
    pub network: String,
    /// The pod's IPs, first the primary.
    pub ips: Vec<IpAddr>,
    /// The CNI result (kept for DEL and for the status).
    pub cni_result: Option<CniResult>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> anyhow::Error {
    move |e| anyhow::anyhow!("{what}: {e}")
}

/// Pins a new IPC and UTS namespace (with `hostname`) at `ipc` and `uts`.
fn pin_ipc_uts(ipc: &Path, uts: &Path, hostname: &str) -> anyhow::Result<()> {
    for p in [ipc, uts] {
        std::fs::File::create(p).map_err(io(format!("cannot create {}", p.display())))?;
    }
    let (ipc, uts, host) = (ipc.to_path_buf(), uts.to_path_buf(), hostname.to_string());
    std::thread::spawn(move || -> anyhow::Result<()> {
        unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)?;
        nix::unistd::sethostname(&host)?;
        for (src, dst) in [("/proc/thread-self/ns/ipc", &ipc), ("/proc/thread-self/ns/uts", &uts)] {
            mount(Some(src), dst.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| anyhow::anyhow!("cannot pin {src} on {}: {e}", dst.display()))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

fn unpin(p: &Path) {
    if p.exists() {
        let _ = umount2(p, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(p);
    }
}

/// The pod's hostname: its name, cut to 63 characters as the kubelet does.
pub fn hostname(pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// Picks the CNI network: the configured one, else the first conflist.
pub fn network(cfg: &KubeletConfig, exec: &CniExecutor) -> anyhow::Result<NetConfList> {
    match &cfg.cni_network {
        Some(n) => exec.find_network(n).map_err(|e| anyhow::anyhow!("CNI network {n:?}: {e}")),
        None => exec.load_networks()?.into_iter().next().ok_or_else(|| {
            anyhow::anyhow!("no CNI network config in {}; write a conflist there", cfg.cni_conf_dir.display())
        }),
    }
}

/// The CNI parameters of a pod's attachment.
pub fn runtime_conf(pod: &Pod, netns: &Path) -> RuntimeConf {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut rt = RuntimeConf {
        container_id: uid.clone(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), pod.metadata.namespace.clone().unwrap_or_default()),
            ("K8S_POD_NAME".into(), pod.metadata.name.clone().unwrap_or_default()),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), uid.clone()),
            ("K8S_POD_UID".into(), uid),
        ],
        ..RuntimeConf::default()
    };
    let ports: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            p.host_port.map(|hp| {
                serde_json::json!({"hostPort": hp, "containerPort": p.container_port,
                    "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()).to_lowercase()})
            })
        })
        .collect();
    if !ports.is_empty() {
        rt.capability_args.insert("portMappings".into(), serde_json::Value::Array(ports));
    }
    rt
}

/// Creates the sandbox of `pod` under `dir`. On failure, what was made is removed.
pub async fn create(cfg: &KubeletConfig, exec: &CniExecutor, pod: &Pod, dir: &Path) -> anyhow::Result<Sandbox> {
    let ns_dir = dir.join("ns");
    std::fs::create_dir_all(&ns_dir).map_err(io(format!("cannot create {}", ns_dir.display())))?;
    let mut sb = Sandbox {
        dir: dir.to_path_buf(),
        netns: ns_dir.join("net"),
        ipcns: ns_dir.join("ipc"),
        utsns: ns_dir.join("uts"),
        network: String::new(),
        ips: Vec::new(),
        cni_result: None,
    };
    match setup(cfg, exec, pod, &mut sb).await {
        Ok(()) => Ok(sb),
        Err(e) => {
            destroy(exec, pod, &sb).await;
            Err(e)
        }
    }
}

async fn setup(cfg: &KubeletConfig, exec: &CniExecutor, pod: &Pod, sb: &mut Sandbox) -> anyhow::Result<()> {
    if !sb.netns.exists() {
        netns::create_named(sb.netns.parent().unwrap_or(Path::new("/")), "net")?;
    }
    if !sb.ipcns.exists() {
        pin_ipc_uts(&sb.ipcns, &sb.utsns, &hostname(pod))?;
    }
    let ns = netns::NetNs::open(&sb.netns)?;
    let h = minik_shared::netlink::connect_in(&ns)?;
    if let Some(lo) = minik_shared::netlink::link_by_name(&h, "lo").await? {
        minik_shared::netlink::set_up(&h, lo.header.index).await?;
    }
    let net = network(cfg, exec)?;
    sb.network = net.name.clone();
    let rt = runtime_conf(pod, &sb.netns);
    let exec2 = exec.clone();
    let result = tokio::task::spawn_blocking(move || exec2.add(&net, &rt))
        .await
        .map_err(|e| anyhow::anyhow!("CNI task failed: {e}"))?
        .map_err(|e| anyhow::anyhow!("failed to set up the pod network: {e}"))?;
    sb.ips = result.ips.iter().map(|i| i.address.addr()).collect();
    sb.cni_result = Some(result);
    write_etc_files(cfg, pod, sb)?;
    Ok(())
}

fn write_etc_files(cfg: &KubeletConfig, pod: &Pod, sb: &Sandbox) -> anyhow::Result<()> {
    let host = hostname(pod);
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut hosts = String::from("# Kubernetes-managed hosts file (minilet).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for ip in &sb.ips {
        hosts.push_str(&format!("{ip}\t{host}\n"));
    }
    for a in pod.spec.iter().flat_map(|s| s.host_aliases.iter().flatten()) {
        hosts.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.clone().unwrap_or_default().join("\t")));
    }
    let d = &cfg.cluster_domain;
    let mut resolv = String::new();
    for s in &cfg.cluster_dns {
        resolv.push_str(&format!("nameserver {s}\n"));
    }
    resolv.push_str(&format!("search {ns}.svc.{d} svc.{d} {d}\noptions ndots:5\n"));
    for (name, text) in [("hosts", hosts), ("resolv.conf", resolv), ("hostname", format!("{host}\n"))] {
        let p = sb.dir.join(name);
        std::fs::write(&p, text).map_err(io(format!("cannot write {}", p.display())))?;
    }
    Ok(())
}

/// Tears the sandbox down: CNI DEL, then the pinned namespaces. Never fails: what cannot
/// be removed is logged (CNI GC at the next start releases a leaked IP).
pub async fn destroy(exec: &CniExecutor, pod: &Pod, sb: &Sandbox) {
    if !sb.network.is_empty() {
        let rt = runtime_conf(pod, &sb.netns);
        let exec2 = exec.clone();
        let network = sb.network.clone();
        let res = tokio::task::spawn_blocking(move || {
            let net = exec2.find_network(&network)?;
            exec2.del(&net, &rt)
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(pod = ?pod.metadata.name, error = %e, "CNI DEL failed"),
            Err(e) => tracing::warn!(error = %e, "CNI DEL task failed"),
        }
    }
    unpin(&sb.ipcns);
    unpin(&sb.utsns);
    unpin(&sb.netns);
}
