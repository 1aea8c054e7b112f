//! The HTTP API, go-demo-2's:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /demo/hello[?delay=MS]` | `200 text/plain; charset=utf-8` `hello, world!` |
//! | `GET /demo/person` | the people, JSON `[{"name":…},…]` (newline-separated names with `Accept: text/plain`) |
//! | `GET /demo/person?name=X` | that person, or 404 |
//! | `PUT /demo/person?name=X` | stores X |
//! | `POST /demo/person` with `{"name":…}` | stores it, 201 |
//! | `GET /demo/random-error` | mostly 200, one time in ten 500 |
//!
//! A database failure is a 500 with the reason, logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::db::{Db, Person};

const TEXT: &str = "text/plain; charset=utf-8";

/// The router over `db`.
pub fn router(db: Arc<Db>) -> Router {
    Router::new()
        .route("/demo/hello", get(hello))
        .route("/demo/person", get(get_people).put(put_person).post(post_person))
        .route("/demo/random-error", get(random_error))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(middleware::from_fn(log_requests))
        .with_state(db)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body.into()).into_response()
}

async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        %method,
        %uri,
        status = res.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1000.0,
        "{method} request to {uri}"
    );
    res
}

#[derive(Debug, Deserialize)]
struct HelloQuery {
    delay: Option<u64>,
}

async fn hello(Query(q): Query<HelloQuery>) -> Response {
    if let Some(ms) = q.delay {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    text(StatusCode::OK, "hello, world!")
}

#[derive(Debug, Deserialize)]
struct NameQuery {
    name: Option<String>,
}

fn db_error(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "database request failed");
    text(StatusCode::INTERNAL_SERVER_ERROR, format!("database error: {e:#}\n"))
}

fn wants_text(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json"))
}

async fn get_people(State(db): State<Arc<Db>>, Query(q): Query<NameQuery>, headers: HeaderMap) -> Response {
    let people = match db.people().await {
        Ok(p) => p,
        Err(e) => return db_error(e),
    };
    if let Some(name) = q.name {
        return match people.into_iter().find(|p| p.name == name) {
            Some(p) => Json(p).into_response(),
            None => text(StatusCode::NOT_FOUND, format!("no person named {name:?}\n")),
        };
    }
    if wants_text(&headers) {
        let names: Vec<&str> = people.iter().map(|p| p.name.as_str()).collect();
        return text(StatusCode::OK, names.join("\n"));
    }
    Json(people).into_response()
}

async fn store(db: &Db, name: String, created: StatusCode) -> Response {
    if name.trim().is_empty() {
        return text(StatusCode::BAD_REQUEST, "a person needs a name\n");
    }
    let person = Person { name };
    match db.save(&person).await {
        Ok(()) => (created, Json(person)).into_response(),
        Err(e) => db_error(e),
    }
}

async fn put_person(State(db): State<Arc<Db>>, Query(q): Query<NameQuery>) -> Response {
    match q.name {
        Some(name) => store(&db, name, StatusCode::OK).await,
        None => text(StatusCode::BAD_REQUEST, "PUT /demo/person?name=NAME\n"),
    }
}

async fn post_person(State(db): State<Arc<Db>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Person>(&body) {
        Ok(p) => store(&db, p.name, StatusCode::CREATED).await,
        Err(e) => text(StatusCode::BAD_REQUEST, format!("expected {{\"name\": ...}}: {e}\n")),
    }
}

async fn random_error() -> Response {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    if matches!(h.finish() % 10, 0) {
        text(StatusCode::INTERNAL_SERVER_ERROR, "ERROR: Something, somewhere, went wrong!\n")
    } else {
        text(StatusCode::OK, "Everything is still OK\n")
    }
}
