//! Harness of minik-dns's sandbox tests: a namespace with miniapi (driven by the real
//! kubectl), the real `minik-dns` binary in it, Debian's `dig` as the client and
//! `dnsmasq` as the upstream for names outside the cluster. Processes are ended by PID
//! when dropped.

#![allow(dead_code, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minik_tests::miniapi::ApiServer;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use minik_tests::Netns;

/// A namespace with miniapi running in it.
pub struct Cluster {
    pub api: ApiServer,
    pub ns: Netns,
}

impl Cluster {
    pub fn start() -> Self {
        minik_tests::require_sandbox();
        let ns = Netns::new("dns");
        let api = ApiServer::start(&ns);
        Cluster { api, ns }
    }

    /// Starts minik-dns against this cluster's API with `args` after `--kubeconfig`.
    pub fn dns(&self, args: &[&str]) -> Dns {
        Dns::start(&self.ns, &self.api.kubeconfig, args)
    }

    /// `dig` against `server` (IP) on `port`.
    pub fn dig(&self, port: u16, args: &[&str]) -> Dig {
        dig(&self.ns, port, args)
    }

    /// Polls `dig` (at most `limit`) until `done` holds; returns the last answer.
    pub fn dig_until(&self, port: u16, args: &[&str], limit: Duration, done: impl Fn(&Dig) -> bool) -> Dig {
        let end = Instant::now() + limit;
        loop {
            let d = self.dig(port, args);
            if done(&d) || Instant::now() >= end {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A running minik-dns.
pub struct Dns {
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dns {
    pub fn start(ns: &Netns, kubeconfig: &Path, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("minik-dns.log");
        let file = std::fs::File::create(&log).expect("log");
        let child = ns
            .run(|| {
                Command::new(env!("CARGO_BIN_EXE_minik-dns"))
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(args)
                    .env("RUST_LOG", "info,minik_dns=debug,hickory_server=warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(file)
                    .spawn()
            })
            .expect("start minik-dns");
        Dns { child: Some(child), log, _dir: dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until `GET /ready` on `health` answers 200.
    pub fn wait_ready(&mut self, ns: &Netns, health: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = http_get(ns, health, "/ready") {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("minik-dns exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < end, "minik-dns did not become ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let _ = kill(pid, Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the process to exit on its own; returns its status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// dnsmasq on 127.0.0.1:`port` in `ns`, answering `records` (`name,ip`) and REFUSED otherwise.
pub struct Upstream {
    child: Option<Child>,
}

impl Upstream {
    pub fn start(ns: &Netns, port: u16, records: &[&str]) -> Self {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
        ]);
        for r in records {
            cmd.arg(format!("--host-record={r}"));
        }
        let child = ns
            .run(|| cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn())
            .expect("start dnsmasq (Debian package dnsmasq-base; scripts/deps.sh installs it)");
        let up = Upstream { child: Some(child) };
        // Ready once it answers.
        let end = Instant::now() + Duration::from_secs(10);
        while dig(ns, port, &[records.first().and_then(|r| r.split(',').next()).unwrap_or("x"), "A"]).status.is_empty() {
            assert!(Instant::now() < end, "dnsmasq does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        up
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One dig answer, parsed from its default output.
#[derive(Debug, Default)]
pub struct Dig {
    /// `NOERROR`, `NXDOMAIN`, … (empty: no reply).
    pub status: String,
    /// The header's flags (`qr aa rd ra`).
    pub flags: Vec<String>,
    /// Answer records as `TYPE DATA` (`A 10.96.3.4`), in order.
    pub answers: Vec<String>,
    /// Authority records as `TYPE DATA`.
    pub authority: Vec<String>,
    /// Additional records as `NAME TYPE DATA`.
    pub additional: Vec<String>,
    /// The whole output.
    pub raw: String,
}

impl Dig {
    /// The answers' data of one type, sorted.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answers
            .iter()
            .filter_map(|a| a.strip_prefix(rtype).and_then(|r| r.strip_prefix(' ')).map(str::to_string))
            .collect();
        v.sort();
        v
    }

    pub fn has_soa(&self) -> bool {
        self.authority.iter().any(|a| a.starts_with("SOA "))
    }
}

/// Runs `dig @127.0.0.1 -p PORT ARGS` in `ns` (one try, 2 s).
pub fn dig(ns: &Netns, port: u16, args: &[&str]) -> Dig {
    let port = port.to_string();
    let mut full = vec!["@127.0.0.1", "-p", &port, "+tries=1", "+time=2", "+nocookie"];
    full.extend_from_slice(args);
    let out = ns.exec("dig", &full);
    parse_dig(&String::from_utf8_lossy(&out.stdout))
}

fn parse_dig(text: &str) -> Dig {
    let mut d = Dig { raw: text.to_string(), ..Default::default() };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").trim().to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest.split(';').next().unwrap_or("").split_whitespace().map(str::to_string).collect();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
            continue;
        }
        if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
            continue;
        }
        if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
            continue;
        }
        if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = "";
            }
            continue;
        }
        // name ttl class type data...
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        let rec = format!("{} {}", f[3], f[4..].join(" "));
        match section {
            "answer" => d.answers.push(rec),
            "authority" => d.authority.push(rec),
            "additional" => d.additional.push(format!("{} {rec}", f[0])),
            _ => {}
        }
    }
    d
}

/// A plain HTTP GET inside `ns`; `(status, body)` or `None` when nothing answers.
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> Option<(u16, String)> {
    ns.run(|| {
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        Some((status, body))
    })
}
