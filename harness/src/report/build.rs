//! The report's construction: from the run's [`Plan`], what the runner knows of the run itself
//! ([`RunFacts`]), how it ended ([`Ending`]), its windows' figures and the evidence. The run's
//! verdict ([`RunVerdict`]) follows from the ending.

use super::{timelines, LoadInfo, PhaseStats, Report, SCHEMA_VERSION};
use crate::evidence::{EvidenceData, Restarts};
use crate::integrity::Integrity;
use crate::judge::Verdict;
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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

/// How the live part of a run ended.
pub enum Ending {
    /// It went through and was judged.
    Judged {
        expectations: Vec<Verdict>,
        restarts: Vec<Restarts>,
        integrity: Option<Integrity>,
    },
    /// It stopped before judging; nothing was judged.
    Aborted {
        reason: String,
        /// The platform's restarts, as it counted them after teardown.
        restarts: Vec<Restarts>,
    },
}

impl Ending {
    /// Pass when every expectation held, fail when one did not; aborted when none was judged.
    pub fn verdict(&self) -> RunVerdict {
        match self {
            Ending::Judged { expectations, .. } if expectations.iter().all(|v| v.passed) => {
                RunVerdict::Pass
            }
            Ending::Judged { .. } => RunVerdict::Fail,
            Ending::Aborted { .. } => RunVerdict::Aborted,
        }
    }
}

/// What the runner knows of the run itself: its id, clocks, costs, options, and what the
/// platform says of itself.
pub struct RunFacts {
    pub run_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub wall_time: Duration,
    /// Time until the whole system was up; `None` when it never was.
    pub stack_up: Option<Duration>,
    pub harness_cpu_s: f64,
    pub harness_max_rss_mb: f64,
    /// How long the load ran before the first window (not judged).
    pub warmup: Duration,
    pub bugs: Vec<String>,
    /// The baseline report the run was compared with.
    pub baseline: Option<PathBuf>,
    pub ingress: crate::platform::IngressSettings,
    pub platform: crate::platform::PlatformFacts,
}

/// The report of a run.
pub fn build(
    plan: &Plan,
    run: RunFacts,
    ending: Ending,
    phases: Vec<PhaseStats>,
    data: &EvidenceData,
) -> Report {
    let verdict = ending.verdict();
    let (aborted, expectations, restarts, integrity) = match ending {
        Ending::Judged {
            expectations,
            restarts,
            integrity,
        } => (None, expectations, restarts, integrity),
        Ending::Aborted { reason, restarts } => (Some(reason), Vec::new(), restarts, None),
    };
    let system = plan.system.display().to_string();
    Report {
        schema: SCHEMA_VERSION,
        scenario: plan.name.clone(),
        summary: plan.summary.clone(),
        system_override: plan.system_override.then(|| system.clone()),
        system,
        run_id: run.run_id,
        verdict,
        aborted,
        baseline: run.baseline.map(|b| b.display().to_string()),
        bugs: run.bugs,
        started_at: run.started_at.to_rfc3339(),
        wall_time_s: run.wall_time.as_secs_f64(),
        stack_up_s: run.stack_up.map(|d| d.as_secs_f64()),
        harness_cpu_s: run.harness_cpu_s,
        load: LoadInfo {
            model: plan.pacing.describe().to_string(),
            rate: plan.load.rate,
            max_in_flight: plan.load.max_in_flight,
            timeout_s: plan.load.timeout.as_secs_f64(),
            warmup_s: run.warmup.as_secs_f64(),
            warmup_sent: data.warmup_sends.sent,
            harness_max_rss_mb: run.harness_max_rss_mb,
            rates: data.rates.clone(),
        },
        ingress: run.ingress,
        platform: run.platform,
        phases,
        expectations,
        silent_outages_allowed: plan.silent_outages_allowed.clone(),
        restarts: restarts
            .iter()
            .map(|r| (r.replica.clone(), r.count))
            .collect(),
        integrity,
        timelines: timelines(data),
        harness_stalls: data.stalls.clone(),
        notes: data.notes.clone(),
        logs: logs_section(data, run.wall_time),
    }
}

// --- H-logs: the report's `logs` section (component logs, platform/local/logcap.rs) ---
/// The component logs over the run: what was written, kept and dropped, under which caps, and
/// every cut. `None` in the report when the platform does not bound its logs itself.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LogsSection {
    pub per_file_cap_bytes: u64,
    pub per_run_cap_bytes: u64,
    pub written_bytes: u64,
    pub kept_bytes: u64,
    pub dropped_bytes: u64,
    /// Written bytes over the run's wall time, per hour: the disk a long run needs without caps.
    pub written_per_hour_bytes: u64,
    pub cuts: Vec<crate::evidence::LogCut>,
}

/// The `logs` section, from the evidence (`None` if the platform recorded no log usage).
pub fn logs_section(data: &EvidenceData, wall_time: Duration) -> Option<LogsSection> {
    let u = data.log_usage?;
    let hours = wall_time.as_secs_f64().max(1.0) / 3600.0;
    Some(LogsSection {
        per_file_cap_bytes: u.per_file_cap_bytes,
        per_run_cap_bytes: u.per_run_cap_bytes,
        written_bytes: u.written_bytes,
        kept_bytes: u.kept_bytes,
        dropped_bytes: u.dropped_bytes,
        written_per_hour_bytes: (u.written_bytes as f64 / hours) as u64,
        cuts: data.log_cuts.clone(),
    })
}

/// A size for people: "48.0 MiB", "640 KiB", "12 B".
pub fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        b if b >= KIB * KIB => format!("{:.1} MiB", b as f64 / (KIB * KIB) as f64),
        b if b >= KIB => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

impl LogsSection {
    /// "logs cut: app-1.log 3 times, 48.0 MiB dropped; nginx-access.log once, 0 B dropped", or
    /// `None` when nothing was cut.
    pub fn cut_text(&self) -> Option<String> {
        let mut by_file: std::collections::BTreeMap<&str, (u32, u64)> = Default::default();
        for c in &self.cuts {
            let e = by_file.entry(c.file.as_str()).or_default();
            e.0 += 1;
            e.1 += c.dropped_bytes;
        }
        if by_file.is_empty() {
            return None;
        }
        let files: Vec<String> = by_file
            .iter()
            .map(|(file, (times, dropped))| {
                let times = match times {
                    1 => "once".to_string(),
                    n => format!("{n} times"),
                };
                format!("{file} {times}, {} dropped", size_text(*dropped))
            })
            .collect();
        Some(format!("logs cut: {}", files.join("; ")))
    }

    /// "logs: 165.0 MiB written (330.0 MiB per hour), 128.0 MiB kept (caps 16.0 MiB per file,
    /// 256.0 MiB per run)".
    pub fn usage_text(&self) -> String {
        format!(
            "logs: {} written ({} per hour), {} kept (caps {} per file, {} per run)",
            size_text(self.written_bytes),
            size_text(self.written_per_hour_bytes),
            size_text(self.kept_bytes),
            size_text(self.per_file_cap_bytes),
            size_text(self.per_run_cap_bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        Plan::of_scenario(&crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap())
    }

    fn facts() -> RunFacts {
        RunFacts {
            run_id: "20261207T160736Z-d341".into(),
            started_at: chrono::Utc::now(),
            wall_time: Duration::from_millis(1500),
            stack_up: None,
            harness_cpu_s: 0.5,
            harness_max_rss_mb: 40.0,
            warmup: Duration::from_secs(3),
            bugs: vec!["pool-leak".into()],
            baseline: None,
            ingress: crate::platform::IngressSettings {
                implementation: "nginx".into(),
                retries: "off".into(),
                connect_timeout: "1s".into(),
                read_timeout: "5s".into(),
                fail_open: true,
                propagation_delay: "0s".into(),
            },
            platform: crate::platform::PlatformFacts::exact("local"),
        }
    }

    fn verdict(id: &str, passed: bool) -> Verdict {
        Verdict {
            id: id.into(),
            kind: "status-codes".into(),
            passed,
            evidence: String::new(),
            margins: Vec::new(),
        }
    }

    fn judged(verdicts: Vec<Verdict>) -> Ending {
        Ending::Judged {
            expectations: verdicts,
            restarts: Vec::new(),
            integrity: None,
        }
    }

    #[test]
    fn the_verdict_follows_from_how_the_run_ended() {
        assert_eq!(judged(vec![]).verdict(), RunVerdict::Pass);
        assert_eq!(
            judged(vec![verdict("a", true), verdict("b", true)]).verdict(),
            RunVerdict::Pass
        );
        assert_eq!(
            judged(vec![verdict("a", true), verdict("b", false)]).verdict(),
            RunVerdict::Fail
        );
        let aborted = Ending::Aborted {
            reason: "interrupted".into(),
            restarts: Vec::new(),
        };
        assert_eq!(aborted.verdict(), RunVerdict::Aborted);
    }

    /// report.json keeps its shape (schema 4): the same fields, in the same order, as a report
    /// written before the report's construction moved here.
    #[test]
    fn the_report_keeps_its_fields_and_their_order() {
        let data = EvidenceData::default();
        let ending = Ending::Aborted {
            reason: "stopped by Ctrl-C".into(),
            restarts: vec![Restarts {
                service: "checkout".into(),
                replica: "checkout-0".into(),
                count: 2,
            }],
        };
        let report = build(&plan(), facts(), ending, Vec::new(), &data);
        let json = serde_json::to_string(&report).unwrap();
        let keys = [
            "schema",
            "scenario",
            "summary",
            "system",
            "system_override",
            "run_id",
            "verdict",
            "aborted",
            "baseline",
            "bugs",
            "started_at",
            "wall_time_s",
            "stack_up_s",
            "harness_cpu_s",
            "load",
            "ingress",
            "platform",
            "phases",
            "expectations",
            "silent_outages_allowed",
            "restarts",
            "integrity",
            "timelines",
            "harness_stalls",
            "notes",
            "logs",
        ];
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let top: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut sorted = keys.to_vec();
        sorted.sort();
        let mut top_sorted = top.clone();
        top_sorted.sort();
        assert_eq!(top_sorted, sorted);
        // In order: each key's first appearance as a top-level field comes after the previous.
        let at = |k: &str| json.find(&format!("\"{k}\":")).unwrap();
        for pair in keys.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{} before {}", pair[0], pair[1]);
        }
        let load: Vec<&str> = value["load"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(load.len(), 8, "{load:?}");
        assert_eq!(value["schema"], 4);
        assert_eq!(value["scenario"], "pool-exhaustion");
        assert_eq!(value["verdict"], "aborted");
        assert_eq!(value["aborted"], "stopped by Ctrl-C");
        assert_eq!(value["system_override"], serde_json::Value::Null);
        assert_eq!(value["stack_up_s"], serde_json::Value::Null);
        assert_eq!(value["restarts"]["checkout-0"], 2);
        assert_eq!(
            value["load"]["model"],
            "open: constant arrival rate, seeded stationary mix"
        );
        assert_eq!(value["load"]["warmup_s"], 3.0);
        assert_eq!(value["expectations"], serde_json::json!([]));
    }

    /// A judged run's report carries its verdicts; a system given with `--system` is named twice.
    #[test]
    fn a_judged_report_carries_its_verdicts_and_the_system_override() {
        let mut plan = plan();
        plan.system_override = true;
        let data = EvidenceData::default();
        let report = build(
            &plan,
            facts(),
            judged(vec![verdict("a", true), verdict("b", false)]),
            Vec::new(),
            &data,
        );
        assert_eq!(report.verdict, RunVerdict::Fail);
        assert_eq!(report.aborted, None);
        assert_eq!(report.expectations.len(), 2);
        assert_eq!(
            report.system_override.as_deref(),
            Some(report.system.as_str())
        );
    }
}
