//! The launcher itself, on a one-node cluster without the demo: `up` publishes the API on
//! the loopback (the real kubectl works through it), `up` twice says the cluster already
//! runs, `minik shell` reaches the nodes and `ext`, bad flags are refused with a clear
//! error, `down` leaves no netns, link, mount, cgroup, process or listening socket, and a
//! keeper that died leaves nothing that `down` or the next `up` cannot remove.

use std::collections::BTreeSet;
use std::process::Command;

use minik_tests::cluster::{free_port, text, Cluster};
use minik_tests::{bin, require_sandbox};

fn links() -> BTreeSet<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(": ").nth(1).map(str::to_string)).collect()
}

fn netns_names() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns").map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

#[test]
fn up_publishes_the_api_refuses_a_second_up_and_down_leaves_nothing() {
    require_sandbox();
    let links_before = links();
    let netns_before = netns_names();
    let c = Cluster::up(&["--nodes", "1", "--no-demo"]);
    let dir = c.dir().display().to_string();
    for step in ["[1/", "] sandbox", "] API server", "] nodes Ready ... ok", "export KUBECONFIG="] {
        assert!(c.up_output.contains(step), "`up` did not show {step:?}:\n{}", c.up_output);
    }

    // The real kubectl on this side of the forwarder.
    let nodes = c.ok(&["get", "nodes", "-o", "wide"]);
    assert!(nodes.contains("node1") && nodes.contains(" Ready ") && nodes.contains("192.168.50.11"), "{nodes}");
    let kc = c.minik(&["kubeconfig"]);
    assert_eq!(String::from_utf8_lossy(&kc.stdout).trim(), c.kubeconfig().display().to_string());
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).expect("kubeconfig");
    assert!(kubeconfig.contains(&format!("server: https://127.0.0.1:{}", c.port)), "{kubeconfig}");

    // Nothing of the cluster in the test's own network namespace but the listening socket.
    assert_eq!(links(), links_before, "up created links in the caller's network namespace");
    assert_eq!(netns_names(), netns_before, "up created named netns in the caller's sandbox");

    // The sandbox's hosts: ext reaches node1 over the underlay; the node has forwarding on.
    let ping = c.shell("ext", &["busybox", "ping", "-c", "1", "-W", "2", "192.168.50.11"]);
    assert!(ping.status.success(), "ext cannot reach node1: {}", text(&ping));
    let fwd = c.shell("node1", &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1", "{}", text(&fwd));
    let bad = c.shell("node9", &["true"]);
    assert!(!bad.status.success() && text(&bad).contains("node1"), "{}", text(&bad));

    // A second `up` says the cluster already runs, and changes nothing.
    let again = c.minik(&["up", "--nodes", "1", "--no-demo", "--api-port", &free_port().to_string()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("already runs"), "{}", text(&again));
    assert!(c.kubectl(&["get", "nodes"]).status.success(), "the first cluster stopped answering after a second up");

    let status = c.minik(&["status"]);
    assert!(status.status.success() && text(&status).contains("minilet"), "{}", text(&status));

    // down: no process, netns, link, mount, cgroup or socket left.
    let cgroup_name = std::fs::read_to_string(c.dir().join("cgroups.json")).expect("cgroups.json");
    let cgroup_dirs: Vec<String> = serde_json::from_str::<serde_json::Value>(&cgroup_name).expect("json")["dirs"]
        .as_array()
        .expect("dirs")
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    assert!(!cgroup_dirs.is_empty(), "the cluster made no cgroup");
    let said = c.down();
    assert!(said.contains("cluster down"), "{said}");
    assert!(processes_mentioning(&dir).is_empty(), "processes left: {:?}", processes_mentioning(&dir));
    assert!(mounts_mentioning(&dir).is_empty(), "mounts left: {:?}", mounts_mentioning(&dir));
    assert_eq!(links(), links_before, "links left");
    assert_eq!(netns_names(), netns_before, "netns left");
    for d in &cgroup_dirs {
        assert!(!std::path::Path::new(d).exists(), "cgroup left: {d}");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", c.port)).is_err(), "the API port still accepts");
    assert!(!c.dir().join("keeper.pid").exists() && !c.dir().join("api").exists(), "runtime state left");
    assert!(c.dir().join("logs/keeper.log").exists(), "down removed the logs");

    // A second down is a no-op; status says it is not running.
    let again = c.minik(&["down"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(c.minik(&["status"]).status.code(), Some(1));
}

#[test]
fn bad_flags_are_refused_with_what_to_change() {
    require_sandbox();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(bin("minik")).arg("--state-dir").arg(dir.path()).args(args).output().expect("minik");
        (out.status.success(), text(&out))
    };
    let (ok, msg) = run(&["up", "--nodes", "0"]);
    assert!(!ok && msg.contains("--nodes"), "{msg}");
    let (ok, msg) = run(&["up", "--pod-cidr", "192.168.0.0/16"]);
    assert!(!ok && msg.contains("overlaps"), "{msg}");
    let (ok, msg) = run(&["up", "--images", "/nonexistent"]);
    assert!(!ok && msg.contains("images/build.sh"), "{msg}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let (ok, msg) = run(&["up", "--api-port", &port]);
    assert!(!ok && msg.contains("--api-port"), "{msg}");
    let (ok, msg) = run(&["shell"]);
    assert!(!ok && msg.contains("minik up"), "{msg}");
    let (ok, msg) = run(&["down"]);
    assert!(ok && msg.contains("nothing to do"), "{msg}");
    let (ok, msg) = run(&["trace", "rs/x"]);
    assert!(!ok && msg.contains("svc/NAME"), "{msg}");
    assert!(!dir.path().join("cluster.json").exists(), "a refused up wrote state");
}

#[test]
fn a_dead_keeper_leaves_nothing_that_down_or_the_next_up_cannot_remove() {
    require_sandbox();
    let c = Cluster::up(&["--nodes", "1", "--no-demo"]);
    let dir = c.dir().display().to_string();
    let keeper: i32 = std::fs::read_to_string(c.dir().join("keeper.pid")).expect("keeper.pid").trim().parse().expect("pid");
    // SAFETY: kill(2) on the keeper this test started.
    assert_eq!(unsafe { libc::kill(keeper, libc::SIGKILL) }, 0);
    c.wait("the keeper gone", std::time::Duration::from_secs(10), || {
        if std::path::Path::new(&format!("/proc/{keeper}")).exists() {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    });
    let status = c.minik(&["status"]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(text(&status).contains("still there"), "status does not mention the orphans: {}", text(&status));
    assert!(!processes_mentioning(&dir).is_empty(), "the cluster's processes died with the keeper");

    // The next up removes the remains and boots; down then leaves nothing.
    let again = c.minik_for(&["up", "--nodes", "1", "--no-demo", "--api-port", &c.port.to_string()], std::time::Duration::from_secs(300));
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("removing what a cluster that is no longer running left"), "{}", text(&again));
    assert!(c.kubectl(&["get", "nodes"]).status.success());
    c.down();
    assert!(processes_mentioning(&dir).is_empty(), "processes left: {:?}", processes_mentioning(&dir));
}
