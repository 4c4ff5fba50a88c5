//! A service as the local platform runs it: its current revision and its replicas (supervised
//! processes on 127.0.0.1), how a replica is configured and started from the system file's
//! service (placeholders, volumes, memory cgroup), a service's replica set as a rollout drives it,
//! and what its replicas mean for the ingress, the service address and Prometheus (ready,
//! terminating, routed).

use super::process::ChildSpec;
use super::rollout::Fleet;
use super::supervisor::{self, ParsedProbe, Probes, ReplicaConfig, ReplicaHandle};
use super::{cgroup, cpu_cgroup, tools, volumes};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::platform::DeployOptions;
use crate::spec::ServiceSpec;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long deploy waits for every replica to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What starting a replica needs, shared with rollout tasks.
pub(super) struct SpawnContext {
    pub(super) workdir: PathBuf,
    /// Template values (`{bin_dir}`, `{database_url}`, `{service.<name>.url}`, `{proxy.<name>.addr}`).
    pub(super) vars: Mutex<BTreeMap<String, String>>,
    pub(super) opts: DeployOptions,
    pub(super) evidence: Evidence,
    /// The replicas' memory cgroups (`None`: not root or no memory controller; the reason).
    pub(super) cgroups: std::result::Result<cgroup::Cgroups, String>,
    /// Memory limits set by a `memory-limit` fault, by service: replicas started later get them too.
    pub(super) memory_limits: Mutex<BTreeMap<String, u64>>,
    /// The replicas' CPU cgroups (`None`: not root or no cpu controller; the reason).
    pub(super) cpu_cgroups: std::result::Result<cpu_cgroup::CpuCgroups, String>,
    /// CPU limits (millicpus) set by a `cpu-limit` fault, by service: replicas started later get
    /// them too.
    pub(super) cpu_limits: Mutex<BTreeMap<String, u32>>,
}

pub(super) struct Replica {
    pub(super) handle: ReplicaHandle,
    pub(super) revision: u32,
    /// When termination began, and whether the ingress was routing to it then.
    pub(super) terminating: Option<(Instant, bool)>,
}

/// One service: its current revision and its replicas (of any revision).
pub(super) struct ServiceState {
    pub(super) spec: ServiceSpec,
    pub(super) revision: u32,
    /// The spec of the revision before the current one (for rollback).
    pub(super) previous: Option<(ServiceSpec, u32)>,
    pub(super) replicas: Vec<Replica>,
    pub(super) next_index: u32,
    /// Each replica's restart count, kept after it is forgotten.
    pub(super) restarts: BTreeMap<String, u32>,
}

pub(super) type SharedService = Arc<Mutex<ServiceState>>;

/// Replaces `{key}` placeholders in a template.
fn fill(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Replica names: `checkout-0` for the first revision, `checkout-r2-0` for the second, …
pub(super) fn replica_name(service: &str, revision: u32, index: u32) -> String {
    if revision <= 1 {
        format!("{service}-{index}")
    } else {
        format!("{service}-r{revision}-{index}")
    }
}

pub(super) fn replica_config(
    ctx: &SpawnContext,
    svc: &ServiceSpec,
    name: &str,
    bring_up: bool,
) -> Result<ReplicaConfig> {
    let port = tools::free_port()?;
    let mut vars = ctx.vars.lock().expect("vars lock").clone();
    vars.insert("listen_addr".into(), format!("127.0.0.1:{port}"));
    vars.insert("replica".into(), name.to_string());
    let subdir = |rel: String| -> Result<PathBuf> {
        let p = crate::confine::inside(&ctx.workdir, rel)?;
        std::fs::create_dir_all(&p)
            .map_err(crate::error::env_err(format!("creating {}", p.display())))?;
        Ok(p)
    };
    for v in &svc.volumes {
        let dir = subdir(format!("volumes/{name}/{}", v.name))?;
        if let Some(size) = &v.size {
            volumes::mount_volume(&dir, size.0, name, &v.name, &ctx.evidence)?;
        }
        vars.insert(format!("volume.{}", v.name), dir.display().to_string());
    }
    let program = fill(&svc.command[0], &vars);
    if !std::path::Path::new(&program).is_file() {
        return Err(BrownoutError::Environment(format!(
            "service '{}': program {program} does not exist (build the workspace first: cargo build --workspace --bins)",
            svc.name.get_ref()
        )));
    }
    let cwd = subdir(format!("replicas/{name}"))?;
    let mut spec = ChildSpec::new(&program, &cwd, ctx.opts.log_dir.join(format!("{name}.log")))
        .args(svc.command[1..].iter().map(|a| fill(a, &vars)));
    spec.env_remove = vec!["RUST_LOG".into(), "RUST_BACKTRACE".into()];
    for (k, v) in &svc.env {
        spec = spec.env(k, fill(v, &vars));
    }
    if let Some(var) = &svc.bug_env {
        spec = spec.env(var, ctx.opts.bugs.join(","));
    }
    let service = svc.name.get_ref();
    if let Ok(cgroups) = &ctx.cgroups {
        spec.cgroup = Some(limited_cgroup(cgroups, &ctx.memory_limits, service, name)?);
    }
    if let Ok(cgroups) = &ctx.cpu_cgroups {
        spec.cpu_cgroup = Some(limited_cgroup(cgroups, &ctx.cpu_limits, service, name)?);
    }
    Ok(ReplicaConfig {
        service: svc.name.get_ref().clone(),
        name: name.to_string(),
        port,
        spec,
        probes: Probes {
            readiness: svc.readiness.as_ref().map(ParsedProbe::parse),
            liveness: svc.liveness.as_ref().map(ParsedProbe::parse),
        },
        grace: svc.grace_period.get(),
        pre_stop: svc.pre_stop.as_ref().map(|p| match p {
            crate::spec::PreStopSpec::Sleep(d) => supervisor::PreStop::Sleep(d.get()),
            crate::spec::PreStopSpec::Http(path) => supervisor::PreStop::Http(path.clone()),
        }),
        bring_up,
        oom_kills_seen: Default::default(),
    })
}

/// The cgroup replica `replica` of `service` starts in for one kind of limit, with the service's
/// limit (set by a fault, remembered for replicas started later) already applied.
fn limited_cgroup<C: cgroup::ReplicaLimit>(
    cgroups: &C,
    limits: &Mutex<BTreeMap<String, C::Value>>,
    service: &str,
    replica: &str,
) -> Result<PathBuf> {
    let dir = cgroups
        .replica(replica)
        .map_err(BrownoutError::Environment)?;
    let limit = limits.lock().expect("limits lock").get(service).copied();
    if limit.is_some() {
        cgroups
            .set_limit(&dir, limit)
            .map_err(BrownoutError::Environment)?;
    }
    Ok(dir)
}

/// Starts a replica of the service's current revision; `bring_up`: one of the stack's first
/// replicas (see [`ReplicaConfig::bring_up`]), not a rollout's.
pub(super) fn start_replica(
    ctx: &SpawnContext,
    state: &mut ServiceState,
    evidence: &Evidence,
    bring_up: bool,
) -> Result<String> {
    let name = replica_name(state.spec.name.get_ref(), state.revision, state.next_index);
    let config = replica_config(ctx, &state.spec, &name, bring_up)?;
    evidence.endpoint(&format!("127.0.0.1:{}", config.port), &name);
    state.next_index += 1;
    let handle = supervisor::start(config, evidence.clone());
    state.replicas.push(Replica {
        handle,
        revision: state.revision,
        terminating: None,
    });
    Ok(name)
}

pub(super) fn terminate(state: &mut ServiceState, name: &str) {
    if let Some(r) = state
        .replicas
        .iter_mut()
        .find(|r| r.handle.name == name && r.terminating.is_none())
    {
        r.terminating = Some((Instant::now(), *r.handle.ready.borrow()));
        r.handle.request_stop();
    }
}

/// A service's replica set as a rollout drives it.
pub(super) struct LocalFleet {
    pub(super) ctx: Arc<SpawnContext>,
    pub(super) service: SharedService,
    pub(super) evidence: Evidence,
}

impl Fleet for LocalFleet {
    fn old_replicas(&self) -> Vec<String> {
        let s = self.service.lock().expect("service lock");
        s.replicas
            .iter()
            .filter(|r| r.revision < s.revision && r.terminating.is_none())
            .map(|r| r.handle.name.clone())
            .collect()
    }
    fn start_new(&mut self) -> std::result::Result<String, String> {
        let mut s = self.service.lock().expect("service lock");
        start_replica(&self.ctx, &mut s, &self.evidence, false).map_err(|e| e.to_string())
    }
    fn is_ready(&self, name: &str) -> bool {
        let s = self.service.lock().expect("service lock");
        s.replicas
            .iter()
            .any(|r| r.handle.name == name && *r.handle.ready.borrow())
    }
    fn crash_info(&self, name: &str) -> (u32, String) {
        let s = self.service.lock().expect("service lock");
        let restarts = s
            .replicas
            .iter()
            .find(|r| r.handle.name == name)
            .map_or(0, |r| r.handle.restarts.load(Ordering::SeqCst));
        (
            restarts,
            supervisor::last_log_line(&self.ctx.opts.log_dir.join(format!("{name}.log"))),
        )
    }
    fn terminate(&mut self, name: &str) {
        terminate(&mut self.service.lock().expect("service lock"), name);
    }
}

/// (replica name, host:port) of every replica Prometheus should scrape. Terminating replicas leave
/// at once, as Kubernetes endpoints drop terminating pods: Prometheus applies discovery changes only
/// every 5 s, and a replica that has exited must not look "down" meanwhile.
pub(super) fn scrape_targets(state: &ServiceState) -> Vec<(String, String)> {
    state
        .replicas
        .iter()
        .filter(|r| r.terminating.is_none())
        .map(|r| {
            (
                r.handle.name.clone(),
                format!("127.0.0.1:{}", r.handle.port),
            )
        })
        .collect()
}

/// Addresses the ingress should route to, and the fail-open set (all live replicas).
pub(super) fn routing(state: &ServiceState, propagation: Duration) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut all = Vec::new();
    for r in &state.replicas {
        let addr = format!("127.0.0.1:{}", r.handle.port);
        match r.terminating {
            // Endpoint removal reaches the ingress only after the propagation delay.
            Some((since, was_routed)) => {
                if was_routed && since.elapsed() < propagation {
                    ready.push(addr);
                }
            }
            None => {
                if *r.handle.ready.borrow() {
                    ready.push(addr.clone());
                }
                all.push(addr);
            }
        }
    }
    (ready, all)
}

/// A service's endpoints: the addresses of its ready replicas, plus terminating ones whose
/// removal has not propagated yet (as the ingress sees them), sorted.
pub(super) fn endpoints(state: &ServiceState, propagation: Duration) -> Vec<String> {
    let mut ready = routing(state, propagation).0;
    ready.sort();
    ready
}

pub(super) async fn wait_ready(service: &SharedService, opts: &DeployOptions) -> Result<()> {
    let watches: Vec<(String, tokio::sync::watch::Receiver<bool>)> = service
        .lock()
        .expect("service lock")
        .replicas
        .iter()
        .map(|r| (r.handle.name.clone(), r.handle.ready.clone()))
        .collect();
    for (name, mut ready) in watches {
        if !matches!(
            tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|r| *r)).await,
            Ok(Ok(_))
        ) {
            let log = opts.log_dir.join(format!("{name}.log"));
            return Err(BrownoutError::Environment(format!(
                "replica {name} did not become ready within {} s; last log line: {} (log: {})",
                READY_TIMEOUT.as_secs(),
                supervisor::last_log_line(&log),
                log.display()
            )));
        }
    }
    Ok(())
}

impl ServiceState {
    /// A service at its first revision, with no replica yet.
    pub(super) fn shared(spec: &ServiceSpec) -> SharedService {
        Arc::new(Mutex::new(ServiceState {
            spec: spec.clone(),
            revision: 1,
            previous: None,
            replicas: Vec::new(),
            next_index: 0,
            restarts: BTreeMap::new(),
        }))
    }
}

/// Stops every replica of `service` together and waits until they have stopped.
pub(super) async fn stop_all(service: &SharedService) {
    let mut handles: Vec<ReplicaHandle> = {
        let mut s = service.lock().expect("service lock");
        s.replicas.drain(..).map(|r| r.handle).collect()
    };
    for h in &handles {
        h.request_stop();
    }
    for h in handles.iter_mut() {
        h.wait_stopped().await;
    }
}
