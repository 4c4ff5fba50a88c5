//! The fault controls the local platform offers ([`crate::control`]'s traits): toxics through
//! the fault-proxy program's control API, the database stopped and started again, memory and CPU
//! limits through the replicas' cgroups, and rollouts of a service's replica set (and their rollback).
//! Volumes are filled in [`super::volumes`]. Each acts on the deployed system and says so
//! (an error, not a panic) when nothing is deployed.

use super::rollout::{self, RolloutOutcome};
use super::services::{terminate, LocalFleet, SharedService};
use super::LocalPlatform;
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::fault_proxy::client::Client as ProxyClient;
use crate::fault_proxy::Toxic;
use crate::platform::{
    CpuLimiter, DatabaseControl, DatabaseHandle, MemoryLimiter, ProxyControl, RevisionChange,
    RolloutDriver,
};
use std::time::Duration;

impl LocalPlatform {
    /// The deployed database's server; an error if the system has none (or nothing is deployed).
    fn database(&mut self) -> Result<&mut super::postgres::TempPostgres> {
        self.deployed
            .as_mut()
            .and_then(|d| d.stack.database.as_mut())
            .map(|d| &mut d.server)
            .ok_or_else(|| {
                BrownoutError::BadInput(
                    "fault database-down needs a [database] in the system file".into(),
                )
            })
    }

    fn proxy_client(&self) -> Result<&ProxyClient> {
        Ok(&self
            .deployed("no fault proxy is running")?
            .stack
            .proxies
            .client)
    }
}

impl ProxyControl for LocalPlatform {
    async fn add_toxic(&mut self, proxy: &str, toxic: Toxic) -> Result<()> {
        self.proxy_client()?.add_toxic(proxy, &toxic).await
    }

    async fn clear_toxics(&mut self, proxy: &str) -> Result<()> {
        self.proxy_client()?.clear_toxics(proxy).await
    }

    async fn set_down(&mut self, proxy: &str, down: bool) -> Result<()> {
        self.proxy_client()?.set_down(proxy, down).await
    }
}

impl DatabaseHandle for LocalPlatform {
    async fn connect_database(&self) -> Result<Option<sqlx::PgConnection>> {
        let url = self
            .deployed
            .as_ref()
            .and_then(|d| d.stack.database.as_ref());
        crate::platform::connect_postgres(url.map(|d| d.url.as_str())).await
    }
}

impl DatabaseControl for LocalPlatform {
    async fn stop_database(&mut self, evidence: &Evidence) -> Result<()> {
        let pg = self.database()?;
        tokio::task::block_in_place(|| pg.stop());
        evidence.event(format!(
            "postgres stopped (fast shutdown): 127.0.0.1:{} refuses connections",
            pg.port
        ));
        Ok(())
    }

    async fn start_database(&mut self, evidence: &Evidence) -> Result<()> {
        let pg = self.database()?;
        let started = std::time::Instant::now();
        pg.restart().await?;
        evidence.event(format!(
            "postgres started again on 127.0.0.1:{}, accepting connections after {:.1} s",
            pg.port,
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

impl MemoryLimiter for LocalPlatform {
    async fn limit_memory(
        &mut self,
        service: &str,
        bytes: Option<u64>,
        evidence: &Evidence,
    ) -> Result<()> {
        let deployed = self.deployed("nothing is deployed")?;
        let ctx = deployed.ctx.clone();
        let cgroups = ctx.cgroups.as_ref().map_err(|why| {
            BrownoutError::Environment(format!("fault memory-limit: {why}; run brownout as root"))
        })?;
        let replicas = limit_replicas(
            deployed,
            cgroups,
            &ctx.memory_limits,
            service,
            bytes,
            evidence,
        )?;
        evidence.event(match bytes {
            Some(b) => format!(
                "memory limit of {service} set to {:.0} MiB per replica ({})",
                b as f64 / (1u64 << 20) as f64,
                replicas.join(", ")
            ),
            None => format!("memory limit of {service} lifted"),
        });
        Ok(())
    }
}

impl CpuLimiter for LocalPlatform {
    async fn limit_cpu(
        &mut self,
        service: &str,
        millicpus: Option<u32>,
        evidence: &Evidence,
    ) -> Result<()> {
        let deployed = self.deployed("nothing is deployed")?;
        let ctx = deployed.ctx.clone();
        let cgroups = ctx.cpu_cgroups.as_ref().map_err(|why| {
            BrownoutError::Environment(format!("fault cpu-limit: {why}; run brownout as root"))
        })?;
        let replicas = limit_replicas(
            deployed,
            cgroups,
            &ctx.cpu_limits,
            service,
            millicpus,
            evidence,
        )?;
        evidence.event(match millicpus {
            Some(m) => format!(
                "CPU limit of {service} set to {} CPUs per replica ({})",
                m as f64 / 1000.0,
                replicas.join(", ")
            ),
            None => format!("CPU limit of {service} lifted"),
        });
        Ok(())
    }
}

/// Sets (`Some`) or lifts (`None`) one kind of limit on every replica of `service`, and
/// remembers it for the replicas started later (restarts, rollouts); on lifting, records what the
/// limit did to each replica. Returns the replicas' names.
fn limit_replicas<C: super::cgroup::ReplicaLimit>(
    deployed: &super::Deployed,
    cgroups: &C,
    limits: &std::sync::Mutex<std::collections::BTreeMap<String, C::Value>>,
    service: &str,
    value: Option<C::Value>,
    evidence: &Evidence,
) -> Result<Vec<String>> {
    let svc = deployed.service(service)?;
    {
        let mut limits = limits.lock().expect("limits lock");
        match value {
            Some(v) => limits.insert(service.to_string(), v),
            None => limits.remove(service),
        };
    }
    let replicas: Vec<String> = svc
        .lock()
        .expect("service lock")
        .replicas
        .iter()
        .map(|r| r.handle.name.clone())
        .collect();
    for name in &replicas {
        let dir = cgroups.replica(name).map_err(BrownoutError::Environment)?;
        cgroups
            .set_limit(&dir, value)
            .map_err(BrownoutError::Environment)?;
        if value.is_none() {
            if let Some(effect) = cgroups.effect(name, &dir) {
                evidence.event(effect);
            }
        }
    }
    Ok(replicas)
}

impl RolloutDriver for LocalPlatform {
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        progress_deadline: Duration,
        evidence: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
        let deployed = self.deployed("rollout before deploy")?;
        let ctx = deployed.ctx.clone();
        let shared = deployed.service(service)?;
        let revision = {
            let mut s = shared.lock().expect("service lock");
            let mut spec = s.spec.clone();
            for k in &change.remove_env {
                spec.env.remove(k);
            }
            spec.env.extend(change.set_env.clone());
            s.previous = Some((std::mem::replace(&mut s.spec, spec), s.revision));
            s.revision += 1;
            s.next_index = 0;
            s.revision
        };
        let id = rollout_id(service, revision);
        evidence.rollout_started(&id, service, &change.describe());
        let mut fleet = LocalFleet {
            ctx,
            service: shared,
            evidence: evidence.clone(),
        };
        let evidence = evidence.clone();
        let task = tokio::spawn(async move {
            let outcome =
                rollout::roll(&mut fleet, progress_deadline, Duration::from_millis(100)).await;
            evidence.rollout_ended(&id, outcome.state(), &outcome.describe());
            outcome
        });
        Ok(task)
    }

    async fn rollback(&mut self, service: &str, evidence: &Evidence) {
        let Some(Ok(shared)) = self.deployed.as_ref().map(|d| d.service(service)) else {
            return;
        };
        let went_live = {
            let s = shared.lock().expect("service lock");
            s.previous.is_some()
                && !s
                    .replicas
                    .iter()
                    .any(|r| r.revision < s.revision && r.terminating.is_none())
        };
        if went_live {
            return self.roll_back_live(service, shared, evidence).await;
        }
        let mut s = shared.lock().expect("service lock");
        let Some((spec, revision)) = s.previous.take() else {
            return;
        };
        let rolled = s.revision;
        // Undo: the new revision's replicas go; the old revision is current again.
        let new: Vec<String> = s
            .replicas
            .iter()
            .filter(|r| r.revision == rolled)
            .map(|r| r.handle.name.clone())
            .collect();
        for name in &new {
            terminate(&mut s, name);
        }
        s.spec = spec;
        s.revision = revision;
        evidence.rollout_ended(
            &rollout_id(service, rolled),
            crate::evidence::RolloutState::RolledBack,
            &format!(
                "rolled back to revision {revision}; terminated [{}]",
                new.join(", ")
            ),
        );
    }
}

impl LocalPlatform {
    /// Rolls back a rollout that completed (no replica of the previous revision is left): as
    /// `kubectl rollout undo`, a rolling update to the previous revision's spec, waited for.
    async fn roll_back_live(&mut self, service: &str, shared: SharedService, evidence: &Evidence) {
        let Some(ctx) = self.deployed.as_ref().map(|d| d.ctx.clone()) else {
            return;
        };
        let (rolled, previous) = {
            let mut s = shared.lock().expect("service lock");
            let Some((spec, revision)) = s.previous.take() else {
                return;
            };
            let rolled = s.revision;
            s.spec = spec;
            s.revision += 1;
            s.next_index = 0;
            (rolled, revision)
        };
        let mut fleet = LocalFleet {
            ctx,
            service: shared,
            evidence: evidence.clone(),
        };
        let outcome = rollout::roll(
            &mut fleet,
            Duration::from_secs(30),
            Duration::from_millis(100),
        )
        .await;
        evidence.rollout_ended(
            &rollout_id(service, rolled),
            crate::evidence::RolloutState::RolledBack,
            &format!(
                "rolled back to the spec of revision {previous} by a rolling update: {}",
                outcome.describe()
            ),
        );
    }
}

fn rollout_id(service: &str, revision: u32) -> String {
    format!("{service}@r{revision}")
}
