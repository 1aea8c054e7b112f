//! The commands a person runs on the node: list pods and containers, read logs, exec into
//! a container, manage images. They read what the daemon writes under the root dir.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use crate::config::KubeletConfig;
use crate::runtime::OciRuntime;
use crate::state::PodRecord;
use crate::timefmt::unix;

/// Every pod with its last written status.
pub fn pods(cfg: &KubeletConfig) -> Vec<Pod> {
    let mut out: Vec<Pod> = PodRecord::load_all(&cfg.pods_dir())
        .into_iter()
        .filter_map(|r| {
            let bytes = std::fs::read(cfg.pods_dir().join(&r.uid).join("status.json")).ok()?;
            serde_json::from_slice(&bytes).ok()
        })
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// Finds a pod by name (or name without the node suffix).
pub fn find_pod(cfg: &KubeletConfig, name: &str) -> anyhow::Result<Pod> {
    let all = pods(cfg);
    let suffixed = format!("{name}-{}", cfg.node_name);
    all.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .or_else(|| all.iter().find(|p| p.metadata.name.as_deref() == Some(suffixed.as_str())))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("pod {name:?} not found on this node; `minilet pods` lists them"))
}

fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// `minilet pods`: NAME READY STATUS RESTARTS AGE IP, like `kubectl get pods -o wide`.
pub fn print_pods(cfg: &KubeletConfig) {
    println!("{:<40} {:<6} {:<20} {:<9} {:<6} {}", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP");
    let now = unix(std::time::SystemTime::now());
    for p in pods(cfg) {
        let st = p.status.clone().unwrap_or_default();
        let cs = st.container_statuses.clone().unwrap_or_default();
        let ready = cs.iter().filter(|c| c.ready).count();
        let restarts: i32 = cs.iter().map(|c| c.restart_count).sum();
        let started = st.start_time.as_ref().map(|t| t.0.as_second() as f64).unwrap_or(now);
        println!(
            "{:<40} {:<6} {:<20} {:<9} {:<6} {}",
            p.metadata.name.clone().unwrap_or_default(),
            format!("{ready}/{}", cs.len()),
            crate::status::display_status(&p),
            restarts,
            age(now - started),
            st.pod_ip.unwrap_or_else(|| "<none>".into())
        );
    }
}

/// The runtime container ID of a pod's container (its current attempt).
pub fn container_id(pod: &Pod, container: Option<&str>) -> anyhow::Result<(String, String)> {
    let cs = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let c = match container {
        Some(n) => cs.iter().find(|c| c.name == n).ok_or_else(|| {
            anyhow::anyhow!("container {n:?} is not in pod {:?}; it has {:?}", pod.metadata.name.clone().unwrap_or_default(), cs.iter().map(|c| &c.name).collect::<Vec<_>>())
        })?,
        None => cs.first().ok_or_else(|| anyhow::anyhow!("the pod has no containers"))?,
    };
    let id = c
        .container_id
        .as_deref()
        .and_then(|i| i.strip_prefix("minik://"))
        .ok_or_else(|| anyhow::anyhow!("container {:?} is not running", c.name))?;
    Ok((c.name.clone(), id.to_string()))
}

/// `minilet logs POD [-c C] [--previous]`.
pub fn print_logs(cfg: &KubeletConfig, pod_name: &str, container: Option<&str>, previous: bool) -> anyhow::Result<()> {
    let pod = find_pod(cfg, pod_name)?;
    let cs = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let c = match container {
        Some(n) => cs.iter().find(|c| c.name == n).ok_or_else(|| anyhow::anyhow!("container {n:?} is not in the pod"))?,
        None if cs.len() == 1 => &cs[0],
        None => anyhow::bail!(
            "pod has several containers; pick one with -c: {}",
            cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    let restart = if previous {
        if c.restart_count == 0 {
            anyhow::bail!("previous terminated container {:?} not found", c.name);
        }
        c.restart_count - 1
    } else {
        c.restart_count
    };
    let path = cfg
        .logs_dir()
        .join(format!(
            "{}_{}_{}",
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
            pod.metadata.uid.clone().unwrap_or_default()
        ))
        .join(&c.name)
        .join(format!("{restart}.log"));
    for l in crate::logs::read_all(&path, cfg.container_log_max_files)? {
        println!("{}", l.message);
    }
    Ok(())
}

/// `minilet exec POD [-c C] -- CMD…`
pub fn exec(cfg: &KubeletConfig, pod_name: &str, container: Option<&str>, argv: &[String], tty: bool) -> anyhow::Result<i32> {
    let pod = find_pod(cfg, pod_name)?;
    let (_, id) = container_id(&pod, container)?;
    let rt = OciRuntime { bin: cfg.runtime.clone(), root: cfg.runtime_root() };
    rt.exec_interactive(&id, argv, tty)
}

/// `minilet image import PATH --name NAME`
pub fn image_import(cfg: &KubeletConfig, path: &Path, name: &str) -> anyhow::Result<()> {
    let store = minik_imagestore::ImageStore::open(cfg.images_dir())?;
    let refs = if path.is_dir() { store.import_layout(path, None, name)? } else { store.import_archive(path, name)? };
    for r in refs {
        println!("imported {} ({})", r.reference, r.manifest_digest);
    }
    Ok(())
}

/// `minilet image list`
pub fn image_list(cfg: &KubeletConfig) -> anyhow::Result<()> {
    let store = minik_imagestore::ImageStore::open(cfg.images_dir())?;
    println!("{:<40} {:<74} SIZE", "IMAGE", "DIGEST");
    for i in store.list()? {
        println!("{:<40} {:<74} {}", i.reference, i.manifest_digest, i.size);
    }
    Ok(())
}
