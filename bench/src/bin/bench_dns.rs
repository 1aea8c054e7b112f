//! `bench-dns`: minik-dns against Debian's dnsmasq, both answering the same Service name
//! (`web.bench.svc.cluster.local A <ClusterIP>`) over UDP on loopback, in one run, inside
//! the sandbox: the latency of sequential queries (p50, p99) and the queries per second
//! of several clients in closed loop (each sends its next query when the last reply is in).
//!
//! Fair by construction: one netns, the same client code and query bytes for both, both
//! answering from memory (minik-dns from its zone, filled by watching a real miniapi;
//! dnsmasq from a `--host-record`), neither logging queries. Every reply is checked (ID,
//! NOERROR, the ClusterIP as the last four bytes); a wrong or missing reply in the latency
//! run fails the benchmark. It asserts nothing about time.
//!
//! Run it as `make bench` does: `scripts/sandbox.sh target/release/bench-dns`. The
//! minik-dns and miniapi it starts are the ones in `MINIK_BIN_DIR`, else next to this binary.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use minik_bench::stats::{ms, percentile, ratio};
use minik_tests::miniapi::ApiServer;
use minik_tests::Netns;

const NAME: &str = "web.bench.svc.cluster.local";
const MINIK_DNS: &str = "127.0.0.1:5301";
const DNSMASQ: &str = "127.0.0.1:5302";

/// minik-dns vs dnsmasq: query latency (p50, p99) and queries/s for one Service name.
#[derive(Debug, Parser)]
#[command(name = "bench-dns")]
struct Args {
    /// Timed sequential queries per server (100..=100000).
    #[arg(long = "n", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    n: u32,
    /// Untimed queries per server first (0..=10000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    warmup: u32,
    /// Concurrent clients in the throughput run (1..=64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    clients: u16,
    /// Seconds of the throughput run per server (1..=30).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=30))]
    seconds: u64,
}

/// One server's figures.
struct Figures {
    p50: Duration,
    p99: Duration,
    qps: f64,
    lost: u64,
}

fn main() -> ExitCode {
    // Flags first, so `--help` works outside the sandbox.
    let args = Args::parse();
    minik_tests::require_sandbox();
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-dns failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: Args) -> Result<()> {
    if std::env::var_os("MINIK_BIN_DIR").is_none() {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        if let Some(dir) = exe.parent() {
            // Still single-threaded: nothing reads the environment concurrently.
            std::env::set_var("MINIK_BIN_DIR", dir);
        }
    }
    let minik_dns = minik_tests::bin("minik-dns");
    let ns = Netns::new("bdns");
    let api = ApiServer::start(&ns);
    api.ok(&["create", "namespace", "bench"]);
    api.ok(&["-n", "bench", "create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip: Ipv4Addr = api
        .ok(&["-n", "bench", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .trim()
        .parse()
        .context("the Service has no IPv4 ClusterIP")?;

    let _dns = Guard(
        ns.run(|| {
            Command::new(&minik_dns)
                .arg("--kubeconfig")
                .arg(&api.kubeconfig)
                .args(["--listen", MINIK_DNS, "--health-bind", "off"])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
        })
        .with_context(|| format!("cannot start {}", minik_dns.display()))?,
    );
    let _dnsmasq = Guard(
        ns.run(|| {
            Command::new("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--port=5302",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--pid-file=",
                    "--user=root",
                    "--cache-size=1000",
                    &format!("--host-record={NAME},{ip}"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .context("cannot start dnsmasq (Debian package dnsmasq-base; scripts/deps.sh installs it)")?,
    );

    let servers = [("minik-dns", MINIK_DNS), ("dnsmasq", DNSMASQ)];
    for (name, addr) in servers {
        wait_answering(&ns, addr, ip).with_context(|| format!("{name} does not answer {NAME}"))?;
    }
    eprintln!(
        "{NAME} A {ip}: {} sequential queries (after {} untimed), then {} clients for {} s, per server",
        args.n, args.warmup, args.clients, args.seconds
    );
    let mut results = Vec::new();
    for (name, addr) in servers {
        let f = measure(&ns, addr, ip, &args).with_context(|| format!("measuring {name}"))?;
        results.push((name, f));
    }

    println!("\n{:<12} {:>10} {:>10} {:>12} {:>6}", "server", "p50 (ms)", "p99 (ms)", "queries/s", "lost");
    for (name, f) in &results {
        println!("{name:<12} {:>10.3} {:>10.3} {:>12.0} {:>6}", ms(f.p50), ms(f.p99), f.qps, f.lost);
    }
    if let [(_, m), (_, d)] = &results[..] {
        println!(
            "{:<12} {:>10.2} {:>10.2} {:>12.2}   (minik-dns / dnsmasq; latency below 1 and queries/s above 1: minik-dns is faster)",
            "ratio",
            ratio(m.p50, d.p50),
            ratio(m.p99, d.p99),
            m.qps / d.qps.max(1.0)
        );
    }
    Ok(())
}

/// Ends a child by its PID when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The query for `NAME A`, with recursion desired and no EDNS.
fn query(id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in NAME.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether `reply` answers query `id` with NOERROR and `ip` as its last record's data.
fn is_answer(reply: &[u8], id: u16, ip: Ipv4Addr) -> bool {
    reply.len() >= 16
        && reply[..2] == id.to_be_bytes()
        && reply[3] & 0x0f == 0
        && u16::from_be_bytes([reply[6], reply[7]]) >= 1
        && reply[reply.len() - 4..] == ip.octets()
}

/// A UDP socket in `ns`, connected to `addr`.
fn socket(ns: &Netns, addr: &str) -> Result<UdpSocket> {
    let server: SocketAddr = addr.parse().context("server address")?;
    let sock = ns.run(|| UdpSocket::bind("127.0.0.1:0")).context("cannot bind a UDP socket")?;
    sock.connect(server).context("cannot connect the UDP socket")?;
    sock.set_read_timeout(Some(Duration::from_secs(1))).context("cannot set a timeout")?;
    Ok(sock)
}

/// One query and its reply; `Ok(false)` for a timeout or a wrong reply.
fn ask(sock: &UdpSocket, id: u16, ip: Ipv4Addr, buf: &mut [u8]) -> Result<bool> {
    sock.send(&query(id)).context("cannot send")?;
    loop {
        match sock.recv(buf) {
            // A late reply to an earlier query: skip it.
            Ok(n) if n >= 2 && buf[..2] != id.to_be_bytes() => continue,
            Ok(n) => return Ok(is_answer(&buf[..n], id, ip)),
            // No reply, or nobody listening (yet): no answer.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e).context("cannot receive"),
        }
    }
}

/// Polls (at most 30 s) until the server answers the name right.
fn wait_answering(ns: &Netns, addr: &str, ip: Ipv4Addr) -> Result<()> {
    let sock = socket(ns, addr)?;
    let mut buf = [0u8; 1500];
    let end = Instant::now() + Duration::from_secs(30);
    for id in 0u16.. {
        if ask(&sock, id, ip, &mut buf)? {
            return Ok(());
        }
        if Instant::now() >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no right answer within 30 s")
}

fn measure(ns: &Netns, addr: &str, ip: Ipv4Addr, args: &Args) -> Result<Figures> {
    let sock = socket(ns, addr)?;
    let mut buf = [0u8; 1500];
    for i in 0..args.warmup {
        ask(&sock, i as u16, ip, &mut buf)?;
    }
    let mut samples = Vec::with_capacity(args.n as usize);
    for i in 0..args.n {
        let id = (i as u16).wrapping_add(0x4000);
        let start = Instant::now();
        if !ask(&sock, id, ip, &mut buf)? {
            bail!("query {i} got no right answer");
        }
        samples.push(start.elapsed());
    }
    samples.sort_unstable();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for c in 0..args.clients {
        let sock = socket(ns, addr)?;
        let (stop, done, lost) = (stop.clone(), done.clone(), lost.clone());
        workers.push(std::thread::spawn(move || -> Result<()> {
            let mut buf = [0u8; 1500];
            let mut id = c.wrapping_mul(4096);
            while !stop.load(Ordering::Relaxed) {
                id = id.wrapping_add(1);
                if ask(&sock, id, ip, &mut buf)? {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    Ok(Figures {
        p50: percentile(&samples, 0.5).context("no samples")?,
        p99: percentile(&samples, 0.99).context("no samples")?,
        qps: done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        lost: lost.load(Ordering::Relaxed),
    })
}
