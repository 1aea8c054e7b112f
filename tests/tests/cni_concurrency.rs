//! cni-bridge under concurrency and crashes: 200 ADDs at once on one node get 200
//! distinct IPs and 200 DELs empty the range; ADDs killed with SIGKILL midway leave
//! leftovers that GC clears, after which allocation is consistent again.

use std::collections::HashSet;
use std::time::Duration;

use minik_tests::{require_sandbox, Netns, Plugin};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

fn conf(data: &std::path::Path, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": "conc", "type": "cni-bridge", "bridge": "cni0",
        "isDefaultGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data}
    })
}

fn allocated(data: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(data.join("conc"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

fn veths(node: &Netns) -> usize {
    node.links().iter().filter(|l| l.starts_with("veth")).count()
}

#[test]
fn two_hundred_concurrent_adds_get_distinct_ips_and_dels_empty_the_range() {
    require_sandbox();
    let node = Netns::new("node");
    let data = tempfile::tempdir().expect("tempdir");
    let conf = conf(data.path(), "10.246.0.0/24");
    let pods: Vec<Netns> = (0..200).map(|_| Netns::new("p")).collect();
    let plugin = Plugin::cni_bridge();

    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| plugin.spawn(&node, "ADD", &conf, &format!("c{i}"), &p.path_str(), "eth0"))
        .collect();
    let mut ips = HashSet::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "ADD c{i}: {text} {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_str(&text).expect("result JSON");
        ips.insert(v["ips"][0]["address"].as_str().expect("ip").to_string());
    }
    assert_eq!(ips.len(), 200, "200 distinct IPs");
    assert_eq!(allocated(data.path()).len(), 200);
    assert_eq!(veths(&node), 200);

    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| plugin.spawn(&node, "DEL", &conf, &format!("c{i}"), &p.path_str(), "eth0"))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "DEL c{i}: {}", String::from_utf8_lossy(&out.stdout));
    }
    assert!(allocated(data.path()).is_empty(), "range empty after 200 DELs");
    assert_eq!(veths(&node), 0);
}

#[test]
fn adds_killed_midway_are_cleaned_by_gc_and_allocation_stays_consistent() {
    require_sandbox();
    let node = Netns::new("node");
    let data = tempfile::tempdir().expect("tempdir");
    let conf = conf(data.path(), "10.246.1.0/24");
    let pods: Vec<Netns> = (0..60).map(|_| Netns::new("k")).collect();
    let plugin = Plugin::cni_bridge();

    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| (i, plugin.spawn(&node, "ADD", &conf, &format!("k{i}"), &p.path_str(), "eth0")))
        .collect();
    // Kill every other ADD, by the PID we started, at staggered moments of its run.
    let mut survivors = Vec::new();
    let mut killed = 0;
    for (i, c) in children {
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_millis((i % 7) as u64));
            if kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
            let _ = c.wait_with_output();
        } else {
            let out = c.wait_with_output().expect("wait");
            assert!(out.status.success(), "ADD k{i}: {}", String::from_utf8_lossy(&out.stdout));
            survivors.push(i);
        }
    }
    assert!(killed > 0, "some ADDs were killed");
    // Some killed ADDs may have finished first: ask the plugin state what they hold.
    let valid: Vec<Value> = survivors.iter().map(|i| json!({"containerID": format!("k{i}"), "ifname": "eth0"})).collect();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = Value::Array(valid);
    let r = plugin.run_env(&node, &gc, &[("CNI_COMMAND", "GC")]);
    assert!(r.ok, "GC: {} {}", r.out, r.stderr);

    // Exactly the survivors hold IPs and veths; their IP files name them.
    let held = allocated(data.path());
    assert_eq!(held.len(), survivors.len(), "only survivors hold IPs: {held:?}");
    assert_eq!(veths(&node), survivors.len(), "only survivors have veths");
    let nft = String::from_utf8_lossy(&node.exec("nft", &["-j", "list", "table", "inet", "minik_cni"]).stdout).to_string();
    for i in (1..60).step_by(2) {
        assert!(!nft.contains(&format!("\"k{i}/eth0\"")), "masquerade entry of killed k{i} cleared");
    }

    // New ADDs after the crash never reuse a held IP.
    let fresh: Vec<Netns> = (0..10).map(|_| Netns::new("f")).collect();
    let mut all: HashSet<String> = held.into_iter().collect();
    for (i, p) in fresh.iter().enumerate() {
        let r = plugin.run(&node, "ADD", &conf, &format!("f{i}"), &p.path_str(), "eth0");
        assert!(r.ok, "ADD f{i}: {}", r.out);
        let ip = r.out["ips"][0]["address"].as_str().expect("ip").split('/').next().unwrap_or_default().to_string();
        assert!(all.insert(ip.clone()), "{ip} handed out twice");
    }
}
