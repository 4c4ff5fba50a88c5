//! One run end to end, for a scenario and a game day alike. A [`Run`] owns the lifecycle: it
//! begins (names the run, makes its report directory, starts the evidence), brings the system up
//! on a platform and polls its alerts, starts the load, lets its [`Driver`] drive (a scenario's
//! scripted phases, [`script`]; or a game day's loop, `gameday`), winds down (stops the load, a
//! last look at the alerts and the ingress's counters), checks data integrity, tears everything
//! down (on success, failure and Ctrl-C alike), then judges the [`Plan`]'s expectations over the
//! windows the driver opened and writes the report (`report`), also for an aborted run.

mod script;

use crate::alerts;
use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, EvidenceData, Restarts};
use crate::integrity::{self, Integrity};
use crate::judge::regression::{self, Baseline};
use crate::judge::{self, JudgeInput, Verdict};
use crate::load;
use crate::plan::{Plan, Window};
use crate::platform::{DeployOptions, Endpoints, Platform};
use crate::report::{self, Ending, Report, RunFacts};
use crate::spec::{FaultSpec, IntegritySpec, Scenario, System};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use script::refuse_unsupported;

/// Load runs this long before the first window, so connections and pools are warm; what it sends
/// is recorded but not judged.
pub const WARMUP: Duration = Duration::from_secs(3);

pub struct RunOptions {
    pub bugs: Vec<String>,
    pub reports_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// A stored run to compare with (the `regression` expectation).
    pub baseline: Option<Baseline>,
}

/// A finished run: its report (as written), where it is, and for an aborted run why it stopped.
pub struct RunOutcome {
    pub report: Report,
    pub report_dir: PathBuf,
    /// Why an aborted run stopped (its exit code: 2, 3 or 130).
    pub error: Option<BrownoutError>,
}

/// `fut`, unless Ctrl-C comes first (`Interrupted`).
pub(crate) async fn or_cancel<T>(
    fut: impl std::future::Future<Output = T>,
    cancel: &mut watch::Receiver<bool>,
) -> Result<T> {
    if *cancel.borrow() {
        return Err(BrownoutError::Interrupted);
    }
    tokio::select! {
        v = fut => Ok(v),
        _ = cancel.wait_for(|c| *c) => Err(BrownoutError::Interrupted),
    }
}

/// What drives a run between bring-up and wind-down: it starts the load, opens the run's
/// windows in its [`Timeline`] (injecting and healing faults), and says whether the run checks
/// data integrity. The [`Run`] does the rest, the same for every driver.
pub(crate) trait Driver {
    /// Starts the load on the system that is up at `ingress_url`.
    fn start_load(&mut self, ingress_url: &str, evidence: &Evidence) -> Result<load::LoadRun>;

    /// Drives the run until it is over (or fails, or Ctrl-C), every fault it injected healed
    /// when it returns.
    async fn drive<P: Platform>(
        &mut self,
        platform: &mut P,
        evidence: &Evidence,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<()>;

    /// The windows opened so far.
    fn timeline(&self) -> &Timeline;

    /// What to check of the data after the load, if anything.
    fn integrity(&self) -> Option<&IntegritySpec> {
        None
    }

    /// Teardown is about to begin.
    fn tearing_down(&mut self) {}

    /// The platform is torn down.
    fn torn_down(&mut self) {}
}

/// The windows a driver opened, in order, each with the fault that opened it: the run's
/// recorded phases.
#[derive(Debug, Default)]
pub struct Timeline {
    windows: Vec<Window>,
}

impl Timeline {
    /// Begins window `name`, opened by `fault`, with a snapshot of the ingress's counters at the
    /// boundary (so the report can set each window's edge-counted answers beside what clients
    /// saw).
    pub async fn open<P: Platform>(
        &mut self,
        platform: &mut P,
        evidence: &Evidence,
        name: &str,
        fault: Option<FaultSpec>,
    ) {
        if let Some(counts) = platform.edge_counts().await {
            evidence.edge(counts);
        }
        evidence.begin_phase(name);
        self.windows.push(Window {
            name: name.to_string(),
            fault,
        });
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }
}

/// What the live part of a run produced, before judging.
struct Driven {
    restarts: Vec<Restarts>,
    integrity: Option<Integrity>,
}

/// A run that has begun: its plan, the system it deploys, its id, clocks, directories and
/// evidence; then how long the system took to come up.
pub struct Run<'a> {
    plan: Plan,
    system: &'a System,
    opts: &'a RunOptions,
    run_id: String,
    started_at: chrono::DateTime<chrono::Utc>,
    wall: Instant,
    cpu_before: f64,
    report_dir: PathBuf,
    deploy: DeployOptions,
    evidence: Evidence,
    /// Time until the whole system was up; `None` until it is.
    stack_up: Option<Duration>,
}

impl<'a> Run<'a> {
    /// Names the run, makes its report and log directories (confined to `reports_dir`) and
    /// starts its evidence (its clock's zero).
    pub fn begin(
        plan: Plan,
        system: &'a System,
        seed: u64,
        opts: &'a RunOptions,
    ) -> Result<Run<'a>> {
        let started_at = chrono::Utc::now();
        let wall = Instant::now();
        // This process may run several scenarios (prove, suite): count this run's CPU only.
        let cpu_before = cpu_seconds();
        let run_id = format!(
            "{}-{:04x}",
            started_at.format("%Y%m%dT%H%M%SZ"),
            rand::random::<u16>()
        );
        let reports_dir = std::path::absolute(&opts.reports_dir)
            .map_err(|e| BrownoutError::Environment(format!("bad reports dir: {e}")))?;
        let report_dir = crate::confine::inside(&reports_dir, Path::new(&plan.name).join(&run_id))?;
        let log_dir = report_dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|e| {
            BrownoutError::Environment(format!("cannot create {}: {e}", log_dir.display()))
        })?;
        // Responses stream to the report directory as they arrive: a killed run leaves them.
        let evidence = Evidence::new();
        evidence.stream_to(&report_dir).map_err(|e| {
            BrownoutError::Environment(format!(
                "cannot write evidence into {}: {e}",
                report_dir.display()
            ))
        })?;
        let deploy = DeployOptions {
            run_id: run_id.clone(),
            seed,
            bugs: opts.bugs.clone(),
            bin_dir: opts.bin_dir.clone(),
            log_dir,
        };
        Ok(Run {
            plan,
            system,
            opts,
            run_id,
            started_at,
            wall,
            cpu_before,
            report_dir,
            deploy,
            evidence,
            stack_up: None,
        })
    }

    pub fn report_dir(&self) -> &Path {
        &self.report_dir
    }

    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Runs to the end with `driver` and writes the report, also when the run is aborted
    /// (verdict `aborted`, with the reason and what was recorded until then). `Err` only when no
    /// report could be written.
    pub(crate) async fn execute<P: Platform, D: Driver>(
        mut self,
        driver: &mut D,
        platform: &mut P,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<RunOutcome> {
        let watchdog = crate::stall::watch("harness", self.evidence.clone());
        let driven = self.live(driver, platform, &mut cancel).await;
        watchdog.abort();
        driver.tearing_down();
        eprintln!("brownout: tearing down");
        platform.teardown().await;
        driver.torn_down();
        let data = self.evidence.clone().finish();
        let teardown = Teardown {
            restarts: platform.restarts(),
            ingress: platform.ingress_settings(),
            platform: platform.platform_facts(),
        };
        self.conclude(driver.timeline().windows(), driven, teardown, data)
    }

    /// Brings the system up, drives it, winds down and checks data integrity.
    async fn live<P: Platform, D: Driver>(
        &mut self,
        driver: &mut D,
        platform: &mut P,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Driven> {
        let (endpoints, poller) = self.bring_up(platform, cancel).await?;
        let load = driver.start_load(&endpoints.ingress_url, &self.evidence)?;
        let driven = driver.drive(platform, &self.evidence, cancel).await;
        let stopped = wind_down(load, poller, platform, &self.evidence).await;
        driven?;
        stopped?;
        let restarts = platform.restarts();
        let integrity = match driver.integrity() {
            Some(spec) => check_integrity(spec, &endpoints, platform, &self.evidence).await,
            None => None,
        };
        Ok(Driven {
            restarts,
            integrity,
        })
    }

    /// Deploys the system (cancellable), notes how long it took, and starts polling its alerts.
    async fn bring_up<P: Platform>(
        &mut self,
        platform: &mut P,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(Endpoints, tokio::task::JoinHandle<()>)> {
        let t0 = Instant::now();
        eprintln!(
            "brownout: starting the system ({} platform)…",
            platform.name()
        );
        let endpoints = or_cancel(
            platform.deploy(self.system, &self.deploy, &self.evidence),
            cancel,
        )
        .await??;
        self.stack_up = Some(t0.elapsed());
        eprintln!(
            "brownout: system up in {:.1} s; ingress {}; prometheus {}",
            t0.elapsed().as_secs_f64(),
            endpoints.ingress_url,
            endpoints.prometheus_url
        );
        let poller = alerts::start_polling(
            endpoints.prometheus_url.clone(),
            self.evidence.clone(),
            Duration::from_millis(500),
        );
        Ok((endpoints, poller))
    }

    /// Judges what was recorded against the plan's expectations (nothing, for an aborted run),
    /// writes the report and prints its summary.
    fn conclude(
        self,
        windows: &[Window],
        driven: Result<Driven>,
        teardown: Teardown,
        data: EvidenceData,
    ) -> Result<RunOutcome> {
        let phases = report::phase_stats(&self.plan, windows, &data);
        let (ending, error) = match driven {
            Ok(driven) => {
                let mut verdicts = judge::judge(&JudgeInput {
                    plan: &self.plan,
                    windows,
                    data: &data,
                    restarts: &driven.restarts,
                    integrity: driven.integrity.as_ref(),
                });
                if let (Some(baseline), Some(tolerances)) =
                    (self.opts.baseline.as_ref(), self.plan.regression.as_ref())
                {
                    let judged = regression::judge(
                        &phases.iter().map(|p| p.figures()).collect::<Vec<_>>(),
                        &verdicts,
                        baseline,
                        tolerances,
                    );
                    verdicts.push(Verdict {
                        id: regression::ID.into(),
                        kind: "regression".into(),
                        passed: judged.passed,
                        evidence: judged.evidence,
                        margins: judged.margins,
                    });
                }
                let ending = Ending::Judged {
                    expectations: verdicts,
                    restarts: driven.restarts,
                    integrity: driven.integrity,
                };
                (ending, None)
            }
            Err(e) => {
                let ending = Ending::Aborted {
                    reason: e.to_string(),
                    restarts: teardown.restarts,
                };
                (ending, Some(e))
            }
        };
        let facts = RunFacts {
            run_id: self.run_id,
            started_at: self.started_at,
            wall_time: self.wall.elapsed(),
            stack_up: self.stack_up,
            harness_cpu_s: cpu_seconds() - self.cpu_before,
            harness_max_rss_mb: max_rss_mb(),
            warmup: WARMUP,
            bugs: self.opts.bugs.clone(),
            baseline: self.opts.baseline.as_ref().map(|b| b.path.clone()),
            ingress: teardown.ingress,
            platform: teardown.platform,
        };
        let report = report::build(&self.plan, facts, ending, phases, &data);
        let report_dir = self.report_dir;
        report::write(&report_dir, &report, &data).map_err(|e| {
            BrownoutError::Environment(format!(
                "cannot write the report in {}: {e}",
                report_dir.display()
            ))
        })?;
        report::terminal::print_summary(&report, &report_dir);
        Ok(RunOutcome {
            report,
            report_dir,
            error,
        })
    }
}

/// What the platform says after teardown, for the report.
struct Teardown {
    /// The platform's restarts, for a run that did not get as far as counting them.
    restarts: Vec<Restarts>,
    ingress: crate::platform::IngressSettings,
    platform: crate::platform::PlatformFacts,
}

/// Runs the scenario and writes its report, also when the run is aborted (verdict `aborted`,
/// with the reason and what was recorded until then). `Err` only when no report could be written.
pub async fn run<P: Platform>(
    scenario: &Scenario,
    platform: &mut P,
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
) -> Result<RunOutcome> {
    refuse_unsupported(scenario, platform)?;
    let run = Run::begin(
        Plan::of_scenario(scenario),
        &scenario.system,
        scenario.seed,
        opts,
    )?;
    eprintln!(
        "brownout: {} — {}{}",
        scenario.name,
        scenario.summary,
        if opts.bugs.is_empty() {
            String::new()
        } else {
            format!(" [bugs: {}]", opts.bugs.join(","))
        }
    );
    run.execute(&mut script::Script::new(scenario), platform, cancel)
        .await
}

/// Ends the last window, stops the load (waiting for what is in flight), lets the alert poller
/// look once more, stops it, and takes the ingress's counters a last time. The load's result.
async fn wind_down<P: Platform>(
    load: load::LoadRun,
    poller: tokio::task::JoinHandle<()>,
    platform: &mut P,
    evidence: &Evidence,
) -> Result<()> {
    evidence.end_phases();
    let stopped = load.stop().await;
    // One more alert poll after the load, then stop polling.
    tokio::time::sleep(Duration::from_millis(600)).await;
    poller.abort();
    if let Some(counts) = platform.edge_counts().await {
        evidence.edge(counts);
    }
    stopped
}

/// Checks the data against `spec` (`None`, with an event, when the check cannot run).
async fn check_integrity<P: Platform>(
    spec: &IntegritySpec,
    endpoints: &Endpoints,
    platform: &mut P,
    evidence: &Evidence,
) -> Option<Integrity> {
    let ledger_url = spec.ledger.as_ref().and_then(|l| {
        endpoints
            .service_urls
            .iter()
            .find(|(n, _)| *n == l.service)
            .map(|(_, u)| u.as_str())
    });
    // Read from the run's acknowledged-keys file, not held in memory.
    let mut keys = evidence.with(|d| d.acknowledged_keys.reader());
    let checked = match platform.connect_database().await {
        Ok(Some(mut db)) => integrity::check(spec, &mut db, ledger_url, &mut keys).await,
        Ok(None) => Err(BrownoutError::BadInput(
            "[integrity] needs a [database] in the system file".into(),
        )),
        Err(e) => Err(e),
    };
    let checked = match (checked, keys.error()) {
        (Ok(_), Some(e)) => Err(BrownoutError::Environment(e.to_string())),
        (checked, _) => checked,
    };
    match checked {
        Ok(i) => Some(i),
        Err(e) => {
            evidence.event(format!("integrity check failed to run: {e}"));
            None
        }
    }
}

fn rusage() -> libc::rusage {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    }
}

/// CPU time (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    let usage = rusage();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The largest resident set of this process so far, in MB (Linux reports KiB).
fn max_rss_mb() -> f64 {
    rusage().ru_maxrss as f64 / 1024.0
}

#[cfg(test)]
mod tests;
