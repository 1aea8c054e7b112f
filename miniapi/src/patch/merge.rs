//! JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything
//! else (arrays included) replaces.

use serde_json::Value;

/// Apply a merge patch.
pub fn merge(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => serde_json::Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        let p = json!({"a": "z", "c": {"f": null}});
        assert_eq!(merge(&t, &p), json!({"a": "z", "c": {"d": "e"}}));
        assert_eq!(
            merge(&json!({"a": [1]}), &json!({"a": [2]})),
            json!({"a": [2]})
        );
    }
}
