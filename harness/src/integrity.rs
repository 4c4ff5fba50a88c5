//! The data-integrity check a system file declares (`[integrity]`), run after the load stops: no
//! acknowledged request is lost (its idempotency key is among the committed ones), every committed
//! record has exactly one entry in the downstream ledger, and no record has two (e.g. the sample
//! app's paid orders against the payments stub's charges). Ledger entries without a committed
//! record (the fault struck between the effect and the commit) are counted and reported but do not
//! fail the check: the client got an error and a retry with its key reconciles them.

use crate::error::{BrownoutError, Result};
use crate::spec::{IntegritySpec, LedgerSpec};
use serde::Serialize;
use sqlx::Row;
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
            "{} acknowledged requests, {} missing; {} committed records, {} ledger entries; committed without an entry: {}; entries without a committed record (to reconcile, not failing): {}; double entries: {}",
            self.acknowledged, self.acknowledged_missing, self.paid_orders, self.charges,
            self.paid_without_charge, self.charges_without_paid_order, self.double_charges
        )
    }
}

/// Text values of a query's first column, streamed (only the values are kept).
async fn column(conn: &mut sqlx::PgConnection, query: &str) -> Result<HashSet<String>> {
    use futures_util::TryStreamExt;
    let mut out = HashSet::new();
    let mut rows = sqlx::query(query).fetch(conn);
    while let Some(r) = rows
        .try_next()
        .await
        .map_err(|e| env(&format!("query `{query}`"), &e))?
    {
        out.insert(r.try_get::<String, _>(0).map_err(|e| {
            env(
                &format!("query `{query}` (its first column must be text)"),
                &e,
            )
        })?);
    }
    Ok(out)
}

fn env(what: &str, e: &dyn std::fmt::Display) -> BrownoutError {
    BrownoutError::Environment(format!("integrity check: {what}: {e}"))
}

/// The ledger's entries, as the id each belongs to.
async fn ledger_ids(base_url: &str, ledger: &LedgerSpec) -> Result<Vec<String>> {
    let what = format!("ledger {}{}", ledger.service, ledger.path);
    let body: serde_json::Value = reqwest::get(format!("{base_url}{}", ledger.path))
        .await
        .map_err(|e| env(&what, &e))?
        .json()
        .await
        .map_err(|e| env(&what, &e))?;
    let list = match &ledger.list {
        Some(field) => &body[field.as_str()],
        None => &body,
    };
    let entries = list
        .as_array()
        .ok_or_else(|| env(&what, &"the answer holds no JSON list there"))?;
    entries
        .iter()
        .map(|e| match &e[ledger.id_field.as_str()] {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            other => Err(env(
                &what,
                &format!("entry field '{}' is {other}, not an id", ledger.id_field),
            )),
        })
        .collect()
}

/// Runs the system's declared check. `ledger_url` is the base URL of the ledger's service.
pub async fn check(
    spec: &IntegritySpec,
    conn: &mut sqlx::PgConnection,
    ledger_url: Option<&str>,
    acknowledged_keys: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<Integrity> {
    let committed_keys = column(conn, &spec.committed_keys_query).await?;
    let committed_ids = match &spec.committed_ids_query {
        Some(q) => column(conn, q).await?,
        None => HashSet::new(),
    };
    let ledger = match (&spec.ledger, ledger_url) {
        (Some(l), Some(url)) => ledger_ids(url, l).await?,
        (Some(l), None) => {
            return Err(env(
                "ledger",
                &format!("service '{}' has no address", l.service),
            ))
        }
        (None, _) => Vec::new(),
    };
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for id in &ledger {
        *per_id.entry(id.as_str()).or_insert(0) += 1;
    }
    let with_ledger = spec.ledger.is_some();
    // The keys stream from the run's file (one a line), counted in one pass.
    let (mut acknowledged, mut acknowledged_missing) = (0, 0);
    for k in acknowledged_keys {
        acknowledged += 1;
        if !committed_keys.contains(k.as_ref()) {
            acknowledged_missing += 1;
        }
    }
    Ok(Integrity {
        acknowledged,
        acknowledged_missing,
        paid_orders: committed_ids.len(),
        charges: ledger.len(),
        paid_without_charge: if with_ledger {
            committed_ids
                .iter()
                .filter(|id| !per_id.contains_key(id.as_str()))
                .count()
        } else {
            0
        },
        charges_without_paid_order: per_id
            .keys()
            .filter(|id| !committed_ids.contains(**id))
            .count(),
        double_charges: per_id.values().filter(|n| **n > 1).count(),
    })
}
