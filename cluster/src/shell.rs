//! `minik shell [ext|nodeN] [-- CMD…]`: joins the keeper's mount namespace and the
//! chosen host's network namespace (both through `/proc/<keeper>/…`), then runs `$SHELL`
//! or the command in place of this process. Runs before any thread is started: joining a
//! mount namespace needs a single-threaded process.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use nix::sched::{setns, CloneFlags};

use crate::cgroups::ClusterCgroups;
use crate::config::ClusterConfig;
use crate::keeper::cgroups_file;
use crate::network::{EXT, UNDERLAY};
use crate::state::running_keeper;

/// Runs the shell or command; returns only on error.
pub fn shell(state_dir: &Path, host: &str, command: &[OsString]) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    let Some(pid) = running_keeper(&layout) else {
        bail!("the cluster in {} is not running; start it with `minik up`", state_dir.display());
    };
    if crate::vm::VmConfig::load(&layout)?.names().iter().any(|v| v == host) {
        bail!(
            "{host} is a VM node, with no shell from here yet; its console log is {}, its services' logs are in {}; reach it over the underlay from `minik shell ext`",
            layout.logs().join(format!("{host}-console.log")).display(),
            layout.node_dir(host).join("logs").display()
        );
    }
    if host != EXT && host != UNDERLAY && cfg.node_index(host).is_none() {
        bail!("no host {host:?}: choose ext, underlay or one of {}", cfg.node_names().join(", "));
    }
    let net_path = format!("/proc/{pid}/root/run/netns/{host}");
    let net = std::fs::File::open(&net_path).with_context(|| format!("cannot open {host}'s network namespace ({net_path})"))?;
    let mnt_path = format!("/proc/{pid}/ns/mnt");
    let mnt = std::fs::File::open(&mnt_path).with_context(|| format!("cannot open the sandbox's mount namespace ({mnt_path})"))?;
    if cfg.node_index(host).is_some() {
        // Join the node's cgroup, as a login on the node would: `minilet exec` and friends
        // find pods' cgroups relative to their own.
        let cgroups = ClusterCgroups::load(&cgroups_file(&layout));
        for dir in &cgroups.dirs {
            let _ = std::fs::write(dir.join(host).join("cgroup.procs"), std::process::id().to_string());
        }
    }
    let cwd = std::env::current_dir().ok();
    setns(net.as_fd(), CloneFlags::CLONE_NEWNET).with_context(|| format!("cannot enter {host}'s network namespace"))?;
    setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS).context("cannot enter the sandbox's mount namespace")?;
    // The new mount namespace starts at its root; go back to the same directory.
    let _ = std::env::set_current_dir(cwd.as_deref().unwrap_or(Path::new("/")));
    let (prog, args): (OsString, Vec<OsString>) = match command.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => (std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()), Vec::new()),
    };
    let mut cmd = Command::new(&prog);
    cmd.args(&args)
        .env("MINIK_HOST", host)
        .env("KUBECONFIG", layout.inner_kubeconfig())
        .env("PS1", format!("[minik {host}] \\w# "));
    if command.is_empty() {
        eprintln!(
            "minik: a shell on {host} (exit to leave); nodes are {}..{}, NodePorts answer on each, e.g. wget -qO- {}:30002/demo/hello",
            cfg.node_ip(1),
            cfg.node_ip(cfg.nodes),
            cfg.node_ip(1)
        );
    }
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot run {}", prog.to_string_lossy()))
}
