//! The HTTP layer: TLS ([`tls`]), bearer tokens ([`auth`]), routing ([`router`]),
//! content negotiation ([`negotiate`]) and watch streaming ([`watch`]).
//!
//! Requests are parsed into [`ApiRequest`]s and handed to the registry on tokio's
//! blocking pool; this layer never touches storage.

pub mod auth;
pub mod negotiate;
pub mod router;
pub mod tls;
pub mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use self::auth::TokenAuth;
use self::negotiate::Output;
use self::router::{ResourcePath, Route};
use crate::patch::PatchType;
use crate::registry::{ApiRequest, FieldValidation, Outcome, Registry, RequestOptions, Verb};
use crate::status::ApiError;
use crate::{discovery, openapi, table};

/// Largest accepted request body (as kube-apiserver: 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The registry.
    pub registry: Arc<Registry>,
    /// Token authentication.
    pub auth: TokenAuth,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    /// Set once bootstrap is done (`/readyz`).
    pub ready: AtomicBool,
    /// The client for kubelets (pods/log, exec, attach, portforward).
    pub kubelet: crate::proxy::KubeletClient,
}

/// The axum router: everything goes through one handler that parses the path.
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn respond(
    code: u16,
    body: &Value,
    output: Output,
    warnings: &[String],
    content_type: Option<&str>,
) -> Response {
    let (bytes, ct) = match output {
        Output::Yaml => (
            serde_yaml::to_string(body).unwrap_or_default().into_bytes(),
            "application/yaml",
        ),
        _ => (json_bytes(body), content_type.unwrap_or("application/json")),
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/json")),
    );
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

fn error(e: &ApiError) -> Response {
    respond(e.code, &e.to_status(), Output::Json, &[], None)
}

fn text(code: StatusCode, s: &str) -> Response {
    let mut r = Response::new(Body::from(s.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1" | "True"))
}

fn parse_options(q: &HashMap<String, String>) -> Result<RequestOptions, ApiError> {
    let num = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    };
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}, valid values are: Ignore, Warn, Strict"
            )))
        }
    };
    Ok(RequestOptions {
        label_selector: q.get("labelSelector").cloned(),
        field_selector: q.get("fieldSelector").cloned(),
        limit: num("limit")?.map(|l| l.max(0) as usize),
        continue_token: q.get("continue").cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        timeout_seconds: num("timeoutSeconds")?.map(|t| t.max(0) as u64),
        allow_watch_bookmarks: truthy(q.get("allowWatchBookmarks")),
        send_initial_events: q.get("sendInitialEvents").map(|v| v == "true" || v == "1"),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: q.get("fieldManager").cloned(),
        field_validation,
        force: truthy(q.get("force")),
        grace_period_seconds: num("gracePeriodSeconds")?,
        propagation_policy: q.get("propagationPolicy").cloned(),
    })
}

fn merge_delete_options(opts: &mut RequestOptions, body: Option<&Value>) {
    let Some(b) = body else { return };
    if opts.grace_period_seconds.is_none() {
        opts.grace_period_seconds = b.get("gracePeriodSeconds").and_then(Value::as_i64);
    }
    if opts.propagation_policy.is_none() {
        opts.propagation_policy = b
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from);
    }
    if b.get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"))
    {
        opts.dry_run = true;
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let route = router::parse(&path);
    let q: HashMap<String, String> = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let output = negotiate::output(
        header_str(&parts.headers, header::ACCEPT),
        q.get("includeObject").map(String::as_str),
    );
    match &route {
        Route::Health(which) => {
            return if which == "readyz" && !st.ready.load(Ordering::SeqCst) {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "[-]bootstrap not finished\nreadyz check failed",
                )
            } else {
                text(StatusCode::OK, "ok")
            };
        }
        Route::Version => return respond(200, &discovery::version(), Output::Json, &[], None),
        _ => {}
    }
    let Some(user) = st
        .auth
        .authenticate(header_str(&parts.headers, header::AUTHORIZATION))
    else {
        return error(&ApiError::unauthorized());
    };
    let aggregated = output == Output::AggregatedDiscovery;
    let agg_ct = Some(discovery::AGGREGATED_CONTENT_TYPE);
    let rp = match route {
        Route::ApiVersions if aggregated => {
            return respond(200, &discovery::aggregated(true), output, &[], agg_ct)
        }
        Route::Groups if aggregated => {
            return respond(200, &discovery::aggregated(false), output, &[], agg_ct)
        }
        Route::ApiVersions => {
            return respond(
                200,
                &discovery::api_versions(&st.server_address),
                Output::Json,
                &[],
                None,
            )
        }
        Route::Groups => {
            return respond(200, &discovery::api_group_list(), Output::Json, &[], None)
        }
        Route::Group(g) => return found(discovery::api_group(&g)),
        Route::Resources(g, v) => return found(discovery::resource_list(&g, &v)),
        Route::OpenApiV3Root => return respond(200, &openapi::root(), Output::Json, &[], None),
        Route::OpenApiV3(p) => return found(openapi::group_version(&p)),
        Route::OpenApiV2 => {
            let mut r = Response::new(Body::from(openapi::v2_document()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(openapi::V2_PROTOBUF),
            );
            return r;
        }
        Route::NotFound => return error(&ApiError::path_not_found()),
        Route::Health(_) | Route::Version => return error(&ApiError::path_not_found()),
        Route::Resource(rp) => rp,
    };
    if crate::proxy::is_streaming(&rp) {
        return crate::proxy::handle(&st, parts, rp).await;
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error(&ApiError::new_too_large()),
    };
    let api_req = match build_request(&parts.method, &parts.headers, &q, rp, &bytes, user.name) {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    let resource = api_req.resource;
    let registry = st.registry.clone();
    let outcome = match tokio::task::spawn_blocking(move || registry.handle(api_req)).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(e.to_string())),
    };
    match outcome {
        Err(e) => error(&e),
        Ok(Outcome::Watch(ws)) => {
            let mut r = Response::new(watch::body(*ws, output));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            r
        }
        Ok(Outcome::Response(resp)) => {
            let is_status = resp.body.get("kind").and_then(Value::as_str) == Some("Status");
            let body = match output {
                Output::Table(include) if !is_status => {
                    table::to_table(resource, &resp.body, include, true)
                }
                Output::PartialMetadata if !is_status => partial(&resp.body),
                _ => resp.body,
            };
            let out = if output == Output::Yaml {
                Output::Yaml
            } else {
                Output::Json
            };
            respond(resp.code, &body, out, &resp.warnings, None)
        }
    }
}

fn partial(body: &Value) -> Value {
    match body.get("items").and_then(Value::as_array) {
        Some(items) => serde_json::json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": body.get("metadata").cloned().unwrap_or_default(),
            "items": items.iter().map(table::partial_metadata).collect::<Vec<_>>(),
        }),
        None => table::partial_metadata(body),
    }
}

fn found(v: Option<Value>) -> Response {
    match v {
        Some(v) => respond(200, &v, Output::Json, &[], None),
        None => error(&ApiError::path_not_found()),
    }
}

fn build_request(
    method: &Method,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    rp: ResourcePath,
    bytes: &[u8],
    user: String,
) -> Result<ApiRequest, ApiError> {
    let mut options = parse_options(q)?;
    if options.field_manager.is_none() {
        // As the real server: default the manager to the User-Agent's product name.
        let ua = header_str(headers, header::USER_AGENT).unwrap_or("unknown");
        options.field_manager = Some(ua.split('/').next().unwrap_or("unknown").to_string());
    }
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let watch = rp.watch_prefix || truthy(q.get("watch"));
    let has_name = rp.name.is_some();
    let verb = match *method {
        Method::GET if watch => Verb::Watch,
        Method::GET if has_name => Verb::Get,
        Method::GET => Verb::List,
        Method::POST if !has_name || rp.subresource.is_some() => Verb::Create,
        Method::PUT if has_name => Verb::Update,
        Method::PATCH if has_name => {
            let ty = content_type.and_then(PatchType::from_content_type).ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {})",
                    content_type.unwrap_or("")
                ))
            })?;
            Verb::Patch(ty)
        }
        Method::DELETE if has_name => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed()),
    };
    let body_ct = match verb {
        Verb::Patch(PatchType::Apply) => Some("application/yaml"),
        Verb::Patch(_) => Some("application/json"),
        _ => content_type,
    };
    let body = negotiate::decode_body(body_ct, bytes)?;
    if matches!(verb, Verb::Delete | Verb::DeleteCollection) {
        merge_delete_options(&mut options, body.as_ref());
    }
    if rp.watch_prefix && has_name {
        options.field_selector = Some(format!(
            "metadata.name={}",
            rp.name.clone().unwrap_or_default()
        ));
    }
    Ok(ApiRequest {
        verb,
        resource: rp.resource,
        namespace: rp.namespace,
        name: if verb == Verb::Watch { None } else { rp.name },
        subresource: rp.subresource,
        options,
        body,
        user,
    })
}
