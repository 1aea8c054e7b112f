//! The keeper: the process `minik up` leaves behind. It starts in a fresh network and
//! mount namespace (`unshare --net --mount --propagation private`), makes that a sandbox
//! like `scripts/sandbox.sh` (tmpfs on `/run/netns`, `lo` up), builds the cluster in it
//! step by step ([`crate::boot`], reporting to `progress.jsonl`), then supervises the processes and
//! publishes the API on the host's loopback until SIGTERM (`minik down`), when it stops
//! everything it started. When it and its children are gone, the sandbox's namespaces and
//! mounts go with them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::mount::{mount, MsFlags};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::boot::boot;
use crate::cgroups::{group_name, ClusterCgroups};
use crate::config::{ClusterConfig, Layout};
use crate::procs::Supervisor;
use crate::progress::Reporter;
use crate::vm::VmConfig;
use crate::{forward, network};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether SIGTERM or SIGINT arrived.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The cgroup tree's record, for `down` and `kill`.
pub fn cgroups_file(layout: &Layout) -> std::path::PathBuf {
    layout.root.join("cgroups.json")
}

/// Makes the fresh namespaces a sandbox. Runs before any thread exists.
fn enter_sandbox() -> anyhow::Result<()> {
    let own = std::fs::read_link("/proc/self/ns/net").context("cannot read /proc/self/ns/net")?;
    match std::env::var("MINIK_HOST_NETNS") {
        Ok(host) if Path::new(&host) != own => {}
        _ => bail!("the keeper must start in a network namespace of its own; `minik up` starts it that way"),
    }
    std::fs::create_dir_all("/run/netns").context("cannot create /run/netns")?;
    mount(Some("minik-netns"), "/run/netns", Some("tmpfs"), MsFlags::empty(), Some("mode=0755,size=16m"))
        .context("cannot mount a tmpfs on /run/netns in the sandbox")?;
    mount(None::<&str>, "/run/netns", None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
        .context("cannot make /run/netns shared")?;
    network::ip(&["link", "set", "lo", "up"])?;
    Ok(())
}

fn install_signals() -> anyhow::Result<()> {
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }.with_context(|| format!("cannot handle {sig}"))?;
    }
    Ok(())
}

/// `minik sandbox`: the keeper's whole life. Returns when the cluster is down again.
pub fn run(state_dir: &Path) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    // Take the listening socket first: it was bound in the host's namespace by `up`.
    // SAFETY: `up` passes its listening socket on LISTEN_FD and nothing else uses that fd.
    let listener = unsafe {
        if libc::fcntl(forward::LISTEN_FD, libc::F_GETFD) < 0 {
            bail!("no listening socket on fd {}; `minik up` passes one", forward::LISTEN_FD);
        }
        forward::inherited(forward::LISTEN_FD)
    };
    enter_sandbox()?;
    install_signals()?;
    std::fs::write(layout.keeper_pid(), std::process::id().to_string()).context("cannot write keeper.pid")?;
    let vms = VmConfig::load(&layout)?;
    let steps = crate::boot::steps(&cfg, &vms);
    let mut progress = Reporter::create(&layout.progress(), steps)?;
    progress.step("sandbox: private network and mount namespaces");
    let cgroups = ClusterCgroups::create(&group_name(&cfg.state_dir));
    cgroups.save(&cgroups_file(&layout))?;
    progress.ok(&format!("keeper pid {}", std::process::id()));

    let sup = Supervisor::new(layout.processes(), layout.logs(), cgroups.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("async runtime")?;
    let code = match boot(&cfg, &vms, &mut progress, &sup, &rt, listener) {
        Ok(accel) => {
            progress.ready();
            tracing::info!("cluster up; supervising until SIGTERM");
            while !stopping() {
                sup.reap();
                crate::restart::serve(&cfg, &vms, accel, &sup);
                std::thread::sleep(Duration::from_millis(300));
            }
            0
        }
        Err(e) => {
            progress.fail(&format!("{e:#}"));
            1
        }
    };
    tracing::info!("stopping the cluster");
    // Everything is removed afterwards, so a short grace: whatever has not exited by then
    // (minilet and miniapi with open watches often have not) gets SIGKILL.
    sup.stop_all(Duration::from_secs(2));
    let left = cgroups.kill_all(None, Duration::from_secs(5));
    if left > 0 {
        tracing::warn!(left, "processes still in the cluster's cgroup");
    }
    for dir in cgroups.remove(Duration::from_secs(3)) {
        tracing::warn!(dir = %dir.display(), "cgroup not removed");
    }
    rt.shutdown_timeout(Duration::from_millis(500));
    let _ = std::fs::remove_file(layout.keeper_pid());
    tracing::info!("keeper done");
    std::process::exit(code);
}
