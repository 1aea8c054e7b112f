//! The keeper's API calls during boot: the real kubectl, run inside node1's namespace with
//! the in-sandbox admin kubeconfig — the same commands the course types, so a failing
//! step can be replayed by hand from `minik shell node1`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use minik_shared::netns::NetNs;
use serde_json::Value;

/// kubectl against the cluster from inside the sandbox.
pub struct Kubectl {
    netns: NetNs,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// kubectl in `netns` with `kubeconfig`, discovery cache in `cache`.
    pub fn new(netns: NetNs, kubeconfig: PathBuf, cache: PathBuf) -> Self {
        Kubectl { netns, kubeconfig, cache }
    }

    /// Runs kubectl (bounded to 30 s).
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = Command::new(std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into()));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).arg("--request-timeout=20s").args(args);
        cmd.env("KUBECACHEDIR", &self.cache).env_remove("KUBECONFIG");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = self.netns.run(|| cmd.spawn())?.context("cannot run kubectl; install it (make deps)")?;
        wait_output(child, Duration::from_secs(30))
    }

    /// Runs kubectl, failing with its stderr; returns stdout.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl get … -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let text = self.ok(&full)?;
        serde_json::from_str(&text).with_context(|| format!("kubectl {}: not JSON", args.join(" ")))
    }

    /// Polls `check` every 300 ms until it returns `Some`, for at most `limit`; `stop`
    /// ends the wait early. The error carries the last thing `check` said.
    pub fn wait<T>(
        &self,
        limit: Duration,
        stop: &dyn Fn() -> bool,
        mut check: impl FnMut(&Kubectl) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let end = Instant::now() + limit;
        loop {
            let last = match check(self) {
                Ok(v) => return Ok(v),
                Err(why) => why,
            };
            if stop() {
                bail!("interrupted");
            }
            if Instant::now() >= end {
                bail!("not after {}s: {last}", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Waits (bounded) for a child's output, killing it by PID when it runs over.
pub fn wait_output(mut child: std::process::Child, limit: Duration) -> anyhow::Result<Output> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e).context("waiting for kubectl"),
        }
    }
    child.wait_with_output().context("kubectl output")
}

/// Whether a Node object's Ready condition is True.
pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .map(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        .unwrap_or(false)
}
