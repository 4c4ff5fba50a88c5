//! The lifecycle on a stand-in platform: a local HTTP server answers every request 200 (the
//! ingress) and every control call is recorded, so a whole run goes through in a few seconds.

use super::*;
use crate::fault_proxy::Toxic;
use crate::platform::{
    CpuLimiter, DatabaseControl, DatabaseHandle, IngressSettings, MemoryLimiter, ProxyControl,
    RevisionChange, RolloutDriver, RolloutOutcome, VolumeFiller,
};
use crate::spec::Phase;

/// A platform whose system is one HTTP server answering 200 to everything.
#[derive(Default)]
struct Stage {
    /// Deploy fails (with this message) instead.
    deploy_fails: Option<String>,
    calls: Vec<String>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl ProxyControl for Stage {
    async fn add_toxic(&mut self, proxy: &str, _toxic: Toxic) -> Result<()> {
        self.calls.push(format!("add_toxic {proxy}"));
        Ok(())
    }
    async fn clear_toxics(&mut self, proxy: &str) -> Result<()> {
        self.calls.push(format!("clear_toxics {proxy}"));
        Ok(())
    }
    async fn set_down(&mut self, proxy: &str, down: bool) -> Result<()> {
        self.calls.push(format!("set_down {proxy} {down}"));
        Ok(())
    }
}

impl DatabaseHandle for Stage {
    async fn connect_database(&self) -> Result<Option<sqlx::PgConnection>> {
        Ok(None)
    }
}

impl DatabaseControl for Stage {
    async fn stop_database(&mut self, _: &Evidence) -> Result<()> {
        Ok(())
    }
    async fn start_database(&mut self, _: &Evidence) -> Result<()> {
        Ok(())
    }
}

impl MemoryLimiter for Stage {
    async fn limit_memory(&mut self, _: &str, _: Option<u64>, _: &Evidence) -> Result<()> {
        Ok(())
    }
}

impl CpuLimiter for Stage {
    async fn limit_cpu(&mut self, _: &str, _: Option<u32>, _: &Evidence) -> Result<()> {
        Ok(())
    }
}

impl VolumeFiller for Stage {
    async fn fill_volume(&mut self, _: &str, _: &str, _: &Evidence) -> Result<()> {
        Ok(())
    }
    async fn free_volume(&mut self, _: &str, _: &str, _: &Evidence) {}
}

impl RolloutDriver for Stage {
    async fn start_rollout(
        &mut self,
        _: &str,
        _: &RevisionChange,
        _: Duration,
        _: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
        Ok(tokio::spawn(async {
            RolloutOutcome::Complete {
                took: Duration::ZERO,
            }
        }))
    }
    async fn rollback(&mut self, _: &str, _: &Evidence) {}
}

impl Platform for Stage {
    fn name(&self) -> &'static str {
        "stage"
    }

    async fn deploy(
        &mut self,
        _system: &System,
        _opts: &DeployOptions,
        _evidence: &Evidence,
    ) -> Result<Endpoints> {
        self.calls.push("deploy".into());
        if let Some(why) = &self.deploy_fails {
            return Err(BrownoutError::Environment(why.clone()));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|| async { "ok" });
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        Ok(Endpoints {
            ingress_url: format!("http://{addr}"),
            prometheus_url: format!("http://{addr}"),
            service_urls: Vec::new(),
            proxies: Vec::new(),
        })
    }

    fn ingress_settings(&self) -> IngressSettings {
        IngressSettings {
            implementation: "stage".into(),
            retries: "off".into(),
            connect_timeout: "1s".into(),
            read_timeout: "1s".into(),
            fail_open: false,
            propagation_delay: "0s".into(),
        }
    }

    async fn edge_counts(&self) -> Option<Vec<crate::evidence::EdgeCount>> {
        None
    }

    fn restarts(&self) -> Vec<Restarts> {
        Vec::new()
    }

    async fn teardown(&mut self) {
        self.calls.push("teardown".into());
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// pool-exhaustion's load and system, with three one-second phases (a latency toxic on the
/// payments proxy in the middle one) and no expectations.
fn short_scenario() -> Scenario {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut s = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
    let toxic: FaultSpec = toml::from_str(
        "kind = 'proxy'\nproxy = 'payments'\n[toxic]\nkind = 'latency'\nlatency = '10ms'",
    )
    .unwrap();
    let phase = |name: &str, fault: Option<FaultSpec>| Phase {
        name: name.into(),
        duration: Duration::from_secs(1),
        fault,
    };
    s.phases = vec![
        phase("before", None),
        phase("slow", Some(toxic)),
        phase("after", None),
    ];
    s.expectations = Vec::new();
    s
}

fn options(reports: &Path) -> RunOptions {
    RunOptions {
        bugs: Vec::new(),
        reports_dir: reports.to_path_buf(),
        bin_dir: PathBuf::new(),
        baseline: None,
    }
}

/// A whole run: the windows are the scenario's phases, each with the fault that opened it, the
/// fault injected and healed inside the run, the platform torn down last, the report written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_opens_the_scenarios_phases_as_windows_with_their_faults() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario();
    let mut stage = Stage::default();
    let (_tx, rx) = watch::channel(false);
    let outcome = run(&scenario, &mut stage, &options(dir.path()), rx)
        .await
        .unwrap();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let r = &outcome.report;
    assert_eq!(r.verdict, report::RunVerdict::Pass);
    let phases: Vec<(&str, Option<&str>)> = r
        .phases
        .iter()
        .map(|p| (p.name.as_str(), p.fault.as_deref()))
        .collect();
    assert_eq!(
        phases,
        [("before", None), ("slow", Some("proxy")), ("after", None)]
    );
    assert!(r.phases.iter().all(|p| p.sent > 0), "every window had load");
    assert!(r.stack_up_s.is_some());
    assert_eq!(r.load.model, crate::plan::Pacing::Constant.describe());
    assert_eq!(
        stage.calls,
        [
            "deploy",
            "add_toxic payments",
            "clear_toxics payments",
            "teardown"
        ]
    );
    assert!(outcome.report_dir.join("report.json").is_file());
    assert!(outcome
        .report_dir
        .starts_with(dir.path().join("pool-exhaustion")));
}

/// A run whose system never comes up is still reported (aborted, with the reason, never up)
/// and still torn down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_deploy_is_reported_aborted_and_torn_down() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario();
    let mut stage = Stage {
        deploy_fails: Some("no room on the stage".into()),
        ..Stage::default()
    };
    let (_tx, rx) = watch::channel(false);
    let outcome = run(&scenario, &mut stage, &options(dir.path()), rx)
        .await
        .unwrap();
    assert!(outcome.error.is_some());
    let r = &outcome.report;
    assert_eq!(r.verdict, report::RunVerdict::Aborted);
    assert!(
        r.aborted
            .as_deref()
            .unwrap()
            .contains("no room on the stage"),
        "{:?}",
        r.aborted
    );
    assert_eq!(r.stack_up_s, None);
    assert!(r.phases.is_empty() && r.expectations.is_empty());
    assert_eq!(stage.calls, ["deploy", "teardown"]);
    assert!(outcome.report_dir.join("report.json").is_file());
}
