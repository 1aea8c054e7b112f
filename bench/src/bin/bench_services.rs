//! `bench-services`: the cluster issue's data-path and boot figures, each next to its
//! reference, in one run inside the sandbox:
//!
//! - cluster boot: `minik up` of three nodes to the course's demo Ready (target ≤ 10 s);
//! - throughput between pods on two nodes with Debian's `iperf3`: through the Service's
//!   ClusterIP (minikproxy's DNAT) vs straight to the server pod's IP (target ≥ 95 %);
//! - latency: new TCP connections with one request/response each, and request/response
//!   round trips on one connection, ClusterIP vs pod IP (p50/p90).
//!
//! Pods run busybox's `sleep`; the measuring programs (iperf3, and this binary's own
//! `rr-server`/`rr-client` subcommands) are started in the pods' network namespaces with
//! `minik shell NODE -- nsenter --net=<pod netns>`, so what is measured is exactly the pod
//! network path. Run it as `make bench` does: `scripts/sandbox.sh target/release/bench-services`.
//! It asserts nothing about time; it fails only when something does not work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use minik_bench::stats::{ms, Samples};

/// Cluster boot, ClusterIP vs pod-IP throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "bench-services")]
struct Args {
    /// Seconds per iperf3 run (1..=30).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=30))]
    seconds: u64,
    /// iperf3 runs per target, alternating (1..=10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    runs: u64,
    /// Request/response samples per target (10..=20000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=20000))]
    samples: u64,
    #[command(subcommand)]
    role: Option<Role>,
}

/// What this binary does inside a pod's network namespace.
#[derive(Debug, Subcommand)]
enum Role {
    /// Echo server: answers every byte it reads, for at most `--for` seconds.
    #[command(hide = true)]
    RrServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long = "for", default_value_t = 120)]
        for_secs: u64,
    },
    /// Client: prints `connect <ns>` and `rr <ns>` lines, one per sample.
    #[command(hide = true)]
    RrClient {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        n: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match &args.role {
        Some(Role::RrServer { listen, for_secs }) => rr_server(*listen, Duration::from_secs(*for_secs)),
        Some(Role::RrClient { addr, n }) => rr_client(*addr, *n),
        None => {
            minik_tests::require_sandbox();
            bench(&args)
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-services failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The launched cluster; `minik down` when dropped.
struct Cluster {
    minik: PathBuf,
    state: tempfile::TempDir,
}

impl Cluster {
    fn minik(&self) -> Command {
        let mut c = Command::new(&self.minik);
        c.arg("--state-dir").arg(self.state.path());
        c
    }

    fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.state.path().join("admin.kubeconfig"))
            .args(args)
            .env("KUBECACHEDIR", self.state.path().join("kubecache"))
            .output()
            .context("cannot run kubectl")?;
        if !out.status.success() {
            bail!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command run in a pod's network namespace on `node`.
    fn in_pod(&self, node: &str, netns: &Path, argv: &[&str]) -> Command {
        let mut c = self.minik();
        c.args(["shell", node, "--", "nsenter"]).arg(format!("--net={}", netns.display())).args(argv);
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.minik().arg("down").stdout(Stdio::null()).status();
    }
}

/// A background process, ended by PID.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench(args: &Args) -> Result<()> {
    let me = std::env::current_exe().context("cannot find this binary")?;
    let dir = me.parent().context("binary without a directory")?;
    let minik = std::env::var_os("MINIK_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| dir.to_path_buf()).join("minik");
    if !minik.exists() {
        bail!("{} is not built; run `cargo build --release --bins` (make bench does)", minik.display());
    }
    for tool in ["iperf3", "nsenter", "kubectl"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status()?.code() != Some(0) {
            bail!("{tool} is not installed; run scripts/deps.sh");
        }
    }
    let cluster = Cluster { minik, state: tempfile::tempdir()? };

    // 1. Boot to demo Ready.
    println!("booting a 3-node cluster with the course's demo ...");
    let t0 = Instant::now();
    let up = cluster.minik().args(["up", "--nodes", "3", "--api-port", "26443"]).stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let boot = t0.elapsed();
    if !up.status.success() {
        bail!("minik up failed: {}", String::from_utf8_lossy(&up.stderr));
    }

    // 2. A server pod on node2, a client pod on node1, a Service in front of the server.
    let file = cluster.state.path().join("bench-pods.yaml");
    std::fs::write(&file, minik_bench::datapath::PODS)?;
    cluster.kubectl(&["apply", "-f", &file.display().to_string()])?;
    cluster.kubectl(&["wait", "--for=condition=Ready", "pod/bench-srv", "pod/bench-cli", "--timeout=60s"])?;
    let end = Instant::now() + Duration::from_secs(30);
    while !cluster.kubectl(&["get", "endpoints", "bench-srv", "-o", "jsonpath={.subsets[0].addresses[0].ip}"])?.contains('.') {
        if Instant::now() > end {
            bail!("the Service bench-srv got no endpoint");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pod_ip = cluster.kubectl(&["get", "pod", "bench-srv", "-o", "jsonpath={.status.podIP}"])?;
    let cluster_ip = cluster.kubectl(&["get", "svc", "bench-srv", "-o", "jsonpath={.spec.clusterIP}"])?;
    let netns = |pod: &str, node: &str| -> Result<PathBuf> {
        let uid = cluster.kubectl(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"])?;
        Ok(cluster.state.path().join(node).join("root/pods").join(uid.trim()).join("ns/net"))
    };
    let (srv_ns, cli_ns) = (netns("bench-srv", "node2")?, netns("bench-cli", "node1")?);
    // Rules are programmed asynchronously after the endpoints: wait until the ClusterIP answers.
    let _rr = Bg(cluster
        .in_pod("node2", &srv_ns, &[&me.display().to_string(), "rr-server", "--listen", "0.0.0.0:7000", "--for", "600"])
        .stdout(Stdio::null())
        .spawn()?);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = cluster
            .in_pod("node1", &cli_ns, &[&me.display().to_string(), "rr-client", "--addr", &format!("{cluster_ip}:7000"), "--n", "1"])
            .output()?;
        if probe.status.success() {
            break;
        }
        if Instant::now() > end {
            bail!("the ClusterIP {cluster_ip}:7000 does not answer: {}", String::from_utf8_lossy(&probe.stderr));
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    // 3. Throughput, alternating targets.
    let mut gbps: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let targets = [pod_ip.trim().to_string(), cluster_ip.trim().to_string()];
    for run in 0..args.runs {
        for (i, target) in targets.iter().enumerate() {
            let g = iperf(&cluster, &srv_ns, &cli_ns, target, args.seconds)
                .with_context(|| format!("iperf3 run {run} to {target}"))?;
            gbps[i].push(g);
        }
    }

    // 4. Latency.
    let mut lat = Vec::new();
    for target in &targets {
        let out = cluster
            .in_pod("node1", &cli_ns, &[&me.display().to_string(), "rr-client", "--addr", &format!("{target}:7000"), "--n", &args.samples.to_string()])
            .output()?;
        if !out.status.success() {
            bail!("rr-client to {target}: {}", String::from_utf8_lossy(&out.stderr));
        }
        lat.push(parse_rr(&String::from_utf8_lossy(&out.stdout)));
    }
    report(args, boot, &targets, &gbps, &lat);
    Ok(())
}

/// One iperf3 run (server one-off in the server pod); Gbit/s received.
fn iperf(c: &Cluster, srv: &Path, cli: &Path, target: &str, secs: u64) -> Result<f64> {
    let _server = Bg(c.in_pod("node2", srv, &["iperf3", "-s", "-1", "-p", "5201"]).stdout(Stdio::null()).spawn()?);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let out = c.in_pod("node1", cli, &["iperf3", "-J", "-c", target, "-p", "5201", "-t", &secs.to_string()]).output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps / 1e9);
        }
        if Instant::now() > end {
            bail!("iperf3 gave no result: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        // The server may not listen yet.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Connection and round-trip samples from rr-client's output.
fn parse_rr(out: &str) -> (Samples, Samples) {
    let (mut conn, mut rr) = (Samples::with_capacity(4096), Samples::with_capacity(4096));
    for line in out.lines() {
        let mut it = line.split_whitespace();
        let (Some(kind), Some(ns)) = (it.next(), it.next().and_then(|n| n.parse::<u64>().ok())) else { continue };
        match kind {
            "connect" => conn.push(Duration::from_nanos(ns)),
            "rr" => rr.push(Duration::from_nanos(ns)),
            _ => {}
        }
    }
    (conn, rr)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn report(args: &Args, boot: Duration, targets: &[String; 2], gbps: &[Vec<f64>; 2], lat: &[(Samples, Samples)]) {
    println!("\nservices bench: 3 nodes, pods on node1 -> node2 (debug or release as built)");
    println!("cluster boot to demo Ready: {:.1} s (target <= 10 s)", boot.as_secs_f64());
    println!("\n{:<28} {:>16} {:>16} {:>8}", "", "pod IP (direct)", "ClusterIP", "ratio");
    println!("{:<28} {:>16} {:>16}", "target", targets[0], targets[1]);
    let (d, s) = (median(&gbps[0]), median(&gbps[1]));
    println!(
        "{:<28} {:>16.2} {:>16.2} {:>7.1}%   (iperf3 -t {}, median of {}; target >= 95 %)",
        "throughput Gbit/s",
        d,
        s,
        if d > 0.0 { 100.0 * s / d } else { 0.0 },
        args.seconds,
        args.runs
    );
    let row = |name: &str, a: &Samples, b: &Samples| {
        if let (Some(x), Some(y)) = (a.summary(), b.summary()) {
            println!("{:<28} {:>16.3} {:>16.3} {:>7.2}x", format!("{name} p50 ms"), ms(x.p50), ms(y.p50), y.p50.as_secs_f64() / x.p50.as_secs_f64());
            println!("{:<28} {:>16.3} {:>16.3} {:>7.2}x", format!("{name} p90 ms"), ms(x.p90), ms(y.p90), y.p90.as_secs_f64() / x.p90.as_secs_f64());
        }
    };
    if let [(c0, r0), (c1, r1)] = lat {
        row("new connection + 1 RR", c0, c1);
        row("round trip, open conn", r0, r1);
    }
}

/// Echo server for the latency samples; exits after `limit` at the latest.
fn rr_server(listen: SocketAddr, limit: Duration) -> Result<()> {
    let l = TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        std::process::exit(0);
    });
    for conn in l.incoming() {
        let mut s = conn?;
        s.set_nodelay(true)?;
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            while let Ok(1) = s.read(&mut b) {
                if s.write_all(&b).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// `n` new connections with one round trip each, then `n` round trips on one connection.
fn rr_client(addr: SocketAddr, n: u64) -> Result<()> {
    let mut out = String::new();
    let mut b = [7u8; 1];
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        s.write_all(&b)?;
        s.read_exact(&mut b)?;
        out.push_str(&format!("connect {}\n", t.elapsed().as_nanos()));
    }
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&b)?;
        s.read_exact(&mut b)?;
        out.push_str(&format!("rr {}\n", t.elapsed().as_nanos()));
    }
    print!("{out}");
    Ok(())
}
