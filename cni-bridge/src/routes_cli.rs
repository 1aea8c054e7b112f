//! `cni-bridge routes`: reconcile the node's routes to other nodes' pod CIDRs from the
//! command line (the same library call minilet makes when Nodes change).

use std::process::ExitCode;

use clap::Parser;
use minik_shared::netns::NetNs;
use minik_shared::node_routes::{self, NodeRoute};

/// Make this node's minik routes exactly the given set (others' routes are left alone).
#[derive(Parser, Debug)]
#[command(name = "cni-bridge routes")]
struct Args {
    /// Run inside this network namespace (a path such as /run/netns/node1).
    #[arg(long)]
    netns: Option<String>,
    /// Read the routes from a JSON file: [{"dst": "10.244.2.0/24", "via": "192.168.50.12"}, …].
    #[arg(long)]
    file: Option<String>,
    /// Routes as DST=VIA, e.g. 10.244.2.0/24=192.168.50.12. No routes and no file removes all.
    routes: Vec<String>,
}

fn parse_route(s: &str) -> Result<NodeRoute, String> {
    let (dst, via) = s.split_once('=').ok_or_else(|| format!("{s:?}: write routes as DST=VIA, e.g. 10.244.2.0/24=192.168.50.12"))?;
    Ok(NodeRoute {
        dst: dst.parse().map_err(|_| format!("{s:?}: {dst:?} is not a CIDR"))?,
        via: via.parse().map_err(|_| format!("{s:?}: {via:?} is not an IP address"))?,
    })
}

fn desired(args: &Args) -> Result<Vec<NodeRoute>, String> {
    let mut out = Vec::new();
    if let Some(f) = &args.file {
        let bytes = std::fs::read(f).map_err(|e| format!("cannot read {f}: {e}"))?;
        out = serde_json::from_slice(&bytes).map_err(|e| format!("{f}: expected [{{\"dst\", \"via\"}}]: {e}"))?;
    }
    for r in &args.routes {
        out.push(parse_route(r)?);
    }
    Ok(out)
}

/// Entry point; `argv` starts with "routes".
pub fn main(argv: &[String]) -> ExitCode {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cni-bridge routes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let want = desired(args)?;
    let ns = args.netns.as_ref().map(NetNs::open).transpose().map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|e| e.to_string())?;
    let changes = rt.block_on(async {
        let h = match &ns {
            Some(ns) => minik_shared::netlink::connect_in(ns),
            None => minik_shared::netlink::connect(),
        }
        .map_err(|e| e.to_string())?;
        node_routes::reconcile(&h, &want).await.map_err(|e| e.to_string())
    })?;
    for r in &changes.installed {
        println!("installed {} via {}", r.dst, r.via);
    }
    for d in &changes.removed {
        println!("removed {d}");
    }
    if changes.installed.is_empty() && changes.removed.is_empty() {
        println!("routes already up to date ({} routes)", want.len());
    }
    Ok(())
}
