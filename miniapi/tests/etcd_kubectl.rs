//! miniapi on etcd, driven by the real kubectl: create/get/list, AlreadyExists and 409
//! Conflict, a live watch and a watch resumed from a resourceVersion, allocations, a
//! restart of miniapi on the same etcd (objects and watch resume survive), `410 Gone`
//! once etcd has compacted, a `kill -9` of miniapi during writes losing no acknowledged
//! object, and a clear error for `--store etcd` without endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::etcd::Etcd;
use common::{stderr, stdout, ApiServer};

fn start(data: &std::path::Path, etcd: &Etcd, port: Option<u16>) -> ApiServer {
    let ep = etcd.endpoint();
    ApiServer::start_with(data, port, &["--store", "etcd", "--etcd-endpoints", &ep])
}

fn rv(api: &ApiServer, what: &[&str]) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "jsonpath={.metadata.resourceVersion}"]);
    api.ok(&args)
}

const SVC: &str = "apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  type: NodePort
  ports: [{port: 28017, nodePort: 30001}]
  selector: {app: db}
";

#[test]
fn kubectl_against_miniapi_on_etcd() {
    let dir = tempfile::tempdir().expect("tmp");
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let data = dir.path().join("api");
    let mut api = start(&data, &etcd, None);
    let port = api.port;

    let ns = api.ok(&["get", "namespaces"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    assert!(api
        .ok(&["create", "configmap", "c1", "--from-literal=k=v"])
        .contains("configmap/c1 created"));
    let e = api.fails(&["create", "configmap", "c1", "--from-literal=k=v"]);
    assert!(e.contains("configmaps \"c1\" already exists"), "{e}");
    let rv0 = rv(&api, &["configmap", "c1"]);
    assert!(rv0.parse::<u64>().expect("numeric resourceVersion") > 0);

    // 409: a replace carrying the resourceVersion from before a concurrent change.
    let stale = api.ok(&["get", "configmap", "c1", "-o", "json"]);
    api.ok(&["label", "configmap", "c1", "tier=db"]);
    let stale_file = dir.path().join("stale.json");
    std::fs::write(&stale_file, stale.replace("\"v\"", "\"changed\"")).expect("write");
    let e = api.fails(&["replace", "-f", stale_file.to_str().expect("utf8")]);
    assert!(
        e.contains("(Conflict)") && e.contains("the object has been modified"),
        "{e}"
    );
    assert_ne!(rv(&api, &["configmap", "c1"]), rv0);

    // Allocations work on etcd too: the requested nodePort, then refused twice.
    let out = api.apply("svc", SVC);
    assert!(
        stdout(&out).contains("service/db created"),
        "{}",
        stderr(&out)
    );
    let out = api.apply("svc2", &SVC.replace("name: db", "name: db2"));
    assert!(
        stderr(&out).contains(
            "spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated"
        ),
        "{}",
        stderr(&out)
    );

    // A live watch from the current revision sees a create.
    let now = api.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
    let list: serde_json::Value = serde_json::from_str(&now).expect("list json");
    let list_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list rv")
        .to_string();
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={list_rv}&timeoutSeconds=4"
    );
    let watcher = api
        .kubectl_cmd(&["get", "--raw", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    std::thread::sleep(Duration::from_millis(1000));
    api.ok(&["create", "configmap", "c2", "--from-literal=k=v"]);
    let out = watcher.wait_with_output().expect("watch output");
    let seen = stdout(&out);
    assert!(
        seen.contains("\"type\":\"ADDED\"") && seen.contains("\"name\":\"c2\""),
        "{seen}"
    );
    assert!(
        !seen.contains("\"name\":\"c1\""),
        "replayed too much: {seen}"
    );
    api.ok(&["delete", "configmap", "c1"]);

    // Resume from rv0: the label (MODIFIED c1), c2 ADDED, c1 DELETED, in order.
    let resume = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv0}&timeoutSeconds=2"
    );
    let check_resume = |api: &ApiServer| {
        let events = api.ok(&["get", "--raw", &resume]);
        let kinds: Vec<(String, String)> = events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["type"].as_str().unwrap_or("").to_string(),
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [("MODIFIED", "c1"), ("ADDED", "c2"), ("DELETED", "c1")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(kinds, want, "{events}");
    };
    check_resume(&api);

    // Restart miniapi on the same etcd: objects, allocations and watch resume survive.
    api.kill9();
    drop(api);
    let api = start(&data, &etcd, Some(port));
    let names = api.ok(&["get", "configmaps", "-o", "name"]);
    assert!(names.contains("configmap/c2\n"), "{names}");
    assert!(!names.contains("configmap/c1\n"), "{names}");
    assert_eq!(
        api.ok(&[
            "get",
            "svc",
            "db",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}"
        ]),
        "30001"
    );
    let out = api.apply("svc2", &SVC.replace("name: db", "name: db2"));
    assert!(
        !out.status.success(),
        "nodePort 30001 taken twice after a restart"
    );
    check_resume(&api);

    // Compact etcd up to now: the old resourceVersion is gone, and the watch says so
    // the way kube-apiserver does (an ERROR event with a 410 Expired Status).
    let cur = rv(&api, &["configmap", "c2"]);
    etcd.compact(&cur.to_string());
    let events = api.ok(&["get", "--raw", &resume]);
    assert!(
        events.contains("\"type\":\"ERROR\"")
            && events.contains("\"code\":410")
            && events.contains("\"reason\":\"Expired\""),
        "{events}"
    );
}

#[test]
fn etcd_store_without_endpoints_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_miniapi"))
        .args(["--store", "etcd", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run miniapi");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--store etcd needs --etcd-endpoints"), "{err}");
}

#[test]
fn kill9_during_writes_loses_no_acknowledged_object_on_etcd() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let dir = tempfile::tempdir().expect("tmp");
    let etcd = Etcd::start(&dir.path().join("etcd"));
    let data = dir.path().join("api");
    let mut api = start(&data, &etcd, None);
    let port = api.port;
    let kubeconfig = api.kubeconfig.clone();
    let cache = api.cache.clone();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let killed = Arc::new(AtomicBool::new(false));
    // A writer creates ConfigMaps one after another, recording each one kubectl reports
    // created, until a create fails after the kill.
    let writer = {
        let (acknowledged, killed) = (acknowledged.clone(), killed.clone());
        std::thread::spawn(move || {
            for i in 0..300 {
                let name = format!("cm-{i}");
                let out = Command::new(common::kubectl_bin())
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["create", "configmap", &name, "--from-literal=i=x"])
                    .arg("--request-timeout=3s")
                    .env("KUBECACHEDIR", &cache)
                    .env_remove("KUBECONFIG")
                    .stdin(Stdio::null())
                    .output()
                    .expect("run kubectl");
                if out.status.success()
                    && stdout(&out).contains(&format!("configmap/{name} created"))
                {
                    acknowledged.lock().expect("lock").push(name);
                } else if killed.load(Ordering::SeqCst) {
                    return;
                }
            }
        })
    };
    // Once a few creates went through, SIGKILL miniapi (by the PID this test started)
    // while the writer keeps writing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    api.kill9();
    killed.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 5,
        "too few creates before the kill: {acknowledged:?}"
    );
    drop(api);

    let api = start(&data, &etcd, Some(port));
    let listed = api.ok(&["get", "configmaps", "-o", "name"]);
    for name in &acknowledged {
        assert!(
            listed.contains(&format!("configmap/{name}\n")),
            "lost {name} after kill -9:\n{listed}"
        );
    }
}

#[test]
fn unreachable_etcd_is_a_clear_error() {
    minik_tests::require_sandbox();
    let dir = tempfile::tempdir().expect("tmp");
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let ep = format!("http://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_miniapi"))
        .args([
            "--store",
            "etcd",
            "--etcd-endpoints",
            &ep,
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run miniapi");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach etcd at {ep}")) && !err.contains("panicked"),
        "{err}"
    );
}
