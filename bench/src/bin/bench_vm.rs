//! `bench-vm`: the VM-node figures of issue 7, each next to a reference measured in the
//! same run, inside the sandbox:
//!
//! - boot: `minik up --backend vm --nodes 3` with the course's demo, from the start of the
//!   command to all 3 nodes Ready and to demo Ready (the moments `minik up` prints its
//!   `[k/n] nodes Ready ... ok` and `demo: ... ok` lines, read as they arrive on its
//!   stdout), under TCG (`--vm-accel tcg`, so no KVM probe is in the figure) and under KVM
//!   when `/dev/kvm` exists and KVM guests work here (`--vm-accel kvm` fails after minik's
//!   probe boot otherwise: the reason is printed). Reference: the netns backend
//!   (`minik up --nodes 3`). Target: 3 VM nodes Ready in ≤ 60 s under TCG;
//! - memory per node VM: the QEMU process's RSS on the host (`VmRSS` of the PID that
//!   `processes.json` in the state dir names), and what the guest uses (MemTotal −
//!   MemAvailable of `minik shell nodeN -- cat /proc/meminfo`), against `--vm-memory`;
//! - throughput: iperf3 from a pod on node1 to a pod on node2 through the Service's
//!   ClusterIP vs straight to the server pod's IP, each run as `minik shell nodeN --
//!   nsenter --net=<pod netns> iperf3 …` (in a VM the pod's netns is
//!   `/var/lib/minik/minilet/pods/<uid>/ns/net`, checked by listing it), the server a
//!   one-off daemon (`iperf3 -s -1 -D`) that ends with its test or with the cluster. The
//!   same pair on the netns cluster, booted first and taken down before the VMs boot so
//!   that the two do not share the two CPUs.
//!
//! The node image is built (cached by `images/vm/build.sh`) from the binaries next to
//! `minik` (`MINIK_BIN_DIR`, else this binary's directory) into
//! `<target>/images/vm-<profile>`. Every wait is bounded; every cluster is taken down
//! (`minik down`) when its guard is dropped, on failure too. The load average is printed
//! at the start and the end: the figures mean little on a machine that is busy with
//! something else. It asserts nothing about time; it fails only when something does not
//! work. Run it as `make bench` does:
//! `MINIK_BIN_DIR=$PWD/target/release scripts/sandbox.sh target/release/bench-vm`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use minik_bench::procs::{mem, mib};
use serde_json::Value;

/// VM cluster boot, memory per node VM, ClusterIP vs pod-IP throughput on VMs.
#[derive(Debug, Parser)]
#[command(name = "bench-vm")]
struct Args {
    /// Seconds per iperf3 run (1..=30).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=30))]
    seconds: u64,
    /// iperf3 runs per target, alternating pod IP and ClusterIP (1..=10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    runs: u64,
    /// Do not try KVM (it costs minik's 12 s probe boot where KVM guests hang).
    #[arg(long)]
    skip_kvm: bool,
    /// Memory per node VM in MiB (minik's default; 256..=4096).
    #[arg(long, default_value_t = 768, value_parser = clap::value_parser!(u32).range(256..=4096))]
    vm_memory: u32,
}

/// The target of the issue: 3 VM nodes Ready under TCG.
const TARGET: Duration = Duration::from_secs(60);
/// How long one `minik up` may take (minik gives up after 600 s itself).
const UP_LIMIT: Duration = Duration::from_secs(660);
/// How long the node image build may take.
const BUILD_LIMIT: Duration = Duration::from_secs(600);
/// How often one kubectl call is tried.
const KUBECTL_TRIES: u32 = 5;
/// No kubectl call is tried again after this.
const KUBECTL_LIMIT: Duration = Duration::from_secs(420);
/// Where minilet keeps a pod inside a node VM (its `rootDir`).
const VM_PODS_DIR: &str = "/var/lib/minik/minilet/pods";

fn main() -> ExitCode {
    let args = Args::parse();
    minik_tests::require_sandbox();
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-vm failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Processes with limits.

/// What a finished command printed and how it ended.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr).trim().to_string()
    }
}

/// Reads a pipe to its end on a thread.
fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// Runs `cmd` to its end, killed (by its PID) after `limit`.
fn run(mut cmd: Command, limit: Duration) -> Result<Out> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("cannot run {what}"))?;
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not end within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Out { ok: status.success(), stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// The load average, as /proc/loadavg says it.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------
// Where things are.

/// The binaries, the repository and the node image of this run.
struct Paths {
    minik: PathBuf,
    bin_dir: PathBuf,
    repo: PathBuf,
    /// `<target>/images/vm-<profile>`.
    image: PathBuf,
}

fn paths() -> Result<Paths> {
    let me = std::env::current_exe().context("cannot find this binary")?;
    let here = me.parent().context("this binary has no directory")?.to_path_buf();
    let bin_dir = std::env::var_os("MINIK_BIN_DIR").map(PathBuf::from).unwrap_or(here);
    let bin_dir = bin_dir.canonicalize().with_context(|| format!("MINIK_BIN_DIR {}: no such directory", bin_dir.display()))?;
    let minik = bin_dir.join("minik");
    if !minik.exists() {
        bail!("{} is not built; run `cargo build --release --workspace --bins` (make bench does)", minik.display());
    }
    let profile = bin_dir.file_name().and_then(|n| n.to_str()).unwrap_or("bin").to_string();
    let target = bin_dir.parent().context("the binaries' directory has no parent (expected target/<profile>)")?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("bench/ has no parent")?.to_path_buf();
    Ok(Paths { image: target.join("images").join(format!("vm-{profile}")), minik, bin_dir, repo })
}

/// Builds the node image from the run's binaries (build.sh skips it when nothing changed).
fn build_image(p: &Paths) -> Result<()> {
    let t0 = Instant::now();
    let mut c = Command::new(p.repo.join("images/vm/build.sh"));
    c.arg("--bin-dir").arg(&p.bin_dir).arg("--out").arg(&p.image);
    let out = run(c, BUILD_LIMIT)?;
    if !out.ok {
        bail!("images/vm/build.sh --bin-dir {} --out {} failed:\n{}", p.bin_dir.display(), p.image.display(), out.text());
    }
    let cached = out.stdout.contains("up to date");
    println!("node image {}: {} ({:.0} s)", p.image.display(), if cached { "up to date" } else { "built" }, t0.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A cluster and its boot.

/// A launched cluster; `minik down` when dropped.
struct Cluster {
    minik: PathBuf,
    state: tempfile::TempDir,
}

impl Cluster {
    fn new(p: &Paths) -> Result<Self> {
        Ok(Cluster { minik: p.minik.clone(), state: tempfile::tempdir().context("cannot make a state dir")? })
    }

    fn minik(&self) -> Command {
        let mut c = Command::new(&self.minik);
        c.arg("--state-dir").arg(self.state.path());
        c
    }

    /// `minik shell NODE -- ARGV…` (a VM's agent kills the command after 120 s).
    fn shell(&self, node: &str, argv: &[&str]) -> Result<Out> {
        let mut c = self.minik();
        c.args(["shell", node, "--"]).args(argv);
        run(c, Duration::from_secs(150))
    }

    /// `ARGV…` in the network namespace `netns` on `node`.
    fn in_netns(&self, node: &str, netns: &str, argv: &[&str]) -> Result<Out> {
        let net = format!("--net={netns}");
        let mut all = vec!["nsenter", net.as_str()];
        all.extend_from_slice(argv);
        self.shell(node, &all)
    }

    /// kubectl against the cluster; every call here is idempotent (apply, get, wait), so
    /// a failed one is tried again (at most [`KUBECTL_TRIES`] times, none started after
    /// [`KUBECTL_LIMIT`]): an API server in a VM under TCG on a busy host drops
    /// connections now and then.
    fn kubectl(&self, args: &[&str]) -> Result<String> {
        let mut last = String::new();
        let end = Instant::now() + KUBECTL_LIMIT;
        for attempt in 1..=KUBECTL_TRIES {
            if attempt > 1 && Instant::now() >= end {
                break;
            }
            let mut c = Command::new("kubectl");
            c.arg("--kubeconfig").arg(self.state.path().join("admin.kubeconfig")).args(args);
            c.env("KUBECACHEDIR", self.state.path().join("kubecache"));
            match run(c, Duration::from_secs(360)) {
                Ok(out) if out.ok => return Ok(out.stdout),
                Ok(out) => last = out.stderr.trim().to_string(),
                Err(e) => last = format!("{e:#}"),
            }
            eprintln!("  kubectl {} (try {attempt} of {KUBECTL_TRIES}): {last}", args.join(" "));
            std::thread::sleep(Duration::from_secs(3));
        }
        bail!("kubectl {}: {last}", args.join(" "))
    }

    /// `minik up ARGS…`, following its progress lines as they arrive.
    fn up(&self, args: &[&str]) -> Result<Boot> {
        let t0 = Instant::now();
        let mut c = self.minik();
        c.arg("up").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Guarded(c.spawn().context("cannot run minik up")?);
        let err = drain(child.0.stderr.take());
        let (tx, rx) = mpsc::channel();
        let stdout = child.0.stdout.take().context("minik up has no stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let end = t0 + UP_LIMIT;
        let mut boot = Boot::default();
        loop {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok((at, line)) => boot.line(at - t0, &line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => bail!("minik up {} did not end within {} s:\n{}", args.join(" "), UP_LIMIT.as_secs(), boot.output),
            }
        }
        let status = child.0.wait().context("waiting for minik up")?;
        boot.total = t0.elapsed();
        boot.error = (!status.success()).then(|| format!("{}\n{}", boot.output.trim(), err.join().unwrap_or_default().trim()));
        Ok(boot)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = self.minik();
        c.arg("down");
        let _ = run(c, Duration::from_secs(180));
    }
}

/// A child killed (by its PID) and reaped when dropped.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// One `minik up`, as it went.
#[derive(Debug, Default)]
struct Boot {
    /// Each finished step: its title, its outcome (`ok` or `NOT READY`), its own seconds.
    steps: Vec<(String, String, f64)>,
    /// From the start of `minik up` to its "nodes Ready ... ok" line.
    nodes_ready: Option<Duration>,
    /// From the start to its "demo: ... ok" line.
    demo_ready: Option<Duration>,
    /// The accelerator the VM step reports (`Tcg`, `Kvm`).
    accel: Option<String>,
    total: Duration,
    output: String,
    /// `minik up` failed: what it said.
    error: Option<String>,
}

impl Boot {
    fn line(&mut self, at: Duration, line: &str) {
        self.output.push_str(line);
        self.output.push('\n');
        let Some((title, outcome, secs, note)) = parse_step(line) else { return };
        if outcome == "ok" && title == "nodes Ready" {
            self.nodes_ready = Some(at);
        }
        if outcome == "ok" && title.starts_with("demo:") {
            self.demo_ready = Some(at);
        }
        if title.starts_with("VM nodes") {
            self.accel = note.split(',').next().map(str::to_string);
        }
        self.steps.push((title, outcome, secs));
    }
}

/// A finished step line of `minik up`: `[k/n] TITLE ... ok (1.2s) NOTE` or
/// `[k/n] TITLE ... NOT READY (1.2s): NOTE` → (title, outcome, seconds, note).
fn parse_step(line: &str) -> Option<(String, String, f64, String)> {
    let rest = line.strip_prefix('[')?;
    let (_, rest) = rest.split_once("] ")?;
    let (title, result) = rest.split_once(" ... ")?;
    let (outcome, rest) = if let Some(r) = result.strip_prefix("ok (") {
        ("ok", r)
    } else {
        ("NOT READY", result.strip_prefix("NOT READY (")?)
    };
    let (secs, note) = rest.split_once("s)")?;
    let note = note.trim_start_matches(':').trim();
    Some((title.to_string(), outcome.to_string(), secs.parse().ok()?, note.to_string()))
}

// ---------------------------------------------------------------------------------------
// Pods (minik_bench::datapath) and iperf3.

/// Where a node keeps its pods, as seen by `minik shell NODE`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Netns,
    Vm,
}

/// The pod IP and ClusterIP figures of one cluster (Gbit/s per run).
#[derive(Debug, Default)]
struct Throughput {
    pod_ip: Vec<f64>,
    cluster_ip: Vec<f64>,
}

/// Server pod on node2, client pod on node1, a Service; then iperf3 runs alternating
/// between the pod IP and the ClusterIP.
fn throughput(c: &Cluster, kind: Kind, args: &Args) -> Result<Throughput> {
    let file = c.state.path().join("bench-pods.yaml");
    std::fs::write(&file, minik_bench::datapath::PODS).context("cannot write the bench pods' manifest")?;
    c.kubectl(&["apply", "-f", &file.display().to_string()])?;
    c.kubectl(&["wait", "--for=condition=Ready", "pod/bench-srv", "pod/bench-cli", "--timeout=300s"])?;
    let pod_ip = c.kubectl(&["get", "pod", "bench-srv", "-o", "jsonpath={.status.podIP}"])?.trim().to_string();
    let cluster_ip = c.kubectl(&["get", "svc", "bench-srv", "-o", "jsonpath={.spec.clusterIP}"])?.trim().to_string();
    let srv = pod_netns(c, kind, "bench-srv", "node2")?;
    let cli = pod_netns(c, kind, "bench-cli", "node1")?;

    // Warm-up, untimed: the first run to the ClusterIP also waits for the Service's
    // endpoints and each node's rules.
    for target in [&pod_ip, &cluster_ip] {
        iperf(c, &srv, &cli, target, 1, Duration::from_secs(120)).with_context(|| format!("iperf3 warm-up to {target}"))?;
    }
    let mut t = Throughput::default();
    for run in 0..args.runs {
        t.pod_ip.push(iperf(c, &srv, &cli, &pod_ip, args.seconds, Duration::from_secs(60)).with_context(|| format!("iperf3 run {run} to the pod IP {pod_ip}"))?);
        t.cluster_ip.push(iperf(c, &srv, &cli, &cluster_ip, args.seconds, Duration::from_secs(60)).with_context(|| format!("iperf3 run {run} to the ClusterIP {cluster_ip}"))?);
    }
    Ok(t)
}

/// The pod's network namespace file on `node`, checked by listing its directory there.
fn pod_netns(c: &Cluster, kind: Kind, pod: &str, node: &str) -> Result<String> {
    let uid = c.kubectl(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"])?.trim().to_string();
    let dir = match kind {
        Kind::Netns => c.state.path().join(node).join("root/pods").join(&uid).join("ns").display().to_string(),
        Kind::Vm => format!("{VM_PODS_DIR}/{uid}/ns"),
    };
    let ls = c.shell(node, &["ls", &dir])?;
    if !ls.ok || !ls.stdout.split_whitespace().any(|f| f == "net") {
        bail!("pod {pod} on {node}: no network namespace file in {dir} (ls says: {})", ls.text());
    }
    Ok(format!("{dir}/net"))
}

/// One iperf3 run (a one-off server daemon in the server pod); Gbit/s received. Retried
/// until `limit` while the server does not listen yet or the target does not answer.
fn iperf(c: &Cluster, srv: &str, cli: &str, target: &str, secs: u64, limit: Duration) -> Result<f64> {
    let end = Instant::now() + limit;
    let mut server = c.in_netns("node2", srv, &["iperf3", "-s", "-1", "-D", "-p", "5201"])?;
    loop {
        let out = c.in_netns("node1", cli, &["iperf3", "-J", "-c", target, "-p", "5201", "-t", &secs.to_string(), "--connect-timeout", "3000"])?;
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps / 1e9);
        }
        if Instant::now() > end {
            let why = v["error"].as_str().map(str::to_string).unwrap_or_else(|| out.text());
            bail!("iperf3 gave no result within {} s: {why} (server start: {})", limit.as_secs(), server.text());
        }
        std::thread::sleep(Duration::from_millis(500));
        // The one-off server may have ended with a failed attempt; a second one on the
        // same port fails harmlessly while the first still listens.
        server = c.in_netns("node2", srv, &["iperf3", "-s", "-1", "-D", "-p", "5201"])?;
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied()
}

// ---------------------------------------------------------------------------------------
// Memory.

/// One node VM's memory, in KiB.
#[derive(Debug)]
struct VmMem {
    node: String,
    qemu_rss_kib: u64,
    guest_total_kib: u64,
    guest_used_kib: u64,
}

/// The QEMU PIDs of the cluster, by node, from the keeper's processes.json.
fn qemu_pids(c: &Cluster) -> Result<Vec<(String, i32)>> {
    let path = c.state.path().join("processes.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let mut out: Vec<(String, i32)> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "qemu" && p["state"] == "running")
        .filter_map(|p| Some((p["node"].as_str()?.to_string(), i32::try_from(p["pid"].as_u64()?).ok()?)))
        .collect();
    out.sort();
    Ok(out)
}

/// A `Key:  123 kB` value of /proc/meminfo.
fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
}

fn vm_memory(c: &Cluster) -> Result<Vec<VmMem>> {
    let pids = qemu_pids(c)?;
    if pids.len() != 3 {
        bail!("expected 3 running QEMU processes in processes.json, found {pids:?}");
    }
    let mut out = Vec::new();
    for (node, pid) in pids {
        let rss = mem(pid).with_context(|| format!("QEMU of {node} (pid {pid}) is gone"))?.rss_kib;
        let info = c.shell(&node, &["cat", "/proc/meminfo"])?;
        let (Some(total), Some(avail)) = (meminfo_kib(&info.stdout, "MemTotal"), meminfo_kib(&info.stdout, "MemAvailable")) else {
            bail!("{node}: no MemTotal/MemAvailable in its /proc/meminfo: {}", info.text());
        };
        out.push(VmMem { node, qemu_rss_kib: rss, guest_total_kib: total, guest_used_kib: total.saturating_sub(avail) });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The run.

/// What a backend gave: its boot, and (netns, TCG) its throughput.
struct Measured {
    boot: Boot,
    throughput: Option<Throughput>,
}

fn bench(args: &Args) -> Result<()> {
    for tool in ["iperf3", "kubectl", "qemu-system-x86_64"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().context("cannot run sh")?;
        if !found.success() {
            bail!("{tool} is not installed; run scripts/deps.sh");
        }
    }
    let p = paths()?;
    let load_start = loadavg();
    println!("bench-vm: binaries from {}, load average {load_start} at the start", p.bin_dir.display());
    build_image(&p)?;
    let image = p.image.display().to_string();
    let memory = args.vm_memory.to_string();
    let vm_flags = |accel: &'static str| -> Vec<String> {
        ["--backend", "vm", "--nodes", "3", "--vm-accel", accel, "--vm-image", &image, "--vm-memory", &memory].map(str::to_string).to_vec()
    };

    // 1. The reference: the netns cluster, boot and throughput, then down.
    println!("netns cluster: minik up --nodes 3 (with the demo) ...");
    let netns = {
        let c = Cluster::new(&p)?;
        let boot = c.up(&["--nodes", "3"])?;
        if let Some(e) = &boot.error {
            bail!("minik up --nodes 3 failed:\n{e}");
        }
        println!("  nodes Ready {}, demo {}; iperf3 ...", secs(boot.nodes_ready), secs(boot.demo_ready));
        let throughput = Some(throughput(&c, Kind::Netns, args).context("netns cluster")?);
        Measured { boot, throughput }
    };

    // 2. The VMs under TCG: boot, throughput, memory (with the demo and the bench pods
    // running), then down.
    println!("VM cluster: minik up --backend vm --nodes 3 --vm-accel tcg (with the demo) ...");
    let (tcg, memory) = {
        let c = Cluster::new(&p)?;
        let flags = vm_flags("tcg");
        let boot = c.up(&flags.iter().map(String::as_str).collect::<Vec<_>>())?;
        if let Some(e) = &boot.error {
            bail!("minik up --backend vm --vm-accel tcg failed:\n{e}");
        }
        println!("  nodes Ready {}, demo {}; iperf3, memory ...", secs(boot.nodes_ready), secs(boot.demo_ready));
        let throughput = Some(throughput(&c, Kind::Vm, args).context("VM cluster (TCG)")?);
        let memory = vm_memory(&c)?;
        (Measured { boot, throughput }, memory)
    };

    // 3. KVM, where it works.
    let kvm = if args.skip_kvm {
        Err("skipped (--skip-kvm)".to_string())
    } else if !Path::new("/dev/kvm").exists() {
        Err("not available here (no /dev/kvm)".to_string())
    } else {
        println!("VM cluster: minik up --backend vm --nodes 3 --vm-accel kvm (with the demo) ...");
        let c = Cluster::new(&p)?;
        let flags = vm_flags("kvm");
        let boot = c.up(&flags.iter().map(String::as_str).collect::<Vec<_>>())?;
        match &boot.error {
            Some(e) => Err(format!("not available here ({})", kvm_reason(e))),
            None => Ok(boot),
        }
    };

    println!();
    report(args, &p, &netns, &tcg, &kvm, &memory);
    println!("\nload average {load_start} at the start, {} at the end (2-core machine shared with other runs)", loadavg());
    Ok(())
}

/// The line of a failed `minik up` that says why.
fn kvm_reason(output: &str) -> String {
    let line = output.lines().rev().find(|l| l.starts_with("error:")).or_else(|| output.lines().rev().find(|l| l.starts_with("minik:")));
    line.map(|l| l.trim_start_matches("error:").trim_start_matches("minik:").trim().to_string()).unwrap_or_else(|| output.trim().to_string())
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "NOT READY".into())
}

// ---------------------------------------------------------------------------------------
// The report.

fn report(args: &Args, p: &Paths, netns: &Measured, tcg: &Measured, kvm: &Result<Boot, String>, memory: &[VmMem]) {
    println!("vm bench: 3 nodes, binaries from {}, node image {}", p.bin_dir.display(), p.image.display());
    println!("\nboot, from the start of `minik up` (wall clock)");
    let kvm_col = |f: fn(&Boot) -> Option<Duration>| match kvm {
        Ok(b) => secs(f(b)),
        Err(_) => "-".into(),
    };
    println!("{:<24} {:>14} {:>14} {:>14}", "", "netns (ref)", "VM, TCG", "VM, KVM");
    println!("{:<24} {:>14} {:>14} {:>14}", "3 nodes Ready", secs(netns.boot.nodes_ready), secs(tcg.boot.nodes_ready), kvm_col(|b| b.nodes_ready));
    println!("{:<24} {:>14} {:>14} {:>14}", "demo Ready", secs(netns.boot.demo_ready), secs(tcg.boot.demo_ready), kvm_col(|b| b.demo_ready));
    println!("{:<24} {:>14} {:>14} {:>14}", "minik up returned", secs(Some(netns.boot.total)), secs(Some(tcg.boot.total)), kvm_col(|b| Some(b.total)));
    if let Err(why) = kvm {
        println!("KVM: {why}");
    }
    for (name, boot) in [("netns", Some(&netns.boot)), ("VM, TCG", Some(&tcg.boot)), ("VM, KVM", kvm.as_ref().ok())] {
        let Some(b) = boot else { continue };
        let steps: Vec<String> = b.steps.iter().map(|(t, o, s)| format!("{} {s:.1}{}", short(t), if o == "ok" { "" } else { " NOT READY" })).collect();
        println!("  {name} steps (s): {}", steps.join(", "));
    }
    if let Some(a) = &tcg.boot.accel {
        println!("  (TCG run: minik reports accel {a}; `--vm-accel auto` would add minik's KVM probe, up to 12 s, where KVM guests hang)");
    }
    match tcg.boot.nodes_ready {
        Some(d) => println!(
            "target: 3 VM nodes Ready under TCG <= {} s: {} ({:.1} s)",
            TARGET.as_secs(),
            if d <= TARGET { "met" } else { "NOT met" },
            d.as_secs_f64()
        ),
        None => println!("target: 3 VM nodes Ready under TCG <= {} s: NOT met (not Ready)", TARGET.as_secs()),
    }

    println!("\nmemory per node VM (TCG, after the iperf3 runs, the demo and the bench pods scheduled)");
    println!("{:<8} {:>14} {:>18} {:>10} {:>22} {:>18}", "node", "--vm-memory", "QEMU RSS (host)", "of conf.", "guest used (T - A)", "guest MemTotal");
    let row = |name: &str, rss: u64, used: u64, total: u64| {
        let conf = f64::from(args.vm_memory);
        println!(
            "{:<8} {:>10} MiB {:>14.0} MiB {:>9.0}% {:>18.0} MiB {:>14.0} MiB",
            name,
            args.vm_memory,
            mib(rss),
            100.0 * mib(rss) / conf,
            mib(used),
            mib(total)
        );
    };
    for m in memory {
        row(&m.node, m.qemu_rss_kib, m.guest_used_kib, m.guest_total_kib);
    }
    let n = memory.len().max(1) as u64;
    let mean = |f: fn(&VmMem) -> u64| memory.iter().map(f).sum::<u64>() / n;
    row("mean", mean(|m| m.qemu_rss_kib), mean(|m| m.guest_used_kib), mean(|m| m.guest_total_kib));
    println!("  (QEMU's RSS is the guest RAM it has touched plus QEMU itself, TCG's translation cache included)");

    println!("\nthroughput pod on node1 -> pod on node2, Gbit/s (iperf3 -t {}, median of {}; runs in brackets)", args.seconds, args.runs);
    println!("{:<24} {:>14} {:>14} {:>10}", "", "pod IP", "ClusterIP", "ratio");
    for (name, m) in [("netns cluster (ref)", netns), ("VM cluster, TCG", tcg)] {
        let Some(t) = &m.throughput else { continue };
        let (Some(d), Some(s)) = (median(&t.pod_ip), median(&t.cluster_ip)) else { continue };
        println!("{:<24} {:>14.3} {:>14.3} {:>9.1}%", name, d, s, if d > 0.0 { 100.0 * s / d } else { 0.0 });
        let list = |v: &[f64]| v.iter().map(|g| format!("{g:.3}")).collect::<Vec<_>>().join(" ");
        println!("{:<24} {:>14} {:>14}", "", format!("[{}]", list(&t.pod_ip)), format!("[{}]", list(&t.cluster_ip)));
    }
}

/// A step's title without its details (`API server (miniapi) in node1's VM` → `API server`).
fn short(title: &str) -> String {
    title.split([':', '(']).next().unwrap_or(title).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_parse() {
        let ok = parse_step("[7/8] nodes Ready ... ok (0.3s) node1 10.244.3.0/24, node2 10.244.1.0/24");
        assert_eq!(ok, Some(("nodes Ready".into(), "ok".into(), 0.3, "node1 10.244.3.0/24, node2 10.244.1.0/24".into())));
        let vm = parse_step("[2/7] VM nodes: node1, node2, node3 under QEMU ... ok (1.0s) Tcg, 768 MiB each, at 192.168.50.11..192.168.50.13");
        assert_eq!(vm.map(|s| (s.1, s.3.split(',').next().map(str::to_string))), Some(("ok".into(), Some("Tcg".into()))));
        let warn = parse_step("[8/8] demo: service-lab (db) ... NOT READY (120.0s): timed out");
        assert_eq!(warn.map(|s| (s.1, s.2, s.3)), Some(("NOT READY".into(), 120.0, "timed out".into())));
        assert_eq!(parse_step("minik: booting 3 nodes in /tmp/x"), None);
        assert_eq!(parse_step("[1/8] sandbox ... FAILED"), None);
    }

    #[test]
    fn a_boot_records_when_nodes_and_demo_were_ready() {
        let mut b = Boot::default();
        b.line(Duration::from_secs(1), "[2/7] VM nodes: node1, node2, node3 under QEMU ... ok (1.0s) Kvm, 768 MiB each");
        b.line(Duration::from_secs(30), "[6/7] nodes Ready ... ok (2.0s) node1 10.244.1.0/24");
        b.line(Duration::from_secs(50), "[7/7] demo: service-lab (db, API x3) ... ok (20.0s)");
        assert_eq!((b.nodes_ready, b.demo_ready), (Some(Duration::from_secs(30)), Some(Duration::from_secs(50))));
        assert_eq!(b.accel.as_deref(), Some("Kvm"));
        assert_eq!(b.steps.len(), 3);
    }

    #[test]
    fn reads_meminfo_and_failure_reasons() {
        let t = "MemTotal:         765432 kB\nMemFree:  1 kB\nMemAvailable:     500000 kB\n";
        assert_eq!((meminfo_kib(t, "MemTotal"), meminfo_kib(t, "MemAvailable")), (Some(765432), Some(500000)));
        let out = "[2/7] VM nodes ... FAILED\nerror: --vm-accel kvm: a probe boot under KVM did not answer in 12s; use --vm-accel tcg\n";
        assert_eq!(kvm_reason(out), "--vm-accel kvm: a probe boot under KVM did not answer in 12s; use --vm-accel tcg");
    }
}
