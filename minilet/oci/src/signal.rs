//! Signal names as `kill` takes them: `TERM`, `SIGTERM`, `sigkill`, `15`,
//! `RTMIN+3`, `SIGRTMAX-1`.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// Parses a signal name or number into its number.
pub fn parse(s: &str) -> Result<i32> {
    let bad = || Error::Other(format!("invalid signal {s:?}"));
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt_offset(rest, libc::SIGRTMIN(), 1).ok_or_else(bad);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt_offset(rest, libc::SIGRTMAX(), -1).ok_or_else(bad);
    }
    Signal::from_str(&format!("SIG{name}"))
        .map(|sig| sig as i32)
        .map_err(|_| bad())
}

/// `+N` after RTMIN or `-N` after RTMAX (`dir` is the allowed sign).
fn rt_offset(rest: &str, base: i32, dir: i32) -> Option<i32> {
    if rest.is_empty() {
        return Some(base);
    }
    let n: i32 = match dir {
        1 => rest.strip_prefix('+')?.parse().ok()?,
        _ => rest.strip_prefix('-')?.parse().ok()?,
    };
    let sig = base + dir * n;
    (libc::SIGRTMIN()..=libc::SIGRTMAX())
        .contains(&sig)
        .then_some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("hup").unwrap(), libc::SIGHUP);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        assert_eq!(parse("RTMIN").unwrap(), libc::SIGRTMIN());
    }

    #[test]
    fn bad_signals() {
        for s in ["", "0", "99", "NOPE", "RTMIN-1", "RTMAX+1", "-9"] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains("invalid signal"), "{s}: {e}");
        }
    }
}
