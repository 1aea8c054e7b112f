//! JSON patch (RFC 6902) via the `json-patch` crate.

use serde_json::Value;

use super::PatchError;

/// Apply an RFC 6902 patch (an array of operations).
pub fn apply(current: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    let mut doc = current.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Failed(e.to_string()))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replace_and_add() {
        let cur = json!({"spec": {"replicas": 1}});
        let p = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}, {"op": "add", "path": "/spec/x", "value": "y"}]);
        let out = apply(&cur, &p).expect("patch");
        assert_eq!(out, json!({"spec": {"replicas": 3, "x": "y"}}));
        assert!(apply(&cur, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
