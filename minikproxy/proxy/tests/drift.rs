//! The table's life around minikproxy: the initial sync posts no Events (a later change
//! posts one), and a table someone deleted comes back on the next drift check.

mod common;

use std::time::{Duration, Instant};

use common::{ask, programmed_events, Cluster};

#[test]
fn events_only_after_the_initial_sync_and_a_deleted_table_comes_back() {
    let mut c = Cluster::new();
    let a = c.pod("a");
    let b = c.pod("b");
    let client = c.pod("client");
    let ip = c.service("pre", "");
    c.slice("pre", &[(&a, true, false)]);
    c.start_proxy_with(&["--drift-check-seconds", "1"]);
    c.wait_rules("pre's ClusterIP", |r| r.contains(&format!("{ip} . tcp . 80 : goto service-")));

    // A change after the initial sync: exactly one Event (none for the initial sync).
    c.slice("pre", &[(&a, true, false), (&b, true, false)]);
    let end = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let e = programmed_events(&c, "pre");
        if !e.is_empty() {
            break e;
        }
        assert!(Instant::now() < end, "no RulesProgrammed event:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["message"], "node1: 2 endpoints programmed (nftables)");

    // Someone deletes the table: the drift check notices and resyncs.
    let del = c.node.exec("nft", &["delete", "table", "ip", "minik-proxy"]);
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    c.wait_rules("the table back", |r| r.contains(&format!("{ip} . tcp . 80 : goto service-")));
    let (server, seen) = ask(&client.ns, &format!("{ip}:80")).expect("request after the resync");
    assert!(server == "a" || server == "b");
    assert_eq!(seen, client.ip);
    assert!(c.log().contains("drifted"), "{}", c.log());
}
