//! Durability: `kill -9` during a loop of creates loses nothing kubectl reported
//! created, and a watch from a resourceVersion older than a restart resumes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{have_kubectl, stdout, ApiServer};

#[test]
fn kill9_loses_no_acknowledged_create_and_watch_resumes() {
    if !have_kubectl() {
        eprintln!("kubectl not found; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("api");
    let mut api = ApiServer::start(&data, None);
    let port = api.port;
    api.ok(&["create", "configmap", "before", "--from-literal=k=v"]);
    let old_rv = api.ok(&[
        "get",
        "configmap",
        "before",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);

    // Create in a loop; kill -9 the server part-way through.
    let pid = api.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            // kill -9 by the PID of the child this test started.
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut acknowledged = Vec::new();
    for i in 0..60 {
        let name = format!("cm-{i}");
        let out = api.kubectl(&[
            "create",
            "configmap",
            &name,
            "--from-literal=i=x",
            "--request-timeout=3s",
        ]);
        if out.status.success() && stdout(&out).contains(&format!("configmap/{name} created")) {
            acknowledged.push(name);
        }
        if stop.load(Ordering::SeqCst) && !out.status.success() {
            break;
        }
    }
    killer.join().expect("killer");
    let _ = api.child.wait();
    assert!(
        acknowledged.len() >= 2,
        "too few creates before the kill: {acknowledged:?}"
    );
    drop(api);

    let api = ApiServer::start(&data, Some(port));
    let listed = api.ok(&["get", "configmaps", "-o", "name"]);
    for name in &acknowledged {
        assert!(
            listed.contains(&format!("configmap/{name}\n")),
            "lost {name} after kill -9:\n{listed}"
        );
    }

    // A watch from the pre-restart resourceVersion replays what happened since.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}&timeoutSeconds=2"
    );
    let events = api.ok(&["get", "--raw", &path]);
    for name in &acknowledged {
        assert!(
            events.contains(&format!("\"name\":\"{name}\"")),
            "watch did not replay {name}:\n{events}"
        );
    }
    assert!(
        events
            .lines()
            .all(|l| l.starts_with("{\"object\"") || l.starts_with("{\"type\"")),
        "{events}"
    );
}

#[test]
fn bookmarks_and_initial_events() {
    if !have_kubectl() {
        eprintln!("kubectl not found; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let api = ApiServer::start(&dir.path().join("api"), None);
    let rv = api.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
    let v: serde_json::Value = serde_json::from_str(&rv).expect("list json");
    let list_rv = v["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let path = format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={list_rv}&allowWatchBookmarks=true&timeoutSeconds=3");
    let out = api.ok(&["get", "--raw", &path]);
    assert!(out.contains("\"type\":\"BOOKMARK\""), "{out}");
    let initial = api.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
    ]);
    assert!(
        initial.contains("\"type\":\"ADDED\"") && initial.contains("kube-root-ca.crt"),
        "{initial}"
    );
}
