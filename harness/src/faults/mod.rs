//! Real faults, injected at the start of a phase and healed at its end, one file per kind (as
//! Toxiproxy keeps one per toxic): `pool_exhaustion`, `rollout` (also rolling restarts), `proxy`
//! (toxics on a fault proxy), `disk_full`, `database_down`, `memory_limit`. Each acts on the platform only through the small
//! control traits of [`crate::platform`], so it runs on any platform. An [`ActiveFault`]'s `heal`
//! undoes what `inject` did; dropping one un-healed releases what it holds too, so a failed or
//! interrupted run never leaves a fault behind.

pub mod database_down;
pub mod disk_full;
#[cfg(test)]
mod fake;
pub mod memory_limit;
pub mod pool_exhaustion;
pub mod proxy;
pub mod rollout;
pub mod toxic;

use crate::error::Result;
use crate::evidence::Evidence;
use crate::platform::{Platform, RevisionChange};
use crate::spec::FaultSpec;

/// A fault in place, until healed.
pub enum ActiveFault {
    PoolExhaustion(pool_exhaustion::Held),
    Rollout(rollout::InProgress),
    Proxy(proxy::Applied),
    DiskFull(disk_full::Filled),
    DatabaseDown(database_down::Stopped),
    MemoryLimit(memory_limit::Limited),
    /// The load's own requests are the fault (`requests`): nothing to inject or heal.
    Requests(Vec<String>),
}

pub async fn inject<P: Platform>(
    spec: &FaultSpec,
    platform: &mut P,
    evidence: &Evidence,
) -> Result<ActiveFault> {
    Ok(match spec {
        FaultSpec::PoolExhaustion { tables } => {
            ActiveFault::PoolExhaustion(pool_exhaustion::inject(platform, tables).await?)
        }
        FaultSpec::Rollout {
            service,
            remove_env,
            set_env,
            progress_deadline,
            rollback_on_alert,
        } => {
            let change = RevisionChange {
                remove_env: remove_env.clone(),
                set_env: set_env.clone(),
            };
            let deadline = progress_deadline.get();
            let mut r =
                rollout::inject(platform, service, Some(&change), deadline, evidence).await?;
            r.rollback_on_alert = rollback_on_alert.clone();
            ActiveFault::Rollout(r)
        }
        FaultSpec::RollingRestart {
            service,
            progress_deadline,
        } => {
            let deadline = progress_deadline.get();
            ActiveFault::Rollout(
                rollout::inject(platform, service, None, deadline, evidence).await?,
            )
        }
        FaultSpec::Proxy { proxy, toxic } => {
            ActiveFault::Proxy(proxy::inject(platform, proxy, toxic).await?)
        }
        FaultSpec::DiskFull { service, volume } => {
            ActiveFault::DiskFull(disk_full::inject(platform, service, volume, evidence).await?)
        }
        FaultSpec::DatabaseDown {} => {
            ActiveFault::DatabaseDown(database_down::inject(platform, evidence).await?)
        }
        FaultSpec::Requests { requests } => {
            evidence.event(format!("requests {} join the load", requests.join(", ")));
            ActiveFault::Requests(requests.clone())
        }
        FaultSpec::MemoryLimit { service, limit } => ActiveFault::MemoryLimit(
            memory_limit::inject(platform, service, limit.0, evidence).await?,
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
            ActiveFault::Requests(r) => format!("requests: {} sent by the load", r.join(", ")),
        }
    }

    /// Called about every second while the fault's phase lasts: a rollout with
    /// `rollback_on_alert` rolls back once its alert fires.
    pub async fn watch<P: Platform>(&mut self, platform: &mut P, evidence: &Evidence) {
        if let ActiveFault::Rollout(r) = self {
            rollout::watch(platform, r, evidence).await;
        }
    }

    pub async fn heal<P: Platform>(self, platform: &mut P, evidence: &Evidence) -> Result<()> {
        match self {
            ActiveFault::PoolExhaustion(held) => pool_exhaustion::heal(held).await?,
            ActiveFault::Rollout(r) => rollout::heal(platform, r, evidence).await,
            ActiveFault::Proxy(a) => proxy::heal(platform, a).await?,
            ActiveFault::DiskFull(f) => disk_full::heal(platform, f, evidence).await,
            ActiveFault::DatabaseDown(s) => database_down::heal(platform, s, evidence).await?,
            ActiveFault::MemoryLimit(l) => memory_limit::heal(platform, l, evidence).await?,
            ActiveFault::Requests(_) => {}
        }
        Ok(())
    }
}
