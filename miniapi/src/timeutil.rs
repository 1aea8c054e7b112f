//! Time helpers: RFC 3339 timestamps as the API server writes them, and
//! `HumanDuration` as `kubectl`/the server print ages (k8s.io/apimachinery/pkg/util/duration).

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    unix_micros() / 1_000_000
}

/// The current time, truncated to whole seconds, in RFC 3339 (`2024-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    Timestamp::from_second(unix_seconds())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// The current time with microseconds (for `MicroTime` fields such as Lease renewTime).
pub fn now_micro_rfc3339() -> String {
    match Timestamp::from_microsecond(unix_micros()) {
        Ok(t) => format!("{t:.6}"),
        Err(_) => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

/// Seconds elapsed since an RFC 3339 timestamp, or `None` when it does not parse.
pub fn seconds_since(ts: &str) -> Option<i64> {
    let t: Timestamp = ts.parse().ok()?;
    Some(unix_seconds() - t.as_second())
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp, else a human duration.
pub fn age(ts: Option<&str>) -> String {
    match ts.and_then(seconds_since) {
        Some(s) => human_duration(s),
        None => "<unknown>".to_string(),
    }
}

/// `duration.HumanDuration` from apimachinery, for a number of seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(9 * 3600), "9h");
        assert_eq!(human_duration(50 * 3600), "2d2h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn now_is_rfc3339() {
        let n = now_rfc3339();
        assert!(n.ends_with('Z'));
        assert!(seconds_since(&n).is_some_and(|s| (0..5).contains(&s)));
    }
}
