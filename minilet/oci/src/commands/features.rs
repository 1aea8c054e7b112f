//! `features`: the runtime-spec features JSON.

/// Runs `features`.
pub fn run() -> anyhow::Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&minik_oci::features::features())?
    );
    Ok(0)
}
