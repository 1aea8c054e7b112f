//! The `minilet` command: `run` starts the node agent; the other subcommands are for a
//! person on the node (pods, logs, exec, images).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use minilet::config::KubeletConfig;

/// minik's kubelet.
#[derive(Parser, Debug)]
#[command(name = "minilet", version)]
struct Cli {
    /// Config file (YAML); every key has a default.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Override the config's rootDir.
    #[arg(long, global = true)]
    root_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the node agent.
    Run {
        /// Override staticPodPath.
        #[arg(long)]
        static_pod_path: Option<PathBuf>,
        /// Override nodeName.
        #[arg(long)]
        node_name: Option<String>,
    },
    /// List pods: NAME READY STATUS RESTARTS AGE IP.
    Pods {
        /// Print the full pods (with status) as JSON.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Print a container's log.
    Logs {
        /// The pod.
        pod: String,
        /// The container (needed when the pod has several).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// The previous attempt's log.
        #[arg(short = 'p', long)]
        previous: bool,
    },
    /// Run a command in a container.
    Exec {
        /// The pod.
        pod: String,
        /// The container (default: the first).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Allocate a terminal.
        #[arg(short = 't', long)]
        tty: bool,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show a pod's events.
    Events {
        /// The pod.
        pod: String,
    },
    /// Manage the node's images.
    #[command(subcommand)]
    Image(ImageCmd),
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Import an OCI image layout directory or an oci-archive tarball.
    Import {
        /// The layout directory or archive.
        path: PathBuf,
        /// The image name, e.g. demo-api (tags come from the layout).
        #[arg(long)]
        name: String,
    },
    /// List images.
    List,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINILET_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("minilet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut cfg = match &cli.config {
        Some(p) => KubeletConfig::load(p)?,
        None => KubeletConfig::default(),
    };
    if let Some(r) = cli.root_dir {
        cfg.root_dir = r;
    }
    match cli.cmd {
        Cmd::Run { static_pod_path, node_name } => {
            if let Some(p) = static_pod_path {
                cfg.static_pod_path = Some(p);
            }
            if let Some(n) = node_name {
                cfg.node_name = n;
            }
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
            rt.block_on(minilet::daemon::run(cfg))?;
            Ok(0)
        }
        Cmd::Pods { output } => {
            if output.as_deref() == Some("json") {
                println!("{}", serde_json::to_string_pretty(&minilet::cli::pods(&cfg))?);
            } else {
                minilet::cli::print_pods(&cfg);
            }
            Ok(0)
        }
        Cmd::Logs { pod, container, previous } => {
            minilet::cli::print_logs(&cfg, &pod, container.as_deref(), previous)?;
            Ok(0)
        }
        Cmd::Exec { pod, container, tty, command } => {
            let code = minilet::cli::exec(&cfg, &pod, container.as_deref(), &command, tty)?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Cmd::Events { pod } => {
            let p = minilet::cli::find_pod(&cfg, &pod)?;
            let dir = cfg.pods_dir().join(p.metadata.uid.clone().unwrap_or_default());
            println!("{:<22} {:<8} {:<24} MESSAGE", "TIME", "TYPE", "REASON");
            for e in minilet::events::read(&dir) {
                println!("{:<22} {:<8} {:<24} {}", e.time, format!("{:?}", e.kind), e.reason, e.message);
            }
            Ok(0)
        }
        Cmd::Image(ImageCmd::Import { path, name }) => {
            minilet::cli::image_import(&cfg, &path, &name)?;
            Ok(0)
        }
        Cmd::Image(ImageCmd::List) => {
            minilet::cli::image_list(&cfg)?;
            Ok(0)
        }
    }
}
