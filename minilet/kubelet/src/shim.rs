//! The container shim (what conmon is to CRI-O): one small process per container that
//! outlives minilet. It becomes a child subreaper, runs the OCI runtime's `create` with
//! pipes as the container's stdout/stderr, then `start`; it copies both pipes into the
//! CRI log file, reaps the container's init process and writes its exit status to a
//! file. minilet can be killed and restarted meanwhile: the shim keeps logging, and the
//! exit file tells the new minilet what happened.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::logs::CriLogWriter;
use crate::timefmt::unix;

/// How the shim is told what to run.
#[derive(Debug, Clone)]
pub struct ShimArgs {
    /// The OCI runtime binary (minik-oci, crun, runc).
    pub runtime: PathBuf,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// The container ID.
    pub id: String,
    /// The bundle directory (holds config.json).
    pub bundle: PathBuf,
    /// The CRI log file.
    pub log: PathBuf,
    /// Rotation size of the log.
    pub log_max_size: u64,
    /// Rotated files kept.
    pub log_max_files: usize,
    /// Where to write the [`ExitRecord`].
    pub exit_file: PathBuf,
    /// Where to write the [`StartRecord`] once the container runs.
    pub start_file: PathBuf,
}

/// Written when the container has started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StartRecord {
    /// The container's init PID (in minilet's PID namespace).
    pub pid: i32,
    /// When `start` returned (seconds since the epoch).
    pub started_at: f64,
}

/// Written when the container is gone (or could not be created or started).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitRecord {
    /// The exit code (128 + signal for a signalled process, as Kubernetes reports it).
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Set when the runtime failed before the process ran: "CreateContainerError" or "StartError".
    pub reason: Option<String>,
    /// What the runtime said, for such failures.
    pub message: Option<String>,
    /// When it exited.
    pub finished_at: f64,
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(v).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Reads a record written by the shim, if present.
pub fn read_record<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

fn fail(args: &ShimArgs, reason: &str, message: String) -> anyhow::Result<()> {
    tracing::warn!(id = %args.id, reason, %message, "container did not start");
    let rec = ExitRecord {
        exit_code: 128,
        signal: None,
        reason: Some(reason.to_string()),
        message: Some(message),
        finished_at: unix(SystemTime::now()),
    };
    write_json(&args.exit_file, &rec)?;
    Ok(())
}

/// The last error the runtime wrote to its `--log` (JSON lines `{"level","msg"}` as runc
/// and crun write them).
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(String::from))
        .filter(|m| !m.is_empty())
}

fn runtime_output(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if s.is_empty() { String::from_utf8_lossy(&out.stdout).trim().to_string() } else { s }
}

fn pump(mut r: impl Read + Send + 'static, stream: &'static str, w: Arc<Mutex<CriLogWriter>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if b == b'\n' {
                    if let Ok(mut w) = w.lock() {
                        let _ = w.write_line(stream, &line, false);
                    }
                    line.clear();
                } else {
                    line.push(b);
                    if line.len() >= 16 * 1024 {
                        if let Ok(mut w) = w.lock() {
                            let _ = w.write_line(stream, &line, true);
                        }
                        line.clear();
                    }
                }
            }
        }
        if !line.is_empty() {
            if let Ok(mut w) = w.lock() {
                let _ = w.write_line(stream, &line, true);
            }
        }
    })
}

/// Runs the container to its end. Returns once the exit record is written.
pub fn run(args: &ShimArgs) -> anyhow::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let writer = Arc::new(Mutex::new(CriLogWriter::open(&args.log, args.log_max_size, args.log_max_files)?));
    let (out_r, out_w) = nix::unistd::pipe()?;
    let (err_r, err_w) = nix::unistd::pipe()?;
    let pid_file = args.bundle.join("init.pid");
    let _ = std::fs::remove_file(&pid_file);
    let runtime_log = args.bundle.join("runtime.log");
    let create = Command::new(&args.runtime)
        .arg("--root")
        .arg(&args.runtime_root)
        .arg("--log")
        .arg(&runtime_log)
        .args(["--log-format", "json"])
        .args(["create", "--bundle"])
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(out_w)))
        .stderr(Stdio::from(OwnedFd::from(err_w)))
        .output();
    // The Command's copies of the write ends are closed now; only the container holds them.
    let pumps = [pump(std::fs::File::from(out_r), "stdout", writer.clone()), pump(std::fs::File::from(err_r), "stderr", writer.clone())];
    match create {
        Ok(o) if o.status.success() => {}
        Ok(o) => return fail(args, "CreateContainerError", runtime_error(&runtime_log).unwrap_or_else(|| runtime_output(&o))),
        Err(e) => return fail(args, "CreateContainerError", format!("cannot run {}: {e}", args.runtime.display())),
    }
    let pid: i32 = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let start = Command::new(&args.runtime).arg("--root").arg(&args.runtime_root).arg("start").arg(&args.id).output();
    match start {
        Ok(o) if o.status.success() => {}
        Ok(o) => return fail(args, "StartError", runtime_output(&o)),
        Err(e) => return fail(args, "StartError", format!("cannot run {}: {e}", args.runtime.display())),
    }
    write_json(&args.start_file, &StartRecord { pid, started_at: unix(SystemTime::now()) })?;

    let (exit_code, signal) = reap(pid);
    for p in pumps {
        let _ = p.join();
    }
    write_json(
        &args.exit_file,
        &ExitRecord { exit_code, signal, reason: None, message: None, finished_at: unix(SystemTime::now()) },
    )?;
    Ok(())
}

/// Reaps children until the container's init process is gone; returns (code, signal).
fn reap(pid: i32) -> (i32, Option<i32>) {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return (code, None),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => return (128 + sig as i32, Some(sig as i32)),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            // No children left: the init process was not ours to reap (should not happen
            // with the subreaper set); report it as unknown.
            Err(_) => return (255, None),
        }
    }
}
