//! `minik shell [ext|nodeN] [-- CMD…]`: joins the keeper's mount namespace and the
//! chosen host's network namespace (both through `/proc/<keeper>/…`), then runs `$SHELL`
//! or the command in place of this process. On a VM node, the command runs in the VM
//! through its agent ([`crate::agent`]). Runs before any thread is started: joining a
//! mount namespace needs a single-threaded process.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sched::{setns, CloneFlags};

use crate::cgroups::ClusterCgroups;
use crate::config::ClusterConfig;
use crate::keeper::cgroups_file;
use crate::network::{EXT, UNDERLAY};
use crate::state::running_keeper;
use crate::vm::VmNode;

/// Runs the shell or command; returns only on error.
pub fn shell(state_dir: &Path, host: &str, command: &[OsString]) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    let Some(pid) = running_keeper(&layout) else {
        bail!("the cluster in {} is not running; start it with `minik up`", state_dir.display());
    };
    if let Some(vm) = crate::vm::VmConfig::load(&layout)?.find(&cfg, host) {
        return vm_shell(&vm, command);
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

/// How long a command in a VM may run.
const VM_COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// A VM node: the command through its agent (exits with the command's code), or, with
/// no command, a line-by-line shell (each line runs as `sh -c LINE` in the VM).
fn vm_shell(vm: &VmNode, command: &[OsString]) -> anyhow::Result<()> {
    let argv: Vec<String> = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    if !argv.is_empty() {
        let code = run_in_vm(vm, &argv)?;
        std::process::exit(code);
    }
    eprintln!("minik: commands on the VM {} through its agent, one line at a time (no terminal: no editors, no job control); Ctrl-D to leave", vm.name);
    let stdin = std::io::stdin();
    loop {
        eprint!("[minik {}]# ", vm.name);
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
            eprintln!();
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = run_in_vm(vm, &["sh".into(), "-c".into(), line.trim().to_string()]) {
            eprintln!("minik: {e:#}");
        }
    }
}

/// Runs `argv` in the VM, copies its output to ours; returns its exit code.
fn run_in_vm(vm: &VmNode, argv: &[String]) -> anyhow::Result<i32> {
    let out = vm.run(argv, VM_COMMAND_LIMIT).with_context(|| format!("cannot run the command on {}", vm.name))?;
    std::io::stdout().write_all(&out.stdout).context("writing stdout")?;
    std::io::stderr().write_all(&out.stderr).context("writing stderr")?;
    let _ = std::io::stdout().flush();
    Ok(out.code)
}
