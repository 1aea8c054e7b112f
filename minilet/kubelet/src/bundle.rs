//! The OCI bundle of one container: `config.json` built from the pod spec, the image
//! config and the sandbox, the way containerd's CRI plugin does it — the pod's network,
//! IPC and UTS namespaces joined by path, new PID, mount and cgroup namespaces, the pod's
//! hosts/resolv.conf/hostname bind-mounted, containerd's default capabilities, masked and
//! read-only paths, and limits from `resources`.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use minik_imagestore::{merge_command, ImageConfig};
use serde_json::{json, Value};

use crate::quantity;
use crate::sandbox::Sandbox;

/// The capabilities containers get by default: containerd's and Docker's set, which is
/// also minik-oci's default (one list, kept by the runtime crate).
pub use minik_oci::capabilities::DEFAULT as DEFAULT_CAPS;

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Everything a container's config.json is made from.
pub struct BundleInput<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container of the pod.
    pub container: &'a Container,
    /// Its image's config.
    pub image: &'a ImageConfig,
    /// The sandbox it joins.
    pub sandbox: &'a Sandbox,
    /// The mounted rootfs.
    pub rootfs: &'a Path,
    /// The cgroup path (relative: under minilet's own cgroup).
    pub cgroups_path: &'a str,
    /// `pids.max`, from the node's podPidsLimit.
    pub pids_limit: Option<i64>,
}

/// Resolves a user spec (`1000`, `1000:1000`, `nobody`, `nobody:nogroup`) against the
/// rootfs's /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, field: usize| -> Option<(u32, Option<u32>)> {
        let text = std::fs::read_to_string(rootfs.join(file)).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| (f.get(field).and_then(|v| v.parse().ok()).unwrap_or(0), f.get(3).and_then(|v| v.parse().ok())))
        })
    };
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup("etc/passwd", user, 2).ok_or_else(|| format!("user {user:?} is not in the image's /etc/passwd"))?,
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("etc/group", g, 2).map(|(n, _)| n).ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
        None => primary_gid.unwrap_or(0),
    };
    Ok((uid, gid))
}

fn env_of(c: &Container, pod: &Pod, sandbox: &Sandbox) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => pod.metadata.name.clone().unwrap_or_default(),
                Some("metadata.namespace") => pod.metadata.namespace.clone().unwrap_or_default(),
                Some("metadata.uid") => pod.metadata.uid.clone().unwrap_or_default(),
                Some("status.podIP") => sandbox.ips.first().map(|i| i.to_string()).unwrap_or_default(),
                Some("spec.nodeName") => pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        env.push((e.name.clone(), value));
    }
    env
}

fn resources(c: &Container) -> Result<(Value, Option<i64>), String> {
    let get = |which: &Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        which.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone())
    };
    let r = c.resources.clone().unwrap_or_default();
    let mut out = serde_json::Map::new();
    let mut memory_limit = None;
    let cpu_request = get(&r.requests, "cpu").or_else(|| get(&r.limits, "cpu"));
    let shares = match cpu_request {
        Some(q) => (quantity::millicores(&q).map_err(|e| format!("resources.requests.cpu: {e}"))? * 1024 / 1000).max(2),
        None => 2,
    };
    let mut cpu = json!({"shares": shares});
    if let Some(q) = get(&r.limits, "cpu") {
        let m = quantity::millicores(&q).map_err(|e| format!("resources.limits.cpu: {e}"))?;
        cpu["quota"] = json!((m * 100_000 / 1000).max(1000));
        cpu["period"] = json!(100_000);
    }
    out.insert("cpu".into(), cpu);
    if let Some(q) = get(&r.limits, "memory") {
        let b = quantity::bytes(&q).map_err(|e| format!("resources.limits.memory: {e}"))?;
        out.insert("memory".into(), json!({"limit": b, "swap": b}));
        memory_limit = Some(b);
    }
    Ok((Value::Object(out), memory_limit))
}

/// containerd's RLIMIT_NOFILE (1048576), bounded by what minilet itself may raise to.
fn nofile() -> u64 {
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map(|(_, h)| h).unwrap_or(1024);
    hard.min(1_048_576)
}

/// Builds config.json for one container.
pub fn config_json(input: &BundleInput<'_>) -> Result<Value, String> {
    let c = input.container;
    let pod = input.pod;
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.clone()).unwrap_or_default();
    let mut env = env_of(c, pod, input.sandbox);
    env.push(("HOSTNAME".into(), crate::sandbox::hostname(pod)));
    let cmd = merge_command(
        input.image,
        c.command.as_deref().unwrap_or(&[]),
        c.args.as_deref().unwrap_or(&[]),
        &env,
        c.working_dir.as_deref(),
    );
    if cmd.args.is_empty() {
        return Err(format!(
            "container {:?}: no command: the image has neither Entrypoint nor Cmd and the pod sets no command",
            c.name
        ));
    }
    let (mut uid, mut gid) = match &cmd.user {
        Some(u) if !u.is_empty() => resolve_user(input.rootfs, u)?,
        _ => (0, 0),
    };
    if let Some(u) = sc.run_as_user.or(psc.run_as_user) {
        uid = u as u32;
    }
    if let Some(g) = sc.run_as_group.or(psc.run_as_group) {
        gid = g as u32;
    }
    let privileged = sc.privileged.unwrap_or(false);
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if let Some(cs) = &sc.capabilities {
        let norm = |s: &String| if s.starts_with("CAP_") { s.clone() } else { format!("CAP_{s}") };
        for a in cs.add.iter().flatten().map(norm) {
            if !caps.contains(&a) {
                caps.push(a);
            }
        }
        let drop: Vec<String> = cs.drop.iter().flatten().map(norm).collect();
        if drop.iter().any(|d| d == "CAP_ALL") {
            caps.clear();
        }
        caps.retain(|c| !drop.contains(c));
    }
    let no_new_privs = sc.allow_privilege_escalation == Some(false);
    let (mut res, _) = resources(c).map_err(|e| format!("container {:?}: {e}", c.name))?;
    if let Some(limit) = input.pids_limit {
        res["pids"] = json!({"limit": limit});
    }
    let sb = input.sandbox;
    let bind = |src: &Path, dst: &str, ro: bool| {
        json!({"destination": dst, "type": "bind", "source": src, "options": if ro { json!(["rbind", "ro"]) } else { json!(["rbind", "rw"]) }})
    };
    let ro_root = sc.read_only_root_filesystem.unwrap_or(false);
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": cmd.args,
            "env": cmd.env,
            "cwd": cmd.working_dir,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile(), "soft": nofile()}],
            "noNewPrivileges": no_new_privs,
        },
        "root": {"path": input.rootfs, "readonly": ro_root},
        // No "hostname": the pod's UTS namespace, joined by path, already has it.
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]},
            bind(&sb.dir.join("hosts"), "/etc/hosts", false),
            bind(&sb.dir.join("resolv.conf"), "/etc/resolv.conf", false),
            bind(&sb.dir.join("hostname"), "/etc/hostname", false),
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": sb.netns},
                {"type": "ipc", "path": sb.ipcns},
                {"type": "uts", "path": sb.utsns},
                {"type": "mount"},
                {"type": "cgroup"},
            ],
            "cgroupsPath": input.cgroups_path,
            "resources": res,
            "maskedPaths": if privileged { json!([]) } else { json!(MASKED) },
            "readonlyPaths": if privileged { json!([]) } else { json!(READONLY) },
        },
    }))
}
