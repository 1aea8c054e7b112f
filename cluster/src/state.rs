//! What is running for a state dir: the keeper (by its PID file, checked against the
//! process's command line so a reused PID is not mistaken for it).

use crate::config::Layout;
use crate::procs::alive;

/// The keeper's PID when it is running.
pub fn running_keeper(layout: &Layout) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(layout.keeper_pid()).ok()?.trim().parse().ok()?;
    if !alive(pid) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let root = layout.root.display().to_string();
    (args.iter().any(|a| a == "sandbox") && args.contains(&root)).then_some(pid)
}

/// Whether `pid`'s command line mentions `needle` (a state dir path).
pub fn cmdline_mentions(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}
