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

    /// Responses to sends made in phase `name`, optionally only to one load request.
    pub fn in_phase(
        &self,
        name: &str,
        request: Option<&str>,
    ) -> impl Iterator<Item = &'a ResponseRecord> + '_ {
        let idx = self.phases.iter().position(|p| *p == name);
        let req = request.map(|r| self.requests.iter().position(|q| *q == r));
        self.data.responses.iter().filter(move |r| {
            idx.is_some() && r.phase == idx && req.is_none_or(|q| q == Some(r.request))
        })
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

fn histogram_of<'a>(rs: impl Iterator<Item = &'a ResponseRecord>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rs {
        *m.entry(response_label(r)).or_insert(0) += 1;
    }
    m
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
    if latencies_ms.is_empty() {
        return None;
    }
    let mut h =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds");
    for &l in latencies_ms {
        h.saturating_record(l.max(1));
    }
    Some(h.value_at_quantile(percentile / 100.0))
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
    input
        .plan
        .expectations
        .iter()
        .map(|e| judge_one(&ctx, e, baseline_phases))
        .collect()
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

    /// The dispatcher hands each kind its own settings: a scenario file's expectations, judged.
    #[test]
    fn a_scenario_file_is_judged_expectation_by_expectation() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let scenario = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
        let data = EvidenceData::default();
        let windows: Vec<Window> = scenario
            .phases
            .iter()
            .map(|p| Window {
                name: p.name.clone(),
                fault: p.fault.clone(),
            })
            .collect();
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
