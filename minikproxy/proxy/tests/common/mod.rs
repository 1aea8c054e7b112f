//! The cluster minikproxy's end-to-end tests share: one node namespace on an underlay
//! (192.168.50.11/24), miniapi in it (127.0.0.1), pods attached by cni-bridge
//! (10.244.1.0/24, hairpin on), servers in the pods that answer `NAME CLIENT-IP`, an
//! outside host on the underlay (192.168.50.100), and the real `minikproxy` binary in the
//! node namespace with its log in a file that failures print.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minik_tests::miniapi::ApiServer;
use minik_tests::{bin, require_sandbox, Netns, Plugin, Underlay};
use serde_json::{json, Value};

/// The node's underlay address.
pub const NODE_IP: &str = "192.168.50.11";
/// The outside host's address.
pub const OUTSIDE_IP: &str = "192.168.50.100";
/// The node's name in the API.
pub const NODE: &str = "node1";

/// A pod: its namespace and address.
pub struct Pod {
    /// Its name (what its servers answer).
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its IP.
    pub ip: String,
}

/// The test cluster.
pub struct Cluster {
    /// The underlay (dropped last).
    pub underlay: Underlay,
    /// The node.
    pub node: Netns,
    /// A host on the underlay that is not a node.
    pub outside: Netns,
    /// miniapi in the node.
    pub api: ApiServer,
    /// cni-bridge's config.
    pub cni_conf: Value,
    /// minikproxy, while it runs.
    pub proxy: std::sync::Mutex<Option<Child>>,
    /// Where its log goes.
    pub proxy_log: std::path::PathBuf,
    /// Its healthz port (metrics on the next one).
    pub health_port: u16,
    _ipam: tempfile::TempDir,
    pods: Vec<(String, String)>,
}

fn free_port(ns: &Netns) -> u16 {
    let l = ns.run(|| TcpListener::bind("127.0.0.1:0")).expect("bind");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    /// Builds the node, the outside host and miniapi (minikproxy not started yet).
    pub fn new() -> Self {
        require_sandbox();
        let underlay = Underlay::new();
        let node = Netns::new("pn");
        let outside = Netns::new("po");
        underlay.plug(&node, &format!("{NODE_IP}/24"));
        underlay.plug(&outside, &format!("{OUTSIDE_IP}/24"));
        // The outside host reaches pod IPs only through NodePorts / LB IPs; the node needs a
        // route for Service IPs so that its own connections to them are routed at all.
        node.ip(&["route", "add", "default", "via", OUTSIDE_IP]);
        let api = ApiServer::start(&node);
        let ipam = tempfile::tempdir().expect("tempdir");
        let cni_conf = json!({
            "cniVersion": "1.1.0", "name": "podnet", "type": "cni-bridge", "bridge": "cni0",
            "isDefaultGateway": true, "hairpinMode": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]], "dataDir": ipam.path()},
        });
        let proxy_log = api.dir.path().join("minikproxy.log");
        let health_port = free_port(&node);
        let c = Cluster {
            underlay,
            node,
            outside,
            api,
            cni_conf,
            proxy: std::sync::Mutex::new(None),
            proxy_log,
            health_port,
            _ipam: ipam,
            pods: vec![],
        };
        c.api.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE}\n  labels:\n    kubernetes.io/hostname: {NODE}\n"
        ));
        c.api.ok(&[
            "patch",
            "node",
            NODE,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"test"}]}}"#,
        ]);
        c
    }

    /// Attaches a pod and starts a TCP server on :8080 (and UDP on :5353) answering `NAME CLIENT-IP`.
    pub fn pod(&mut self, name: &str) -> Pod {
        let ns = Netns::new("pp");
        let id = format!("{}-{name}", ns.name);
        let r = Plugin::cni_bridge().run(&self.node, "ADD", &self.cni_conf, &id, &ns.path_str(), "eth0");
        assert!(r.ok, "cni ADD {name}: {} {}", r.out, r.stderr);
        let ip = r.out["ips"][0]["address"].as_str().expect("ip").split('/').next().unwrap_or_default().to_string();
        serve(&ns, name);
        self.pods.push((id, ns.path_str()));
        Pod { name: name.to_string(), ns, ip }
    }

    /// Starts minikproxy and waits until /healthz says it synced.
    pub fn start_proxy(&self) {
        self.start_proxy_with(&[]);
    }

    /// The same, with extra flags.
    pub fn start_proxy_with(&self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.proxy_log).expect("log");
        let child = self
            .node
            .run(|| {
                Command::new(bin("minikproxy"))
                    .arg("--kubeconfig")
                    .arg(&self.api.kubeconfig)
                    .args(["--node-name", NODE, "--cluster-cidr", "10.244.0.0/16", "--lb-interface", "eth0"])
                    .args(["--healthz-bind-address", &format!("127.0.0.1:{}", self.health_port)])
                    .args(["--metrics-bind-address", &format!("127.0.0.1:{}", self.health_port + 1)])
                    .args(extra)
                    .env("RUST_LOG", "info,minikproxy=debug")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
            })
            .expect("start minikproxy");
        // Waited for in stop_proxy (also on drop).
        self.proxy.lock().unwrap_or_else(|e| e.into_inner()).replace(child);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = self.http_get(self.health_port, "/healthz") {
                return;
            }
            assert!(Instant::now() < end, "minikproxy did not become healthy:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops minikproxy (by PID).
    pub fn stop_proxy(&self) {
        if let Some(mut c) = self.proxy.lock().ok().and_then(|mut p| p.take()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// minikproxy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proxy_log).unwrap_or_default()
    }

    /// `GET path` on 127.0.0.1:port in the node: (status, body).
    pub fn http_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        let mut s = self.node.run(|| TcpStream::connect(("127.0.0.1", port))).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        Some((code, body))
    }

    /// The table as `nft list` prints it.
    pub fn rules(&self) -> String {
        String::from_utf8_lossy(&self.node.exec("nft", &["list", "table", "ip", "minik-proxy"]).stdout).into_owned()
    }

    /// Waits (10 s at most) until the table satisfies `pred`.
    pub fn wait_rules(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.rules();
            if pred(&r) {
                return;
            }
            assert!(Instant::now() < end, "rules never showed {what}:\n{r}\nminikproxy log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A Service's ClusterIP.
    pub fn cluster_ip(&self, svc: &str) -> String {
        self.api.ok(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"])
    }

    /// A selector-less Service (the test writes its EndpointSlice itself).
    pub fn service(&self, name: &str, extra_spec: &str) -> String {
        self.api.apply(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n    protocol: TCP\n  - name: dns\n    port: 53\n    targetPort: 5353\n    protocol: UDP\n{extra_spec}"
        ));
        self.cluster_ip(name)
    }

    /// Writes the EndpointSlice of `svc`: (pod, ready, terminating) each.
    pub fn slice(&self, svc: &str, eps: &[(&Pod, bool, bool)]) {
        let mut y = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {svc}-1\n  labels:\n    kubernetes.io/service-name: {svc}\naddressType: IPv4\nports:\n- name: http\n  port: 8080\n  protocol: TCP\n- name: dns\n  port: 5353\n  protocol: UDP\nendpoints:"
        );
        y.push_str(if eps.is_empty() { " []\n" } else { "\n" });
        for (p, ready, term) in eps {
            y.push_str(&format!(
                "- addresses: [\"{}\"]\n  nodeName: {NODE}\n  conditions:\n    ready: {ready}\n    serving: true\n    terminating: {term}\n",
                p.ip
            ));
        }
        self.api.apply(&y);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_proxy();
        for (id, path) in &self.pods {
            let _ = Plugin::cni_bridge().run(&self.node, "DEL", &self.cni_conf, id, path, "eth0");
        }
    }
}

/// A helper process, ended (by PID) and reaped when dropped, also when a test fails.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `RulesProgrammed` Events about a Service.
pub fn programmed_events(c: &Cluster, svc: &str) -> Vec<Value> {
    let ev: Value = serde_json::from_str(&c.api.ok(&["get", "events", "-o", "json"])).expect("events");
    ev["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "RulesProgrammed" && e["involvedObject"]["name"] == svc)
        .cloned()
        .collect()
}

/// Starts servers in `ns` that answer `NAME CLIENT-IP`: TCP on :8080, UDP on :5353.
pub fn serve(ns: &Netns, name: &str) {
    let tcp = ns.run(|| TcpListener::bind("0.0.0.0:8080")).expect("listen tcp");
    let udp = ns.run(|| UdpSocket::bind("0.0.0.0:5353")).expect("listen udp");
    let n = name.to_string();
    std::thread::spawn(move || {
        for mut conn in tcp.incoming().flatten() {
            let peer = conn.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
            let _ = conn.write_all(format!("{n} {peer}").as_bytes());
        }
    });
    let n = name.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(format!("{n} {}", peer.ip()).as_bytes(), peer);
        }
    });
}

/// One TCP request from `ns` to `addr`: (server name, client IP it saw).
pub fn ask(ns: &Netns, addr: &str) -> std::io::Result<(String, String)> {
    let target: SocketAddr = addr.parse().map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut s = ns.run(|| TcpStream::connect_timeout(&target, Duration::from_secs(3)))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let mut w = out.split_whitespace();
    match (w.next(), w.next()) {
        (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
        _ => Err(std::io::Error::other(format!("unexpected answer {out:?}"))),
    }
}

/// `n` requests; panics on the first failure.
pub fn ask_n(ns: &Netns, addr: &str, n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| ask(ns, addr).unwrap_or_else(|e| panic!("request {i} to {addr} failed: {e}"))).collect()
}

/// Counts per server name.
pub fn counts(answers: &[(String, String)]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for (s, _) in answers {
        *m.entry(s.clone()).or_insert(0) += 1;
    }
    m
}

/// Pearson's chi-square statistic of `observed` against a uniform spread.
pub fn chi_square(observed: &[usize]) -> f64 {
    let total: usize = observed.iter().sum();
    let expected = total as f64 / observed.len() as f64;
    observed.iter().map(|&o| (o as f64 - expected).powi(2) / expected).sum()
}
