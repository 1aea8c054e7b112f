//! The HTTP endpoints, as kube-proxy's: `/healthz` on the healthz address (200 with
//! `{"lastUpdated": …, "currentTime": …}` once the first full sync is done, 503 before)
//! and `/metrics` (Prometheus text) on the metrics address. Both only read
//! [`Metrics`]; nothing here touches the rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let h = m.health();
    let body = serde_json::json!({
        "lastUpdated": h.last_updated.map(rfc3339).unwrap_or_default(),
        "currentTime": rfc3339(SystemTime::now()),
        "nodeEligible": true,
    });
    let code = if h.synced { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render())
}

/// Binds both servers (the same address serves both when they are equal) and returns
/// the tasks that serve them; binding errors come back at once.
pub async fn serve(
    healthz_addr: SocketAddr,
    metrics_addr: SocketAddr,
    m: Arc<Metrics>,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut routers = vec![(healthz_addr, Router::new().route("/healthz", get(healthz)).route("/livez", get(healthz)))];
    if metrics_addr == healthz_addr {
        routers[0].1 = routers[0].1.clone().route("/metrics", get(metrics));
    } else {
        routers.push((metrics_addr, Router::new().route("/metrics", get(metrics))));
    }
    let mut tasks = Vec::new();
    for (addr, router) in routers {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let app = router.with_state(m.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%addr, error = %e, "HTTP server stopped");
            }
        }));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }
}
