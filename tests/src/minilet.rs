//! A node running minilet, for the pod tests: a node netns with a cni-bridge network,
//! a private root dir, a static pod directory, the workspace's images imported, and the
//! `minilet run` daemon started inside the node's netns. Dropping it deletes the
//! manifests, waits for the pods to be stopped (containers, sandboxes, IPs), then ends
//! the daemon by its PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, bin_dir, Netns, REFERENCE_PLUGINS};

/// The OCI runtime the pod tests use: `MINIK_TEST_RUNTIME` (a path), else minik-oci.
pub fn runtime() -> PathBuf {
    std::env::var("MINIK_TEST_RUNTIME").map(PathBuf::from).unwrap_or_else(|_| bin("minik-oci"))
}

/// Where `images/build.sh` puts the OCI layouts.
pub fn image_layout(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let p = root.join("target/images/oci").join(name);
    assert!(p.join("index.json").exists(), "image layout {} is missing; run images/build.sh (make test does)", p.display());
    p
}

/// A node with minilet.
pub struct MiniletNode {
    /// The node's netns.
    pub ns: Netns,
    /// The root dir, config and manifests live under here.
    pub dir: tempfile::TempDir,
    /// The pod subnet.
    pub subnet: String,
    daemon: Option<Child>,
}

impl MiniletNode {
    /// A node whose pods get IPs from `subnet`, with `extra` YAML lines in minilet's config.
    pub fn new(subnet: &str, extra_config: &str) -> Self {
        let ns = Netns::new("mn");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for sub in ["net.d", "manifests", "root", "cache"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let conflist = serde_json::json!({
            "cniVersion": "1.1.0", "name": "minik", "plugins": [{
                "type": "cni-bridge", "bridge": "cni0", "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": d.join("ipam")}
            }]
        });
        std::fs::write(d.join("net.d/10-minik.conflist"), conflist.to_string()).expect("conflist");
        let config = format!(
            "nodeName: node1\nrootDir: {root}\nstaticPodPath: {man}\nruntime: {rt}\nshim: {shim}\ncniConfDir: {net}\ncniBinDirs: [{bins}, {refs}]\ncniCacheDir: {cache}\nclusterDns: [10.96.0.10]\n{extra_config}\n",
            root = d.join("root").display(),
            man = d.join("manifests").display(),
            rt = runtime().display(),
            shim = bin("minilet-shim").display(),
            net = d.join("net.d").display(),
            bins = bin_dir().display(),
            refs = REFERENCE_PLUGINS,
            cache = d.join("cache").display(),
        );
        std::fs::write(d.join("minilet.yaml"), config).expect("config");
        let node = MiniletNode { ns, dir, subnet: subnet.to_string(), daemon: None };
        for img in ["busybox", "demo-api", "demo-db"] {
            node.cli(&["image", "import", &image_layout(img).display().to_string(), "--name", img]);
        }
        node
    }

    /// Runs a `minilet` subcommand with this node's config; asserts success.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_raw(args);
        assert!(out.status.success(), "minilet {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a `minilet` subcommand, returning whatever happened.
    pub fn cli_raw(&self, args: &[&str]) -> std::process::Output {
        let cfg = self.dir.path().join("minilet.yaml");
        self.ns
            .run(|| Command::new(bin("minilet")).arg("--config").arg(&cfg).args(args).output())
            .expect("run minilet")
    }

    /// Starts the daemon (again).
    pub fn start(&mut self) {
        let cfg = self.dir.path().join("minilet.yaml");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("minilet.log")).expect("log");
        let child = self
            .ns
            .run(|| {
                Command::new(bin("minilet"))
                    .arg("--config")
                    .arg(&cfg)
                    .arg("run")
                    .env("MINILET_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
            })
            .expect("start minilet");
        self.daemon = Some(child);
    }

    /// Kills the daemon with SIGKILL (pods keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The daemon's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("minilet.log")).unwrap_or_default()
    }

    /// Writes a static pod manifest.
    pub fn apply(&self, file: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).expect("manifest");
        std::fs::rename(&tmp, self.dir.path().join("manifests").join(file)).expect("manifest");
    }

    /// Removes a static pod manifest.
    pub fn remove(&self, file: &str) {
        let _ = std::fs::remove_file(self.dir.path().join("manifests").join(file));
    }

    /// Every pod (with status) as minilet reports it.
    pub fn pods(&self) -> Vec<Value> {
        let out = self.cli(&["pods", "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_default()
    }

    /// The pod named `name` (without the node suffix), if present.
    pub fn pod(&self, name: &str) -> Option<Value> {
        let full = format!("{name}-node1");
        self.pods().into_iter().find(|p| p["metadata"]["name"] == full.as_str())
    }

    /// Waits (bounded) until `pred` holds for pod `name`; returns the pod then.
    pub fn wait_pod(&self, name: &str, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < end {
            if let Some(p) = self.pod(name) {
                if pred(&p) {
                    return p;
                }
                last = p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pod {name}: {what} did not happen within {timeout:?}; last status: {}\nminilet log:\n{}", last["status"], self.log());
    }

    /// Waits (bounded) until pod `name` is gone.
    pub fn wait_pod_gone(&self, name: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.pod(name).is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pod {name} is still there after {timeout:?}\nminilet log:\n{}", self.log());
    }

    /// Waits until every container of pod `name` is ready.
    pub fn wait_ready(&self, name: &str) -> Value {
        self.wait_pod(name, "Ready", Duration::from_secs(30), |p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
    }

    /// `minilet exec POD -c C -- argv…`: (exit code, stdout).
    pub fn exec(&self, pod: &str, container: &str, argv: &[&str]) -> (i32, String) {
        let mut args = vec!["exec", pod, "-c", container, "--"];
        args.extend_from_slice(argv);
        let out = self.cli_raw(&args);
        let code = out.status.code().unwrap_or(-1);
        if code != 0 {
            eprintln!("exec {argv:?} in {pod}/{container} exited {code}: {}", String::from_utf8_lossy(&out.stderr));
        }
        (code, String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// IP files in the IPAM store (allocated pod IPs).
    pub fn allocated_ips(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("ipam/minik"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for MiniletNode {
    fn drop(&mut self) {
        if self.daemon.is_none() {
            self.start();
        }
        if let Ok(d) = std::fs::read_dir(self.dir.path().join("manifests")) {
            for e in d.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let end = Instant::now() + Duration::from_secs(40);
        let pods = self.dir.path().join("root/pods");
        while Instant::now() < end && std::fs::read_dir(&pods).map(|mut d| d.next().is_some()).unwrap_or(false) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(c) = &self.daemon {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        }
        if let Some(mut c) = self.daemon.take() {
            let _ = c.wait();
        }
    }
}
