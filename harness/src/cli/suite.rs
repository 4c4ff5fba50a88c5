//! `brownout suite [NAMES…]`: several scenarios (all in the scenarios dir by default) one after
//! another, each on a freshly deployed system (scenarios change the system they run on: rollouts
//! replace revisions, disks are filled, so one deployment is not shared). Each run is compared
//! with its stored baseline if there is one. Prints one table, writes one `junit.xml` (a test
//! suite per scenario, a test case per expectation) and `suite.json` in `reports/suite/<id>/`.
//! Exit: 130 after Ctrl-C, the abort's code (2, 3) if a run was aborted, else 1 if any
//! expectation failed, else 0. A scenario with a fault the platform cannot do is refused before
//! it deploys and listed as "not supported on this platform", neither passed nor failed (3 when
//! every one was refused).

use super::session::{save_baseline, Session};
use crate::error::{BrownoutError, Exit, Result};
use crate::report::junit;
use crate::report::RunVerdict;
use crate::spec::Scenario;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Serialize)]
pub struct SuiteRun {
    pub scenario: String,
    pub verdict: RunVerdict,
    pub held: usize,
    pub expectations: usize,
    pub failed: Vec<String>,
    pub aborted: Option<String>,
    /// Why the platform refused the run (verdict `not supported`): not run, not a failure.
    pub not_supported: Option<String>,
    pub wall_time_s: f64,
    /// The run's report directory (empty for a run refused before it began).
    pub report: PathBuf,
}

impl SuiteRun {
    /// The row of a run the platform refused (`BrownoutError::NotSupported`'s message).
    pub fn not_supported(scenario: &str, why: String) -> SuiteRun {
        SuiteRun {
            scenario: scenario.into(),
            verdict: RunVerdict::NotSupported,
            held: 0,
            expectations: 0,
            failed: Vec::new(),
            aborted: None,
            not_supported: Some(why),
            wall_time_s: 0.0,
            report: PathBuf::new(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SuiteReport {
    pub id: String,
    pub bugs: Vec<String>,
    pub verdict: RunVerdict,
    pub runs: Vec<SuiteRun>,
}

pub fn suite(
    session: &Session,
    scenarios: &[Scenario],
    bugs: &[String],
    save_baselines: bool,
) -> Result<Exit> {
    // Every baseline is read (and checked) before the first run.
    let mut baselines = Vec::new();
    for s in scenarios {
        crate::spec::check_bugs(&s.system, bugs)?;
        baselines.push(session.baseline(s, None)?);
    }
    let id = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut runs = Vec::new();
    let mut suites = Vec::new();
    let mut first_error: Option<BrownoutError> = None;
    let mut refused: Option<BrownoutError> = None;
    for (s, baseline) in scenarios.iter().zip(baselines) {
        if session.interrupted() {
            break;
        }
        let outcome = match session.run(s, bugs.to_vec(), baseline) {
            Ok(outcome) => outcome,
            Err(e @ BrownoutError::NotSupported { .. }) => {
                runs.push(SuiteRun::not_supported(&s.name, e.to_string()));
                refused.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let r = &outcome.report;
        let failed: Vec<String> = r
            .expectations
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.id.clone())
            .collect();
        suites.push(junit::suite(r));
        runs.push(SuiteRun {
            scenario: s.name.clone(),
            verdict: r.verdict,
            held: r.expectations.len() - failed.len(),
            expectations: r.expectations.len(),
            failed,
            aborted: r.aborted.clone(),
            not_supported: None,
            wall_time_s: r.wall_time_s,
            report: outcome.report_dir.clone(),
        });
        if save_baselines {
            save_baseline(&session.reports_dir, &outcome);
        }
        if let Some(e) = outcome.error {
            let stop = matches!(e, BrownoutError::Interrupted);
            first_error.get_or_insert(e);
            if stop {
                break;
            }
        }
    }
    let verdict = verdict_of(&runs, scenarios.len());
    let report = SuiteReport {
        id: id.clone(),
        bugs: bugs.to_vec(),
        verdict,
        runs,
    };
    let dir = std::path::absolute(session.reports_dir.join("suite").join(&id))
        .map_err(|e| BrownoutError::Environment(format!("bad reports dir: {e}")))?;
    let io = |e: std::io::Error| {
        BrownoutError::Environment(format!("cannot write {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::write(
        dir.join("junit.xml"),
        junit::render("brownout suite", suites),
    )
    .map_err(io)?;
    std::fs::write(
        dir.join("suite.json"),
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(io)?;
    print!("{}", table(&report));
    println!(
        "\nsuite {}: {}\njunit: {}",
        report.verdict.to_string().to_uppercase(),
        dir.join("suite.json").display(),
        dir.join("junit.xml").display()
    );
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(match report.verdict {
        RunVerdict::Pass => Exit::Pass,
        RunVerdict::NotSupported => return Err(refused.expect("a refused run")),
        _ => Exit::Fail,
    })
}

/// The suite's verdict: aborted if a run was (or not every scenario ran), else fail if one
/// failed, else pass; runs the platform refused count for neither (every run refused: not
/// supported).
pub fn verdict_of(runs: &[SuiteRun], scenarios: usize) -> RunVerdict {
    if runs.iter().any(|r| r.verdict == RunVerdict::Aborted) || runs.len() < scenarios {
        RunVerdict::Aborted
    } else if runs.iter().any(|r| r.verdict == RunVerdict::Fail) {
        RunVerdict::Fail
    } else if !runs.is_empty() && runs.iter().all(|r| r.verdict == RunVerdict::NotSupported) {
        RunVerdict::NotSupported
    } else {
        RunVerdict::Pass
    }
}

pub fn table(r: &SuiteReport) -> String {
    let w = r
        .runs
        .iter()
        .map(|x| x.scenario.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut s = format!(
        "\n{:<w$} {:<8} {:>5} {:>8}  {}\n",
        "scenario", "verdict", "held", "wall", "failed"
    );
    for run in &r.runs {
        s.push_str(&format!(
            "{:<w$} {:<8} {:>5} {:>7.0}s  {}\n",
            run.scenario,
            run.verdict,
            format!("{}/{}", run.held, run.expectations),
            run.wall_time_s,
            match (&run.not_supported, &run.aborted) {
                (Some(why), _) => why.clone(),
                (None, Some(why)) => format!("aborted: {why}"),
                (None, None) if run.failed.is_empty() => "-".into(),
                (None, None) => run.failed.join(", "),
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, verdict: RunVerdict) -> SuiteRun {
        SuiteRun {
            scenario: scenario.into(),
            verdict,
            held: 0,
            expectations: 0,
            failed: Vec::new(),
            aborted: None,
            not_supported: None,
            wall_time_s: 1.0,
            report: PathBuf::from("r"),
        }
    }

    /// A scenario the platform refused counts for neither pass nor fail (never as aborted), and
    /// its row says "not supported on this platform".
    #[test]
    fn a_refused_scenario_is_not_supported_neither_passed_nor_failed() {
        let refused = SuiteRun::not_supported(
            "oom-kill",
            "fault memory-limit is not supported on this platform (kubernetes): why".into(),
        );
        let pass = run("sigterm-grace", RunVerdict::Pass);
        let fail = run("slow-upstream", RunVerdict::Fail);
        let runs = vec![pass, refused];
        assert_eq!(verdict_of(&runs, 2), RunVerdict::Pass);
        let with_fail = vec![fail, SuiteRun::not_supported("oom-kill", "x".into())];
        assert_eq!(verdict_of(&with_fail, 2), RunVerdict::Fail);
        let only = vec![SuiteRun::not_supported("oom-kill", "x".into())];
        assert_eq!(verdict_of(&only, 1), RunVerdict::NotSupported);
        let t = table(&SuiteReport {
            id: "i".into(),
            bugs: vec![],
            verdict: RunVerdict::Pass,
            runs,
        });
        let line = t.lines().find(|l| l.starts_with("oom-kill")).unwrap();
        assert!(
            line.contains("not supported on this platform") && !line.contains("aborted"),
            "{line}"
        );
    }
}
