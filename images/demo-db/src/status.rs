//! The status page at `/` (what the course opens in a browser through a port-forward,
//! like mongod's HTTP interface) and its JSON forms.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use crate::server::Shared;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn addrs(list: &[std::net::SocketAddr]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, crate::store::Store> {
    match shared.store.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// `GET /`: the status page.
pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let host = escape(&shared.hostname);
    let s = &shared.stats;
    let collections = lock(&shared).collections();
    let mut rows = String::new();
    for (db, coll, n) in &collections {
        let _ = writeln!(
            rows,
            "<tr><td>{db}</td><td><a href=\"/{db}/{coll}/\">{coll}</a></td><td>{n}</td></tr>",
            db = escape(db),
            coll = escape(coll)
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"3\">(no collections yet)</td></tr>\n");
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    let body = format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{host} mongod</title>
<style>body{{font-family:monospace}} td,th{{padding:2px 12px;text-align:left}}</style></head>
<body>
<h2>mongod {host}</h2>
<p>{version}</p>
<pre>
git hash: none (minik stand-in)
uptime: {uptime} seconds
dbpath: {dbpath}
native port: {native}
http interface: {http}
--rest: {rest}   --httpinterface: {httpinterface}

requests: {requests}   queries: {queries}   inserts: {inserts}   native connections: {conns}
</pre>
<h3>databases</h3>
<table><tr><th>database</th><th>collection</th><th>documents</th></tr>
{rows}</table>
<h3>REST</h3>
<pre>
GET  /DB/COLLECTION/                       all documents
GET  /DB/COLLECTION/?filter_FIELD=VALUE    documents whose FIELD is VALUE (also skip=N, limit=N)
POST /DB/COLLECTION                        store the JSON document in the body
</pre>
<p><a href="/serverStatus">serverStatus</a> | <a href="/listDatabases">listDatabases</a></p>
</body></html>
"#,
        version = escape(&crate::version_line()),
        uptime = shared.started.elapsed().as_secs(),
        dbpath = escape(&shared.opts.dbpath.display().to_string()),
        native = addrs(&shared.native_addrs),
        http = addrs(&shared.http_addrs),
        rest = yes(shared.opts.rest),
        httpinterface = yes(shared.opts.httpinterface),
        requests = s.requests.load(Ordering::Relaxed),
        queries = s.queries.load(Ordering::Relaxed),
        inserts = s.inserts.load(Ordering::Relaxed),
        conns = s.native_connections.load(Ordering::Relaxed),
    );
    crate::http::html(body)
}

/// `GET /serverStatus`: the status as JSON.
pub async fn server_status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let s = &shared.stats;
    Json(json!({
        "host": shared.hostname,
        "version": crate::MONGO_VERSION,
        "process": "mongod",
        "standIn": format!("minik demo-db {}", env!("CARGO_PKG_VERSION")),
        "pid": std::process::id(),
        "uptime": shared.started.elapsed().as_secs(),
        "dbpath": shared.opts.dbpath,
        "listening": {"native": shared.native_addrs, "http": shared.http_addrs},
        "opcounters": {
            "insert": s.inserts.load(Ordering::Relaxed),
            "query": s.queries.load(Ordering::Relaxed),
        },
        "network": {
            "httpRequests": s.requests.load(Ordering::Relaxed),
            "nativeConnections": s.native_connections.load(Ordering::Relaxed),
        },
        "ok": 1,
    }))
}

/// `GET /listDatabases`: databases, their collections and sizes.
pub async fn list_databases(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let store = lock(&shared);
    let mut dbs: Vec<Value> = Vec::new();
    let mut total = 0u64;
    let collections = store.collections();
    let mut names: Vec<&String> = collections.iter().map(|(d, _, _)| d).collect();
    names.dedup();
    for db in names {
        let size = store.size_on_disk(db);
        total += size;
        let colls: Vec<Value> = collections
            .iter()
            .filter(|(d, _, _)| d == db)
            .map(|(_, c, n)| json!({"name": c, "count": n}))
            .collect();
        dbs.push(json!({"name": db, "sizeOnDisk": size, "empty": size == 0, "collections": colls}));
    }
    Json(json!({"databases": dbs, "totalSize": total, "ok": 1}))
}
