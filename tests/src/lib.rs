//! The harness minik's root tests share. Every test runs inside the sandbox that
//! `scripts/sandbox.sh` sets up (the README's test command does), and builds its own
//! nodes, pods and underlay as network namespaces there, named uniquely so tests can run
//! in parallel, and removed when dropped.
//!
//! - [`require_sandbox`]: refuses to run in the host's own network namespace;
//! - [`Netns`]: a named namespace (node, pod or underlay host), with `ip -n` helpers;
//! - [`Underlay`]: a bridge in its own namespace that nodes and hosts plug into;
//! - [`Plugin`]: runs a CNI plugin binary on a node, as a runtime does;
//! - [`tcp`]: a server that answers with the client's address, and its client.
//! - [`pods`]: test pod manifests (who-am-i over HTTP, a sleeper).
//! - [`miniapi`]: the API server in a namespace, driven by the real kubectl.
//! - [`cluster`]: a whole cluster booted by `minik up`, taken down by `minik down`.

pub mod cluster;
pub mod miniapi;
pub mod minilet;
pub mod pods;
pub mod tcp;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use minik_shared::netns::{self, NetNs};
use serde_json::Value;

/// Panics unless the test runs inside minik's sandbox (never in the host's netns).
pub fn require_sandbox() {
    // scripts/sandbox.sh records the host's netns before it unshares; PID 1's netns is
    // not always readable (containers), so that record is what the check relies on.
    let inside = std::env::var("MINIK_SANDBOX").as_deref() == Ok("inside");
    let own = std::fs::read_link("/proc/self/ns/net").ok().map(|p| p.display().to_string());
    let host = std::env::var("MINIK_HOST_NETNS").ok();
    let init = std::fs::read_link("/proc/1/ns/net").ok().map(|p| p.display().to_string());
    assert!(
        inside && own.is_some() && host.is_some() && own != host && own != init,
        "this test creates network objects and must run inside the sandbox: run `make test` (scripts/sandbox.sh cargo test)"
    );
}

/// The directory the workspace's binaries are built in (`MINIK_BIN_DIR`, else target/debug).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("MINIK_BIN_DIR") {
        return PathBuf::from(d);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("debug")
}

/// A workspace binary, which must have been built (`cargo build --workspace --bins`).
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is not built; run `cargo build --workspace --bins` first", p.display());
    p
}

/// Where Debian's reference CNI plugins live.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique in this process and across test binaries (pid-based), ≤ 15 chars.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n:x}", std::process::id() % 0xffff)
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted (with everything in it) when dropped.
pub struct Netns {
    /// The name under /run/netns.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    handle: NetNs,
}

impl Netns {
    /// Creates it, with loopback up.
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        let path = netns::create_named(netns::NETNS_RUN_DIR, &name)
            .unwrap_or_else(|e| panic!("cannot create netns {name}: {e}"));
        let handle = NetNs::open(&path).unwrap_or_else(|e| panic!("cannot open {name}: {e}"));
        let ns = Netns { name, path, handle };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The path as a string (for `CNI_NETNS`).
    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// `ip -n NAME ARGS…`, asserting success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        sh("ip", &full)
    }

    /// Runs `f` on this thread inside the namespace.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.handle.run(f).unwrap_or_else(|e| panic!("cannot enter {}: {e}", self.name))
    }

    /// Runs a program inside the namespace (it inherits the thread's netns).
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        self.run(|| Command::new(cmd).args(args).output()).unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
    }

    /// Reads a file under /proc/sys/net as this namespace sees it.
    pub fn sysctl(&self, key: &str) -> String {
        self.run(|| std::fs::read_to_string(format!("/proc/sys/{key}")))
            .unwrap_or_else(|e| panic!("cannot read sysctl {key}: {e}"))
            .trim()
            .to_string()
    }

    /// The names of the links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = netns::delete_named(netns::NETNS_RUN_DIR, &self.name);
    }
}

/// An underlay: a bridge in its own namespace; nodes and outside hosts plug into it.
pub struct Underlay {
    /// The namespace that holds the bridge.
    pub ns: Netns,
}

impl Default for Underlay {
    fn default() -> Self {
        Self::new()
    }
}

impl Underlay {
    /// Creates the underlay bridge `br0`.
    pub fn new() -> Self {
        let ns = Netns::new("ul");
        ns.ip(&["link", "add", "br0", "type", "bridge"]);
        ns.ip(&["link", "set", "br0", "up"]);
        Underlay { ns }
    }

    /// Plugs `host` in as `eth0` with address `cidr` (e.g. "192.168.50.11/24").
    pub fn plug(&self, host: &Netns, cidr: &str) {
        let outer = unique("u");
        self.ns.ip(&["link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &host.name]);
        self.ns.ip(&["link", "set", &outer, "master", "br0", "up"]);
        host.ip(&["addr", "add", cidr, "dev", "eth0"]);
        host.ip(&["link", "set", "eth0", "up"]);
    }
}

/// The outcome of one plugin run.
#[derive(Debug)]
pub struct PluginRun {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout as JSON (Null when empty).
    pub out: Value,
    /// Its stderr.
    pub stderr: String,
}

impl PluginRun {
    /// The CNI error code, when it failed.
    pub fn code(&self) -> Option<u64> {
        if self.ok {
            None
        } else {
            self.out.get("code").and_then(Value::as_u64)
        }
    }
}

/// A CNI plugin binary run by hand, as a runtime would.
pub struct Plugin {
    /// The binary.
    pub path: PathBuf,
    /// `CNI_PATH` for it.
    pub cni_path: String,
}

impl Plugin {
    /// minik's cni-bridge.
    pub fn cni_bridge() -> Self {
        Plugin { path: bin("cni-bridge"), cni_path: format!("{}:{REFERENCE_PLUGINS}", bin_dir().display()) }
    }

    /// A reference plugin from Debian's containernetworking-plugins.
    pub fn reference(name: &str) -> Self {
        Plugin { path: PathBuf::from(REFERENCE_PLUGINS).join(name), cni_path: REFERENCE_PLUGINS.to_string() }
    }

    /// Runs one verb on `node` with `conf` on stdin.
    pub fn run(&self, node: &Netns, command: &str, conf: &Value, container_id: &str, netns: &str, ifname: &str) -> PluginRun {
        self.run_env(node, conf, &[
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container_id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
        ])
    }

    /// Runs the plugin with exactly the given CNI_* variables.
    pub fn run_env(&self, node: &Netns, conf: &Value, env: &[(&str, &str)]) -> PluginRun {
        let stdin = serde_json::to_vec(conf).unwrap_or_default();
        self.run_raw(node, &stdin, env)
    }

    /// Starts one verb on `node` without waiting (for concurrency tests); the caller
    /// waits for, or kills, the child by its PID.
    pub fn spawn(&self, node: &Netns, command: &str, conf: &Value, container_id: &str, netns: &str, ifname: &str) -> Child {
        let stdin = serde_json::to_vec(conf).unwrap_or_default();
        node.run(|| {
            let mut child = Command::new(&self.path)
                .env_clear()
                .env("CNI_PATH", &self.cni_path)
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", container_id)
                .env("CNI_NETNS", netns)
                .env("CNI_IFNAME", ifname)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut i) = child.stdin.take() {
                match i.write_all(&stdin) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
            }
            Ok::<_, std::io::Error>(child)
        })
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.path.display()))
    }

    /// Runs the plugin with raw bytes on stdin.
    pub fn run_raw(&self, node: &Netns, stdin: &[u8], env: &[(&str, &str)]) -> PluginRun {
        let out = node
            .run(|| {
                let mut cmd = Command::new(&self.path);
                cmd.env_clear().env("CNI_PATH", &self.cni_path).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
                for (k, v) in env {
                    cmd.env(k, v);
                }
                let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
                if let Some(mut i) = child.stdin.take() {
                    // A plugin may exit without reading stdin (VERSION does): that is fine.
                    match i.write_all(stdin) {
                        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                        _ => {}
                    }
                }
                child.wait_with_output()
            })
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.path.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("plugin printed non-JSON ({e}): {text}"))
        };
        PluginRun { ok: out.status.success(), out: value, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }
}
