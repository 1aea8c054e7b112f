//! `ps ID [--format table|json]`.

use clap::Args;
use minik_oci::{procfs, Runtime};

/// Flags of `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// The container id.
    pub id: String,
    /// Output format: table or json (a JSON array of pids, as runc prints).
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Accepted for compatibility (runc passes these to ps(1)); ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Runs `ps`.
pub fn run(rt: &Runtime, a: PsArgs) -> anyhow::Result<i32> {
    let pids = rt.ps(&a.id)?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            println!("{:>8}  CMD", "PID");
            for p in pids {
                println!("{p:>8}  {}", procfs::comm(p));
            }
        }
        f => anyhow::bail!("invalid format {f:?} (table or json)"),
    }
    Ok(0)
}
