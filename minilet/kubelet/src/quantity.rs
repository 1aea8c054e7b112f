//! Kubernetes resource quantities (`100m`, `0.5`, `64Mi`, `1G`, `2e3`) as the numbers the
//! runtime needs: CPU in millicores, memory in bytes.

/// Parses a quantity into its value as f64 (base units: cores, bytes).
pub fn parse(q: &str) -> Result<f64, String> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (num, suffix) = if suffix.starts_with(['e', 'E']) && suffix.len() > 1 {
        (q, "")
    } else {
        (num, suffix)
    };
    let n: f64 = num.parse().map_err(|_| format!("{q:?} is not a quantity"))?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        other => return Err(format!("{q:?}: unknown suffix {other:?}")),
    };
    Ok(n * mult)
}

/// CPU in millicores.
pub fn millicores(q: &str) -> Result<u64, String> {
    parse(q).map(|v| (v * 1000.0).round().max(0.0) as u64)
}

/// Memory in bytes.
pub fn bytes(q: &str) -> Result<i64, String> {
    parse(q).map(|v| v.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(millicores("100m"), Ok(100));
        assert_eq!(millicores("0.5"), Ok(500));
        assert_eq!(millicores("2"), Ok(2000));
        assert_eq!(bytes("64Mi"), Ok(64 << 20));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("2e3"), Ok(2000));
        assert!(bytes("12Zi").is_err());
    }
}
