//! Which alert rules a set of runs proved. From every `report.json` below a directory (the alert
//! timelines and phases each run recorded), each alerting rule is listed with the runs it fired in
//! and the runs it fired in during a baseline phase (the phases before the first fault). A rule
//! that never fired anywhere is untested; one that fired in a baseline is a false alarm. The e2e
//! matrix asserts neither happens; `brownout summarize` prints the table.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct Report {
    scenario: String,
    bugs: Vec<String>,
    #[serde(default)]
    system_override: Option<String>,
    phases: Vec<Phase>,
    timelines: Timelines,
}

#[derive(Deserialize)]
struct Phase {
    start_ms: u64,
    end_ms: u64,
    fault: Option<String>,
}

#[derive(Deserialize)]
struct Timelines {
    alerts: Vec<AlertState>,
}

#[derive(Deserialize)]
struct AlertState {
    t_ms: u64,
    alert: String,
    state: String,
}

/// One alerting rule over many runs.
#[derive(Debug, Default, PartialEq)]
pub struct RuleCoverage {
    /// Runs ("scenario \[bugs\]") in which it fired.
    pub fired_in: Vec<String>,
    /// Runs in which it fired during a baseline phase.
    pub fired_in_baseline: Vec<String>,
    /// Runs that loaded it.
    pub loaded_in: usize,
}

/// (from, to) of every stretch `alert` was firing; `to` is `u64::MAX` if it still was at the end.
fn firing_spans(states: &[&AlertState]) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    let mut since = None;
    for s in states {
        match (s.state == "firing", since) {
            (true, None) => since = Some(s.t_ms),
            (false, Some(f)) => {
                spans.push((f, s.t_ms));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(f) = since {
        spans.push((f, u64::MAX));
    }
    spans
}

fn add_report(r: &Report, out: &mut BTreeMap<String, RuleCoverage>) {
    let run = crate::summary::run_label(&r.scenario, &r.bugs, r.system_override.as_deref());
    let baseline = r.phases.first().map(|first| {
        let end = r
            .phases
            .iter()
            .find(|p| p.fault.is_some())
            .map_or(r.phases.last().map_or(0, |p| p.end_ms), |p| p.start_ms);
        (first.start_ms, end)
    });
    let mut by_alert: BTreeMap<&str, Vec<&AlertState>> = BTreeMap::new();
    for a in &r.timelines.alerts {
        by_alert.entry(a.alert.as_str()).or_default().push(a);
    }
    for (alert, states) in by_alert {
        let c = out.entry(alert.to_string()).or_default();
        c.loaded_in += 1;
        let spans = firing_spans(&states);
        if !spans.is_empty() && !c.fired_in.contains(&run) {
            c.fired_in.push(run.clone());
        }
        if let Some((from, to)) = baseline {
            if spans.iter().any(|(f, t)| *f < to && *t > from)
                && !c.fired_in_baseline.contains(&run)
            {
                c.fired_in_baseline.push(run.clone());
            }
        }
    }
}

/// Coverage of every alerting rule loaded in the runs below `dir`, and the files that could not
/// be read as reports.
pub fn from_dir(dir: &Path) -> (BTreeMap<String, RuleCoverage>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for f in crate::summary::report_paths(dir) {
        match crate::summary::read_report(&f) {
            Ok(t) => match serde_json::from_str::<Report>(&t) {
                Ok(r) => add_report(&r, &mut out),
                Err(e) => errors.push(format!("{}: {e}", f.display())),
            },
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// What is wrong with the coverage: rules that never fired, rules that fired in a baseline.
pub fn problems(coverage: &BTreeMap<String, RuleCoverage>) -> Vec<String> {
    let mut out = Vec::new();
    for (alert, c) in coverage {
        if c.fired_in.is_empty() {
            out.push(format!(
                "{alert} is untested: it never fired in any of the {} runs that loaded it",
                c.loaded_in
            ));
        }
        if !c.fired_in_baseline.is_empty() {
            out.push(format!(
                "{alert} fired in a baseline phase (a false alarm) in: {}",
                c.fired_in_baseline.join("; ")
            ));
        }
    }
    out
}

/// The coverage as a table.
pub fn render(coverage: &BTreeMap<String, RuleCoverage>) -> String {
    let mut s = String::from("\nalert rule                      fired in (runs)                                  in a baseline\n");
    for (alert, c) in coverage {
        let fired = if c.fired_in.is_empty() {
            format!("UNTESTED (0 of {} runs)", c.loaded_in)
        } else {
            format!(
                "{} of {}: {}",
                c.fired_in.len(),
                c.loaded_in,
                c.fired_in.join("; ")
            )
        };
        s.push_str(&format!(
            "{alert:<31} {fired:<48} {}\n",
            if c.fired_in_baseline.is_empty() {
                "never".to_string()
            } else {
                format!("FALSE ALARM: {}", c.fired_in_baseline.join("; "))
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(scenario: &str, bugs: &[&str], alerts: &[(u64, &str, &str)]) -> Report {
        Report {
            scenario: scenario.into(),
            bugs: bugs.iter().map(|b| b.to_string()).collect(),
            system_override: None,
            phases: vec![
                Phase {
                    start_ms: 3_000,
                    end_ms: 13_000,
                    fault: None,
                },
                Phase {
                    start_ms: 13_000,
                    end_ms: 33_000,
                    fault: Some("proxy".into()),
                },
                Phase {
                    start_ms: 33_000,
                    end_ms: 53_000,
                    fault: None,
                },
            ],
            timelines: Timelines {
                alerts: alerts
                    .iter()
                    .map(|(t, a, s)| AlertState {
                        t_ms: *t,
                        alert: a.to_string(),
                        state: s.to_string(),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn a_rule_is_proven_by_firing_somewhere_and_never_in_a_baseline() {
        let mut cov = BTreeMap::new();
        add_report(
            &report(
                "slow-upstream",
                &[],
                &[
                    (1_000, "Breaker", "inactive"),
                    (1_000, "Edge5xx", "inactive"),
                    (1_000, "Disk", "inactive"),
                    (17_000, "Breaker", "pending"),
                    (19_000, "Breaker", "firing"),
                    (40_000, "Breaker", "inactive"),
                ],
            ),
            &mut cov,
        );
        add_report(
            &report(
                "sigterm-grace",
                &["no-drain"],
                &[
                    (1_000, "Edge5xx", "inactive"),
                    (20_000, "Edge5xx", "firing"),
                ],
            ),
            &mut cov,
        );
        assert_eq!(cov["Breaker"].fired_in, vec!["slow-upstream []"]);
        assert_eq!(cov["Edge5xx"].fired_in, vec!["sigterm-grace [no-drain]"]);
        assert_eq!(cov["Edge5xx"].loaded_in, 2);
        // Disk never fired: untested, and that is the only problem.
        assert_eq!(
            problems(&cov),
            vec!["Disk is untested: it never fired in any of the 1 runs that loaded it"]
        );
        assert!(render(&cov).contains("UNTESTED (0 of 1 runs)"));

        // A rule firing during the baseline (even one that began in the warm-up) is a false alarm.
        add_report(
            &report(
                "pool-exhaustion",
                &[],
                &[(500, "Disk", "firing"), (4_000, "Disk", "inactive")],
            ),
            &mut cov,
        );
        assert_eq!(
            problems(&cov),
            vec!["Disk fired in a baseline phase (a false alarm) in: pool-exhaustion []"]
        );
        // Pending in the baseline is not firing.
        let mut cov = BTreeMap::new();
        add_report(
            &report(
                "x",
                &[],
                &[(5_000, "Breaker", "pending"), (14_000, "Breaker", "firing")],
            ),
            &mut cov,
        );
        assert!(problems(&cov).is_empty());
    }
}
