//! The HTTP server of `cxpulse run` (axum): `/metrics`, `/healthz`,
//! `/readyz` and `/api/kpis`, all read from the shared [`Metrics`].
//!
//! - `/metrics`: Prometheus text format (docs/metrics.md);
//! - `/healthz`: liveness, `200 ok` while the process serves;
//! - `/readyz`: `200 ready` once input partitions are assigned and the first
//!   catch-up is done, else `503` with the reason;
//! - `/api/kpis`: the latest record of every KPI row held, filtered by the
//!   query parameters `kpi`, `window`, `grouping`, `channel`, `region`,
//!   `agent_id` (like Kafka Streams' interactive queries).
//!
//! [`router`] is the whole service without a socket (tests call it
//! directly); [`serve`] binds it.

use crate::engine::kpi::{Dim, Kpi};
use crate::metrics::kpi_store::KpiQuery;
use crate::metrics::Metrics;
use crate::time::wall_clock_now;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The routes, on shared metrics.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/kpis", get(api_kpis))
        .with_state(metrics)
}

/// Binds `addr` and serves [`router`] until `shutdown` completes.
/// Binding errors are returned at once (a port in use fails start-up).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP server: /metrics /healthz /readyz /api/kpis");
    Ok(tokio::spawn(async move {
        axum::serve(listener, router(metrics))
            .with_graceful_shutdown(shutdown)
            .await
    }))
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> Response {
    let body = m.encode(wall_clock_now());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn readyz(State(m): State<Arc<Metrics>>) -> Response {
    match m.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Parses `/api/kpis` parameters; unknown ones are an error, not ignored.
pub fn parse_query(params: &[(String, String)]) -> Result<KpiQuery, String> {
    let mut q = KpiQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "kpi" => {
                if Kpi::from_name(v).is_none() {
                    return Err(format!("unknown kpi `{v}`"));
                }
                q.kpi = Some(v.clone());
            }
            "window" => q.window = Some(v.clone()),
            "grouping" => q.grouping = Some(v.clone()),
            other => match Dim::parse(other) {
                Some(d) => q.dims.push((d, v.clone())),
                None => {
                    return Err(format!(
                        "unknown parameter `{other}` (expected kpi, window, grouping, channel, region, agent_id)"
                    ))
                }
            },
        }
    }
    Ok(q)
}

async fn api_kpis(
    State(m): State<Arc<Metrics>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let q = match parse_query(&params) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let rows = m.query_kpis(&q, wall_clock_now());
    Json(serde_json::json!({ "count": rows.len(), "rows": rows })).into_response()
}
