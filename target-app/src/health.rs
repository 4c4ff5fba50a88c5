//! Health endpoints. Liveness says only whether the process can serve at all (it must not depend on
//! the database, or a slow DB makes a supervisor restart healthy processes: the
//! `liveness-checks-db` bug). Readiness checks what routing traffic here needs and names what fails.

use crate::config::Bug;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

/// How long readiness waits for a DB connection and `SELECT 1`: short, so a saturated pool shows.
const DB_CHECK_TIMEOUT: Duration = Duration::from_millis(300);
/// What the buggy liveness waits for the DB.
const BUGGY_LIVENESS_DB_TIMEOUT: Duration = Duration::from_millis(1000);

pub async fn live(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    if state.config.bugs.on(Bug::LivenessChecksDb) {
        // The bug: the readiness checks of the database copied into liveness, so a saturated pool
        // reads as a dead process. The headroom check makes it fail for as long as the pool is
        // saturated, not only when this probe happens to lose the race for a connection.
        let db = state.check_database(BUGGY_LIVENESS_DB_TIMEOUT).await;
        if let Err(e) = db.and_then(|()| crate::state::check_pool_headroom()) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "dead", "failing": ["database"], "database": e})),
            );
        }
    }
    (StatusCode::OK, Json(json!({"status": "alive"})))
}

pub async fn ready(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    let mut record = |name: &str, result: Result<(), String>| {
        match result {
            Ok(()) => checks.insert(name.into(), json!("ok")),
            Err(e) => {
                failing.push(name.to_string());
                checks.insert(name.into(), json!(e))
            }
        };
    };
    record(
        "shutdown",
        if state.is_shutting_down() {
            Err("shutting down".into())
        } else {
            Ok(())
        },
    );
    // Under skip-env-validation the service does not know it lacks config, so it checks only what it has.
    let lenient = state.config.bugs.on(Bug::SkipEnvValidation);
    if state.has_pool() || !lenient {
        record("database", state.check_database(DB_CHECK_TIMEOUT).await);
        record("pool", crate::state::check_pool_headroom());
    }
    match state.config.receipts_dir.as_deref() {
        Some(dir) => record("receipts", crate::receipts::probe_writable(dir).await),
        None if !lenient => record("receipts", Err("RECEIPTS_DIR is not configured".into())),
        None => {}
    }
    // The breaker is reported, not failed on: with it open, reads still work, so the replica
    // keeps taking traffic and checkouts answer a fast 503 with Retry-After.
    let breaker = state.payments.breaker_state().as_str();
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if failing.is_empty() { "ready" } else { "not ready" },
            "failing": failing,
            "checks": checks,
            "payments_breaker": breaker,
        })),
    )
}

pub async fn metrics(State(state): State<SharedState>) -> String {
    state.observe_pool();
    let m = &crate::metrics::METRICS;
    m.breaker_state.set(match state.payments.breaker_state() {
        crate::payments::BreakerState::Closed => 0,
        crate::payments::BreakerState::HalfOpen => 1,
        crate::payments::BreakerState::Open => 2,
    });
    if let Some((free, total)) = state
        .config
        .receipts_dir
        .as_deref()
        .and_then(crate::receipts::space)
    {
        m.receipts_free_bytes.set(free as i64);
        m.receipts_size_bytes.set(total as i64);
    }
    crate::metrics::render()
}
