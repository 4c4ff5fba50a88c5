//! Real faults, injected at the start of a phase and healed at its end. Each fault is an
//! [`ActiveFault`] whose `heal` undoes exactly what `inject` did; dropping one heals it too, so a
//! failed or interrupted run never leaves a fault behind.

use crate::error::{BrownoutError, Result};
use crate::platform::Endpoints;
use crate::spec::FaultSpec;
use sqlx::Connection;

pub enum ActiveFault {
    /// An open transaction holding EXCLUSIVE locks: checkout's INSERTs block on them, so every
    /// pooled connection of the app is held until its statement timeout. Reads still work.
    PoolExhaustion { conn: Option<sqlx::PgConnection> },
}

pub async fn inject(spec: &FaultSpec, endpoints: &Endpoints) -> Result<ActiveFault> {
    match spec {
        FaultSpec::PoolExhaustion { tables } => {
            let url = endpoints.database_url.as_deref().ok_or_else(|| {
                BrownoutError::BadInput(
                    "fault pool-exhaustion needs a [database] in the system file".into(),
                )
            })?;
            let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| {
                BrownoutError::Environment(format!(
                    "pool-exhaustion: cannot connect to the database: {e}"
                ))
            })?;
            sqlx::query("SET application_name = 'brownout-fault'")
                .execute(&mut conn)
                .await
                .ok();
            sqlx::query("BEGIN").execute(&mut conn).await.map_err(env)?;
            for t in tables {
                // Table names come from the scenario file; quote them as identifiers.
                let quoted = format!("\"{}\"", t.replace('"', "\"\""));
                sqlx::query(&format!("LOCK TABLE {quoted} IN EXCLUSIVE MODE"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| {
                        BrownoutError::BadInput(format!(
                            "pool-exhaustion: cannot lock table {t}: {e}"
                        ))
                    })?;
            }
            Ok(ActiveFault::PoolExhaustion { conn: Some(conn) })
        }
    }
}

fn env(e: sqlx::Error) -> BrownoutError {
    BrownoutError::Environment(format!("fault: database error: {e}"))
}

impl ActiveFault {
    pub fn describe(&self) -> String {
        match self {
            ActiveFault::PoolExhaustion { .. } => {
                "pool-exhaustion: EXCLUSIVE locks held on the app's tables".into()
            }
        }
    }

    pub async fn heal(mut self) -> Result<()> {
        match &mut self {
            ActiveFault::PoolExhaustion { conn } => {
                if let Some(mut c) = conn.take() {
                    sqlx::query("ROLLBACK").execute(&mut c).await.map_err(env)?;
                    c.close().await.map_err(env)?;
                }
            }
        }
        Ok(())
    }
}
// Dropping an un-healed PoolExhaustion closes its connection, and PostgreSQL rolls the transaction
// back, releasing the locks.
