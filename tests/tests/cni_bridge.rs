//! cni-bridge against real kernel objects, inside the sandbox: pods on one node, pods on
//! two nodes (routes, no NAT, masquerade to the outside), every spec version, CHECK, DEL,
//! GC, STATUS and the error codes of bad input.

use minik_tests::tcp::{ask, who_am_i};
use minik_tests::{require_sandbox, Netns, Plugin, Underlay};
use serde_json::{json, Value};

/// A node with its cni-bridge config and a private IPAM data dir.
struct Node {
    ns: Netns,
    conf: Value,
    _data: tempfile::TempDir,
}

impl Node {
    fn new(subnet: &str, extra: Value) -> Self {
        let ns = Netns::new("node");
        let data = tempfile::tempdir().expect("tempdir");
        let mut conf = json!({
            "cniVersion": "1.1.0",
            "name": "podnet",
            "type": "cni-bridge",
            "bridge": "cni0",
            "isDefaultGateway": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data.path()},
        });
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        Node { ns, conf, _data: data }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self._data.path().join("podnet")
    }

    /// ADDs a new pod netns and returns it with the ADD result.
    fn add_pod(&self, id: &str) -> (Netns, Value) {
        let pod = Netns::new("pod");
        let r = Plugin::cni_bridge().run(&self.ns, "ADD", &self.conf, id, &pod.path_str(), "eth0");
        assert!(r.ok, "ADD {id} failed: {} {}", r.out, r.stderr);
        (pod, r.out)
    }

    fn del_pod(&self, id: &str, pod: Option<&Netns>) {
        let path = pod.map(Netns::path_str).unwrap_or_default();
        let r = Plugin::cni_bridge().run(&self.ns, "DEL", &self.conf, id, &path, "eth0");
        assert!(r.ok, "DEL {id} failed: {} {}", r.out, r.stderr);
    }
}

fn ip_of(result: &Value) -> String {
    let addr = result["ips"][0]["address"].as_str().expect("result has an IP");
    addr.split('/').next().unwrap_or_default().to_string()
}

#[test]
fn two_pods_on_one_node_talk_by_pod_ip_through_the_gateway() {
    require_sandbox();
    let node = Node::new("10.244.1.0/24", json!({"mtu": 1400, "hairpinMode": true}));
    let (a, ra) = node.add_pod("pod-a");
    let (b, rb) = node.add_pod("pod-b");

    // The result has the spec's shape: bridge, host veth, container eth0 in its sandbox.
    assert_eq!(ra["cniVersion"], "1.1.0");
    assert_eq!(ra["interfaces"][0]["name"], "cni0");
    assert_eq!(ra["interfaces"][2]["name"], "eth0");
    assert_eq!(ra["interfaces"][2]["sandbox"], json!(a.path_str()));
    assert_eq!(ra["ips"][0]["interface"], 2);
    assert_eq!(ra["ips"][0]["gateway"], "10.244.1.1");
    assert_eq!(ra["routes"][0]["dst"], "0.0.0.0/0");
    let (ipa, ipb) = (ip_of(&ra), ip_of(&rb));
    assert_ne!(ipa, ipb);
    assert!(ipa.starts_with("10.244.1."), "{ipa}");

    // Pod to pod, and the server sees the client's own pod IP.
    let srv = who_am_i(&b, &format!("{ipb}:8080"));
    assert_eq!(ask(&a, &srv.addr.to_string()).expect("a reaches b"), ipa);

    // The gateway answers and the default route uses it.
    let gw = who_am_i(&node.ns, "10.244.1.1:9000");
    assert_eq!(ask(&a, &gw.addr.to_string()).expect("a reaches its gateway"), ipa);
    assert!(a.ip(&["route", "show", "default"]).contains("via 10.244.1.1 dev eth0"));

    // MTU on both ends, hairpin on the bridge port, forwarding on.
    assert!(a.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
    let host_veth = ra["interfaces"][1]["name"].as_str().expect("host veth").to_string();
    assert!(node.ns.ip(&["link", "show", &host_veth]).contains("mtu 1400"));
    assert!(node.ns.ip(&["-d", "link", "show", &host_veth]).contains("hairpin on"));
    assert_eq!(node.ns.sysctl("net/ipv4/ip_forward"), "1");

    node.del_pod("pod-a", Some(&a));
    node.del_pod("pod-b", Some(&b));
    assert!(!node.ns.links().iter().any(|l| l.starts_with("veth")), "{:?}", node.ns.links());
}

#[test]
fn pods_on_two_nodes_talk_without_nat_and_leave_the_cluster_masqueraded() {
    require_sandbox();
    let ul = Underlay::new();
    let n1 = Node::new(
        "10.244.1.0/24",
        json!({"ipMasq": true, "nodeRoutes": [{"dst": "10.244.2.0/24", "via": "192.168.50.12"}]}),
    );
    let n2 = Node::new(
        "10.244.2.0/24",
        json!({"ipMasq": true, "nodeRoutes": [{"dst": "10.244.1.0/24", "via": "192.168.50.11"}]}),
    );
    let outside = Netns::new("ext");
    ul.plug(&n1.ns, "192.168.50.11/24");
    ul.plug(&n2.ns, "192.168.50.12/24");
    ul.plug(&outside, "192.168.50.100/24");

    let (p1, r1) = n1.add_pod("p1");
    let (p2, r2) = n2.add_pod("p2");
    let (ip1, ip2) = (ip_of(&r1), ip_of(&r2));
    assert!(n1.ns.ip(&["route", "show", "proto", "211"]).contains("10.244.2.0/24 via 192.168.50.12"));

    // Cross-node pod to pod: the server sees the client pod's own IP (no NAT).
    let srv = who_am_i(&p2, &format!("{ip2}:8080"));
    assert_eq!(ask(&p1, &srv.addr.to_string()).expect("p1 reaches p2"), ip1);

    // To an address outside the pod CIDRs: masqueraded to the node's address.
    let ext = who_am_i(&outside, "192.168.50.100:8080");
    assert_eq!(ask(&p1, &ext.addr.to_string()).expect("p1 reaches the outside host"), "192.168.50.11");

    // DEL removes the masquerade entry: the set no longer holds the pod's IP.
    n1.del_pod("p1", Some(&p1));
    let set = n1.ns.exec("nft", &["list", "table", "inet", "minik_cni"]);
    assert!(set.status.success());
    assert!(!String::from_utf8_lossy(&set.stdout).contains(&ip1));
    n2.del_pod("p2", Some(&p2));
}

#[test]
fn every_supported_version_gets_a_result_of_that_version() {
    require_sandbox();
    let node = Node::new("10.244.3.0/24", json!({}));
    let versions = Plugin::cni_bridge().run(&node.ns, "VERSION", &json!({"cniVersion": "1.1.0"}), "", "", "");
    assert!(versions.ok, "{}", versions.out);
    let list = versions.out["supportedVersions"].as_array().expect("list").clone();
    assert_eq!(list.len(), 5);
    for v in list {
        let v = v.as_str().expect("string");
        let mut conf = node.conf.clone();
        conf["cniVersion"] = json!(v);
        let pod = Netns::new("pod");
        let id = format!("ver-{}", v.replace('.', "-"));
        let r = Plugin::cni_bridge().run(&node.ns, "ADD", &conf, &id, &pod.path_str(), "eth0");
        assert!(r.ok, "ADD at {v}: {}", r.out);
        assert_eq!(r.out["cniVersion"], json!(v));
        let has_version_field = r.out["ips"][0].get("version").is_some();
        assert_eq!(has_version_field, v.starts_with("0."), "ips[].version at {v}");
        let check = {
            let mut c = conf.clone();
            c["prevResult"] = r.out.clone();
            Plugin::cni_bridge().run(&node.ns, "CHECK", &c, &id, &pod.path_str(), "eth0")
        };
        if v.starts_with("0.3") {
            assert_eq!(check.code(), Some(1), "CHECK is not in {v}");
        } else {
            assert!(check.ok, "CHECK at {v}: {}", check.out);
        }
        let d = Plugin::cni_bridge().run(&node.ns, "DEL", &conf, &id, &pod.path_str(), "eth0");
        assert!(d.ok, "DEL at {v}: {}", d.out);
    }
}

#[test]
fn check_detects_a_removed_address_and_del_is_idempotent() {
    require_sandbox();
    let node = Node::new("10.244.4.0/24", json!({}));
    let (pod, r) = node.add_pod("chk");
    let mut conf = node.conf.clone();
    conf["prevResult"] = r.clone();
    let ok = Plugin::cni_bridge().run(&node.ns, "CHECK", &conf, "chk", &pod.path_str(), "eth0");
    assert!(ok.ok, "CHECK of an intact attachment: {}", ok.out);

    let addr = r["ips"][0]["address"].as_str().expect("address").to_string();
    pod.ip(&["addr", "del", &addr, "dev", "eth0"]);
    let bad = Plugin::cni_bridge().run(&node.ns, "CHECK", &conf, "chk", &pod.path_str(), "eth0");
    assert!(!bad.ok);
    assert!(bad.out["msg"].as_str().unwrap_or_default().contains(&addr), "{}", bad.out);

    // DEL twice, and DEL after the netns is gone.
    node.del_pod("chk", Some(&pod));
    node.del_pod("chk", Some(&pod));
    let (pod2, _) = node.add_pod("gone");
    let path = pod2.path_str();
    drop(pod2);
    let r = Plugin::cni_bridge().run(&node.ns, "DEL", &node.conf, "gone", &path, "eth0");
    assert!(r.ok, "DEL with a vanished netns: {}", r.out);
    assert_eq!(std::fs::read_dir(node.data_dir()).expect("data dir").filter(|e| {
        e.as_ref().map(|e| e.file_name().to_string_lossy().starts_with("10.")).unwrap_or(false)
    }).count(), 0, "no IP left allocated");
}

#[test]
fn add_is_idempotent_on_retry() {
    require_sandbox();
    let node = Node::new("10.244.5.0/24", json!({}));
    let pod = Netns::new("pod");
    let first = Plugin::cni_bridge().run(&node.ns, "ADD", &node.conf, "retry", &pod.path_str(), "eth0");
    assert!(first.ok, "{}", first.out);
    // A runtime that lost the answer retries after a DEL-less restart: same IP, one veth.
    pod.ip(&["link", "del", "eth0"]);
    let second = Plugin::cni_bridge().run(&node.ns, "ADD", &node.conf, "retry", &pod.path_str(), "eth0");
    assert!(second.ok, "{}", second.out);
    assert_eq!(ip_of(&first.out), ip_of(&second.out));
    assert_eq!(node.ns.links().iter().filter(|l| l.starts_with("veth")).count(), 1);
    node.del_pod("retry", Some(&pod));
}

#[test]
fn gc_frees_what_is_not_valid_and_status_reports_unavailability() {
    require_sandbox();
    let node = Node::new("10.244.6.0/29", json!({"ipMasq": true}));
    // .1 is the gateway, .2-.6 are the five usable addresses.
    let pods: Vec<(Netns, Value)> = (0..5).map(|i| node.add_pod(&format!("gc{i}"))).collect();
    let mut status_conf = node.conf.clone();
    status_conf.as_object_mut().map(|o| o.remove("prevResult"));
    let st = Plugin::cni_bridge().run_env(&node.ns, &status_conf, &[("CNI_COMMAND", "STATUS")]);
    assert_eq!(st.code(), Some(50), "range full must be code 50: {}", st.out);

    let mut gc = node.conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc0", "ifname": "eth0"}]);
    let r = Plugin::cni_bridge().run_env(&node.ns, &gc, &[("CNI_COMMAND", "GC")]);
    assert!(r.ok, "GC: {}", r.out);
    let kept: Vec<String> = std::fs::read_dir(node.data_dir())
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n.starts_with("10."))
        .collect();
    assert_eq!(kept, vec![ip_of(&pods[0].1)], "only gc0's IP is kept");
    assert_eq!(node.ns.links().iter().filter(|l| l.starts_with("veth")).count(), 1, "stale veths removed");
    let st = Plugin::cni_bridge().run_env(&node.ns, &status_conf, &[("CNI_COMMAND", "STATUS")]);
    assert!(st.ok, "STATUS after GC: {}", st.out);

    // An unusable data dir (under a regular file) is unavailability too.
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    let mut bad = status_conf.clone();
    bad["ipam"]["dataDir"] = json!(file.path().join("sub"));
    let st = Plugin::cni_bridge().run_env(&node.ns, &bad, &[("CNI_COMMAND", "STATUS")]);
    assert_eq!(st.code(), Some(50), "{}", st.out);
}

#[test]
fn bad_input_gets_the_right_error_code() {
    require_sandbox();
    let node = Node::new("10.244.7.0/24", json!({}));
    let pod = Netns::new("pod");
    let path = pod.path_str();
    let add = |id: &str| {
        vec![("CNI_COMMAND", "ADD".to_string()), ("CNI_CONTAINERID", id.to_string()), ("CNI_NETNS", path.clone()), ("CNI_IFNAME", "eth0".to_string())]
    };
    let run = |stdin: &[u8], env: Vec<(&str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Plugin::cni_bridge().run_raw(&node.ns, stdin, &env)
    };
    let conf = |f: &dyn Fn(&mut Value)| {
        let mut c = node.conf.clone();
        f(&mut c);
        serde_json::to_vec(&c).expect("json")
    };
    let cases: Vec<(&str, Vec<u8>, Vec<(&str, String)>, u64)> = vec![
        ("malformed JSON", b"{\"cniVersion\": ".to_vec(), add("e1"), 6),
        ("unknown version", conf(&|c| c["cniVersion"] = json!("9.9.9")), add("e2"), 1),
        ("bad subnet", conf(&|c| c["ipam"]["ranges"] = json!([[{"subnet": "10.244.7.0/33"}]])), add("e3"), 7),
        ("near-miss key", conf(&|c| c["isGatway"] = json!(true)), add("e4"), 7),
        ("bad mtu", conf(&|c| c["mtu"] = json!(-5)), add("e5"), 7),
        (
            "missing ifname",
            conf(&|_| {}),
            vec![("CNI_COMMAND", "ADD".into()), ("CNI_CONTAINERID", "e6".into()), ("CNI_NETNS", path.clone())],
            4,
        ),
        ("no command", conf(&|_| {}), vec![], 4),
        ("netns that does not exist", conf(&|_| {}), {
            let mut e = add("e8");
            e[2].1 = "/run/netns/does-not-exist".into();
            e
        }, 3),
    ];
    for (what, stdin, env, code) in cases {
        let r = run(&stdin, env);
        assert_eq!(r.code(), Some(code), "{what}: {}", r.out);
        assert!(!r.out["msg"].as_str().unwrap_or_default().is_empty(), "{what}: a message says what was wrong");
    }
    // The error for a bad field names it.
    let r = run(&conf(&|c| c["ipam"]["ranges"] = json!([[{"subnet": "10.244.7.0/33"}]])), add("e9"));
    assert!(r.out["msg"].as_str().unwrap_or_default().contains("ipam.ranges[0][0].subnet"), "{}", r.out);
    // Nothing was left behind by the failed ADDs.
    assert!(!node.ns.links().iter().any(|l| l.starts_with("veth")));
}
