//! The etcd backend (`miniapi --store etcd --etcd-endpoints http://127.0.0.1:2379`).
//!
//! The mapping is the one kube-apiserver uses, one-to-one with the [`Store`] model:
//!
//! * keys are the store keys (`/registry/core/pods/default/x`), behind an optional extra
//!   prefix so several stores can share one etcd; values are the JSON objects without
//!   `metadata.resourceVersion`, which is stamped on read from the key's `mod_revision`;
//! * the store revision is etcd's header revision; a list is one range (paged with
//!   `limit`, every page pinned to the first page's revision), so it is one snapshot;
//! * `create` is a txn comparing `create_revision == 0`; `update` and `delete` compare
//!   `mod_revision == expected` (or `create_revision > 0` when unguarded), and on failure
//!   read the key in the same txn to tell NotFound from Conflict;
//! * watches: one etcd watch (from the revision at open, `prev_kv` on) feeds the same
//!   [`WatchHub`] as the redb backend, so recent history is replayed from memory; a
//!   watch from a revision older than the hub's history (after a restart, say) gets its
//!   own etcd watch with `start_revision`, and a revision etcd has compacted is
//!   [`StoreError::Compacted`], which the HTTP layer turns into `410 Gone`.
//!
//! Client: the `etcd-client` crate (tonic gRPC) rather than etcd's JSON gateway over
//! hyper: it is etcd's native API with typed txn/compare/watch builders and no hand-kept
//! base64/int64-as-string JSON mapping; the price is `protoc` at build time
//! (`protobuf-compiler`, installed by `scripts/deps.sh`).
//!
//! The [`Store`] trait is synchronous and is called on tokio's blocking pool (and from
//! plain threads), so the store owns a small runtime of its own: each call is spawned
//! there and the caller waits on a std channel, which is safe from any thread.

use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType as EtcdEventType,
    GetOptions, KvClient, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use serde_json::{json, Value};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::broadcast;

use super::hub::{WatchHub, WatchStart};
use super::{
    stamp_revision, EventType, KeyValue, ListResult, Store, StoreError, StoreEvent, StoreResult,
};

/// Keys per range request when listing (each page pinned to one revision).
const PAGE: i64 = 500;
/// How long one store call may take before it is reported as a backend error.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `connect` keeps trying to reach etcd.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Capacity of the channel behind a watch served straight from etcd.
const DIRECT_WATCH_CAPACITY: usize = 16_384;

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// A [`Store`] in etcd.
pub struct EtcdStore {
    /// Owned so it lives as long as the store; shut down without blocking on drop.
    runtime: Option<Runtime>,
    handle: Handle,
    kv: KvClient,
    client: Client,
    /// Extra prefix in front of every key (empty for the API server).
    prefix: String,
    hub: Arc<WatchHub>,
}

/// The first key after every key that starts with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Empty (or all 0xff) prefix: "\0" means "to the end of the keyspace".
    vec![0]
}

/// Run `fut` on `handle` and wait for it from a synchronous caller.
fn block_on<T, F>(handle: &Handle, fut: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: Future<Output = StoreResult<T>> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    handle.spawn(async move {
        // The caller may have timed out and gone; nothing to do then.
        let _ = tx.send(fut.await);
    });
    match rx.recv_timeout(CALL_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(StoreError::Backend(format!(
            "etcd did not answer within {}s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// Decodes etcd key-values into store values, stripping the extra prefix.
#[derive(Clone)]
struct Codec {
    prefix: String,
}

impl Codec {
    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn store_key(&self, raw: &[u8]) -> StoreResult<String> {
        let s = std::str::from_utf8(raw).map_err(|e| {
            StoreError::Corrupt(String::from_utf8_lossy(raw).into_owned(), e.to_string())
        })?;
        Ok(s.strip_prefix(self.prefix.as_str())
            .unwrap_or(s)
            .to_string())
    }

    /// The object stored at `kv`, stamped with revision `rev`.
    fn object(&self, key: &str, value: &[u8], rev: i64) -> StoreResult<Value> {
        let mut v: Value = serde_json::from_slice(value)
            .map_err(|e| StoreError::Corrupt(key.to_string(), e.to_string()))?;
        stamp_revision(&mut v, rev_u64(rev));
        Ok(v)
    }

    fn decode(&self, kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
        let key = self.store_key(kv.key())?;
        let value = self.object(&key, kv.value(), kv.mod_revision())?;
        Ok(KeyValue {
            key,
            value,
            mod_revision: rev_u64(kv.mod_revision()),
        })
    }

    /// A store event from an etcd watch event (None for keys that are not ours or
    /// values that are not JSON: logged and skipped).
    fn event(&self, ev: &etcd_client::Event) -> Option<StoreEvent> {
        let kv = ev.kv()?;
        let key = self.store_key(kv.key()).ok()?;
        let rev = kv.mod_revision();
        let prev = match ev.prev_kv() {
            Some(p) => match self.object(&key, p.value(), p.mod_revision()) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(%key, "skipping a watch event: {e}");
                    return None;
                }
            },
            None => None,
        };
        let (kind, object) = match ev.event_type() {
            EtcdEventType::Put => {
                let kind = if kv.version() == 1 {
                    EventType::Added
                } else {
                    EventType::Modified
                };
                match self.object(&key, kv.value(), rev) {
                    Ok(v) => (kind, v),
                    Err(e) => {
                        tracing::warn!(%key, "skipping a watch event: {e}");
                        return None;
                    }
                }
            }
            EtcdEventType::Delete => {
                // The deleted object's last state, stamped with the deletion revision
                // (as the redb backend records it).
                let mut last = prev.clone().unwrap_or_else(|| {
                    let name = key.rsplit('/').next().unwrap_or_default();
                    json!({"metadata": {"name": name}})
                });
                stamp_revision(&mut last, rev_u64(rev));
                (EventType::Deleted, last)
            }
        };
        Some(StoreEvent {
            revision: rev_u64(rev),
            kind,
            key,
            object,
            prev,
        })
    }
}

fn rev_u64(rev: i64) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

fn rev_i64(rev: u64) -> i64 {
    i64::try_from(rev).unwrap_or(i64::MAX)
}

/// The value as stored: without `metadata.resourceVersion` (it is the key's mod revision).
fn encode(mut value: Value) -> StoreResult<Vec<u8>> {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&value).map_err(backend)
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> StoreResult<u64> {
    h.map(|h| rev_u64(h.revision()))
        .ok_or_else(|| StoreError::Backend("etcd: response without a header".into()))
}

/// The key read by a txn's `or_else` branch, if it exists.
fn failed_read(resp: &etcd_client::TxnResponse, codec: &Codec) -> StoreResult<Option<KeyValue>> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(g) = op {
            return match g.kvs().first() {
                Some(kv) => Ok(Some(codec.decode(kv)?)),
                None => Ok(None),
            };
        }
    }
    Ok(None)
}

/// Whether an etcd error says the requested revision was compacted.
fn is_compacted(e: &etcd_client::Error) -> bool {
    e.to_string().contains("compacted")
}

impl EtcdStore {
    /// Connect to etcd at `endpoints` (e.g. `http://127.0.0.1:2379`), with every key under
    /// `prefix` (empty for the API server: its keys already start with `/registry/`).
    /// Waits up to 20 s for etcd to answer, then starts the watch that feeds the hub.
    pub fn connect(endpoints: &[String], prefix: &str) -> StoreResult<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend(
                "--store etcd needs --etcd-endpoints, e.g. --etcd-endpoints http://127.0.0.1:2379"
                    .into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("etcd-client")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the etcd client runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let codec = Codec {
            prefix: prefix.to_string(),
        };
        let eps = endpoints.to_vec();
        let opened = block_on(&handle, async move {
            let client = connect_client(&eps).await?;
            let current = revision(client.kv_client(), codec.clone()).await?;
            let hub = Arc::new(WatchHub::new(current, current, Vec::new()));
            tokio::spawn(feed_hub(client.clone(), codec, hub.clone(), current));
            Ok((client, hub, current))
        });
        let (client, hub, current) = match opened {
            Ok(x) => x,
            Err(e) => {
                // Dropping a runtime blocks, which panics in an async context.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        tracing::info!(endpoints = ?endpoints, revision = current, "opened etcd store");
        Ok(EtcdStore {
            kv: client.kv_client(),
            client,
            handle,
            runtime: Some(runtime),
            prefix: prefix.to_string(),
            hub,
        })
    }

    fn codec(&self) -> Codec {
        Codec {
            prefix: self.prefix.clone(),
        }
    }

    fn call<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(KvClient, Codec) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        block_on(&self.handle, f(self.kv.clone(), self.codec()))
    }

    /// A watch served straight from etcd, from `after + 1`, for revisions older than
    /// the hub's history.
    fn direct_watch(&self, after: u64) -> StoreResult<WatchStart> {
        let client = self.client.clone();
        let codec = self.codec();
        block_on(&self.handle, async move {
            let start = rev_i64(after) + 1;
            let mut kv = client.kv_client();
            // A range at the start revision fails if etcd has compacted it.
            let probe = kv
                .get(
                    codec.full_key(""),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_count_only()
                            .with_revision(start),
                    ),
                )
                .await;
            let mut wc = client.watch_client();
            let opts = WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_start_revision(start);
            let mut stream = wc
                .watch(codec.full_key(""), Some(opts))
                .await
                .map_err(backend)?;
            if let Err(e) = probe {
                if !is_compacted(&e) {
                    return Err(backend(e));
                }
                // etcd reports the oldest revision it still has on the cancelled watch.
                let oldest = tokio::time::timeout(Duration::from_secs(2), async {
                    loop {
                        match stream.message().await {
                            Ok(Some(m)) if m.compact_revision() > 0 => {
                                return rev_u64(m.compact_revision())
                            }
                            Ok(Some(_)) => continue,
                            _ => return after + 1,
                        }
                    }
                })
                .await
                .unwrap_or(after + 1);
                return Err(StoreError::Compacted {
                    requested: after,
                    oldest,
                });
            }
            let (tx, rx) = broadcast::channel(DIRECT_WATCH_CAPACITY);
            tokio::spawn(forward_direct(stream, codec, tx));
            Ok(WatchStart {
                replay: Vec::new(),
                live: rx,
                revision: after,
            })
        })
    }
}

/// etcd's current revision (the header of a one-key read).
async fn revision(mut kv: KvClient, codec: Codec) -> StoreResult<u64> {
    let r = kv
        .get(
            codec.full_key("/"),
            Some(GetOptions::new().with_count_only()),
        )
        .await
        .map_err(backend)?;
    header_revision(r.header())
}

async fn connect_client(endpoints: &[String]) -> StoreResult<Client> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let attempt = async {
            let mut c = Client::connect(endpoints, Some(opts.clone())).await?;
            c.get("/", Some(GetOptions::new().with_count_only()))
                .await?;
            Ok::<_, etcd_client::Error>(c)
        }
        .await;
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(StoreError::Backend(format!(
                    "cannot reach etcd at {}: {e}; is etcd running there? \
                     (e.g. `etcd --data-dir /var/lib/minik/etcd`)",
                    endpoints.join(",")
                )))
            }
            Err(e) => {
                tracing::debug!("etcd not reachable yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Follow etcd from `from` and publish every change to the hub, reconnecting (from the
/// last revision seen) when the stream breaks. Runs until the store's runtime stops.
async fn feed_hub(client: Client, codec: Codec, hub: Arc<WatchHub>, from: u64) {
    let mut last = from;
    loop {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(rev_i64(last) + 1);
        let mut wc = client.watch_client();
        match wc.watch(codec.full_key(""), Some(opts)).await {
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        if resp.compact_revision() > 0 {
                            tracing::error!(
                                from = last + 1,
                                oldest = resp.compact_revision(),
                                "etcd compacted past the watch; events in between are lost"
                            );
                            last = rev_u64(resp.compact_revision()).saturating_sub(1);
                            break;
                        }
                        for ev in resp.events() {
                            if let Some(se) = codec.event(ev) {
                                last = last.max(se.revision);
                                hub.publish(se);
                            }
                        }
                        if resp.canceled() {
                            tracing::warn!(
                                reason = resp.cancel_reason(),
                                "etcd cancelled the watch"
                            );
                            break;
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("etcd watch stream ended; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("etcd watch failed: {e}; reconnecting");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!("cannot start the etcd watch: {e}; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Forward one direct etcd watch to its broadcast channel until nobody listens, the
/// stream ends, or etcd cancels it (the channel then closes and the client re-watches).
async fn forward_direct(
    mut stream: etcd_client::WatchStream,
    codec: Codec,
    tx: broadcast::Sender<Arc<StoreEvent>>,
) {
    let mut idle = tokio::time::interval(Duration::from_secs(5));
    idle.tick().await;
    loop {
        tokio::select! {
            msg = stream.message() => match msg {
                Ok(Some(resp)) => {
                    for ev in resp.events() {
                        if let Some(se) = codec.event(ev) {
                            if tx.send(Arc::new(se)).is_err() {
                                return;
                            }
                        }
                    }
                    if resp.canceled() {
                        return;
                    }
                }
                Ok(None) | Err(_) => return,
            },
            _ = idle.tick() => {
                if tx.receiver_count() == 0 {
                    return;
                }
            }
        }
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Never block (the store may be dropped inside an async context).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let key = key.to_string();
        self.call(move |mut kv, codec| async move {
            let r = kv.get(codec.full_key(&key), None).await.map_err(backend)?;
            match r.kvs().first() {
                Some(x) => Ok(Some(codec.decode(x)?)),
                None => Ok(None),
            }
        })
    }

    fn list(&self, prefix: &str) -> StoreResult<ListResult> {
        let prefix = prefix.to_string();
        self.call(move |mut kv, codec| async move {
            let full = codec.full_key(&prefix).into_bytes();
            let end = prefix_end(&full);
            let mut from = if full.is_empty() {
                vec![0]
            } else {
                full.clone()
            };
            let mut revision = 0i64;
            let mut items = Vec::new();
            loop {
                let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
                if revision > 0 {
                    opts = opts.with_revision(revision);
                }
                let r = kv.get(from.clone(), Some(opts)).await.map_err(backend)?;
                if revision == 0 {
                    revision = rev_i64(header_revision(r.header())?);
                }
                for x in r.kvs() {
                    items.push(codec.decode(x)?);
                }
                match (r.more(), r.kvs().last()) {
                    (true, Some(last)) => {
                        from = last.key().to_vec();
                        from.push(0);
                    }
                    _ => break,
                }
            }
            Ok(ListResult {
                items,
                revision: rev_u64(revision),
            })
        })
    }

    fn create(&self, key: &str, value: Value) -> StoreResult<KeyValue> {
        let key = key.to_string();
        let bytes = encode(value.clone())?;
        self.call(move |mut kv, codec| async move {
            let full = codec.full_key(&key);
            let txn = Txn::new()
                .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(full, bytes, None)]);
            let r = kv.txn(txn).await.map_err(backend)?;
            if !r.succeeded() {
                return Err(StoreError::AlreadyExists(key));
            }
            let rev = header_revision(r.header())?;
            let mut value = value;
            stamp_revision(&mut value, rev);
            Ok(KeyValue {
                key,
                value,
                mod_revision: rev,
            })
        })
    }

    fn update(&self, key: &str, value: Value, expected: Option<u64>) -> StoreResult<KeyValue> {
        let key = key.to_string();
        let bytes = encode(value.clone())?;
        self.call(move |mut kv, codec| async move {
            let full = codec.full_key(&key);
            let guard = match expected {
                Some(e) => Compare::mod_revision(full.clone(), CompareOp::Equal, rev_i64(e)),
                None => Compare::create_revision(full.clone(), CompareOp::Greater, 0),
            };
            let txn = Txn::new()
                .when([guard])
                .and_then([TxnOp::put(full.clone(), bytes, None)])
                .or_else([TxnOp::get(full, None)]);
            let r = kv.txn(txn).await.map_err(backend)?;
            if !r.succeeded() {
                return Err(guard_failure(&r, &codec, key, expected));
            }
            let rev = header_revision(r.header())?;
            let mut value = value;
            stamp_revision(&mut value, rev);
            Ok(KeyValue {
                key,
                value,
                mod_revision: rev,
            })
        })
    }

    fn delete(&self, key: &str, expected: Option<u64>) -> StoreResult<KeyValue> {
        let key = key.to_string();
        self.call(move |mut kv, codec| async move {
            let full = codec.full_key(&key);
            let guard = match expected {
                Some(e) => Compare::mod_revision(full.clone(), CompareOp::Equal, rev_i64(e)),
                None => Compare::create_revision(full.clone(), CompareOp::Greater, 0),
            };
            let txn = Txn::new()
                .when([guard])
                .and_then([TxnOp::delete(
                    full.clone(),
                    Some(DeleteOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(full, None)]);
            let r = kv.txn(txn).await.map_err(backend)?;
            if !r.succeeded() {
                return Err(guard_failure(&r, &codec, key, expected));
            }
            let rev = header_revision(r.header())?;
            let prev = r.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
                _ => None,
            });
            let Some(prev) = prev else {
                return Err(StoreError::NotFound(key));
            };
            let value = codec.object(&key, prev.value(), rev_i64(rev))?;
            Ok(KeyValue {
                key,
                value,
                mod_revision: rev,
            })
        })
    }

    fn watch(&self, after_revision: u64) -> StoreResult<WatchStart> {
        match self.hub.start(after_revision) {
            Err(StoreError::Compacted { .. }) => self.direct_watch(after_revision),
            other => other,
        }
    }

    fn current_revision(&self) -> u64 {
        match self.call(revision) {
            Ok(rev) => rev.max(self.hub.current()),
            Err(e) => {
                tracing::warn!("reading etcd's revision: {e}");
                self.hub.current()
            }
        }
    }
}

/// The error for a txn whose guard failed: the key is missing, or its revision differs.
fn guard_failure(
    resp: &etcd_client::TxnResponse,
    codec: &Codec,
    key: String,
    expected: Option<u64>,
) -> StoreError {
    match failed_read(resp, codec) {
        Ok(Some(cur)) => StoreError::Conflict {
            key,
            expected: expected.unwrap_or(0),
            actual: cur.mod_revision,
        },
        Ok(None) => StoreError::NotFound(key),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/r/"), b"/r0".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
    }

    #[test]
    fn stored_values_carry_no_resource_version() {
        let bytes =
            encode(json!({"metadata": {"name": "a", "resourceVersion": "7"}})).expect("encode");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert!(v["metadata"].get("resourceVersion").is_none());
        assert_eq!(v["metadata"]["name"], "a");
    }
}
