//! `exec ID [--process process.json | -- CMD ARGS…]` with `--detach`, `--pid-file`,
//! `--tty`/`--console-socket`, `--cwd`, `--env`, `--user`, `--no-new-privs`.

use std::path::PathBuf;

use clap::Args;
use minik_oci::{config, ExecOptions, Runtime};

/// Flags of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json (OCI process object) instead of a command.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Give the process a terminal (needs --console-socket).
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment (KEY=VALUE), repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass N extra fds (3..3+N).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

/// Runs `exec`.
pub fn run(rt: &Runtime, a: ExecArgs) -> anyhow::Result<i32> {
    let mut process = match &a.process {
        Some(path) => config::load_process(path)?,
        None => {
            anyhow::ensure!(!a.command.is_empty(), "exec needs a command (or --process)");
            rt.exec_process(&a.id, a.command.clone())?
        }
    };
    if a.tty {
        process.set_terminal(Some(true));
    }
    if let Some(cwd) = &a.cwd {
        process.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        process.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let mut user = process.user().clone();
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow::anyhow!("--user {u:?}: uid[:gid] expected"))?,
        );
        user.set_gid(
            gid.parse()
                .map_err(|_| anyhow::anyhow!("--user {u:?}: uid[:gid] expected"))?,
        );
        process.set_user(user);
    }
    if a.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    let opts = ExecOptions {
        detach: a.detach,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        preserve_fds: a.preserve_fds,
        stdio: None,
    };
    let r = rt.exec(&a.id, &process, &opts)?;
    Ok(r.exit_code.unwrap_or(0))
}
