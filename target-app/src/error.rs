//! The one place where failures become HTTP responses. Every error the handlers return is an
//! [`AppError`]; its `IntoResponse` picks the status, adds `Retry-After` where a retry can help, and
//! for unexpected errors answers 500 with an error id only (the full error goes to the log).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Seconds clients are told to wait before retrying a 503 (set once at boot from the config).
pub static RETRY_AFTER_SECS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The `dependency-errors-500` bug (set once at boot): a failing database (unreachable, pool
/// exhausted, statement timed out) is an unhandled error instead of a 503 a client can retry.
pub static DEPENDENCY_ERRORS_500: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn dependency_errors_500() -> bool {
    DEPENDENCY_ERRORS_500.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether a database error means the database is unreachable or going away (refused connection,
/// closed socket, shutdown in progress, class 08 connection exceptions): the database is down,
/// which a retry after a while can get through, not a bug of this request.
pub fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request asks for more than the service will hold in memory for one answer.
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A dependency is saturated or refusing (pool exhausted, breaker open, statement timeout).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The payments upstream did not answer within this request's timeout.
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(String),
    /// The receipts volume is full (ENOSPC).
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// Anything else: answered as an opaque 500 with an error id.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Internal(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        let mapped = match &e {
            sqlx::Error::PoolTimedOut => {
                crate::state::note_acquire_timeout();
                AppError::Unavailable("database pool exhausted".into())
            }
            // 57014: query_canceled (statement_timeout); 55P03: lock_not_available.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("57014" | "55P03")) =>
            {
                AppError::Unavailable("database statement timed out".into())
            }
            _ if database_unreachable(&e) => AppError::Unavailable("database unreachable".into()),
            _ => return AppError::Internal(anyhow::Error::new(e).context("database error")),
        };
        if dependency_errors_500() {
            // The bug: every database error is an unhandled 500, whatever a retry could do.
            return AppError::Internal(anyhow::Error::new(e).context("database error"));
        }
        mapped
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let retry_after = RETRY_AFTER_SECS.load(std::sync::atomic::Ordering::Relaxed);
        let (status, body, retry) = match &self {
            AppError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "not found"}), false),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({"error": m}), false),
            AppError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": m}), false),
            AppError::Conflict(m) => (StatusCode::CONFLICT, json!({"error": m}), true),
            AppError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily unavailable", "reason": m}),
                true,
            ),
            AppError::UpstreamTimeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                json!({"error": "payments upstream timed out"}),
                true,
            ),
            AppError::InsufficientStorage(_) => (
                StatusCode::INSUFFICIENT_STORAGE,
                json!({"error": "receipts storage is full"}),
                true,
            ),
            AppError::Internal(err) => {
                let error_id = uuid::Uuid::new_v4().to_string();
                tracing::error!(error_id = %error_id, error = %format!("{err:#}"), "unexpected error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal error", "error_id": error_id}),
                    false,
                )
            }
        };
        if !matches!(self, AppError::Internal(_)) && status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut response = (status, Json(body)).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}
