//! Runs one scenario end to end: deploy the system on a platform, start the alert poller and the
//! load, walk the phases (inject each phase's fault at its start, heal it at its end) with a live
//! progress line, stop the load, check data integrity, tear everything down (on success, failure and
//! Ctrl-C alike), judge the expectations and write the report.

use crate::alerts;
use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, Layer, Probe};
use crate::faults::{self, ActiveFault};
use crate::integrity;
use crate::judge::regression::{self, Baseline};
use crate::judge::{self, JudgeInput, Verdict};
use crate::load;
use crate::platform::{DeployOptions, Platform};
use crate::report::{self, Report};
use crate::spec::{ExpectSpec, Scenario};
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Load runs this long before the first phase, so connections and pools are warm; what it sends is
/// recorded but not judged.
pub const WARMUP: Duration = Duration::from_secs(3);

pub struct RunOptions {
    pub bugs: Vec<String>,
    pub reports_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// A stored run to compare with (the `regression` expectation).
    pub baseline: Option<Baseline>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    /// Every expectation held.
    Pass,
    /// An expectation failed.
    Fail,
    /// The run stopped before judging (a fault or setup error, Ctrl-C); nothing was judged.
    Aborted,
    /// The platform cannot inject one of the scenario's faults: refused before anything was
    /// deployed, nothing ran. Only `prove` and `suite` rows carry it (`run` exits 3, no report).
    #[serde(rename = "not supported")]
    NotSupported,
}

impl std::fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so tables can align it.
        f.pad(match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
            RunVerdict::Aborted => "aborted",
            RunVerdict::NotSupported => "not supported",
        })
    }
}

/// A finished run: its report (as written), where it is, and for an aborted run why it stopped.
pub struct RunOutcome {
    pub report: Report,
    pub report_dir: PathBuf,
    /// Why an aborted run stopped (its exit code: 2, 3 or 130).
    pub error: Option<BrownoutError>,
}

/// What the live part of a run produced, before judging.
pub struct Driven {
    pub restarts: Vec<crate::evidence::Restarts>,
    pub integrity: Option<integrity::Integrity>,
}

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

/// A run that has begun: its id, clocks and directories.
pub struct RunStart {
    pub run_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub wall: Instant,
    pub cpu_before: f64,
    pub report_dir: PathBuf,
    pub deploy: DeployOptions,
}

/// Names the run, makes its report and log directories (confined to `reports_dir`).
pub fn begin(name: &str, seed: u64, opts: &RunOptions) -> Result<RunStart> {
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
    let report_dir =
        crate::confine::inside(&reports_dir, std::path::Path::new(name).join(&run_id))?;
    let log_dir = report_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| {
        BrownoutError::Environment(format!("cannot create {}: {e}", log_dir.display()))
    })?;
    let deploy = DeployOptions {
        run_id: run_id.clone(),
        seed,
        bugs: opts.bugs.clone(),
        bin_dir: opts.bin_dir.clone(),
        log_dir,
    };
    Ok(RunStart {
        run_id,
        started_at,
        wall,
        cpu_before,
        report_dir,
        deploy,
    })
}

/// How the live part of a run ended, and what the platform said after teardown.
pub struct Ending<'a> {
    pub driven: Result<Driven>,
    /// The platform's restarts, for a run that did not get as far as counting them.
    pub restarts: Vec<crate::evidence::Restarts>,
    pub stack_up: Option<Duration>,
    pub ingress: crate::platform::IngressSettings,
    /// What the report states about the platform ([`Platform::platform_facts`]).
    pub platform: crate::platform::PlatformFacts,
    pub bugs: &'a [String],
    pub baseline: Option<&'a Baseline>,
    /// How the load was driven, in words (the report's `load.model`).
    pub load_model: String,
}

/// Runs the scenario and writes its report, also when the run is aborted (verdict `aborted`,
/// with the reason and what was recorded until then). `Err` only when no report could be written.
pub async fn run<P: Platform>(
    scenario: &Scenario,
    platform: &mut P,
    opts: &RunOptions,
    mut cancel: watch::Receiver<bool>,
) -> Result<RunOutcome> {
    refuse_unsupported(scenario, platform)?;
    let start = begin(&scenario.name, scenario.seed, opts)?;
    let evidence = Evidence::new();
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
    let watchdog = crate::stall::watch("harness", evidence.clone());
    let mut stack_up = None;
    let driven = drive(
        scenario,
        platform,
        &start.deploy,
        &evidence,
        &mut cancel,
        &mut stack_up,
    )
    .await;
    watchdog.abort();
    eprintln!("brownout: tearing down");
    platform.teardown().await;
    let data = evidence.with(std::mem::take);
    conclude(
        scenario,
        start,
        Ending {
            driven,
            restarts: platform.restarts(),
            stack_up,
            ingress: platform.ingress_settings(),
            platform: platform.platform_facts(),
            bugs: &opts.bugs,
            baseline: opts.baseline.as_ref(),
            load_model: "open: constant arrival rate, seeded stationary mix".into(),
        },
        data,
    )
}

/// Refuses a scenario with a fault `platform` cannot do, before anything is deployed or written
/// (exit 3, the message naming the platform and the fault).
pub fn refuse_unsupported<P: Platform>(scenario: &Scenario, platform: &P) -> Result<()> {
    for fault in scenario.phases.iter().filter_map(|p| p.fault.as_ref()) {
        if let Err(why) = platform.supports(fault) {
            return Err(BrownoutError::NotSupported {
                platform: platform.name().into(),
                fault: fault.kind().into(),
                why,
            });
        }
    }
    Ok(())
}

/// Judges what was recorded against the scenario's expectations (nothing, for an aborted run),
/// writes the report and prints its summary.
pub fn conclude(
    scenario: &Scenario,
    start: RunStart,
    ending: Ending<'_>,
    data: crate::evidence::EvidenceData,
) -> Result<RunOutcome> {
    let RunStart {
        run_id,
        started_at,
        wall,
        cpu_before,
        report_dir,
        ..
    } = start;
    let (verdict, verdicts, driven, error) = match ending.driven {
        Ok(driven) => {
            let mut verdicts = judge::judge(&JudgeInput {
                scenario,
                data: &data,
                restarts: &driven.restarts,
                integrity: driven.integrity.as_ref(),
            });
            if let Some(baseline) = ending.baseline {
                let phases = report::phase_stats(scenario, &data, scenario.load.rate);
                let judged = regression::judge(
                    &phases.iter().map(|p| p.figures()).collect::<Vec<_>>(),
                    &verdicts,
                    baseline,
                    &scenario.regression,
                );
                verdicts.push(Verdict {
                    id: regression::ID.into(),
                    kind: "regression".into(),
                    passed: judged.passed,
                    evidence: judged.evidence,
                    margins: judged.margins,
                });
            }
            let verdict = if verdicts.iter().all(|v| v.passed) {
                RunVerdict::Pass
            } else {
                RunVerdict::Fail
            };
            (verdict, verdicts, driven, None)
        }
        Err(e) => (
            RunVerdict::Aborted,
            Vec::new(),
            Driven {
                restarts: ending.restarts,
                integrity: None,
            },
            Some(e),
        ),
    };
    let report = Report {
        schema: report::SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        summary: scenario.summary.clone(),
        system: scenario.system.path.display().to_string(),
        system_override: scenario
            .system_override
            .then(|| scenario.system.path.display().to_string()),
        run_id,
        verdict,
        aborted: error.as_ref().map(|e| e.to_string()),
        baseline: ending.baseline.map(|b| b.path.display().to_string()),
        bugs: ending.bugs.to_vec(),
        started_at: started_at.to_rfc3339(),
        wall_time_s: wall.elapsed().as_secs_f64(),
        stack_up_s: ending.stack_up.map(|d: Duration| d.as_secs_f64()),
        harness_cpu_s: cpu_seconds() - cpu_before,
        load: report::LoadInfo {
            model: ending.load_model,
            rate: scenario.load.rate,
            max_in_flight: scenario.load.max_in_flight,
            timeout_s: scenario.load.timeout.as_secs_f64(),
            warmup_s: WARMUP.as_secs_f64(),
            warmup_sent: data.warmup_sends.sent,
            harness_max_rss_mb: max_rss_mb(),
            rates: data.rates.clone(),
        },
        ingress: ending.ingress,
        platform: ending.platform,
        phases: report::phase_stats(scenario, &data, scenario.load.rate),
        expectations: verdicts,
        silent_outages_allowed: scenario.silent_outages_allowed.clone(),
        restarts: driven
            .restarts
            .iter()
            .map(|r| (r.replica.clone(), r.count))
            .collect(),
        integrity: driven.integrity,
        timelines: report::timelines(&data),
        harness_stalls: data.stalls.clone(),
        notes: data.notes.clone(),
    };
    report::write(&report_dir, &report, &data).map_err(|e| {
        BrownoutError::Environment(format!(
            "cannot write the report in {}: {e}",
            report_dir.display()
        ))
    })?;
    print_summary(&report, &report_dir);
    Ok(RunOutcome {
        report,
        report_dir,
        error,
    })
}

/// Deploys the system (cancellable), notes how long it took, and starts polling its alerts.
pub(crate) async fn bring_up<P: Platform>(
    system: &crate::spec::System,
    platform: &mut P,
    deploy: &DeployOptions,
    evidence: &Evidence,
    cancel: &mut watch::Receiver<bool>,
    stack_up: &mut Option<Duration>,
) -> Result<(crate::platform::Endpoints, tokio::task::JoinHandle<()>)> {
    let t0 = Instant::now();
    eprintln!(
        "brownout: starting the system ({} platform)…",
        platform.name()
    );
    let endpoints = or_cancel(platform.deploy(system, deploy, evidence), cancel).await??;
    *stack_up = Some(t0.elapsed());
    eprintln!(
        "brownout: system up in {:.1} s; ingress {}; prometheus {}",
        t0.elapsed().as_secs_f64(),
        endpoints.ingress_url,
        endpoints.prometheus_url
    );
    let poller = alerts::start_polling(
        endpoints.prometheus_url.clone(),
        evidence.clone(),
        Duration::from_millis(500),
    );
    Ok((endpoints, poller))
}

/// Ends the last phase, stops the load (waiting for what is in flight), lets the alert poller
/// look once more, stops it, and takes the ingress's counters a last time. The load's result.
pub(crate) async fn wind_down<P: Platform>(
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

async fn drive<P: Platform>(
    scenario: &Scenario,
    platform: &mut P,
    deploy: &DeployOptions,
    evidence: &Evidence,
    cancel: &mut watch::Receiver<bool>,
    stack_up: &mut Option<Duration>,
) -> Result<Driven> {
    let (endpoints, poller) = bring_up(
        &scenario.system,
        platform,
        deploy,
        evidence,
        cancel,
        stack_up,
    )
    .await?;
    let max_run = scenario.total_duration() + WARMUP + Duration::from_secs(60);
    let load = load::start(
        &endpoints.ingress_url,
        &scenario.load,
        scenario.seed,
        evidence.clone(),
        scenario.total_duration() + WARMUP,
        max_run,
    )?;
    let phases = walk_phases(scenario, platform, evidence, cancel).await;
    let stopped = wind_down(load, poller, platform, evidence).await;
    phases?;
    stopped?;
    let restarts = platform.restarts();
    let integrity = match &scenario.system.file.integrity {
        Some(spec)
            if scenario
                .expectations
                .iter()
                .any(|e| matches!(e, ExpectSpec::DataIntegrity { .. })) =>
        {
            let ledger_url = spec.ledger.as_ref().and_then(|l| {
                endpoints
                    .service_urls
                    .iter()
                    .find(|(n, _)| *n == l.service)
                    .map(|(_, u)| u.as_str())
            });
            let keys = evidence.with(|d| d.acknowledged_keys.clone());
            let checked = match platform.connect_database().await {
                Ok(Some(mut db)) => integrity::check(spec, &mut db, ledger_url, &keys).await,
                Ok(None) => Err(crate::error::BrownoutError::BadInput(
                    "[integrity] needs a [database] in the system file".into(),
                )),
                Err(e) => Err(e),
            };
            match checked {
                Ok(i) => Some(i),
                Err(e) => {
                    evidence.event(format!("integrity check failed to run: {e}"));
                    None
                }
            }
        }
        _ => None,
    };
    Ok(Driven {
        restarts,
        integrity,
    })
}

async fn walk_phases<P: Platform>(
    scenario: &Scenario,
    platform: &mut P,
    evidence: &Evidence,
    cancel: &mut watch::Receiver<bool>,
) -> Result<()> {
    or_cancel(tokio::time::sleep(WARMUP), cancel).await?;
    let tty = std::io::stderr().is_terminal();
    for phase in &scenario.phases {
        // The edge counters at the boundary, so the report can set each phase's edge-counted
        // answers beside what clients saw.
        if let Some(counts) = platform.edge_counts().await {
            evidence.edge(counts);
        }
        evidence.begin_phase(&phase.name);
        let started = Instant::now();
        let mut active: Option<ActiveFault> = None;
        if let Some(spec) = &phase.fault {
            let fault = or_cancel(faults::inject(spec, platform, evidence), cancel).await??;
            evidence.event(format!("fault injected: {}", fault.describe()));
            active = Some(fault);
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_print = Instant::now();
        let result = loop {
            if started.elapsed() >= phase.duration {
                break Ok(());
            }
            if let Err(e) = or_cancel(tick.tick(), cancel).await {
                break Err(e);
            }
            if let Some(fault) = active.as_mut() {
                fault.watch(platform, evidence).await;
            }
            let line = progress_line(
                scenario,
                evidence,
                &phase.name,
                started.elapsed(),
                phase.duration,
            );
            if tty {
                eprint!("\r{line:<110}");
            } else if last_print.elapsed() >= Duration::from_secs(5) {
                eprintln!("{line}");
                last_print = Instant::now();
            }
        };
        if tty {
            eprintln!();
        }
        if let Some(fault) = active.take() {
            match fault.heal(platform, evidence).await {
                Ok(()) => evidence.event(format!(
                    "fault healed: {}",
                    phase.fault.as_ref().map_or("", |f| f.kind())
                )),
                Err(e) => evidence.event(format!("fault heal failed: {e}")),
            }
        }
        result?;
    }
    Ok(())
}

pub(crate) fn progress_line(
    scenario: &Scenario,
    evidence: &Evidence,
    phase: &str,
    elapsed: Duration,
    total: Duration,
) -> String {
    let idx = scenario.phase_index(phase).unwrap_or(0);
    evidence.with(|d| {
        let rs: Vec<_> = d.responses.iter().filter(|r| r.phase == Some(idx)).collect();
        let count = |f: &dyn Fn(&&crate::evidence::ResponseRecord) -> bool| rs.iter().filter(|r| f(r)).count();
        let ok = count(&|r| (200..300).contains(&r.status));
        let s503 = count(&|r| r.status == 503 && r.layer == Layer::App);
        let other = count(&|r| r.status >= 500 && !(r.status == 503 && r.layer == Layer::App));
        let none = count(&|r| r.layer == Layer::Client);
        let mut ready: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
        for p in d.probes.iter().filter(|p| p.probe == Probe::Readiness) {
            ready.insert(p.replica.as_str(), p.ok);
        }
        let ready_n = ready.values().filter(|v| **v).count();
        let mut alerts: std::collections::BTreeMap<&str, crate::evidence::AlertState> = std::collections::BTreeMap::new();
        for a in &d.alerts {
            alerts.insert(a.alert.as_str(), a.state);
        }
        let active: Vec<String> = alerts.iter().filter(|(_, s)| **s != crate::evidence::AlertState::Inactive).map(|(n, s)| format!("{n}={s}")).collect();
        format!(
            "  {phase:<10} {:>3}/{:<3}s  req {:>5}  2xx {:>5}  503 {:>4}  other-5xx {:>4}  no-resp {:>3}  ready {ready_n}/{}  alerts: {}",
            elapsed.as_secs(),
            total.as_secs(),
            rs.len(),
            ok,
            s503,
            other,
            none,
            ready.len(),
            if active.is_empty() { "none".into() } else { active.join(" ") }
        )
    })
}

fn print_summary(r: &Report, dir: &std::path::Path) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\n{:<28} {:<6} {:<40} evidence",
        "expectation", "result", "smallest margin"
    );
    for v in &r.expectations {
        let _ = writeln!(
            out,
            "{:<28} {:<6} {:<40} {}",
            v.id,
            if v.passed { "pass" } else { "FAIL" },
            v.margin_text(),
            v.evidence
        );
    }
    let _ = writeln!(
        out,
        "\nphase       nominal  sent  late  retries  mix(pp)  completed  no-resp  p50    p99    5xx client/edge       statuses"
    );
    for p in &r.phases {
        let statuses = p.statuses_text();
        let _ = writeln!(
            out,
            "{:<11} {:>7}  {:>4}  {:>4}  {:>7}  {:>7}  {:>9}  {:>7}  {:>5}  {:>5}  {:<21} {statuses}",
            p.name,
            p.nominal,
            p.sent,
            p.late,
            p.retries,
            p.mix_worst_window_pp,
            p.completed,
            p.no_response,
            p.latency_ms.p50.map_or("-".into(), |v| format!("{v}ms")),
            p.latency_ms.p99.map_or("-".into(), |v| format!("{v}ms")),
            p.five_xx_text()
        );
    }
    let failed: Vec<&str> = r
        .expectations
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.id.as_str())
        .collect();
    let requests: u64 =
        r.phases.iter().map(|p| p.sent + p.retries).sum::<u64>() + r.load.warmup_sent;
    let tail = format!(
        "wall {:.1} s, stack up {}, harness CPU {:.1} s ({:.1} ms per 1,000 requests), max RSS {:.0} MB",
        r.wall_time_s,
        r.stack_up_s.map_or("never".into(), |s| format!("{s:.1} s")),
        r.harness_cpu_s,
        r.harness_cpu_s * 1e6 / requests.max(1) as f64,
        r.load.harness_max_rss_mb,
    );
    match &r.aborted {
        Some(reason) => {
            let _ = writeln!(
                out,
                "\nABORTED: {reason}; nothing judged ({} phases recorded); {tail}",
                r.phases.len()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\n{}: {} of {} expectations held{}; {tail}",
                r.verdict.to_string().to_uppercase(),
                r.expectations.len() - failed.len(),
                r.expectations.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" — failed: {}", failed.join(", "))
                },
            );
        }
    }
    let _ = writeln!(out, "report: {}", dir.join("report.md").display());
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
