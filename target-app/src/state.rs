//! Shared state of one checkout replica: the DB pool, the payments client, the config and the
//! shutdown flag. Built once at boot (after config validation and migrations).

use crate::config::{Bug, Config};
use crate::error::AppError;
use crate::payments::{Breaker, Payments};
use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Without the acquire timeout (`no-acquire-timeout`), a waiter waits this long: in effect forever.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

pub type SharedState = Arc<AppState>;

/// Readiness reports the pool as saturated while an acquire timed out this recently.
pub const POOL_PRESSURE_WINDOW: Duration = Duration::from_secs(3);

static BOOT: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);
/// Milliseconds since boot of the last pool acquire timeout, plus one (0: never).
static LAST_ACQUIRE_TIMEOUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records a pool acquire timeout (for the metrics and the readiness pool check).
pub fn note_acquire_timeout() {
    crate::metrics::METRICS.db_acquire_timeouts.inc();
    LAST_ACQUIRE_TIMEOUT.store(BOOT.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
}

/// The pool-headroom check: fails while acquires have timed out within [`POOL_PRESSURE_WINDOW`].
pub fn check_pool_headroom() -> Result<(), String> {
    let last = LAST_ACQUIRE_TIMEOUT.load(Ordering::Relaxed);
    if last == 0 {
        return Ok(());
    }
    let ago = (BOOT.elapsed().as_millis() as u64 + 1).saturating_sub(last);
    if ago < POOL_PRESSURE_WINDOW.as_millis() as u64 {
        Err(format!("pool saturated: an acquire timed out {ago} ms ago"))
    } else {
        Ok(())
    }
}

pub struct AppState {
    pub config: Config,
    pool: Option<PgPool>,
    pub payments: Payments,
    shutting_down: AtomicBool,
    /// The `no-db-reconnect` bug's readiness connection: opened at the first check, never reopened.
    readiness_conn: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

impl AppState {
    /// Builds the state and applies migrations (retrying for a few seconds while the DB starts).
    pub async fn build(config: Config) -> anyhow::Result<SharedState> {
        let pool = match &config.database_url {
            Some(url) => Some(connect_pool(&config, url)?),
            None => None,
        };
        if let Some(pool) = &pool {
            migrate_with_retry(pool).await?;
        }
        let no_timeout = config.bugs.on(Bug::NoUpstreamTimeout);
        let mut payments = Payments::new(
            config.payments_url.clone(),
            (!no_timeout).then_some(config.payments_timeout),
            (!no_timeout)
                .then(|| Breaker::new(config.breaker_failure_threshold, config.breaker_open_for)),
        );
        payments.errors_as_500 = config.bugs.on(Bug::DependencyErrors500);
        crate::error::DEPENDENCY_ERRORS_500
            .store(config.bugs.on(Bug::DependencyErrors500), Ordering::Relaxed);
        crate::metrics::METRICS
            .db_pool_max
            .set(i64::from(config.db_pool_size));
        Ok(Arc::new(AppState {
            config,
            pool,
            payments,
            shutting_down: AtomicBool::new(false),
            readiness_conn: tokio::sync::Mutex::new(None),
        }))
    }

    /// The DB pool, or a 500 when the service booted without `DATABASE_URL` (skip-env-validation).
    pub fn pool(&self) -> Result<&PgPool, AppError> {
        self.pool
            .as_ref()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("DATABASE_URL is not configured")))
    }

    pub fn has_pool(&self) -> bool {
        self.pool.is_some()
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        crate::metrics::METRICS.shutting_down.set(1);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Acquires a connection and runs `SELECT 1`, all within `within`: the database health check.
    pub async fn check_database(&self, within: Duration) -> Result<(), String> {
        let Some(pool) = &self.pool else {
            return Err("DATABASE_URL is not configured".into());
        };
        if self.config.bugs.on(Bug::NoDbReconnect) {
            return self.check_on_one_connection(pool, within).await;
        }
        let check = async {
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(within, check).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no database connection within {} ms (pool in use {}/{})",
                within.as_millis(),
                pool.size() as usize - pool.num_idle(),
                self.config.db_pool_size
            )),
        }
    }

    /// The `no-db-reconnect` bug's database check: `SELECT 1` on a connection opened at the first
    /// check and kept for good, even once it is broken.
    async fn check_on_one_connection(&self, pool: &PgPool, within: Duration) -> Result<(), String> {
        use sqlx::ConnectOptions;
        let check = async {
            let mut conn = self.readiness_conn.lock().await;
            if conn.is_none() {
                *conn = Some(
                    pool.connect_options()
                        .connect()
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let c = conn.as_mut().expect("just opened");
            sqlx::query("SELECT 1")
                .execute(c)
                .await
                .map(|_| ())
                .map_err(|e| format!("readiness connection: {e}"))
        };
        tokio::time::timeout(within, check)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", within.as_millis())))
    }

    /// Refreshes the pool gauges; called on each scrape.
    pub fn observe_pool(&self) {
        if let Some(pool) = &self.pool {
            let m = &crate::metrics::METRICS;
            let size = pool.size() as i64;
            let idle = pool.num_idle() as i64;
            m.db_pool_size.set(size);
            m.db_pool_idle.set(idle);
            m.db_pool_in_use.set(size - idle);
        }
    }
}

fn connect_pool(config: &Config, url: &str) -> anyhow::Result<PgPool> {
    let statement_timeout = config.db_statement_timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        .application_name(&config.replica_name)
        .options([("statement_timeout", statement_timeout.as_str())]);
    let acquire_timeout = if config.bugs.on(Bug::NoAcquireTimeout) {
        UNBOUNDED
    } else {
        config.db_acquire_timeout
    };
    Ok(PgPoolOptions::new()
        .max_connections(config.db_pool_size)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
}

async fn migrate_with_retry(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match sqlx::migrate!("./migrations").run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "migrations failed, retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e).context("applying database migrations"),
        }
    }
}
