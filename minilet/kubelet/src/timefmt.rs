//! RFC 3339 timestamps (UTC): what the CRI log format and the Kubernetes API write.
//! Formatting is `jiff`'s (the date library k8s-openapi itself uses).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn timestamp(t: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// `2026-12-04T19:52:16.123456789Z`
pub fn rfc3339_nano(t: SystemTime) -> String {
    format!("{:.9}", timestamp(t))
}

/// `2026-12-04T19:52:16Z`
pub fn rfc3339(t: SystemTime) -> String {
    format!("{:.0}", timestamp(t))
}

/// Seconds since the epoch, for state files.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Back from [`unix`].
pub fn from_unix(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_796_413_936, 5);
        assert_eq!(rfc3339_nano(t), "2026-12-04T19:52:16.000000005Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
