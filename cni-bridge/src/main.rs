//! The cni-bridge binary: a CNI plugin when a runtime runs it (`CNI_COMMAND` set), and
//! `cni-bridge routes …` for scripts that reconcile the node's routes to other nodes.
//!
//! Thin on purpose: the verbs live in the library (`cni_bridge::cmd`).

use std::io::{Read, Write};
use std::process::ExitCode;

use minik_shared::cni::{CniError, CniVersion, PluginEnv};

mod routes_cli;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CNI_BRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("routes") {
        return routes_cli::main(&args[1..]);
    }
    if std::env::var_os("CNI_COMMAND").is_none() && args.len() > 1 {
        eprintln!(
            "cni-bridge is a CNI plugin: a CNI runtime runs it with CNI_COMMAND and the network config on stdin.\n\
             For the node routes, run: cni-bridge routes --help"
        );
        return ExitCode::from(2);
    }
    plugin_main()
}

fn plugin_main() -> ExitCode {
    let mut stdin = Vec::new();
    let outcome = PluginEnv::from_process().and_then(|env| {
        // Read stdin for every verb (VERSION too), so a runtime never sees a broken pipe.
        std::io::stdin()
            .read_to_end(&mut stdin)
            .map_err(|e| CniError::io("cannot read the network config from stdin").with_details(e))?;
        cni_bridge::cmd::run(&env, &stdin)
    });
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            // The error's version: the config's when it parsed that far, else the newest.
            let version = serde_json::from_slice::<serde_json::Value>(&stdin)
                .ok()
                .and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(String::from))
                .filter(|v| v.parse::<CniVersion>().is_ok())
                .unwrap_or_else(|| CniVersion::LATEST.as_str().to_string());
            let e = e.for_version(&version);
            tracing::debug!(code = e.code, msg = %e.msg, "CNI error");
            let _ = writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}
