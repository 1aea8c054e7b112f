//! Canonical JSON: every object's keys sorted, compact output.
//!
//! `oci-spec` keeps labels, annotations and ExposedPorts in `HashMap`s, whose order
//! changes from run to run; blobs must not, so everything is serialized through here.

use serde::Serialize;
use serde_json::{Map, Value};

/// Serializes `value` with every object's keys in sorted order, without whitespace.
pub fn to_vec<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    serde_json::to_vec(&sorted(v))
}

/// Like [`to_vec`], pretty-printed, with a trailing newline (for `index.json`, which
/// people read).
pub fn to_vec_pretty<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    let mut out = serde_json::to_vec_pretty(&sorted(v))?;
    out.push(b'\n');
    Ok(out)
}

/// Rebuilds `v` with every object's keys inserted in sorted order. This is right
/// whether or not serde_json's `preserve_order` feature is on somewhere in the build.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut inner = HashMap::new();
        for k in ["zeta", "alpha", "mid", "beta", "omega"] {
            inner.insert(k.to_string(), 1);
        }
        let mut outer = HashMap::new();
        outer.insert("b".to_string(), vec![inner.clone()]);
        outer.insert("a".to_string(), vec![inner]);
        let s = String::from_utf8(to_vec(&outer).unwrap()).unwrap();
        assert_eq!(
            s,
            r#"{"a":[{"alpha":1,"beta":1,"mid":1,"omega":1,"zeta":1}],"b":[{"alpha":1,"beta":1,"mid":1,"omega":1,"zeta":1}]}"#
        );
    }
}
