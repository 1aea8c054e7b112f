//! demo-api end to end against a demo-db on loopback: hello, PUT then GET a person, POST,
//! the text form, a clean SIGTERM; and a non-zero exit when the database is unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::{closed_port, http, http_with, start_api, Db};
use serde_json::json;

#[test]
fn hello_and_people_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path());
    let api = start_api(&db.http.to_string(), &[]).unwrap_or_else(|(st, log)| panic!("exited {st}: {log}"));

    let r = http(api.addr, "GET", "/demo/hello", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, "hello, world!");

    assert_eq!(http(api.addr, "GET", "/demo/person", None).json(), json!([]));
    let r = http(api.addr, "PUT", "/demo/person?name=Viktor", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(api.addr, "PUT", "/demo/person?name=Viktor", None);
    assert_eq!(r.status, 200, "storing a name twice keeps one");
    let r = http(api.addr, "POST", "/demo/person", Some(r#"{"name":"Ana"}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http(api.addr, "GET", "/demo/person", None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(r.json(), json!([{"name": "Viktor"}, {"name": "Ana"}]));
    assert_eq!(http(api.addr, "GET", "/demo/person?name=Ana", None).json(), json!({"name": "Ana"}));
    assert_eq!(http(api.addr, "GET", "/demo/person?name=Nobody", None).status, 404);
    let r = http_with(api.addr, "GET", "/demo/person", None, &[("Accept", "text/plain")]);
    assert_eq!(r.body, "Viktor\nAna");

    // It really went to the database.
    let v = http(db.http, "GET", "/test/people/", None).json();
    assert_eq!(v["total_rows"], 2);
    assert_eq!(v["rows"][0], json!({"_id": "Viktor", "name": "Viktor"}));

    assert_eq!(http(api.addr, "PUT", "/demo/person", None).status, 400);
    assert_eq!(http(api.addr, "POST", "/demo/person", Some("{}")).status, 400);
    assert_eq!(http(api.addr, "GET", "/nothing", None).status, 404);
    let r = http(api.addr, "GET", "/demo/random-error", None);
    assert!(r.status == 200 || r.status == 500);

    let log = api.log.lock().unwrap().clone();
    assert!(log.contains("PUT request to /demo/person?name=Viktor"), "{log}");
    assert_eq!(api.terminate().code(), Some(0));
    db.stop();
}

#[test]
fn exits_non_zero_when_the_database_is_unreachable() {
    let port = closed_port();
    let started = std::time::Instant::now();
    match start_api(&format!("127.0.0.1:{port}"), &[("DB_WAIT", "1.5")]) {
        Ok(_) => panic!("demo-api started without its database"),
        Err((status, log)) => {
            assert_eq!(status.code(), Some(1), "{log}");
            assert!(log.contains("cannot reach the database at 127.0.0.1:"), "{log}");
            assert!(started.elapsed() >= std::time::Duration::from_secs(1), "it retried for a while");
        }
    }
}

#[test]
fn answers_500_when_the_database_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path());
    let api = start_api(&db.http.to_string(), &[]).unwrap_or_else(|(st, log)| panic!("exited {st}: {log}"));
    db.stop();
    let r = http(api.addr, "GET", "/demo/person", None);
    assert_eq!(r.status, 500);
    assert!(r.body.contains("database error"), "{}", r.body);
    // hello does not need the database.
    assert_eq!(http(api.addr, "GET", "/demo/hello", None).status, 200);
}

/// `printf 'PUT …' | nc api 8080` from a busybox pod: the client half-closes after its
/// request; the request must still be served and answered.
#[test]
fn a_half_closed_request_is_still_served() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path());
    let api = start_api(&db.http.to_string(), &[]).unwrap_or_else(|(st, log)| panic!("exited {st}: {log}"));
    let mut s = std::net::TcpStream::connect(api.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(b"PUT /demo/person?name=Nc HTTP/1.0\r\n\r\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(common::parse(&raw).status, 200, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(http(api.addr, "GET", "/demo/person", None).json(), json!([{"name": "Nc"}]));
    drop(api);
    db.stop();
}
