//! The build's timestamp: `SOURCE_DATE_EPOCH` (or 0), and its RFC 3339 form.

use anyhow::{Context, Result};

/// The reproducible-builds timestamp: `SOURCE_DATE_EPOCH` if set (seconds since the
/// epoch), else 0.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<u64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")),
        _ => Ok(0),
    }
}

/// Formats seconds since the epoch as RFC 3339 in UTC, e.g. `1970-01-01T00:00:00Z`
/// (with `jiff`, the date library k8s-openapi uses, rather than calendar arithmetic of
/// our own).
pub fn rfc3339(secs: u64) -> String {
    let ts = i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    format!("{ts:.0}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
