//! `kubectl logs`, `exec`, `attach` and `port-forward` end to end, inside the sandbox:
//! the real kubectl → miniapi (pods/log, exec, attach, portforward) → the node's kubelet
//! server in minilet (client-certificate auth with miniapi's CA) → real containers.
//!
//! Until minilet registers itself with the API server, the test writes the Node (its
//! InternalIP on the underlay and kubelet port) and the Pod (same name and namespace as
//! the static pod, with nodeName, labels and a Running status) into miniapi by hand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use minik_tests::miniapi::ApiServer;
use minik_tests::minilet::MiniletNode;
use minik_tests::{require_sandbox, Netns, Underlay};
use serde_json::{json, Value};

const NODE_IP: &str = "192.168.77.11";
const API_IP: &str = "192.168.77.2";

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "echo to-stderr >&2; sleep 0.3; echo line-one; echo line-two; mkdir -p /www; echo hello-from-web > /www/index.html; exec httpd -f -p 8080 -h /www"]
  - name: ticker
    image: busybox
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done"]
  - name: crasher
    image: busybox
    command: ["sh", "-c", "echo attempt-$(cut -d' ' -f1 /proc/uptime); sleep 3; exit 1"]
"#;

fn running(pod: &Value, c: &str) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["name"] == c && s["state"]["running"].is_object()))
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Waits (bounded) for a line matching `pred`; returns it.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!("{what}: no such line within {limit:?}; saw {seen:?}");
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn stderr_of(c: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// One HTTP/1.0 GET from `ns` to `addr`; the response body's text (or the error).
fn http_get(ns: &Netns, addr: &str) -> std::io::Result<String> {
    let a: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let mut s = ns.run(|| TcpStream::connect_timeout(&a, Duration::from_secs(3)))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn tick(l: &str) -> Option<u64> {
    l.trim().strip_prefix("tick-").and_then(|n| n.parse().ok())
}

#[test]
fn kubectl_logs_exec_attach_port_forward() {
    scenario(minik_tests::miniapi::kubectl_bin(), "10.247.30.0/24");
}

/// kubectl 1.29 speaks SPDY for exec and attach (`v4.channel.k8s.io`) and for port-forward.
#[test]
fn kubectl_1_29_over_spdy() {
    let old = std::path::PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.29");
    if !old.exists() {
        eprintln!("{} is not installed; skipping", old.display());
        return;
    }
    scenario(old, "10.247.31.0/24");
}

fn scenario(kubectl: std::path::PathBuf, subnet: &str) {
    require_sandbox();
    let underlay = Underlay::new();
    let api_ns = Netns::new("api");
    underlay.plug(&api_ns, &format!("{API_IP}/24"));
    let api = ApiServer::start_with(&api_ns, kubectl);

    let extra = format!("backoffBase: 1\nbackoffMax: 2\nkubeletPort: 10250\nclientCAFile: {}\n", api.ca_file().display());
    let mut node = MiniletNode::new(subnet, &extra);
    underlay.plug(&node.ns, &format!("{NODE_IP}/24"));
    node.start();
    node.apply("web.yaml", WEB);
    let pod = node.wait_pod("web", "web and ticker running", Duration::from_secs(40), |p| running(p, "web") && running(p, "ticker"));
    let pod_ip = pod["status"]["podIP"].as_str().expect("pod IP").to_string();

    // What minilet would register: the Node and the Pod, by hand.
    api.apply("apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n");
    let node_status = json!({"status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": "node1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
    api.ok(&["patch", "node", "node1", "--subresource=status", "--type=merge", "-p", &node_status.to_string()]);
    let containers: Vec<Value> = ["web", "ticker", "crasher"].iter().map(|c| json!({"name": c, "image": "busybox"})).collect();
    let manifest = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-node1", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "node1", "containers": containers}});
    api.apply(&manifest.to_string());
    let pod_status = json!({"status": {"phase": "Running", "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "hostIP": NODE_IP}});
    api.ok(&["patch", "pod", "web-node1", "--subresource=status", "--type=merge", "-p", &pod_status.to_string()]);

    // logs, --tail
    let end = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let l = api.ok(&["logs", "web-node1", "-c", "web"]);
        if l.contains("line-two") || Instant::now() > end {
            break l;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(logs.contains("to-stderr\n") && logs.contains("line-one\nline-two\n"), "kubectl logs: {logs:?}\n{}", node.log());
    assert_eq!(api.ok(&["logs", "web-node1", "-c", "web", "--tail=1"]), "line-two\n");
    let stamped = api.ok(&["logs", "web-node1", "-c", "web", "--tail=1", "--timestamps"]);
    assert!(stamped.ends_with("Z line-two\n"), "{stamped:?}");

    // logs -f: a line written after kubectl started
    let before = api.ok(&["logs", "web-node1", "-c", "ticker"]).lines().filter_map(tick).max().unwrap_or(0);
    let mut cmd = api.cmd(&["logs", "-f", "web-node1", "-c", "ticker"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut follow = api.spawn(cmd);
    let rx = lines_of(&mut follow);
    wait_line(&rx, "kubectl logs -f", Duration::from_secs(15), |l| tick(l).is_some_and(|n| n > before + 3));
    kill(follow);

    // attach: the ticker's output as it happens
    let mut cmd = api.cmd(&["attach", "web-node1", "-c", "ticker"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut attach = api.spawn(cmd);
    let rx = lines_of(&mut attach);
    let now = api.ok(&["logs", "web-node1", "-c", "ticker", "--tail=1"]).lines().filter_map(tick).max().unwrap_or(0);
    wait_line(&rx, "kubectl attach", Duration::from_secs(15), |l| tick(l).is_some_and(|n| n > now));
    kill(attach);

    // exec: stdout, stderr, exit code
    let out = api.kubectl(&["exec", "web-node1", "-c", "web", "--", "sh", "-c", "echo hi; echo err >&2; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3));
    let ok = api.kubectl(&["exec", "web-node1", "-c", "web", "--", "cat", "/www/index.html"]);
    assert_eq!((ok.status.code(), String::from_utf8_lossy(&ok.stdout).into_owned()), (Some(0), "hello-from-web\n".into()));

    // exec -i: stdin piped through, EOF delivered (v5 close signal)
    let out = api.kubectl_with_input(&["exec", "-i", "web-node1", "-c", "web", "--", "sh", "-c", "cat; echo done"], b"piped-input\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped-input\ndone\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0));

    // exec -it under a terminal (script(1) gives kubectl a pty)
    if std::path::Path::new("/usr/bin/script").exists() {
        let kubectl = format!(
            "{} --kubeconfig {} exec -it web-node1 -c web -- sh -c 'tty; exit 4'",
            api.kubectl.display(),
            api.kubeconfig.display()
        );
        let mut c = std::process::Command::new("/usr/bin/script");
        c.args(["-qec", &kubectl, "/dev/null"]).env("KUBECACHEDIR", api.dir.path().join("kubecache"));
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = minik_tests::miniapi::wait_output(api.spawn(c), Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/dev/pts/"), "tty exec: {text:?} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(4), "{text:?}");
    }

    // port-forward pod/…: localhost only
    let mut cmd = api.cmd(&["port-forward", "pod/web-node1", "3000:8080"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut pf = api.spawn(cmd);
    let rx = lines_of(&mut pf);
    wait_line(&rx, "port-forward pod", Duration::from_secs(20), |l| l.contains("Forwarding from 127.0.0.1:3000"));
    for _ in 0..3 {
        let body = http_get(&api_ns, "127.0.0.1:3000");
        assert!(body.as_ref().is_ok_and(|b| b.contains("hello-from-web")), "GET through port-forward: {body:?}");
    }
    let listening = String::from_utf8_lossy(&api_ns.exec("ss", &["-Hltn"]).stdout).into_owned();
    assert!(listening.contains("127.0.0.1:3000") && !listening.contains("0.0.0.0:3000"), "{listening}");
    assert!(http_get(&api_ns, &format!("{API_IP}:3000")).is_err(), "not on the non-loopback address");
    let _ = pf.kill();
    let _ = pf.wait();
    let err = stderr_of(&mut pf);
    assert!(!err.contains("error"), "port-forward stderr: {err}");

    // The same over plain SPDY (kubectl's fallback when the WebSocket tunnel is refused).
    let mut cmd = api.cmd(&["port-forward", "pod/web-node1", "3002:8080"]);
    cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut pf = api.spawn(cmd);
    let rx = lines_of(&mut pf);
    wait_line(&rx, "port-forward over SPDY", Duration::from_secs(20), |l| l.contains("Forwarding from 127.0.0.1:3002"));
    let body = http_get(&api_ns, "127.0.0.1:3002");
    assert!(body.as_ref().is_ok_and(|b| b.contains("hello-from-web")), "GET through SPDY port-forward: {body:?}");
    // A port nobody listens on: kubectl reports the kubelet's error.
    let mut cmd = api.cmd(&["port-forward", "pod/web-node1", "3003:9999"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut bad = api.spawn(cmd);
    let rx2 = lines_of(&mut bad);
    wait_line(&rx2, "port-forward to a closed port", Duration::from_secs(20), |l| l.contains("Forwarding from 127.0.0.1:3003"));
    let _ = http_get(&api_ns, "127.0.0.1:3003");
    let out = minik_tests::miniapi::wait_output(bad, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error forwarding port 9999"), "{err}");
    kill(pf);

    // port-forward svc/… --address 0.0.0.0: kubectl resolves the Service to the pod
    api.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 28017, targetPort: 8080}]\n");
    let mut cmd = api.cmd(&["port-forward", "svc/web", "3001:28017", "--address", "0.0.0.0"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut pf = api.spawn(cmd);
    let rx = lines_of(&mut pf);
    wait_line(&rx, "port-forward svc", Duration::from_secs(20), |l| l.contains("Forwarding from 0.0.0.0:3001"));
    let listening = String::from_utf8_lossy(&api_ns.exec("ss", &["-Hltn"]).stdout).into_owned();
    assert!(listening.contains("0.0.0.0:3001"), "{listening}");
    let from_node = http_get(&node.ns, &format!("{API_IP}:3001"));
    assert!(from_node.as_ref().is_ok_and(|b| b.contains("hello-from-web")), "from another host: {from_node:?}");
    assert!(http_get(&api_ns, "127.0.0.1:3001").is_ok_and(|b| b.contains("hello-from-web")));
    kill(pf);

    // logs --previous after a restart of crasher
    let p = node.wait_pod("web", "crasher restarted and running", Duration::from_secs(40), |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["name"] == "crasher" && s["restartCount"].as_i64() >= Some(1) && s["state"]["running"].is_object()))
    });
    let _ = p;
    let mut matched = false;
    for _ in 0..3 {
        let prev = api.ok(&["logs", "web-node1", "-c", "crasher", "--previous"]);
        let local = node.cli(&["logs", "web", "-c", "crasher", "--previous"]);
        assert!(prev.starts_with("attempt-"), "{prev:?}");
        if prev == local {
            matched = true;
            break;
        }
    }
    assert!(matched, "kubectl logs --previous matches the previous attempt's log");
    let none = api.kubectl(&["logs", "web-node1", "-c", "web", "--previous"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("previous terminated container"), "{}", String::from_utf8_lossy(&none.stderr));
    drop(api);
    drop(node);
}
