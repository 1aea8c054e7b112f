//! Probes as the kubelet runs them: `httpGet` and `tcpSocket` from the node to the pod's
//! IP (minilet runs in the node's network namespace, like a kubelet), `exec` through the
//! OCI runtime. Each probe has the Kubernetes timing fields; [`ProbeState`] turns single
//! results into the success/failure thresholds.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::OciRuntime;

/// The outcome of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Success,
    /// It failed, with the reason shown in events.
    Failure(String),
}

/// The port a probe names: a number, or the name of one of the container's ports.
fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} out of range")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("the container has no port named {name:?}")),
    }
}

async fn http_get(addr: SocketAddr, host: &str, path: &str, headers: &[(String, String)]) -> Outcome {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("Get \"http://{addr}{path}\": {e}")),
    };
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return Outcome::Failure(format!("Get \"http://{addr}{path}\": {e}"));
    }
    let mut buf = vec![0u8; 1024];
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Outcome::Failure(format!("Get \"http://{addr}{path}\": {e}")),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if (200..400).contains(&code) {
        Outcome::Success
    } else {
        Outcome::Failure(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Runs one probe once.
pub async fn run_once(probe: &Probe, c: &Container, pod_ip: Option<IpAddr>, runtime: &OciRuntime, container_id: &str) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let fut = async {
        if let Some(h) = &probe.http_get {
            let Some(ip) = h.host.as_deref().and_then(|h| h.parse().ok()).or(pod_ip) else {
                return Outcome::Failure("the pod has no IP yet".into());
            };
            let p = match port(c, &h.port) {
                Ok(p) => p,
                Err(e) => return Outcome::Failure(e),
            };
            let headers: Vec<(String, String)> =
                h.http_headers.iter().flatten().map(|x| (x.name.clone(), x.value.clone())).collect();
            return http_get(SocketAddr::new(ip, p), &ip.to_string(), h.path.as_deref().unwrap_or("/"), &headers).await;
        }
        if let Some(t) = &probe.tcp_socket {
            let Some(ip) = t.host.as_deref().and_then(|h| h.parse().ok()).or(pod_ip) else {
                return Outcome::Failure("the pod has no IP yet".into());
            };
            let p = match port(c, &t.port) {
                Ok(p) => p,
                Err(e) => return Outcome::Failure(e),
            };
            return match TcpStream::connect(SocketAddr::new(ip, p)).await {
                Ok(_) => Outcome::Success,
                Err(e) => Outcome::Failure(format!("dial tcp {ip}:{p}: {e}")),
            };
        }
        if let Some(e) = &probe.exec {
            let argv = e.command.clone().unwrap_or_default();
            let (rt, id) = (runtime.clone(), container_id.to_string());
            let res = tokio::task::spawn_blocking(move || rt.exec(&id, &argv, Some(timeout))).await;
            return match res {
                Ok(Ok(out)) if out.status.success() => Outcome::Success,
                Ok(Ok(out)) => Outcome::Failure(format!(
                    "command failed with exit code {}: {}",
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).trim()
                )),
                Ok(Err(e)) => Outcome::Failure(e.to_string()),
                Err(e) => Outcome::Failure(e.to_string()),
            };
        }
        Outcome::Failure("the probe has no handler (httpGet, tcpSocket or exec)".into())
    };
    match tokio::time::timeout(timeout + Duration::from_millis(200), fut).await {
        Ok(o) => o,
        Err(_) => Outcome::Failure(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// The running state of one probe of one container attempt.
#[derive(Debug, Clone)]
pub struct ProbeState {
    /// The probe.
    pub probe: Probe,
    /// When it may first run.
    pub next_run: Instant,
    /// Consecutive successes.
    pub successes: i32,
    /// Consecutive failures.
    pub failures: i32,
    /// The current verdict (thresholds applied).
    pub passing: bool,
    /// The last failure message.
    pub last_failure: Option<String>,
}

impl ProbeState {
    /// A probe for a container that started at `started`.
    pub fn new(probe: Probe, started: Instant, initially_passing: bool) -> Self {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        ProbeState { probe, next_run: started + delay, successes: 0, failures: 0, passing: initially_passing, last_failure: None }
    }

    /// Whether it is time to run.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_run
    }

    /// Records a result; returns true when the verdict changed.
    pub fn record(&mut self, outcome: Outcome, now: Instant) -> bool {
        let period = Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        self.next_run = now + period;
        let before = self.passing;
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                self.failures = 0;
                if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                    self.passing = true;
                }
            }
            Outcome::Failure(msg) => {
                self.failures += 1;
                self.successes = 0;
                self.last_failure = Some(msg);
                if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                    self.passing = false;
                }
            }
        }
        before != self.passing
    }
}
