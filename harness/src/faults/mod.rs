//! Real faults, injected at the start of a phase and healed at its end, one module per kind (as
//! Toxiproxy keeps one type per toxic, and k6 one config per executor): `pool_exhaustion`,
//! `rollout`, `rolling_restart` (on the rollout machinery), `proxy` (toxics on a fault proxy),
//! `disk_full`, `database_down`, `memory_limit`, `cpu_limit`, `requests`. Each owns its file shape (a `Spec`,
//! one variant of [`FaultSpec`]), every check of it against the system, its game-day catalogue
//! entry and presets, what `brownout new` predicts for it, and inject/heal/describe through the
//! small control traits of [`crate::control`], so it runs on any platform. [`KINDS`] lists
//! them all: the catalogue and `brownout new` are generated from it.
//!
//! An [`ActiveFault`]'s `heal` undoes what `inject` did; dropping one un-healed releases what it
//! holds too, so a failed or interrupted run never leaves a fault behind.
//!
//! Adding a kind: a module here with its `Spec` (implementing [`kind::Fault`]), its `KIND` (in
//! [`KINDS`]) and inject/heal; a [`FaultSpec`] and an [`ActiveFault`] variant; the platform
//! trait it acts through, implemented by each platform (or refused in its `supports`). The whole
//! walk-through, with the tests that fail if a step is missed, is in `ARCHITECTURE.md`.

pub mod cpu_limit;
pub mod database_down;
pub mod disk_full;
#[cfg(test)]
mod fake;
pub mod kind;
pub mod memory_limit;
pub mod pool_exhaustion;
pub mod proxy;
pub mod requests;
pub mod rolling_restart;
pub mod rollout;

#[cfg(test)]
mod tests;

use crate::control::Controls;
use crate::error::Result;
use crate::evidence::Evidence;
use kind::Fault;
use serde::Deserialize;

pub use kind::Kind;

/// Every fault kind, in the game-day catalogue's order: the catalogue and `brownout new` are
/// generated from this list.
pub const KINDS: &[&Kind] = &[
    &pool_exhaustion::KIND,
    &proxy::KIND,
    &rolling_restart::KIND,
    &rollout::KIND,
    &disk_full::KIND,
    &database_down::KIND,
    &memory_limit::KIND,
    &cpu_limit::KIND,
    &requests::KIND,
];

/// The kind named `name`.
pub fn find_kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// A fault, injected at the start of its phase and healed at its end: one variant per kind, each
/// the kind's own `Spec` (`kind = "..."` picks it; the fields are the kind's).
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultSpec {
    PoolExhaustion(pool_exhaustion::Spec),
    Rollout(rollout::Spec),
    RollingRestart(rolling_restart::Spec),
    Proxy(proxy::Spec),
    DiskFull(disk_full::Spec),
    DatabaseDown(database_down::Spec),
    MemoryLimit(memory_limit::Spec),
    CpuLimit(cpu_limit::Spec),
    Requests(requests::Spec),
}

impl FaultSpec {
    /// The kind's own view of this fault.
    pub fn fault(&self) -> &dyn Fault {
        match self {
            FaultSpec::PoolExhaustion(s) => s,
            FaultSpec::Rollout(s) => s,
            FaultSpec::RollingRestart(s) => s,
            FaultSpec::Proxy(s) => s,
            FaultSpec::DiskFull(s) => s,
            FaultSpec::DatabaseDown(s) => s,
            FaultSpec::MemoryLimit(s) => s,
            FaultSpec::CpuLimit(s) => s,
            FaultSpec::Requests(s) => s,
        }
    }
    /// Its `kind = "..."` name.
    pub fn kind(&self) -> &'static str {
        self.fault().kind()
    }
    /// The service a fault acts on, if it names one.
    pub fn service(&self) -> Option<&str> {
        self.fault().service()
    }
}

/// A fault in place, until healed.
pub enum ActiveFault {
    PoolExhaustion(pool_exhaustion::Held),
    Rollout(rollout::InProgress),
    Proxy(proxy::Applied),
    DiskFull(disk_full::Filled),
    DatabaseDown(database_down::Stopped),
    MemoryLimit(memory_limit::Limited),
    CpuLimit(cpu_limit::Limited),
    /// The load's own requests are the fault (`requests`): nothing to inject or heal.
    Requests(Vec<String>),
}

pub async fn inject<P: Controls>(
    spec: &FaultSpec,
    platform: &mut P,
    evidence: &Evidence,
) -> Result<ActiveFault> {
    Ok(match spec {
        FaultSpec::PoolExhaustion(s) => {
            ActiveFault::PoolExhaustion(pool_exhaustion::inject(platform, &s.tables).await?)
        }
        FaultSpec::Rollout(s) => {
            let deadline = s.progress_deadline.get();
            let mut r =
                rollout::inject(platform, &s.service, Some(&s.change()), deadline, evidence)
                    .await?;
            r.rollback_on_alert = s.rollback_on_alert.clone();
            ActiveFault::Rollout(r)
        }
        FaultSpec::RollingRestart(s) => {
            let deadline = s.progress_deadline.get();
            ActiveFault::Rollout(
                rollout::inject(platform, &s.service, None, deadline, evidence).await?,
            )
        }
        FaultSpec::Proxy(s) => {
            ActiveFault::Proxy(proxy::inject(platform, &s.proxy, &s.toxic).await?)
        }
        FaultSpec::DiskFull(s) => ActiveFault::DiskFull(
            disk_full::inject(platform, &s.service, &s.volume, evidence).await?,
        ),
        FaultSpec::DatabaseDown(_) => {
            ActiveFault::DatabaseDown(database_down::inject(platform, evidence).await?)
        }
        FaultSpec::Requests(s) => {
            evidence.event(format!("requests {} join the load", s.requests.join(", ")));
            ActiveFault::Requests(s.requests.clone())
        }
        FaultSpec::MemoryLimit(s) => ActiveFault::MemoryLimit(
            memory_limit::inject(platform, &s.service, s.limit.0, evidence).await?,
        ),
        FaultSpec::CpuLimit(s) => ActiveFault::CpuLimit(
            cpu_limit::inject(platform, &s.service, s.millicpus(), evidence).await?,
        ),
    })
}

impl ActiveFault {
    pub fn describe(&self) -> String {
        match self {
            ActiveFault::PoolExhaustion(_) => pool_exhaustion::describe(),
            ActiveFault::Rollout(r) => rollout::describe(r),
            ActiveFault::Proxy(a) => a.what.clone(),
            ActiveFault::DiskFull(f) => disk_full::describe(f),
            ActiveFault::DatabaseDown(_) => database_down::describe(),
            ActiveFault::MemoryLimit(l) => memory_limit::describe(l),
            ActiveFault::CpuLimit(l) => cpu_limit::describe(l),
            ActiveFault::Requests(r) => requests::describe(r),
        }
    }

    /// Called about every second while the fault's phase lasts: a rollout with
    /// `rollback_on_alert` rolls back once its alert fires.
    pub async fn watch<P: Controls>(&mut self, platform: &mut P, evidence: &Evidence) {
        if let ActiveFault::Rollout(r) = self {
            rollout::watch(platform, r, evidence).await;
        }
    }

    pub async fn heal<P: Controls>(self, platform: &mut P, evidence: &Evidence) -> Result<()> {
        match self {
            ActiveFault::PoolExhaustion(held) => pool_exhaustion::heal(held).await?,
            ActiveFault::Rollout(r) => rollout::heal(platform, r, evidence).await,
            ActiveFault::Proxy(a) => proxy::heal(platform, a).await?,
            ActiveFault::DiskFull(f) => disk_full::heal(platform, f, evidence).await,
            ActiveFault::DatabaseDown(s) => database_down::heal(platform, s, evidence).await?,
            ActiveFault::MemoryLimit(l) => memory_limit::heal(platform, l, evidence).await?,
            ActiveFault::CpuLimit(l) => cpu_limit::heal(platform, l, evidence).await?,
            ActiveFault::Requests(_) => {}
        }
        Ok(())
    }
}
