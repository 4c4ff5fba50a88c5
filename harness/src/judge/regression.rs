//! `regression`: this run against a stored baseline run of the same scenario (`--baseline`, or
//! `reports/<scenario>/baseline.json`). Compared: each phase's p99 latency and share of failed
//! answers (5xx or none), each replica's readiness drop and recovery times, each alert's firing
//! and clearing times. A figure worse than the baseline by more than the scenario's
//! `[regression]` tolerance is a regression; the comparison is its own expectation in the report.

use super::{Judged, Measure, Verdict};
use crate::error::{BrownoutError, Result};
use crate::spec::{LatencyTolerance, RegressionSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The expectation id of the comparison.
pub const ID: &str = "regression";

/// What a baseline is read for: the few fields of a stored `report.json` that are compared.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    pub scenario: String,
    pub run_id: String,
    pub phases: Vec<PhaseFigures>,
    pub expectations: Vec<Verdict>,
    /// Where it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One phase's compared figures, as `report.json` has them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PhaseFigures {
    pub name: String,
    pub completed: usize,
    pub no_response: usize,
    pub client_5xx: usize,
    pub latency_ms: P99,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct P99 {
    pub p99: Option<u64>,
}

impl PhaseFigures {
    /// Share of the phase's answers that failed (5xx from any layer, or none at all), in %.
    fn failed_pct(&self) -> Option<f64> {
        let total = self.completed + self.no_response;
        (total > 0).then(|| (self.client_5xx + self.no_response) as f64 * 100.0 / total as f64)
    }
}

/// Reads a baseline: a `report.json`, or a run directory holding one. Errors name the file (and
/// line:col for bad JSON) and are bad input (exit 2).
pub fn load(path: &Path, scenario: &str) -> Result<Baseline> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    // The capped reader: a FIFO, a device or a huge file is refused, never waited on or held.
    let text = crate::spec::source::read_capped_to(&file, crate::spec::source::MAX_REPORT_BYTES)
        .map_err(|e| {
            BrownoutError::BadInput(format!(
                "baseline: cannot read {e} (give a report.json of an earlier run, or its directory)"
            ))
        })?;
    let mut b: Baseline = serde_json::from_str(&text).map_err(|e| {
        BrownoutError::BadInput(format!(
            "{}:{}:{}: not a Brownout report.json: {e}",
            file.display(),
            e.line(),
            e.column()
        ))
    })?;
    if b.scenario != scenario {
        return Err(BrownoutError::BadInput(format!(
            "baseline {} is a run of scenario '{}', not '{scenario}': give a baseline of the same scenario",
            file.display(),
            b.scenario
        )));
    }
    b.path = file;
    Ok(b)
}

/// One compared figure.
struct Figure {
    what: String,
    baseline: String,
    now: String,
    regressed: bool,
}

/// Compares this run (its phases and verdicts) with the baseline.
pub fn judge(
    phases: &[PhaseFigures],
    verdicts: &[Verdict],
    baseline: &Baseline,
    tol: &RegressionSpec,
) -> Judged {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for p in phases {
        let Some(b) = baseline.phases.iter().find(|b| b.name == p.name) else {
            notes.push(format!("phase {} is not in the baseline", p.name));
            continue;
        };
        if let (Some(was), Some(now)) = (b.latency_ms.p99, p.latency_ms.p99) {
            let allowed = match tol.p99 {
                LatencyTolerance::Percent(pct) => {
                    was + ((was as f64 * pct / 100.0).ceil() as u64).max(10)
                }
                LatencyTolerance::Ms(ms) => was + ms,
            };
            figures.push(Figure {
                what: format!("{} p99", p.name),
                baseline: format!("{was} ms"),
                now: format!("{now} ms"),
                regressed: now > allowed,
            });
        }
        if let (Some(was), Some(now)) = (b.failed_pct(), p.failed_pct()) {
            figures.push(Figure {
                what: format!("{} failed share", p.name),
                baseline: format!("{was:.1}%"),
                now: format!("{now:.1}%"),
                regressed: now > was + tol.five_xx_share.0,
            });
        }
    }
    for v in verdicts {
        let Some(bv) = baseline.expectations.iter().find(|b| b.id == v.id) else {
            continue;
        };
        for m in &v.margins {
            let slack = match m.measure {
                Measure::ReadinessDrop | Measure::ReadinessRecovery => tol.readiness.0,
                Measure::AlertFiring => tol.alert_fire.0,
                Measure::AlertClearing => tol.alert_clear.0,
                Measure::Other => continue,
            };
            let Some(was) = bv
                .margins
                .iter()
                .find(|b| b.what == m.what && b.measure == m.measure)
                .and_then(|b| b.observed_ms)
            else {
                continue;
            };
            figures.push(Figure {
                what: m.what.clone(),
                baseline: format!("{:.1} s", was as f64 / 1000.0),
                now: m
                    .observed_ms
                    .map_or("never".into(), |n| format!("{:.1} s", n as f64 / 1000.0)),
                regressed: m.observed_ms.is_none_or(|now| now > was + slack),
            });
        }
    }
    let regressed: Vec<&Figure> = figures.iter().filter(|f| f.regressed).collect();
    let mut text = format!(
        "against baseline {} ({}): {} figures compared, {} past tolerance",
        baseline.run_id,
        baseline.path.display(),
        figures.len(),
        regressed.len()
    );
    for f in &regressed {
        text.push_str(&format!(
            "; REGRESSED {}: {} (baseline {})",
            f.what, f.now, f.baseline
        ));
    }
    for n in &notes {
        text.push_str(&format!("; {n}"));
    }
    if figures.is_empty() {
        text.push_str("; nothing in common to compare");
    }
    Judged::new(regressed.is_empty() && !figures.is_empty(), text)
}

#[cfg(test)]
mod tests {
    use super::super::Margin;
    use super::*;
    use crate::spec::{PointsTolerance, TimeTolerance};

    fn phase(name: &str, p99: u64, failed: usize) -> PhaseFigures {
        PhaseFigures {
            name: name.into(),
            completed: 400 - failed / 2,
            no_response: failed / 2,
            client_5xx: failed - failed / 2,
            latency_ms: P99 { p99: Some(p99) },
        }
    }

    fn verdict(drop_ms: Option<u64>, fire_ms: Option<u64>) -> Vec<Verdict> {
        vec![
            Verdict {
                id: "ready".into(),
                kind: "readiness".into(),
                passed: true,
                evidence: String::new(),
                margins: vec![Margin::new("checkout-0 readiness drop", 5_000, drop_ms)
                    .of(Measure::ReadinessDrop)],
            },
            Verdict {
                id: "paged".into(),
                kind: "alert".into(),
                passed: true,
                evidence: String::new(),
                margins: vec![
                    Margin::new("PoolSaturated firing", 10_000, fire_ms).of(Measure::AlertFiring),
                    // Not a moment that is compared.
                    Margin::new("p99", 600, Some(9_000)),
                ],
            },
        ]
    }

    fn baseline() -> Baseline {
        Baseline {
            scenario: "pool-exhaustion".into(),
            run_id: "base".into(),
            phases: vec![phase("baseline", 20, 0), phase("fault", 100, 200)],
            expectations: verdict(Some(1_000), Some(4_000)),
            path: "b.json".into(),
        }
    }

    fn tolerance() -> RegressionSpec {
        RegressionSpec {
            p99: LatencyTolerance::Percent(25.0),
            five_xx_share: PointsTolerance(2.0),
            readiness: TimeTolerance(1_000),
            alert_fire: TimeTolerance(3_000),
            alert_clear: TimeTolerance(3_000),
        }
    }

    #[test]
    fn a_run_within_every_tolerance_passes() {
        // p99 20→30 ms is +50%, but within the 10 ms floor; 100→125 ms is +25%.
        let j = judge(
            &[phase("baseline", 30, 0), phase("fault", 125, 208)],
            &verdict(Some(2_000), Some(7_000)),
            &baseline(),
            &tolerance(),
        );
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(
            j.evidence,
            "against baseline base (b.json): 6 figures compared, 0 past tolerance"
        );
    }

    #[test]
    fn a_slower_p99_is_a_regression() {
        let j = judge(&[phase("fault", 126, 200)], &[], &baseline(), &tolerance());
        assert!(!j.passed);
        assert!(
            j.evidence
                .ends_with("REGRESSED fault p99: 126 ms (baseline 100 ms)"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_larger_share_of_failures_is_a_regression() {
        let j = judge(&[phase("fault", 100, 209)], &[], &baseline(), &tolerance());
        assert!(!j.passed);
        assert!(
            j.evidence
                .contains("REGRESSED fault failed share: 52.2% (baseline 50.0%)"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_later_readiness_drop_is_a_regression() {
        let j = judge(
            &[],
            &verdict(Some(2_100), Some(4_000)),
            &baseline(),
            &tolerance(),
        );
        assert!(!j.passed);
        assert!(
            j.evidence
                .contains("REGRESSED checkout-0 readiness drop: 2.1 s (baseline 1.0 s)"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn an_alert_that_fires_later_or_never_is_a_regression() {
        let late = judge(
            &[],
            &verdict(Some(1_000), Some(7_100)),
            &baseline(),
            &tolerance(),
        );
        assert!(!late.passed);
        assert!(
            late.evidence
                .contains("REGRESSED PoolSaturated firing: 7.1 s (baseline 4.0 s)"),
            "{}",
            late.evidence
        );
        let never = judge(&[], &verdict(Some(1_000), None), &baseline(), &tolerance());
        assert!(
            never
                .evidence
                .contains("REGRESSED PoolSaturated firing: never (baseline 4.0 s)"),
            "{}",
            never.evidence
        );
    }

    /// Nothing in common (another phase layout, no shared expectation) is not a pass.
    #[test]
    fn nothing_to_compare_fails() {
        let j = judge(&[phase("other", 10, 0)], &[], &baseline(), &tolerance());
        assert!(!j.passed);
        assert!(
            j.evidence
                .ends_with("phase other is not in the baseline; nothing in common to compare"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_baseline_is_a_report_json_of_the_same_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("report.json");
        std::fs::write(&f, r#"{"scenario": "pool-exhaustion", "run_id": "r1", "phases": [], "expectations": [], "other": 1}"#).unwrap();
        assert_eq!(load(dir.path(), "pool-exhaustion").unwrap().run_id, "r1");
        let e = load(&f, "disk-full").unwrap_err().to_string();
        assert!(
            e.contains("is a run of scenario 'pool-exhaustion', not 'disk-full'"),
            "{e}"
        );
        std::fs::write(&f, "{\n  \"scenario\": 3\n}").unwrap();
        let e = load(&f, "pool-exhaustion").unwrap_err();
        assert_eq!(e.exit(), crate::error::Exit::BadInput);
        assert!(
            e.to_string()
                .contains("report.json:2:15: not a Brownout report.json"),
            "{e}"
        );
        let e = load(&dir.path().join("nope.json"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
