//! `pool-exhaustion`: an open transaction holds EXCLUSIVE locks on the app's tables, so every
//! write blocks and each pooled connection of the app is held until its statement timeout (reads
//! still work). Healed by ROLLBACK; dropped un-healed, the connection closes and PostgreSQL rolls
//! the locks back. Covered end to end by the `pool-exhaustion` scenario (it needs a real database).

use super::kind::{self, Entry, Fault, Kind, Prediction, Preset, Problem, SystemFacts};
use crate::control::DatabaseHandle;
use crate::error::{BrownoutError, Result};
use serde::Deserialize;
use sqlx::Connection;

/// `{ kind = "pool-exhaustion", tables = [...] }`: the harness holds DB-side what the app needs:
/// an EXCLUSIVE lock on `tables` (blocks writes, not reads), so every checkout holds its pooled
/// connection until the statement timeout.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default = "orders")]
    pub tables: Vec<String>,
}

fn orders() -> Vec<String> {
    vec!["orders".into()]
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, system: &SystemFacts) -> std::result::Result<(), Problem> {
        if !system.has_database {
            return Err(Problem::at(
                "kind",
                format!("the system '{}' has no [database] to exhaust", system.name),
            ));
        }
        if self.tables.is_empty() {
            return Err(Problem::at("tables", "tables lists no table to lock"));
        }
        for t in &self.tables {
            kind::at("tables", crate::checks::name("table", t))?;
        }
        Ok(())
    }
    fn predicts(&self) -> Prediction {
        Prediction::dependency_down(true)
    }
}

pub const KIND: Kind = Kind {
    name: "pool-exhaustion",
    catalogue: |system| {
        system.has_database.then(|| Entry {
            parameters: "tables (default [\"orders\"]): tables to hold an EXCLUSIVE lock on".into(),
            presets: vec![Preset {
                name: "db-lock".into(),
                fault: serde_json::json!({"kind": "pool-exhaustion"}),
            }],
        })
    },
    example: |system| {
        system
            .has_database
            .then(|| "kind = \"pool-exhaustion\"".into())
    },
};

/// The connection holding the locks.
pub struct Held(Option<sqlx::PgConnection>);

fn db(e: sqlx::Error) -> BrownoutError {
    BrownoutError::Environment(format!("fault: database error: {e}"))
}

pub async fn inject(handle: &impl DatabaseHandle, tables: &[String]) -> Result<Held> {
    let mut conn = handle
        .connect_database()
        .await
        .map_err(|e| BrownoutError::Environment(format!("pool-exhaustion: {e}")))?
        .ok_or_else(|| {
            BrownoutError::BadInput(
                "fault pool-exhaustion needs a [database] in the system file".into(),
            )
        })?;
    sqlx::query("SET application_name = 'brownout-fault'")
        .execute(&mut conn)
        .await
        .ok();
    sqlx::query("BEGIN").execute(&mut conn).await.map_err(db)?;
    for t in tables {
        // Table names come from the scenario file; quote them as identifiers.
        let quoted = format!("\"{}\"", t.replace('"', "\"\""));
        sqlx::query(&format!("LOCK TABLE {quoted} IN EXCLUSIVE MODE"))
            .execute(&mut conn)
            .await
            .map_err(|e| {
                BrownoutError::BadInput(format!("pool-exhaustion: cannot lock table {t}: {e}"))
            })?;
    }
    Ok(Held(Some(conn)))
}

pub async fn heal(mut held: Held) -> Result<()> {
    if let Some(mut c) = held.0.take() {
        sqlx::query("ROLLBACK").execute(&mut c).await.map_err(db)?;
        c.close().await.map_err(db)?;
    }
    Ok(())
}

pub fn describe() -> String {
    "pool-exhaustion: EXCLUSIVE locks held on the app's tables".into()
}
