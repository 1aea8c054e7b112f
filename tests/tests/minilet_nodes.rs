//! Two minilet nodes joined to one miniapi over an underlay, inside the sandbox: the
//! controller manager's nodeipam controller gives each Node its own pod CIDR, each
//! minilet (`cniConfigFromNode`) writes its cni-bridge conflist from it and routes the
//! other node's pod CIDR via that node's InternalIP, so a pod on one node reaches a pod
//! on the other by pod IP and the server sees the client pod's own IP (no NAT). The
//! nodes use their own credentials (`miniapi kubeconfig`), not the admin's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minik_tests::minilet::MiniletNode;
use minik_tests::pods::{cgi_addr, who_am_i_pod};
use minik_tests::{bin, require_sandbox, sh, Underlay};

/// A process started for the test, ended by PID when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(node: &MiniletNode, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = node
        .ns
        .run(|| Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output())
        .expect("kubectl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> Option<String>, diag: impl Fn() -> String) -> String {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} did not happen within {limit:?}\n{}", diag());
}

/// Runs a closure when dropped (also when the test panics), e.g. to delete its pods.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[test]
fn pods_on_two_nodes_reach_each_other_by_pod_ip_without_nat() {
    require_sandbox();
    let underlay = Underlay::new();
    let mut n1 = MiniletNode::new("10.246.250.0/24", "");
    let mut n2 = MiniletNode::new("10.246.251.0/24", "");
    underlay.plug(&n1.ns, "192.168.77.11/24");
    underlay.plug(&n2.ns, "192.168.77.12/24");

    // The control plane on node 1, listening on its underlay address.
    let api_dir = tempfile::tempdir().expect("tempdir");
    let data = api_dir.path().join("data");
    let log = |name: &str| std::fs::File::create(api_dir.path().join(name)).expect("log");
    let _api = Proc(
        n1.ns
            .run(|| {
                Command::new(bin("miniapi"))
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--listen", "192.168.77.11:6443", "--advertise-address", "192.168.77.11"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log("miniapi.log"))
                    .spawn()
            })
            .expect("start miniapi"),
    );
    let admin = data.join("admin.kubeconfig");
    let diag_api = || std::fs::read_to_string(api_dir.path().join("miniapi.log")).unwrap_or_default();
    wait_for(
        "miniapi ready",
        Duration::from_secs(30),
        || (admin.exists() && kubectl(&n1, &admin, &["get", "--raw", "/readyz"]).0).then(String::new),
        diag_api,
    );
    let _cm = Proc(
        n1.ns
            .run(|| {
                Command::new(bin("minik-controller-manager"))
                    .arg("--kubeconfig")
                    .arg(&admin)
                    .args(["--cluster-cidr", "10.246.0.0/16", "--controllers", "nodeipam"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log("controller-manager.log"))
                    .spawn()
            })
            .expect("start the controller manager"),
    );

    // Each node gets credentials of its own and joins with cniConfigFromNode.
    for (node, name, ip) in [(&mut n1, "nodea", "192.168.77.11"), (&mut n2, "nodeb", "192.168.77.12")] {
        let kc: PathBuf = node.dir.path().join("node.kubeconfig");
        let out = sh(
            &bin("miniapi").display().to_string(),
            &[
                "--data-dir",
                &data.display().to_string(),
                "kubeconfig",
                "--user",
                &format!("system:node:{name}"),
                "--group",
                "system:nodes",
                "--server",
                "https://192.168.77.11:6443",
                "--out",
                &kc.display().to_string(),
            ],
        );
        assert!(out.contains("node.kubeconfig"), "{out}");
        let text = std::fs::read_to_string(&kc).expect("node kubeconfig");
        let admin_text = std::fs::read_to_string(&admin).expect("admin kubeconfig");
        let token = |t: &str| t.lines().find(|l| l.trim_start().starts_with("token:")).map(str::to_string);
        assert!(token(&text).is_some() && token(&text) != token(&admin_text), "the node has a token of its own");
        let cfg = node.dir.path().join("minilet.yaml");
        let base = std::fs::read_to_string(&cfg).expect("config").replace("nodeName: node1", &format!("nodeName: {name}"));
        std::fs::write(
            &cfg,
            format!("{base}kubeconfig: {}\nnodeIP: {ip}\ncniConfigFromNode: true\nclusterCIDR: 10.246.0.0/16\n", kc.display()),
        )
        .expect("config");
        node.start();
    }

    // Distinct pod CIDRs from the cluster CIDR, one per Node.
    let cidrs = wait_for(
        "both nodes get a pod CIDR",
        Duration::from_secs(30),
        || {
            let (_, o) = kubectl(&n1, &admin, &["get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR} {end}"]);
            (o.matches("=10.246.").count() == 2).then_some(o)
        },
        || format!("{}\n{}", n1.log(), std::fs::read_to_string(api_dir.path().join("controller-manager.log")).unwrap_or_default()),
    );
    let cidr_of = |node: &str| -> String {
        cidrs.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{node}="))).map(str::to_string).expect("cidr")
    };
    let (ca, cb) = (cidr_of("nodea"), cidr_of("nodeb"));
    assert_ne!(ca, cb, "{cidrs}");
    assert!(ca.ends_with(".0/24") && cb.ends_with(".0/24"), "{cidrs}");

    // Each node routes the other's pod CIDR via the other's InternalIP (minik's proto 211).
    let route_b = wait_for(
        "node a routes node b's pod CIDR",
        Duration::from_secs(30),
        || {
            let r = n1.ns.ip(&["route", "show", "proto", "211"]);
            r.contains(&format!("{cb} via 192.168.77.12")).then_some(r)
        },
        || n1.log(),
    );
    assert!(!route_b.contains(&ca), "no route to its own pod CIDR: {route_b}");
    wait_for(
        "node b routes node a's pod CIDR",
        Duration::from_secs(30),
        || n2.ns.ip(&["route", "show", "proto", "211"]).contains(&format!("{ca} via 192.168.77.11")).then(String::new),
        || n2.log(),
    );

    // A pod on each node, with an IP from its node's CIDR; deleted at the end even if an
    // assertion fails (pods outlive minilet by design, so nothing else would stop them).
    let _delete_pods = OnDrop(|| {
        let _ = kubectl(&n1, &admin, &["delete", "pod", "pa", "pb", "--ignore-not-found", "--wait=true", "--timeout=30s"]);
    });
    for (pod, node) in [("pa", "nodea"), ("pb", "nodeb")] {
        let file = n1.dir.path().join(format!("{pod}.yaml"));
        std::fs::write(&file, who_am_i_pod(pod, node)).expect("manifest");
        let (ok, out) = kubectl(&n1, &admin, &["apply", "-f", &file.display().to_string()]);
        assert!(ok, "{out}");
    }
    let ip_of = |pod: &str, cidr: &str| -> String {
        let prefix = cidr.trim_end_matches("0/24").to_string();
        wait_for(
            &format!("pod {pod} Ready with an IP from {cidr}"),
            Duration::from_secs(60),
            || {
                let (_, o) = kubectl(&n1, &admin, &["get", "pod", pod, "-o", "jsonpath={.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}"]);
                (o.starts_with(&prefix) && o.ends_with("True")).then(|| o.split_whitespace().next().unwrap_or_default().to_string())
            },
            || format!("{}\n{}", n1.log(), n2.log()),
        )
    };
    let (ipa, ipb) = (ip_of("pa", &ca), ip_of("pb", &cb));

    // Pod a → pod b across the underlay: b sees a's pod IP, and the other way round.
    for (from, to, from_ip) in [("pa", &ipb, &ipa), ("pb", &ipa, &ipb)] {
        let (ok, out) = kubectl(&n1, &admin, &["exec", from, "--", "wget", "-qO-", &format!("http://{to}:8080/cgi-bin/ip")]);
        assert!(ok, "exec in {from}: {out}");
        assert_eq!(cgi_addr(&out), from_ip.as_str(), "the server sees the client pod's IP (no NAT)");
    }

    // The conflist minilet wrote names the node's CIDR, the route and the cluster CIDR.
    let conflist = std::fs::read_to_string(n2.dir.path().join("net.d/10-minik.conflist")).expect("conflist");
    assert!(conflist.contains(&cb) && conflist.contains("192.168.77.11") && conflist.contains("10.246.0.0/16"), "{conflist}");

    for pod in ["pa", "pb"] {
        let (ok, out) = kubectl(&n1, &admin, &["delete", "pod", pod, "--wait=true", "--timeout=30s"]);
        assert!(ok, "{out}");
    }
}
