//! The controller's health and metrics routes (`run --listen`): `/healthz`, `/livez`
//! and `/metrics`, read-only, GET and HEAD only (any other method is 405, any other path
//! 404). They only read [`Telemetry`]; they never touch the store, the repository or a
//! directory, and they do not authenticate: the listener is on loopback unless told
//! otherwise, and what they show (counts, schedule names, error messages without
//! passwords) is what `registrar status` shows.

use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::run::telemetry::Telemetry;

/// The three routes over `telemetry`.
pub fn health_routes(telemetry: Arc<Mutex<Telemetry>>) -> Router {
    let (health, metrics) = (telemetry.clone(), telemetry);
    Router::new()
        .route(
            "/healthz",
            get(move || async move {
                let (healthy, body) = lock(&health).health();
                let code = if healthy {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                text(code, body)
            }),
        )
        .route("/livez", get(alive))
        .route(
            "/metrics",
            get(move || async move {
                let body = lock(&metrics).prometheus(chrono::Utc::now());
                prometheus(body)
            }),
        )
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /livez or /metrics\n".to_string(),
            )
        })
}

fn lock(telemetry: &Mutex<Telemetry>) -> std::sync::MutexGuard<'_, Telemetry> {
    telemetry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `/livez`: the process answers.
pub async fn alive() -> Response {
    text(StatusCode::OK, "alive\n".to_string())
}

/// A plain-text response.
pub fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A Prometheus text exposition.
pub fn prometheus(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
