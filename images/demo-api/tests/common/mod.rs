//! Test helpers: an in-process demo-db on a free loopback port, the `demo-api` binary
//! started against it, and a tiny blocking HTTP/1.1 client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// demo-db running inside the test process, on 127.0.0.1 with free ports.
pub struct Db {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<demo_db::server::Running>,
    pub http: SocketAddr,
}

impl Db {
    pub fn start(dbpath: &Path) -> Db {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let opts = demo_db::args::Options {
            port: 0,
            bind_ip: vec!["127.0.0.1".parse().unwrap()],
            dbpath: dbpath.to_path_buf(),
            rest: true,
            httpinterface: true,
            ..Default::default()
        };
        let running = rt.block_on(demo_db::server::start(opts)).expect("starting demo-db");
        let http = running.http_addrs[0];
        Db { rt, running: Some(running), http }
    }

    pub fn stop(mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

/// A loopback port that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// A running `demo-api`.
pub struct Api {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

/// Starts `demo-api` with `DB=db`, on 127.0.0.1 with a free port; `Err(log)` with its
/// exit status if it exits before listening.
pub fn start_api(db: &str, extra_env: &[(&str, &str)]) -> Result<Api, (ExitStatus, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-api"))
        .env("DB", db)
        .env("ADDR", "127.0.0.1:0")
        .envs(extra_env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning demo-api");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let log2 = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("demo-api| {line}");
            if let Some(i) = line.find("listening on ") {
                if let Ok(a) = line[i + "listening on ".len()..].trim().parse::<SocketAddr>() {
                    let _ = tx.send(a);
                }
            }
            log2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok(Api { child, addr, log }),
        Err(_) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(st) = child.try_wait().unwrap() {
                    break st;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("demo-api neither listened nor exited; log:\n{}", log.lock().unwrap());
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let _ = reader.join();
            let text = log.lock().unwrap().clone();
            Err((status, text))
        }
    }
}

impl Api {
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
                panic!("demo-api did not exit on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Api {
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
    http_with(addr, method, path, body, &[])
}

/// Like [`http`], with extra request headers.
pub fn http_with(addr: SocketAddr, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
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
