//! The DNS server: hickory-server's UDP and TCP listeners, and a request handler that
//! answers from the zone or forwards upstream.
//!
//! hickory-server (the Hickory DNS project's server library) was chosen because it
//! brings the parts a DNS server needs and minik should not re-invent: message parsing
//! and encoding (hickory-proto), UDP truncation to the client's EDNS size, TCP framing
//! with idle timeouts, and one task per query on tokio, which the rest of minik runs on.
//! Its `Catalog` of static zones does not fit a zone that changes on every watch event,
//! so minik-dns implements `RequestHandler` over its own [`Zone`] instead.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use crate::forward::Forwarder;
use crate::zone::{Answer, Lookup, Zone};

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// How many CNAMEs in a row are followed (ExternalName to ExternalName to …).
const MAX_CNAME_CHAIN: usize = 8;

/// The largest UDP reply sent to an EDNS client (the DNS flag day 2020 value).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// The zone shared between the watch (writer) and the handler (readers).
pub type SharedZone = Arc<RwLock<Zone>>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr} ({proto}): {source}; is another DNS server on that port? choose another with --listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `UDP` or `TCP`.
        proto: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Answers queries from the zone; forwards the rest.
pub struct Handler {
    zone: SharedZone,
    forwarder: Forwarder,
}

impl Handler {
    /// A handler over `zone`, forwarding with `forwarder`.
    pub fn new(zone: SharedZone, forwarder: Forwarder) -> Self {
        Handler { zone, forwarder }
    }

    fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup {
        let zone = self.zone.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        zone.lookup(name, qtype)
    }

    /// Follows a CNAME answer (an ExternalName Service) to its target's records, in the
    /// zone or upstream, as CoreDNS does: a stub resolver does not chase CNAMEs itself.
    async fn chase(&self, answer: &mut Answer, qtype: RecordType, id: u16) {
        if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return;
        }
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(RData::CNAME(target)) = answer.answers.last().map(|r| &r.data) else {
                return;
            };
            let target = target.0.clone();
            match self.lookup(&target, qtype) {
                Lookup::Answer(next) => {
                    if next.answers.is_empty() {
                        return;
                    }
                    answer.answers.extend(next.answers);
                    answer.additionals.extend(next.additionals);
                }
                Lookup::Elsewhere => {
                    if let Some(records) = self.resolve_upstream(&target, qtype, id).await {
                        answer.answers.extend(records);
                    }
                    return;
                }
            }
        }
    }

    /// The answer records for `name`/`qtype` from the upstreams (`None` when there are
    /// none, or they fail).
    async fn resolve_upstream(&self, name: &Name, qtype: RecordType, id: u16) -> Option<Vec<Record>> {
        if !self.forwarder.is_configured() {
            return None;
        }
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(name.clone(), qtype));
        let bytes = msg.to_vec().ok()?;
        let mut reply = self.forwarder.forward(&bytes, false).await.ok()?;
        if Message::from_vec(&reply).ok()?.metadata.truncation {
            reply = self.forwarder.forward(&bytes, true).await.ok()?;
        }
        match Message::from_vec(&reply) {
            Ok(m) => Some(m.answers),
            Err(e) => {
                tracing::debug!(%name, error = %e, "unreadable upstream reply");
                None
            }
        }
    }
}

/// Binds UDP and TCP on `listen` (the same port for both, also when `listen` asks for
/// port 0) and starts serving. Returns the server (drop or shut it down to stop) and the
/// bound address.
pub async fn serve(handler: Handler, listen: SocketAddr) -> Result<(Server<Handler>, SocketAddr), ServeError> {
    let udp = UdpSocket::bind(listen).await.map_err(|source| ServeError::Bind { addr: listen, proto: "UDP", source })?;
    let bound = udp.local_addr().map_err(|source| ServeError::Bind { addr: listen, proto: "UDP", source })?;
    let tcp = TcpListener::bind(bound).await.map_err(|source| ServeError::Bind { addr: bound, proto: "TCP", source })?;
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, 64);
    Ok((server, bound))
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|asked| {
            let mut e = Edns::new();
            e.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }

        if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            return send(&mut response, builder.error_msg(&request.metadata, ResponseCode::NotImp), request).await;
        }
        let Ok(info) = request.request_info() else {
            return send(&mut response, builder.error_msg(&request.metadata, ResponseCode::FormErr), request).await;
        };
        if info.query.query_class() != DNSClass::IN {
            return send(&mut response, builder.error_msg(&request.metadata, ResponseCode::Refused), request).await;
        }

        match self.lookup(info.query.original().name(), info.query.query_type()) {
            Lookup::Answer(mut answer) => {
                self.chase(&mut answer, info.query.query_type(), request.metadata.id).await;
                let mut meta = Metadata::response_from_request(&request.metadata);
                meta.authoritative = true;
                meta.recursion_available = self.forwarder.is_configured();
                meta.response_code = answer.code;
                let msg = builder.build(
                    meta,
                    answer.answers.iter(),
                    answer.authority.iter(),
                    std::iter::empty::<&Record>(),
                    answer.additionals.iter(),
                );
                send(&mut response, msg, request).await
            }
            Lookup::Elsewhere if !self.forwarder.is_configured() => {
                send(&mut response, builder.error_msg(&request.metadata, ResponseCode::Refused), request).await
            }
            Lookup::Elsewhere => {
                let tcp = request.protocol() == Protocol::Tcp;
                let reply = match self.forwarder.forward(request.as_slice(), tcp).await {
                    Ok(bytes) => Message::from_vec(&bytes).map_err(|e| format!("unreadable reply: {e}")),
                    Err(e) => Err(e.to_string()),
                };
                match reply {
                    Ok(up) => {
                        let mut meta = up.metadata;
                        meta.id = request.metadata.id;
                        let msg = builder.build(
                            meta,
                            up.answers.iter(),
                            up.authorities.iter(),
                            std::iter::empty::<&Record>(),
                            up.additionals.iter(),
                        );
                        send(&mut response, msg, request).await
                    }
                    Err(reason) => {
                        tracing::warn!(name = %info.query.name(), %reason, "cannot forward");
                        send(&mut response, builder.error_msg(&request.metadata, ResponseCode::ServFail), request).await
                    }
                }
            }
        }
    }
}

/// Sends one response; a failure to send is logged, and reported as SERVFAIL.
async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(src = %request.src(), error = %e, "cannot send a DNS response");
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
        }
    }
}
