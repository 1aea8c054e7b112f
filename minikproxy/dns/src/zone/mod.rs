//! The cluster zone: the DNS records that Services and EndpointSlices make, and the
//! lookup of one name and type into an answer, as CoreDNS's kubernetes plugin serves
//! them (the Kubernetes DNS specification):
//!
//! - `svc.ns.svc.<domain>`: A/AAAA of the ClusterIP; of the ready endpoints for a
//!   headless Service; a CNAME to the external name for an ExternalName Service;
//! - `host.svc.ns.svc.<domain>`: an endpoint of a headless Service, by its hostname or
//!   its dashed IP (`10-244-1-5`);
//! - `_port._proto.svc.ns.svc.<domain>`: SRV for each named port (one per endpoint for a
//!   headless Service), with the targets' addresses as additional records;
//! - `a-b-c-d.ns.pod.<domain>`: A a.b.c.d, whatever the namespace ("pods insecure");
//! - `d.c.b.a.in-addr.arpa` (and `ip6.arpa`): PTR of ClusterIPs and endpoint IPs;
//! - `ns.dns.<domain>`: the DNS Service's own IP, and the zone's SOA and NS at the apex.
//!
//! A name under the domain that does not exist is NXDOMAIN, an existing name asked for
//! a type it has not is NODATA; both carry the SOA, whose minimum (5 s) bounds how long
//! resolvers cache the miss. Everything else (and reverse names of unknown IPs) is
//! [`Lookup::Elsewhere`], for the server to forward.
//!
//! Pure: no I/O, no clock, no API types. The watch module turns API objects into
//! [`Service`]s and [`Slice`]s (`crate::objects`); the server turns [`Answer`]s into
//! messages.

mod names;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub use names::{dashed_ip, parse_dashed_ip};

/// TTL of every record and of negative answers (CoreDNS's default for the cluster zone).
pub const TTL: u32 = 5;

/// A namespaced object's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key { namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a Service's own name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A ClusterIP (or NodePort/LoadBalancer) Service: its cluster IPs (empty until
    /// the API server allocates one).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the addresses of its ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(String),
}

/// A port of a Service or of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The port's name (`""` when unnamed: no SRV record).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port number.
    pub port: u16,
}

/// A Service, as far as DNS cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace and name.
    pub key: Key,
    /// What its name resolves to.
    pub kind: Kind,
    /// Its ports.
    pub ports: Vec<Port>,
    /// `publishNotReadyAddresses`: not-ready endpoints are published too.
    pub publish_not_ready: bool,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its addresses (one in practice).
    pub addresses: Vec<IpAddr>,
    /// `hostname`, which names it under a headless Service.
    pub hostname: Option<String>,
    /// `conditions.ready` (unset counts as ready).
    pub ready: bool,
}

/// An EndpointSlice of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The slice's own namespace and name.
    pub key: Key,
    /// The Service it belongs to (label `kubernetes.io/service-name`), same namespace.
    pub service: String,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Its ports (the endpoints' target ports).
    pub ports: Vec<Port>,
}

/// The reply to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// NOERROR or NXDOMAIN.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of negative answers).
    pub authority: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
}

/// What the zone says about a name.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The zone's authoritative reply.
    Answer(Answer),
    /// Not a name of this zone: forward it.
    Elsewhere,
}

/// The records of the cluster domain.
#[derive(Debug)]
pub struct Zone {
    origin: Name,
    origin_labels: usize,
    dns_ip: Option<IpAddr>,
    serial: u32,
    services: BTreeMap<Key, Service>,
    slices: HashMap<Key, Slice>,
    /// Service → its slices' names.
    slices_of: HashMap<Key, BTreeSet<String>>,
    /// Namespace → how many Services it has.
    namespaces: HashMap<String, usize>,
    /// IP → the names whose PTR it has.
    reverse: HashMap<IpAddr, BTreeSet<Name>>,
    /// Service → the (IP, name) pairs it put into `reverse`.
    reverse_of: HashMap<Key, Vec<(IpAddr, Name)>>,
}

/// A cluster domain that cannot be a zone's origin.
#[derive(Debug, thiserror::Error)]
#[error("cluster domain {domain:?} is not a valid DNS name ({reason}); give one such as cluster.local")]
pub struct BadDomain {
    domain: String,
    reason: String,
}

impl Zone {
    /// An empty zone for `domain` (e.g. `cluster.local`), its SOA serial starting at
    /// `serial` (the caller's clock: CoreDNS uses the time of the last change).
    pub fn new(domain: &str, serial: u32) -> Result<Zone, BadDomain> {
        let bad = |reason: String| BadDomain { domain: domain.to_string(), reason };
        let mut origin = Name::from_ascii(domain.trim()).map_err(|e| bad(e.to_string()))?.to_lowercase();
        origin.set_fqdn(true);
        if origin.is_root() {
            return Err(bad("it is the root".into()));
        }
        let origin_labels = usize::from(origin.num_labels());
        Ok(Zone {
            origin,
            origin_labels,
            dns_ip: None,
            serial,
            services: BTreeMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            namespaces: HashMap::new(),
            reverse: HashMap::new(),
            reverse_of: HashMap::new(),
        })
    }

    /// The zone's origin (`cluster.local.`).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The cluster DNS Service's IP, served as `ns.dns.<domain>`.
    pub fn set_dns_ip(&mut self, ip: Option<IpAddr>) {
        self.dns_ip = ip;
    }

    /// How many Services the zone holds.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The Services' keys.
    pub fn service_keys(&self) -> Vec<Key> {
        self.services.keys().cloned().collect()
    }

    /// The slices' keys.
    pub fn slice_keys(&self) -> Vec<Key> {
        self.slices.keys().cloned().collect()
    }

    /// Adds or replaces a Service. Returns whether anything changed.
    pub fn upsert_service(&mut self, svc: Service) -> bool {
        if self.services.get(&svc.key) == Some(&svc) {
            return false;
        }
        let key = svc.key.clone();
        if self.services.insert(key.clone(), svc).is_none() {
            *self.namespaces.entry(key.namespace.clone()).or_default() += 1;
        }
        self.changed(&key);
        true
    }

    /// Removes a Service (its slices stay until they are removed). Returns whether it was there.
    pub fn remove_service(&mut self, key: &Key) -> bool {
        if self.services.remove(key).is_none() {
            return false;
        }
        if let Some(n) = self.namespaces.get_mut(&key.namespace) {
            *n -= 1;
            if *n == 0 {
                self.namespaces.remove(&key.namespace);
            }
        }
        self.changed(key);
        true
    }

    /// Adds or replaces a slice. Returns the Services whose records may have changed.
    pub fn upsert_slice(&mut self, slice: Slice) -> Vec<Key> {
        if self.slices.get(&slice.key) == Some(&slice) {
            return Vec::new();
        }
        let mut touched = self.remove_slice(&slice.key);
        let service = Key::new(slice.key.namespace.clone(), slice.service.clone());
        self.slices_of.entry(service.clone()).or_default().insert(slice.key.name.clone());
        self.slices.insert(slice.key.clone(), slice);
        self.changed(&service);
        if !touched.contains(&service) {
            touched.push(service);
        }
        touched
    }

    /// Removes a slice. Returns the Service whose records may have changed.
    pub fn remove_slice(&mut self, key: &Key) -> Vec<Key> {
        let Some(old) = self.slices.remove(key) else {
            return Vec::new();
        };
        let service = Key::new(key.namespace.clone(), old.service);
        if let Some(set) = self.slices_of.get_mut(&service) {
            set.remove(&key.name);
            if set.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        self.changed(&service);
        vec![service]
    }

    /// A one-line description of what a Service's name serves, for the `DNSRecordAdded`
    /// event (`api.lab.svc.cluster.local A 10.96.3.4`); `None` while it serves nothing.
    pub fn summary(&self, key: &Key) -> Option<String> {
        let svc = self.services.get(key)?;
        let name = self.service_name(key)?;
        let name = name.to_ascii();
        let name = name.trim_end_matches('.');
        let data: Vec<String> = match &svc.kind {
            Kind::ExternalName(ext) => self.external_target(ext).map(|t| format!("CNAME {t}")).into_iter().collect(),
            Kind::ClusterIp(ips) => ips.iter().map(|ip| format!("{} {ip}", addr_type(ip))).collect(),
            Kind::Headless => {
                let mut ips: Vec<IpAddr> = self.ready_endpoints(svc).flat_map(|(e, _)| e.addresses.clone()).collect();
                ips.sort();
                ips.dedup();
                ips.iter().map(|ip| format!("{} {ip}", addr_type(ip))).collect()
            }
        };
        (!data.is_empty()).then(|| format!("{name} {}", data.join(", ")))
    }

    /// Answers one question. `name` may be in any case.
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup {
        let name = name.to_lowercase();
        if let Some(found) = self.reverse_lookup(&name, qtype) {
            return found;
        }
        if !self.origin.zone_of(&name) {
            return Lookup::Elsewhere;
        }
        let count = usize::from(name.num_labels()).saturating_sub(self.origin_labels);
        let labels: Option<Vec<&str>> = name.iter().take(count).map(|l| std::str::from_utf8(l).ok()).collect();
        let Some(labels) = labels else {
            return Lookup::Answer(self.nxdomain());
        };
        Lookup::Answer(self.answer(&name, &labels, qtype))
    }

    fn answer(&self, name: &Name, labels: &[&str], qtype: RecordType) -> Answer {
        match labels {
            [] => self.apex(qtype),
            ["svc"] | ["pod"] => self.nodata(),
            ["dns"] if self.dns_ip.is_some() => self.nodata(),
            ["ns", "dns"] => match self.dns_ip {
                Some(ip) => self.addresses(name, &[ip], qtype),
                None => self.nxdomain(),
            },
            [ns, "svc"] if self.namespaces.contains_key(*ns) => self.nodata(),
            [svc, ns, "svc"] => self.service(name, &Key::new(*ns, *svc), qtype),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(name, &Key::new(*ns, *svc), &port[1..], &proto[1..], qtype)
            }
            [proto, svc, ns, "svc"] if proto.starts_with('_') => {
                let has = self.services.get(&Key::new(*ns, *svc)).is_some_and(|s| {
                    s.ports.iter().any(|p| !p.name.is_empty() && p.protocol.eq_ignore_ascii_case(&proto[1..]))
                });
                if has {
                    self.nodata()
                } else {
                    self.nxdomain()
                }
            }
            [ep, svc, ns, "svc"] => self.endpoint(name, &Key::new(*ns, *svc), ep, qtype),
            [ip, _ns, "pod"] => match parse_dashed_ip(ip) {
                Some(ip) => self.addresses(name, &[ip], qtype),
                None => self.nxdomain(),
            },
            _ => self.nxdomain(),
        }
    }

    /// The apex: SOA, and NS `ns.dns.<domain>`.
    fn apex(&self, qtype: RecordType) -> Answer {
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        if wants(qtype, RecordType::SOA) {
            answers.push(self.soa());
        }
        if wants(qtype, RecordType::NS) {
            if let Some(ns) = self.fqdn(&["ns", "dns"]) {
                if let Some(ip) = self.dns_ip {
                    additionals.push(address_record(&ns, ip));
                }
                answers.push(Record::from_rdata(self.origin.clone(), TTL, RData::NS(NS(ns))));
            }
        }
        if answers.is_empty() {
            return self.nodata();
        }
        Answer { code: ResponseCode::NoError, answers, authority: Vec::new(), additionals }
    }

    fn service(&self, name: &Name, key: &Key, qtype: RecordType) -> Answer {
        let Some(svc) = self.services.get(key) else {
            return self.nxdomain();
        };
        match &svc.kind {
            Kind::ClusterIp(ips) => self.addresses(name, ips, qtype),
            Kind::Headless => {
                let mut ips: Vec<IpAddr> = self.ready_endpoints(svc).flat_map(|(e, _)| e.addresses.clone()).collect();
                ips.sort();
                ips.dedup();
                self.addresses(name, &ips, qtype)
            }
            Kind::ExternalName(ext) => match self.external_target(ext) {
                Some(target) => self.positive(vec![Record::from_rdata(name.clone(), TTL, RData::CNAME(CNAME(target)))], Vec::new()),
                None => self.nodata(),
            },
        }
    }

    /// `_port._proto.svc.ns.svc.<domain>`.
    fn srv(&self, name: &Name, key: &Key, port: &str, proto: &str, qtype: RecordType) -> Answer {
        let Some(svc) = self.services.get(key) else {
            return self.nxdomain();
        };
        let matches = |p: &Port| !p.name.is_empty() && p.name.eq_ignore_ascii_case(port) && p.protocol.eq_ignore_ascii_case(proto);
        let Some(svc_port) = svc.ports.iter().find(|p| matches(p)) else {
            return self.nxdomain();
        };
        if !wants(qtype, RecordType::SRV) {
            return self.nodata();
        }
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        match &svc.kind {
            Kind::ClusterIp(ips) => {
                if let Some(target) = self.service_name(key) {
                    answers.push(srv_record(name, 100, svc_port.port, target.clone()));
                    additionals.extend(ips.iter().map(|ip| address_record(&target, *ip)));
                }
            }
            Kind::ExternalName(ext) => {
                if let Some(target) = self.external_target(ext) {
                    answers.push(srv_record(name, 100, svc_port.port, target));
                }
            }
            Kind::Headless => {
                let targets: Vec<(Name, &Endpoint, u16)> = self
                    .ready_endpoints(svc)
                    .filter_map(|(e, slice)| {
                        let p = slice.ports.iter().find(|p| matches(p))?;
                        Some((self.endpoint_name(key, e)?, e, p.port))
                    })
                    .collect();
                let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(100).max(1);
                for (target, e, port) in targets {
                    additionals.extend(e.addresses.iter().map(|ip| address_record(&target, *ip)));
                    answers.push(srv_record(name, weight, port, target));
                }
            }
        }
        if answers.is_empty() {
            return self.nodata();
        }
        self.positive(answers, additionals)
    }

    /// `host.svc.ns.svc.<domain>`: an endpoint of a headless Service.
    fn endpoint(&self, name: &Name, key: &Key, label: &str, qtype: RecordType) -> Answer {
        let Some(svc) = self.services.get(key) else {
            return self.nxdomain();
        };
        if svc.kind != Kind::Headless {
            return self.nxdomain();
        }
        let mut ips: Vec<IpAddr> = self
            .ready_endpoints(svc)
            .filter(|(e, _)| endpoint_label(e).is_some_and(|l| l.eq_ignore_ascii_case(label)))
            .flat_map(|(e, _)| e.addresses.clone())
            .collect();
        if ips.is_empty() {
            return self.nxdomain();
        }
        ips.sort();
        ips.dedup();
        self.addresses(name, &ips, qtype)
    }

    /// PTR for `*.in-addr.arpa` / `*.ip6.arpa` of an IP the zone knows; `None` for other names.
    fn reverse_lookup(&self, name: &Name, qtype: RecordType) -> Option<Lookup> {
        // Cheap test first: parsing a non-arpa name would build an error per query.
        if !name.iter().last().is_some_and(|l| l.eq_ignore_ascii_case(b"arpa")) {
            return None;
        }
        let net = name.parse_arpa_name().ok()?;
        if net.prefix_len() != net.max_prefix_len() {
            return None;
        }
        let targets = self.reverse.get(&net.addr())?;
        if !wants(qtype, RecordType::PTR) {
            return Some(Lookup::Answer(Answer {
                code: ResponseCode::NoError,
                answers: Vec::new(),
                authority: Vec::new(),
                additionals: Vec::new(),
            }));
        }
        let answers = targets.iter().map(|t| Record::from_rdata(name.clone(), TTL, RData::PTR(PTR(t.clone())))).collect();
        Some(Lookup::Answer(self.positive(answers, Vec::new())))
    }

    /// A/AAAA records of `ips` for `name`, as asked; NODATA when none is of the type.
    fn addresses(&self, name: &Name, ips: &[IpAddr], qtype: RecordType) -> Answer {
        let answers: Vec<Record> = ips
            .iter()
            .filter(|ip| wants(qtype, if ip.is_ipv4() { RecordType::A } else { RecordType::AAAA }))
            .map(|ip| address_record(name, *ip))
            .collect();
        if answers.is_empty() {
            return self.nodata();
        }
        self.positive(answers, Vec::new())
    }

    /// The endpoints a Service's names publish, each with its slice.
    fn ready_endpoints<'a>(&'a self, svc: &'a Service) -> impl Iterator<Item = (&'a Endpoint, &'a Slice)> + 'a {
        let mut seen = BTreeSet::new();
        self.slices_of
            .get(&svc.key)
            .into_iter()
            .flatten()
            .filter_map(move |slice| self.slices.get(&Key::new(svc.key.namespace.clone(), slice.clone())))
            .flat_map(|slice| slice.endpoints.iter().map(move |e| (e, slice)))
            .filter(move |(e, _)| (e.ready || svc.publish_not_ready) && !e.addresses.is_empty())
            .filter(move |(e, _)| seen.insert(e.addresses.clone()))
    }

    /// Recomputes the reverse entries of one Service and bumps the serial.
    fn changed(&mut self, key: &Key) {
        self.serial = self.serial.wrapping_add(1);
        for (ip, name) in self.reverse_of.remove(key).unwrap_or_default() {
            if let Some(set) = self.reverse.get_mut(&ip) {
                set.remove(&name);
                if set.is_empty() {
                    self.reverse.remove(&ip);
                }
            }
        }
        let Some(svc) = self.services.get(key) else {
            return;
        };
        let mut entries = Vec::new();
        match &svc.kind {
            Kind::ClusterIp(ips) => {
                if let Some(name) = self.service_name(key) {
                    entries.extend(ips.iter().map(|ip| (*ip, name.clone())));
                }
            }
            Kind::Headless => {
                for (e, _) in self.ready_endpoints(svc) {
                    if let Some(name) = self.endpoint_name(key, e) {
                        entries.extend(e.addresses.iter().map(|ip| (*ip, name.clone())));
                    }
                }
            }
            Kind::ExternalName(_) => {}
        }
        for (ip, name) in &entries {
            self.reverse.entry(*ip).or_default().insert(name.clone());
        }
        if !entries.is_empty() {
            self.reverse_of.insert(key.clone(), entries);
        }
    }

    fn service_name(&self, key: &Key) -> Option<Name> {
        self.fqdn(&[&key.name, &key.namespace, "svc"])
    }

    fn endpoint_name(&self, key: &Key, e: &Endpoint) -> Option<Name> {
        let label = endpoint_label(e)?;
        self.fqdn(&[&label, &key.name, &key.namespace, "svc"])
    }

    fn external_target(&self, ext: &str) -> Option<Name> {
        let ext = ext.trim();
        if ext.is_empty() {
            return None;
        }
        let mut n = Name::from_ascii(ext).ok()?;
        n.set_fqdn(true);
        Some(n)
    }

    /// `labels` under the origin, lowercased.
    fn fqdn(&self, labels: &[&str]) -> Option<Name> {
        let lower: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        Name::from_labels(lower.iter().map(String::as_bytes)).ok()?.append_name(&self.origin).ok()
    }

    fn soa(&self) -> Record {
        let mname = self.fqdn(&["ns", "dns"]).unwrap_or_else(|| self.origin.clone());
        let rname = self.fqdn(&["hostmaster"]).unwrap_or_else(|| self.origin.clone());
        let soa = SOA::new(mname, rname, self.serial, 7200, 1800, 86400, TTL);
        Record::from_rdata(self.origin.clone(), TTL, RData::SOA(soa))
    }

    fn positive(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        Answer { code: ResponseCode::NoError, answers, authority: Vec::new(), additionals }
    }

    fn nodata(&self) -> Answer {
        Answer { code: ResponseCode::NoError, answers: Vec::new(), authority: vec![self.soa()], additionals: Vec::new() }
    }

    fn nxdomain(&self) -> Answer {
        Answer { code: ResponseCode::NXDomain, answers: Vec::new(), authority: vec![self.soa()], additionals: Vec::new() }
    }
}

/// Whether a question of type `qtype` is answered by a record of type `rtype`.
fn wants(qtype: RecordType, rtype: RecordType) -> bool {
    qtype == rtype || qtype == RecordType::ANY
}

fn addr_type(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "A"
    } else {
        "AAAA"
    }
}

fn address_record(name: &Name, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), TTL, data)
}

fn srv_record(name: &Name, weight: u16, port: u16, target: Name) -> Record {
    Record::from_rdata(name.clone(), TTL, RData::SRV(SRV::new(0, weight, port, target)))
}

/// The label an endpoint goes by: its hostname, else its dashed first address.
fn endpoint_label(e: &Endpoint) -> Option<String> {
    match &e.hostname {
        Some(h) if !h.is_empty() => Some(h.to_ascii_lowercase()),
        _ => e.addresses.first().map(|ip| dashed_ip(*ip)),
    }
}
