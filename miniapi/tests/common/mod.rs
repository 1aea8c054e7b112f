//! Test harness: run the `miniapi` binary on a free loopback port with its own data
//! dir, and drive it with the real `kubectl`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod etcd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kubectl under test (the brief's /usr/bin/kubectl unless KUBECTL is set).
pub fn kubectl_bin() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".to_string())
}

/// Whether kubectl exists (tests are skipped without it).
pub fn have_kubectl() -> bool {
    Path::new(&kubectl_bin()).exists()
}

/// A running miniapi.
pub struct ApiServer {
    /// The child process.
    pub child: Child,
    /// Data dir (kept across restarts).
    pub data_dir: PathBuf,
    /// The bound port.
    pub port: u16,
    /// kubeconfig path.
    pub kubeconfig: PathBuf,
    /// kubectl cache dir.
    pub cache: PathBuf,
}

fn server_port(kubeconfig: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

impl ApiServer {
    /// Start on a free port (or `port`) with `data_dir`.
    pub fn start(data_dir: &Path, port: Option<u16>) -> ApiServer {
        Self::start_with(data_dir, port, &[])
    }

    /// The same, with extra flags (e.g. `--store etcd --etcd-endpoints URL`).
    pub fn start_with(data_dir: &Path, port: Option<u16>, extra: &[&str]) -> ApiServer {
        let kubeconfig = data_dir.join("admin.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_miniapi"))
            .args([
                "--data-dir",
                data_dir.to_str().expect("utf8"),
                "--listen",
                &listen,
                "--bookmark-interval",
                "1",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn miniapi");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(p) = server_port(&kubeconfig) {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "miniapi did not write its kubeconfig"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let cache = data_dir.with_extension("kubecache");
        let s = ApiServer {
            child,
            data_dir: data_dir.to_path_buf(),
            port,
            kubeconfig,
            cache,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl(&["get", "--raw", "/readyz", "--request-timeout=2s"]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "miniapi not ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A kubectl command with this server's kubeconfig.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_bin());
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        c.env("KUBECACHEDIR", &self.cache).env_remove("KUBECONFIG");
        c
    }

    /// Run kubectl to completion.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Run kubectl, assert success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run kubectl, assert failure, return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Apply a manifest given as text.
    pub fn apply(&self, name: &str, manifest: &str) -> Output {
        let path = self.data_dir.with_extension(format!("{name}.yaml"));
        std::fs::write(&path, manifest).expect("write manifest");
        self.kubectl(&["apply", "-f", path.to_str().expect("utf8")])
    }

    /// kill -9 and wait.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// stdout of an Output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of an Output.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
