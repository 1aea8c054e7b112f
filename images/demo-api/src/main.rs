//! demo-api: the course's go-demo-2 rewritten in Rust. An HTTP API on 8080 whose
//! `/demo/person` lives in the database named by `DB`.
//!
//! Like go-demo-2 it refuses to run without its database: at start it asks the
//! database's REST root for a few seconds (`DB_WAIT`, default 5) and exits 1 with the
//! reason if it gets no answer, so a Running and Ready API proves the path to the db.
//! SIGTERM or SIGINT: stop accepting, finish requests in flight, exit 0.

mod config;
mod db;
mod routes;
use demo_http as serve;

use std::sync::Arc;

use anyhow::{Context, Result};

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
    if let Err(e) = run() {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cfg = config::Config::from_env(|k| std::env::var(k).ok())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: config::Config) -> Result<()> {
    let db = Arc::new(db::Db::new(cfg.db.clone()));
    tracing::info!("connecting to the database at {}", cfg.db);
    db.wait_reachable(cfg.db_wait)
        .await
        .with_context(|| format!("cannot reach the database at {} (set DB to its host or host:port)", cfg.db))?;
    tracing::info!("the database at {} answers", cfg.db);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    tracing::info!("listening on {}", listener.local_addr()?);
    serve::serve(listener, routes::router(db), shutdown_signal()).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        _ => {
            tracing::warn!("cannot watch for signals; running until killed");
            std::future::pending::<()>().await;
        }
    }
}
