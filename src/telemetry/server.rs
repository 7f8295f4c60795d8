//! The metrics server: a small axum app on its own address, apart from the
//! platform connection, with `/metrics` for Prometheus and `/healthz` for
//! load balancers and orchestrators, `/handled` (the last handled events
//! as JSON) for the sandbox console, and `/conversations` (the pending
//! conversations as JSON).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use super::Telemetry;

/// What the encoder writes: OpenMetrics text, which Prometheus scrapes natively.
pub(crate) const METRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`, `GET /healthz`, `GET /handled` and `GET /conversations` over `telemetry`.
pub fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/handled", get(handled))
        .route("/conversations", get(conversations))
        .with_state(telemetry)
}

/// Binds the metrics address; done before the agent connects, so a taken
/// port is a startup error rather than a silent absence of metrics.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves [`router`] on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>) -> std::io::Result<()> {
    axum::serve(listener, router(telemetry)).await
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        telemetry.encode(),
    )
        .into_response()
}

/// 200 while the socket is connected (ok or degraded), 503 when it is not.
async fn healthz(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let report = telemetry.health();
    let code = if report.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

/// The last handled events, oldest first. Any origin may read it: the sandbox
/// console, served from the sandbox's own port, fetches it across origins
/// (the metrics address is meant for loopback or a private network).
pub(crate) async fn handled(State(telemetry): State<Arc<Telemetry>>) -> Response {
    (
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Json(telemetry.handled_log()),
    )
        .into_response()
}

/// The pending conversations, oldest first: id, rule, room, kind, who may
/// answer, deadline. Any origin may read it, like `/handled`: the sandbox
/// console shows the open room's pending conversations from it.
pub(crate) async fn conversations(State(telemetry): State<Arc<Telemetry>>) -> Response {
    (
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Json(telemetry.conversations()),
    )
        .into_response()
}
