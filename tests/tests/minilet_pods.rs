//! minilet on one node, inside the sandbox: pods from static manifests with real images,
//! cni-bridge networking, the OCI runtime, cgroups, probes, restarts and restart safety.

use std::time::Duration;

use minik_tests::minilet::MiniletNode;
use minik_tests::require_sandbox;
use serde_json::Value;

fn cstatus<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"].as_array().is_some_and(|a| a.iter().all(|c| c["state"]["running"].is_object()))
}

#[test]
fn containers_of_a_pod_share_localhost_and_ip_but_not_pids() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.1.0/24", "");
    node.start();
    node.apply(
        "shared.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"]
  - name: client
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
"#,
    );
    let pod = node.wait_pod("shared", "Running", Duration::from_secs(30), running);
    let ip = pod["status"]["podIP"].as_str().expect("pod IP").to_string();
    assert!(ip.starts_with("10.247.1."), "pod IP from the node's pod CIDR: {ip}");

    let (code, body) = node.exec("shared", "client", &["wget", "-qO-", "http://127.0.0.1:8080/"]);
    assert_eq!((code, body.trim()), (0, "hello-from-web"), "client reaches web over localhost");

    let addr = |c: &str| node.exec("shared", c, &["ip", "-4", "-o", "addr", "show", "eth0"]).1;
    assert!(addr("web").contains(&ip) && addr("client").contains(&ip), "both see the pod IP");
    let pid1 = |c: &str| node.exec("shared", c, &["cat", "/proc/1/cmdline"]).1;
    assert!(pid1("web").contains("httpd") || pid1("web").starts_with("sh"), "web's PID 1 is its own process");
    assert!(pid1("client").starts_with("sleep"), "client's PID 1 is sleep: {}", pid1("client"));
    assert_eq!(node.exec("shared", "client", &["hostname"]).1.trim(), "shared-node1", "hostname = pod name");
    let resolv = node.exec("shared", "client", &["cat", "/etc/resolv.conf"]).1;
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv}");
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    let list = node.cli(&["pods"]);
    assert!(list.contains("shared-node1") && list.contains("2/2") && list.contains("Running"), "{list}");
}

#[test]
fn two_pods_reach_each_other_by_pod_ip() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.2.0/24", "");
    node.start();
    for name in ["a", "b"] {
        node.apply(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sh\", \"-c\", \"mkdir -p /w && hostname > /w/index.html && exec httpd -f -p 80 -h /w\"]\n"
            ),
        );
    }
    let a = node.wait_pod("a", "Running", Duration::from_secs(30), running);
    let b = node.wait_pod("b", "Running", Duration::from_secs(30), running);
    let ipb = b["status"]["podIP"].as_str().expect("ip b");
    assert_ne!(a["status"]["podIP"], b["status"]["podIP"]);
    let (code, body) = node.exec("a", "main", &["wget", "-qO-", &format!("http://{ipb}/")]);
    assert_eq!((code, body.trim()), (0, "b-node1"));
}

#[test]
fn memory_limit_gives_oomkilled_and_pids_limit_holds() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.3.0/24", "podPidsLimit: 12\n");
    node.start();
    node.apply(
        "hog.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: ["sh", "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"]
    resources:
      limits: {memory: 32Mi}
"#,
    );
    let pod = node.wait_pod("hog", "terminated", Duration::from_secs(40), |p| cstatus(p, "hog")["state"]["terminated"].is_object());
    assert_eq!(cstatus(&pod, "hog")["state"]["terminated"]["reason"], "OOMKilled", "{}", pod["status"]);
    assert_eq!(pod["status"]["phase"], "Failed");

    node.apply(
        "forks.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: forks}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: forks
    image: busybox
    command: ["sh", "-c", "sh -c 'for i in $(seq 40); do sleep 300 & done' 2>/dev/null; exec sleep 300"]
"#,
    );
    let pod = node.wait_pod("forks", "Running", Duration::from_secs(30), running);
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let id = cstatus(&pod, "forks")["containerID"].as_str().unwrap_or_default().trim_start_matches("minik://").to_string();
    // The container's pids cgroup, wherever minilet's own pids cgroup is.
    let found = std::process::Command::new("find")
        .args(["/sys/fs/cgroup/pids", "-type", "d", "-path", &format!("*/minik/pod{uid}/{id}")])
        .output()
        .expect("find");
    let dir = String::from_utf8_lossy(&found.stdout).lines().next().unwrap_or_default().to_string();
    assert!(!dir.is_empty(), "the container has a pids cgroup");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap_or_default().trim().to_string();
    assert_eq!(read("pids.max"), "12");
    std::thread::sleep(Duration::from_secs(1));
    let current: u32 = read("pids.current").parse().unwrap_or(999);
    assert!((10..=12).contains(&current), "40 forks were tried, the limit holds at 12: {current}");
}

#[test]
fn probes_flip_ready_and_liveness_restarts_with_growing_backoff() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.4.0/24", "backoffBase: 1\nbackoffMax: 8\n");
    node.start();
    node.apply(
        "ready.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 4; rm /tmp/ready; sleep 3600"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let ready = |p: &Value| p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    node.wait_pod("ready", "not Ready at first", Duration::from_secs(30), |p| running(p) && !ready(p));
    node.wait_pod("ready", "Ready once the file exists", Duration::from_secs(30), ready);
    node.wait_pod("ready", "not Ready again once it is gone", Duration::from_secs(30), |p| !ready(p));

    node.apply(
        "live.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "mkdir -p /w; echo ok > /w/index.html; httpd -f -p 8080 -h /w & sleep 1; kill %1; sleep 3600"]
    livenessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    // Each attempt's liveness probe fails once httpd is gone; the kubelet restarts it,
    // then backs off 1 s, 2 s, 4 s: the waiting messages must show that growth in order.
    let mut seen: Vec<String> = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < end && seen.len() < 3 {
        if let Some(p) = node.pod("live") {
            if let Some(m) = cstatus(&p, "main")["state"]["waiting"]["message"].as_str() {
                let m = m.split(' ').nth(1).unwrap_or_default().to_string();
                if cstatus(&p, "main")["state"]["waiting"]["reason"] == "CrashLoopBackOff" && seen.last() != Some(&m) {
                    seen.push(m);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, vec!["1s", "2s", "4s"], "back-off grows; log:\n{}", node.log());
    let p = node.pod("live").expect("pod");
    assert!(cstatus(&p, "main")["restartCount"].as_i64().unwrap_or(0) >= 3);
    let ev = node.cli(&["events", "live"]);
    assert!(ev.contains("Liveness probe failed") && ev.contains("Killing"), "{ev}");
}

#[test]
fn the_demo_api_reaches_its_db_over_localhost_and_stores_a_person() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.5.0/24", "");
    node.start();
    node.apply(
        "demo.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: go-demo-2
  labels: {type: backend, service: go-demo-2}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: db
    image: demo-db
    command: ["mongod"]
    args: ["--rest", "--httpinterface"]
    ports: [{containerPort: 28017, protocol: TCP}]
  - name: api
    image: localhost/demo-api:1.0
    env: [{name: DB, value: localhost}]
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /demo/hello, port: 8080}
      periodSeconds: 1
    livenessProbe:
      httpGet: {path: /demo/hello, port: 8080}
"#,
    );
    let pod = node.wait_ready("go-demo-2");
    let ip = pod["status"]["podIP"].as_str().expect("ip").to_string();
    let hello = node.ns.exec("busybox", &["wget", "-qO-", &format!("http://{ip}:8080/demo/hello")]);
    assert_eq!(String::from_utf8_lossy(&hello.stdout), "hello, world!");
    let post = node.ns.exec(
        "busybox",
        &["wget", "-qO-", "--header", "Content-Type: application/json", "--post-data", r#"{"name":"Viktor"}"#, &format!("http://{ip}:8080/demo/person")],
    );
    assert!(post.status.success(), "POST /demo/person: {}", String::from_utf8_lossy(&post.stderr));
    let people = node.ns.exec("busybox", &["wget", "-qO-", &format!("http://{ip}:8080/demo/person")]);
    assert!(String::from_utf8_lossy(&people.stdout).contains("Viktor"), "the person went through the db: {}", String::from_utf8_lossy(&people.stdout));
    let status = node.ns.exec("busybox", &["wget", "-qO-", &format!("http://{ip}:28017/")]);
    assert!(status.status.success(), "the db's HTTP interface answers on 28017");
}

#[test]
fn a_missing_image_says_which_and_how_to_import_it() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.6.0/24", "");
    node.start();
    node.apply("nope.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: nope}\nspec:\n  containers:\n  - name: main\n    image: mongo:3.3\n");
    let pod = node.wait_pod("nope", "a waiting reason", Duration::from_secs(20), |p| {
        cstatus(p, "main")["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });
    let msg = cstatus(&pod, "main")["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("mongo:3.3") && msg.contains("minilet image import"), "{msg}");
}

#[test]
fn confinement_default_caps_masked_paths_pivoted_rootfs() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.7.0/24", "");
    node.start();
    let marker = format!("/tmp/minik-host-marker-{}", std::process::id());
    std::fs::write(&marker, "host").expect("marker");
    node.apply(
        "conf.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: conf}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {allowPrivilegeEscalation: false}
"#,
    );
    node.wait_pod("conf", "Running", Duration::from_secs(30), running);
    let status = node.exec("conf", "main", &["cat", "/proc/self/status"]).1;
    assert!(status.contains("CapBnd:\t00000000a80425fb"), "containerd's default capabilities: {status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    // /proc/kcore does not exist on every kernel; /proc/timer_list does, and is masked too.
    assert!(!std::fs::read_to_string("/proc/timer_list").unwrap_or_default().is_empty(), "the host's timer_list has content");
    let (_, masked) = node.exec("conf", "main", &["sh", "-c", "cat /proc/timer_list | wc -c"]);
    assert_eq!(masked.trim(), "0", "/proc/timer_list is masked");
    let (_, acpi) = node.exec("conf", "main", &["ls", "-A", "/proc/acpi"]);
    assert_eq!(acpi.trim(), "", "/proc/acpi is masked by an empty read-only tmpfs");
    let (code, _) = node.exec("conf", "main", &["cat", &marker]);
    assert_ne!(code, 0, "host files are invisible in the container");
    let (code, _) = node.exec("conf", "main", &["sh", "-c", "echo 1 > /proc/sys/kernel/hostname"]);
    assert_ne!(code, 0, "/proc/sys is read-only");
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn minilet_killed_and_restarted_adopts_its_pods() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.8.0/24", "");
    node.start();
    for name in ["p1", "p2"] {
        node.apply(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n"),
        );
    }
    let before: Vec<Value> = ["p1", "p2"].iter().map(|n| node.wait_pod(n, "Running", Duration::from_secs(30), running)).collect();
    node.kill9();
    std::thread::sleep(Duration::from_millis(300));
    node.start();
    std::thread::sleep(Duration::from_secs(2));
    for (n, b) in ["p1", "p2"].iter().zip(&before) {
        let after = node.wait_pod(n, "Running", Duration::from_secs(30), running);
        assert_eq!(after["status"]["podIP"], b["status"]["podIP"], "{n}: same IP");
        assert_eq!(cstatus(&after, "main")["containerID"], cstatus(b, "main")["containerID"], "{n}: same container, not restarted");
        assert_eq!(cstatus(&after, "main")["restartCount"], 0);
    }
    assert_eq!(node.allocated_ips().len(), 2, "no IP leaked or duplicated");
    assert_eq!(node.ns.links().iter().filter(|l| l.starts_with("veth")).count(), 2, "one veth per pod");
}

#[test]
fn a_layout_made_by_umoci_imports_and_runs() {
    require_sandbox();
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    let (l, b) = (layout.display().to_string(), bundle.display().to_string());
    let image = format!("{l}:v1");
    minik_tests::sh("umoci", &["init", "--layout", &l]);
    minik_tests::sh("umoci", &["new", "--image", &image]);
    minik_tests::sh("umoci", &["unpack", "--image", &image, &b]);
    let root = bundle.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
    for applet in ["sh", "echo", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("umoci-was-here"), "made by umoci\n").expect("marker");
    minik_tests::sh("umoci", &["repack", "--image", &image, &b]);
    minik_tests::sh("umoci", &["config", "--image", &image, "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", "cat /umoci-was-here; sleep 3600", "--config.env", "PATH=/bin"]);

    let mut node = MiniletNode::new("10.247.9.0/24", "");
    node.cli(&["image", "import", &l, "--name", "umoci-made"]);
    assert!(node.cli(&["image", "list"]).contains("localhost/umoci-made:v1"));
    node.start();
    node.apply("u.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: u}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: umoci-made:v1\n");
    node.wait_pod("u", "Running", Duration::from_secs(30), running);
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let mut logs = String::new();
    while std::time::Instant::now() < end && !logs.contains("made by umoci") {
        logs = node.cli(&["logs", "u"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(logs.contains("made by umoci"), "the image's Cmd ran and its log was captured: {logs:?}");
}

#[test]
fn static_manifests_that_change_or_vanish_replace_or_remove_their_pods() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.10.0/24", "");
    node.start();
    let manifest = |greeting: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: s}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sh\", \"-c\", \"echo {greeting}; sleep 3600\"]\n")
    };
    node.apply("s.yaml", &manifest("first"));
    let one = node.wait_pod("s", "Running", Duration::from_secs(30), running);
    node.apply("s.yaml", &manifest("second"));
    let replaced = |p: &Value| p["metadata"]["uid"] != one["metadata"]["uid"];
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let mut two = Value::Null;
    while std::time::Instant::now() < end {
        if let Some(p) = node.pods().into_iter().find(|p| replaced(p) && running(p)) {
            two = p;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(two["spec"]["containers"][0]["command"][2], "echo second; sleep 3600", "a new pod runs the new manifest");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end && node.pods().len() != 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(node.pods().len(), 1, "the old pod is stopped and gone");
    node.remove("s.yaml");
    node.wait_pod_gone("s", Duration::from_secs(30));
    assert!(node.allocated_ips().is_empty(), "its IP is released");
}

#[test]
fn a_container_that_died_while_minilet_was_down_is_reported_and_restarted() {
    require_sandbox();
    let mut node = MiniletNode::new("10.247.11.0/24", "");
    node.start();
    node.apply(
        "d.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: d}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sh\", \"-c\", \"rm -f /tmp/stop; while [ ! -f /tmp/stop ]; do sleep 0.2; done; exit 3\"]\n",
    );
    node.wait_pod("d", "Running", Duration::from_secs(30), running);
    node.kill9();
    let (code, _) = node.exec("d", "main", &["touch", "/tmp/stop"]);
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_secs(1));
    node.start();
    let p = node.wait_pod("d", "restarted", Duration::from_secs(30), |p| {
        cstatus(p, "main")["restartCount"].as_i64() == Some(1) && cstatus(p, "main")["state"]["running"].is_object()
    });
    assert_eq!(cstatus(&p, "main")["lastState"]["terminated"]["exitCode"], 3, "{}", p["status"]);
}
