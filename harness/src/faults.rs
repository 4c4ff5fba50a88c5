//! Real faults, injected at the start of a phase and healed at its end. Each fault is an
//! [`ActiveFault`] whose `heal` undoes what `inject` did; dropping one un-healed releases what it
//! holds too, so a failed or interrupted run never leaves a fault behind.

use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::platform::{Endpoints, Platform, RevisionChange};
use crate::rollout::RolloutOutcome;
use crate::spec::{parse_duration, FaultSpec};
use sqlx::Connection;
use std::time::Duration;
use tokio::task::JoinHandle;

pub enum ActiveFault {
    /// An open transaction holding EXCLUSIVE locks: checkout's INSERTs block on them, so every
    /// pooled connection of the app is held until its statement timeout. Reads still work.
    /// Dropped un-healed, the connection closes and PostgreSQL rolls the locks back.
    PoolExhaustion { conn: Option<sqlx::PgConnection> },
    /// A rolling update in progress (a changed revision, or a restart with the same spec).
    Rollout {
        service: String,
        task: JoinHandle<RolloutOutcome>,
        /// Roll back at heal if it has not completed (a bad rollout); a restart is waited for.
        undo_unless_complete: bool,
        progress_deadline: Duration,
    },
    /// A toxic on a fault proxy (or the proxy's listener taken down).
    Proxy {
        proxy: std::sync::Arc<crate::proxy::FaultProxy>,
        down: bool,
        what: String,
    },
    /// Every replica's volume filled to ENOSPC.
    DiskFull { service: String, volume: String },
}

pub async fn inject<P: Platform>(
    spec: &FaultSpec,
    endpoints: &Endpoints,
    platform: &mut P,
    evidence: &Evidence,
) -> Result<ActiveFault> {
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
            sqlx::query("BEGIN").execute(&mut conn).await.map_err(db)?;
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
        FaultSpec::Rollout {
            service,
            remove_env,
            set_env,
            progress_deadline,
        } => {
            let change = RevisionChange {
                remove_env: remove_env.clone(),
                set_env: set_env.clone(),
            };
            let deadline = parse_duration(progress_deadline).map_err(BrownoutError::BadInput)?;
            let task = platform
                .start_rollout(service, &change, deadline, evidence)
                .await?;
            Ok(ActiveFault::Rollout {
                service: service.clone(),
                task,
                undo_unless_complete: true,
                progress_deadline: deadline,
            })
        }
        FaultSpec::Proxy { proxy, toxic } => {
            let handle = platform.proxy(proxy).ok_or_else(|| {
                BrownoutError::BadInput(format!("fault proxy: no proxy '{proxy}' is running"))
            })?;
            let what = format!("proxy {proxy}: {toxic:?}");
            match toxic.to_toxic().map_err(BrownoutError::BadInput)? {
                Some(t) => handle.add(t),
                None => handle.take_down().await,
            }
            Ok(ActiveFault::Proxy {
                proxy: handle,
                down: matches!(toxic, crate::spec::ToxicSpec::Down {}),
                what,
            })
        }
        FaultSpec::DiskFull { service, volume } => {
            platform.fill_volume(service, volume, evidence).await?;
            Ok(ActiveFault::DiskFull {
                service: service.clone(),
                volume: volume.clone(),
            })
        }
        FaultSpec::RollingRestart {
            service,
            progress_deadline,
        } => {
            let deadline = parse_duration(progress_deadline).map_err(BrownoutError::BadInput)?;
            let task = platform
                .start_rollout(service, &RevisionChange::default(), deadline, evidence)
                .await?;
            Ok(ActiveFault::Rollout {
                service: service.clone(),
                task,
                undo_unless_complete: false,
                progress_deadline: deadline,
            })
        }
    }
}

fn db(e: sqlx::Error) -> BrownoutError {
    BrownoutError::Environment(format!("fault: database error: {e}"))
}

impl ActiveFault {
    pub fn describe(&self) -> String {
        match self {
            ActiveFault::PoolExhaustion { .. } => {
                "pool-exhaustion: EXCLUSIVE locks held on the app's tables".into()
            }
            ActiveFault::Rollout {
                service,
                undo_unless_complete: true,
                ..
            } => format!("rollout of {service}"),
            ActiveFault::Rollout { service, .. } => format!("rolling restart of {service}"),
            ActiveFault::Proxy { what, .. } => what.clone(),
            ActiveFault::DiskFull { service, volume } => {
                format!("disk-full: volume {volume} of every {service} replica at ENOSPC")
            }
        }
    }

    pub async fn heal<P: Platform>(self, platform: &mut P, evidence: &Evidence) -> Result<()> {
        match self {
            ActiveFault::PoolExhaustion { mut conn } => {
                if let Some(mut c) = conn.take() {
                    sqlx::query("ROLLBACK").execute(&mut c).await.map_err(db)?;
                    c.close().await.map_err(db)?;
                }
            }
            ActiveFault::Rollout {
                service,
                task,
                undo_unless_complete,
                progress_deadline,
            } => {
                let outcome = if undo_unless_complete {
                    // A bad rollout is not waited for: whatever has not completed is undone now.
                    if task.is_finished() {
                        task.await.ok()
                    } else {
                        task.abort();
                        None
                    }
                } else {
                    // A restart is left to finish (bounded by its progress deadline per replica).
                    tokio::time::timeout(progress_deadline * 4, task)
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                };
                if !matches!(outcome, Some(RolloutOutcome::Complete { .. })) {
                    platform.rollback(&service, evidence).await;
                }
            }
            ActiveFault::Proxy { proxy, down, .. } => {
                proxy.clear();
                if down {
                    proxy.bring_up().await.map_err(|e| {
                        BrownoutError::Environment(format!(
                            "proxy {}: cannot listen again: {e}",
                            proxy.name
                        ))
                    })?;
                }
            }
            ActiveFault::DiskFull { service, volume } => {
                platform.free_volume(&service, &volume, evidence).await
            }
        }
        Ok(())
    }
}
