//! The fault control the platform offers through the API: proxy toxics (the fault proxy's
//! control API), database-down (the postgres Deployment scaled to 0 and back), volumes filled
//! by exec, rollouts and their rollback; memory-limit and cpu-limit are refused.

use super::{Filled, KubePlatform};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::fault_proxy::client::Client as ProxyClient;
use crate::fault_proxy::Toxic;
use crate::platform::kube::{
    render, rollout,
    volumes::{self, KubeExec},
};
use crate::platform::{
    CpuLimiter, DatabaseControl, DatabaseHandle, MemoryLimiter, ProxyControl, RevisionChange,
    RolloutDriver, RolloutOutcome, VolumeFiller,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use std::time::{Duration, Instant};

impl ProxyControl for KubePlatform {
    async fn add_toxic(&mut self, proxy: &str, toxic: Toxic) -> Result<()> {
        self.proxy()?.add_toxic(proxy, &toxic).await
    }
    async fn clear_toxics(&mut self, proxy: &str) -> Result<()> {
        self.proxy()?.clear_toxics(proxy).await
    }
    async fn set_down(&mut self, proxy: &str, down: bool) -> Result<()> {
        self.proxy()?.set_down(proxy, down).await
    }
}

impl KubePlatform {
    fn proxy(&self) -> Result<&ProxyClient> {
        self.deployed()?.proxy.as_ref().ok_or_else(|| {
            BrownoutError::BadInput("a proxy fault needs [[proxies]] in the system file".into())
        })
    }
}

impl DatabaseHandle for KubePlatform {
    async fn connect_database(&self) -> Result<Option<sqlx::PgConnection>> {
        crate::platform::connect_postgres(self.deployed()?.database_url.as_deref()).await
    }
}

impl KubePlatform {
    /// Scales the database's Deployment to `replicas` and waits until that many pods are ready.
    async fn scale_database(&mut self, replicas: i32, evidence: &Evidence) -> Result<()> {
        let (poll, ready_within) = (self.poll, self.ready_within);
        let d = self.deployed_mut()?;
        if d.database_url.is_none() {
            return Err(BrownoutError::BadInput(
                "fault database-down needs a [database] in the system file".into(),
            ));
        }
        let api: Api<Deployment> = Api::namespaced(d.client.clone(), &d.namespace);
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        api.patch(
            "postgres",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|e| BrownoutError::Environment(format!("scaling postgres to {replicas}: {e}")))?;
        let within = ready_within;
        let deadline = Instant::now() + within;
        loop {
            let dep = api.get("postgres").await.map_err(|e| {
                BrownoutError::Environment(format!("reading the postgres Deployment: {e}"))
            })?;
            let status = dep.status.unwrap_or_default();
            let ready = status.ready_replicas.unwrap_or(0);
            let total = status.replicas.unwrap_or(0);
            // `status.replicas` leaves out terminating pods: stopped means no postgres pod at
            // all, or the next start would run beside a server still shutting down on the
            // same claim.
            let lingering = if replicas == 0 && total == 0 {
                postgres_pods(&d.client, &d.namespace).await?
            } else {
                0
            };
            if ready == replicas && total == replicas && lingering == 0 {
                evidence.event(format!("postgres scaled to {replicas}"));
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BrownoutError::Environment(format!(
                    "postgres: {ready}/{total} pods ready {} s after scaling to {replicas}",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// PostgreSQL's pods, terminating ones included (by the component label).
async fn postgres_pods(client: &kube::Client, namespace: &str) -> Result<usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}=postgres", render::NAME_LABEL);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| BrownoutError::Environment(format!("listing postgres's pods: {e}")))?;
    // Filtered here too: the selector is the API server's to apply.
    Ok(list
        .items
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(render::NAME_LABEL))
                .is_some_and(|n| n == "postgres")
        })
        .count())
}

impl DatabaseControl for KubePlatform {
    async fn stop_database(&mut self, evidence: &Evidence) -> Result<()> {
        self.scale_database(0, evidence).await
    }
    async fn start_database(&mut self, evidence: &Evidence) -> Result<()> {
        self.scale_database(1, evidence).await
    }
}

impl MemoryLimiter for KubePlatform {
    async fn limit_memory(
        &mut self,
        service: &str,
        _bytes: Option<u64>,
        _evidence: &Evidence,
    ) -> Result<()> {
        // A pod's memory limit is part of its spec: changing it is a rollout, which would be a
        // different fault. Not built yet.
        Err(BrownoutError::Environment(format!(
            "fault memory-limit (service {service}) runs on the local platform only: on Kubernetes a container's limit changes only with a new pod"
        )))
    }
}

impl CpuLimiter for KubePlatform {
    async fn limit_cpu(
        &mut self,
        service: &str,
        _millicpus: Option<u32>,
        _evidence: &Evidence,
    ) -> Result<()> {
        // Refused before anything is deployed (`refused::CPU_LIMIT` says why); never reached.
        Err(BrownoutError::Environment(format!(
            "fault cpu-limit (service {service}) runs on the local platform only: {}",
            crate::platform::kube::refused::CPU_LIMIT
        )))
    }
}

impl VolumeFiller for KubePlatform {
    async fn fill_volume(
        &mut self,
        service: &str,
        volume: &str,
        evidence: &Evidence,
    ) -> Result<()> {
        let d = self.deployed_mut()?;
        let exec = KubeExec {
            pods: Api::namespaced(d.client.clone(), &d.namespace),
        };
        let pods = volumes::running_pods(&exec.pods, service).await?;
        let held = volumes::fill(&exec, &pods, service, volume, evidence).await?;
        d.fills.push(Filled {
            service: service.into(),
            volume: volume.into(),
            pods,
            held,
        });
        Ok(())
    }

    async fn free_volume(&mut self, service: &str, volume: &str, evidence: &Evidence) {
        let Ok(d) = self.deployed_mut() else { return };
        let exec = KubeExec {
            pods: Api::namespaced(d.client.clone(), &d.namespace),
        };
        let (mine, rest): (Vec<Filled>, Vec<Filled>) = std::mem::take(&mut d.fills)
            .into_iter()
            .partition(|f| f.service == service && f.volume == volume);
        d.fills = rest;
        for f in mine {
            volumes::free(&exec, f.held, &f.pods, service, volume, evidence).await;
        }
    }
}

impl RolloutDriver for KubePlatform {
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        progress_deadline: Duration,
        evidence: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
        let poll = self.poll;
        let d = self.deployed_mut()?;
        let current = d.current.get(service).ok_or_else(|| {
            BrownoutError::BadInput(format!("no service '{service}' to roll out"))
        })?;
        let now = chrono::Utc::now().to_rfc3339();
        let next = rollout::changed(current, change, progress_deadline, &now);
        let revision = d.revision.entry(service.to_string()).or_insert(1);
        *revision += 1;
        let id = format!("{service}@r{revision}");
        evidence.rollout_started(&id, service, &change.describe());
        let task = rollout::start(
            d.client.clone(),
            &d.namespace,
            service,
            &next,
            id,
            evidence,
            d.watches.tracker.clone(),
            poll,
        )
        .await?;
        d.current.insert(service.to_string(), next);
        Ok(task)
    }

    async fn rollback(&mut self, service: &str, evidence: &Evidence) {
        let Ok(d) = self.deployed_mut() else { return };
        let Some(current) = d.current.get(service).cloned() else {
            return;
        };
        let id = format!(
            "{service}@r{}",
            d.revision.get(service).copied().unwrap_or(1)
        );
        match rollout::rollback(d.client.clone(), &d.namespace, &current).await {
            Ok((applied, to)) => {
                d.current.insert(service.to_string(), applied);
                rollout::record_rollback(evidence, &id, to);
            }
            Err(e) => evidence.event(format!("rollback of {service} failed: {e}")),
        }
    }
}
