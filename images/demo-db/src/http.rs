//! The HTTP interface (28017): the status page and the REST API.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /` | the status page (HTML) |
//! | `GET /serverStatus` | uptime, counters, listeners (JSON) |
//! | `GET /listDatabases` | databases and their collections (JSON) |
//! | `GET /DB/COLLECTION/?filter_F=V&skip=N&limit=N` | `{"offset":…,"rows":[…],"total_rows":…,"query":{…},"millis":…}` |
//! | `POST /DB/COLLECTION` with a JSON object | stored; `201 {"ok":true,"_id":…}` |
//!
//! A POSTed document with an `_id` already stored replaces it (mongo's `save()`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::server::Shared;
use crate::store::StoreError;

/// The router for the HTTP interface.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(crate::status::page))
        .route("/serverStatus", get(crate::status::server_status))
        .route("/_status", get(crate::status::server_status))
        .route("/listDatabases", get(crate::status::list_databases))
        .route("/{db}/{coll}", get(find).post(insert))
        .route("/{db}/{coll}/", get(find).post(insert))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), log_requests))
        .with_state(shared)
}

async fn log_requests(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = Instant::now();
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let res = next.run(req).await;
    tracing::info!(
        %method,
        %uri,
        status = res.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1000.0,
        "http"
    );
    res
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n").into_response()
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"ok": false, "errmsg": msg.to_string()}))).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::InvalidName { .. } | StoreError::NotAnObject => error(StatusCode::BAD_REQUEST, e),
        StoreError::Io { .. } => {
            tracing::error!(error = %e, "store failure");
            error(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
    }
}

async fn find(
    State(shared): State<Arc<Shared>>,
    Path((db, coll)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let start = Instant::now();
    let mut filters = Vec::new();
    let mut query = Map::new();
    let (mut skip, mut limit) = (0usize, 0usize);
    for (k, v) in params {
        if let Some(field) = k.strip_prefix("filter_") {
            query.insert(field.to_string(), Value::String(v.clone()));
            filters.push((field.to_string(), v));
        } else if k == "skip" {
            match v.parse() {
                Ok(n) => skip = n,
                Err(_) => return error(StatusCode::BAD_REQUEST, format!("skip={v:?} is not a number")),
            }
        } else if k == "limit" {
            match v.parse() {
                Ok(n) => limit = n,
                Err(_) => return error(StatusCode::BAD_REQUEST, format!("limit={v:?} is not a number")),
            }
        }
    }
    let page = {
        let store = match shared.store.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        store.find(&db, &coll, &filters, skip, limit)
    };
    match page {
        Ok(page) => {
            shared.stats.queries.fetch_add(1, Ordering::Relaxed);
            let total = page.rows.len();
            Json(json!({
                "offset": page.offset,
                "rows": page.rows,
                "total_rows": total,
                "query": query,
                "millis": start.elapsed().as_millis() as u64,
            }))
            .into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn insert(State(shared): State<Arc<Shared>>, Path((db, coll)): Path<(String, String)>, body: Bytes) -> Response {
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")),
    };
    let shared2 = shared.clone();
    // Writing fsyncs: off the async threads.
    let res = tokio::task::spawn_blocking(move || {
        let mut store = match shared2.store.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        store.save(&db, &coll, doc)
    })
    .await;
    match res {
        Ok(Ok(id)) => {
            shared.stats.inserts.fetch_add(1, Ordering::Relaxed);
            (StatusCode::CREATED, Json(json!({"ok": true, "_id": id}))).into_response()
        }
        Ok(Err(e)) => store_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("the write task failed: {e}")),
    }
}

/// An HTML page response.
pub fn html(body: String) -> Response {
    Html(body).into_response()
}
