//! The HTTP server of a replica: routes, the per-request middleware (request id, replica header,
//! JSON access log, metrics), and SIGTERM handling (readiness fails at once, drain delay, stop
//! accepting, finish in-flight requests, exit 0). The `ignore-sigterm` and `no-drain` bugs live here.

use crate::config::Bug;
use crate::metrics::METRICS;
use crate::state::SharedState;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Header naming the replica on every response the app itself produces.
pub const REPLICA_HEADER: &str = "x-brownout-replica";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn router(state: SharedState) -> Router {
    let routes = Router::new()
        .route("/api/catalog", get(crate::api::catalog))
        .route("/api/checkout", post(crate::api::checkout))
        .route("/api/orders/{id}", get(crate::api::get_order))
        .route("/api/export", get(crate::api::export))
        .route("/healthz/live", get(crate::health::live))
        .route("/healthz/ready", get(crate::health::ready))
        .route("/metrics", get(crate::health::metrics));
    // A panicking handler answers 500 with an error id (inside `observe`, so it is counted and
    // logged like any answer); without it (`panic-unhandled`) the panic drops the connection.
    let routes = if state.config.bugs.on(Bug::PanicUnhandled) {
        routes
    } else {
        routes.layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_answer,
        ))
    };
    routes
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The answer to a request whose handler panicked: 500 with an error id and nothing else (no
/// message, no backtrace); the panic's message is logged with the same id.
fn panic_answer(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    let error_id = uuid::Uuid::new_v4().to_string();
    tracing::error!(error_id = %error_id, panic = message, "handler panicked");
    let body = serde_json::json!({"error": "internal error", "error_id": error_id});
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(body),
    )
        .into_response()
}

/// The route label for metrics: the path with ids folded, so label cardinality stays bounded.
fn route_label(path: &str) -> &'static str {
    match path {
        "/api/catalog" => "/api/catalog",
        "/api/checkout" => "/api/checkout",
        "/api/export" => "/api/export",
        "/healthz/live" => "/healthz/live",
        "/healthz/ready" => "/healthz/ready",
        "/metrics" => "/metrics",
        p if p.starts_with("/api/orders/") => "/api/orders/{id}",
        _ => "other",
    }
}

async fn observe(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    // Every log line of the request carries its id (the JSON log's `span` field).
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = tracing::Instrument::instrument(next.run(req), span).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&state.config.replica_name) {
        headers.insert(REPLICA_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    METRICS
        .requests
        .with_label_values(&[route, &status.to_string()])
        .inc();
    METRICS
        .request_duration
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    if !route.starts_with("/healthz") && route != "/metrics" {
        tracing::info!(
            request_id = %request_id, method = %method, route, status,
            latency_ms = elapsed.as_secs_f64() * 1000.0, "request"
        );
    }
    response
}

/// Serves until SIGTERM/SIGINT has been handled per the configuration and bugs.
pub async fn serve(state: SharedState, listener: TcpListener) -> anyhow::Result<()> {
    let shutdown_state = state.clone();
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { wait_for_shutdown(shutdown_state).await })
        .await?;
    tracing::info!("in-flight requests finished; exiting");
    Ok(())
}

async fn wait_for_shutdown(state: SharedState) {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if state.config.bugs.on(Bug::IgnoreSigterm) {
            tracing::warn!(
                signal = name,
                "signal received and ignored (bug ignore-sigterm)"
            );
            continue;
        }
        if state.config.bugs.on(Bug::NoDrain) {
            tracing::warn!(
                signal = name,
                "exiting at once without draining (bug no-drain)"
            );
            std::process::exit(0);
        }
        tracing::info!(
            signal = name,
            drain_delay_ms = state.config.drain_delay.as_millis() as u64,
            "shutdown started: readiness now failing, still serving during the drain delay"
        );
        break;
    }
    state.begin_shutdown();
    tokio::time::sleep(state.config.drain_delay).await;
    tracing::info!("drain delay over: no longer accepting; finishing in-flight requests");
    // Bound the wait for in-flight requests, so the process always exits by itself.
    let limit = state.config.shutdown_timeout;
    tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        tracing::error!(
            timeout_ms = limit.as_millis() as u64,
            "in-flight requests did not finish in time; exiting"
        );
        std::process::exit(1);
    });
}
