//! The business routes: the catalogue, idempotent checkout, and reading an order back.
//!
//! Checkout never holds a DB connection while it waits on payments: it records the order as
//! `pending`, writes the receipt, charges (the order id is the payment idempotency key), then marks
//! the order `paid`. Any failure after the insert marks it `failed`, so a retry with the same
//! `Idempotency-Key` can take it over without creating a second order or charge.

use crate::config::Bug;
use crate::error::AppError;
use crate::receipts;
use crate::state::SharedState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

#[derive(Serialize)]
pub struct Item {
    id: i64,
    name: String,
    price_cents: i64,
}

pub async fn catalog(State(state): State<SharedState>) -> Result<Json<Vec<Item>>, AppError> {
    // The table name is validated at boot (an identifier).
    let table = &state.config.catalog_table;
    let rows = sqlx::query(&format!(
        "SELECT id, name, price_cents FROM {table} ORDER BY id"
    ))
    .fetch_all(state.pool()?)
    .await?;
    Ok(Json(
        rows.iter()
            .map(|r| Item {
                id: r.get("id"),
                name: r.get("name"),
                price_cents: r.get("price_cents"),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct CheckoutRequest {
    item_id: i64,
    #[serde(default = "one")]
    quantity: i32,
    /// A coupon `NAME-PERCENT`, e.g. `SAVE-10`.
    coupon: Option<String>,
}

/// The discount of a coupon `NAME-PERCENT`. It trusts the shape it was written for: a coupon
/// without `-` or a percentage panics here, in every build (the `panic-path` scenario's unhandled
/// error path). The hardened service turns the panic into a 500 with an error id; under
/// `panic-unhandled` it takes the connection down.
fn coupon_percent(coupon: &str) -> i64 {
    let (_, percent) = coupon.split_once('-').unwrap();
    percent.parse::<i64>().unwrap().clamp(0, 100)
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default = "one_hundred")]
    items: u64,
}

fn one_hundred() -> u64 {
    100
}

/// Bytes of one export line (padded), so an export's memory grows with `items`.
pub const EXPORT_LINE_BYTES: usize = 1024;

/// `GET /api/export?items=N`: the catalogue repeated as N CSV lines of about 1 KiB each, built in
/// memory. N is bounded by `MAX_EXPORT_ITEMS` (413 above it, before anything is allocated); under
/// `unbounded-export` any N is built, so a large one outgrows the replica's memory limit.
pub async fn export(
    State(state): State<SharedState>,
    axum::extract::Query(q): axum::extract::Query<ExportQuery>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), AppError> {
    let max = state.config.max_export_items;
    if q.items > max && !state.config.bugs.on(Bug::UnboundedExport) {
        return Err(AppError::TooLarge(format!(
            "an export holds at most {max} items (asked for {}); ask for fewer",
            q.items
        )));
    }
    let rows = sqlx::query("SELECT id, name, price_cents FROM items ORDER BY id")
        .fetch_all(state.pool()?)
        .await?;
    if rows.is_empty() {
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv")],
            String::new(),
        ));
    }
    let mut out = String::new();
    for i in 0..q.items as usize {
        let r = &rows[i % rows.len()];
        let line = format!(
            "{i},{},{},{}",
            r.get::<i64, _>("id"),
            r.get::<String, _>("name"),
            r.get::<i64, _>("price_cents")
        );
        out.push_str(&line);
        // Pad to a fixed size: a real export's description column.
        for _ in line.len()..EXPORT_LINE_BYTES - 1 {
            out.push(' ');
        }
        out.push('\n');
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/csv")], out))
}

fn one() -> i32 {
    1
}

#[derive(Serialize)]
pub struct Order {
    id: Uuid,
    item_id: i64,
    quantity: i32,
    amount_cents: i64,
    status: String,
    charge_id: Option<String>,
}

const ORDER_COLUMNS: &str = "id, item_id, quantity, amount_cents, status, charge_id";

fn order_from(row: &sqlx::postgres::PgRow) -> Order {
    Order {
        id: row.get("id"),
        item_id: row.get("item_id"),
        quantity: row.get("quantity"),
        amount_cents: row.get("amount_cents"),
        status: row.get("status"),
        charge_id: row.get("charge_id"),
    }
}

pub async fn checkout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Json(req): Json<CheckoutRequest>,
) -> Result<(StatusCode, Json<Order>), AppError> {
    if !(1..=100).contains(&req.quantity) {
        return Err(AppError::BadRequest(
            "quantity must be between 1 and 100".into(),
        ));
    }
    let discount = req.coupon.as_deref().map_or(0, coupon_percent);
    let key = match headers.get("idempotency-key") {
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .ok_or_else(|| {
                AppError::BadRequest("Idempotency-Key must be 1-200 visible characters".into())
            })?
            .to_string(),
        None => Uuid::new_v4().to_string(),
    };
    let pool = state.pool()?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO orders (id, idempotency_key, item_id, quantity, amount_cents, status, replica)
         SELECT $1, $2, i.id, $4, i.price_cents * $4 * (100 - $6) / 100, 'pending', $5
         FROM items i WHERE i.id = $3
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(&key)
    .bind(req.item_id)
    .bind(req.quantity)
    .bind(&state.config.replica_name)
    .bind(discount)
    .fetch_optional(pool)
    .await?;
    let order = match inserted {
        Some(row) => order_from(&row),
        None => match take_over_existing(&state, &key).await? {
            Existing::Done(order) => return Ok((StatusCode::OK, Json(order))),
            Existing::Retake(order) => order,
        },
    };

    let receipt_body = serde_json::to_vec_pretty(&serde_json::json!({
        "order_id": order.id, "item_id": order.item_id, "quantity": order.quantity,
        "amount_cents": order.amount_cents, "replica": state.config.replica_name,
    }))
    .map_err(anyhow::Error::from)?;
    let receipt = match receipts::write(
        state.config.receipts_dir.as_deref(),
        &order.id.to_string(),
        receipt_body,
        state.config.bugs.on(Bug::Enospc500),
    )
    .await
    {
        Ok(path) => path,
        Err(e) => {
            mark_failed(&state, order.id).await;
            return Err(e);
        }
    };
    let charge_id = match state
        .payments
        .charge(&order.id.to_string(), order.amount_cents)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            receipts::remove(&receipt);
            mark_failed(&state, order.id).await;
            return Err(e);
        }
    };
    let row = sqlx::query(&format!(
        "UPDATE orders SET status = 'paid', charge_id = $2, updated_at = now() WHERE id = $1
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(order.id)
    .bind(&charge_id)
    .fetch_one(pool)
    .await?;
    Ok((StatusCode::CREATED, Json(order_from(&row))))
}

enum Existing {
    /// Already paid: answer it again.
    Done(Order),
    /// A failed (or abandoned pending) attempt, now pending again under this request.
    Retake(Order),
}

async fn take_over_existing(state: &SharedState, key: &str) -> Result<Existing, AppError> {
    let pool = state.pool()?;
    let retaken = sqlx::query(&format!(
        "UPDATE orders SET status = 'pending', updated_at = now()
         WHERE idempotency_key = $1
           AND (status = 'failed' OR (status = 'pending' AND updated_at < now() - interval '30 seconds'))
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(key)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = retaken {
        return Ok(Existing::Retake(order_from(&row)));
    }
    let existing = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(pool)
    .await?;
    match existing.map(|r| order_from(&r)) {
        Some(order) if order.status == "paid" => Ok(Existing::Done(order)),
        Some(_) => Err(AppError::Conflict(
            "a checkout with this Idempotency-Key is in progress".into(),
        )),
        None => Err(AppError::BadRequest("unknown item_id".into())),
    }
}

async fn mark_failed(state: &SharedState, id: Uuid) {
    let Ok(pool) = state.pool() else { return };
    let result =
        sqlx::query("UPDATE orders SET status = 'failed', updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await;
    if let Err(e) = result {
        tracing::error!(order_id = %id, error = %e, "could not mark order failed; it stays pending");
    }
}

pub async fn get_order(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| AppError::BadRequest("order id must be a UUID".into()))?;
    let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(state.pool()?)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(order_from(&row)))
}
