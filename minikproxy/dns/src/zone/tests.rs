//! The zone's answers, from Services and slices built by hand.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn port(name: &str, protocol: &str, port: u16) -> Port {
    Port { name: name.into(), protocol: protocol.into(), port }
}

fn zone() -> Zone {
    let mut z = Zone::new("cluster.local", 1).expect("zone");
    z.set_dns_ip(Some(ip("10.96.0.10")));
    z.upsert_service(Service {
        key: Key::new("lab", "api"),
        kind: Kind::ClusterIp(vec![ip("10.96.3.4")]),
        ports: vec![port("http", "TCP", 8080), port("", "UDP", 9000)],
        publish_not_ready: false,
    });
    z.upsert_service(Service {
        key: Key::new("lab", "db"),
        kind: Kind::Headless,
        ports: vec![port("mongo", "TCP", 27017)],
        publish_not_ready: false,
    });
    z.upsert_slice(Slice {
        key: Key::new("lab", "db-abc"),
        service: "db".into(),
        endpoints: vec![
            Endpoint { addresses: vec![ip("10.244.1.5")], hostname: Some("db-0".into()), ready: true },
            Endpoint { addresses: vec![ip("10.244.2.7")], hostname: None, ready: true },
            Endpoint { addresses: vec![ip("10.244.2.9")], hostname: Some("db-2".into()), ready: false },
        ],
        ports: vec![port("mongo", "TCP", 27018)],
    });
    z.upsert_service(Service {
        key: Key::new("lab", "ext"),
        kind: Kind::ExternalName("example.org".into()),
        ports: vec![],
        publish_not_ready: false,
    });
    z
}

fn ask(z: &Zone, name: &str, qtype: RecordType) -> Answer {
    match z.lookup(&Name::from_str(name).expect("name"), qtype) {
        Lookup::Answer(a) => a,
        Lookup::Elsewhere => panic!("{name} {qtype}: not in the zone"),
    }
}

/// The answer section as `TYPE data` strings, sorted.
fn data(a: &Answer) -> Vec<String> {
    let mut v: Vec<String> = a.answers.iter().map(|r| format!("{} {}", r.record_type(), r.data)).collect();
    v.sort();
    v
}

fn is_negative(a: &Answer, code: ResponseCode) {
    assert_eq!(a.code, code);
    assert!(a.answers.is_empty(), "{a:?}");
    assert!(matches!(a.authority.first().map(|r| &r.data), Some(RData::SOA(_))), "no SOA: {a:?}");
}

#[test]
fn cluster_ip_service_has_its_a_record() {
    let z = zone();
    let a = ask(&z, "api.lab.svc.cluster.local.", RecordType::A);
    assert_eq!(a.code, ResponseCode::NoError);
    assert_eq!(data(&a), ["A 10.96.3.4"]);
    assert_eq!(a.answers[0].ttl, TTL);
    // Any case.
    assert_eq!(data(&ask(&z, "API.Lab.SVC.cluster.LOCAL.", RecordType::A)), ["A 10.96.3.4"]);
}

#[test]
fn existing_name_of_another_type_is_nodata() {
    let z = zone();
    is_negative(&ask(&z, "api.lab.svc.cluster.local.", RecordType::AAAA), ResponseCode::NoError);
    is_negative(&ask(&z, "api.lab.svc.cluster.local.", RecordType::TXT), ResponseCode::NoError);
}

#[test]
fn missing_names_are_nxdomain_with_soa() {
    let z = zone();
    for name in [
        "nope.lab.svc.cluster.local.",
        "api.other.svc.cluster.local.",
        "x.y.z.cluster.local.",
        "_nope._tcp.api.lab.svc.cluster.local.",
        "db-9.db.lab.svc.cluster.local.",
        "db-0.api.lab.svc.cluster.local.",
        "notanip.lab.pod.cluster.local.",
    ] {
        is_negative(&ask(&z, name, RecordType::A), ResponseCode::NXDomain);
    }
}

#[test]
fn headless_service_lists_ready_endpoints() {
    let z = zone();
    let a = ask(&z, "db.lab.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&a), ["A 10.244.1.5", "A 10.244.2.7"]);
    assert_eq!(data(&ask(&z, "db-0.db.lab.svc.cluster.local.", RecordType::A)), ["A 10.244.1.5"]);
    assert_eq!(data(&ask(&z, "10-244-2-7.db.lab.svc.cluster.local.", RecordType::A)), ["A 10.244.2.7"]);
    // Not ready: not published.
    is_negative(&ask(&z, "db-2.db.lab.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
}

#[test]
fn publish_not_ready_addresses_publishes_them() {
    let mut z = zone();
    z.upsert_service(Service {
        key: Key::new("lab", "db"),
        kind: Kind::Headless,
        ports: vec![port("mongo", "TCP", 27017)],
        publish_not_ready: true,
    });
    assert_eq!(data(&ask(&z, "db-2.db.lab.svc.cluster.local.", RecordType::A)), ["A 10.244.2.9"]);
}

#[test]
fn srv_for_named_ports() {
    let z = zone();
    let a = ask(&z, "_http._tcp.api.lab.svc.cluster.local.", RecordType::SRV);
    assert_eq!(data(&a), ["SRV 0 100 8080 api.lab.svc.cluster.local."]);
    assert_eq!(a.additionals.len(), 1);
    assert_eq!(a.additionals[0].name, Name::from_str("api.lab.svc.cluster.local.").expect("name"));
    // Protocol must match.
    is_negative(&ask(&z, "_http._udp.api.lab.svc.cluster.local.", RecordType::SRV), ResponseCode::NXDomain);
    // Headless: one per endpoint, with the slice's port and the endpoint's name.
    let a = ask(&z, "_mongo._tcp.db.lab.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        data(&a),
        ["SRV 0 50 27018 10-244-2-7.db.lab.svc.cluster.local.", "SRV 0 50 27018 db-0.db.lab.svc.cluster.local."]
    );
    assert_eq!(a.additionals.len(), 2);
    // The SRV name asked as A: exists, NODATA.
    is_negative(&ask(&z, "_mongo._tcp.db.lab.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
    is_negative(&ask(&z, "_tcp.db.lab.svc.cluster.local.", RecordType::SRV), ResponseCode::NoError);
}

#[test]
fn external_name_is_a_cname() {
    let z = zone();
    let a = ask(&z, "ext.lab.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&a), ["CNAME example.org."]);
}

#[test]
fn pod_names_resolve_to_their_dashed_ip() {
    let z = zone();
    assert_eq!(data(&ask(&z, "10-244-1-9.anything.pod.cluster.local.", RecordType::A)), ["A 10.244.1.9"]);
    is_negative(&ask(&z, "10-244-1-9.anything.pod.cluster.local.", RecordType::AAAA), ResponseCode::NoError);
    assert_eq!(data(&ask(&z, "fd00--5.lab.pod.cluster.local.", RecordType::AAAA)), ["AAAA fd00::5"]);
}

#[test]
fn ptr_for_cluster_ips_and_endpoints() {
    let z = zone();
    assert_eq!(data(&ask(&z, "4.3.96.10.in-addr.arpa.", RecordType::PTR)), ["PTR api.lab.svc.cluster.local."]);
    assert_eq!(data(&ask(&z, "5.1.244.10.in-addr.arpa.", RecordType::PTR)), ["PTR db-0.db.lab.svc.cluster.local."]);
    assert_eq!(
        data(&ask(&z, "7.2.244.10.in-addr.arpa.", RecordType::PTR)),
        ["PTR 10-244-2-7.db.lab.svc.cluster.local."]
    );
    // Unknown IPs and partial reverse names are somebody else's.
    assert_eq!(z.lookup(&Name::from_str("9.9.9.10.in-addr.arpa.").expect("n"), RecordType::PTR), Lookup::Elsewhere);
    assert_eq!(z.lookup(&Name::from_str("96.10.in-addr.arpa.").expect("n"), RecordType::PTR), Lookup::Elsewhere);
}

#[test]
fn names_outside_the_domain_go_elsewhere() {
    let z = zone();
    for name in ["example.org.", "local.", "cluster.localx.", "api.lab.svc.cluster.local.example."] {
        assert_eq!(z.lookup(&Name::from_str(name).expect("n"), RecordType::A), Lookup::Elsewhere, "{name}");
    }
}

#[test]
fn apex_soa_ns_and_dns_service() {
    let z = zone();
    let a = ask(&z, "cluster.local.", RecordType::SOA);
    assert_eq!(a.answers.len(), 1);
    assert!(matches!(a.answers[0].data, RData::SOA(_)));
    let a = ask(&z, "cluster.local.", RecordType::NS);
    assert_eq!(data(&a), ["NS ns.dns.cluster.local."]);
    assert_eq!(a.additionals.len(), 1);
    assert_eq!(data(&ask(&z, "ns.dns.cluster.local.", RecordType::A)), ["A 10.96.0.10"]);
    // Empty non-terminals: NODATA.
    is_negative(&ask(&z, "svc.cluster.local.", RecordType::A), ResponseCode::NoError);
    is_negative(&ask(&z, "lab.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
    is_negative(&ask(&z, "nons.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
}

#[test]
fn removals_take_names_and_ptrs_away() {
    let mut z = zone();
    assert!(z.remove_service(&Key::new("lab", "api")));
    is_negative(&ask(&z, "api.lab.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
    assert_eq!(z.lookup(&Name::from_str("4.3.96.10.in-addr.arpa.").expect("n"), RecordType::PTR), Lookup::Elsewhere);
    assert_eq!(z.remove_slice(&Key::new("lab", "db-abc")), vec![Key::new("lab", "db")]);
    is_negative(&ask(&z, "db.lab.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
    is_negative(&ask(&z, "db-0.db.lab.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
    assert_eq!(z.lookup(&Name::from_str("5.1.244.10.in-addr.arpa.").expect("n"), RecordType::PTR), Lookup::Elsewhere);
}

#[test]
fn slices_of_one_service_merge_and_an_unchanged_upsert_changes_nothing() {
    let mut z = zone();
    let second = Slice {
        key: Key::new("lab", "db-def"),
        service: "db".into(),
        endpoints: vec![Endpoint { addresses: vec![ip("10.244.3.3")], hostname: None, ready: true }],
        ports: vec![port("mongo", "TCP", 27018)],
    };
    assert_eq!(z.upsert_slice(second.clone()), vec![Key::new("lab", "db")]);
    assert!(z.upsert_slice(second).is_empty());
    assert_eq!(data(&ask(&z, "db.lab.svc.cluster.local.", RecordType::A)), ["A 10.244.1.5", "A 10.244.2.7", "A 10.244.3.3"]);
    let svc = Service { key: Key::new("lab", "api"), kind: Kind::ClusterIp(vec![ip("10.96.3.4")]), ports: vec![port("http", "TCP", 8080), port("", "UDP", 9000)], publish_not_ready: false };
    assert!(!z.upsert_service(svc));
}

#[test]
fn summaries_name_what_is_served() {
    let z = zone();
    assert_eq!(z.summary(&Key::new("lab", "api")).as_deref(), Some("api.lab.svc.cluster.local A 10.96.3.4"));
    assert_eq!(
        z.summary(&Key::new("lab", "db")).as_deref(),
        Some("db.lab.svc.cluster.local A 10.244.1.5, A 10.244.2.7")
    );
    assert_eq!(z.summary(&Key::new("lab", "ext")).as_deref(), Some("ext.lab.svc.cluster.local CNAME example.org."));
    assert_eq!(z.summary(&Key::new("lab", "gone")), None);
}

#[test]
fn bad_domains_are_refused_with_a_hint() {
    let err = Zone::new("", 1).expect_err("root");
    assert!(err.to_string().contains("cluster.local"), "{err}");
    assert!(Zone::new("bad..domain", 1).is_err());
    let z = Zone::new("Corp.Example.", 1).expect("zone");
    assert_eq!(z.origin().to_ascii(), "corp.example.");
}
