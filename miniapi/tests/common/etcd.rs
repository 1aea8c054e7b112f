//! A real `etcd` (Debian's `etcd-server`) for the tests: its own temp data dir, client
//! and peer URLs on free loopback ports, ended by PID on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary (`ETCD`, else /usr/bin/etcd from Debian's etcd-server).
pub fn etcd_bin() -> PathBuf {
    std::env::var("ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/bin/etcd"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A running etcd.
pub struct Etcd {
    child: Child,
    /// The data dir (kept by the caller's temp dir).
    pub data_dir: PathBuf,
    /// The client port on 127.0.0.1.
    pub port: u16,
}

impl Etcd {
    /// Start etcd with `data_dir` (created if missing) and wait until it is healthy.
    pub fn start(data_dir: &Path) -> Etcd {
        minik_tests::require_sandbox();
        assert!(
            etcd_bin().exists(),
            "{} not found: install Debian's etcd-server (scripts/deps.sh does)",
            etcd_bin().display()
        );
        std::fs::create_dir_all(data_dir).expect("etcd data dir");
        let port = free_port();
        let peer = free_port();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("etcd.log"))
            .expect("etcd log");
        let child = Command::new(etcd_bin())
            .arg("--name=minik-test")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=minik-test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        let e = Etcd {
            child,
            data_dir: data_dir.to_path_buf(),
            port,
        };
        e.wait_healthy();
        e
    }

    /// The client endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// POST a JSON body to etcd's v3 JSON gateway (e.g. `/v3/kv/compaction`) and
    /// return the response body.
    pub fn gateway(&self, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect etcd");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write request");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or(out)
    }

    /// Compact etcd's history up to `revision`, retried a few times: on a loaded machine
    /// etcd may answer "request timed out" (and then have compacted all the same).
    pub fn compact(&self, revision: &str) {
        let body = format!("{{\"revision\": \"{revision}\"}}");
        let mut answer = String::new();
        for _ in 0..5 {
            answer = self.gateway("/v3/kv/compaction", &body);
            if answer.contains("header") || answer.contains("has been compacted") {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("etcd did not compact to {revision}: {answer}");
    }

    fn health(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(body) = self.health() {
                if body.contains("\"health\":\"true\"") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy; log: {}",
                std::fs::read_to_string(self.data_dir.with_extension("etcd.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Ends the etcd this harness started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
