//! Test harness: a real API server (the `miniapi` binary, on a free loopback port
//! with a temp data dir), the controller manager and the scheduler binaries against
//! it, fake nodes (Node objects with a Lease) and a fake kubelet that renews the
//! leases, posts node status, marks bound pods Running/Ready with a pod IP, and
//! finishes graceful deletions.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The workspace's target dir (where cargo put this package's binaries).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_minik-controller-manager"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The `miniapi` binary, built first (`cargo build -p miniapi`) unless
/// `MINIK_SKIP_MINIAPI_BUILD` is set.
pub fn miniapi_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = bin_dir().join("miniapi");
        if std::env::var_os("MINIK_SKIP_MINIAPI_BUILD").is_none() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            // A clean environment: the variables cargo sets for tests would make the
            // nested build look different and rebuild shared dependencies each time.
            let mut cmd = Command::new(cargo);
            cmd.env_clear();
            for (k, v) in std::env::vars_os() {
                let k_str = k.to_string_lossy();
                let keep = matches!(
                    k_str.as_ref(),
                    "PATH" | "HOME" | "USER" | "CARGO_HOME" | "RUSTUP_HOME" | "RUSTUP_TOOLCHAIN"
                        | "CARGO_TARGET_DIR" | "RUSTFLAGS" | "TMPDIR" | "LANG"
                );
                if keep {
                    cmd.env(k, v);
                }
            }
            let status = cmd
                .args(["build", "-p", "miniapi", "--bin", "miniapi"])
                .current_dir(workspace_root())
                .stdout(Stdio::null())
                .status();
            match status {
                Ok(s) if s.success() => {}
                other => {
                    assert!(
                        bin.exists(),
                        "the API server binary {} is missing and `cargo build -p miniapi` failed ({other:?})",
                        bin.display()
                    );
                    eprintln!("warning: `cargo build -p miniapi` failed ({other:?}); using the existing {}", bin.display());
                }
            }
        }
        assert!(
            bin.exists(),
            "the API server binary {} is missing: run `cargo build -p miniapi`",
            bin.display()
        );
        bin
    })
    .clone()
}

struct Proc {
    name: &'static str,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Only the processes this harness started, by their own handle (PID).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node lifecycle timings for a test cluster.
#[derive(Clone, Debug)]
pub struct Timings {
    pub grace: &'static str,
    pub eviction: &'static str,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            grace: "3s",
            eviction: "3s",
        }
    }
}

/// One test cluster: API server, controller manager, scheduler, fake kubelet.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
    procs: Vec<Proc>,
    pub kubelet: FakeKubelet,
    kubelet_task: tokio::task::JoinHandle<()>,
}

fn server_port(kubeconfig: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file")
}

impl Cluster {
    /// Start everything; nodes are added with [`Cluster::add_node`].
    pub async fn start(t: Timings) -> Cluster {
        let bin = miniapi_bin();
        let dir = tempfile::Builder::new()
            .prefix("minik-ctrl-test")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let kubeconfig = data.join("admin.kubeconfig");
        let api = Command::new(&bin)
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--bookmark-interval",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "miniapi"))
            .spawn()
            .expect("spawn miniapi");
        let mut procs = vec![Proc {
            name: "miniapi",
            child: api,
        }];
        let deadline = Instant::now() + Duration::from_secs(30);
        while server_port(&kubeconfig).is_none() {
            assert!(
                Instant::now() < deadline,
                "miniapi did not write {}",
                kubeconfig.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = minik_controllers::client(Some(&kubeconfig))
            .await
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
            if let Ok(body) = client.request_text(req).await {
                if body.contains("ok") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "miniapi not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let cm = Command::new(env!("CARGO_BIN_EXE_minik-controller-manager"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--node-monitor-grace-period",
                t.grace,
                "--pod-eviction-timeout",
                t.eviction,
            ])
            .env("RUST_LOG", "info,minik_controllers=debug")
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "controller-manager"))
            .spawn()
            .expect("spawn controller manager");
        procs.push(Proc {
            name: "controller-manager",
            child: cm,
        });
        let sched = Command::new(env!("CARGO_BIN_EXE_minik-scheduler"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("RUST_LOG", "info,minik_controllers=debug")
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "scheduler"))
            .spawn()
            .expect("spawn scheduler");
        procs.push(Proc {
            name: "scheduler",
            child: sched,
        });
        let kubelet = FakeKubelet::default();
        let kubelet_task = tokio::spawn(kubelet.clone().run(client.clone()));
        Cluster {
            dir,
            kubeconfig,
            client,
            procs,
            kubelet,
            kubelet_task,
        }
    }

    /// Print the component logs (on failure, and for `--nocapture` runs).
    pub fn dump_logs(&self) {
        for name in ["controller-manager", "scheduler", "miniapi"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            eprintln!("===== {name} (last {} lines) =====", tail.len());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }

    /// Check the component processes are still running.
    pub fn assert_running(&mut self) {
        for p in &mut self.procs {
            if let Ok(Some(st)) = p.child.try_wait() {
                self.kubelet_task.abort();
                panic!("{} exited: {st}", p.name);
            }
        }
    }

    /// Create a Ready node with `cpu`/`memory` allocatable and a Lease the fake
    /// kubelet renews.
    pub async fn add_node(&self, name: &str, cpu: &str, memory: &str, labels: &[(&str, &str)]) {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert("kubernetes.io/hostname".into(), name.into());
        l.insert("kubernetes.io/os".into(), "linux".into());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": l},
            "spec": {},
        }))
        .unwrap();
        let api: Api<Node> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &node)
            .await
            .expect("create node");
        let res = json!({"cpu": cpu, "memory": memory, "pods": "110"});
        let status = json!({"status": {
            "capacity": res, "allocatable": res,
            "conditions": node_conditions(),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "fake://1", "operatingSystem": "linux", "architecture": "amd64",
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "fake", "kubeProxyVersion": ""},
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("node status");
        self.kubelet.set_alive(name, true);
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("KUBECACHEDIR", self.dir.path().join("kubecache"))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Run kubectl, assert success, return stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            self.dump_logs();
        }
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Apply a YAML manifest with kubectl.
    pub fn apply(&self, manifest: &str) {
        let path = self
            .dir
            .path()
            .join(format!("m{}.yaml", Timestamp::now().as_nanosecond()));
        std::fs::write(&path, manifest).unwrap();
        self.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// Pods of `ns` matching `labels`, not being deleted.
    pub async fn active_pods(&self, ns: &str, labels: &str) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default().labels(labels))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Events about `name` (any kind) in `ns`.
    pub async fn events_for(&self, ns: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect()
    }

    /// Wait (bounded) until `f` returns `Some`.
    pub async fn wait<T, F, Fut>(&mut self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            self.assert_running();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn delete_pod(&self, ns: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete pod");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kubelet_task.abort();
        // Clients first, the API server last.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
        if std::thread::panicking() || std::env::var_os("MINIK_TEST_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("test cluster files kept in {}", self.dir.path().display());
        }
    }
}

fn node_conditions() -> serde_json::Value {
    let t = Timestamp::now().to_string();
    let t = t
        .split('.')
        .next()
        .unwrap_or(&t)
        .trim_end_matches('Z')
        .to_string()
        + "Z";
    json!([
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": t, "lastTransitionTime": t},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": t, "lastTransitionTime": t},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": t, "lastTransitionTime": t},
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": t, "lastTransitionTime": t},
    ])
}

/// A stand-in for the kubelets of the fake nodes.
#[derive(Clone, Default)]
pub struct FakeKubelet {
    inner: Arc<Mutex<KubeletState>>,
}

#[derive(Default)]
struct KubeletState {
    /// Node name → whether its kubelet is running.
    nodes: HashMap<String, bool>,
    /// Pods (by name) to report as not Ready.
    unready: HashSet<String>,
    next_ip: HashMap<String, u32>,
}

impl FakeKubelet {
    /// Start or stop the kubelet of a node (a stopped one renews nothing).
    pub fn set_alive(&self, node: &str, alive: bool) {
        let mut s = self.inner.lock().unwrap();
        let n = s.nodes.len();
        s.nodes.insert(node.into(), alive);
        s.next_ip.entry(node.into()).or_insert((n as u32 + 1) << 8);
    }

    /// Report a pod as not Ready (or Ready again).
    pub fn set_ready(&self, pod: &str, ready: bool) {
        let mut s = self.inner.lock().unwrap();
        if ready {
            s.unready.remove(pod);
        } else {
            s.unready.insert(pod.into());
        }
    }

    async fn run(self, client: Client) {
        let mut last_status = Instant::now() - Duration::from_secs(10);
        loop {
            let (alive, unready): (Vec<String>, HashSet<String>) = {
                let s = self.inner.lock().unwrap();
                (
                    s.nodes
                        .iter()
                        .filter(|(_, a)| **a)
                        .map(|(n, _)| n.clone())
                        .collect(),
                    s.unready.clone(),
                )
            };
            if last_status.elapsed() >= Duration::from_millis(1000) {
                last_status = Instant::now();
                for n in &alive {
                    let _ = renew(&client, n).await;
                }
            }
            let _ = self.sync_pods(&client, &alive, &unready).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn sync_pods(
        &self,
        client: &Client,
        alive: &[String],
        unready: &HashSet<String>,
    ) -> kube::Result<()> {
        let pods: Api<Pod> = Api::all(client.clone());
        for pod in pods.list(&ListParams::default()).await?.items {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            if !alive.contains(&node) {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let name = pod.name_any();
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(
                        &name,
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..Default::default()
                        },
                    )
                    .await;
                continue;
            }
            let status = pod.status.clone().unwrap_or_default();
            let want_ready = !unready.contains(&name);
            let is_ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let running = status.phase.as_deref() == Some("Running") && status.pod_ip.is_some();
            if running && is_ready == want_ready {
                continue;
            }
            let ip = match status.pod_ip.clone() {
                Some(ip) => ip,
                None => {
                    let mut s = self.inner.lock().unwrap();
                    let idx = s.next_ip.entry(node.clone()).or_insert(1 << 8);
                    *idx += 1;
                    format!("10.244.{}.{}", *idx >> 8, *idx & 0xff)
                }
            };
            let t = now_str();
            let r = if want_ready { "True" } else { "False" };
            let containers: Vec<serde_json::Value> = pod
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| json!({
                    "name": c.name, "image": c.image, "imageID": "", "ready": want_ready, "restartCount": 0,
                    "started": true, "state": {"running": {"startedAt": t}},
                })).collect())
                .unwrap_or_default();
            let patch = json!({"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                "startTime": status.start_time.as_ref().map(|s| serde_json::to_value(s).unwrap()).unwrap_or(json!(t)),
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": t},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                    {"type": "Ready", "status": r, "lastTransitionTime": t},
                    {"type": "ContainersReady", "status": r, "lastTransitionTime": t},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                ],
                "containerStatuses": containers,
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
        Ok(())
    }
}

fn now_str() -> String {
    let t = Timestamp::now().to_string();
    t.split('.')
        .next()
        .unwrap_or(&t)
        .trim_end_matches('Z')
        .to_string()
        + "Z"
}

async fn renew(client: &Client, node: &str) -> kube::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec = LeaseSpec {
        holder_identity: Some(node.into()),
        lease_duration_seconds: Some(40),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..Default::default()
    };
    match leases.get_opt(node).await? {
        Some(mut l) => {
            l.spec = Some(spec);
            leases.replace(node, &PostParams::default(), &l).await?;
        }
        None => {
            let l = Lease {
                metadata: ObjectMeta {
                    name: Some(node.into()),
                    namespace: Some("kube-node-lease".into()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            leases.create(&PostParams::default(), &l).await?;
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": node_conditions()}})),
        )
        .await?;
    Ok(())
}
