//! VM nodes: the node image (`images/vm/build.sh`) is cached and reproducible, and
//! `minik up --nodes 1 --vms 2` boots two QEMU VMs (their own Debian kernel) that register
//! with the API, get pod CIDRs, run pods, route pod to pod across nodes without NAT and
//! forward Services (ClusterIP from a pod, NodePort on a VM's address from `ext`) —
//! checked with the real kubectl, as a person on the host would; a VM powered off goes
//! NotReady, and `down` leaves no QEMU.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use minik_tests::pods::{cgi_addr, sleeper_pod, who_am_i_pod};
use minik_tests::cluster::{free_port, text, Cluster};
use minik_tests::miniapi::wait_output;
use minik_tests::{bin_dir, require_sandbox};
use serde_json::Value;

/// build.sh works in target/images/vm; two runs at once would share its work files.
static BUILD: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// `images/vm/build.sh ARGS…` (binaries from the tests' bin dir unless ARGS say
/// otherwise); returns its output.
fn build_image(args: &[&str]) -> String {
    let _lock = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Command::new(repo().join("images/vm/build.sh"));
    c.arg("--bin-dir").arg(bin_dir()).args(args);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = wait_output(c.spawn().expect("run images/vm/build.sh"), Duration::from_secs(300));
    assert!(out.status.success(), "images/vm/build.sh {} failed:\n{}", args.join(" "), text(&out));
    text(&out)
}

/// `name sha256` lines of a manifest.txt.
fn manifest(dir: &Path) -> Vec<String> {
    let t = std::fs::read_to_string(dir.join("manifest.txt")).expect("manifest.txt");
    t.lines().filter(|l| l.starts_with("vmlinuz ") || l.starts_with("initramfs.img ")).map(str::to_string).collect()
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// The workspace binaries the image is made of (`images/vm/build.sh --binaries`).
fn node_binaries() -> Vec<String> {
    let out = Command::new(repo().join("images/vm/build.sh")).arg("--binaries").output().expect("images/vm/build.sh --binaries");
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert!(list.iter().any(|b| b == "minilet"), "build.sh --binaries: {list:?}");
    list
}

#[test]
fn the_node_image_is_cached_and_reproducible() {
    // A snapshot of the binaries: the shared target/ may be rebuilt while this runs.
    let target = repo().join("target");
    let snap = tempfile::tempdir_in(&target).expect("tempdir in target/");
    for b in node_binaries() {
        std::fs::copy(bin_dir().join(&b), snap.path().join(&b)).unwrap_or_else(|e| panic!("copy {b}: {e}"));
    }
    let snap_dir = snap.path().display().to_string();
    let first = tempfile::tempdir_in(&target).expect("tempdir");
    let first_dir = first.path().display().to_string();
    build_image(&["--bin-dir", &snap_dir, "--out", &first_dir]);
    let again = build_image(&["--bin-dir", &snap_dir, "--out", &first_dir]);
    assert!(again.contains("up to date"), "a second build with the same inputs should be skipped:\n{again}");
    let want = manifest(first.path());
    assert_eq!(want.len(), 2, "{want:?}");
    assert!(want.contains(&format!("initramfs.img {}", sha256(&first.path().join("initramfs.img")))), "the manifest does not match: {want:?}");

    // What a node needs is in it: the node's and the control plane's binaries, the
    // provisioning script, and the demo's OCI layouts.
    let list = Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc {} | cpio -t --quiet", first.path().join("initramfs.img").display()))
        .output()
        .expect("zstd | cpio -t");
    let entries = String::from_utf8_lossy(&list.stdout);
    for want in ["init", "usr/bin/miniapi", "usr/bin/minilet", "usr/bin/minik-agent", "usr/bin/minik-node-start", "usr/sbin/nft", "images/demo-api/index.json", "images/busybox/index.json"] {
        assert!(entries.lines().any(|l| l.trim_start_matches("./") == want), "{want} is not in the initramfs");
    }

    let fresh = tempfile::tempdir_in(&target).expect("tempdir");
    build_image(&["--force", "--bin-dir", &snap_dir, "--out", &fresh.path().display().to_string()]);
    assert_eq!(manifest(fresh.path()), want, "a forced rebuild from the same inputs gives different files");
    assert_eq!(sha256(&fresh.path().join("initramfs.img")), sha256(&first.path().join("initramfs.img")));
    assert_eq!(sha256(&fresh.path().join("vmlinuz")), sha256(&first.path().join("vmlinuz")));
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().map(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")).unwrap_or(false)
}

/// The pod's IP once it is Ready.
fn ready_ip(c: &Cluster, name: &str) -> Result<String, String> {
    let p = c.json(&["get", "pod", name]);
    let ip = p["status"]["podIP"].as_str().unwrap_or_default().to_string();
    if ready(&p) && !ip.is_empty() {
        Ok(ip)
    } else {
        Err(format!("{name} on {}: {}", p["spec"]["nodeName"], p["status"]))
    }
}

/// The client pod asks the server pod who it is; returns what the server saw.
fn seen_by(c: &Cluster, client: &str, server_ip: &str) -> Result<String, String> {
    let cmd = format!("timeout 10 wget -qO- http://{server_ip}:8080/cgi-bin/ip 2>&1");
    let out = c.kubectl(&["exec", client, "--", "sh", "-c", &cmd]);
    if out.status.success() {
        Ok(cgi_addr(&String::from_utf8_lossy(&out.stdout)))
    } else {
        Err(text(&out))
    }
}

/// QEMU processes whose command line names `dir`.
fn qemus_of(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.starts_with("qemu-system") && cmd.contains(&needle)
        })
        .collect()
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn two_vm_nodes_join_run_pods_and_route_pod_to_pod() {
    require_sandbox();
    build_image(&[]);
    let kernel = std::fs::read_to_string(repo().join("target/images/vm/manifest.txt")).expect("manifest");
    let kernel = kernel.lines().next().and_then(|l| l.split_whitespace().nth(1)).expect("kernel version").to_string();

    // `minik up` with a longer limit than the harness's: two VMs under TCG on a busy machine.
    let state = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut c = Cluster { state, port, up_output: String::new() };
    let out = c.minik_for(&["up", "--api-port", &port.to_string(), "--nodes", "1", "--vms", "2", "--no-demo", "--node-monitor-grace-period", "10s"], Duration::from_secs(480));
    c.up_output = text(&out);
    assert!(out.status.success(), "minik up --vms 2 failed:\n{}\n{}", c.up_output, c.logs_tail());
    assert!(c.up_output.contains("VM nodes: vm1, vm2 under QEMU ... ok"), "{}", c.up_output);
    assert_eq!(qemus_of(c.dir()).len(), 2, "two QEMU processes for the two VMs");

    // Both VMs Ready with a pod CIDR each, on their own addresses, running the image's kernel.
    let nodes = c.json(&["get", "nodes"]);
    let items = nodes["items"].as_array().cloned().unwrap_or_default();
    let mut cidrs = Vec::new();
    for (name, ip) in [("vm1", "192.168.50.12"), ("vm2", "192.168.50.13")] {
        let n = items.iter().find(|n| n["metadata"]["name"] == name).unwrap_or_else(|| panic!("no node {name}: {nodes}"));
        let conds = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
        assert!(conds.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"), "{name} not Ready: {conds:?}");
        let addrs = n["status"]["addresses"].to_string();
        assert!(addrs.contains(ip), "{name} should be at {ip}: {addrs}");
        assert_eq!(n["status"]["nodeInfo"]["kernelVersion"], kernel.as_str(), "{name} runs the image's kernel");
        let cidr = n["spec"]["podCIDR"].as_str().unwrap_or_default().to_string();
        assert!(cidr.starts_with("10.244."), "{name} has no pod CIDR: {n}");
        cidrs.push(cidr);
    }
    assert_ne!(cidrs[0], cidrs[1]);

    // A server on vm1, clients on vm2 and on node1 (a netns node).
    c.apply(&who_am_i_pod("web", "vm1"));
    c.apply(&sleeper_pod("client-vm", "vm2"));
    c.apply(&sleeper_pod("client-ns", "node1"));
    let server_ip = c.wait("web on vm1 Ready", 150 * SEC, || ready_ip(&c, "web"));
    let vm_client = c.wait("client-vm on vm2 Ready", 150 * SEC, || ready_ip(&c, "client-vm"));
    let ns_client = c.wait("client-ns on node1 Ready", 60 * SEC, || ready_ip(&c, "client-ns"));
    let prefix = |cidr: &str| cidr.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
    assert!(server_ip.starts_with(&prefix(&cidrs[0])), "web's IP {server_ip} is not from vm1's {}", cidrs[0]);
    assert!(vm_client.starts_with(&prefix(&cidrs[1])), "client-vm's IP {vm_client} is not from vm2's {}", cidrs[1]);

    // Pod to pod across VMs, and from a netns node into a VM: the server sees the client
    // pod's own address (no NAT on the way).
    for (client, ip) in [("client-vm", &vm_client), ("client-ns", &ns_client)] {
        let seen = c.wait(&format!("{client} → web"), 60 * SEC, || seen_by(&c, client, &server_ip));
        assert_eq!(&seen, ip, "{client} → web on vm1: the server saw {seen}, the client pod is {ip}");
    }

    // Services through minikproxy in the VMs: the ClusterIP from a pod on vm2 (the server
    // still sees the client pod), and the NodePort on vm2's address from `ext`, an underlay
    // host that is not a node.
    c.ok(&["expose", "pod", "web", "--name", "web-svc", "--port", "8080", "--type", "NodePort"]);
    let svc = c.json(&["get", "svc", "web-svc"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().expect("nodePort");
    let seen = c.wait("client-vm → web-svc", 60 * SEC, || seen_by(&c, "client-vm", &cluster_ip));
    assert_eq!(seen, vm_client, "client-vm → ClusterIP {cluster_ip} → web: the server saw {seen}");
    let url = format!("http://192.168.50.13:{node_port}/cgi-bin/ip");
    let from_ext = c.wait("NodePort on vm2 from ext", 60 * SEC, || {
        let out = c.shell("ext", &["timeout", "10", "busybox", "wget", "-qO-", &url]);
        if out.status.success() { Ok(cgi_addr(&String::from_utf8_lossy(&out.stdout))) } else { Err(text(&out)) }
    });
    assert!(!from_ext.is_empty(), "the NodePort on vm2 answered nothing");

    // A VM powered off (`minik kill vm2` ends its QEMU): the node goes NotReady.
    let out = c.minik(&["kill", "vm2"]);
    assert!(out.status.success(), "minik kill vm2: {}", text(&out));
    assert_eq!(qemus_of(c.dir()).len(), 1, "vm2's QEMU still runs after minik kill vm2");
    c.wait("vm2 NotReady", 90 * SEC, || {
        let n = c.json(&["get", "node", "vm2"]);
        let conds = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
        match conds.iter().find(|c| c["type"] == "Ready") {
            Some(r) if r["status"] != "True" => Ok(()),
            other => Err(format!("vm2 Ready condition: {other:?}")),
        }
    });

    // The VM's console log is kept per node; down stops the VMs by PID.
    let console = std::fs::read_to_string(c.dir().join("logs/vm1-console.log")).expect("vm1's console log");
    assert!(console.contains("minik-init: ready"), "{console}");
    c.down();
    assert!(qemus_of(c.dir()).is_empty(), "QEMU still runs after down");
    assert!(!c.dir().join("vm1").exists(), "vm1's directory is left after down");
}
