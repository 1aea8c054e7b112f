//! End-to-end tests: the real kubectl against a running miniapi on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{have_kubectl, stderr, stdout, ApiServer};

const SVC: &str = "apiVersion: v1
kind: Service
metadata: {name: replicaset-svc, namespace: service-lab}
spec:
  type: NodePort
  ports: [{port: 28017, nodePort: 30001, protocol: TCP}]
  selector: {type: backend, db: mongoLabs}
";

const RS: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: mongo-rs, namespace: service-lab}
spec:
  replicas: 2
  selector:
    matchLabels: {type: backend, db: mongoLabs}
  template:
    metadata:
      labels: {type: backend, db: mongoLabs}
    spec:
      containers:
      - name: mongo
        image: mongo:7
        ports: [{containerPort: 28017}]
";

#[test]
fn services_namespaces_and_errors() {
    if !have_kubectl() {
        eprintln!("kubectl not found; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let api = ApiServer::start(&dir.path().join("api"), None);

    let ns = api.ok(&["get", "namespaces"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    assert!(api
        .ok(&["create", "namespace", "service-lab"])
        .contains("namespace/service-lab created"));

    let out = api.apply("svc", SVC);
    assert!(
        stdout(&out).contains("service/replicaset-svc created"),
        "{}",
        stderr(&out)
    );
    let svc = api.ok(&["get", "svc", "-n", "service-lab"]);
    let row = svc
        .lines()
        .find(|l| l.starts_with("replicaset-svc"))
        .expect("row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "NodePort", "{svc}");
    assert!(cols[2].starts_with("10."), "{svc}");
    assert_eq!(cols[3], "<none>");
    assert_eq!(cols[4], "28017:30001/TCP");
    let np = api.ok(&[
        "get",
        "svc",
        "replicaset-svc",
        "-n",
        "service-lab",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert_eq!(np, "30001");
    assert!(stdout(&api.apply("svc", SVC)).contains("service/replicaset-svc unchanged"));
    let labelled = SVC.replace(
        "namespace: service-lab}",
        "namespace: service-lab, labels: {tier: db}}",
    );
    assert!(stdout(&api.apply("svc2", &labelled)).contains("service/replicaset-svc configured"));

    let other = SVC.replace("name: replicaset-svc", "name: other-svc");
    let out = api.apply("svc3", &other);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated"
        ),
        "{}",
        stderr(&out)
    );

    let d = api.ok(&["describe", "svc", "replicaset-svc", "-n", "service-lab"]);
    assert!(
        d.contains("NodePort:") && d.contains("30001/TCP") && d.contains("tier=db"),
        "{d}"
    );
    assert!(api
        .ok(&["delete", "svc", "replicaset-svc", "-n", "service-lab"])
        .contains("service \"replicaset-svc\" deleted"));
    // The port is free again.
    assert!(stdout(&api.apply("svc3", &other)).contains("service/other-svc created"));

    let e = api.fails(&["get", "pod", "nope"]);
    assert!(
        e.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{e}"
    );

    let bad = api.apply(
        "bad",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\ndata: {a: b}\n",
    );
    assert!(
        stderr(&bad).contains("is invalid: metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        stderr(&bad)
    );

    let unknown = api.apply("unk", "apiVersion: v1\nkind: Service\nmetadata: {name: unk}\nspec:\n  ports: [{port: 80, bogusField: 1}]\n");
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("unknown field \"spec.ports[0].bogusField\""),
        "{}",
        stderr(&unknown)
    );

    // A wrong token: 401, which kubectl reports as not logged in.
    let e = api.fails(&["get", "pods", "--token=not-a-valid-token"]);
    assert!(
        e.contains("You must be logged in to the server (Unauthorized)"),
        "{e}"
    );
    // No token at all: a 401 Status.
    if std::path::Path::new("/usr/bin/curl").exists() {
        let url = format!("https://127.0.0.1:{}/api/v1/pods", api.port);
        let out = std::process::Command::new("/usr/bin/curl")
            .args(["-sk", &url])
            .output()
            .expect("curl");
        let body = stdout(&out);
        assert!(
            body.contains("\"code\":401") && body.contains("\"reason\":\"Unauthorized\""),
            "{body}"
        );
    }

    // Namespace deletion removes the contents, then the namespace.
    assert!(api
        .ok(&["delete", "namespace", "service-lab"])
        .contains("namespace \"service-lab\" deleted"));
    let e = api.fails(&["get", "namespace", "service-lab"]);
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn replicasets_pods_scale_and_watch() {
    if !have_kubectl() {
        eprintln!("kubectl not found; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let api = ApiServer::start(&dir.path().join("api"), None);
    api.ok(&["create", "namespace", "service-lab"]);
    let out = api.apply("rs", RS);
    assert!(
        stdout(&out).contains("replicaset.apps/mongo-rs created"),
        "{}",
        stderr(&out)
    );
    let rs = api.ok(&["get", "rs", "-n", "service-lab"]);
    assert!(
        rs.contains("NAME") && rs.contains("DESIRED") && rs.contains("mongo-rs"),
        "{rs}"
    );
    assert!(api
        .ok(&[
            "scale",
            "rs",
            "mongo-rs",
            "-n",
            "service-lab",
            "--replicas=5"
        ])
        .contains("scaled"));
    assert_eq!(
        api.ok(&[
            "get",
            "rs",
            "mongo-rs",
            "-n",
            "service-lab",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "5"
    );

    api.ok(&["run", "web", "--image=nginx:1.25", "-n", "service-lab"]);
    let wide = api.ok(&["get", "pods", "-n", "service-lab", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ],
        "{wide}"
    );
    assert!(wide.contains("0/1") && wide.contains("Pending"), "{wide}");

    // kubectl get pods -w prints a pod created while it watches.
    let mut watch = api
        .kubectl_cmd(&["get", "pods", "-n", "service-lab", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let mut pipe = watch.stdout.take().expect("pipe");
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !seen.contains("watched-pod") {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(1500));
    api.ok(&["run", "watched-pod", "--image=busybox", "-n", "service-lab"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let seen = reader.join().expect("reader");
    assert!(
        seen.contains("web") && seen.contains("watched-pod"),
        "{seen}"
    );

    // Server-side apply and a dry run.
    let out = api.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        dir.path().join("api.rs.yaml").to_str().expect("p"),
    ]);
    assert!(
        stdout(&out).contains("serverside-applied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        api.ok(&[
            "get",
            "rs",
            "mongo-rs",
            "-n",
            "service-lab",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    api.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    assert!(api
        .fails(&["get", "configmap", "dry"])
        .contains("not found"));
}
