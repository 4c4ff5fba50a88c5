//! `brownout prove NAME…`: each scenario proves it catches what its `[catches]` table says. It
//! runs on the hardened app (which must pass) and once per listed bug (which must fail exactly
//! its listed expectation ids); a scenario with an empty `[catches]` proves the hardened app
//! passes. Prints a table, writes `junit.xml` and `prove.json` in
//! `reports/prove/<id>/`.

use super::session::Session;
use crate::error::{BrownoutError, Exit, Result};
use crate::report::junit;
use crate::report::RunVerdict;
use crate::spec::Scenario;
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One run of a proof and whether it came out as declared.
#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    /// Empty: the hardened app.
    pub bugs: Vec<String>,
    /// The expectation ids that must fail (empty: the run must pass).
    pub expected: Vec<String>,
    pub failed: Vec<String>,
    pub verdict: RunVerdict,
    pub aborted: Option<String>,
    /// Why the platform refused the run (verdict `not supported`): it proves nothing either way
    /// and is not counted as a wrong row.
    pub not_supported: Option<String>,
    /// The run's report directory (empty for a run refused before it began).
    pub report: PathBuf,
    pub ok: bool,
}

impl Row {
    /// The row of a run the platform refused (`BrownoutError::NotSupported`'s message).
    pub fn not_supported(
        scenario: &str,
        bugs: Vec<String>,
        expected: Vec<String>,
        why: String,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            bugs,
            expected,
            failed: Vec::new(),
            verdict: RunVerdict::NotSupported,
            aborted: None,
            not_supported: Some(why),
            report: PathBuf::new(),
            ok: false,
        }
    }

    /// A row that came out other than declared (a refused run is not one).
    pub fn wrong(&self) -> bool {
        !self.ok && self.verdict != RunVerdict::NotSupported
    }
}

/// `prove`'s exit: the first run's error (Ctrl-C, an abort), else 1 if a run came out other than
/// declared, else 0; when the platform refused every run, its refusal (exit 3): nothing was proved.
pub fn exit_of(rows: &[Row], first_error: Option<BrownoutError>) -> Result<Exit> {
    if let Some(e) = first_error {
        return Err(e);
    }
    if rows.iter().any(|r| r.wrong()) {
        Ok(Exit::Fail)
    } else {
        Ok(Exit::Pass)
    }
}

/// Whether a run came out as declared: the same set of failed ids, and no abort.
pub fn as_declared(expected: &[String], failed: &[String], verdict: RunVerdict) -> bool {
    let e: BTreeSet<&String> = expected.iter().collect();
    let f: BTreeSet<&String> = failed.iter().collect();
    verdict != RunVerdict::Aborted && e == f
}

/// The runs that prove `scenario`: the hardened app, then each caught bug.
pub fn plan(scenario: &Scenario) -> Vec<(Vec<String>, Vec<String>)> {
    let mut runs = vec![(Vec::new(), Vec::new())];
    for c in &scenario.catches {
        runs.push((vec![c.bug.clone()], c.fails.clone()));
    }
    runs
}

pub fn prove(session: &Session, scenarios: &[Scenario]) -> Result<Exit> {
    for s in scenarios {
        if !s.declares_catches {
            return Err(BrownoutError::BadInput(format!(
                "{}: declares no [catches]: nothing to prove (add e.g. `[catches]\\nmy-bug = [\"expectation-id\"]`)",
                s.path.display()
            )));
        }
    }
    let mut rows = Vec::new();
    let mut first_error: Option<BrownoutError> = None;
    let mut refused: Option<BrownoutError> = None;
    'all: for s in scenarios {
        for (bugs, expected) in plan(s) {
            if session.interrupted() {
                break 'all;
            }
            let outcome = match session.run(s, bugs.clone(), None) {
                Ok(outcome) => outcome,
                Err(e @ BrownoutError::NotSupported { .. }) => {
                    rows.push(Row::not_supported(&s.name, bugs, expected, e.to_string()));
                    refused.get_or_insert(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let failed: Vec<String> = outcome
                .report
                .expectations
                .iter()
                .filter(|v| !v.passed)
                .map(|v| v.id.clone())
                .collect();
            let verdict = outcome.report.verdict;
            rows.push(Row {
                scenario: s.name.clone(),
                ok: as_declared(&expected, &failed, verdict),
                bugs,
                expected,
                failed,
                verdict,
                aborted: outcome.report.aborted.clone(),
                not_supported: None,
                report: outcome.report_dir.clone(),
            });
            if let Some(e) = outcome.error {
                let stop = matches!(e, BrownoutError::Interrupted);
                first_error.get_or_insert(e);
                if stop {
                    break 'all;
                }
            }
        }
    }
    let dir = write(session, &rows)?;
    print!("{}", table(&rows));
    let wrong = rows.iter().filter(|r| r.wrong()).count();
    let unsupported = rows
        .iter()
        .filter(|r| r.verdict == RunVerdict::NotSupported)
        .count();
    println!(
        "\n{} of {} runs as declared{}; junit: {}",
        rows.len() - wrong - unsupported,
        rows.len() - unsupported,
        if unsupported > 0 {
            format!(" ({unsupported} not supported on this platform, not run)")
        } else {
            String::new()
        },
        dir.join("junit.xml").display()
    );
    if unsupported == rows.len() && first_error.is_none() {
        if let Some(e) = refused {
            return Err(e);
        }
    }
    exit_of(&rows, first_error)
}

fn ids(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

pub fn table(rows: &[Row]) -> String {
    let bug = |r: &Row| {
        if r.bugs.is_empty() {
            "(hardened)".to_string()
        } else {
            r.bugs.join(",")
        }
    };
    let w1 = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let w2 = rows.iter().map(|r| bug(r).len()).max().unwrap_or(0).max(10);
    let w4 = rows
        .iter()
        .map(|r| ids(&r.expected).len())
        .max()
        .unwrap_or(0)
        .max(9);
    let mut s = format!(
        "\n{:<w1$} {:<w2$} {:<6} {:<w4$} {}\n",
        "scenario", "bug", "result", "must fail", "failed"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<w1$} {:<w2$} {:<6} {:<w4$} {}\n",
            r.scenario,
            bug(r),
            if r.ok {
                "ok"
            } else if r.wrong() {
                "WRONG"
            } else {
                "n/a"
            },
            ids(&r.expected),
            match (&r.not_supported, &r.aborted) {
                (Some(why), _) => why.clone(),
                (None, Some(why)) => format!("aborted: {why}"),
                (None, None) => ids(&r.failed),
            }
        ));
    }
    s
}

/// `reports/prove/<id>/{junit.xml, prove.json}`: a test suite per scenario, a test case per run.
fn write(session: &Session, rows: &[Row]) -> Result<PathBuf> {
    let id = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let dir = std::path::absolute(session.reports_dir.join("prove").join(id))
        .map_err(|e| BrownoutError::Environment(format!("bad reports dir: {e}")))?;
    let io = |e: std::io::Error| {
        BrownoutError::Environment(format!("cannot write {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in rows {
        let name = format!("prove {}", r.scenario);
        if suites.last().is_none_or(|s| s.name.as_str() != name) {
            suites.push(TestSuite::new(name.clone()));
        }
        let status = if r.ok {
            TestCaseStatus::success()
        } else if let Some(why) = &r.not_supported {
            let mut st = TestCaseStatus::skipped();
            st.set_message(why.clone());
            st
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!(
                "must fail: {}; failed: {}{}",
                ids(&r.expected),
                ids(&r.failed),
                r.aborted
                    .as_ref()
                    .map_or(String::new(), |a| format!(" (aborted: {a})"))
            ));
            st
        };
        let mut case = TestCase::new(junit::suite_name(&r.scenario, &r.bugs), status);
        case.set_classname(name);
        case.set_system_out(format!("report: {}", r.report.display()));
        suites.last_mut().expect("pushed above").add_test_case(case);
    }
    std::fs::write(
        dir.join("junit.xml"),
        junit::render("brownout prove", suites),
    )
    .map_err(io)?;
    std::fs::write(
        dir.join("prove.json"),
        serde_json::to_string_pretty(rows).unwrap_or_default(),
    )
    .map_err(io)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_run_is_as_declared_only_with_exactly_its_failures() {
        assert!(as_declared(&v(&[]), &v(&[]), RunVerdict::Pass));
        assert!(as_declared(
            &v(&["a", "b"]),
            &v(&["b", "a"]),
            RunVerdict::Fail
        ));
        // One more, one fewer, another: not as declared.
        assert!(!as_declared(&v(&["a"]), &v(&["a", "b"]), RunVerdict::Fail));
        assert!(!as_declared(&v(&["a", "b"]), &v(&["a"]), RunVerdict::Fail));
        assert!(!as_declared(&v(&[]), &v(&["c"]), RunVerdict::Fail));
        // An aborted run proves nothing, even with nothing failed.
        assert!(!as_declared(&v(&[]), &v(&[]), RunVerdict::Aborted));
    }

    #[test]
    fn the_plan_is_the_hardened_app_then_each_caught_bug() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let s = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
        let plan = plan(&s);
        assert_eq!(plan[0], (vec![], vec![]));
        assert_eq!(
            plan[1..],
            [
                (
                    v(&["liveness-checks-db"]),
                    v(&["fault-fast-503-from-app", "liveness-holds"])
                ),
                (
                    v(&["no-acquire-timeout"]),
                    v(&["fault-fast-503-from-app", "fault-p99-bounded"])
                ),
            ]
        );
    }

    /// A run the platform refused (a fault it cannot do, e.g. memory-limit on Kubernetes) is
    /// listed as "not supported on this platform": not as aborted, not as a wrong row, a skipped
    /// test case; `prove` exits on the other rows alone.
    #[test]
    fn a_refused_run_is_reported_as_not_supported_and_not_counted_as_wrong() {
        let why = BrownoutError::NotSupported {
            platform: "kubernetes".into(),
            fault: "memory-limit".into(),
            why: "no in-place decrease".into(),
        }
        .to_string();
        let refused = Row::not_supported("oom-kill", v(&["unbounded-export"]), v(&["x"]), why);
        let passed = Row {
            scenario: "sigterm-grace".into(),
            bugs: vec![],
            expected: vec![],
            failed: vec![],
            verdict: RunVerdict::Pass,
            aborted: None,
            not_supported: None,
            report: PathBuf::from("r"),
            ok: true,
        };
        assert!(!refused.wrong() && !passed.wrong());
        let rows = vec![passed, refused];
        assert_eq!(exit_of(&rows, None).unwrap(), Exit::Pass);
        let t = table(&rows);
        let line = t.lines().find(|l| l.starts_with("oom-kill")).unwrap();
        assert!(
            line.contains("n/a")
                && line
                    .contains("fault memory-limit is not supported on this platform (kubernetes)")
                && !line.contains("aborted")
                && !line.contains("WRONG"),
            "{line}"
        );
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["verdict"], "not supported");
    }
}
