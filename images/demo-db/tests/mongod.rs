//! The `mongod` binary end to end, on loopback: documents survive a restart, the REST
//! answers have mongo's shape, the status page shows, the native port answers HTTP like
//! mongod, mongo options are tolerated, and SIGTERM exits cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::{http, Mongod};
use serde_json::json;

#[test]
fn documents_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = Mongod::start(dir.path(), &["--rest", "--httpinterface"]);
    let r = http(db.http, "POST", "/test/people", Some(r#"{"name":"Viktor"}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["ok"], true);
    let id = r.json()["_id"].clone();
    assert!(id["$oid"].as_str().is_some_and(|s| s.len() == 24));
    let r = http(db.http, "POST", "/test/people/", Some(r#"{"_id":"ana","name":"Ana"}"#));
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["_id"], "ana");
    // Same _id: replaced, not added.
    http(db.http, "POST", "/test/people", Some(r#"{"_id":"ana","name":"Ana","age":31}"#));

    let r = http(db.http, "GET", "/test/people/", None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["offset"], 0);
    assert_eq!(v["total_rows"], 2);
    assert_eq!(v["rows"][0]["name"], "Viktor");
    assert_eq!(v["rows"][1], json!({"_id": "ana", "name": "Ana", "age": 31}));

    assert_eq!(db.terminate().code(), Some(0), "SIGTERM is a clean exit");

    let db = Mongod::start(dir.path(), &[]);
    let v = http(db.http, "GET", "/test/people/", None).json();
    assert_eq!(v["total_rows"], 2);
    assert_eq!(v["rows"][0]["_id"], id);
    assert_eq!(v["rows"][1]["age"], 31);
    let v = http(db.http, "GET", "/test/people/?filter_name=Ana", None).json();
    assert_eq!(v["total_rows"], 1);
    assert_eq!(v["query"], json!({"name": "Ana"}));
    let v = http(db.http, "GET", "/test/people/?skip=1&limit=5", None).json();
    assert_eq!(v["offset"], 1);
    assert_eq!(v["rows"][0]["_id"], "ana");
    assert!(dir.path().join("test/people.jsonl").is_file());
    assert_eq!(db.terminate().code(), Some(0));
}

#[test]
fn rest_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = Mongod::start(dir.path(), &[]);
    let r = http(db.http, "POST", "/test/people", Some("not json"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["ok"], false);
    assert_eq!(http(db.http, "POST", "/test/people", Some("[1,2]")).status, 400);
    assert_eq!(http(db.http, "GET", "/test/people/?limit=x", None).status, 400);
    assert_eq!(http(db.http, "GET", "/.bad/x/", None).status, 400);
    assert_eq!(http(db.http, "GET", "/a/b/c/d", None).status, 404);
    let v = http(db.http, "GET", "/test/empty/", None).json();
    assert_eq!(v["total_rows"], 0);
}

#[test]
fn status_page_and_native_port() {
    let dir = tempfile::tempdir().unwrap();
    let db = Mongod::start(dir.path(), &["--rest", "--httpinterface", "--smallfiles", "--replSet", "rs0"]);
    http(db.http, "POST", "/shop/items", Some(r#"{"sku":1}"#));
    let r = http(db.http, "GET", "/", None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("mongod"), "{}", r.body);
    assert!(r.body.contains("db version v3.3"));
    assert!(r.body.contains("items"));
    let s = http(db.http, "GET", "/serverStatus", None).json();
    assert_eq!(s["ok"], 1);
    assert_eq!(s["opcounters"]["insert"], 1);
    let l = http(db.http, "GET", "/listDatabases", None).json();
    assert_eq!(l["databases"][0]["name"], "shop");

    let r = http(db.native, "GET", "/", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "It looks like you are trying to access MongoDB over HTTP on the native driver port.\n");

    let log = db.log.lock().unwrap().clone();
    assert!(log.contains("ignoring option \"--smallfiles\""), "{log}");
    assert!(log.contains("ignoring option \"--replSet rs0\""), "{log}");
    assert_eq!(db.terminate().code(), Some(0));
}

#[test]
fn help_version_and_bad_flags() {
    let bin = env!("CARGO_BIN_EXE_mongod");
    let out = std::process::Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("db version v3.3"));
    let out = std::process::Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--dbpath"));
    let out = std::process::Command::new(bin).args(["--port", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}

/// `printf 'POST …' | nc db 28017`: a half-closed request is still stored and answered.
#[test]
fn a_half_closed_request_is_still_served() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = Mongod::start(dir.path(), &[]);
    let mut s = std::net::TcpStream::connect(db.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let body = r#"{"name":"nc"}"#;
    write!(s, "POST /test/people HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(common::parse(&raw).status, 201, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(http(db.http, "GET", "/test/people/", None).json()["total_rows"], 1);
}
