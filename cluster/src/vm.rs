//! VM nodes: whole machines with their own kernel, booted under QEMU inside the keeper's
//! sandbox from the node image `images/vm/build.sh` makes (Debian's kernel and a busybox
//! initramfs with the node's and the control plane's binaries).
//!
//! Two ways to have them: `minik up --backend vm` makes node1..nodeN VMs (node1 runs the
//! control plane, its miniapi data dir shared from the host as 9p tag `api`), and
//! `--vms K` adds VMs `vm1..vmK` to a netns cluster, at the addresses after the netns
//! nodes. Each VM gets a TAP device on the underlay bridge (in the `underlay` namespace,
//! where QEMU runs), its name and address on the kernel command line (`minik.node=
//! minik.ip= minik.gw=`), the 9p shares `minik` (its directory `<state>/NODE/`: node.env,
//! minilet.yaml, services — the same command lines the keeper runs on netns nodes, see
//! [`crate::services`] —, its credentials; the VM writes logs/ and status/ there) and
//! `images` (read-only), and a virtio-serial port for `minik-agent` (`minik shell NODE`,
//! through `<state>/run/NODE-agent.sock`). The serial console goes to
//! `<state>/logs/NODE-console.log`.
//!
//! KVM is used only when a short probe boot under KVM answers in time (on some hosts KVM
//! guests hang); otherwise TCG. `down` stops QEMU by PID like every other process, `minik
//! kill NODE` powers a VM off, `minik start NODE` boots it again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::agent::client as agent;
use crate::config::{ClusterConfig, Layout};
use crate::nodefiles::{self, NodeSpec};
use crate::network;
use crate::nodes;
use crate::procs::Supervisor;

/// The console line the image's `/init` prints when the node's services run.
pub const READY_LINE: &str = "minik-init: ready";
/// The console line it prints when a step failed.
pub const FAILED_LINE: &str = "minik-init: FAILED";
/// The console line of the KVM probe boot.
const PROBE_LINE: &str = "minik-init: probe ok";
/// How long a KVM probe boot may take.
const PROBE_LIMIT: Duration = Duration::from_secs(12);
/// How long a VM may take from start to its services running (TCG on a busy machine).
const BOOT_LIMIT: Duration = Duration::from_secs(180);

/// How to run the VMs' CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when a probe boot works, else TCG.
    Auto,
    /// Hardware virtualization (fails when /dev/kvm does not work).
    Kvm,
    /// QEMU's emulator: slower, works everywhere.
    Tcg,
}

/// The VM flags of `minik up`.
#[derive(clap::Args, Debug, Clone)]
pub struct VmArgs {
    /// Number of extra VM nodes (vm1..vmN, under QEMU) besides the netns nodes; see
    /// also --backend vm, which makes every node a VM.
    #[arg(long, default_value_t = 0)]
    pub vms: u8,
    /// The node image (vmlinuz, initramfs.img from images/vm/build.sh); default:
    /// target/images/vm next to the binaries.
    #[arg(long)]
    pub vm_image: Option<PathBuf>,
    /// kvm, tcg, or auto (KVM when a short probe boot works).
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub vm_accel: Accel,
    /// Memory per VM, in MiB.
    #[arg(long, default_value_t = 768)]
    pub vm_memory: u32,
}

/// The VM part of a cluster, saved as `<state>/vms.json` next to `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VmConfig {
    /// How many VM nodes.
    pub count: u8,
    /// The node image's directory (absolute).
    pub image: PathBuf,
    /// How to run the CPUs.
    pub accel: Accel,
    /// Memory per VM, in MiB.
    pub memory_mib: u32,
}

/// The file the VM config is saved in.
pub fn config_file(layout: &Layout) -> PathBuf {
    layout.root.join("vms.json")
}

impl VmConfig {
    /// Checks the flags against the cluster and the image; the message says what to do.
    pub fn from_args(cfg: &ClusterConfig, a: &VmArgs) -> anyhow::Result<Self> {
        let image = match &a.vm_image {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => std::env::current_dir().context("cannot read the current directory")?.join(p),
            None => cfg.bin_dir.parent().map(|t| t.join("images/vm")).unwrap_or_else(|| PathBuf::from("target/images/vm")),
        };
        let vc = VmConfig { count: a.vms, image, accel: a.vm_accel, memory_mib: a.vm_memory };
        vc.validate(cfg)?;
        Ok(vc)
    }

    /// Checks the counts, the memory, the image and QEMU.
    pub fn validate(&self, cfg: &ClusterConfig) -> anyhow::Result<()> {
        if cfg.vm_nodes() && self.count > 0 {
            bail!("--backend vm makes every node a VM already; give the number of nodes with --nodes, without --vms");
        }
        if self.count == 0 && !cfg.vm_nodes() {
            return Ok(());
        }
        if u32::from(cfg.nodes) + u32::from(self.count) > 50 {
            bail!("--nodes {} plus --vms {}: a cluster has at most 50 nodes", cfg.nodes, self.count);
        }
        let node_subnets = 1u32 << (24 - cfg.pod_cidr.prefix_len());
        if u32::from(cfg.nodes) + u32::from(self.count) >= node_subnets {
            bail!("--pod-cidr {} has room for {} node /24s; use a larger one", cfg.pod_cidr, node_subnets - 1);
        }
        if !(256..=16384).contains(&self.memory_mib) {
            bail!("--vm-memory {}: give 256 to 16384 MiB (the node image needs about 400)", self.memory_mib);
        }
        for f in ["vmlinuz", "initramfs.img"] {
            if !self.image.join(f).is_file() {
                bail!("no node image in {} ({f} is missing); build it with images/vm/build.sh", self.image.display());
            }
        }
        if which("qemu-system-x86_64").is_none() {
            bail!("qemu-system-x86_64 is not installed; run scripts/deps.sh as root (Debian package qemu-system-x86)");
        }
        if self.accel == Accel::Kvm && !Path::new("/dev/kvm").exists() {
            bail!("--vm-accel kvm: there is no /dev/kvm on this machine; use --vm-accel tcg or auto");
        }
        Ok(())
    }

    /// Saves `<state>/vms.json`.
    pub fn save(&self, layout: &Layout) -> anyhow::Result<()> {
        let path = config_file(layout);
        let text = serde_json::to_string_pretty(self).context("encoding the VM config")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Loads `<state>/vms.json`; a cluster without one has no VMs.
    pub fn load(layout: &Layout) -> anyhow::Result<Self> {
        let path = config_file(layout);
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).with_context(|| format!("{} is not a VM config", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(VmConfig { count: 0, image: PathBuf::new(), accel: Accel::Auto, memory_mib: 768 })
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The extra VM nodes' names, vm1..vmN.
    pub fn names(&self) -> Vec<String> {
        (1..=self.count).map(|i| format!("vm{i}")).collect()
    }

    /// Every node's name: node1..nodeN (netns or VMs), then the extra VMs vm1..vmK.
    pub fn all_names(&self, cfg: &ClusterConfig) -> Vec<String> {
        cfg.node_names().into_iter().chain(self.names()).collect()
    }

    /// Every VM of the cluster: node1..nodeN with `--backend vm`, then vm1..vmK.
    pub fn all(&self, cfg: &ClusterConfig) -> Vec<VmNode> {
        let nodes = if cfg.vm_nodes() { cfg.nodes } else { 0 };
        (1..=nodes).map(|i| VmNode::node(cfg, i)).chain((1..=self.count).map(|i| VmNode::extra(cfg, i))).collect()
    }

    /// The VM called `name`, if there is one.
    pub fn find(&self, cfg: &ClusterConfig, name: &str) -> Option<VmNode> {
        self.all(cfg).into_iter().find(|v| v.name == name)
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(prog)).find(|p| p.is_file()))
}

/// One VM node.
#[derive(Debug, Clone)]
pub struct VmNode {
    /// node1.. or vm1..
    pub name: String,
    /// Its address on the underlay.
    pub ip: std::net::Ipv4Addr,
    /// Whether it runs the control plane (node1 of a `--backend vm` cluster).
    pub control: bool,
    /// Its directory on the host, shared as 9p tag `minik`.
    pub dir: PathBuf,
    /// miniapi's data dir on the host (shared as 9p tag `api` when `control`).
    pub api_dir: PathBuf,
    /// Its serial console log.
    pub console: PathBuf,
    /// Its agent's socket.
    pub agent: PathBuf,
    /// Its TAP device on the underlay bridge.
    pub tap: String,
}

impl VmNode {
    fn new(cfg: &ClusterConfig, name: String, ip: std::net::Ipv4Addr, control: bool) -> Self {
        let layout = cfg.layout();
        VmNode {
            ip,
            control,
            dir: layout.node_dir(&name),
            api_dir: layout.api_dir(),
            console: layout.logs().join(format!("{name}-console.log")),
            agent: agent::socket(&layout, &name),
            tap: format!("tap-{name}"),
            name,
        }
    }

    /// Node `i` (1-based) of a `--backend vm` cluster; node1 runs the control plane.
    pub fn node(cfg: &ClusterConfig, i: u8) -> Self {
        Self::new(cfg, format!("node{i}"), cfg.node_ip(i), i == 1)
    }

    /// Extra VM `i` (1-based) of a netns cluster: the address after the netns nodes.
    pub fn extra(cfg: &ClusterConfig, i: u8) -> Self {
        Self::new(cfg, format!("vm{i}"), cfg.node_ip(cfg.nodes + i), false)
    }

    /// The kernel command line: the node's name, address and gateway for `/init`.
    pub fn cmdline(&self, cfg: &ClusterConfig) -> String {
        format!(
            "console=ttyS0 panic=-1 quiet minik.node={} minik.ip={}/{} minik.gw={}{}",
            self.name,
            self.ip,
            cfg.underlay.prefix_len(),
            cfg.gateway_ip(),
            if self.control { " minik.api" } else { "" }
        )
    }

    /// A MAC address of QEMU's range, distinct per VM (its address's last byte).
    pub fn mac(&self) -> String {
        format!("52:54:00:4d:4b:{:02x}", self.ip.octets()[3])
    }

    /// What its files say about it.
    pub fn spec(&self) -> NodeSpec {
        NodeSpec { name: self.name.clone(), ip: self.ip, control: self.control, underlay_interface: "eth0".into() }
    }

    /// The QEMU command that boots this VM with `accel`.
    pub fn qemu(&self, cfg: &ClusterConfig, vc: &VmConfig, accel: Accel) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-name", &self.name, "-machine", "q35", "-accel", if accel == Accel::Kvm { "kvm" } else { "tcg" }]);
        c.args(["-m", &vc.memory_mib.to_string(), "-smp", "1", "-display", "none", "-monitor", "none", "-no-reboot"]);
        c.arg("-serial").arg(format!("file:{}", self.console.display()));
        c.arg("-kernel").arg(vc.image.join("vmlinuz")).arg("-initrd").arg(vc.image.join("initramfs.img"));
        c.args(["-append", &self.cmdline(cfg)]);
        c.args(["-netdev", &format!("tap,id=n0,ifname={},script=no,downscript=no", self.tap)]);
        c.args(["-device", &format!("virtio-net-pci,netdev=n0,mac={}", self.mac())]);
        // Entropy from the host (the image loads virtio_rng): an idle VM under TCG gathers
        // so little that the first blocking getrandom() (TLS, pod sandboxes) waits minutes.
        c.args(["-device", "virtio-rng-pci"]);
        c.arg("-virtfs").arg(format!("local,path={},mount_tag=minik,security_model=none,id=fs0", self.dir.display()));
        c.arg("-virtfs").arg(format!("local,path={},mount_tag=images,security_model=none,readonly=on,id=fs1", cfg.images.display()));
        if self.control {
            c.arg("-virtfs").arg(format!("local,path={},mount_tag=api,security_model=none,id=fs2", self.api_dir.display()));
        }
        // The agent's channel: a virtio-serial port, a Unix socket on this side.
        c.args(["-device", "virtio-serial-pci,id=vser0"]);
        c.arg("-chardev").arg(format!("socket,id=agent,path={},server=on,wait=off", self.agent.display()));
        c.args(["-device", &format!("virtserialport,bus=vser0.0,chardev=agent,name={}", crate::agent::proto::PORT_NAME)]);
        c
    }

    /// Writes the VM's directory: minilet.yaml, node.env, services (the credentials come
    /// once the API runs: [`nodes::write_credentials`]).
    pub fn prepare(&self, cfg: &ClusterConfig, vc: &VmConfig) -> anyhow::Result<()> {
        for d in [self.dir.join("logs"), self.api_dir.clone(), cfg.layout().root.join("run")] {
            std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        nodefiles::write(&self.dir, &nodefiles::render(cfg, &self.spec(), &vc.all_names(cfg)))?;
        // A credential left from an earlier boot would let the services start too early.
        let _ = std::fs::remove_file(self.dir.join("kubeconfig"));
        Ok(())
    }

    /// Starts its QEMU under the supervisor, in the underlay namespace (the TAP device is
    /// made the first time); returns the PID.
    pub fn start(&self, cfg: &ClusterConfig, vc: &VmConfig, accel: Accel, sup: &Supervisor) -> anyhow::Result<u32> {
        let underlay = network::open(network::UNDERLAY)?;
        // A TAP device made with `ip tuntap` outlives the QEMU that used it.
        if network::ip(&["-n", network::UNDERLAY, "link", "show", "dev", &self.tap]).is_err() {
            network::ip(&["-n", network::UNDERLAY, "tuntap", "add", "dev", &self.tap, "mode", "tap"])?;
            network::ip(&["-n", network::UNDERLAY, "link", "set", &self.tap, "master", "br0", "up"])?;
        }
        let _ = std::fs::remove_file(&self.console);
        let _ = std::fs::remove_file(&self.agent);
        sup.spawn("qemu", &self.name, &underlay, &self.name, self.qemu(cfg, vc, accel))
    }

    /// Runs `argv` in the VM through its agent.
    pub fn run(&self, argv: &[String], limit: Duration) -> anyhow::Result<agent::Output> {
        agent::run(&self.agent, argv, limit)
    }
}

/// What the console log says so far.
fn console_state(path: &Path) -> Option<Result<(), String>> {
    let text = std::fs::read_to_string(path).ok()?;
    if text.contains(READY_LINE) {
        return Some(Ok(()));
    }
    text.lines().find(|l| l.contains(FAILED_LINE)).map(|l| Err(l.trim().to_string()))
}

/// Boots the image once under KVM with `minik.probe`; true when it answered and powered
/// off within [`PROBE_LIMIT`]. The probe VM is ended by PID when it does not.
pub fn kvm_works(vc: &VmConfig, scratch: &Path) -> bool {
    let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm");
    if f.is_err() {
        return false;
    }
    let console = scratch.join("kvm-probe-console.log");
    let _ = std::fs::remove_file(&console);
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-machine", "q35", "-accel", "kvm", "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none", "-no-reboot"]);
    c.args(["-nic", "none"]).arg("-serial").arg(format!("file:{}", console.display()));
    c.arg("-kernel").arg(vc.image.join("vmlinuz")).arg("-initrd").arg(vc.image.join("initramfs.img"));
    c.args(["-append", "console=ttyS0 panic=-1 quiet minik.probe"]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let Ok(mut child) = c.spawn() else { return false };
    let end = Instant::now() + PROBE_LIMIT;
    let ok = loop {
        if let Ok(Some(st)) = child.try_wait() {
            let said = std::fs::read_to_string(&console).map(|t| t.contains(PROBE_LINE)).unwrap_or(false);
            if !said {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                tracing::info!(status = %st, stderr = %err.trim(), "KVM probe boot failed; using TCG");
            }
            break said;
        }
        if Instant::now() >= end {
            tracing::warn!(pid = child.id(), "KVM probe boot hung; ending it and using TCG");
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ok
}

/// Chooses the accelerator: `auto` probes KVM.
pub fn choose_accel(vc: &VmConfig, scratch: &Path) -> anyhow::Result<Accel> {
    Ok(match vc.accel {
        Accel::Tcg => Accel::Tcg,
        Accel::Kvm => {
            if !kvm_works(vc, scratch) {
                bail!("--vm-accel kvm: a probe boot under KVM did not answer in {}s; use --vm-accel tcg", PROBE_LIMIT.as_secs());
            }
            Accel::Kvm
        }
        Accel::Auto if kvm_works(vc, scratch) => Accel::Kvm,
        Accel::Auto => Accel::Tcg,
    })
}

/// Starts every VM of `vms` (prepared) with `accel`; returns them with their PIDs.
pub fn start_all(cfg: &ClusterConfig, vc: &VmConfig, vms: Vec<VmNode>, accel: Accel, sup: &Supervisor) -> anyhow::Result<Vec<(VmNode, u32)>> {
    vms.into_iter()
        .map(|vm| {
            let pid = vm.start(cfg, vc, accel, sup)?;
            Ok((vm, pid))
        })
        .collect()
}

/// Waits until each VM's console says its services run; fails on a FAILED line, a QEMU
/// that ended, or after [`BOOT_LIMIT`].
pub fn wait_ready(cfg: &ClusterConfig, vms: &[(VmNode, u32)], sup: &Supervisor, stop: &dyn Fn() -> bool) -> anyhow::Result<()> {
    let end = Instant::now() + BOOT_LIMIT;
    let mut waiting: Vec<&(VmNode, u32)> = vms.iter().collect();
    while !waiting.is_empty() {
        if stop() {
            bail!("interrupted");
        }
        let mut still = Vec::new();
        for v @ (vm, pid) in waiting {
            match console_state(&vm.console) {
                Some(Ok(())) => {}
                Some(Err(line)) => {
                    bail!("{}: {line} (console: {}, logs: {})", vm.name, vm.console.display(), vm.dir.join("logs").display())
                }
                None if !sup.running(*pid) => bail!("{}: QEMU ended: {}", vm.name, sup.log_tail(*pid, 3)),
                None => still.push(v),
            }
        }
        waiting = still;
        if !waiting.is_empty() && Instant::now() >= end {
            let names: Vec<&str> = waiting.iter().map(|(vm, _)| vm.name.as_str()).collect();
            bail!("{} did not finish booting in {}s; see their console logs in {}", names.join(", "), BOOT_LIMIT.as_secs(), cfg.layout().logs().display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Boots the extra VMs of a netns cluster (whose API already runs) and waits until each
/// one's services run; returns the accelerator used.
pub fn boot_extras(cfg: &ClusterConfig, vc: &VmConfig, sup: &Supervisor, stop: &dyn Fn() -> bool) -> anyhow::Result<Accel> {
    let accel = choose_accel(vc, &cfg.layout().logs())?;
    let vms: Vec<VmNode> = (1..=vc.count).map(|i| VmNode::extra(cfg, i)).collect();
    for vm in &vms {
        vm.prepare(cfg, vc)?;
        nodes::write_credentials(cfg, &vm.name)?;
    }
    let started = start_all(cfg, vc, vms, accel, sup)?;
    wait_ready(cfg, &started, sup, stop)?;
    Ok(accel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClusterConfig {
        ClusterConfig { nodes: 1, state_dir: PathBuf::from("/s"), images: PathBuf::from("/i"), bin_dir: PathBuf::from("/b"), ..crate::config::tests::cfg() }
    }

    fn vc() -> VmConfig {
        VmConfig { count: 2, image: PathBuf::from("/img"), accel: Accel::Tcg, memory_mib: 768 }
    }

    #[test]
    fn vms_follow_the_netns_nodes_on_the_underlay() {
        let c = cfg();
        let vm = VmNode::extra(&c, 2);
        assert_eq!(vm.name, "vm2");
        assert_eq!(vm.ip.to_string(), "192.168.50.13");
        assert_eq!(vm.cmdline(&c), "console=ttyS0 panic=-1 quiet minik.node=vm2 minik.ip=192.168.50.13/24 minik.gw=192.168.50.1");
        assert_eq!(vm.mac(), "52:54:00:4d:4b:0d");
        assert_eq!(vm.console, PathBuf::from("/s/logs/vm2-console.log"));
        let y = nodefiles::minilet_config(&c, &vm.spec());
        for want in ["nodeName: vm2", "nodeIP: 192.168.50.13", "kubeconfig: /minik/kubeconfig", "cniConfigFromNode: true", "cniBinDirs: [/usr/bin]"] {
            assert!(y.contains(want), "{want} not in\n{y}");
        }
        assert_eq!(vc().names(), ["vm1", "vm2"]);
    }

    #[test]
    fn the_qemu_command_uses_the_tap_the_shares_and_the_accelerator() {
        let c = cfg();
        let vm = VmNode::extra(&c, 1);
        let args: Vec<String> = vm.qemu(&c, &vc(), Accel::Tcg).get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        for want in [
            "-accel tcg",
            "-m 768",
            "-kernel /img/vmlinuz",
            "-initrd /img/initramfs.img",
            "tap,id=n0,ifname=tap-vm1,script=no,downscript=no",
            "local,path=/s/vm1,mount_tag=minik",
            "local,path=/i,mount_tag=images,security_model=none,readonly=on",
            "-serial file:/s/logs/vm1-console.log",
            "-device virtio-rng-pci",
        ] {
            assert!(joined.contains(want), "{want} not in {joined}");
        }
        let kvm: Vec<String> = vm.qemu(&c, &vc(), Accel::Kvm).get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(kvm.join(" ").contains("-accel kvm"));
    }

    #[test]
    fn bad_vm_flags_say_what_to_do() {
        let c = cfg();
        let mut v = vc();
        v.memory_mib = 64;
        assert!(v.validate(&c).expect_err("memory").to_string().contains("--vm-memory"));
        let mut v = vc();
        v.count = 50;
        assert!(v.validate(&c).expect_err("count").to_string().contains("at most 50"));
        let v = vc();
        let e = v.validate(&c).expect_err("no image").to_string();
        assert!(e.contains("images/vm/build.sh"), "{e}");
        let v = VmConfig { count: 0, ..vc() };
        v.validate(&c).expect("no VMs, nothing to check");
    }

    #[test]
    fn the_console_says_ready_or_failed() {
        let p = std::env::temp_dir().join(format!("minik-vm-console-test-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&p);
        assert!(console_state(&p).is_none());
        std::fs::write(&p, "boot\nminik-init: network: vm1\n").expect("write");
        assert!(console_state(&p).is_none());
        std::fs::write(&p, "boot\nminik-init: FAILED: no eth0\n").expect("write");
        assert_eq!(console_state(&p), Some(Err("minik-init: FAILED: no eth0".into())));
        std::fs::write(&p, "boot\nminik-init: ready\n").expect("write");
        assert_eq!(console_state(&p), Some(Ok(())));
        let _ = std::fs::remove_file(&p);
    }
}
