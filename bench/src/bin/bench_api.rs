//! `bench-api`: miniapi's store and API, the embedded redb store next to etcd, in one run
//! inside the sandbox.
//!
//! 1. Store writes: N sequential creates straight on each [`Store`] (in-process: a redb
//!    file; etcd through `etcd-client`), p50/p99 — what each backend costs by itself.
//! 2. API creates: N sequential ConfigMap creates through the API (kube-rs client, HTTPS,
//!    bearer token) against `miniapi --store redb` and `miniapi --store etcd`, p50/p99.
//!
//!    In both, the two backends take turns (one create on each), so both see the same
//!    background load of a shared machine.
//! 3. API list: the N ConfigMaps listed R times, objects/s; watch: the N ADDED events
//!    replayed from the resourceVersion before the creates, objects/s.
//! 4. Pods (`--pods 30`, 0 to skip): a minilet node joined to `miniapi --store redb`;
//!    the pods (busybox `sleep`, `nodeName` set) created through the API at once, each
//!    timed from its create call to Ready=True seen on a watch, p50/p99 (target: p99 < 1 s;
//!    the kubelet's own SLO is 5 s).
//!
//! Each figure is printed next to its reference from the same run: etcd next to redb,
//! the API next to the store below it. It asserts nothing about time; it fails (non-zero
//! exit) when a server does not start or a request fails.
//!
//! ```text
//! cargo build --release -p minik-bench -p miniapi -p minilet -p cni-bridge -p minik-oci
//! MINIK_BIN_DIR=$PWD/target/release scripts/sandbox.sh target/release/bench-api
//! scripts/sandbox.sh target/release/bench-api --n 1000 --pods 0
//! ```
//!
//! It starts Debian's `etcd` (`etcd-server`) on free loopback ports with a temp data dir,
//! and ends it and the miniapi servers by PID at the end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use miniapi::store::{EtcdStore, RedbStore, Store};
use minik_bench::stats::{ms, percentile};
use serde_json::json;

/// miniapi's store and API: redb vs etcd, creates, list, watch, pods to Ready.
#[derive(Debug, Parser)]
#[command(name = "bench-api")]
struct Args {
    /// Creates per backend (store and API).
    #[arg(long, default_value_t = 300)]
    n: usize,
    /// Times the N objects are listed.
    #[arg(long, default_value_t = 20)]
    list_rounds: usize,
    /// Pods to start on one minilet node (0 skips the part).
    #[arg(long, default_value_t = 30)]
    pods: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-api failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// p50 and p99 of some samples, in ms.
fn p50_p99(samples: &[Duration]) -> (f64, f64) {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let p = |q| percentile(&v, q).map(ms).unwrap_or(f64::NAN);
    (p(0.5), p(0.99))
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// A child process ended by its PID when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's etcd on free loopback ports with a temp data dir.
struct Etcd {
    _proc: Proc,
    port: u16,
}

impl Etcd {
    fn start(dir: &Path) -> Result<Etcd> {
        let bin = PathBuf::from("/usr/bin/etcd");
        if !bin.exists() {
            bail!("/usr/bin/etcd not found: install Debian's etcd-server (scripts/deps.sh does)");
        }
        let (port, peer) = (free_port()?, free_port()?);
        let (client, peer_url) = (
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{peer}"),
        );
        let child = Command::new(bin)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .args(["--logger=zap", "--log-level=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("etcd.log"))?)
            .spawn()
            .context("starting etcd")?;
        let e = Etcd {
            _proc: Proc(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !e.healthy() {
            if Instant::now() > deadline {
                bail!(
                    "etcd did not become healthy (see {})",
                    dir.join("etcd.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(e)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut out = String::new();
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_ok()
            && s.read_to_string(&mut out).is_ok()
            && out.contains("\"health\":\"true\"")
    }
}

/// A miniapi process and its admin kubeconfig.
struct MiniApi {
    _proc: Proc,
    kubeconfig: PathBuf,
}

impl MiniApi {
    /// Start `miniapi` with `data` and `extra` flags, in the current thread's netns.
    fn start(data: &Path, extra: &[&str]) -> Result<MiniApi> {
        std::fs::create_dir_all(data)?;
        let child = Command::new(minik_tests::bin("miniapi"))
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.join("miniapi.log"))?)
            .spawn()
            .context("starting miniapi (build it: cargo build --release -p miniapi)")?;
        let api = MiniApi {
            _proc: Proc(child),
            kubeconfig: data.join("admin.kubeconfig"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !api.kubeconfig.exists() {
            if Instant::now() > deadline {
                bail!(
                    "miniapi wrote no kubeconfig (see {})",
                    data.join("miniapi.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(api)
    }

    async fn client(&self) -> Result<Client> {
        let client = minik_shared::apiclient::connect(Some(&self.kubeconfig)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.apiserver_version().await {
                Ok(_) => return Ok(client),
                Err(e) if Instant::now() > deadline => bail!("miniapi is not answering: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn store_create(store: &dyn Store, i: usize) -> Result<Duration> {
    let v =
        json!({"kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"k": "v"}});
    let t = Instant::now();
    store
        .create(&format!("/registry/core/configmaps/bench/cm-{i}"), v)
        .context("store create")?;
    Ok(t.elapsed())
}

/// One API server's namespace for the benchmark, and the list revision before the creates.
struct Target {
    cms: Api<ConfigMap>,
    before: String,
}

async fn target(client: Client) -> Result<Target> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}}))?;
    nss.create(&PostParams::default(), &ns)
        .await
        .context("creating namespace bench")?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "bench");
    let before = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("list without a resourceVersion")?;
    Ok(Target { cms, before })
}

async fn api_create(t: &Target, i: usize) -> Result<Duration> {
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": format!("cm-{i}"), "labels": {"bench": "api"}}, "data": {"k": "v"}}),
    )?;
    let start = Instant::now();
    t.cms
        .create(&PostParams::default(), &cm)
        .await
        .with_context(|| format!("creating cm-{i}"))?;
    Ok(start.elapsed())
}

/// List throughput (N objects, `rounds` times) and watch replay throughput, objects/s.
async fn throughput(t: &Target, n: usize, rounds: usize) -> Result<(f64, f64)> {
    let start = Instant::now();
    let mut listed = 0usize;
    for _ in 0..rounds {
        listed += t
            .cms
            .list(&ListParams::default().labels("bench=api"))
            .await?
            .items
            .len();
    }
    let list_per_s = listed as f64 / start.elapsed().as_secs_f64();
    if listed != n * rounds {
        bail!("listed {listed} objects, expected {}", n * rounds);
    }
    let start = Instant::now();
    let wp = WatchParams::default().labels("bench=api").timeout(60);
    let mut stream = t.cms.watch(&wp, &t.before).await?.boxed();
    let mut seen = 0usize;
    while seen < n {
        match stream.try_next().await? {
            Some(WatchEvent::Added(_)) => seen += 1,
            Some(WatchEvent::Error(e)) => bail!("watch error: {e}"),
            Some(_) => {}
            None => bail!("the watch ended after {seen} of {n} events"),
        }
    }
    Ok((list_per_s, n as f64 / start.elapsed().as_secs_f64()))
}

fn bench(args: &Args) -> Result<()> {
    minik_tests::require_sandbox();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let etcd = Etcd::start(dir)?;
    eprintln!("etcd {} (data in {})", etcd.endpoint(), dir.display());

    // Interleaved (one create on each, in turn), so both backends see the same
    // background load on this shared machine.
    eprintln!("store: {} creates on redb and etcd, interleaved", args.n);
    let redb = RedbStore::open(&dir.join("store.redb")).context("opening redb")?;
    let etcd_store =
        EtcdStore::connect(&[etcd.endpoint()], "/bench-store").context("connecting to etcd")?;
    let (mut store_redb, mut store_etcd) = (Vec::new(), Vec::new());
    for i in 0..args.n {
        store_redb.push(store_create(&redb, i)?);
        store_etcd.push(store_create(&etcd_store, i)?);
    }
    drop(redb);
    drop(etcd_store);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!("api: miniapi --store redb and miniapi --store etcd, creates interleaved");
    let ep = etcd.endpoint();
    let api_redb = MiniApi::start(&dir.join("api-redb"), &[])?;
    let api_etcd = MiniApi::start(
        &dir.join("api-etcd"),
        &["--store", "etcd", "--etcd-endpoints", &ep],
    )?;
    let (api_redb_creates, api_etcd_creates, redb_tp, etcd_tp) = rt.block_on(async {
        let r = target(api_redb.client().await?).await?;
        let e = target(api_etcd.client().await?).await?;
        let (mut rc, mut ec) = (Vec::new(), Vec::new());
        for i in 0..args.n {
            rc.push(api_create(&r, i).await?);
            ec.push(api_create(&e, i).await?);
        }
        let rt = throughput(&r, args.n, args.list_rounds).await?;
        let et = throughput(&e, args.n, args.list_rounds).await?;
        Ok::<_, anyhow::Error>((rc, ec, rt, et))
    })?;
    drop(api_redb);
    drop(api_etcd);

    let pods = if args.pods > 0 {
        Some(pods_to_ready(args.pods, dir)?)
    } else {
        None
    };

    println!(
        "\nminiapi store and API, N={} objects, sequential (ms)",
        args.n
    );
    println!("{:<44} {:>9} {:>9}", "create", "p50", "p99");
    let row = |name: &str, s: &[Duration]| {
        let (a, b) = p50_p99(s);
        println!("{name:<44} {a:>9.2} {b:>9.2}");
    };
    row("store: redb (in-process, fsync per write)", &store_redb);
    row("store: etcd (etcd-client txn)", &store_etcd);
    row(
        "API: miniapi --store redb (kube-rs client)",
        &api_redb_creates,
    );
    row(
        "API: miniapi --store etcd (kube-rs client)",
        &api_etcd_creates,
    );
    let ratio = |a: &[Duration], b: &[Duration]| p50_p99(a).0 / p50_p99(b).0;
    println!(
        "etcd / redb p50: store {:.2}x, API {:.2}x; API overhead over its store p50: redb {:+.2} ms, etcd {:+.2} ms",
        ratio(&store_etcd, &store_redb),
        ratio(&api_etcd_creates, &api_redb_creates),
        p50_p99(&api_redb_creates).0 - p50_p99(&store_redb).0,
        p50_p99(&api_etcd_creates).0 - p50_p99(&store_etcd).0,
    );
    println!(
        "\n{:<44} {:>12} {:>12}",
        "throughput (objects/s)", "redb", "etcd"
    );
    println!(
        "{:<44} {:>12.0} {:>12.0}",
        format!("list {} objects x {}", args.n, args.list_rounds),
        redb_tp.0,
        etcd_tp.0
    );
    println!(
        "{:<44} {:>12.0} {:>12.0}",
        format!("watch: replay {} ADDED from a resourceVersion", args.n),
        redb_tp.1,
        etcd_tp.1
    );
    if let Some(p) = pods {
        let (a, b) = p50_p99(&p);
        println!(
            "\npods create -> Ready, {} pods at once on one minilet node (--store redb)",
            p.len()
        );
        println!("{:<44} {:>9} {:>9}", "", "p50", "p99");
        println!("{:<44} {a:>9.0} {b:>9.0}", "minik (ms)");
        println!(
            "{:<44} {:>9} {:>9.0}",
            "target (the kubelet's SLO is 5000)", "", 1000.0
        );
        println!(
            "p99 {} the 1 s target",
            if b < 1000.0 { "meets" } else { "misses" }
        );
    }
    Ok(())
}

/// Start `n` pods through the API on one minilet node; each one's create → Ready.
fn pods_to_ready(n: usize, dir: &Path) -> Result<Vec<Duration>> {
    use minik_tests::minilet::MiniletNode;
    eprintln!("pods: a minilet node joined to miniapi, {n} pods");
    let mut node = MiniletNode::new("10.247.61.0/24", "");
    let data = dir.join("api-pods");
    let api = node.ns.run(|| MiniApi::start(&data, &[]))?;
    let cfg = node.dir.path().join("minilet.yaml");
    let mut text = std::fs::read_to_string(&cfg)?;
    text.push_str(&format!(
        "kubeconfig: {}\nnodeIP: 10.0.0.11\n",
        api.kubeconfig.display()
    ));
    std::fs::write(&cfg, text)?;
    node.start();
    // The client's sockets must be made in the node's netns, where miniapi listens:
    // a current-thread runtime driven from inside `run`.
    let result = node.ns.run(|| -> Result<Vec<Duration>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = api.client().await?;
            let out = time_pods(client.clone(), n).await;
            let pods: Api<Pod> = Api::namespaced(client, "default");
            let _ = pods
                .delete_collection(
                    &Default::default(),
                    &ListParams::default().labels("bench=api"),
                )
                .await;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && !pods
                    .list(&ListParams::default().labels("bench=api"))
                    .await
                    .map(|l| l.items.is_empty())
                    .unwrap_or(true)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            out
        })
    });
    drop(node);
    drop(api);
    result
}

async fn time_pods(client: Client, n: usize) -> Result<Vec<Duration>> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .any(|nd| {
                nd.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("the minilet node did not become Ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = pods
        .watch(
            &WatchParams::default().labels("bench=api").timeout(120),
            &rv,
        )
        .await?
        .boxed();
    let mut started = std::collections::HashMap::new();
    let creates: Vec<_> = (0..n)
        .map(|i| {
            let pods = pods.clone();
            let name = format!("bench-{i}");
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"bench": "api"}},
                    "spec": {
                        "nodeName": "node1",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]
                    }
                }))?;
                let t = Instant::now();
                pods.create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating pod {name}"))?;
                Ok::<_, anyhow::Error>((name, t))
            }
        })
        .collect();
    for r in futures::future::join_all(creates).await {
        let (name, t) = r?;
        started.insert(name, t);
    }
    let mut ready_at = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = ready_at.len();
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} pods became Ready in 120 s");
        }
        let ev = match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
            Ok(r) => r?,
            Err(_) => continue,
        };
        let pod = match ev {
            Some(WatchEvent::Added(p)) | Some(WatchEvent::Modified(p)) => p,
            Some(WatchEvent::Error(e)) => bail!("watch error: {e}"),
            Some(_) => continue,
            None => bail!("the pod watch ended"),
        };
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if let (true, Some(name)) = (ready, pod.metadata.name) {
            ready_at.entry(name).or_insert_with(Instant::now);
        }
    }
    let m = ready_at;
    let mut out = Vec::with_capacity(n);
    for (name, t0) in started {
        let t1 = m
            .get(&name)
            .with_context(|| format!("{name} never Ready"))?;
        out.push(t1.saturating_duration_since(t0));
    }
    Ok(out)
}
