//! Test helpers: start the `mongod` binary on free loopback ports, and a tiny blocking
//! HTTP/1.1 client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `mongod`.
pub struct Mongod {
    pub child: Child,
    pub native: SocketAddr,
    pub http: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

fn port_after(line: &str, marker: &str) -> Option<u16> {
    let i = line.find(marker)?;
    line[i + marker.len()..].trim().parse().ok()
}

impl Mongod {
    /// Starts `mongod --port 0 --bind_ip 127.0.0.1 --dbpath DIR EXTRA…` and waits for both
    /// listeners.
    pub fn start(dbpath: &Path, extra: &[&str]) -> Mongod {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mongod"))
            .args(["--port", "0", "--bind_ip", "127.0.0.1", "--dbpath"])
            .arg(dbpath)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning mongod");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("mongod| {line}");
                if let Some(p) = port_after(&line, "[initandlisten] waiting for connections on port ") {
                    let _ = tx.send(("native", p));
                }
                if let Some(p) = port_after(&line, "[websvr] admin web console waiting for connections on port ") {
                    let _ = tx.send(("http", p));
                }
                log2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let (mut native, mut http) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while native.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(("native", p)) => native = Some(p),
                Ok((_, p)) => http = Some(p),
                Err(_) => {
                    let _ = child.kill();
                    panic!("mongod did not start; log:\n{}", log.lock().unwrap());
                }
            }
        }
        let ip = [127, 0, 0, 1];
        Mongod {
            child,
            native: SocketAddr::from((ip, native.unwrap())),
            http: SocketAddr::from((ip, http.unwrap())),
            log,
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("mongod did not exit on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mongod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request over a fresh connection (`Connection: close`).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

/// Parses a raw HTTP/1.x response.
pub fn parse(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Resp { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
