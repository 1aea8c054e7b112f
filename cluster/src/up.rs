//! `minik up`: checks the flags, the binaries and the images, refuses when the cluster
//! already runs (exit 1: "already runs … `minik down` first"), clears what a cluster that
//! died left behind, binds the API's host socket, starts the keeper
//! (`unshare --net --mount --propagation private -- minik sandbox`, in a session of its
//! own, logging to `<state>/logs/keeper.log`), and prints the keeper's progress until the
//! cluster is up. Then it prints the kubeconfig and how to reach the sandbox.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::ClusterConfig;
use crate::forward::LISTEN_FD;
use crate::progress::{render, Event, Follower};
use crate::state::running_keeper;
use crate::vm::{VmArgs, VmConfig};
use crate::{demo, down, nodes};

/// The binaries a cluster runs.
pub const BINARIES: &[&str] = &[
    "miniapi",
    "minik-controller-manager",
    "minik-scheduler",
    "minik-dns",
    "minilet",
    "minilet-shim",
    "minik-oci",
    "cni-bridge",
    "minikproxy",
];

/// Where the cluster's binaries are: `MINIK_BIN_DIR`, else next to this executable.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("MINIK_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe().context("cannot find the minik executable")?;
    exe.parent().map(Path::to_path_buf).context("the minik executable has no directory")
}

fn check_binaries(dir: &Path) -> anyhow::Result<()> {
    let missing: Vec<&str> = BINARIES.iter().copied().filter(|b| !dir.join(b).exists()).collect();
    if !missing.is_empty() {
        bail!("missing in {}: {}; build them with `cargo build --workspace --bins` (make build)", dir.display(), missing.join(", "));
    }
    Ok(())
}

/// `minik up`; returns the process exit code.
pub fn up(cfg: ClusterConfig, vm_args: &VmArgs) -> anyhow::Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("minik up needs root (it creates network and mount namespaces); run it as root");
    }
    cfg.validate()?;
    let vms = VmConfig::from_args(&cfg, vm_args)?;
    check_binaries(&cfg.bin_dir)?;
    nodes::check_images(&cfg.images)?;
    let layout = cfg.layout();
    if let Some(pid) = running_keeper(&layout) {
        eprintln!(
            "minik: a cluster already runs in {} (keeper pid {pid}); use it (export KUBECONFIG={}), or `minik down` first",
            cfg.state_dir.display(),
            layout.host_kubeconfig().display()
        );
        return Ok(1);
    }
    if layout.config().exists() || layout.keeper_pid().exists() {
        println!("removing what a cluster that is no longer running left in {} ...", cfg.state_dir.display());
        down::cleanup(&layout)?;
    }
    // The port first: a refused `up` leaves no state behind.
    let listener = std::net::TcpListener::bind(("127.0.0.1", cfg.api_port)).with_context(|| {
        format!("cannot listen on 127.0.0.1:{} for the API; pick a free port with --api-port", cfg.api_port)
    })?;
    std::fs::create_dir_all(layout.logs()).with_context(|| format!("cannot create {}", layout.logs().display()))?;
    cfg.save()?;
    vms.save(&layout)?;
    // Follow only this boot's progress.
    let _ = std::fs::remove_file(layout.progress());
    let mut child = spawn_keeper(&cfg, &listener)?;
    drop(listener);
    std::fs::write(layout.keeper_pid(), child.id().to_string()).context("cannot write keeper.pid")?;

    let vm_note = if vms.count > 0 { format!(" and {} VM nodes", vms.count) } else { String::new() };
    println!("minik: booting {} nodes{vm_note} in {} (logs: {})", cfg.nodes, cfg.state_dir.display(), layout.logs().display());
    let t0 = Instant::now();
    let mut follower = Follower::new(&layout.progress());
    let mut warned = false;
    let end = t0 + Duration::from_secs(600);
    loop {
        for ev in follower.poll() {
            if let Some(text) = render(&ev) {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            match ev {
                Event::Warn { .. } => warned = true,
                Event::Ready => {
                    summary(&cfg, t0.elapsed(), warned);
                    return Ok(0);
                }
                Event::Fail { .. } => {
                    let _ = child.wait();
                    eprintln!("minik: the boot failed; logs in {}; clean up with `minik down`", layout.logs().display());
                    return Ok(1);
                }
                _ => {}
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            let log = crate::procs::tail(&layout.logs().join("keeper.log"), 10);
            bail!("the keeper ended ({st}) before the cluster was up; its log ends with:\n{log}");
        }
        if Instant::now() >= end {
            bail!("the cluster is not up after 10 minutes; see {}", layout.logs().display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_keeper(cfg: &ClusterConfig, listener: &std::net::TcpListener) -> anyhow::Result<std::process::Child> {
    let layout = cfg.layout();
    let exe = std::env::current_exe().context("cannot find the minik executable")?;
    let host_netns = std::fs::read_link("/proc/self/ns/net").context("cannot read /proc/self/ns/net")?;
    let log_path = layout.logs().join("keeper.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--propagation", "private", "--"]).arg(exe).arg("sandbox").arg("--state-dir").arg(&cfg.state_dir);
    cmd.env("MINIK_HOST_NETNS", host_netns).current_dir(&cfg.state_dir);
    cmd.stdin(Stdio::null()).stdout(log.try_clone().context("log file")?).stderr(log);
    let fd = listener.as_raw_fd();
    // SAFETY: setsid, dup2 and fcntl are async-signal-safe and allocate nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if fd == LISTEN_FD {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, LISTEN_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().context("cannot start the keeper (unshare, from util-linux)")
}

fn summary(cfg: &ClusterConfig, took: Duration, warned: bool) {
    let layout = cfg.layout();
    let dir_flag = if cfg.state_dir == Path::new(crate::config::DEFAULT_STATE_DIR) {
        String::new()
    } else {
        format!(" --state-dir {}", cfg.state_dir.display())
    };
    println!();
    println!(
        "cluster up in {:.1}s{}: {} nodes ({} .. {}), ext {}",
        took.as_secs_f64(),
        if warned { " (with parts NOT READY, see above)" } else { "" },
        cfg.nodes,
        cfg.node_ip(1),
        cfg.node_ip(cfg.nodes),
        cfg.ext_ip()
    );
    println!();
    println!("  export KUBECONFIG={}   # server https://127.0.0.1:{}", layout.host_kubeconfig().display(), cfg.api_port);
    println!("  kubectl get nodes -o wide");
    if cfg.demo {
        println!("  kubectl -n {} get pods,svc,ep -o wide", demo::NAMESPACE);
    }
    println!("  minik{dir_flag} shell            # a shell on ext, a host on the underlay that is not a node");
    println!("      wget -qO- {}:30002/demo/hello", cfg.node_ip(1));
    println!("  minik{dir_flag} shell node2      # a shell on a node (nft list ruleset, ip route)");
    if cfg.demo {
        println!("  minik{dir_flag} trace svc/api-service -n {}", demo::NAMESPACE);
    }
    println!("  minik{dir_flag} down");
}
