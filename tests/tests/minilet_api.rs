//! minilet joined to miniapi, inside the sandbox: the node registers and is Ready, a pod
//! bound to it through the API runs and reports its status (kubectl shows it Running
//! with its pod IP), and deleting it through kubectl stops it and removes it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minik_tests::minilet::MiniletNode;
use minik_tests::{bin, require_sandbox, Netns};

struct ApiServer {
    child: Child,
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ApiServer {
    /// Starts miniapi on 127.0.0.1 of `ns` and waits for its kubeconfig.
    fn start(ns: &Netns) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = ns
            .run(|| {
                Command::new(bin("miniapi"))
                    .arg("--data-dir")
                    .arg(dir.path())
                    .args(["--listen", "127.0.0.1:0"])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(dir.path().join("miniapi.log")).expect("log"))
                    .spawn()
            })
            .expect("start miniapi");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end && !kubeconfig.exists() {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(kubeconfig.exists(), "miniapi wrote no kubeconfig");
        let api = ApiServer { child, kubeconfig, _dir: dir };
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end && !api.kubectl(ns, &["get", "--raw", "/readyz"]).0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        api
    }

    fn kubectl(&self, ns: &Netns, args: &[&str]) -> (bool, String) {
        let out = ns
            .run(|| Command::new("kubectl").arg("--kubeconfig").arg(&self.kubeconfig).args(args).output())
            .expect("kubectl");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    fn wait(&self, node: &MiniletNode, args: &[&str], what: &str, pred: impl Fn(&str) -> bool) -> String {
        let ns = &node.ns;
        let end = Instant::now() + Duration::from_secs(40);
        let mut last = String::new();
        while Instant::now() < end {
            last = self.kubectl(ns, args).1;
            if pred(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{what}: `kubectl {}` never matched; last output:\n{last}\nminilet log:\n{}", args.join(" "), node.log());
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_pod_bound_through_the_api_runs_reports_status_and_is_deleted() {
    pod_lifecycle_through_the_api("10.247.20.0/24", None);
}

/// The same with runc, which (unlike minik-oci) makes the pod's cgroups in every v1
/// hierarchy: minilet removes them all.
#[test]
fn the_same_under_runc_leaves_no_cgroup_behind() {
    pod_lifecycle_through_the_api("10.247.21.0/24", Some("/usr/bin/runc"));
}

fn pod_lifecycle_through_the_api(subnet: &str, runtime: Option<&str>) {
    require_sandbox();
    let mut node = MiniletNode::new(subnet, "");
    let api = ApiServer::start(&node.ns);
    let cfg = node.dir.path().join("minilet.yaml");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    if let Some(rt) = runtime {
        text = text.lines().map(|l| if l.starts_with("runtime:") { format!("runtime: {rt}") } else { l.to_string() }).collect::<Vec<_>>().join("\n");
        text.push('\n');
    }
    text.push_str(&format!("kubeconfig: {}\nnodeIP: 10.0.0.11\n", api.kubeconfig.display()));
    std::fs::write(&cfg, text).expect("config");
    node.start();

    api.wait(&node, &["get", "nodes"], "node1 registers and is Ready", |o| o.contains("node1") && o.contains(" Ready "));
    let manifest = node.dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, labels: {app: web}}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: busybox\n    command: [\"sh\", \"-c\", \"mkdir -p /w; echo hi > /w/index.html; exec httpd -f -p 8080 -h /w\"]\n    readinessProbe:\n      httpGet: {path: /, port: 8080}\n      periodSeconds: 1\n",
    )
    .expect("manifest");
    let (ok, out) = api.kubectl(&node.ns, &["apply", "-f", &manifest.display().to_string()]);
    assert!(ok, "{out}");
    let wide = api.wait(&node, &["get", "pods", "-o", "wide"], "the pod runs and is ready", |o| {
        o.contains("web") && o.contains("1/1") && o.contains("Running") && o.contains(subnet.trim_end_matches("0/24"))
    });
    assert!(wide.contains("node1"), "{wide}");
    let (_, ip) = api.kubectl(&node.ns, &["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    let body = node.ns.exec("busybox", &["wget", "-qO-", &format!("http://{}:8080/", ip.trim())]);
    assert_eq!(String::from_utf8_lossy(&body.stdout).trim(), "hi");

    let (_, uid) = api.kubectl(&node.ns, &["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    let uid = uid.trim().to_string();
    assert!(!uid.is_empty());

    let (ok, out) = api.kubectl(&node.ns, &["delete", "pod", "web", "--wait=true", "--timeout=30s"]);
    assert!(ok, "{out}");
    api.wait(&node, &["get", "pods"], "the pod is gone", |o| !o.contains("web"));
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !node.allocated_ips().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(node.allocated_ips().is_empty(), "its IP was released");
    // Its cgroups are gone from every hierarchy, including those the runtime alone uses.
    let end = Instant::now() + Duration::from_secs(10);
    let left = || -> Vec<String> {
        std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| {
                d.flatten()
                    .flat_map(|h| [h.path().join(format!("minik/pod{uid}")), h.path().join(format!("unified/minik/pod{uid}"))])
                    .filter(|p| p.exists())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    while Instant::now() < end && !left().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(left().is_empty(), "the pod's cgroups are left behind: {:?}", left());
}
