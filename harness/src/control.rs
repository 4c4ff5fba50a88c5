//! The small control traits faults act through — fault proxies ([`ProxyControl`]), sized volumes
//! ([`VolumeFiller`]), the database ([`DatabaseHandle`], [`DatabaseControl`]), memory and CPU
//! limits ([`MemoryLimiter`], [`CpuLimiter`]), rollouts ([`RolloutDriver`]) — and [`Controls`], all of them at once. Every
//! platform implements them (`platform::Platform` requires [`Controls`]); `faults` sees only these,
//! so it never imports the platform, which imports the system file's types, which import the fault
//! kinds. Imports nothing of spec, faults or platform.

use crate::error::Result;
use crate::evidence::Evidence;
use crate::fault_proxy::Toxic;
use std::time::Duration;

/// Everything a fault can ask of a platform.
pub trait Controls:
    ProxyControl
    + VolumeFiller
    + DatabaseHandle
    + DatabaseControl
    + MemoryLimiter
    + CpuLimiter
    + RolloutDriver
{
}

impl<T> Controls for T where
    T: ProxyControl
        + VolumeFiller
        + DatabaseHandle
        + DatabaseControl
        + MemoryLimiter
        + CpuLimiter
        + RolloutDriver
{
}

/// What a new revision of a service changes (an empty change is a rolling restart).
#[derive(Debug, Clone, Default)]
pub struct RevisionChange {
    pub remove_env: Vec<String>,
    pub set_env: std::collections::BTreeMap<String, String>,
}

impl RevisionChange {
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .remove_env
            .iter()
            .map(|k| format!("without {k}"))
            .collect();
        parts.extend(self.set_env.iter().map(|(k, v)| format!("{k}={v}")));
        if parts.is_empty() {
            "restart (same spec)".into()
        } else {
            parts.join(", ")
        }
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutOutcome {
    Complete {
        took: Duration,
    },
    Stalled {
        replica: String,
        waited: Duration,
        restarts: u32,
        last_log_line: String,
    },
    Failed {
        reason: String,
    },
}

impl RolloutOutcome {
    pub fn state(&self) -> crate::evidence::RolloutState {
        use crate::evidence::RolloutState;
        match self {
            RolloutOutcome::Complete { .. } => RolloutState::Complete,
            RolloutOutcome::Stalled { .. } => RolloutState::Stalled,
            RolloutOutcome::Failed { .. } => RolloutState::Failed,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            RolloutOutcome::Complete { took } => format!("complete after {:.1} s", took.as_secs_f64()),
            RolloutOutcome::Stalled { replica, waited, restarts, last_log_line } => format!(
                "stalled: {replica} not ready after {:.1} s (progress deadline), {restarts} restarts (crash loop), last log line: {last_log_line}",
                waited.as_secs_f64()
            ),
            RolloutOutcome::Failed { reason } => format!("failed: {reason}"),
        }
    }
}

/// Fault proxies in front of dependencies, by the name the system file gives them.
#[allow(async_fn_in_trait)]
pub trait ProxyControl {
    /// Adds a toxic to proxy `proxy` (it hits connections already open too).
    async fn add_toxic(&mut self, proxy: &str, toxic: Toxic) -> Result<()>;
    /// Removes every toxic of `proxy`.
    async fn clear_toxics(&mut self, proxy: &str) -> Result<()>;
    /// Takes `proxy`'s listener away (the dependency is down: connections are refused) or brings
    /// it back.
    async fn set_down(&mut self, proxy: &str, down: bool) -> Result<()>;
}

/// The system's database, as the harness reaches it: for database-side faults (held locks) and
/// the integrity check.
#[allow(async_fn_in_trait)]
pub trait DatabaseHandle {
    /// A new superuser connection to the system's database; `None` if the system has none.
    async fn connect_database(&self) -> Result<Option<sqlx::PgConnection>>;
}

/// A new connection to the database at `url`, for [`DatabaseHandle`] implementations (`None`: the
/// system has no database).
pub async fn connect_postgres(url: Option<&str>) -> Result<Option<sqlx::PgConnection>> {
    use sqlx::Connection;
    let Some(url) = url else {
        return Ok(None);
    };
    sqlx::PgConnection::connect(url)
        .await
        .map(Some)
        .map_err(|e| {
            crate::error::BrownoutError::Environment(format!(
                "cannot connect to the database at {url}: {e}"
            ))
        })
}

/// The system's database server as a whole, for a database outage: stopped (fast shutdown: open
/// sessions are ended, new connections refused) and started again on the same address and data.
#[allow(async_fn_in_trait)]
pub trait DatabaseControl {
    /// Stops the database server; returns once it no longer accepts connections.
    async fn stop_database(&mut self, evidence: &Evidence) -> Result<()>;
    /// Starts it again; returns once it accepts connections.
    async fn start_database(&mut self, evidence: &Evidence) -> Result<()>;
}

/// Memory limits of a service's replicas (a container's memory limit), enforced by the kernel: a
/// replica that goes over is killed (SIGKILL, exit 137), as the OOM killer does in a container.
#[allow(async_fn_in_trait)]
pub trait MemoryLimiter {
    /// Limits every replica of `service`, running or started later, to `bytes` of memory (no
    /// swap); `None` lifts the limit.
    async fn limit_memory(
        &mut self,
        service: &str,
        bytes: Option<u64>,
        evidence: &Evidence,
    ) -> Result<()>;
}

/// CPU limits of a service's replicas (a container's CPU limit), enforced by the kernel's
/// scheduler: a replica that uses its quota within a period is throttled until the next one, never
/// killed.
#[allow(async_fn_in_trait)]
pub trait CpuLimiter {
    /// Limits every replica of `service`, running or started later, to `millicpus` thousandths of
    /// a CPU (a quota of `millicpus` × 100 µs per 100 ms period); `None` lifts the limit.
    async fn limit_cpu(
        &mut self,
        service: &str,
        millicpus: Option<u32>,
        evidence: &Evidence,
    ) -> Result<()>;
}

/// Sized volumes of a service's replicas, filled for real.
#[allow(async_fn_in_trait)]
pub trait VolumeFiller {
    /// Fills the volume of every replica of `service` until the kernel answers ENOSPC, and keeps
    /// it full until [`VolumeFiller::free_volume`].
    async fn fill_volume(&mut self, service: &str, volume: &str, evidence: &Evidence)
        -> Result<()>;

    /// Frees what [`VolumeFiller::fill_volume`] wrote.
    async fn free_volume(&mut self, service: &str, volume: &str, evidence: &Evidence);
}

/// Rolling updates of a service (a Deployment's, with maxSurge 1 and maxUnavailable 0).
#[allow(async_fn_in_trait)]
pub trait RolloutDriver {
    /// Starts a rolling update of `service` to a new revision (surge one, never below the desired
    /// ready count, stalled after `progress_deadline` without progress). Runs in the background.
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        progress_deadline: std::time::Duration,
        evidence: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>>;

    /// Undoes the last rollout of `service`: its new replicas are terminated, the previous
    /// revision is current again.
    async fn rollback(&mut self, service: &str, evidence: &Evidence);
}
