//! What minikproxy knows about a Service, with no I/O: its addresses and ports, and
//! the endpoints behind each port, already reduced from the API objects (see
//! [`crate::convert`]) to what the rules need.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// A Service's identity: `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ServiceKey {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        ServiceKey { namespace: namespace.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A transport protocol a Service port can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the API's spelling (`TCP`, `UDP`, `SCTP`; absent means TCP).
    pub fn from_api(p: Option<&str>) -> Option<Self> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' name (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name (empty for a single unnamed port); EndpointSlice ports carry the same name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The port on the ClusterIP (and load-balancer IPs).
    pub port: u16,
    /// The NodePort, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
}

/// A Service as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its identity.
    pub key: ServiceKey,
    /// Its IPv4 ClusterIPs.
    pub cluster_ips: Vec<Ipv4Addr>,
    /// Its load-balancer IPs (`status.loadBalancer.ingress[].ip`).
    pub lb_ips: Vec<Ipv4Addr>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP`'s timeout in seconds; `None` without affinity.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`: NodePort and LB traffic only to this node's
    /// endpoints, with the client's IP kept.
    pub external_local: bool,
}

/// One endpoint of one Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Its address.
    pub ip: Ipv4Addr,
    /// The target port.
    pub port: u16,
    /// `conditions.ready`: only ready endpoints get new connections.
    pub ready: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// The node it runs on, when the slice says.
    pub node: Option<String>,
}

/// Which port of a Service a set of endpoints belongs to: its name and protocol.
pub type PortKey = (String, Protocol);

/// The endpoints of a Service, per port (from all of its EndpointSlices).
pub type ServiceEndpoints = BTreeMap<PortKey, Vec<Endpoint>>;
