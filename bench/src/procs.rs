//! Processes as /proc shows them: finding the ones a benchmark started (by what their
//! command line contains, never by a bare name, so other test runs on the machine are
//! not counted), and their memory.
//!
//! Memory is read two ways: RSS (`VmRSS` in `/proc/PID/status`: every resident page the
//! process maps, shared library pages included, so a sum over many processes of the same
//! binary counts those pages many times) and PSS (`Pss` in `/proc/PID/smaps_rollup`:
//! each shared page divided among the processes that map it, so PSS sums add up to what
//! the processes really cost together). `VmHWM` is the peak RSS.

use std::path::Path;

/// One process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    /// Resident set size (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub hwm_kib: u64,
    /// Proportional set size (`Pss` of smaps_rollup), when the kernel has it.
    pub pss_kib: Option<u64>,
}

impl Mem {
    /// The sum of several processes' memory (peaks summed too).
    pub fn sum(all: &[Mem]) -> Mem {
        Mem {
            rss_kib: all.iter().map(|m| m.rss_kib).sum(),
            hwm_kib: all.iter().map(|m| m.hwm_kib).sum(),
            pss_kib: all.iter().map(|m| m.pss_kib).sum(),
        }
    }
}

/// The value in KiB of a `Key:   123 kB` line of a /proc file.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The memory of process `pid`, or `None` when it is gone.
pub fn mem(pid: i32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok().and_then(|t| kib_field(&t, "Pss"));
    Some(Mem { rss_kib: kib_field(&status, "VmRSS")?, hwm_kib: kib_field(&status, "VmHWM").unwrap_or(0), pss_kib: pss })
}

/// A process's command line, split at the NULs (empty for kernel threads and zombies).
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .unwrap_or_default()
}

/// Whether `argv[0]`'s file name is `name`.
pub fn argv0_is(argv: &[String], name: &str) -> bool {
    argv.first().and_then(|a| Path::new(a).file_name()).is_some_and(|f| f == name)
}

/// The PIDs (ascending) whose command line satisfies `pred`.
pub fn find(pred: impl Fn(&[String]) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| pred(&cmdline(*pid)))
        .collect();
    out.sort_unstable();
    out
}

/// KiB as MiB, for printing.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let t = "Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(kib_field(t, "VmRSS"), Some(1024));
        assert_eq!(kib_field(t, "VmHWM"), Some(2048));
        assert_eq!(kib_field(t, "Pss"), None);
    }

    #[test]
    fn finds_itself() {
        let me = std::process::id() as i32;
        assert!(mem(me).is_some_and(|m| m.rss_kib > 0));
        assert!(find(|a| !a.is_empty()).contains(&me));
        assert!(argv0_is(&["/usr/bin/minilet-shim".into()], "minilet-shim"));
        assert!(!argv0_is(&["/usr/bin/minilet".into()], "minilet-shim"));
    }
}
