//! External traffic end to end, from a host on the underlay that is not a node:
//! NodePort with `externalTrafficPolicy: Cluster` (masqueraded) and `Local` (client IP
//! kept, this node's endpoints only), a NodePort without endpoints refused, a
//! LoadBalancer IP allocated by the controller manager's servicelb controller, announced
//! on the node's underlay interface and reachable, and a restart of minikproxy under a
//! request loop that loses nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ask, ask_n, counts, Cluster, KillOnDrop, NODE_IP, OUTSIDE_IP};
use minik_tests::bin;

#[test]
fn nodeports_from_outside_cluster_and_local_policy_and_refusal() {
    let mut c = Cluster::new();
    let a = c.pod("a");
    let b = c.pod("b");
    c.start_proxy();

    c.service("npc", "  type: NodePort\n");
    c.api.ok(&[
        "patch",
        "svc",
        "npc",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/nodePort","value":30080}]"#,
    ]);
    c.slice("npc", &[(&a, true, false), (&b, true, false)]);
    c.service("npl", "  type: NodePort\n  externalTrafficPolicy: Local\n");
    c.api.ok(&[
        "patch",
        "svc",
        "npl",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/nodePort","value":30081}]"#,
    ]);
    // b is said to run on another node: Local traffic must not go there.
    c.api.apply(&format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: npl-1\n  labels:\n    kubernetes.io/service-name: npl\naddressType: IPv4\nports:\n- name: http\n  port: 8080\n  protocol: TCP\nendpoints:\n- addresses: [\"{}\"]\n  nodeName: node1\n- addresses: [\"{}\"]\n  nodeName: node2\n",
        a.ip, b.ip
    ));
    c.service("npe", "  type: NodePort\n");
    c.api.ok(&[
        "patch",
        "svc",
        "npe",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/nodePort","value":30082}]"#,
    ]);
    c.slice("npe", &[]);
    c.wait_rules("the three NodePorts", |r| {
        r.contains("tcp . 30080 : goto external-")
            && r.contains("tcp . 30081 : goto external-")
            && r.contains("tcp . 30082 : goto reject-chain")
    });

    // Cluster policy: both endpoints, the client masqueraded to the node.
    let answers = ask_n(&c.outside, &format!("{NODE_IP}:30080"), 40);
    let n = counts(&answers);
    assert_eq!(n.len(), 2, "both endpoints answer: {n:?}");
    assert!(
        answers.iter().all(|(_, seen)| seen != OUTSIDE_IP && seen.starts_with("10.244.1.")),
        "masqueraded: {answers:?}"
    );

    // Local policy: only this node's endpoint, and the client's own IP.
    let answers = ask_n(&c.outside, &format!("{NODE_IP}:30081"), 40);
    assert!(answers.iter().all(|(s, seen)| s == "a" && seen == OUTSIDE_IP), "{answers:?}");

    // No endpoints: refused.
    let err = ask(&c.outside, &format!("{NODE_IP}:30082")).expect_err("no endpoints");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn load_balancer_ip_is_allocated_announced_and_reachable_and_a_restart_loses_nothing() {
    let mut c = Cluster::new();
    let a = c.pod("a");
    let b = c.pod("b");
    c.start_proxy();

    let cm_log = std::fs::File::create(c.api.dir.path().join("controller-manager.log")).expect("log");
    let _cm = KillOnDrop(
        c.node
            .run(|| {
                Command::new(bin("minik-controller-manager"))
                    .arg("--kubeconfig")
                    .arg(&c.api.kubeconfig)
                    .args(["--controllers", "servicelb", "--load-balancer-pool", "192.168.50.200/29"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(cm_log)
                    .spawn()
            })
            .expect("start the controller manager"),
    );

    c.service("lb", "  type: LoadBalancer\n");
    c.slice("lb", &[(&a, true, false), (&b, true, false)]);
    let end = Instant::now() + Duration::from_secs(20);
    let lb_ip = loop {
        let ip = c.api.ok(&["get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
        if !ip.is_empty() {
            break ip;
        }
        assert!(
            Instant::now() < end,
            "no LB IP allocated:\n{}",
            std::fs::read_to_string(c.api.dir.path().join("controller-manager.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(lb_ip, "192.168.50.201", "the first host of the pool");
    // A second one gets the next address, and gives it back when it stops being a LoadBalancer.
    c.service("lb2", "  type: LoadBalancer\n");
    let lb2 = |c: &Cluster| c.api.ok(&["get", "svc", "lb2", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
    let end = Instant::now() + Duration::from_secs(20);
    while lb2(&c) != "192.168.50.202" {
        assert!(Instant::now() < end, "lb2 got no (or the wrong) address: {:?}", lb2(&c));
        std::thread::sleep(Duration::from_millis(100));
    }
    c.api.ok(&["patch", "svc", "lb2", "--type=merge", "-p", r#"{"spec":{"type":"NodePort"}}"#]);
    while !lb2(&c).is_empty() {
        assert!(Instant::now() < end, "lb2 kept its address after becoming a NodePort Service");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.wait_rules("the LB IP", |r| r.contains(&format!("{lb_ip} . tcp . 80 : goto external-")));
    let end = Instant::now() + Duration::from_secs(10);
    while !c.node.ip(&["-4", "addr", "show", "dev", "eth0"]).contains(&format!("{lb_ip}/32")) {
        assert!(Instant::now() < end, "the only Ready node does not announce {lb_ip}:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = counts(&ask_n(&c.outside, &format!("{lb_ip}:80"), 30));
    assert_eq!(n.len(), 2, "both endpoints answer through the LB IP: {n:?}");

    // A restart under a request loop: the rules stay while minikproxy is down and are
    // reconciled in place when it is back, so no request fails.
    let target = format!("{NODE_IP}:{}", c.api.ok(&["get", "svc", "lb", "-o", "jsonpath={.spec.ports[0].nodePort}"]));
    let restarted = std::sync::atomic::AtomicBool::new(false);
    let (sent, failures) = std::thread::scope(|s| {
        let (outside, t, done) = (&c.outside, &target, &restarted);
        // At least 200 requests, and on until the restart is over (bounded).
        let loop_handle = s.spawn(move || {
            let (mut sent, mut failed) = (0, 0);
            while sent < 5000 && (sent < 200 || !done.load(std::sync::atomic::Ordering::SeqCst)) {
                sent += 1;
                if ask(outside, t).is_err() {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (sent, failed)
        });
        std::thread::sleep(Duration::from_millis(50));
        c.stop_proxy();
        c.start_proxy();
        restarted.store(true, std::sync::atomic::Ordering::SeqCst);
        loop_handle.join().expect("request loop")
    });
    assert!(sent >= 200);
    assert_eq!(failures, 0, "requests failed across the restart\n{}", c.log());
    assert!(c.log().matches("full sync").count() >= 2, "the restarted proxy resynced:\n{}", c.log());

    // Deleting the Service takes the address off the interface.
    c.api.ok(&["delete", "svc", "lb"]);
    let end = Instant::now() + Duration::from_secs(10);
    while c.node.ip(&["-4", "addr", "show", "dev", "eth0"]).contains(&format!("{lb_ip}/32")) {
        assert!(Instant::now() < end, "{lb_ip} still announced:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
