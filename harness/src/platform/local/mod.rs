//! The local (embedded) platform: every service a set of supervised child processes on 127.0.0.1,
//! a throwaway PostgreSQL, a real nginx ingress that follows readiness, and a throwaway Prometheus.
//! Replica sets change at run time (rolling updates, rollbacks); a controller task keeps the nginx
//! upstreams and the Prometheus targets in step and forgets replicas once they have stopped.
//! Needs no Docker; everything it starts lives under one work dir and stops at teardown.

pub mod cgroup;
mod edge;
mod nginx;
pub mod postgres;
pub mod process;
mod prometheus;
mod proxies;
pub mod rollout;
pub mod supervisor;
pub use crate::tools;
pub mod workdir;

use super::{
    DatabaseControl, DatabaseHandle, DeployOptions, Endpoints, IngressSettings, MemoryLimiter,
    Platform, ProxyControl, RevisionChange, RolloutDriver, VolumeFiller,
};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::fault_proxy::client::Client as ProxyClient;
use crate::faults::toxic::Toxic;
use crate::spec::{ServiceSpec, System, ToxicSpec};
use edge::EdgeExporter;
use nginx::Nginx;
use postgres::TempPostgres;
use process::ChildSpec;
use prometheus::{Prometheus, ScrapeJob};
use proxies::{service_address, ProxyProcess};
use rollout::{Fleet, RolloutOutcome};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use supervisor::{ParsedProbe, Probes, ReplicaConfig, ReplicaHandle};
use workdir::WorkDir;

/// How long deploy waits for every replica to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the controller reconciles the ingress and the scrape targets.
const CONTROLLER_PERIOD: Duration = Duration::from_millis(100);

/// What starting a replica needs, shared with rollout tasks.
struct SpawnContext {
    workdir: PathBuf,
    /// Template values (`{bin_dir}`, `{database_url}`, `{service.<name>.url}`, `{proxy.<name>.addr}`).
    vars: Mutex<BTreeMap<String, String>>,
    opts: DeployOptions,
    evidence: Evidence,
    /// The replicas' memory cgroups (`None`: not root or no memory controller; the reason).
    cgroups: std::result::Result<cgroup::Cgroups, String>,
    /// Memory limits set by a `memory-limit` fault, by service: replicas started later get them too.
    memory_limits: Mutex<BTreeMap<String, u64>>,
}

use crate::fill::{fill_until_enospc, FILLER};
/// How often a filled volume is topped up to ENOSPC again while the fault lasts.
const TOP_UP_PERIOD: Duration = Duration::from_millis(200);

struct Replica {
    handle: ReplicaHandle,
    revision: u32,
    /// When termination began, and whether the ingress was routing to it then.
    terminating: Option<(Instant, bool)>,
}

/// One service: its current revision and its replicas (of any revision).
struct ServiceState {
    spec: ServiceSpec,
    revision: u32,
    /// The spec of the revision before the current one (for rollback).
    previous: Option<(ServiceSpec, u32)>,
    replicas: Vec<Replica>,
    next_index: u32,
    /// Each replica's restart count, kept after it is forgotten.
    restarts: BTreeMap<String, u32>,
}

type SharedService = Arc<Mutex<ServiceState>>;

#[derive(Default)]
pub struct LocalPlatform {
    workdir: Option<WorkDir>,
    postgres: Option<TempPostgres>,
    ctx: Option<Arc<SpawnContext>>,
    services: Vec<(String, SharedService)>,
    ingress: Option<Arc<tokio::sync::Mutex<Nginx>>>,
    controller: Option<tokio::task::JoinHandle<()>>,
    ingress_settings: Option<IngressSettings>,
    prometheus: Option<Prometheus>,
    /// mtail on the ingress's edge log: per-status counters for Prometheus and the report.
    edge: Option<EdgeExporter>,
    /// The `fault-proxy` program: the system's fault proxies and every service's address.
    proxies: Option<ProxyProcess>,
    /// Superuser URL of the system's database (on 127.0.0.1).
    database_url: Option<String>,
    /// Threads that keep filled volumes full, until `free_volume` stops them.
    fillers: Vec<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
}

impl LocalPlatform {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks that the programs a local run needs are installed; the error names the install command.
    pub fn check_programs() -> Result<()> {
        let programs = [
            &tools::POSTGRES,
            &tools::INITDB,
            &tools::NGINX,
            &tools::MTAIL,
            &tools::PROMETHEUS,
        ];
        let missing: Vec<&tools::Program> = programs
            .into_iter()
            .filter(|p| tools::find(p).is_err())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let reasons: Vec<String> = missing
            .iter()
            .filter_map(|p| tools::find(p).err())
            .map(|e| e.to_string())
            .collect();
        Err(BrownoutError::Environment(format!(
            "{}; {}",
            reasons.join("; "),
            tools::install_hint(&missing)
        )))
    }

    /// Volume directories of the live (not terminating) replicas of `service`.
    fn volume_dirs(&self, service: &str, volume: &str) -> Result<Vec<(String, PathBuf)>> {
        let ctx = self
            .ctx
            .as_ref()
            .ok_or_else(|| BrownoutError::Environment("not deployed".into()))?;
        let svc = self.service(service)?;
        let s = svc.lock().expect("service lock");
        Ok(s.replicas
            .iter()
            .filter(|r| r.terminating.is_none())
            .map(|r| {
                (
                    r.handle.name.clone(),
                    ctx.workdir
                        .join(format!("volumes/{}/{volume}", r.handle.name)),
                )
            })
            .collect())
    }

    /// Stops the threads that keep volumes full and waits for them (each ends within a period).
    async fn stop_fillers(&mut self) {
        let fillers = std::mem::take(&mut self.fillers);
        for (stop, _) in &fillers {
            stop.store(true, Ordering::SeqCst);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for (_, thread) in fillers {
                let _ = thread.join();
            }
        })
        .await;
    }

    fn service(&self, name: &str) -> Result<SharedService> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| BrownoutError::BadInput(format!("no service '{name}' in the system")))
    }
}

/// Replaces `{key}` placeholders in a template.
fn fill(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Replica names: `checkout-0` for the first revision, `checkout-r2-0` for the second, …
fn replica_name(service: &str, revision: u32, index: u32) -> String {
    if revision <= 1 {
        format!("{service}-{index}")
    } else {
        format!("{service}-r{revision}-{index}")
    }
}

fn replica_config(
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
            mount_volume(&dir, size.0, name, &v.name, &ctx.evidence)?;
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
    if let Ok(cgroups) = &ctx.cgroups {
        let dir = cgroups.replica(name).map_err(BrownoutError::Environment)?;
        let limit = ctx
            .memory_limits
            .lock()
            .expect("limits lock")
            .get(svc.name.get_ref())
            .copied();
        if limit.is_some() {
            cgroups
                .set_limit(&dir, limit)
                .map_err(BrownoutError::Environment)?;
        }
        spec.cgroup = Some(dir);
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

/// Mounts a tmpfs of `bytes` at `dir`: a real filesystem that really fills up. Without the
/// privilege to mount (not root), the volume stays a plain directory and the evidence says so; a
/// disk-full fault then refuses to run.
fn mount_volume(
    dir: &std::path::Path,
    bytes: u64,
    replica: &str,
    volume: &str,
    evidence: &Evidence,
) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    let data = format!("size={bytes},mode=0777");
    match mount(
        Some("brownout"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            evidence.event(format!(
                "volume {volume} of {replica}: not size-limited (mounting a tmpfs needs root); disk-full faults cannot run"
            ));
            Ok(())
        }
        Err(e) => Err(BrownoutError::Environment(format!(
            "cannot mount a {bytes}-byte tmpfs for volume {volume} of {replica} at {}: {e}",
            dir.display()
        ))),
    }
}

/// Runs a component's start; if it started, records how long it took to be ready (the start-up
/// breakdown `just bench startup` prints).
async fn started<T>(
    evidence: &Evidence,
    component: impl Into<String>,
    start: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let t = Instant::now();
    let result = start.await;
    if result.is_ok() {
        evidence.component_up(component, t);
    }
    result
}

/// Mounts a tmpfs (no size limit beyond the kernel's default, half the RAM) at `dir` for the
/// throwaway PostgreSQL cluster: it runs with fsync off, so a disk only makes `initdb` slow (it
/// writes 39 MB: 1.8 s on a busy disk, 0.45 s in memory). Unmounted with the work dir, like the
/// volumes. Without the privilege to mount, the cluster stays on disk and the evidence says so.
fn memory_backed(dir: &std::path::Path, evidence: &Evidence) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    match mount(
        Some("brownout"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            evidence.event(
                "postgres: data directory on disk (mounting a tmpfs needs root); start-up is slower"
                    .to_string(),
            );
            Ok(())
        }
        Err(e) => Err(BrownoutError::Environment(format!(
            "cannot mount a tmpfs for PostgreSQL at {}: {e}",
            dir.display()
        ))),
    }
}

fn is_mount_point(dir: &std::path::Path) -> bool {
    crate::platform::local::workdir::mounts_under(dir)
        .iter()
        .any(|m| m == dir)
}

/// Appends to a filler file in `dir` until the kernel answers ENOSPC; returns the bytes written.
/// Starts one replica of the service's current revision.
/// Starts a replica of the service's current revision; `bring_up`: one of the stack's first
/// replicas (see [`ReplicaConfig::bring_up`]), not a rollout's.
fn start_replica(
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

fn terminate(state: &mut ServiceState, name: &str) {
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
struct LocalFleet {
    ctx: Arc<SpawnContext>,
    service: SharedService,
    evidence: Evidence,
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
fn scrape_targets(state: &ServiceState) -> Vec<(String, String)> {
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
fn routing(state: &ServiceState, propagation: Duration) -> (Vec<String>, Vec<String>) {
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
fn endpoints(state: &ServiceState, propagation: Duration) -> Vec<String> {
    let mut ready = routing(state, propagation).0;
    ready.sort();
    ready
}

/// The controller loop: forget stopped replicas, keep nginx upstreams, the service addresses'
/// endpoints (`(proxy name, service)` on the fault-proxy program) and scrape targets current.
async fn control(
    services: Vec<(String, SharedService)>,
    routed: SharedService,
    propagation: Duration,
    nginx: Arc<tokio::sync::Mutex<Nginx>>,
    jobs: Vec<(SharedService, PathBuf)>,
    (client, addresses): (ProxyClient, Vec<(String, SharedService)>),
    evidence: Evidence,
) {
    let mut tick = tokio::time::interval(CONTROLLER_PERIOD);
    let mut written: BTreeMap<PathBuf, Vec<(String, String)>> = BTreeMap::new();
    let mut synced: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        tick.tick().await;
        for (_, svc) in &services {
            let mut s = svc.lock().expect("service lock");
            let finished: Vec<(String, u32)> = s
                .replicas
                .iter()
                // A terminated replica is forgotten only once its endpoint removal has reached
                // the ingress (propagation delay), even if its process exited earlier.
                .filter(|r| {
                    r.handle.is_finished()
                        && r.terminating
                            .is_none_or(|(since, _)| since.elapsed() >= propagation)
                })
                .map(|r| {
                    (
                        r.handle.name.clone(),
                        r.handle.restarts.load(Ordering::SeqCst),
                    )
                })
                .collect();
            for (name, restarts) in finished {
                s.restarts.insert(name.clone(), restarts);
                s.replicas.retain(|r| r.handle.name != name);
            }
        }
        let (ready, all) = routing(&routed.lock().expect("service lock"), propagation);
        nginx.lock().await.route_to(&ready, &all, &evidence);
        for (proxy, svc) in &addresses {
            let now = endpoints(&svc.lock().expect("service lock"), propagation);
            if synced.get(proxy) == Some(&now) {
                continue;
            }
            // Not marked synced when the call fails: the next tick tries again.
            match client.set_upstreams(proxy, &now).await {
                Ok(()) => {
                    evidence.event(format!("{proxy} endpoints: [{}]", now.join(", ")));
                    synced.insert(proxy.clone(), now);
                }
                Err(e) => evidence.event(format!("{proxy} endpoints not updated: {e}")),
            }
        }
        for (svc, file) in &jobs {
            let targets = scrape_targets(&svc.lock().expect("service lock"));
            if written.get(file) != Some(&targets) {
                let names: Vec<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
                evidence.event(format!(
                    "scrape targets {}: [{}]",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    names.join(", ")
                ));
                if let Err(e) = prometheus::write_targets(file, &targets) {
                    evidence.event(format!(
                        "cannot write scrape targets {}: {e}",
                        file.display()
                    ));
                }
                written.insert(file.clone(), targets);
            }
        }
    }
}

async fn wait_ready(service: &SharedService, opts: &DeployOptions) -> Result<()> {
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

impl Platform for LocalPlatform {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn deploy(
        &mut self,
        system: &System,
        opts: &DeployOptions,
        evidence: &Evidence,
    ) -> Result<Endpoints> {
        Self::check_programs()?;
        let workdir = WorkDir::create()?;
        let pg_dir = workdir.subdir("postgres")?;
        if system.file.database.is_some() {
            memory_backed(&pg_dir, evidence)?;
        }
        let mut vars = BTreeMap::new();
        vars.insert("bin_dir".to_string(), opts.bin_dir.display().to_string());
        let ctx = Arc::new(SpawnContext {
            workdir: workdir.path().to_path_buf(),
            vars: Mutex::new(vars),
            opts: opts.clone(),
            evidence: evidence.clone(),
            cgroups: cgroup::Cgroups::create(),
            memory_limits: Mutex::new(BTreeMap::new()),
        });
        self.workdir = Some(workdir);
        self.ctx = Some(ctx.clone());

        // PostgreSQL, the fault-proxy program and the edge exporter (mtail) depend on nothing:
        // they start together. Each one that started is kept (and torn down) even if another
        // failed.
        let workdir = self.workdir.as_ref().expect("set above");
        let proxy_dir = workdir.subdir("fault-proxy")?;
        let mtail_dir = workdir.subdir("mtail")?;
        // The edge log exists (empty) before mtail and nginx start: mtail reads what nginx appends.
        let edge_log = opts.log_dir.join("ingress-edge.log");
        std::fs::write(&edge_log, "").map_err(crate::error::env_err("creating the edge log"))?;
        // The fault-proxy program: the system's proxies (first, so each keeps its seed), then one
        // address per service. Services may name any of them in their config, whatever the order
        // they start in.
        let names: Vec<String> = system
            .file
            .proxies
            .iter()
            .map(|p| p.name.clone())
            .chain(
                system
                    .file
                    .services
                    .iter()
                    .map(|s| service_address(s.name.get_ref())),
            )
            .collect();
        let database = async {
            let Some(db) = &system.file.database else {
                return Ok(None);
            };
            let pg = started(evidence, "postgres", TempPostgres::start_in(&pg_dir)).await?;
            let url = pg.create_database(&db.name).await;
            Ok::<_, BrownoutError>(Some((pg, url)))
        };
        let proxy_program = opts.bin_dir.join("fault-proxy");
        let proxies = started(
            evidence,
            "fault-proxy",
            ProxyProcess::start(&proxy_program, &proxy_dir, &opts.log_dir, &names, opts.seed),
        );
        let edge = started(evidence, "mtail", async {
            EdgeExporter::start(
                &tools::find(&tools::MTAIL)?,
                &mtail_dir,
                &opts.log_dir,
                &edge_log,
            )
            .await
        });
        let (database, proxies, edge) = tokio::join!(database, proxies, edge);
        let mut database_addr = None;
        let mut first_error = None;
        match database {
            Ok(Some((pg, url))) => {
                let port = pg.port;
                self.postgres = Some(pg);
                match url {
                    Ok(url) => {
                        evidence.event(format!("postgres ready on 127.0.0.1:{port}"));
                        ctx.vars
                            .lock()
                            .expect("vars lock")
                            .insert("database_url".into(), url.clone());
                        self.database_url = Some(url);
                        database_addr = Some(format!("127.0.0.1:{port}"));
                    }
                    Err(e) => first_error = Some(e),
                }
            }
            Ok(None) => {}
            Err(e) => first_error = Some(e),
        }
        match proxies {
            Ok(p) => self.proxies = Some(p),
            Err(e) => first_error = first_error.or(Some(e)),
        }
        match edge {
            Ok(e) => {
                evidence.event(format!("edge exporter (mtail) on {}", e.addr()));
                self.edge = Some(e);
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let proxy_process = self.proxies.as_ref().expect("started above");
        let listen = proxy_process.listen.clone();
        let client = proxy_process.client.clone();
        let listen_of = |name: &str| -> Result<String> {
            listen.get(name).cloned().ok_or_else(|| {
                BrownoutError::Environment(format!("fault-proxy did not start proxy {name}"))
            })
        };
        let mut service_urls = Vec::new();
        for spec in &system.file.services {
            let name = spec.name.get_ref();
            let url = format!("http://{}", listen_of(&service_address(name))?);
            ctx.vars
                .lock()
                .expect("vars lock")
                .insert(format!("service.{name}.url"), url.clone());
            service_urls.push((name.clone(), url));
        }
        let mut proxy_addrs = Vec::new();
        for p in &system.file.proxies {
            let upstream = match (p.upstream.as_str(), &database_addr) {
                ("database", Some(addr)) => addr.clone(),
                (service, _) => listen_of(&service_address(service))?,
            };
            client
                .set_upstreams(&p.name, std::slice::from_ref(&upstream))
                .await?;
            let addr = listen_of(&p.name)?;
            evidence.event(format!(
                "fault proxy {} on {addr} → {} ({upstream})",
                p.name, p.upstream
            ));
            ctx.vars
                .lock()
                .expect("vars lock")
                .insert(format!("proxy.{}.addr", p.name), addr.clone());
            proxy_addrs.push((p.name.clone(), addr));
        }

        let workdir = self.workdir.as_ref().expect("set above");
        let prom_dir = workdir.subdir("prometheus")?;
        let nginx_dir = workdir.subdir("nginx")?;
        let mut scrape_jobs = Vec::new();
        let mut job_files = Vec::new();
        let mut addresses = Vec::new();
        for spec in &system.file.services {
            let name = spec.name.get_ref().clone();
            let state = Arc::new(Mutex::new(ServiceState {
                spec: spec.clone(),
                revision: 1,
                previous: None,
                replicas: Vec::new(),
                next_index: 0,
                restarts: BTreeMap::new(),
            }));
            // Registered before starting, so teardown stops whatever started even if a later step fails.
            self.services.push((name.clone(), state.clone()));
            started(evidence, format!("service {name}"), async {
                {
                    let mut s = state.lock().expect("service lock");
                    for _ in 0..spec.replicas {
                        start_replica(&ctx, &mut s, evidence, true)?;
                    }
                }
                wait_ready(&state, opts).await
            })
            .await?;
            // The service address routes to the ready replicas before anything that needs it starts.
            let ready = endpoints(&state.lock().expect("service lock"), Duration::ZERO);
            client
                .set_upstreams(&service_address(&name), &ready)
                .await?;
            evidence.event(format!(
                "service {name}: {} replicas ready; service address {} → [{}]",
                spec.replicas,
                listen_of(&service_address(&name))?,
                ready.join(", ")
            ));
            addresses.push((service_address(&name), state.clone()));
            if let Some(path) = &spec.metrics_path {
                let file = prom_dir.join(format!("targets-{name}.json"));
                let targets = scrape_targets(&state.lock().expect("service lock"));
                prometheus::write_targets(&file, &targets)
                    .map_err(crate::error::env_err("writing scrape targets"))?;
                scrape_jobs.push(ScrapeJob {
                    service: name.clone(),
                    metrics_path: path.clone(),
                    targets_file: file.clone(),
                });
                job_files.push((state.clone(), file));
            }
        }

        let ingress_spec = &system.file.ingress;
        let routed = self.service(&ingress_spec.service)?;
        let (_, all) = routing(&routed.lock().expect("service lock"), Duration::ZERO);
        let edge = self.edge.as_ref().expect("started above");
        let edge_targets = prom_dir.join("targets-ingress.json");
        prometheus::write_targets(&edge_targets, &[("ingress".into(), edge.addr())])
            .map_err(crate::error::env_err("writing scrape targets"))?;
        scrape_jobs.push(ScrapeJob {
            service: "brownout-edge".into(),
            metrics_path: "/metrics".into(),
            targets_file: edge_targets,
        });
        let nginx = started(
            evidence,
            "nginx",
            Nginx::start(
                &tools::find(&tools::NGINX)?,
                &nginx_dir,
                &opts.log_dir,
                &edge_log,
                ingress_spec,
                &all,
            ),
        )
        .await?;
        let ingress_url = format!("http://127.0.0.1:{}", nginx.port);
        evidence.event(format!(
            "ingress (nginx) on {ingress_url}: upstreams [{}]",
            all.join(", ")
        ));
        let nginx = Arc::new(tokio::sync::Mutex::new(nginx));
        let propagation = ingress_spec.propagation_delay.get();
        self.ingress_settings = Some(IngressSettings {
            implementation: "nginx (local)".into(),
            retries: format!("proxy_next_upstream {}", ingress_spec.retries),
            connect_timeout: ingress_spec.connect_timeout.to_string(),
            read_timeout: ingress_spec.read_timeout.to_string(),
            fail_open: ingress_spec.fail_open,
            propagation_delay: ingress_spec.propagation_delay.to_string(),
        });
        self.controller = Some(tokio::spawn(control(
            self.services.clone(),
            routed,
            propagation,
            nginx.clone(),
            job_files,
            (client, addresses),
            evidence.clone(),
        )));
        self.ingress = Some(nginx);

        let prometheus = started(
            evidence,
            "prometheus",
            Prometheus::start(
                &tools::find(&tools::PROMETHEUS)?,
                &prom_dir,
                &opts.log_dir,
                &scrape_jobs,
                &system.rule_files,
                system.file.prometheus.scrape_interval,
                system.file.prometheus.evaluation_interval,
            ),
        )
        .await?;
        let prometheus_url = prometheus.url();
        evidence.event(format!("prometheus on {prometheus_url}"));
        self.prometheus = Some(prometheus);

        Ok(Endpoints {
            ingress_url,
            prometheus_url,
            service_urls,
            proxies: proxy_addrs,
        })
    }

    fn ingress_settings(&self) -> IngressSettings {
        self.ingress_settings
            .clone()
            .unwrap_or_else(|| IngressSettings {
                implementation: "nginx (local)".into(),
                retries: "n/a".into(),
                connect_timeout: "n/a".into(),
                read_timeout: "n/a".into(),
                fail_open: false,
                propagation_delay: "n/a".into(),
            })
    }

    async fn edge_counts(&self) -> Option<Vec<crate::evidence::EdgeCount>> {
        self.edge.as_ref()?.counts().await.ok()
    }

    fn restarts(&self) -> Vec<crate::evidence::Restarts> {
        let mut all = BTreeMap::new();
        for (service, svc) in &self.services {
            let s = svc.lock().expect("service lock");
            all.extend(s.restarts.iter().map(|(n, c)| ((service, n.clone()), *c)));
            all.extend(s.replicas.iter().map(|r| {
                (
                    (service, r.handle.name.clone()),
                    r.handle.restarts.load(Ordering::SeqCst),
                )
            }));
        }
        all.into_iter()
            .map(|((service, replica), count)| crate::evidence::Restarts {
                service: service.clone(),
                replica,
                count,
            })
            .collect()
    }

    async fn teardown(&mut self) {
        self.stop_fillers().await;
        if let Some(task) = self.controller.take() {
            task.abort();
        }
        if let Some(mut p) = self.prometheus.take() {
            p.stop().await;
        }
        if let Some(nginx) = self.ingress.take() {
            nginx.lock().await.stop().await;
        }
        if let Some(mut e) = self.edge.take() {
            e.stop().await;
        }
        // Services in reverse start order; all replicas of one service terminate together.
        while let Some((_, svc)) = self.services.pop() {
            let mut handles: Vec<ReplicaHandle> = {
                let mut s = svc.lock().expect("service lock");
                s.replicas.drain(..).map(|r| r.handle).collect()
            };
            for h in &handles {
                h.request_stop();
            }
            for h in handles.iter_mut() {
                h.wait_stopped().await;
            }
        }
        // Proxies after their clients: open connections have closed with the replicas.
        if let Some(mut p) = self.proxies.take() {
            p.stop().await;
        }
        if let Some(mut pg) = self.postgres.take() {
            tokio::task::block_in_place(|| pg.stop());
        }
        if let Some(Ok(cgroups)) = self.ctx.as_ref().map(|c| &c.cgroups) {
            tokio::task::block_in_place(|| cgroups.remove());
        }
        // Dropping the work dir kills anything still running inside it, unmounts the volumes and
        // removes it.
        self.workdir = None;
    }
}

impl LocalPlatform {
    fn proxy_client(&self) -> Result<&ProxyClient> {
        self.proxies
            .as_ref()
            .map(|p| &p.client)
            .ok_or_else(|| BrownoutError::Environment("no fault proxy is running".into()))
    }
}

impl ProxyControl for LocalPlatform {
    async fn add_toxic(&mut self, proxy: &str, toxic: Toxic) -> Result<()> {
        let spec = ToxicSpec::from(&toxic);
        self.proxy_client()?.add_toxic(proxy, &spec).await
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
        super::connect_postgres(self.database_url.as_deref()).await
    }
}

impl DatabaseControl for LocalPlatform {
    async fn stop_database(&mut self, evidence: &Evidence) -> Result<()> {
        let pg = self.postgres.as_mut().ok_or_else(|| {
            BrownoutError::BadInput(
                "fault database-down needs a [database] in the system file".into(),
            )
        })?;
        tokio::task::block_in_place(|| pg.stop());
        evidence.event(format!(
            "postgres stopped (fast shutdown): 127.0.0.1:{} refuses connections",
            pg.port
        ));
        Ok(())
    }

    async fn start_database(&mut self, evidence: &Evidence) -> Result<()> {
        let pg = self.postgres.as_mut().ok_or_else(|| {
            BrownoutError::BadInput(
                "fault database-down needs a [database] in the system file".into(),
            )
        })?;
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
        let ctx = self
            .ctx
            .clone()
            .ok_or_else(|| BrownoutError::Environment("nothing is deployed".into()))?;
        let cgroups = ctx.cgroups.as_ref().map_err(|why| {
            BrownoutError::Environment(format!("fault memory-limit: {why}; run brownout as root"))
        })?;
        let svc = self
            .services
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| {
                BrownoutError::BadInput(format!("no service '{service}' is deployed"))
            })?;
        {
            let mut limits = ctx.memory_limits.lock().expect("limits lock");
            match bytes {
                Some(b) => limits.insert(service.to_string(), b),
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
                .set_limit(&dir, bytes)
                .map_err(BrownoutError::Environment)?;
            if bytes.is_none() {
                let kills = cgroups.oom_kills(&dir);
                if kills > 0 {
                    evidence.event(format!(
                        "{name}: OOM-killed {kills} times under its memory limit"
                    ));
                }
            }
        }
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

impl VolumeFiller for LocalPlatform {
    async fn fill_volume(
        &mut self,
        service: &str,
        volume: &str,
        evidence: &Evidence,
    ) -> Result<()> {
        for (replica, dir) in self.volume_dirs(service, volume)? {
            if !is_mount_point(&dir) {
                return Err(BrownoutError::Environment(format!(
                    "disk-full: volume {volume} of {replica} is not a size-limited filesystem (mounting a tmpfs needs root); run brownout as root"
                )));
            }
            let target = dir.clone();
            let written = tokio::task::spawn_blocking(move || fill_until_enospc(&target))
                .await
                .map_err(|e| {
                    BrownoutError::Environment(format!("disk-full: filler task failed: {e}"))
                })?
                .map_err(|e| {
                    BrownoutError::Environment(format!(
                        "disk-full: filling {volume} of {replica} failed before ENOSPC: {e}"
                    ))
                })?;
            evidence.event(format!(
                "volume {volume} of {replica} full: {:.1} MiB written, then ENOSPC",
                written as f64 / (1 << 20) as f64
            ));
            // Keep it full, like a runaway writer: whatever the app frees (e.g. by pruning old
            // files) is taken again within TOP_UP_PERIOD, until the fault is healed.
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (d, s) = (dir.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    std::thread::sleep(TOP_UP_PERIOD);
                    if !s.load(Ordering::SeqCst) {
                        let _ = fill_until_enospc(&d);
                    }
                }
            });
            self.fillers.push((stop, thread));
        }
        Ok(())
    }

    async fn free_volume(&mut self, service: &str, volume: &str, evidence: &Evidence) {
        self.stop_fillers().await;
        let Ok(dirs) = self.volume_dirs(service, volume) else {
            return;
        };
        for (replica, dir) in dirs {
            if std::fs::remove_file(dir.join(FILLER)).is_ok() {
                evidence.event(format!(
                    "volume {volume} of {replica}: filler removed, space is back"
                ));
            }
        }
    }
}

impl RolloutDriver for LocalPlatform {
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        progress_deadline: Duration,
        evidence: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
        let ctx = self
            .ctx
            .clone()
            .ok_or_else(|| BrownoutError::Environment("rollout before deploy".into()))?;
        let shared = self.service(service)?;
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
        let Ok(shared) = self.service(service) else {
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
        let Some(ctx) = self.ctx.clone() else {
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
