//! `minik-agent`: runs in a minik node VM (started by the image's `/init`) and executes
//! the commands `minik shell NODE -- CMD` sends over the virtio-serial port
//! `org.minik.agent`, one at a time, answering with the exit code and output (protocol in
//! `cluster/src/agent/proto.rs`). Like qemu-guest-agent's `guest-exec`, but one request,
//! one answer, no polling; a few hundred lines of C libraries less in the image.

#[path = "../agent/proto.rs"]
#[allow(dead_code)] // decode() is the host's half
mod proto;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use proto::{encode, Request, Response, PORT_NAME};

/// The port's device: the /dev/vportNpM whose sysfs `name` is [`PORT_NAME`].
fn find_port() -> Option<PathBuf> {
    let rd = std::fs::read_dir("/sys/class/virtio-ports").ok()?;
    rd.flatten().find_map(|e| {
        let name = std::fs::read_to_string(e.path().join("name")).ok()?;
        (name.trim() == PORT_NAME).then(|| PathBuf::from("/dev").join(e.file_name()))
    })
}

/// Runs one request; a command that cannot start answers code -1 with the reason.
fn execute(req: &Request) -> Response {
    let fail = |msg: String| Response { id: req.id, code: -1, stdout: String::new(), stderr: encode(msg.as_bytes()) };
    let Some((prog, args)) = req.argv.split_first() else { return fail("empty command".into()) };
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("{prog}: {e}")),
    };
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let pump = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pump(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = pump(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let end = Instant::now() + Duration::from_secs(req.timeout_secs.max(1));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))).unwrap_or(-1);
    Response { id: req.id, code, stdout: encode(&out.join().unwrap_or_default()), stderr: encode(&err.join().unwrap_or_default()) }
}

/// Serves the port until the VM stops: reads a request line, answers it.
fn serve(port: &PathBuf) -> anyhow::Result<()> {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(port).with_context(|| format!("cannot open {}", port.display()))?;
    let mut writer = f.try_clone().context("cloning the port's file")?;
    let mut reader = BufReader::new(f);
    loop {
        let mut line = String::new();
        // 0 bytes: no host side connected right now; wait for one.
        if reader.read_line(&mut line).context("reading the port")? == 0 {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let resp = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => execute(&req),
            Err(e) => {
                eprintln!("minik-agent: not a request ({e}): {}", line.trim());
                continue;
            }
        };
        let mut text = serde_json::to_string(&resp).context("encoding the answer")?;
        text.push('\n');
        writer.write_all(text.as_bytes()).context("writing the answer")?;
    }
}

fn main() -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Some(p) = find_port().filter(|p| p.exists()) {
            break p;
        }
        if Instant::now() >= end {
            eprintln!("minik-agent: no virtio-serial port {PORT_NAME}; nothing to serve");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("minik-agent: serving {}", port.display());
    loop {
        if let Err(e) = serve(&port) {
            eprintln!("minik-agent: {e:#}; reopening in 1 s");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}
