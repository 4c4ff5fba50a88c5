//! The data-integrity check of the sample checkout system, run after the load stops: no
//! acknowledged order is lost, every paid order has exactly one charge, and no charge was made
//! for an order twice (the payments stub's ledger against the `orders` table). Charges for orders
//! that are not paid (the fault struck between charge and commit) are counted and reported but do not
//! fail the check: the client got an error and a retry with its key reconciles them.

use crate::error::{BrownoutError, Result};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Row};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default, Serialize)]
pub struct Integrity {
    pub acknowledged: usize,
    pub acknowledged_missing: usize,
    pub paid_orders: usize,
    pub charges: usize,
    pub paid_without_charge: usize,
    pub charges_without_paid_order: usize,
    pub double_charges: usize,
}

impl Integrity {
    pub fn ok(&self) -> bool {
        self.acknowledged_missing == 0 && self.paid_without_charge == 0 && self.double_charges == 0
    }
    pub fn summary(&self) -> String {
        format!(
            "{} acknowledged checkouts, {} missing; {} paid orders, {} charges; paid without charge: {}; charges for unacknowledged orders (to reconcile, not failing): {}; double charges: {}",
            self.acknowledged, self.acknowledged_missing, self.paid_orders, self.charges,
            self.paid_without_charge, self.charges_without_paid_order, self.double_charges
        )
    }
}

#[derive(Deserialize)]
struct Ledger {
    charges: Vec<Charge>,
}

#[derive(Deserialize)]
struct Charge {
    order_id: String,
}

pub async fn check(
    database_url: &str,
    payments_url: &str,
    acknowledged_keys: &[String],
) -> Result<Integrity> {
    let env = |what: &str, e: &dyn std::fmt::Display| {
        BrownoutError::Environment(format!("integrity check: {what}: {e}"))
    };
    let mut conn = sqlx::PgConnection::connect(database_url)
        .await
        .map_err(|e| env("connect", &e))?;
    let mut paid_by_key = HashSet::new();
    let mut paid_ids = HashSet::new();
    {
        // Streamed: only the paid orders' keys and ids are kept, not every row.
        use futures_util::TryStreamExt;
        let mut rows =
            sqlx::query("SELECT id::text AS id, idempotency_key FROM orders WHERE status = 'paid'")
                .fetch(&mut conn);
        while let Some(r) = rows.try_next().await.map_err(|e| env("query orders", &e))? {
            paid_by_key.insert(r.get::<String, _>("idempotency_key"));
            paid_ids.insert(r.get::<String, _>("id"));
        }
    }
    let _ = conn.close().await;
    let ledger: Ledger = reqwest::get(format!("{payments_url}/charges"))
        .await
        .map_err(|e| env("payments ledger", &e))?
        .json()
        .await
        .map_err(|e| env("payments ledger", &e))?;
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    for c in &ledger.charges {
        *per_order.entry(c.order_id.as_str()).or_insert(0) += 1;
    }
    Ok(Integrity {
        acknowledged: acknowledged_keys.len(),
        acknowledged_missing: acknowledged_keys
            .iter()
            .filter(|k| !paid_by_key.contains(*k))
            .count(),
        paid_orders: paid_ids.len(),
        charges: ledger.charges.len(),
        paid_without_charge: paid_ids
            .iter()
            .filter(|id| !per_order.contains_key(id.as_str()))
            .count(),
        charges_without_paid_order: per_order
            .keys()
            .filter(|id| !paid_ids.contains(**id))
            .count(),
        double_charges: per_order.values().filter(|n| **n > 1).count(),
    })
}
