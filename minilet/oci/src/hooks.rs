//! OCI hooks: each runs as `path` with `args` (args[0] is argv[0]) and `env`, the
//! container's state JSON on stdin, within its `timeout`. prestart/createRuntime/
//! createContainer/startContainer failures fail the container; poststart and poststop
//! failures are logged.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::container::OciState;
use crate::error::{Error, Result};

/// The points at which hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Deprecated alias of createRuntime, run just before it.
    Prestart,
    /// In the runtime namespace, after namespaces exist, before pivot_root.
    CreateRuntime,
    /// In the container namespace, before pivot_root.
    CreateContainer,
    /// In the container, just before the user process is executed.
    StartContainer,
    /// In the runtime namespace, after the user process started.
    Poststart,
    /// In the runtime namespace, after the container is deleted.
    Poststop,
}

impl Kind {
    /// The config.json name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// Every kind, for `features`.
    pub fn all() -> [Kind; 6] {
        use Kind::*;
        [
            Prestart,
            CreateRuntime,
            CreateContainer,
            StartContainer,
            Poststart,
            Poststop,
        ]
    }
}

/// The hooks of one kind in `spec`.
pub fn of(spec: &Spec, kind: Kind) -> &[Hook] {
    let Some(h) = spec.hooks() else { return &[] };
    #[allow(deprecated)]
    let list = match kind {
        Kind::Prestart => h.prestart(),
        Kind::CreateRuntime => h.create_runtime(),
        Kind::CreateContainer => h.create_container(),
        Kind::StartContainer => h.start_container(),
        Kind::Poststart => h.poststart(),
        Kind::Poststop => h.poststop(),
    };
    list.as_deref().unwrap_or_default()
}

/// Runs the hooks of `kind` in order, stopping at the first failure.
pub fn run(spec: &Spec, kind: Kind, state: &OciState) -> Result<()> {
    let hooks = of(spec, kind);
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).map_err(|e| Error::Other(format!("state JSON: {e}")))?;
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, &json).map_err(|e| {
            Error::Hook(format!(
                "{} hook #{i} ({}): {e}",
                kind.name(),
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

/// Runs the hooks of `kind`, logging failures instead of returning them.
pub fn run_logged(spec: &Spec, kind: Kind, state: &OciState) {
    if let Err(e) = run(spec, kind, state) {
        tracing::warn!("{e}");
    }
}

fn run_one(hook: &Hook, state: &[u8]) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t.unsigned_abs()));
    let status = match timeout {
        None => child.wait().map_err(|e| e.to_string())?,
        Some(limit) => {
            let start = Instant::now();
            let mut nap = Duration::from_micros(200);
            loop {
                if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                    break s;
                }
                if start.elapsed() >= limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {}s", limit.as_secs()));
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(50));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    Err(format!("{status}: {}", err.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hooks: &str) -> Spec {
        serde_json::from_str(&format!(r#"{{"ociVersion":"1.0.0","hooks":{hooks}}}"#)).unwrap()
    }

    fn state() -> OciState {
        OciState::new("c1", crate::container::Status::Creating, 42, "/b".into())
    }

    #[test]
    fn hook_gets_state_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let s = spec(&format!(
            r#"{{"createRuntime":[{{"path":"/bin/sh","args":["sh","-c","cat > {}"]}}]}}"#,
            out.display()
        ));
        run(&s, Kind::CreateRuntime, &state()).unwrap();
        let got: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        assert_eq!(got["id"], "c1");
        assert_eq!(got["pid"], 42);
        assert_eq!(got["status"], "creating");
    }

    #[test]
    fn failure_and_timeout_are_reported() {
        let s =
            spec(r#"{"prestart":[{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 2"]}]}"#);
        let e = run(&s, Kind::Prestart, &state()).unwrap_err().to_string();
        assert!(e.contains("prestart hook #0") && e.contains("boom"), "{e}");
        let s = spec(r#"{"poststart":[{"path":"/bin/sleep","args":["sleep","5"],"timeout":1}]}"#);
        let e = run(&s, Kind::Poststart, &state()).unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(run(&s, Kind::Poststop, &state()).is_ok());
    }
}
