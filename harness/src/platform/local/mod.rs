//! The local (embedded) platform: every service a supervised child process on 127.0.0.1, a
//! throwaway PostgreSQL, a real nginx ingress that follows readiness, and a throwaway Prometheus.
//! Needs no Docker; everything it starts lives under one work dir and stops at teardown.

mod nginx;
mod prometheus;
pub mod supervisor;

use super::{DeployOptions, Endpoints, IngressSettings, Platform};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::postgres::TempPostgres;
use crate::process::ChildSpec;
use crate::spec::{parse_duration, ServiceSpec, System};
use crate::tools;
use crate::workdir::WorkDir;
use nginx::Nginx;
use prometheus::{Prometheus, ScrapeJob};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use supervisor::{ParsedProbe, Probes, ReplicaConfig, ReplicaHandle};

/// How long deploy waits for every replica to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LocalPlatform {
    workdir: Option<WorkDir>,
    postgres: Option<TempPostgres>,
    /// Replicas by service, in the order services were started.
    services: Vec<(String, Vec<ReplicaHandle>)>,
    ingress: Option<std::sync::Arc<tokio::sync::Mutex<Nginx>>>,
    ingress_task: Option<tokio::task::JoinHandle<()>>,
    ingress_settings: Option<IngressSettings>,
    prometheus: Option<Prometheus>,
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
}

/// Replaces `{key}` placeholders in a template.
fn fill(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl LocalPlatform {
    fn replica_config(
        &self,
        svc: &ServiceSpec,
        index: u32,
        vars: &BTreeMap<String, String>,
        opts: &DeployOptions,
    ) -> Result<ReplicaConfig> {
        let workdir = self.workdir.as_ref().expect("deployed");
        let name = format!("{}-{index}", svc.name.get_ref());
        let port = tools::free_port()?;
        let mut vars = vars.clone();
        vars.insert("listen_addr".into(), format!("127.0.0.1:{port}"));
        vars.insert("replica".into(), name.clone());
        for v in &svc.volumes {
            let dir = workdir.subdir(&format!("volumes/{name}/{}", v.name))?;
            vars.insert(format!("volume.{}", v.name), dir.display().to_string());
        }
        let program = fill(&svc.command[0], &vars);
        let cwd = workdir.subdir(&format!("replicas/{name}"))?;
        let mut spec = ChildSpec::new(&program, &cwd, opts.log_dir.join(format!("{name}.log")))
            .args(svc.command[1..].iter().map(|a| fill(a, &vars)));
        spec.env_remove = vec!["RUST_LOG".into(), "RUST_BACKTRACE".into()];
        for (k, v) in &svc.env {
            spec = spec.env(k, fill(v, &vars));
        }
        if let Some(var) = &svc.bug_env {
            spec = spec.env(var, opts.bugs.join(","));
        }
        if !std::path::Path::new(&program).is_file() {
            return Err(BrownoutError::Environment(format!(
                "service '{}': program {program} does not exist (build the workspace first: cargo build)",
                svc.name.get_ref()
            )));
        }
        Ok(ReplicaConfig {
            name,
            port,
            spec,
            probes: Probes {
                readiness: svc.readiness.as_ref().map(ParsedProbe::parse),
                liveness: svc.liveness.as_ref().map(ParsedProbe::parse),
            },
            grace: parse_duration(&svc.grace_period).unwrap_or(Duration::from_secs(30)),
        })
    }

    async fn wait_ready(replicas: &mut [ReplicaHandle], opts: &DeployOptions) -> Result<()> {
        for r in replicas.iter_mut() {
            let wait = r.ready.wait_for(|ready| *ready);
            match tokio::time::timeout(READY_TIMEOUT, wait).await {
                Ok(Ok(_)) => {}
                _ => {
                    let log = opts.log_dir.join(format!("{}.log", r.name));
                    return Err(BrownoutError::Environment(format!(
                        "replica {} did not become ready within {} s; last log line: {} (log: {})",
                        r.name,
                        READY_TIMEOUT.as_secs(),
                        supervisor::last_log_line(&log),
                        log.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Platform for LocalPlatform {
    async fn deploy(
        &mut self,
        system: &System,
        opts: &DeployOptions,
        evidence: &Evidence,
    ) -> Result<Endpoints> {
        Self::check_programs()?;
        let workdir = WorkDir::create()?;
        let pg_dir = workdir.subdir("postgres")?;
        self.workdir = Some(workdir);

        let mut vars = BTreeMap::new();
        vars.insert("bin_dir".to_string(), opts.bin_dir.display().to_string());
        let mut database_url = None;
        if let Some(db) = &system.file.database {
            let pg = TempPostgres::start_in(&pg_dir).await?;
            let url = pg.create_database(&db.name).await?;
            evidence.event(format!("postgres ready on 127.0.0.1:{}", pg.port));
            vars.insert("database_url".into(), url.clone());
            database_url = Some(url);
            self.postgres = Some(pg);
        }

        let mut scrape_jobs = Vec::new();
        let mut service_urls = Vec::new();
        for svc in &system.file.services {
            let mut replicas = Vec::new();
            for i in 0..svc.replicas {
                let config = self.replica_config(svc, i, &vars, opts)?;
                replicas.push(supervisor::start(config, evidence.clone()));
            }
            let name = svc.name.get_ref().clone();
            // Register before waiting, so teardown stops them even if waiting fails.
            self.services.push((name.clone(), replicas));
            let replicas = &mut self.services.last_mut().expect("just pushed").1;
            Self::wait_ready(replicas, opts).await?;
            evidence.event(format!("service {name}: {} replicas ready", replicas.len()));
            vars.insert(format!("service.{name}.url"), replicas[0].url());
            service_urls.push((name.clone(), replicas[0].url()));
            if let Some(path) = &svc.metrics_path {
                scrape_jobs.push(ScrapeJob {
                    service: name.clone(),
                    metrics_path: path.clone(),
                    targets: replicas
                        .iter()
                        .map(|r| (r.name.clone(), format!("127.0.0.1:{}", r.port)))
                        .collect(),
                });
            }
        }

        let workdir = self.workdir.as_ref().expect("set above");
        let ingress_spec = &system.file.ingress;
        let routed = &self
            .services
            .iter()
            .find(|(n, _)| *n == ingress_spec.service)
            .expect("validated")
            .1;
        let all: Vec<String> = routed
            .iter()
            .map(|r| format!("127.0.0.1:{}", r.port))
            .collect();
        let nginx = Nginx::start(
            &tools::find(&tools::NGINX)?,
            &workdir.subdir("nginx")?,
            &opts.log_dir,
            ingress_spec,
            &all,
        )
        .await?;
        let ingress_url = format!("http://127.0.0.1:{}", nginx.port);
        evidence.event(format!(
            "ingress (nginx) on {ingress_url}: upstreams [{}]",
            all.join(", ")
        ));
        let nginx = std::sync::Arc::new(tokio::sync::Mutex::new(nginx));
        self.ingress_settings = Some(IngressSettings {
            implementation: "nginx (local)".into(),
            retries: format!("proxy_next_upstream {}", ingress_spec.retries),
            connect_timeout: ingress_spec.connect_timeout.clone(),
            read_timeout: ingress_spec.read_timeout.clone(),
            fail_open: ingress_spec.fail_open,
        });
        // The ingress controller: follow readiness.
        let watchers: Vec<(String, tokio::sync::watch::Receiver<bool>)> = routed
            .iter()
            .map(|r| (format!("127.0.0.1:{}", r.port), r.ready.clone()))
            .collect();
        let controller_nginx = nginx.clone();
        let controller_evidence = evidence.clone();
        self.ingress_task = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let ready: Vec<String> = watchers
                    .iter()
                    .filter(|(_, rx)| *rx.borrow())
                    .map(|(a, _)| a.clone())
                    .collect();
                controller_nginx
                    .lock()
                    .await
                    .route_to(&ready, &all, &controller_evidence);
            }
        }));
        self.ingress = Some(nginx);

        let prometheus = Prometheus::start(
            &tools::find(&tools::PROMETHEUS)?,
            &workdir.subdir("prometheus")?,
            &opts.log_dir,
            &scrape_jobs,
            &system.rule_files,
            &system.file.prometheus.scrape_interval,
            &system.file.prometheus.evaluation_interval,
        )
        .await?;
        let prometheus_url = prometheus.url();
        evidence.event(format!("prometheus on {prometheus_url}"));
        self.prometheus = Some(prometheus);

        Ok(Endpoints {
            ingress_url,
            prometheus_url,
            database_url,
            service_urls,
        })
    }

    fn ingress_settings(&self) -> IngressSettings {
        self.ingress_settings.clone().unwrap_or(IngressSettings {
            implementation: "nginx (local)".into(),
            retries: "n/a".into(),
            connect_timeout: "n/a".into(),
            read_timeout: "n/a".into(),
            fail_open: false,
        })
    }

    fn restarts(&self) -> Vec<(String, u32)> {
        self.services
            .iter()
            .flat_map(|(_, rs)| {
                rs.iter()
                    .map(|r| (r.name.clone(), r.restarts.load(Ordering::SeqCst)))
            })
            .collect()
    }

    async fn teardown(&mut self) {
        if let Some(task) = self.ingress_task.take() {
            task.abort();
        }
        if let Some(mut p) = self.prometheus.take() {
            p.stop().await;
        }
        if let Some(nginx) = self.ingress.take() {
            nginx.lock().await.stop().await;
        }
        // Services in reverse start order, replicas of one service together.
        while let Some((_, mut replicas)) = self.services.pop() {
            for r in &replicas {
                r.request_stop();
            }
            for r in replicas.iter_mut() {
                r.wait_stopped().await;
            }
        }
        if let Some(mut pg) = self.postgres.take() {
            tokio::task::block_in_place(|| pg.stop());
        }
        // Dropping the work dir kills anything still running inside it and removes it.
        self.workdir = None;
    }
}
