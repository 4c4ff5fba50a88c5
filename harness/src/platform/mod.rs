//! Where the system under test runs. One trait, [`Platform`]; the local (embedded) platform is
//! the first implementation, and a Kubernetes one fits behind the same calls: scenarios, faults and
//! expectations only see [`Endpoints`] and the [`Evidence`](crate::evidence::Evidence) the platform
//! records (probe timelines, restarts, ingress changes).

pub mod local;

use crate::error::Result;
use crate::evidence::Evidence;
use crate::spec::System;
use std::path::PathBuf;

/// How to deploy: bug switches for the app, where binaries and logs live.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Bug names passed to services that declare `bug_env`.
    pub bugs: Vec<String>,
    /// Directory of the workspace binaries (`{bin_dir}` in commands).
    pub bin_dir: PathBuf,
    /// Where every component's log is written (the run's report dir).
    pub log_dir: PathBuf,
    /// Seed for the fault proxies' random choices.
    pub seed: u64,
}

/// Addresses of a deployed system, as the harness (on this machine) reaches them.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Base URL of the ingress route (`http://127.0.0.1:PORT`).
    pub ingress_url: String,
    pub prometheus_url: String,
    /// Superuser URL of the system's database, for DB-side faults and integrity checks.
    pub database_url: Option<String>,
    /// Base URL of one replica of each service, by service name (e.g. the payments ledger).
    pub service_urls: Vec<(String, String)>,
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

/// Settings of the ingress that shape what clients see, shown in every report (retries can mask
/// errors, fail-open changes who answers when nothing is ready).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngressSettings {
    pub implementation: String,
    pub retries: String,
    pub connect_timeout: String,
    pub read_timeout: String,
    pub fail_open: bool,
    /// How long a terminating replica stays routed before endpoint removal reaches the ingress.
    pub propagation_delay: String,
}

#[allow(async_fn_in_trait)]
pub trait Platform {
    /// Starts everything the system needs and returns once every replica is ready.
    async fn deploy(
        &mut self,
        system: &System,
        opts: &DeployOptions,
        evidence: &Evidence,
    ) -> Result<Endpoints>;

    fn ingress_settings(&self) -> IngressSettings;

    /// The ingress's answers so far by status and who made them, from the edge metrics Prometheus
    /// scrapes (`None` if this platform's ingress has none, or they could not be read).
    async fn edge_counts(&self) -> Option<Vec<crate::evidence::EdgeCount>>;

    /// Replica restarts so far, by replica name.
    fn restarts(&self) -> Vec<(String, u32)>;

    /// Starts a rolling update of `service` to a new revision (surge one, never below the desired
    /// ready count, stalled after `progress_deadline` without progress). Runs in the background.
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        progress_deadline: std::time::Duration,
        evidence: &Evidence,
    ) -> Result<tokio::task::JoinHandle<crate::rollout::RolloutOutcome>>;

    /// Undoes the last rollout of `service`: its new replicas are terminated, the previous
    /// revision is current again.
    async fn rollback(&mut self, service: &str, evidence: &Evidence);

    /// The fault proxy named in the system file.
    fn proxy(&self, name: &str) -> Option<std::sync::Arc<crate::proxy::FaultProxy>>;

    /// Fills the volume of every replica of `service` until the kernel answers ENOSPC.
    async fn fill_volume(&mut self, service: &str, volume: &str, evidence: &Evidence)
        -> Result<()>;

    /// Frees what [`Platform::fill_volume`] wrote.
    async fn free_volume(&mut self, service: &str, volume: &str, evidence: &Evidence);

    /// Stops everything it started, in order; idempotent.
    async fn teardown(&mut self);
}
