//! minik-dns against a real miniapi, in the sandbox: Services, headless Services with
//! EndpointSlices and ExternalName Services made with the real kubectl, queried with
//! Debian's `dig` over UDP and TCP; names outside the cluster forwarded to dnsmasq.

mod common;

use std::time::Duration;

use common::{http_get, Cluster, Upstream};
use serde_json::Value;

const LAB: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: service-lab}
---
apiVersion: v1
kind: Service
metadata: {name: api-service, namespace: service-lab}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: service-lab}
spec:
  clusterIP: None
  ports: [{name: mongo, port: 27017}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: service-lab
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
endpoints:
- addresses: ["10.244.1.5"]
  hostname: db-0
  conditions: {ready: true}
- addresses: ["10.244.2.7"]
  conditions: {ready: true}
- addresses: ["10.244.2.9"]
  conditions: {ready: false}
ports: [{name: mongo, port: 27017, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: service-lab}
spec: {type: ExternalName, externalName: outside.example.org}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: service-lab}
spec: {type: ExternalName, externalName: api-service.service-lab.svc.cluster.local}
"#;

const API: &str = "api-service.service-lab.svc.cluster.local";
const WAIT: Duration = Duration::from_secs(15);

fn cluster_ip(c: &Cluster, ns: &str, name: &str) -> String {
    let ip = c.api.ok(&["-n", ns, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "ClusterIP {ip:?}");
    ip
}

/// The DNSRecordAdded events on Service `ns/name`.
fn dns_events(c: &Cluster, ns: &str, name: &str) -> Vec<Value> {
    let out = c.api.ok(&["-n", ns, "get", "events", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("events json");
    v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["reason"] == "DNSRecordAdded" && e["involvedObject"]["name"] == name)
        .collect()
}

fn wait_events(c: &Cluster, ns: &str, name: &str) -> Vec<Value> {
    let end = std::time::Instant::now() + WAIT;
    loop {
        let evs = dns_events(c, ns, name);
        if !evs.is_empty() || std::time::Instant::now() >= end {
            return evs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn answers_cluster_names_over_udp_and_tcp_and_forwards_the_rest() {
    let c = Cluster::start();
    let _upstream = Upstream::start(&c.ns, 5353, &["outside.example.org,192.0.2.7"]);
    c.api.apply(LAB);
    let mut dns = c.dns(&["--listen", "127.0.0.1:53", "--upstream", "127.0.0.1:5353", "--health-bind", "127.0.0.1:8080"]);
    dns.wait_ready(&c.ns, "127.0.0.1:8080");
    assert_eq!(http_get(&c.ns, "127.0.0.1:8080", "/health"), Some((200, "OK".into())));
    let ip = cluster_ip(&c, "service-lab", "api-service");

    // A for a ClusterIP Service, over UDP and TCP, authoritative.
    let a = c.dig(53, &[API, "A"]);
    assert_eq!(a.status, "NOERROR", "{}\n{}", a.raw, dns.log());
    assert_eq!(a.data("A"), std::slice::from_ref(&ip));
    assert!(a.flags.contains(&"aa".to_string()), "{}", a.raw);
    let t = c.dig(53, &["+tcp", API, "A"]);
    assert_eq!(t.data("A"), std::slice::from_ref(&ip), "{}", t.raw);
    // Short names through the pod's search path, as a pod's resolver would.
    let s = c.dig(53, &["+search", "+domain=service-lab.svc.cluster.local", "api-service", "A"]);
    assert_eq!(s.data("A"), std::slice::from_ref(&ip), "{}", s.raw);

    // NODATA for another type, NXDOMAIN for a missing name; both with the SOA.
    let nodata = c.dig(53, &[API, "AAAA"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(nodata.answers.is_empty() && nodata.has_soa(), "{}", nodata.raw);
    let nx = c.dig(53, &["nope.service-lab.svc.cluster.local", "A"]);
    assert_eq!(nx.status, "NXDOMAIN");
    assert!(nx.has_soa(), "{}", nx.raw);

    // Headless: the ready endpoints; an endpoint by hostname.
    let h = c.dig(53, &["db.service-lab.svc.cluster.local", "A"]);
    assert_eq!(h.data("A"), ["10.244.1.5", "10.244.2.7"], "{}", h.raw);
    let e = c.dig(53, &["db-0.db.service-lab.svc.cluster.local", "A"]);
    assert_eq!(e.data("A"), ["10.244.1.5"], "{}", e.raw);

    // SRV for named ports, with the targets' addresses.
    let srv = c.dig(53, &["_http._tcp.api-service.service-lab.svc.cluster.local", "SRV"]);
    assert_eq!(srv.data("SRV"), [format!("0 100 8080 {API}.")], "{}", srv.raw);
    assert!(srv.additional.iter().any(|r| r == &format!("{API}. A {ip}")), "{}", srv.raw);
    let hsrv = c.dig(53, &["_mongo._tcp.db.service-lab.svc.cluster.local", "SRV"]);
    assert_eq!(
        hsrv.data("SRV"),
        ["0 50 27017 10-244-2-7.db.service-lab.svc.cluster.local.", "0 50 27017 db-0.db.service-lab.svc.cluster.local."],
        "{}",
        hsrv.raw
    );

    // PTR for the ClusterIP and for an endpoint.
    let ptr = c.dig(53, &["-x", &ip]);
    assert_eq!(ptr.data("PTR"), [format!("{API}.")], "{}", ptr.raw);
    let eptr = c.dig(53, &["-x", "10.244.1.5"]);
    assert_eq!(eptr.data("PTR"), ["db-0.db.service-lab.svc.cluster.local."], "{}", eptr.raw);

    // busybox's resolver (what the demo pods have) reads the same answers.
    let bb = c.ns.exec("busybox", &["nslookup", API, "127.0.0.1"]);
    let bb = String::from_utf8_lossy(&bb.stdout);
    assert!(bb.contains(&format!("Address: {ip}")), "{bb}");

    // ExternalName: a CNAME; pods: their dashed IP.
    let cname = c.dig(53, &["ext.service-lab.svc.cluster.local", "A"]);
    assert_eq!(cname.data("CNAME"), ["outside.example.org."], "{}", cname.raw);
    // … followed upstream to the target's address, as a stub resolver needs it.
    assert_eq!(cname.data("A"), ["192.0.2.7"], "{}", cname.raw);
    assert_eq!(cname.answers.first().map(String::as_str), Some("CNAME outside.example.org."));
    // An ExternalName to another Service's name: followed in the zone.
    let alias = c.dig(53, &["alias.service-lab.svc.cluster.local", "A"]);
    assert_eq!(alias.data("CNAME"), [format!("{API}.")], "{}", alias.raw);
    assert_eq!(alias.data("A"), std::slice::from_ref(&ip), "{}", alias.raw);
    let pod = c.dig(53, &["10-244-1-9.service-lab.pod.cluster.local", "A"]);
    assert_eq!(pod.data("A"), ["10.244.1.9"], "{}", pod.raw);

    // Outside the cluster domain: dnsmasq's answers, over UDP and TCP.
    let out = c.dig(53, &["outside.example.org", "A"]);
    assert_eq!(out.data("A"), ["192.0.2.7"], "{}\n{}", out.raw, dns.log());
    let out_tcp = c.dig(53, &["+tcp", "outside.example.org", "A"]);
    assert_eq!(out_tcp.data("A"), ["192.0.2.7"], "{}", out_tcp.raw);
    let refused = c.dig(53, &["unknown.example.org", "A"]);
    assert_eq!(refused.status, "REFUSED", "dnsmasq refuses what it does not know: {}", refused.raw);

    // The trace: one DNSRecordAdded on the Service, from minik-dns.
    let evs = wait_events(&c, "service-lab", "api-service");
    assert_eq!(evs.len(), 1, "{evs:#?}\n{}", dns.log());
    assert_eq!(evs[0]["message"], format!("{API} A {ip}"));
    assert_eq!(evs[0]["source"]["component"], "minik-dns");
    assert_eq!(evs[0]["reportingComponent"], "minik-dns");
    assert_eq!(evs[0]["type"], "Normal");
    let hevs = wait_events(&c, "service-lab", "db");
    assert_eq!(hevs.len(), 1, "{hevs:#?}");
    assert_eq!(hevs[0]["message"], "db.service-lab.svc.cluster.local A 10.244.1.5, A 10.244.2.7");
}

#[test]
fn follows_the_api_by_watch() {
    let c = Cluster::start();
    let mut dns = c.dns(&["--listen", "127.0.0.1:53", "--health-bind", "127.0.0.1:8080"]);
    dns.wait_ready(&c.ns, "127.0.0.1:8080");
    c.api.ok(&["create", "namespace", "watch-lab"]);
    let name = "fresh.watch-lab.svc.cluster.local";
    assert_eq!(c.dig(53, &[name, "A"]).status, "NXDOMAIN");

    // A new Service resolves once its watch event is in.
    c.api.ok(&["-n", "watch-lab", "create", "service", "clusterip", "fresh", "--tcp=80:8080"]);
    let ip = cluster_ip(&c, "watch-lab", "fresh");
    let a = c.dig_until(53, &[name, "A"], WAIT, |d| !d.answers.is_empty());
    assert_eq!(a.data("A"), std::slice::from_ref(&ip), "{}\n{}", a.raw, dns.log());
    let evs = wait_events(&c, "watch-lab", "fresh");
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(evs[0]["message"], format!("{name} A {ip}"));

    // A headless Service follows its EndpointSlice.
    c.api.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: pool, namespace: watch-lab}
spec: {clusterIP: None, ports: [{name: web, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: pool-a, namespace: watch-lab, labels: {kubernetes.io/service-name: pool}}
addressType: IPv4
endpoints: [{addresses: ["10.244.1.20"]}]
ports: [{name: web, port: 80, protocol: TCP}]
"#,
    );
    let pool = "pool.watch-lab.svc.cluster.local";
    let h = c.dig_until(53, &[pool, "A"], WAIT, |d| d.data("A") == ["10.244.1.20"]);
    assert_eq!(h.data("A"), ["10.244.1.20"], "{}", h.raw);
    c.api.apply(
        r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: pool-a, namespace: watch-lab, labels: {kubernetes.io/service-name: pool}}
addressType: IPv4
endpoints: [{addresses: ["10.244.1.20"]}, {addresses: ["10.244.2.21"]}]
ports: [{name: web, port: 80, protocol: TCP}]
"#,
    );
    let h = c.dig_until(53, &[pool, "A"], WAIT, |d| d.answers.len() == 2);
    assert_eq!(h.data("A"), ["10.244.1.20", "10.244.2.21"], "{}", h.raw);

    // More endpoints than fit in a UDP reply: truncated over UDP, whole over TCP.
    let endpoints: Vec<String> = (1..=100).map(|i| format!("{{addresses: [\"10.244.5.{i}\"]}}")).collect();
    c.api.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: big, namespace: watch-lab}}
spec: {{clusterIP: None, ports: [{{name: web, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: big-a, namespace: watch-lab, labels: {{kubernetes.io/service-name: big}}}}
addressType: IPv4
endpoints: [{}]
ports: [{{name: web, port: 80, protocol: TCP}}]
"#,
        endpoints.join(", ")
    ));
    let big = "big.watch-lab.svc.cluster.local";
    let whole = c.dig_until(53, &["+tcp", big, "A"], WAIT, |d| d.answers.len() == 100);
    assert_eq!(whole.answers.len(), 100, "{}", whole.raw);
    let udp = c.dig(53, &["+ignore", big, "A"]);
    assert!(udp.flags.contains(&"tc".to_string()), "{}", udp.raw);
    assert!(udp.answers.len() < 100, "{}", udp.raw);
    // dig retries a truncated reply over TCP by itself, as resolvers do.
    assert_eq!(c.dig(53, &[big, "A"]).answers.len(), 100);

    // kubectl delete svc: the name and its PTR are gone.
    c.api.ok(&["-n", "watch-lab", "delete", "service", "fresh"]);
    let gone = c.dig_until(53, &[name, "A"], WAIT, |d| d.status == "NXDOMAIN");
    assert_eq!(gone.status, "NXDOMAIN", "{}", gone.raw);
    // Not in the zone any more and no upstream: refused.
    assert_eq!(c.dig(53, &["-x", &ip]).status, "REFUSED");
    // Without --upstream, names outside the cluster are refused at once.
    assert_eq!(c.dig(53, &["outside.example.org", "A"]).status, "REFUSED");
    // Still one event per Service.
    assert_eq!(dns_events(&c, "watch-lab", "fresh").len(), 1);
}

#[test]
fn registers_itself_as_the_cluster_dns_service() {
    let c = Cluster::start();
    let args = [
        "--listen",
        "127.0.0.1:53",
        "--health-bind",
        "127.0.0.1:8080",
        "--service",
        "kube-system/kube-dns",
        "--service-ip",
        "10.96.0.10",
        "--advertise-address",
        "127.0.0.1",
    ];
    let mut dns = c.dns(&args);
    dns.wait_ready(&c.ns, "127.0.0.1:8080");

    let check = |dns: &common::Dns| {
        let svc: Value = serde_json::from_str(&c.api.ok(&["-n", "kube-system", "get", "svc", "kube-dns", "-o", "json"])).expect("json");
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
        let ports: Vec<String> = svc["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| format!("{} {} {}", p["name"].as_str().unwrap_or(""), p["port"], p["protocol"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(ports, ["dns 53 UDP", "dns-tcp 53 TCP"]);
        let slices: Value = serde_json::from_str(&c.api.ok(&[
            "-n",
            "kube-system",
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=kube-dns",
            "-o",
            "json",
        ]))
        .expect("json");
        let items = slices["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{slices:#}\n{}", dns.log());
        assert_eq!(items[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "minik-dns");
        assert_eq!(items[0]["endpoints"][0]["addresses"][0], "127.0.0.1");
        assert_eq!(items[0]["ports"][0]["port"], 53);
        let eps = c.api.ok(&["-n", "kube-system", "get", "endpoints", "kube-dns", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]);
        assert_eq!(eps.trim(), "127.0.0.1");
    };
    check(&dns);
    // Its own name, and the zone's NS name, resolve to the Service IP.
    let own = c.dig_until(53, &["kube-dns.kube-system.svc.cluster.local", "A"], WAIT, |d| !d.answers.is_empty());
    assert_eq!(own.data("A"), ["10.96.0.10"], "{}", own.raw);
    assert_eq!(c.dig(53, &["ns.dns.cluster.local", "A"]).data("A"), ["10.96.0.10"]);
    let soa = c.dig(53, &["cluster.local", "SOA"]);
    assert!(soa.data("SOA").first().is_some_and(|s| s.starts_with("ns.dns.cluster.local. hostmaster.cluster.local.")), "{}", soa.raw);

    // A clean stop takes its endpoint away; a restart puts the same objects back.
    assert!(dns.terminate(), "minik-dns did not exit cleanly:\n{}", dns.log());
    let slices = c.api.ok(&["-n", "kube-system", "get", "endpointslices", "-l", "kubernetes.io/service-name=kube-dns", "-o", "name"]);
    assert_eq!(slices.trim(), "", "slice left after stop");
    let mut dns = c.dns(&args);
    dns.wait_ready(&c.ns, "127.0.0.1:8080");
    check(&dns);

    // Another ClusterIP for the same Service: a clear refusal.
    let mut clash = c.dns(&[
        "--listen",
        "127.0.0.1:54",
        "--health-bind",
        "off",
        "--service",
        "kube-system/kube-dns",
        "--service-ip",
        "10.96.0.11",
        "--advertise-address",
        "127.0.0.2",
    ]);
    let code = clash.wait_exit();
    assert!(code.is_some_and(|c| c != 0), "a second ClusterIP should be refused:\n{}", clash.log());
    assert!(clash.log().contains("--service-ip"), "{}", clash.log());
}
