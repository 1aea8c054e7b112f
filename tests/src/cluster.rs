//! A whole cluster for the cluster tests: `minik up` with a temporary state dir and a free
//! API port (the launcher makes its own sandbox inside the test's), the real kubectl on
//! the test's side of the API forwarder (`127.0.0.1:<port>`, as a person on the host), and
//! `minik shell HOST -- CMD` to run commands on `ext` or a node. Dropping it runs
//! `minik down` (also when the test panics, after printing the ends of the logs).
//!
//! One switch chooses what the nodes are: `MINIK_NODE_BACKEND=vm` boots every cluster of
//! the tests with `--backend vm` (QEMU VMs from the node image) instead of network
//! namespaces, and stretches the tests' waits (VMs under TCG are slower); the tests
//! themselves do not change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bin;
use crate::miniapi::{kubectl_bin, wait_output};

/// A running cluster.
pub struct Cluster {
    /// The state dir (a temporary directory).
    pub state: tempfile::TempDir,
    /// The API's port on the test's loopback.
    pub port: u16,
    /// What `minik up` printed.
    pub up_output: String,
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The text of an output (stdout then stderr).
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What the tests' nodes are (`MINIK_NODE_BACKEND`: `netns`, the default, or `vm`).
pub fn backend() -> &'static str {
    match std::env::var("MINIK_NODE_BACKEND").as_deref() {
        Ok("vm") => "vm",
        Ok("netns") | Ok("") | Err(_) => "netns",
        Ok(other) => panic!("MINIK_NODE_BACKEND={other:?}: use netns or vm"),
    }
}

/// How much longer waits are on the current backend.
pub fn slowness() -> u32 {
    if backend() == "vm" {
        4
    } else {
        1
    }
}

impl Cluster {
    /// `minik up --state-dir TMP --api-port FREE ARGS…` (plus `--backend vm` when the
    /// tests run on VM nodes), asserting it succeeds.
    pub fn up(args: &[&str]) -> Self {
        let state = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut c = Cluster { state, port, up_output: String::new() };
        let port_s = port.to_string();
        let mut full = vec!["up", "--api-port", &port_s];
        full.extend_from_slice(args);
        if backend() == "vm" {
            full.extend(["--backend", "vm"]);
        }
        let out = c.minik_for(&full, Duration::from_secs(300) * slowness());
        c.up_output = text(&out);
        assert!(out.status.success(), "minik up failed:\n{}\n{}", c.up_output, c.logs_tail());
        c
    }

    /// The state dir's path.
    pub fn dir(&self) -> &Path {
        self.state.path()
    }

    /// The host kubeconfig `up` printed.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("admin.kubeconfig")
    }

    /// Runs `minik --state-dir DIR ARGS…` (bounded).
    pub fn minik_for(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = Command::new(bin("minik"));
        cmd.arg("--state-dir").arg(self.dir()).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("MINIK_STATE_DIR");
        wait_output(cmd.spawn().expect("run minik"), limit)
    }

    /// Runs `minik ARGS…` (60 s at most, times the backend's [`slowness`]).
    pub fn minik(&self, args: &[&str]) -> Output {
        self.minik_for(args, Duration::from_secs(60) * slowness())
    }

    /// `minik shell HOST -- CMD…`.
    pub fn shell(&self, host: &str, cmd: &[&str]) -> Output {
        let mut full = vec!["shell", host, "--"];
        full.extend_from_slice(cmd);
        self.minik(&full)
    }

    /// kubectl on the test's side of the forwarder, with the printed kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut c = Command::new(kubectl_bin());
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        c.env("KUBECACHEDIR", self.dir().join("test-kubecache")).env_remove("KUBECONFIG");
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        wait_output(c.spawn().expect("run kubectl"), Duration::from_secs(60))
    }

    /// kubectl, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {} failed: {}", args.join(" "), text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl … -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full)).expect("kubectl JSON")
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) {
        let mut c = Command::new(kubectl_bin());
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(["apply", "-f", "-"]);
        c.env_remove("KUBECONFIG").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("kubectl apply");
        if let Some(mut i) = child.stdin.take() {
            use std::io::Write;
            i.write_all(manifest.as_bytes()).expect("write manifest");
        }
        let out = wait_output(child, Duration::from_secs(60));
        assert!(out.status.success(), "apply failed: {}\n{manifest}", text(&out));
    }

    /// Polls `f` every 300 ms until it returns `Ok`, for at most `limit` (times the
    /// backend's [`slowness`]); panics with `what`, the last thing `f` saw and the logs'
    /// ends otherwise.
    pub fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
        let limit = limit * slowness();
        let end = Instant::now() + limit;
        let mut last;
        loop {
            match f() {
                Ok(v) => return v,
                Err(e) => last = e,
            }
            if Instant::now() >= end {
                panic!("{what}: not within {limit:?}; last: {last}\n{}", self.logs_tail());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The last lines of every log of the cluster.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        let Ok(rd) = std::fs::read_dir(self.dir().join("logs")) else { return out };
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let t = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            out.push_str(&format!("--- {} ---\n{}\n", p.display(), lines[lines.len().saturating_sub(15)..].join("\n")));
        }
        out
    }

    /// `minik down`, asserting it succeeds.
    pub fn down(&self) -> String {
        let out = self.minik(&["down"]);
        assert!(out.status.success(), "minik down failed: {}", text(&out));
        text(&out)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster logs:\n{}", self.logs_tail());
        }
        if self.dir().join("keeper.pid").exists() || self.dir().join("cluster.json").exists() {
            let _ = self.minik(&["down"]);
        }
    }
}
