//! The database client: HTTP/1.1 to the REST interface of demo-db (or of a real
//! `mongod --rest`), one connection per request, the host resolved every time (so a
//! Service's name keeps working).
//!
//! People live in database `test`, collection `people` (go-demo-2's), each stored with
//! `_id` = name, so storing a name twice keeps one person (go-demo-2 upserts by name).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::config::DbAddr;

/// go-demo-2's database.
pub const DATABASE: &str = "test";
/// go-demo-2's collection.
pub const COLLECTION: &str = "people";

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A person, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The name.
    pub name: String,
}

/// A client for the database at one address.
#[derive(Debug, Clone)]
pub struct Db {
    addr: DbAddr,
}

impl Db {
    /// A client for `addr`.
    pub fn new(addr: DbAddr) -> Self {
        Self { addr }
    }

    async fn connect(&self) -> Result<TcpStream> {
        // `localhost` is loopback (RFC 6761) even where /etc/hosts is empty, as in an
        // image before the runtime mounts the pod's.
        let addrs: Vec<std::net::SocketAddr> = if self.addr.host.eq_ignore_ascii_case("localhost") {
            vec![(std::net::Ipv4Addr::LOCALHOST, self.addr.port).into(), (std::net::Ipv6Addr::LOCALHOST, self.addr.port).into()]
        } else {
            tokio::net::lookup_host((self.addr.host.as_str(), self.addr.port))
                .await
                .with_context(|| format!("resolving {}", self.addr.host))?
                .collect()
        };
        let mut last = anyhow!("{} resolved to no address", self.addr.host);
        for a in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = anyhow::Error::new(e).context(format!("connecting to {a}")),
                Err(_) => last = anyhow!("connecting to {a}: timed out after {CONNECT_TIMEOUT:?}"),
            }
        }
        Err(last)
    }

    /// Sends one request; returns the status and body.
    async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<(StatusCode, Bytes)> {
        let fut = async {
            let stream = self.connect().await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "database connection closed");
                }
            });
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, self.addr.to_string())
                .header(hyper::header::USER_AGENT, concat!("demo-api/", env!("CARGO_PKG_VERSION")));
            if body.is_some() {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).context("building a request")?;
            let res = sender.send_request(req).await.context("sending the request")?;
            let status = res.status();
            let bytes = res.into_body().collect().await.context("reading the answer")?.to_bytes();
            Ok::<_, anyhow::Error>((status, bytes))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(r) => r.with_context(|| format!("database at {}", self.addr)),
            Err(_) => bail!("database at {}: no answer within {REQUEST_TIMEOUT:?}", self.addr),
        }
    }

    /// `GET /` on the database (its status page): Ok if it answers 200.
    pub async fn ping(&self) -> Result<()> {
        let (status, _) = self.request(Method::GET, "/", None).await?;
        if status != StatusCode::OK {
            bail!("database at {} answered {status} to GET /", self.addr);
        }
        Ok(())
    }

    /// Tries [`Db::ping`] until it works or `wait` has passed (at least once).
    pub async fn wait_reachable(&self, wait: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut attempt = 1u32;
        loop {
            match self.ping().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() + Duration::from_millis(500) < deadline => {
                    tracing::warn!(attempt, error = %format!("{e:#}"), "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.context(format!("gave up after {attempt} attempt(s) over {wait:?}"))),
            }
        }
    }

    /// Everyone stored, in storing order.
    pub async fn people(&self) -> Result<Vec<Person>> {
        let path = format!("/{DATABASE}/{COLLECTION}/");
        let (status, body) = self.request(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            bail!("database answered {status} to GET {path}: {}", String::from_utf8_lossy(&body));
        }
        let v: Value = serde_json::from_slice(&body).context("the database's answer is not JSON")?;
        let rows = v.get("rows").and_then(Value::as_array).context("the database's answer has no rows")?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get("name").and_then(Value::as_str))
            .map(|name| Person { name: name.to_string() })
            .collect())
    }

    /// Stores a person (again storing the same name keeps one).
    pub async fn save(&self, person: &Person) -> Result<()> {
        let path = format!("/{DATABASE}/{COLLECTION}");
        let doc = serde_json::json!({"_id": person.name, "name": person.name});
        let (status, body) = self.request(Method::POST, &path, Some(serde_json::to_vec(&doc)?)).await?;
        if !status.is_success() {
            bail!("database answered {status} to POST {path}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}
