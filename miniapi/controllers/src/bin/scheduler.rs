//! `minik-scheduler --kubeconfig F`

use std::path::PathBuf;

use clap::Parser;

/// Schedules pods onto nodes through a Kubernetes API server.
#[derive(Parser, Debug)]
#[command(name = "minik-scheduler", version)]
struct Args {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The schedulerName of the pods to schedule.
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    minik_controllers::init_tracing(args.log_json);
    let client = minik_controllers::client(args.kubeconfig.as_deref()).await?;
    let opts = minik_controllers::SchedulerOptions {
        scheduler_name: args.scheduler_name,
    };
    tokio::select! {
        _ = minik_controllers::scheduler::run(client, opts) => {
            anyhow::bail!("scheduler watches ended");
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted, exiting");
        }
    }
    Ok(())
}
