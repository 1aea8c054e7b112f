//! The `metav1.Status` documents of the error channel (v4 and later), as the kubelet
//! writes them: `Success`, `Failure` with reason `NonZeroExitCode` and an `ExitCode`
//! cause (kubectl exits with that code), or `Failure` with `InternalError`.

use serde_json::json;

/// `{"metadata":{},"status":"Success"}`.
pub fn success() -> Vec<u8> {
    json!({"metadata": {}, "status": "Success"}).to_string().into_bytes()
}

/// The status of a command that exited with `code` (non-zero).
pub fn exit_code(code: i32) -> Vec<u8> {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
    .to_string()
    .into_bytes()
}

/// The status for an exit code: success for 0.
pub fn for_exit(code: i32) -> Vec<u8> {
    if code == 0 {
        success()
    } else {
        exit_code(code)
    }
}

/// A failure that is not an exit code (kubectl prints `error: MESSAGE`).
pub fn failure(message: &str) -> Vec<u8> {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let v: serde_json::Value = serde_json::from_slice(&for_exit(3)).expect("json");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_slice(&for_exit(0)).expect("json");
        assert_eq!(ok["status"], "Success");
        let f: serde_json::Value = serde_json::from_slice(&failure("boom")).expect("json");
        assert_eq!(f["message"], "boom");
    }
}
