//! A throwaway Prometheus on the local platform: scrapes every replica's metrics path each second
//! (targets discovered from files the platform keeps current) and evaluates the system's alert rules; the harness polls its alerts API.

use crate::error::{BrownoutError, Result};
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};
use crate::spec::Dur;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Prometheus {
    pub port: u16,
    child: ManagedChild,
}

/// One scrape job: a service's replicas, discovered from a file the platform rewrites whenever
/// the replica set changes (Prometheus' file-based service discovery).
pub struct ScrapeJob {
    pub service: String,
    pub metrics_path: String,
    pub targets_file: PathBuf,
}

/// Writes the targets file of a job atomically: (replica name, host:port) pairs.
pub fn write_targets(path: &Path, targets: &[(String, String)]) -> std::io::Result<()> {
    let groups: Vec<serde_json::Value> = targets
        .iter()
        .map(|(replica, addr)| serde_json::json!({"targets": [addr], "labels": {"replica": replica}}))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&groups)?)?;
    std::fs::rename(tmp, path)
}

fn config(jobs: &[ScrapeJob], rule_files: &[PathBuf], scrape: Dur, evaluation: Dur) -> String {
    let (scrape, evaluation) = (
        format!("{}ms", scrape.ms()),
        format!("{}ms", evaluation.ms()),
    );
    let mut out = format!(
        "# Written by brownout for one run.\nglobal:\n  scrape_interval: {scrape}\n  scrape_timeout: {scrape}\n  evaluation_interval: {evaluation}\nrule_files:\n"
    );
    for r in rule_files {
        out.push_str(&format!("  - '{}'\n", r.display()));
    }
    out.push_str("scrape_configs:\n");
    for j in jobs {
        out.push_str(&format!(
            "  - job_name: '{}'\n    metrics_path: '{}'\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            j.service,
            j.metrics_path,
            j.targets_file.display()
        ));
    }
    out
}

impl Prometheus {
    pub async fn start(
        program: &Path,
        dir: &Path,
        log_dir: &Path,
        jobs: &[ScrapeJob],
        rule_files: &[PathBuf],
        scrape_interval: Dur,
        evaluation_interval: Dur,
    ) -> Result<Prometheus> {
        let rule_files: Vec<PathBuf> = rule_files
            .iter()
            .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()))
            .collect();
        std::fs::create_dir_all(dir.join("data"))
            .map_err(crate::error::env_err("creating prometheus dir"))?;
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            config(jobs, &rule_files, scrape_interval, evaluation_interval),
        )
        .map_err(crate::error::env_err("writing prometheus.yml"))?;
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = crate::platform::local::tools::free_port()?;
            let spec = ChildSpec::new(program, dir, log_dir.join("prometheus.log")).args([
                format!("--config.file={}", conf.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--storage.tsdb.retention.time=1d".into(),
                "--log.level=warn".into(),
            ]);
            let child = spawn("prometheus", &spec)?;
            let mut prom = Prometheus { port, child };
            match prom.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return Ok(prom),
                Err(e) => {
                    last_err = e;
                    prom.child.stop(Signal::SIGKILL, Duration::from_secs(1));
                }
            }
        }
        Err(BrownoutError::Environment(format!(
            "Prometheus did not start: {last_err} (see {})",
            log_dir.join("prometheus.log").display()
        )))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, within: Duration) -> std::result::Result<(), String> {
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", self.url());
        let every = Duration::from_millis(100);
        self.child
            .wait_until(within, every, || {
                let (client, ready) = (client.clone(), ready.clone());
                async move {
                    match client.get(&ready).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("/-/ready answered {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await
            .map_err(|e| format!("prometheus {e}"))
    }

    pub async fn stop(&mut self) {
        self.child
            .stop_async(Signal::SIGTERM, Duration::from_secs(5))
            .await;
    }
}
