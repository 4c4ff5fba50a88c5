//! A scenario's driver: the load at the scenario's constant rate, then, after the warm-up, its
//! phases in order, each a window (its fault injected at its start, watched each second, healed
//! at its end) with a live progress line; data integrity checked after the load when the
//! scenario expects it.

use super::{or_cancel, Driver, Timeline, WARMUP};
use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, Probe};
use crate::faults::{self, ActiveFault};
use crate::load;
use crate::platform::Platform;
use crate::spec::{ExpectSpec, IntegritySpec, Scenario};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

/// Drives a scenario's scripted phases.
pub(super) struct Script<'s> {
    scenario: &'s Scenario,
    timeline: Timeline,
}

impl<'s> Script<'s> {
    pub(super) fn new(scenario: &'s Scenario) -> Script<'s> {
        Script {
            scenario,
            timeline: Timeline::default(),
        }
    }
}

impl Driver for Script<'_> {
    fn start_load(&mut self, ingress_url: &str, evidence: &Evidence) -> Result<load::LoadRun> {
        let s = self.scenario;
        let max_run = s.total_duration() + WARMUP + Duration::from_secs(60);
        load::start(
            ingress_url,
            &s.load,
            s.seed,
            evidence.clone(),
            s.total_duration() + WARMUP,
            max_run,
        )
    }

    async fn drive<P: Platform>(
        &mut self,
        platform: &mut P,
        evidence: &Evidence,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        or_cancel(tokio::time::sleep(WARMUP), cancel).await?;
        let tty = std::io::stderr().is_terminal();
        for phase in &self.scenario.phases {
            self.timeline
                .open(platform, evidence, &phase.name, phase.fault.clone())
                .await;
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
                    self.scenario,
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

    fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The system's `[integrity]`, when the scenario expects `data-integrity`.
    fn integrity(&self) -> Option<&IntegritySpec> {
        let expected = self
            .scenario
            .expectations
            .iter()
            .any(|e| matches!(e, ExpectSpec::DataIntegrity { .. }));
        self.scenario
            .system
            .file
            .integrity
            .as_ref()
            .filter(|_| expected)
    }
}

/// The live line of a phase: its time, answers by kind, replicas ready and active alerts.
fn progress_line(
    scenario: &Scenario,
    evidence: &Evidence,
    phase: &str,
    elapsed: Duration,
    total: Duration,
) -> String {
    let idx = scenario.phase_index(phase).unwrap_or(0);
    evidence.with(|d| {
        // Counted as the answers were recorded (the responses themselves are on disk).
        let t = d.tallies.get(idx).copied().unwrap_or_default();
        let (ok, s503, other, none) = (t.ok, t.app_503, t.other_5xx, t.none);
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
            t.answers,
            ok,
            s503,
            other,
            none,
            ready.len(),
            if active.is_empty() { "none".into() } else { active.join(" ") }
        )
    })
}
