//! The four variants of the CNI benchmark, and how one of them is run and timed.
//!
//! | case | reference | cni-bridge |
//! | --- | --- | --- |
//! | plain bridge | Debian's `bridge`, which execs `host-local` for IPAM | `cni-bridge` (built-in host-local IPAM) |
//! | masq only (extra) | `bridge` with `ipMasq` (iptables) | `cni-bridge` with `ipMasq` (nftables) |
//! | masq + portmap chain | `bridge` with `ipMasq` (iptables), then the reference `portmap` | `cni-bridge` with `ipMasq` (nftables), then the same reference `portmap` |
//!
//! The "masq only" case is not in the issue: both chains share the same `portmap` binary,
//! so it isolates what the bridge plugin itself spends on masquerade.
//!
//! What one run of a variant does, identically for both implementations:
//! 1. one fresh node netns (loopback up) and a fresh IPAM data dir, bridge name and subnet
//!    of its own, so variants cannot see each other's state;
//! 2. N fresh pod netns, created before any timing;
//! 3. a few untimed ADD/DEL pairs on extra pods (warm page cache, bridge created, nft/iptables
//!    tables in place: the steady state of a node that already runs pods);
//! 4. N ADDs, one after the other, each timed on the wall clock; then the N DELs (with the
//!    ADD's result as `prevResult`, as a 1.0.0 runtime sends it), each timed;
//! 5. a check that DEL really undid ADD: no veth left on the node, no IP left allocated in
//!    the IPAM data dir (and, for the chains, no executor cache entry left).
//!
//! Why it is fair: same machine, same run, same netns setup, same config keys and CNI
//! version (1.0.0, the newest Debian's 1.1.1 reference plugins speak), and the same kind of
//! process spawn: the plain case runs each plugin as one process with
//! [`minik_tests::Plugin::run`] (the reference's own `host-local` exec is part of its cost,
//! as it is for a runtime), the chains run through minik's libcni-like
//! [`CniExecutor`] with the same plugin directories for both. The clock covers exactly the
//! call that spawns the plugin(s) and collects their answer.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use minik_shared::cni::exec::{CniExecutor, ExecutorConfig, RuntimeConf};
use minik_shared::cni::NetConfList;
use minik_tests::{bin_dir, Netns, Plugin, REFERENCE_PLUGINS};
use serde_json::{json, Map, Value};

use crate::stats::Samples;

/// The CNI version both sides are run at.
pub const CNI_VERSION: &str = "1.0.0";

/// The first host port of the timed pods' port mappings (pod `i` maps `FIRST_HOST_PORT + i`).
pub const FIRST_HOST_PORT: u16 = 8080;

/// The first host port of the warm-up pods (far above the timed ones).
const WARMUP_HOST_PORT: u16 = 20000;

/// The interface name in every pod.
const IFNAME: &str = "eth0";

/// What is being attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The bridge plugin alone, no masquerade.
    Plain,
    /// The bridge plugin with masquerade, alone (isolates the masquerade from portmap).
    Masq,
    /// The bridge plugin with masquerade, then portmap with one port mapping per pod.
    Chain,
}

impl Case {
    /// Both cases, in the order they are run and printed.
    pub const ALL: [Case; 3] = [Case::Plain, Case::Masq, Case::Chain];

    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Case::Plain => "plain bridge",
            Case::Masq => "masq only (extra)",
            Case::Chain => "masq + portmap chain",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Case::Plain => "plain",
            Case::Masq => "masq",
            Case::Chain => "chain",
        }
    }
}

/// Whose bridge plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// Debian's containernetworking-plugins `bridge` (+ `host-local`).
    Reference,
    /// minik's cni-bridge.
    CniBridge,
}

impl Impl {
    /// Both, in the order they are run and printed.
    pub const ALL: [Impl; 2] = [Impl::Reference, Impl::CniBridge];

    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Impl::Reference => "reference",
            Impl::CniBridge => "cni-bridge",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Impl::Reference => "ref",
            Impl::CniBridge => "cni",
        }
    }

    /// The plugin `type`.
    fn plugin_type(self) -> &'static str {
        match self {
            Impl::Reference => "bridge",
            Impl::CniBridge => "cni-bridge",
        }
    }
}

/// One row of the benchmark: a case with one implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// What is attached.
    pub case: Case,
    /// Whose bridge plugin does it.
    pub imp: Impl,
}

impl Variant {
    /// `plain-ref`, `chain-cni`, ...: network name suffix and container ID prefix.
    fn slug(self) -> String {
        format!("{}-{}", self.case.slug(), self.imp.slug())
    }

    /// A /16 of its own (10.250/16 to 10.255/16), so two variants never hand out the same addresses.
    fn subnet(self) -> String {
        let case = match self.case {
            Case::Plain => 0,
            Case::Masq => 1,
            Case::Chain => 2,
        };
        let imp = match self.imp {
            Impl::Reference => 0,
            Impl::CniBridge => 1,
        };
        format!("10.{}.0.0/16", 250 + 2 * case + imp)
    }

    /// The network name (also the IPAM data dir's subdirectory).
    fn network(self) -> String {
        format!("bench-{}", self.slug())
    }

    /// The bridge plugin's own config object: the keys both implementations accept.
    fn bridge_conf(self, ipam_dir: &Path) -> Value {
        json!({
            "type": self.imp.plugin_type(),
            "bridge": format!("bn-{}", self.slug()),
            "isDefaultGateway": true,
            "ipMasq": self.case != Case::Plain,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet() }]],
                "dataDir": ipam_dir.display().to_string(),
            },
        })
    }
}

/// The timings of one variant.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The variant.
    pub variant: Variant,
    /// One sample per ADD, in order.
    pub add: Samples,
    /// One sample per DEL, in order.
    pub del: Samples,
}

/// How ADD and DEL are issued: one plugin process, or a chain through the executor.
enum Driver {
    /// The plugin binary run directly, with the network config on stdin.
    Single { plugin: Plugin, conf: Value },
    /// A conflist run through minik's libcni-like executor.
    Chain { exec: CniExecutor, net: NetConfList },
}

/// One ADD or DEL, prepared before the clock starts so that the timed call does nothing
/// but run the plugin(s).
enum Request {
    /// For [`Driver::Single`]: the verb and the exact config for stdin.
    Single { verb: &'static str, conf: Value, id: String, netns: String },
    /// For [`Driver::Chain`]: ADD (`true`) or DEL, and the runtime parameters.
    Chain { add: bool, rt: RuntimeConf },
}

impl Driver {
    fn new(v: Variant, work: &Path) -> Result<Self> {
        let bridge = v.bridge_conf(&work.join("ipam"));
        match v.case {
            Case::Plain | Case::Masq => {
                let plugin = match v.imp {
                    Impl::Reference => Plugin::reference("bridge"),
                    Impl::CniBridge => Plugin::cni_bridge(),
                };
                let mut conf = bridge;
                if let Value::Object(m) = &mut conf {
                    m.insert("cniVersion".into(), json!(CNI_VERSION));
                    m.insert("name".into(), json!(v.network()));
                }
                Ok(Driver::Single { plugin, conf })
            }
            Case::Chain => {
                let list = json!({
                    "cniVersion": CNI_VERSION,
                    "name": v.network(),
                    "plugins": [bridge, { "type": "portmap", "capabilities": { "portMappings": true } }],
                });
                let net = NetConfList::from_bytes(list.to_string().as_bytes())
                    .map_err(|e| anyhow!("the benchmark's conflist is invalid: {e}"))?;
                let exec = CniExecutor::new(ExecutorConfig {
                    conf_dir: work.join("net.d"),
                    plugin_dirs: vec![bin_dir(), PathBuf::from(REFERENCE_PLUGINS)],
                    cache_dir: work.join("cache"),
                });
                Ok(Driver::Chain { exec, net })
            }
        }
    }

    /// The ADD of container `id` in `pod` (host port `port` for the chains).
    fn add_request(&self, pod: &Netns, id: &str, port: u16) -> Request {
        match self {
            Driver::Single { conf, .. } => {
                Request::Single { verb: "ADD", conf: conf.clone(), id: id.to_string(), netns: pod.path_str() }
            }
            Driver::Chain { .. } => Request::Chain { add: true, rt: runtime_conf(id, pod, port) },
        }
    }

    /// The DEL of the same attachment, with the ADD's result `prev` as `prevResult` (a
    /// 1.0.0 runtime sends it; for the chains the executor sends its cached copy itself).
    fn del_request(&self, pod: &Netns, id: &str, port: u16, prev: &Value) -> Request {
        match self {
            Driver::Single { conf, .. } => {
                let mut conf = conf.clone();
                if let Value::Object(m) = &mut conf {
                    m.insert("prevResult".into(), prev.clone());
                }
                Request::Single { verb: "DEL", conf, id: id.to_string(), netns: pod.path_str() }
            }
            Driver::Chain { .. } => Request::Chain { add: false, rt: runtime_conf(id, pod, port) },
        }
    }

    /// Runs one request on `node`: this is what the clock measures. Returns the ADD's
    /// result (`Null` for DEL).
    fn call(&self, node: &Netns, req: &Request) -> Result<Value> {
        match (self, req) {
            (Driver::Single { plugin, .. }, Request::Single { verb, conf, id, netns }) => {
                let r = plugin.run(node, verb, conf, id, netns, IFNAME);
                if !r.ok {
                    bail!("{verb} of {id} failed: stdout {}; stderr {}", r.out, r.stderr.trim());
                }
                Ok(r.out)
            }
            (Driver::Chain { exec, net }, Request::Chain { add: true, rt }) => {
                let res =
                    node.run(|| exec.add(net, rt)).with_context(|| format!("ADD of {} failed", rt.container_id))?;
                serde_json::to_value(res).context("cannot serialize the ADD result")
            }
            (Driver::Chain { exec, net }, Request::Chain { add: false, rt }) => {
                node.run(|| exec.del(net, rt)).with_context(|| format!("DEL of {} failed", rt.container_id))?;
                Ok(Value::Null)
            }
            _ => bail!("internal error: a request for the other driver"),
        }
    }
}

fn runtime_conf(id: &str, pod: &Netns, host_port: u16) -> RuntimeConf {
    let mut caps = Map::new();
    caps.insert("portMappings".into(), json!([{ "hostPort": host_port, "containerPort": 80, "protocol": "tcp" }]));
    RuntimeConf {
        container_id: id.to_string(),
        netns: pod.path.clone(),
        ifname: IFNAME.to_string(),
        args: Vec::new(),
        capability_args: caps,
    }
}

/// Fails unless an ADD result gave the pod at least one address.
fn check_result(id: &str, out: &Value) -> Result<()> {
    let ips = out.get("ips").and_then(Value::as_array).map_or(0, Vec::len);
    ensure!(ips > 0, "ADD of {id} returned no IP: {out}");
    Ok(())
}

/// Runs one variant: `warmup` untimed ADD/DEL pairs, then `n` timed ADDs, then `n` timed DELs.
pub fn run(v: Variant, n: usize, warmup: usize) -> Result<Measured> {
    ensure!((1..=1000).contains(&n), "N must be between 1 and 1000 (got {n})");
    ensure!(warmup <= 100, "the warm-up must be at most 100 pairs (got {warmup})");
    let work = tempfile::Builder::new().prefix("minik-bench-cni-").tempdir().context("cannot create a temp dir")?;
    let driver = Driver::new(v, work.path())?;
    let node = Netns::new("bn");

    // Warm-up on pods of their own, untimed.
    for j in 0..warmup {
        let pod = Netns::new("bw");
        let id = format!("{}-warm-{j}", v.slug());
        let port = WARMUP_HOST_PORT + j as u16;
        let out = driver.call(&node, &driver.add_request(&pod, &id, port)).context("warm-up")?;
        check_result(&id, &out)?;
        driver.call(&node, &driver.del_request(&pod, &id, port, &out)).context("warm-up")?;
    }

    let pods: Vec<Netns> = (0..n).map(|_| Netns::new("bp")).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("{}-{i:04}", v.slug())).collect();
    let port = |i: usize| FIRST_HOST_PORT + i as u16;

    let mut add = Samples::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    for (i, (pod, id)) in pods.iter().zip(&ids).enumerate() {
        let req = driver.add_request(pod, id, port(i));
        let start = Instant::now();
        let out = driver.call(&node, &req);
        add.push(start.elapsed());
        let out = out?;
        check_result(id, &out)?;
        results.push(out);
    }

    let mut del = Samples::with_capacity(n);
    for (i, ((pod, id), prev)) in pods.iter().zip(&ids).zip(&results).enumerate() {
        let req = driver.del_request(pod, id, port(i), prev);
        let start = Instant::now();
        let r = driver.call(&node, &req);
        del.push(start.elapsed());
        r?;
    }

    check_clean(&node, work.path())?;
    drop(pods);
    drop(node);
    Ok(Measured { variant: v, add, del })
}

/// Fails unless every DEL undid its ADD: no veth on the node, no address still allocated
/// in the IPAM data dir, and (for the chains) no cached attachment left.
fn check_clean(node: &Netns, work: &Path) -> Result<()> {
    let veths = node.ip(&["-o", "link", "show", "type", "veth"]);
    ensure!(veths.trim().is_empty(), "veths left on the node after DEL:\n{veths}");
    let leaked = allocated_ips(&work.join("ipam"))?;
    ensure!(leaked.is_empty(), "{} address(es) still allocated after DEL: {leaked:?}", leaked.len());
    let results = work.join("cache").join("results");
    if let Ok(entries) = std::fs::read_dir(&results) {
        let left: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        ensure!(left.is_empty(), "CNI cache entries left after DEL: {left:?}");
    }
    Ok(())
}

/// The files of a host-local data dir that are named like an IP: one per allocated address.
fn allocated_ips(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(networks) = std::fs::read_dir(dir) else { return Ok(out) };
    for net in networks.flatten() {
        if !net.path().is_dir() {
            continue;
        }
        let entries = std::fs::read_dir(net.path()).with_context(|| format!("cannot list {}", net.path().display()))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<IpAddr>().is_ok() {
                out.push(name);
            }
        }
    }
    Ok(out)
}
