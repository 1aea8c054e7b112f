//! The course's lab on a three-node cluster booted by `minik up` (which deploys the demo
//! from `cluster/demo/`), driven by the real kubectl through the API on the loopback,
//! step by step in one test (booting is the slow part): the demo spread over the nodes;
//! a busybox pod reaching the API by its DNS name and the db by its ClusterIP; NodePort
//! 30002 on every node and a LoadBalancer IP from `ext`; `kubectl expose`, `describe svc`,
//! `get ep -o yaml` and `port-forward`; pod to pod across nodes without NAT, also through a Service;
//! scaling 3 → 1; a Service without endpoints refusing; `delete svc` removing the rules
//! on every node and the DNS name; `minik trace`; a node killed, its pods recreated
//! elsewhere while the Service keeps answering; and the node started again, rejoining.
//! With `MINIK_NODE_BACKEND=vm` the same lab runs on three QEMU VM nodes.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use minik_tests::pods::{cgi_addr, sleeper_pod, who_am_i_pod};
use minik_tests::cluster::{free_port, text, Cluster};
use minik_tests::miniapi::kubectl_bin;
use minik_tests::require_sandbox;
use serde_json::Value;

const NS: &str = "service-lab";
const NODE_IPS: [&str; 3] = ["192.168.50.11", "192.168.50.12", "192.168.50.13"];

/// A pod as `kubectl get pods -o wide` shows it.
#[derive(Debug, Clone)]
struct PodRow {
    name: String,
    node: String,
    ip: String,
    ready: bool,
    deleting: bool,
}

fn pods(c: &Cluster, ns: &str, selector: &str) -> Vec<PodRow> {
    let mut args = vec!["-n", ns, "get", "pods"];
    if !selector.is_empty() {
        args.extend(["-l", selector]);
    }
    c.json(&args)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p: &Value| PodRow {
            name: p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            node: p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
            ip: p["status"]["podIP"].as_str().unwrap_or_default().to_string(),
            ready: p["status"]["conditions"]
                .as_array()
                .map(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                .unwrap_or(false),
            deleting: !p["metadata"]["deletionTimestamp"].is_null(),
        })
        .collect()
}

fn ready_pods(c: &Cluster, ns: &str, selector: &str, want: usize) -> Result<Vec<PodRow>, String> {
    let all = pods(c, ns, selector);
    let ready: Vec<PodRow> = all.iter().filter(|p| p.ready && !p.deleting).cloned().collect();
    if ready.len() == want {
        Ok(ready)
    } else {
        Err(format!("{selector}: {} ready of {want}: {all:?}", ready.len()))
    }
}

/// `kubectl exec POD -- sh -c "timeout 5 CMD"` → (exit 0, output).
fn in_pod(c: &Cluster, ns: &str, pod: &str, cmd: &str) -> (bool, String) {
    let out = c.kubectl(&["-n", ns, "exec", pod, "--", "sh", "-c", &format!("timeout 5 {cmd} 2>&1")]);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_ext(c: &Cluster, url: &str) -> (bool, String) {
    let out = c.shell("ext", &["timeout", "5", "busybox", "wget", "-qO-", url]);
    (out.status.success(), text(&out).trim().to_string())
}

fn svc_field(c: &Cluster, ns: &str, name: &str, path: &str) -> String {
    c.ok(&["-n", ns, "get", "svc", name, "-o", &format!("jsonpath={{{path}}}")])
}

fn endpoint_ips(c: &Cluster, ns: &str, name: &str) -> Vec<String> {
    let ep = c.json(&["-n", ns, "get", "endpoints", name]);
    ep["subsets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect()
}

fn nft_rules(c: &Cluster, node: &str) -> String {
    let out = c.shell(node, &["nft", "list", "table", "ip", "minik-proxy"]);
    assert!(out.status.success(), "nft on {node}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn the_course_lab_on_three_nodes() {
    require_sandbox();
    let c = Cluster::up(&["--nodes", "3", "--node-monitor-grace-period", "20s", "--pod-eviction-timeout", "5s"]);
    assert!(c.up_output.lines().any(|l| l.contains("] demo:") && l.contains("... ok")), "{}", c.up_output);
    assert!(!c.up_output.contains("NOT READY"), "parts of the cluster are not ready:\n{}", c.up_output);

    // The three nodes, Ready, each with its pod CIDR.
    let nodes = c.json(&["get", "nodes"]);
    let items = nodes["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{nodes}");
    for n in &items {
        assert!(n["spec"]["podCIDR"].as_str().unwrap_or_default().starts_with("10.244."), "{n}");
    }

    // The demo: db and API ReplicaSets Ready, spread over the nodes. The API pods being
    // Ready means each reached the db by its Service name (demo-api exits without it).
    let wide = c.ok(&["-n", NS, "get", "pods", "-o", "wide"]);
    assert!(wide.contains("NODE") && wide.contains("db-pod-rs-") && wide.contains("api-rs-"), "{wide}");
    let api = c.wait("3 API pods Ready", 60 * SEC, || ready_pods(&c, NS, "app=api", 3));
    let db = c.wait("the db pod Ready", 60 * SEC, || ready_pods(&c, NS, "app=db", 1));
    let mut used: Vec<&str> = api.iter().chain(db.iter()).map(|p| p.node.as_str()).collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 2, "the demo's pods are all on one node: {wide}");

    // The course's manifests, as shipped in cluster/demo/, are what runs: applying them
    // again changes nothing.
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster/demo");
    let applied = c.ok(&["apply", "-f", &demo.display().to_string()]);
    for want in ["namespace/service-lab", "replicaset.apps/db-pod-rs", "service/replicaset-svc", "replicaset.apps/api-rs", "service/api-service"] {
        assert!(applied.contains(want), "kubectl apply -f cluster/demo/ did not mention {want}:\n{applied}");
    }
    assert!(!applied.contains("created"), "the demo's manifests differ from what minik up deployed:\n{applied}");
    c.wait("3 API pods Ready after the re-apply", 60 * SEC, || ready_pods(&c, NS, "app=api", 3));

    // From a busybox pod: the API by its DNS name, the db by its ClusterIP.
    c.ok(&["run", "bb", "--image=busybox", "--restart=Never", "--", "sleep", "3600"]);
    c.wait("busybox pod Running", 60 * SEC, || ready_pods(&c, "default", "run=bb", 1));
    let hello = c.wait("the API by name from a pod", 30 * SEC, || {
        match in_pod(&c, "default", "bb", "wget -qO- http://api-service.service-lab.svc.cluster.local:8080/demo/hello") {
            (true, out) => Ok(out),
            (false, out) => Err(out),
        }
    });
    assert_eq!(hello, "hello, world!");
    let db_ip = svc_field(&c, NS, "replicaset-svc", ".spec.clusterIP");
    let (ok, page) = in_pod(&c, "default", "bb", &format!("wget -qO- http://{db_ip}:28017/"));
    assert!(ok && page.contains("mongod"), "the db's status page via {db_ip}:28017: {page}");

    // NodePort 30002 on every node's address, from ext (a host that is not a node).
    for ip in NODE_IPS {
        let (ok, out) = from_ext(&c, &format!("http://{ip}:30002/demo/hello"));
        assert!(ok && out == "hello, world!", "NodePort 30002 on {ip} from ext: {out}");
    }

    // A LoadBalancer Service gets an address from the launcher's pool on the underlay,
    // which answers from ext.
    c.ok(&["-n", NS, "expose", "rs", "api-rs", "--name=api-lb", "--type=LoadBalancer", "--port=80", "--target-port=8080"]);
    let lb_ip = c.wait("api-lb's LoadBalancer IP", 30 * SEC, || {
        let ip = svc_field(&c, NS, "api-lb", ".status.loadBalancer.ingress[0].ip");
        if ip.is_empty() {
            Err("pending".to_string())
        } else {
            Ok(ip)
        }
    });
    let last: u8 = lb_ip.rsplit('.').next().and_then(|o| o.parse().ok()).unwrap_or(0);
    assert!(lb_ip.starts_with("192.168.50.") && (200..=207).contains(&last), "{lb_ip} is not in 192.168.50.200/29");
    let hello = c.wait("the LoadBalancer IP from ext", 30 * SEC, || match from_ext(&c, &format!("http://{lb_ip}/demo/hello")) {
        (true, out) => Ok(out),
        (false, out) => Err(out),
    });
    assert_eq!(hello, "hello, world!");

    // kubectl expose rs … --type=NodePort, describe, get ep -o yaml, port-forward.
    c.ok(&["-n", NS, "expose", "rs", "db-pod-rs", "--name=db-svc", "--target-port=28017", "--type=NodePort"]);
    let db_pod = &db[0];
    let describe = c.wait("db-svc endpoints", 20 * SEC, || {
        let d = c.ok(&["-n", NS, "describe", "svc/db-svc"]);
        if d.contains(&format!("{}:28017", db_pod.ip)) {
            Ok(d)
        } else {
            Err(d)
        }
    });
    for want in ["Type:", "NodePort", "TargetPort:", "28017/TCP", "Selector:", "app=db"] {
        assert!(describe.contains(want), "describe svc lacks {want:?}:\n{describe}");
    }
    let ep_yaml = c.ok(&["-n", NS, "get", "ep", "db-svc", "-o", "yaml"]);
    assert!(ep_yaml.contains("kind: Endpoints") && ep_yaml.contains(&db_pod.ip) && ep_yaml.contains(&db_pod.node), "{ep_yaml}");
    let node_port = svc_field(&c, NS, "db-svc", ".spec.ports[0].nodePort");
    let page = c.wait("db-svc's NodePort from ext", 20 * SEC, || match from_ext(&c, &format!("http://{}:{node_port}/", NODE_IPS[2])) {
        (true, out) => Ok(out),
        (false, out) => Err(out),
    });
    assert!(page.contains("mongod"), "{page}");
    let local = free_port();
    let mut pf = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["-n", NS, "port-forward", "svc/db-svc", &format!("{local}:28017"), "--address", "0.0.0.0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let page = c.wait("port-forward from the host's loopback", 20 * SEC, || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(5 * SEC)).map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        if body.contains("mongod") {
            Ok(body)
        } else {
            Err(body)
        }
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(page.starts_with("HTTP/1."), "{page}");

    // Pod to pod across nodes: the server sees the client pod's own IP (no NAT), directly
    // and through a Service whose only endpoint is on another node.
    c.apply(&who_am_i_pod("echo", "node2"));
    c.apply(&sleeper_pod("client", "node3"));
    c.ok(&["expose", "pod", "echo", "--name=echo-svc", "--port=8080"]);
    let srv = c.wait("echo pod Ready", 60 * SEC, || ready_pods(&c, "default", "app=echo", 1))[0].clone();
    let client_ip = c.wait("client pod", 60 * SEC, || {
        let p = pods(&c, "default", "").into_iter().find(|p| p.name == "client" && p.ready).ok_or("not ready")?;
        Ok::<_, String>(p.ip)
    });
    let (ok, seen) = in_pod(&c, "default", "client", &format!("wget -qO- http://{}:8080/cgi-bin/ip", srv.ip));
    assert!(ok && cgi_addr(&seen) == client_ip, "node3 → node2 pod to pod: the server saw {seen:?}, the client is {client_ip}");
    let seen = c.wait("pod → Service → pod on another node", 20 * SEC, || {
        match in_pod(&c, "default", "client", "wget -qO- http://echo-svc.default.svc.cluster.local:8080/cgi-bin/ip") {
            (true, out) => Ok(out),
            (false, out) => Err(out),
        }
    });
    assert_eq!(cgi_addr(&seen), client_ip, "through the Service the server saw {seen:?}, not the client pod");

    // Scale 3 → 1: the endpoints follow, the NodePort keeps answering on every node.
    c.ok(&["-n", NS, "scale", "rs", "api-rs", "--replicas=1"]);
    let left = c.wait("api-service down to one endpoint", 30 * SEC, || match endpoint_ips(&c, NS, "api-service") {
        ips if ips.len() == 1 => Ok(ips),
        ips => Err(format!("{ips:?}")),
    });
    // The removed endpoints leave every node's rules (minikproxy follows the endpoints),
    // then the NodePort answers on every node, every time.
    let removed: Vec<String> = api.iter().map(|p| p.ip.clone()).filter(|ip| !left.contains(ip)).collect();
    for node in ["node1", "node2", "node3"] {
        c.wait("the removed endpoints gone from every node's rules", 20 * SEC, || {
            let rules = nft_rules(&c, node);
            match removed.iter().find(|ip| rules.contains(&format!(" {ip} ")) || rules.contains(&format!(" {ip}:"))) {
                Some(ip) => Err(format!("{node} still forwards to {ip}")),
                None => Ok(()),
            }
        });
    }
    for ip in NODE_IPS {
        for _ in 0..3 {
            let (ok, out) = from_ext(&c, &format!("http://{ip}:30002/demo/hello"));
            assert!(ok && out == "hello, world!", "after scaling to 1, NodePort on {ip}: {out}");
        }
    }

    // A Service with no endpoints refuses at once (no black hole).
    c.ok(&["create", "service", "clusterip", "nobody", "--tcp=80:80"]);
    let nobody = svc_field(&c, "default", "nobody", ".spec.clusterIP");
    let refused = c.wait("a Service without endpoints refuses", 20 * SEC, || {
        match in_pod(&c, "default", "bb", &format!("wget -qO- http://{nobody}:80/")) {
            (false, out) if out.contains("refused") => Ok(out),
            (_, out) => Err(out),
        }
    });
    assert!(refused.contains("refused"), "{refused}");

    // delete svc: its rules leave every node, its name leaves DNS.
    let db_svc_ip = svc_field(&c, NS, "db-svc", ".spec.clusterIP");
    for node in ["node1", "node2", "node3"] {
        c.wait("db-svc's rules on every node", 20 * SEC, || {
            let rules = nft_rules(&c, node);
            if rules.contains(&db_svc_ip) {
                Ok(())
            } else {
                Err(format!("{node} has no rule for {db_svc_ip}"))
            }
        });
    }
    c.ok(&["-n", NS, "delete", "svc", "db-svc"]);
    for node in ["node1", "node2", "node3"] {
        c.wait("db-svc's rules gone from every node", 20 * SEC, || {
            let rules = nft_rules(&c, node);
            if rules.contains(&db_svc_ip) || rules.contains(&format!(" {node_port} ")) {
                Err(format!("{node} still has rules for {db_svc_ip} / {node_port}"))
            } else {
                Ok(())
            }
        });
    }
    c.wait("db-svc's DNS name gone", 20 * SEC, || {
        match in_pod(&c, "default", "bb", "nslookup db-svc.service-lab.svc.cluster.local") {
            (false, _) => Ok(()),
            (true, out) => Err(out),
        }
    });
    let (ok, out) = in_pod(&c, "default", "bb", "nslookup replicaset-svc.service-lab.svc.cluster.local");
    assert!(ok && out.contains(&db_ip), "the other Service's name must still resolve: {out}");

    // The trace of the course's steps for api-service.
    let trace = c.minik(&["trace", "svc/api-service", "-n", NS]);
    let trace = text(&trace);
    for want in ["1. Service stored", "2-3. Endpoints", "node1: rules programmed", "node2: rules programmed", "node3: rules programmed", "DNS record"] {
        assert!(trace.contains(want), "trace lacks {want:?}:\n{trace}");
    }

    // Kill a node that runs an API pod: NotReady, its pods recreated elsewhere, the
    // Service keeps answering.
    c.ok(&["-n", NS, "scale", "rs", "api-rs", "--replicas=3"]);
    let api = c.wait("3 API pods again", 60 * SEC, || ready_pods(&c, NS, "app=api", 3));
    let victim = ["node2", "node3"].into_iter().find(|n| api.iter().any(|p| p.node == *n)).unwrap_or("node3");
    let out = c.minik(&["kill", victim]);
    assert!(out.status.success(), "minik kill {victim}: {}", text(&out));
    c.wait("the killed node NotReady", 60 * SEC, || {
        let n = c.json(&["get", "node", victim]);
        let ready = n["status"]["conditions"].as_array().cloned().unwrap_or_default().iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready {
            Err(format!("{victim} still Ready"))
        } else {
            Ok(())
        }
    });
    let status = text(&c.minik(&["status"]));
    assert!(
        status.lines().any(|l| l.contains("minilet") && l.contains(victim) && !l.contains("running")),
        "minik status does not show {victim}'s minilet as ended:\n{status}"
    );
    c.wait("API pods recreated on the other nodes", 120 * SEC, || {
        let ready = ready_pods(&c, NS, "app=api", 3)?;
        if ready.iter().any(|p| p.node == victim) {
            Err(format!("still on {victim}: {ready:?}"))
        } else {
            Ok(())
        }
    });
    for _ in 0..5 {
        let (ok, out) = from_ext(&c, &format!("http://{}:30002/demo/hello", NODE_IPS[0]));
        assert!(ok && out == "hello, world!", "after killing {victim} the Service failed: {out}");
    }

    // The node started again (a VM booted again) rejoins: Ready, and it runs pods again.
    let out = c.minik_for(&["start", victim], 300 * SEC * minik_tests::cluster::slowness());
    assert!(out.status.success() && text(&out).contains("Ready"), "minik start {victim}: {}", text(&out));
    c.apply(&sleeper_pod("back", victim));
    let back = c.wait("a pod on the node that rejoined", 90 * SEC, || {
        let p = pods(&c, "default", "").into_iter().find(|p| p.name == "back" && p.ready).ok_or("not ready")?;
        Ok::<_, String>(p)
    });
    assert_eq!(back.node, victim);
    // The pods evicted while it was away (left Terminating: nobody could stop them) are
    // finished by the node that came back, whether it kept its state or lost it (a VM).
    c.wait("no pod left Terminating on the node that rejoined", 60 * SEC, || {
        let all = pods(&c, NS, "").into_iter().chain(pods(&c, "default", ""));
        let left: Vec<PodRow> = all.filter(|p| p.node == victim && p.deleting).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    let hello = c.wait("the API by name from the node that rejoined", 30 * SEC, || {
        match in_pod(&c, "default", "back", "wget -qO- http://api-service.service-lab.svc.cluster.local:8080/demo/hello") {
            (true, out) => Ok(out),
            (false, out) => Err(out),
        }
    });
    assert_eq!(hello, "hello, world!", "from {victim} after it rejoined");
}
