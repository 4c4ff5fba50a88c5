//! The local (embedded) platform: every service a set of supervised child processes on 127.0.0.1,
//! a throwaway PostgreSQL, a real nginx ingress that follows readiness, and a throwaway Prometheus.
//! Replica sets change at run time (rolling updates, rollbacks); a controller task keeps the nginx
//! upstreams and the Prometheus targets in step and forgets replicas once they have stopped.
//! Needs no Docker; everything it starts lives under one work dir and stops at teardown.
//!
//! Its rooms, in the order deploy starts them: [`stack`] (PostgreSQL, the fault-proxy program,
//! mtail), [`services`] (replicas, their configuration, what the ingress routes to), [`volumes`],
//! [`controller`] (keeps the ingress, the service addresses and the scrape targets current), then
//! nginx and Prometheus; `control` holds the fault controls. What deploy started is one value,
//! [`Deployed`].

pub mod cgroup;
mod control;
mod controller;
pub mod cpu_cgroup;
mod edge;
pub mod logcap;
mod nginx;
pub mod postgres;
pub mod process;
mod prometheus;
mod proxies;
pub mod rollout;
mod services;
mod stack;
pub mod supervisor;
pub use crate::tools;
mod volumes;
pub mod workdir;

use super::{DeployOptions, Endpoints, IngressSettings, Platform};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::spec::System;
use controller::{control, Front};
use nginx::Nginx;
use prometheus::{Prometheus, ScrapeJob};
use proxies::service_address;
use services::{endpoints, routing, scrape_targets, SharedService, SpawnContext};
use stack::{Stack, StackDirs};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workdir::WorkDir;

#[derive(Default)]
pub struct LocalPlatform {
    /// What deploy started; `None` before it and after teardown.
    deployed: Option<Deployed>,
    /// How the ingress was set up, for the report (kept after teardown).
    ingress_settings: Option<IngressSettings>,
    /// Threads that keep filled volumes full, until `free_volume` stops them.
    fillers: volumes::Fillers,
    /// The component logs' caps and how often they are checked; `None`: from the environment
    /// ([`logcap::LogCaps::from_env`]), checked every [`logcap::EVERY`].
    log_policy: Option<(logcap::LogCaps, Duration)>,
}

/// The system deploy started. Stored as soon as the stack under the services runs, then grown as
/// each later part comes up (services one by one, then the ingress and its controller, then
/// Prometheus), so that teardown stops exactly what started, also after a deploy that failed or
/// was cancelled half way.
struct Deployed {
    /// Dropped last: kills anything still running inside it, unmounts the volumes, removes it.
    workdir: WorkDir,
    /// What starting a replica needs (template values, cgroups, memory and CPU limits).
    ctx: Arc<SpawnContext>,
    stack: Stack,
    /// In start order; a service is here from before its first replica starts.
    services: Vec<(String, SharedService)>,
    /// `None` until nginx is up.
    front: Option<Front>,
    /// `None` until it is up.
    prometheus: Option<Prometheus>,
    /// Holds the component logs to their caps, from before the stack starts.
    logs: logcap::Janitor,
    /// nginx's pid for the janitor (its logs are rotated by rename and SIGUSR1); 0 when not running.
    nginx_pid: Arc<std::sync::atomic::AtomicU32>,
}

impl Deployed {
    fn service(&self, name: &str) -> Result<SharedService> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| BrownoutError::BadInput(format!("no service '{name}' in the system")))
    }
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

    /// The deployed system, or an error saying `what` when nothing is deployed.
    fn deployed(&self, what: &str) -> Result<&Deployed> {
        self.deployed
            .as_ref()
            .ok_or_else(|| BrownoutError::Environment(what.into()))
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
        let (caps, every) = match self.log_policy {
            Some(policy) => policy,
            None => (logcap::LogCaps::from_env()?, logcap::EVERY),
        };
        let workdir = WorkDir::create()?;
        let pg_dir = workdir.subdir("postgres")?;
        if system.file.database.is_some() {
            stack::memory_backed(&pg_dir, evidence)?;
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
            cpu_cgroups: cpu_cgroup::CpuCgroups::create(),
            cpu_limits: Mutex::new(BTreeMap::new()),
        });

        // PostgreSQL, the fault-proxy program and the edge exporter (mtail) depend on nothing:
        // they start together, all or none.
        let proxy_dir = workdir.subdir("fault-proxy")?;
        let mtail_dir = workdir.subdir("mtail")?;
        // The edge log exists (empty) before mtail and nginx start: mtail reads what nginx appends.
        let edge_log = opts.log_dir.join(nginx::EDGE_LOG);
        std::fs::write(&edge_log, "").map_err(crate::error::env_err("creating the edge log"))?;
        let dirs = StackDirs {
            postgres: &pg_dir,
            proxies: &proxy_dir,
            mtail: &mtail_dir,
            edge_log: &edge_log,
        };
        let prom_dir = workdir.subdir("prometheus")?;
        let nginx_dir = workdir.subdir("nginx")?;
        // nginx's own logs are rotated by rename and SIGUSR1 (mtail follows that as a rotation);
        // every other log by copy and truncate.
        let nginx_pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let reopened = logcap::Reopened {
            files: nginx::LOGS.iter().map(|l| l.to_string()).collect(),
            pid: nginx_pid.clone(),
        };
        let logs = logcap::Janitor::start_every(&opts.log_dir, caps, reopened, evidence, every);
        let stack = Stack::start(system, opts, dirs, evidence).await?;
        // From here on, whatever starts is stored as it starts: teardown stops it.
        let d = self.deployed.insert(Deployed {
            workdir,
            ctx: ctx.clone(),
            stack,
            services: Vec::new(),
            front: None,
            prometheus: None,
            logs,
            nginx_pid,
        });
        let database_addr = d.stack.database.as_ref().map(|db| {
            ctx.vars
                .lock()
                .expect("vars lock")
                .insert("database_url".into(), db.url.clone());
            db.addr()
        });
        let listen = d.stack.proxies.listen.clone();
        let client = d.stack.proxies.client.clone();
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

        let mut scrape_jobs = Vec::new();
        let mut job_files = Vec::new();
        let mut addresses = Vec::new();
        for spec in &system.file.services {
            let name = spec.name.get_ref().clone();
            let state = services::ServiceState::shared(spec);
            // Registered before starting, so teardown stops whatever started even if a later step fails.
            d.services.push((name.clone(), state.clone()));
            started(evidence, format!("service {name}"), async {
                {
                    let mut s = state.lock().expect("service lock");
                    for _ in 0..spec.replicas {
                        services::start_replica(&ctx, &mut s, evidence, true)?;
                    }
                }
                services::wait_ready(&state, opts).await
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
        let routed = d.service(&ingress_spec.service)?;
        let (_, all) = routing(&routed.lock().expect("service lock"), Duration::ZERO);
        let edge_targets = prom_dir.join("targets-ingress.json");
        prometheus::write_targets(&edge_targets, &[("ingress".into(), d.stack.edge.addr())])
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
        d.nginx_pid.store(nginx.pid(), Ordering::SeqCst);
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
        let controller = tokio::spawn(control(
            d.services.clone(),
            routed,
            propagation,
            nginx.clone(),
            job_files,
            (client, addresses),
            evidence.clone(),
        ));
        d.front = Some(Front { nginx, controller });

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
        d.prometheus = Some(prometheus);

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
        self.deployed.as_ref()?.stack.edge.counts().await.ok()
    }

    fn restarts(&self) -> Vec<crate::evidence::Restarts> {
        let mut all = BTreeMap::new();
        let services = self.deployed.iter().flat_map(|d| &d.services);
        for (service, svc) in services {
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
        self.fillers.stop().await;
        let Some(deployed) = self.deployed.take() else {
            return;
        };
        // Every part named, so a new one cannot be forgotten here.
        let Deployed {
            workdir,
            ctx,
            mut stack,
            services: mut replica_sets,
            front,
            prometheus,
            logs,
            nginx_pid,
        } = deployed;
        if let Some(front) = &front {
            front.controller.abort();
        }
        if let Some(mut p) = prometheus {
            p.stop().await;
        }
        if let Some(front) = front {
            nginx_pid.store(0, Ordering::SeqCst);
            front.nginx.lock().await.stop().await;
        }
        stack.stop_edge().await;
        // Services in reverse start order; all replicas of one service terminate together.
        while let Some((_, svc)) = replica_sets.pop() {
            services::stop_all(&svc).await;
        }
        // Proxies after their clients: open connections have closed with the replicas.
        stack.stop_under_services().await;
        // Every writer has stopped: the last pass holds the caps on what is left.
        tokio::task::block_in_place(|| logs.stop());
        if let Ok(cgroups) = &ctx.cgroups {
            tokio::task::block_in_place(|| cgroups.remove());
        }
        if let Ok(cgroups) = &ctx.cpu_cgroups {
            tokio::task::block_in_place(|| cgroups.remove());
        }
        // Dropping the work dir kills anything still running inside it, unmounts the volumes and
        // removes it.
        drop(workdir);
    }
}

#[cfg(test)]
mod tests;
