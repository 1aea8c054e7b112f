//! The OCI runtime as minilet drives it: through runc's command line, so minik-oci, crun
//! and runc are interchangeable (`runtime:` in the config). Creation and start go through
//! the shim ([`crate::shim`]); this module covers the verbs minilet runs directly.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// One OCI runtime binary with its state root.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    /// The binary.
    pub bin: PathBuf,
    /// Its `--root`.
    pub root: PathBuf,
}

impl OciRuntime {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run the OCI runtime {}: {e}", self.bin.display()))
    }

    /// Sends a signal (`TERM`, `KILL`, …) to the container's init process.
    pub fn kill(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        let out = self.run(&["kill", id, signal])?;
        if out.status.success() {
            Ok(())
        } else {
            anyhow::bail!("{} kill {id} {signal}: {}", self.bin.display(), String::from_utf8_lossy(&out.stderr).trim())
        }
    }

    /// Deletes the container (`--force` kills it first); a container the runtime does not
    /// know is fine.
    pub fn delete(&self, id: &str, force: bool) -> anyhow::Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        let out = self.run(&args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("does not exist") || err.contains("not found") {
            Ok(())
        } else {
            anyhow::bail!("{} delete {id}: {}", self.bin.display(), err.trim())
        }
    }

    /// The container's status (`created`, `running`, `stopped`), or `None` if unknown.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.run(&["state", id]).ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.get("status").and_then(|s| s.as_str()).map(String::from)
    }

    /// Runs a command in the container and returns its output; `timeout` bounds it (the
    /// process is killed when it runs over).
    pub fn exec(&self, id: &str, argv: &[String], timeout: Option<Duration>) -> anyhow::Result<Output> {
        let mut c = self.cmd();
        c.arg("exec").arg(id).args(argv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| anyhow::anyhow!("cannot run {}: {e}", self.bin.display()))?;
        let Some(limit) = timeout else {
            return Ok(child.wait_with_output()?);
        };
        let deadline = std::time::Instant::now() + limit;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(child.wait_with_output()?);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("command timed out after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `exec` with the caller's stdio (for `minilet exec`); returns the exit code.
    pub fn exec_interactive(&self, id: &str, argv: &[String], tty: bool) -> anyhow::Result<i32> {
        let mut c = self.cmd();
        c.arg("exec");
        if tty {
            c.arg("--tty");
        }
        let st = c.arg(id).args(argv).status().map_err(|e| anyhow::anyhow!("cannot run {}: {e}", self.bin.display()))?;
        Ok(st.code().unwrap_or(128 + 9))
    }
}
