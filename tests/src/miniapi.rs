//! miniapi for the cluster tests: the `miniapi` binary started inside a namespace of the
//! sandbox with its own data dir (its kubeconfig names the real port), and the real
//! `kubectl` run against it from that same namespace. Dropping it ends the server by PID.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use minik_shared::netns::NetNs;

use crate::{bin, Netns};

/// The kubectl the tests drive (`KUBECTL`, else /usr/bin/kubectl).
pub fn kubectl_bin() -> PathBuf {
    std::env::var("KUBECTL").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/usr/bin/kubectl"))
}

/// A running miniapi.
pub struct ApiServer {
    /// Data dir (pki/ca.crt is the cluster CA).
    pub dir: tempfile::TempDir,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl binary this server's commands run.
    pub kubectl: PathBuf,
    netns: NetNs,
    child: Option<Child>,
}

impl ApiServer {
    /// Starts miniapi on 127.0.0.1 (a free port) inside `ns` and waits until it is ready.
    pub fn start(ns: &Netns) -> Self {
        Self::start_with(ns, kubectl_bin())
    }

    /// The same, driven by the given kubectl binary.
    pub fn start_with(ns: &Netns, kubectl: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("miniapi.log")).expect("log");
        let child = ns
            .run(|| {
                Command::new(bin("miniapi"))
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--listen", "127.0.0.1:0", "--bookmark-interval", "1"])
                    .env("RUST_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
            })
            .expect("start miniapi");
        let netns = NetNs::open(&ns.path).expect("open netns");
        let s = ApiServer { kubeconfig: data.join("admin.kubeconfig"), dir, kubectl, netns, child: Some(child) };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if s.kubeconfig.exists() {
                let out = s.kubectl(&["get", "--raw", "/readyz", "--request-timeout=2s"]);
                if out.status.success() {
                    return s;
                }
            }
            assert!(Instant::now() < end, "miniapi did not become ready:\n{}", s.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The cluster CA (what kubelets take as clientCAFile).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("data/pki/ca.crt")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("miniapi.log")).unwrap_or_default()
    }

    /// A kubectl command for this server, to be spawned with [`ApiServer::spawn`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        c.env("KUBECACHEDIR", self.dir.path().join("kubecache")).env_remove("KUBECONFIG");
        c
    }

    /// Spawns `cmd` in the server's namespace.
    pub fn spawn(&self, mut cmd: Command) -> Child {
        self.netns.run(|| cmd.spawn()).expect("enter netns").expect("spawn kubectl")
    }

    /// Runs kubectl to completion with `stdin` as its input.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.spawn(c);
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin);
        }
        wait_output(child, Duration::from_secs(60))
    }

    /// Runs kubectl to completion (no stdin).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        wait_output(self.spawn(c), Duration::from_secs(60))
    }

    /// Runs kubectl, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}\nminiapi log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) -> String {
        let out = self.kubectl_with_input(&["apply", "-f", "-"], manifest.as_bytes());
        assert!(out.status.success(), "apply failed: {}\n{manifest}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Waits (bounded) for a child's output; kills it by PID when it runs over.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    child.wait_with_output().expect("kubectl output")
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
