//! `mongod`: the demo-db server. Parses mongod's command line (unknown options are
//! ignored with a warning), serves until SIGTERM or SIGINT, then exits 0.

use anyhow::{Context, Result};
use demo_db::args::{self, Parsed};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("exception in initAndListen: {e:#}, terminating");
            1
        }
    };
    std::process::exit(code);
}

fn run() -> Result<()> {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return Ok(());
        }
        Ok(Parsed::Version) => {
            println!("{}", demo_db::version_line());
            return Ok(());
        }
        Err(e) => {
            eprint!("{}", args::USAGE);
            return Err(e).context("bad command line");
        }
    };
    for ignored in &opts.ignored {
        tracing::warn!("ignoring option {ignored:?}: the demo-db stand-in does not implement it");
    }
    if !opts.httpinterface && !opts.no_http {
        tracing::info!("--httpinterface not given: the stand-in serves the HTTP interface anyway");
    }
    tracing::info!(
        "MongoDB starting: pid={} port={} dbpath={} ({})",
        std::process::id(),
        opts.port,
        opts.dbpath.display(),
        demo_db::version_line()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let running = demo_db::server::start(opts).await?;
        running.run_until(shutdown_signal()).await?;
        tracing::info!("dbexit: really exiting now");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("got signal 15 (Terminated), will terminate after current cmd ends"),
                _ = int.recv() => tracing::info!("got signal 2 (Interrupt), will terminate after current cmd ends"),
            }
        }
        _ => {
            tracing::warn!("cannot watch for signals; running until killed");
            std::future::pending::<()>().await;
        }
    }
}
