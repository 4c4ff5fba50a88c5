//! Judges a run's expectations (its [`Plan`]'s, over the windows it opened) from the recorded
//! evidence, after the run. One module per expectation kind, each a function of the typed
//! evidence (never of an event's wording) with its own passing and failing tests on hand-built
//! evidence (`testkit`). Each verdict has the expectation's id, pass/fail, the evidence in words
//! (`fault: 503 without Retry-After: 0 of 812`) and its margins to every time bound.

mod alert;
mod data_integrity;
mod latency;
mod no_silent_outage;
mod readiness;
mod recovery;
pub mod regression;
mod restarts;
mod rollout;
mod status_codes;
mod terminations;
#[cfg(test)]
pub(crate) mod testkit;

use crate::evidence::{EvidenceData, Layer, PhaseWindow, ResponseRecord};
use crate::integrity::Integrity;
use crate::plan::{Plan, Window};
use crate::spec::ExpectSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub id: String,
    pub kind: String,
    pub passed: bool,
    pub evidence: String,
    /// Distance to every time or percentile bound the expectation has (bound − observed), so
    /// near misses show before they flip. Empty for expectations without such a bound.
    pub margins: Vec<Margin>,
}

/// How far an observed time was from its bound.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Margin {
    /// What was measured, e.g. "checkout-0 readiness drop".
    pub what: String,
    pub bound_ms: u64,
    /// `None`: it never happened (the bound was missed outright).
    pub observed_ms: Option<u64>,
    /// bound − observed; negative when the bound was exceeded, `None` when it never happened.
    pub margin_ms: Option<i64>,
    /// What kind of moment was measured, for comparing runs (see `regression`).
    #[serde(default)]
    pub measure: Measure,
}

/// The kind of moment a margin measures; a baseline comparison matches margins by expectation id,
/// `what` and this.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    #[default]
    Other,
    /// A replica's readiness drop, from the phase's start.
    ReadinessDrop,
    /// A replica's readiness recovery, from the phase's end.
    ReadinessRecovery,
    /// An alert's firing, from the phase's start.
    AlertFiring,
    /// An alert's clearing, from the phase's end.
    AlertClearing,
}

impl Margin {
    pub fn new(what: impl Into<String>, bound_ms: u64, observed_ms: Option<u64>) -> Margin {
        Margin {
            what: what.into(),
            bound_ms,
            observed_ms,
            margin_ms: observed_ms.map(|o| bound_ms as i64 - o as i64),
            measure: Measure::Other,
        }
    }

    /// The same margin, saying what kind of moment it measures.
    pub fn of(self, measure: Measure) -> Margin {
        Margin { measure, ..self }
    }
}

impl Verdict {
    /// The margin closest to its bound (a missing observation counts as the smallest).
    pub fn smallest_margin(&self) -> Option<&Margin> {
        self.margins
            .iter()
            .min_by_key(|m| m.margin_ms.unwrap_or(i64::MIN))
    }

    /// "+1.2 s (checkout-0 readiness drop)", "never (…)", or "" without bounds.
    pub fn margin_text(&self) -> String {
        match self.smallest_margin() {
            None => String::new(),
            Some(m) => match m.margin_ms {
                Some(v) => format!("{:+.2} s ({})", v as f64 / 1000.0, m.what),
                None => format!("never ({})", m.what),
            },
        }
    }
}

/// What judging needs beyond the evidence: the plan (its expectations and load requests) and the
/// windows the run opened.
pub struct JudgeInput<'a> {
    pub plan: &'a Plan,
    pub windows: &'a [Window],
    pub data: &'a EvidenceData,
    pub restarts: &'a [crate::evidence::Restarts],
    pub integrity: Option<&'a Integrity>,
}

/// What one expectation kind concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub passed: bool,
    pub evidence: String,
    pub margins: Vec<Margin>,
}

impl Judged {
    fn new(passed: bool, evidence: impl Into<String>) -> Judged {
        Judged {
            passed,
            evidence: evidence.into(),
            margins: Vec::new(),
        }
    }
}

/// The evidence as the expectation kinds see it: records, the phase windows by the run's window
/// names, and load requests by name.
pub struct Ctx<'a> {
    pub data: &'a EvidenceData,
    /// The run's window names, in order (a response's `phase` indexes them).
    pub phases: Vec<&'a str>,
    /// The load's request names, in order (a response's `request` indexes them).
    pub requests: Vec<&'a str>,
    pub restarts: &'a [crate::evidence::Restarts],
    pub integrity: Option<&'a Integrity>,
}

impl<'a> Ctx<'a> {
    /// The recorded window of phase `name`, if it ran.
    pub fn phase(&self, name: &str) -> Option<&'a PhaseWindow> {
        let i = self.phases.iter().position(|p| *p == name)?;
        self.data.phases.get(i)
    }

    /// Responses to sends made in phase `name`, optionally only to one load request, streamed
    /// from the run's responses file (nothing is read when no such phase ran).
    pub fn in_phase(
        &self,
        name: &str,
        request: Option<&str>,
    ) -> impl Iterator<Item = ResponseRecord> + 'a {
        let idx = self.phases.iter().position(|p| *p == name);
        let req = request.map(|r| self.requests.iter().position(|q| *q == r));
        let data = self.data;
        idx.map(|_| data.responses.iter())
            .into_iter()
            .flatten()
            .filter(move |r| r.phase == idx && req.is_none_or(|q| q == Some(r.request)))
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// "fault" or "fault (checkout)".
fn scope(during: &str, request: Option<&str>) -> String {
    match request {
        Some(r) => format!("{during} ({r})"),
        None => during.to_string(),
    }
}

/// Short label of a response: "503", "504 (ingress)", "no response".
pub fn response_label(r: &ResponseRecord) -> String {
    match r.layer {
        Layer::Client => "no response".into(),
        Layer::Ingress => format!("{} (ingress)", r.status),
        Layer::App => r.status.to_string(),
    }
}

/// Counts `r` under its label ([`response_label`]).
fn count_label(m: &mut BTreeMap<String, usize>, r: &ResponseRecord) {
    *m.entry(response_label(r)).or_insert(0) += 1;
}

fn mix(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The latency at `percentile` (0-100) of `latencies_ms`, via an HDR histogram.
pub fn percentile(latencies_ms: &[u64], percentile: f64) -> Option<u64> {
    let mut l = Latencies::default();
    for &ms in latencies_ms {
        l.record(ms);
    }
    l.percentile(percentile)
}

/// Latencies counted exactly as they stream by (each distinct millisecond value and how often it
/// was seen: memory grows with the distinct values, not the answers). Percentiles come from an
/// HDR histogram (1 ms – 1 h, 3 significant digits) filled from the counts, so they are exactly
/// those [`percentile`] gives for the same values.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    counts: BTreeMap<u64, u64>,
    n: u64,
}

impl Latencies {
    pub fn record(&mut self, ms: u64) {
        *self.counts.entry(ms).or_insert(0) += 1;
        self.n += 1;
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn max(&self) -> Option<u64> {
        self.counts.keys().next_back().copied()
    }

    /// The latency at `percentile` (0-100); `None` when nothing was recorded.
    pub fn percentile(&self, percentile: f64) -> Option<u64> {
        self.percentiles(&[percentile])[0]
    }

    /// Several percentiles from one histogram.
    pub fn percentiles(&self, ps: &[f64]) -> Vec<Option<u64>> {
        if self.n == 0 {
            return vec![None; ps.len()];
        }
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)
            .expect("histogram bounds");
        for (&ms, &c) in &self.counts {
            h.saturating_record_n(ms.max(1), c);
        }
        ps.iter()
            .map(|p| Some(h.value_at_quantile(p / 100.0)))
            .collect()
    }
}

/// The largest amount by which a record's `key` falls behind the largest `key` read before it,
/// in the order the records were written (one pass over the file). Records with a key older than
/// (the largest seen − this) can no longer come: what lets a later pass keep only a window.
pub fn max_lag(data: &EvidenceData, key: impl Fn(&ResponseRecord) -> u64) -> u64 {
    let (mut top, mut lag) = (0u64, 0u64);
    for r in data.responses.iter() {
        let k = key(&r);
        top = top.max(k);
        lag = lag.max(top - k);
    }
    lag
}

/// The failed verdict a run gets when its responses file could not be written or read whole:
/// judging on part of the evidence would be a silent default.
fn unreadable(data: &EvidenceData) -> Option<Verdict> {
    data.responses.error().map(|e| Verdict {
        id: "evidence".into(),
        kind: "evidence".into(),
        passed: false,
        evidence: format!("evidence unreadable: {e}"),
        margins: Vec::new(),
    })
}

pub fn judge(input: &JudgeInput) -> Vec<Verdict> {
    let ctx = Ctx {
        data: input.data,
        phases: input.windows.iter().map(|w| w.name.as_str()).collect(),
        requests: input.plan.request_names(),
        restarts: input.restarts,
        integrity: input.integrity,
    };
    let baseline_phases = crate::plan::before_first_fault(input.windows);
    let mut verdicts: Vec<Verdict> = input
        .plan
        .expectations
        .iter()
        .map(|e| judge_one(&ctx, e, baseline_phases))
        .collect();
    verdicts.extend(unreadable(input.data));
    verdicts
}

/// The kind name of an expectation, as written in scenario files.
pub fn kind_of(e: &ExpectSpec) -> &'static str {
    match e {
        ExpectSpec::StatusCodes { .. } => "status-codes",
        ExpectSpec::Latency { .. } => "latency",
        ExpectSpec::Readiness { .. } => "readiness",
        ExpectSpec::Restarts { .. } => "restarts",
        ExpectSpec::Alert { .. } => "alert",
        ExpectSpec::Recovery { .. } => "recovery",
        ExpectSpec::DataIntegrity { .. } => "data-integrity",
        ExpectSpec::Rollout { .. } => "rollout",
        ExpectSpec::Terminations { .. } => "terminations",
        ExpectSpec::NoSilentOutage { .. } => "no-silent-outage",
    }
}

/// Judges one expectation. `baseline_phases`: how many phases come before the first fault.
pub fn judge_one(ctx: &Ctx, e: &ExpectSpec, baseline_phases: usize) -> Verdict {
    let missing = |phase: &str| Judged::new(false, format!("phase '{phase}' was not run"));
    let judged = match e {
        ExpectSpec::StatusCodes {
            during,
            request,
            allowed,
            retry_after,
            from_app,
            from_ingress,
            settle,
            ..
        } => status_codes::judge(
            ctx,
            &status_codes::Bounds {
                during,
                request: request.as_deref(),
                allowed,
                retry_after,
                from_app: *from_app,
                from_ingress: *from_ingress,
                settle: settle.map(|d| d.get()).unwrap_or_default(),
            },
        ),
        ExpectSpec::Latency {
            during,
            request,
            percentile,
            below,
            ..
        } => latency::judge(ctx, during, request.as_deref(), *percentile, below.ms()),
        ExpectSpec::Readiness {
            service,
            during,
            drops_within,
            recovers_within,
            ..
        } => match ctx.phase(during) {
            None => missing(during),
            Some(w) => readiness::judge(ctx, service, w, drops_within.ms(), recovers_within.ms()),
        },
        ExpectSpec::Restarts { service, max, .. } => restarts::judge(ctx, service, *max),
        ExpectSpec::Alert {
            alert,
            phase,
            fires_within,
            clears_within,
            ..
        } => match ctx.phase(phase) {
            None => missing(phase),
            Some(w) => alert::judge(ctx, alert, w, fires_within.ms(), clears_within.ms()),
        },
        ExpectSpec::NoSilentOutage {
            failure_share,
            window,
            page_within,
            page_severities,
            min_answers,
            ..
        } => {
            let settings = no_silent_outage::Settings {
                failure_share: *failure_share,
                window_ms: window.ms(),
                page_within_ms: page_within.ms(),
                page_severities,
                min_answers: *min_answers as usize,
                baseline_phases,
            };
            let (passed, evidence, margins) = no_silent_outage::judge(ctx.data, &settings);
            Judged {
                passed,
                evidence,
                margins,
            }
        }
        ExpectSpec::Recovery { after, within, .. } => match ctx.phase(after) {
            None => missing(after),
            Some(w) => recovery::judge(ctx, w, within.ms()),
        },
        ExpectSpec::Rollout {
            service,
            phase,
            outcome,
            within,
            ..
        } => match ctx.phase(phase) {
            None => missing(phase),
            Some(w) => rollout::judge(ctx, service, w, *outcome, within.map(|d| d.ms())),
        },
        ExpectSpec::Terminations { service, phase, .. } => match ctx.phase(phase) {
            None => missing(phase),
            Some(w) => terminations::judge(ctx, service, w),
        },
        ExpectSpec::DataIntegrity { .. } => data_integrity::judge(ctx.integrity),
    };
    Verdict {
        id: e.id().to_string(),
        kind: kind_of(e).into(),
        passed: judged.passed,
        evidence: judged.evidence,
        margins: judged.margins,
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;

    #[test]
    fn the_smallest_margin_is_the_nearest_miss_and_a_missing_observation_is_smallest() {
        let mut v = Verdict {
            id: "readiness-drops".into(),
            kind: "readiness".into(),
            passed: true,
            evidence: String::new(),
            margins: vec![
                Margin::new("checkout-0 readiness drop", 5_000, Some(1_100)),
                Margin::new("checkout-1 readiness drop", 5_000, Some(4_200)),
                Margin::new("checkout-0 readiness recovery", 10_000, Some(3_800)),
            ],
        };
        assert_eq!(v.smallest_margin().unwrap().margin_ms, Some(800));
        assert_eq!(v.margin_text(), "+0.80 s (checkout-1 readiness drop)");
        v.margins.push(Margin::new(
            "checkout-1 readiness recovery",
            10_000,
            Some(12_500),
        ));
        assert_eq!(v.margin_text(), "-2.50 s (checkout-1 readiness recovery)");
        v.margins
            .push(Margin::new("CheckoutDbPoolSaturated firing", 10_000, None));
        assert_eq!(v.margin_text(), "never (CheckoutDbPoolSaturated firing)");
        v.margins.clear();
        assert_eq!(v.margin_text(), "");
    }

    /// An expectation about a phase that never ran (the run was cut short) fails, naming it.
    #[test]
    fn a_phase_that_was_not_run_fails_the_expectations_on_it() {
        let mut data = three_phases();
        data.phases.truncate(1);
        let e: ExpectSpec =
            toml::from_str("id = 'r'\nkind = 'recovery'\nafter = 'fault'\nwithin = '5s'").unwrap();
        let v = judge_one(&ctx(&data), &e, 1);
        assert!(!v.passed);
        assert_eq!(v.evidence, "phase 'fault' was not run");
        assert_eq!(v.kind, "recovery");
    }

    /// Percentiles from exact counts are those of an HDR histogram fed every value (what the
    /// judge computed from a Vec of latencies before the evidence streamed), above 2,048 ms too
    /// where the histogram's buckets are wider than a millisecond.
    #[test]
    fn counted_latencies_give_the_percentiles_of_every_value_recorded() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..50 {
            let n = rng.random_range(1..3_000);
            let top = [50, 3_000, 120_000, 4_000_000][round % 4];
            let values: Vec<u64> = (0..n).map(|_| rng.random_range(0..top)).collect();
            let mut every =
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
            let mut counted = Latencies::default();
            for &v in &values {
                every.saturating_record(v.max(1));
                counted.record(v);
            }
            for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
                assert_eq!(
                    counted.percentile(p),
                    Some(every.value_at_quantile(p / 100.0)),
                    "p{p} of {values:?}"
                );
            }
            assert_eq!(counted.max(), values.iter().max().copied());
            assert_eq!(counted.len(), n);
        }
        assert_eq!(Latencies::default().percentile(50.0), None);
    }

    /// The windows a scenario's phases open, each with its phase's fault.
    fn windows_of(scenario: &crate::spec::Scenario) -> Vec<Window> {
        scenario
            .phases
            .iter()
            .map(|p| Window {
                name: p.name.clone(),
                fault: p.fault.clone(),
            })
            .collect()
    }

    /// A responses file that cannot be read whole fails the run with a verdict saying so, rather
    /// than judging on part of the evidence.
    #[test]
    fn unreadable_evidence_is_a_failed_verdict_not_a_partial_judgement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("responses.jsonl");
        let mut data = three_phases();
        data.responses = crate::evidence::ResponseLog::create(&path).unwrap();
        answers(&mut data, 0, 30_000, 30, |t| {
            response(t, 0, 200, Layer::App, 5)
        });
        let plan_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/pool-exhaustion.toml");
        let scenario = crate::spec::load_scenario(&plan_file).unwrap();
        let windows = windows_of(&scenario);
        let plan = Plan::of_scenario(&scenario);
        let input = JudgeInput {
            plan: &plan,
            windows: &windows,
            data: &data,
            restarts: &[],
            integrity: None,
        };
        assert!(judge(&input).iter().all(|v| v.kind != "evidence"));
        data.responses.flush();
        std::fs::write(&path, "{\"t_ms\": 1, \"broken\n").unwrap();
        let input = JudgeInput {
            data: &data,
            ..input
        };
        let verdicts = judge(&input);
        let last = verdicts.last().unwrap();
        assert_eq!(verdicts.len(), scenario.expectations.len() + 1);
        assert!(!last.passed);
        assert!(
            last.evidence.starts_with("evidence unreadable: line 1"),
            "{}",
            last.evidence
        );
    }

    /// The dispatcher hands each kind its own settings: a scenario file's expectations, judged.
    #[test]
    fn a_scenario_file_is_judged_expectation_by_expectation() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let scenario = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
        let data = EvidenceData::default();
        let windows = windows_of(&scenario);
        let verdicts = judge(&JudgeInput {
            plan: &Plan::of_scenario(&scenario),
            windows: &windows,
            data: &data,
            restarts: &[],
            integrity: None,
        });
        assert_eq!(verdicts.len(), scenario.expectations.len());
        for (v, e) in verdicts.iter().zip(&scenario.expectations) {
            assert_eq!(v.id, e.id());
            assert_eq!(v.kind, kind_of(e));
            // Nothing was recorded: no expectation may pass on no evidence.
            assert!(!v.passed, "{} passed on no evidence: {}", v.id, v.evidence);
        }
    }
}
