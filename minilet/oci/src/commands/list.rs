//! `list [--format table|json] [--quiet]`.

use clap::Args;
use minik_oci::Runtime;

/// Flags of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print ids only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `list`.
pub fn run(rt: &Runtime, a: ListArgs) -> anyhow::Result<i32> {
    let all = rt.list()?;
    if a.quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&all)?),
        "table" => {
            println!(
                "{:<20} {:>8} {:<10} {:<40} CREATED",
                "ID", "PID", "STATUS", "BUNDLE"
            );
            for s in &all {
                println!(
                    "{:<20} {:>8} {:<10} {:<40} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created
                );
            }
        }
        f => anyhow::bail!("invalid format {f:?} (table or json)"),
    }
    Ok(0)
}
