//! `minik`: boots a Kubernetes cluster of network-namespace or VM nodes in a private
//! sandbox and takes it down again; a shell into it, its status, the trace of a Service,
//! and node failures (`kill`, `start`).
//!
//! `up` starts a keeper process in its own network and mount namespaces ([`keeper`]);
//! every other command finds the cluster through its state dir ([`config::Layout`]).

mod agent;
mod boot;
mod cgroups;
mod config;
mod demo;
mod down;
mod forward;
mod keeper;
mod kubectl;
mod network;
mod nodefiles;
mod nodes;
mod procs;
mod progress;
mod restart;
mod services;
mod shell;
mod state;
mod status;
mod trace;
mod up;
mod vm;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{ClusterConfig, DEFAULT_STATE_DIR};

/// minik's cluster launcher.
#[derive(Parser, Debug)]
#[command(name = "minik", version)]
struct Cli {
    /// The cluster's state directory (every command finds the cluster through it).
    #[arg(long, global = true, env = "MINIK_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Boot the cluster (as root): nodes, control plane, the course's demo.
    Up(UpArgs),
    /// Stop the cluster and remove every trace of it (logs are kept).
    Down,
    /// Show the cluster's processes and nodes.
    Status,
    /// A shell (or a command) on a host of the sandbox: ext (default), node1..nodeN, underlay.
    Shell {
        /// ext, underlay or a node.
        #[arg(default_value = "ext")]
        host: String,
        /// The command to run instead of $SHELL.
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// Print the path of the host's kubeconfig.
    Kubeconfig,
    /// A Service's story with timestamps: stored, endpoints, rules on each node, DNS.
    Trace {
        /// The Service, as svc/NAME.
        target: String,
        /// Its namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Simulate a node failure: SIGKILL every process of NODE (minilet, minikproxy, its
    /// pods); a VM node is powered off.
    Kill {
        /// The node, e.g. node2.
        node: String,
    },
    /// Start a killed node again (boot its VM again) and wait until it is Ready.
    Start {
        /// The node, e.g. node2.
        node: String,
    },
    /// Write the node files (minilet.yaml, node.env, services) of a cluster of VM nodes
    /// into OUT/node1..nodeN, for provisioners other than `minik up` (vagrant/Vagrantfile).
    NodeFiles {
        /// Number of nodes (node1 runs the control plane).
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// The directory to write the nodes' directories into.
        #[arg(long)]
        out: PathBuf,
        /// The nodes' interface on the underlay (eth1 under Vagrant, whose eth0 is its
        /// management network).
        #[arg(long, default_value = "eth0")]
        underlay_interface: String,
    },
    /// (internal) The keeper, started by `up` inside its sandbox.
    #[command(hide = true)]
    Sandbox,
}

#[derive(clap::Parser, Debug)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u8,
    /// The underlay network (node1 is .11, ext .2).
    #[arg(long, default_value = "192.168.50.0/24")]
    underlay: ipnet::Ipv4Net,
    /// The cluster's pod CIDR (a /24 per node).
    #[arg(long, default_value = "10.244.0.0/16")]
    pod_cidr: ipnet::Ipv4Net,
    /// The Service ClusterIP range (DNS at .10).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: ipnet::Ipv4Net,
    /// The API's port on the host's loopback.
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// The OCI image layouts (busybox, demo-api, demo-db); default: target/images/oci
    /// next to the binaries.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Do not deploy the course's demo.
    #[arg(long)]
    no_demo: bool,
    /// The controller manager's --node-monitor-grace-period (e.g. 5s, for tests).
    #[arg(long)]
    node_monitor_grace_period: Option<String>,
    /// The controller manager's --pod-eviction-timeout (e.g. 5s, for tests).
    #[arg(long)]
    pod_eviction_timeout: Option<String>,
    /// What the nodes are: netns (network namespaces) or vm (QEMU VMs booted from the
    /// node image, the control plane in node1's).
    #[arg(long, value_enum, default_value_t = config::Backend::Netns)]
    backend: config::Backend,
    /// VM nodes.
    #[command(flatten)]
    vm: vm::VmArgs,
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir().context("cannot read the current directory")?.join(p))
}

fn up_config(state_dir: &Path, a: UpArgs) -> anyhow::Result<ClusterConfig> {
    let bin_dir = absolute(&up::bin_dir()?)?;
    let images = match a.images {
        Some(p) => absolute(&p)?,
        // target/debug/minik → target/images/oci
        None => bin_dir.parent().map(|t| t.join("images/oci")).unwrap_or_else(|| PathBuf::from("target/images/oci")),
    };
    Ok(ClusterConfig {
        nodes: a.nodes,
        state_dir: absolute(state_dir)?,
        underlay: a.underlay,
        pod_cidr: a.pod_cidr,
        service_cidr: a.service_cidr,
        api_port: a.api_port,
        images,
        demo: !a.no_demo,
        bin_dir,
        node_monitor_grace_period: a.node_monitor_grace_period,
        pod_eviction_timeout: a.pod_eviction_timeout,
        backend: a.backend,
    })
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let state_dir = absolute(&cli.state_dir)?;
    match cli.cmd {
        Cmd::Up(a) => {
            let vm_args = a.vm.clone();
            up::up(up_config(&state_dir, a)?, &vm_args)
        }
        Cmd::Down => down::down(&state_dir).map(|_| 0),
        Cmd::Status => status::status(&state_dir),
        Cmd::Shell { host, command } => shell::shell(&state_dir, &host, &command).map(|_| 0),
        Cmd::Kubeconfig => {
            let cfg = ClusterConfig::load(&state_dir)?;
            println!("{}", cfg.layout().host_kubeconfig().display());
            Ok(0)
        }
        Cmd::Trace { target, namespace } => trace::trace(&state_dir, &target, &namespace).map(|_| 0),
        Cmd::Kill { node } => down::kill_node(&state_dir, &node).map(|_| 0),
        Cmd::Start { node } => restart::start(&state_dir, &node).map(|_| 0),
        Cmd::NodeFiles { nodes, out, underlay_interface } => {
            let a = UpArgs::parse_from(["up", "--nodes", &nodes.to_string(), "--backend", "vm"]);
            let cfg = up_config(&state_dir, a)?;
            for d in nodefiles::command(&cfg, &absolute(&out)?, &underlay_interface)? {
                println!("{}", d.display());
            }
            Ok(0)
        }
        Cmd::Sandbox => keeper::run(&state_dir).map(|_| 0),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = if matches!(cli.cmd, Cmd::Sandbox) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINIK_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("minik: {e:#}");
            ExitCode::FAILURE
        }
    }
}
