//! Vagrant nodes: `vagrant/Vagrantfile` (vagrant-libvirt) boots two minik nodes from the
//! box `vagrant/package-box.sh` makes of the node image (cached and reproducible), against
//! a private libvirtd inside the sandbox, in a network namespace of its own
//! (`vagrant/sandbox-libvirtd.sh --foreground --netns NAME`, the test's child; vagrant and
//! kubectl run in that namespace too). Checked with the real kubectl against the API in
//! node1's VM (192.168.50.11:6443, over the underlay network vagrant-libvirt made there):
//! both nodes registered and Ready with a pod CIDR each, running the image's kernel; a pod
//! the scheduler places on node2 gets Ready, with an address from node2's CIDR, and
//! `kubectl exec` reaches it; `vagrant destroy -f` leaves no domain, network, link, QEMU
//! or dnsmasq behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use minik_tests::{bin_dir, require_sandbox, unique};
use serde_json::Value;

const SEC: Duration = Duration::from_secs(1);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// Runs `cmd` with its output in `log`, ending it after `limit`; returns its status (None
/// when it was ended) and the output.
fn run_logged(mut cmd: Command, log: &Path, limit: Duration) -> (Option<ExitStatus>, String) {
    let f = std::fs::File::create(log).expect("log file");
    cmd.stdin(Stdio::null()).stdout(f.try_clone().expect("log fd")).stderr(f);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let end = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(st) => break Some(st),
            None if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// A script of the repository, run to completion within `limit`; panics when it fails.
fn script(args: &[&str], log: &Path, limit: Duration) -> String {
    let mut c = Command::new(repo().join(args[0]));
    c.args(&args[1..]);
    let (st, out) = run_logged(c, log, limit);
    assert!(st.is_some_and(|s| s.success()), "{} failed ({st:?}):\n{out}", args.join(" "));
    out
}

/// The sandbox's libvirtd and the Vagrant environment that uses it. Dropping it destroys
/// whatever is left (machines, domains, networks) and stops libvirtd by PID.
struct Env {
    dir: tempfile::TempDir,
    libvirtd: Child,
    uri: String,
    /// The named network namespace libvirtd, its networks and VMs, vagrant and kubectl
    /// run in, and its `net:[INODE]`.
    netns: String,
    ns: Option<PathBuf>,
    /// `vagrant destroy -f` left nothing (checked): Drop only stops libvirtd.
    destroyed: bool,
}

impl Env {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let lv = dir.path().join("libvirt");
        let log = std::fs::File::create(dir.path().join("sandbox-libvirtd.log")).expect("log");
        let netns = unique("vglv");
        let libvirtd = Command::new(repo().join("vagrant/sandbox-libvirtd.sh"))
            .args(["--foreground", "--netns", &netns])
            .arg(&lv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("run vagrant/sandbox-libvirtd.sh");
        let uri = format!("qemu:///system?socket={}/run/libvirt-sock", lv.display());
        let mut env = Env { dir, libvirtd, uri, netns, ns: None, destroyed: false };
        let end = Instant::now() + 30 * SEC;
        loop {
            if env.virsh(&["version"]).0 {
                env.ns = net_ns_of(env.libvirtd.id());
                assert!(env.ns.is_some() && env.ns != net_ns_of(std::process::id()), "libvirtd should run in a namespace of its own");
                break;
            }
            let log = std::fs::read_to_string(env.dir.path().join("sandbox-libvirtd.log")).unwrap_or_default();
            assert!(env.libvirtd.try_wait().expect("wait").is_none(), "libvirtd ended:\n{log}");
            assert!(Instant::now() < end, "libvirtd did not answer on {} in 30 s:\n{log}", env.uri);
            std::thread::sleep(Duration::from_millis(200));
        }
        env
    }

    /// `virsh -c URI ARGS…`: success and stdout.
    fn virsh(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("virsh").arg("-c").arg(&self.uri).args(args).output().expect("run virsh");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Names listed by `virsh LIST --all --name` (domains or networks).
    fn names(&self, list: &str) -> Vec<String> {
        let (ok, out) = self.virsh(&[list, "--all", "--name"]);
        assert!(ok, "virsh {list} failed");
        out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// `PROG` in libvirt's network namespace (`ip netns exec`).
    fn in_netns(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, prog]);
        c
    }

    /// The links in libvirt's network namespace.
    fn links(&self) -> Vec<String> {
        let out = Command::new("ip").args(["-n", &self.netns, "-o", "link", "show"]).output().expect("ip link");
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n).to_string()).collect()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `vagrant ARGS…` in vagrant/, with this environment; output in `log`.
    fn vagrant(&self, args: &[&str], log: &str, limit: Duration) -> (Option<ExitStatus>, String) {
        let mut c = self.in_netns("vagrant");
        c.args(args).current_dir(repo().join("vagrant"));
        c.env("LIBVIRT_DEFAULT_URI", &self.uri)
            .env("VAGRANT_HOME", self.dir.path().join("vagrant.d"))
            .env("VAGRANT_DOTFILE_PATH", self.dir.path().join("dot-vagrant"))
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("MINIK_VAGRANT_STATE", self.state())
            .env("MINIK_IMAGES", repo().join("target/images/oci"))
            .env("MINIK_NODES", "2");
        run_logged(c, &self.dir.path().join(log), limit)
    }

    /// The real kubectl against node1's API with the admin kubeconfig node1 issued.
    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .in_netns("/usr/bin/kubectl")
            .env("KUBECONFIG", self.state().join("admin.kubeconfig"))
            .arg("--request-timeout=20s")
            .args(args)
            .output()
            .expect("run kubectl");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let (ok, out) = self.kubectl(&a);
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {}: not JSON ({e}): {out}", args.join(" ")))
    }

    /// Polls `f` until it is Ok, for at most `limit`.
    fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
        let end = Instant::now() + limit;
        loop {
            match f() {
                Ok(v) => return v,
                Err(e) if Instant::now() >= end => panic!("{what}: not within {}s: {e}\n{}", limit.as_secs(), self.consoles()),
                Err(_) => std::thread::sleep(2 * SEC),
            }
        }
    }

    /// The nodes' console logs (the last lines), for failure messages.
    fn consoles(&self) -> String {
        let mut s = String::new();
        for n in ["node1", "node2"] {
            let t = std::fs::read_to_string(self.state().join(format!("logs/{n}-console.log"))).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            s += &format!("--- {n} console ---\n{}\n", tail.join("\n"));
        }
        s
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.destroyed && self.libvirtd.try_wait().ok().flatten().is_none() {
            let _ = self.vagrant(&["destroy", "-f"], "vagrant-destroy-cleanup.log", 180 * SEC);
            for d in self.virsh(&["list", "--all", "--name"]).1.lines().filter(|l| !l.trim().is_empty()) {
                let _ = self.virsh(&["destroy", d.trim()]);
                let _ = self.virsh(&["undefine", d.trim()]);
            }
            for n in self.virsh(&["net-list", "--all", "--name"]).1.lines().filter(|l| !l.trim().is_empty()) {
                let _ = self.virsh(&["net-destroy", n.trim()]);
                let _ = self.virsh(&["net-undefine", n.trim()]);
            }
        }
        let _ = self.libvirtd.kill();
        let _ = self.libvirtd.wait();
        for pid in own_processes(&["qemu-system", "dnsmasq"], &self.dir.path().display().to_string(), &self.ns) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// The network namespace of a process (`net:[INODE]`).
fn net_ns_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// PIDs of processes in network namespace `ns` whose command starts with one of `progs`
/// and whose command line (or, for dnsmasq, libvirt's config) names `needle` or libvirt.
fn own_processes(progs: &[&str], needle: &str, ns: &Option<PathBuf>) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " ");
            let prog = cmd.split(' ').next().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
            progs.iter().any(|p| prog.starts_with(p))
                && (cmd.contains(needle) || cmd.contains("libvirt"))
                && ns.is_some()
                && net_ns_of(*pid) == *ns
        })
        .collect()
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A busybox pod the scheduler must place on node2 (a node selector, no nodeName).
const POD_ON_NODE2: &str = r#"{"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "scheduled-on-node2", "namespace": "default"},
  "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"}, "terminationGracePeriodSeconds": 1,
           "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}"#;

#[test]
fn two_vagrant_nodes_join_run_a_scheduled_pod_and_leave_nothing() {
    require_sandbox();
    let work = tempfile::tempdir().expect("tempdir");
    // The node image (cached), then the box made of it (cached).
    let bins = bin_dir().display().to_string();
    script(&["images/vm/build.sh", "--bin-dir", &bins], &work.path().join("build.log"), 300 * SEC);
    let box_file = work.path().join("minik-node.box");
    let box_path = box_file.display().to_string();
    let out = script(&["vagrant/package-box.sh", "--out", &box_path], &work.path().join("box.log"), 120 * SEC);
    assert!(out.contains("==> box ") && box_file.is_file(), "package-box.sh made no box:\n{out}");
    let again = script(&["vagrant/package-box.sh", "--out", &box_path], &work.path().join("box2.log"), 60 * SEC);
    assert!(again.contains("up to date"), "packaging the same image again should be skipped:\n{again}");
    let copy = work.path().join("again.box");
    script(&["vagrant/package-box.sh", "--force", "--out", &copy.display().to_string()], &work.path().join("box3.log"), 120 * SEC);
    assert_eq!(sha256(&copy), sha256(&box_file), "packaging the same image twice gives different boxes");
    let manifest = std::fs::read_to_string(repo().join("target/images/vm/manifest.txt")).expect("manifest");
    let kernel = manifest.lines().next().and_then(|l| l.split_whitespace().nth(1)).expect("kernel version").to_string();

    let mut env = Env::start();
    let (st, out) = env.vagrant(&["box", "add", "--name", "minik-node", &box_path], "vagrant-box-add.log", 120 * SEC);
    assert!(st.is_some_and(|s| s.success()), "vagrant box add failed ({st:?}):\n{out}");

    // Two nodes, one after the other (node1 issues node2's credentials first).
    let (st, up) = env.vagrant(&["up", "--provider", "libvirt"], "vagrant-up.log", 420 * SEC);
    assert!(st.is_some_and(|s| s.success()), "vagrant up failed ({st:?}):\n{up}\n{}", env.consoles());
    assert_eq!(env.names("list"), ["vagrant_node1", "vagrant_node2"], "the domains vagrant-libvirt defined");
    assert!(up.contains("minik-provision: node1: control plane and node services started"), "{up}");
    assert!(up.contains("minik-provision: node2: services started"), "{up}");
    let admin = std::fs::read_to_string(env.state().join("admin.kubeconfig")).expect("the admin kubeconfig fetched from node1");
    assert!(admin.contains("server: https://192.168.50.11:6443"), "{admin}");

    // Both nodes registered and Ready, on their underlay addresses, with a pod CIDR each
    // and the image's kernel.
    let mut cidrs = Vec::new();
    for (name, ip) in [("node1", "192.168.50.11"), ("node2", "192.168.50.12")] {
        let n = env.wait(&format!("{name} Ready"), 120 * SEC, || {
            let (ok, out) = env.kubectl(&["get", "node", name, "-o", "json"]);
            let n: Value = if ok { serde_json::from_str(&out).map_err(|e| e.to_string())? } else { return Err(out) };
            let conds = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let is_ready = conds.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
            if is_ready && n["spec"]["podCIDR"].is_string() { Ok(n) } else { Err(format!("{conds:?} podCIDR {}", n["spec"]["podCIDR"])) }
        });
        let addrs = n["status"]["addresses"].to_string();
        assert!(addrs.contains(ip), "{name} should be at {ip}: {addrs}");
        assert_eq!(n["status"]["nodeInfo"]["kernelVersion"], kernel.as_str(), "{name} runs the image's kernel");
        let cidr = n["spec"]["podCIDR"].as_str().unwrap_or_default().to_string();
        assert!(cidr.starts_with("10.244.") && cidr.ends_with(".0/24"), "{name}'s pod CIDR: {cidr}");
        cidrs.push(cidr);
    }
    assert_ne!(cidrs[0], cidrs[1], "two nodes with the same pod CIDR");
    let names: Vec<String> = env.json(&["get", "nodes"])["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    assert_eq!(names, ["node1", "node2"]);

    // A pod the scheduler (in node1's VM) places on node2 gets Ready with an address of
    // node2's CIDR, and `kubectl exec` reaches it through the API and node2's minilet.
    let manifest = work.path().join("pod.json");
    std::fs::write(&manifest, POD_ON_NODE2).expect("write the pod");
    let (ok, out) = env.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    assert!(ok, "kubectl apply: {out}");
    let pod = env.wait("the pod on node2 Ready", 180 * SEC, || {
        let p = env.json(&["get", "pod", "scheduled-on-node2"]);
        if ready(&p) { Ok(p) } else { Err(format!("{}", p["status"])) }
    });
    assert_eq!(pod["spec"]["nodeName"], "node2", "the scheduler placed it elsewhere: {}", pod["spec"]);
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    let prefix = cidrs[1].trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "the pod's IP {ip} is not from node2's {}", cidrs[1]);
    let (ok, out) = env.kubectl(&["exec", "scheduled-on-node2", "--", "hostname"]);
    assert!(ok && out.trim() == "scheduled-on-node2", "kubectl exec into the pod on node2: {out}");

    // The console says how the node came up for Vagrant.
    let console = std::fs::read_to_string(env.state().join("logs/node2-console.log")).expect("node2's console log");
    for want in ["minik-vagrant: underlay: eth1 192.168.50.12/24", "minik-vagrant: ssh: dropbear on :22", "minik-init: ready for provisioning"] {
        assert!(console.contains(want), "{want:?} not in node2's console:\n{console}");
    }

    // vagrant destroy -f leaves no domain, network, QEMU or dnsmasq.
    let (st, out) = env.vagrant(&["destroy", "-f"], "vagrant-destroy.log", 180 * SEC);
    assert!(st.is_some_and(|s| s.success()), "vagrant destroy -f failed ({st:?}):\n{out}");
    assert_eq!(env.names("list"), Vec::<String>::new(), "domains left after vagrant destroy");
    assert_eq!(env.names("net-list"), Vec::<String>::new(), "networks left after vagrant destroy");
    let left = own_processes(&["qemu-system", "dnsmasq"], &env.dir.path().display().to_string(), &env.ns);
    assert!(left.is_empty(), "processes left after vagrant destroy: {left:?}");
    assert_eq!(env.links(), ["lo"], "links left in libvirt's namespace after vagrant destroy");
    env.destroyed = true;
}
