//! Where the system under test runs: the boundary between the core (spec, runner, faults, load,
//! evidence, judge, report) and a platform. A platform implements [`Platform`] and the small
//! control traits faults act through ([`ProxyControl`], [`VolumeFiller`], [`DatabaseHandle`],
//! [`DatabaseControl`], [`MemoryLimiter`], [`CpuLimiter`], [`RolloutDriver`]: defined in
//! [`crate::control`], so that `faults` never imports this module, and re-exported here); the
//! core only sees these, [`Endpoints`] and the [`Evidence`](crate::evidence::Evidence) the platform
//! records (probe timelines, restarts, ingress changes). Two implementations: `local/` (processes
//! on 127.0.0.1, whose machinery no core module imports) and `kube/` (a kind cluster, or opt-in
//! another one). `ARCHITECTURE.md` walks through adding a platform.

pub mod edge_metrics;
pub mod kube;
pub mod local;
pub mod nginx_conf;

/// The local (embedded) platform, ready to deploy: the command line's platform today.
pub fn embedded() -> local::LocalPlatform {
    local::LocalPlatform::new()
}

/// Removes what runs of a harness that was killed (kill -9) left behind: processes, mounts, temp
/// dirs. Done before anything else, even a run that then fails on bad input.
pub fn sweep_leftovers() {
    local::workdir::sweep_dead_runs();
    local::cgroup::sweep_dead_runs();
    local::cpu_cgroup::sweep_dead_runs();
}

pub use crate::control::{
    connect_postgres, Controls, CpuLimiter, DatabaseControl, DatabaseHandle, MemoryLimiter,
    ProxyControl, RevisionChange, RolloutDriver, RolloutOutcome, VolumeFiller,
};

use crate::error::Result;
use crate::evidence::Evidence;
use crate::spec::System;
use std::path::PathBuf;

/// How to deploy: bug switches for the app, where binaries and logs live.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The run's id (names a Kubernetes run's namespace and image tag).
    pub run_id: String,
    /// Bug names passed to services that declare `bug_env`.
    pub bugs: Vec<String>,
    /// Directory of the workspace binaries (`{bin_dir}` in commands).
    pub bin_dir: PathBuf,
    /// Where every component's log is written (the run's report dir).
    pub log_dir: PathBuf,
    /// Seed for the fault proxies' random choices.
    pub seed: u64,
}

/// Addresses of a deployed system, as the harness (on this machine) reaches them: base URLs
/// (`http://host:port`), not necessarily on 127.0.0.1 (a cluster's would be port-forwards).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Base URL of the ingress route.
    pub ingress_url: String,
    pub prometheus_url: String,
    /// Base URL of each service's address (every ready replica behind it, across rollouts), by
    /// service name (e.g. the payments ledger).
    pub service_urls: Vec<(String, String)>,
    /// Where each of the system's fault proxies listens (`host:port`), by proxy name.
    pub proxies: Vec<(String, String)>,
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

/// Which probe field a platform had to round ([`RoundedProbeTime`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeField {
    Period,
    Timeout,
}

/// A probe period or timeout of the system file that the platform could not take as written and
/// rounded up (Kubernetes takes whole seconds, at least 1): the probe then runs less often or
/// waits longer than the system file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoundedProbeTime {
    pub service: String,
    pub probe: crate::evidence::Probe,
    pub field: ProbeField,
    /// What the system file asks for, in milliseconds.
    pub asked_ms: u64,
    /// What the platform runs, in milliseconds.
    pub runs_ms: u64,
}

/// What a report states about where a run ran, so a verdict on one platform is not read as one on
/// another.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlatformFacts {
    /// [`Platform::name`].
    pub platform: String,
    /// The API server's version (`/version`, `gitVersion`) as read at deploy; `None` on the local
    /// platform, or when it could not be read.
    pub kubernetes_version: Option<String>,
    /// Probe periods and timeouts that run rounded up (empty: every one as written).
    pub rounded_probe_times: Vec<RoundedProbeTime>,
}

impl PlatformFacts {
    /// Facts of a platform that runs the system file as written (the local platform).
    pub fn exact(platform: &str) -> PlatformFacts {
        PlatformFacts {
            platform: platform.into(),
            kubernetes_version: None,
            rounded_probe_times: Vec::new(),
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait Platform: Controls {
    /// The platform's name in reports and progress lines ("local", "kind").
    fn name(&self) -> &'static str;

    /// Whether this platform can inject `fault`; `Err` says why not. The runner asks for every
    /// fault of a scenario before deploying anything and refuses the run (exit 3, "not supported
    /// on this platform") if one cannot be done.
    fn supports(&self, _fault: &crate::spec::FaultSpec) -> std::result::Result<(), String> {
        Ok(())
    }

    /// What the report states about this platform (its name, the Kubernetes version, the probe
    /// times it rounded); valid after [`Platform::deploy`] was called, also when it failed.
    fn platform_facts(&self) -> PlatformFacts {
        PlatformFacts::exact(self.name())
    }

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

    /// Restarts so far of every replica that ran.
    fn restarts(&self) -> Vec<crate::evidence::Restarts>;

    /// Stops everything it started, in order; idempotent.
    async fn teardown(&mut self);
}

#[cfg(test)]
mod tests {
    /// The boundary holds: outside `platform/local/`, only this module names the local platform.
    #[test]
    fn no_core_module_uses_the_local_platform() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    if p != src.join("platform").join("local") {
                        dirs.push(p);
                    }
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs") || p == src.join("platform/mod.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if line.contains("platform::local") || line.contains("local::") {
                        offenders.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "core modules using the local platform:\n{}",
            offenders.join("\n")
        );
        // The check can fail: this module itself names it.
        let here = std::fs::read_to_string(src.join("platform/mod.rs")).unwrap();
        assert!(here.contains("local::LocalPlatform"));
    }
}
