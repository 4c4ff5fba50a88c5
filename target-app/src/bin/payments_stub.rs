//! `payments-stub`: a stand-in payment gateway for the checkout service. It accepts charges keyed by
//! `Idempotency-Key` (a repeated key returns the first charge, never a second one) and records every
//! call, so a harness can count charges and spot double charges afterwards (`GET /charges`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Serialize)]
struct Charge {
    charge_id: String,
    idempotency_key: String,
    order_id: String,
    amount_cents: i64,
    /// How many calls carried this key (retries answered with the same charge).
    calls: u64,
}

#[derive(Deserialize)]
struct ChargeRequest {
    order_id: String,
    amount_cents: i64,
}

#[derive(Default)]
struct Ledger {
    charges: HashMap<String, Charge>,
    next_id: u64,
}

type Shared = Arc<Mutex<Ledger>>;

async fn charge(
    State(ledger): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<ChargeRequest>,
) -> Result<(StatusCode, Json<Charge>), (StatusCode, String)> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or((
            StatusCode::BAD_REQUEST,
            "Idempotency-Key header required".to_string(),
        ))?
        .to_string();
    if req.amount_cents <= 0 {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount must be positive".into(),
        ));
    }
    let mut ledger = ledger.lock().expect("ledger lock");
    if let Some(existing) = ledger.charges.get_mut(&key) {
        existing.calls += 1;
        return Ok((StatusCode::OK, Json(existing.clone())));
    }
    ledger.next_id += 1;
    let charge = Charge {
        charge_id: format!("ch_{}", ledger.next_id),
        idempotency_key: key.clone(),
        order_id: req.order_id,
        amount_cents: req.amount_cents,
        calls: 1,
    };
    ledger.charges.insert(key, charge.clone());
    Ok((StatusCode::CREATED, Json(charge)))
}

async fn list(State(ledger): State<Shared>) -> Json<serde_json::Value> {
    let ledger = ledger.lock().expect("ledger lock");
    let mut charges: Vec<_> = ledger.charges.values().cloned().collect();
    charges.sort_by(|a, b| a.charge_id.cmp(&b.charge_id));
    Json(serde_json::json!({ "count": charges.len(), "charges": charges }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:9090".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("startup failed: cannot listen on {addr}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    eprintln!("{{\"msg\":\"payments-stub listening\",\"addr\":\"{addr}\"}}");
    let app = Router::new()
        .route("/charges", post(charge).get(list))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Shared::default());
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("payments-stub failed: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
