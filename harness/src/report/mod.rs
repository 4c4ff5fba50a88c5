//! Run reports: `report.json` (stable schema, versioned by `schema`), `report.md`,
//! `report.html` (self-contained, with timelines: `html`), `junit.xml` for CI (`junit`), and
//! `responses.jsonl` (every recorded response), in
//! `reports/<scenario>/<run-id>/` beside the component logs; `reports/<scenario>/latest` points at
//! the newest run. The report is built from the run's plan, facts, ending and evidence (`build`),
//! each window's figures computed once (`phases`); `terminal` prints its summary.

mod build;
pub mod html;
pub mod junit;
pub mod phases;
pub mod terminal;

pub use build::{build, Ending, RunFacts, RunVerdict};
pub use phases::{phase_stats, PhaseStats};

use crate::evidence::{
    AlertRecord, EventRecord, EvidenceData, Layer, LifecycleRecord, ProbeRecord, RolloutRecord,
};
use crate::integrity::Integrity;
use crate::judge::Verdict;
use crate::platform::IngressSettings;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// 3: `verdict` may be `aborted` (with `aborted`, the reason), `stack_up_s` may be null,
/// `baseline`, margins carry `measure`. 4: `notes`, `load.rates` (game days).
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Serialize)]
pub struct Report {
    pub schema: u32,
    pub scenario: String,
    pub summary: String,
    /// The system file the scenario ran against.
    pub system: String,
    /// That system file, as given with `--system` (instead of the scenario's own).
    pub system_override: Option<String>,
    pub run_id: String,
    pub verdict: RunVerdict,
    /// Why the run was aborted (verdict `aborted`): nothing was judged, the rest is what was
    /// recorded until then.
    pub aborted: Option<String>,
    /// The baseline report this run was compared with (the `regression` expectation).
    pub baseline: Option<String>,
    pub bugs: Vec<String>,
    pub started_at: String,
    pub wall_time_s: f64,
    /// Time until the whole system was up; `None` when it never was (an aborted run).
    pub stack_up_s: Option<f64>,
    pub harness_cpu_s: f64,
    pub load: LoadInfo,
    pub ingress: IngressSettings,
    /// Where the run ran: the platform, its Kubernetes version, the probe times it rounded up.
    pub platform: crate::platform::PlatformFacts,
    pub phases: Vec<PhaseStats>,
    pub expectations: Vec<Verdict>,
    /// Why the scenario opted out of the standing no-silent-outage expectation, if it did.
    pub silent_outages_allowed: Option<String>,
    pub restarts: BTreeMap<String, u32>,
    pub integrity: Option<Integrity>,
    pub timelines: Timelines,
    /// Moments the harness's own runtimes woke up late (load driver, fault proxies).
    pub harness_stalls: Vec<crate::evidence::StallRecord>,
    /// Notes written during a game day, in time order (none for a scenario).
    pub notes: Vec<crate::evidence::NoteRecord>,
    /// The component logs: written, kept, dropped, the caps and every cut (`None`: the platform
    /// does not bound them itself). Added at the end (H-logs).
    pub logs: Option<build::LogsSection>,
}

#[derive(Serialize)]
pub struct LoadInfo {
    pub model: String,
    pub rate: u32,
    pub max_in_flight: u32,
    pub timeout_s: f64,
    pub warmup_s: f64,
    /// Scheduled sends during the warm-up (not judged).
    pub warmup_sent: u64,
    /// The harness process's largest resident set until the end of this run (for `prove` and
    /// `suite`, which run scenarios in one process: over every run so far).
    pub harness_max_rss_mb: f64,
    /// Every rate the load ran at, from when (a game day's `rate` changes it).
    pub rates: Vec<crate::evidence::RateRecord>,
}

#[derive(Serialize)]
pub struct Timelines {
    pub probes: Vec<ProbeRecord>,
    pub lifecycle: Vec<LifecycleRecord>,
    pub alerts: Vec<AlertRecord>,
    pub rollouts: Vec<RolloutRecord>,
    /// Rollouts rolled back on an alert, with the time to detect and to recover.
    pub rollbacks: Vec<RollbackSummary>,
    pub events: Vec<EventRecord>,
}

/// A rollback on an alert as a deploy pipeline would report it.
#[derive(Serialize, Debug, PartialEq)]
pub struct RollbackSummary {
    pub service: String,
    pub alert: String,
    pub rollout_started_ms: u64,
    /// The first 5xx (or no answer) a client got after the rollout began.
    pub first_failure_ms: Option<u64>,
    pub alert_fired_ms: u64,
    pub rolled_back_ms: u64,
    /// The last 5xx (or no answer) a client got after the rollout began.
    pub last_failure_ms: Option<u64>,
    /// From the first failure clients saw to the alert firing.
    pub time_to_detect_ms: Option<u64>,
    /// From the first failure clients saw to the last one (the rollback serving again).
    pub time_to_recover_ms: Option<u64>,
    /// 5xx and no-answers clients got between the rollout's start and the last failure.
    pub failed_answers: usize,
}

/// The rollbacks of a run, with what clients saw around them.
pub fn rollback_summaries(data: &EvidenceData) -> Vec<RollbackSummary> {
    data.rollbacks
        .iter()
        .map(|b| {
            // Failures from the rollout's start until the next rollout of anything (or the end).
            let until = data
                .rollouts
                .iter()
                .map(|r| r.started_ms)
                .filter(|t| *t > b.rolled_back_ms)
                .min()
                .unwrap_or(u64::MAX);
            // One pass over the responses file: the first, the last and how many.
            let (mut first, mut last, mut failed_answers) = (None::<u64>, None::<u64>, 0usize);
            for r in data
                .responses
                .iter()
                .filter(|r| r.t_ms >= b.rollout_started_ms && r.t_ms < until)
                .filter(|r| r.layer == Layer::Client || r.status >= 500)
            {
                first = Some(first.map_or(r.t_ms, |f| f.min(r.t_ms)));
                last = last.max(Some(r.t_ms));
                failed_answers += 1;
            }
            RollbackSummary {
                service: b.service.clone(),
                alert: b.alert.clone(),
                rollout_started_ms: b.rollout_started_ms,
                first_failure_ms: first,
                alert_fired_ms: b.alert_fired_ms,
                rolled_back_ms: b.rolled_back_ms,
                last_failure_ms: last,
                time_to_detect_ms: first.map(|f| b.alert_fired_ms.saturating_sub(f)),
                time_to_recover_ms: first.zip(last).map(|(f, l)| l - f),
                failed_answers,
            }
        })
        .collect()
}

pub fn timelines(data: &EvidenceData) -> Timelines {
    Timelines {
        probes: data.probes.clone(),
        lifecycle: data.lifecycle.clone(),
        alerts: data.alerts.clone(),
        rollouts: data.rollouts.clone(),
        rollbacks: rollback_summaries(data),
        events: data.events.clone(),
    }
}

/// Writes every report file into `dir` and points `latest` at it.
pub fn write(dir: &Path, report: &Report, data: &EvidenceData) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    std::fs::write(dir.join("report.html"), html::render(report, data))?;
    std::fs::write(
        dir.join("junit.xml"),
        junit::render("brownout", vec![junit::suite(report)]),
    )?;
    // A run's responses were written to `dir` as they arrived: only evidence kept elsewhere
    // (hand-built, or a run streaming to another directory) is copied.
    data.responses.copy_to(&dir.join("responses.jsonl"))?;
    if let Some(parent) = dir.parent() {
        let latest = parent.join("latest");
        let _ = std::fs::remove_file(&latest);
        if let Some(name) = dir.file_name() {
            std::os::unix::fs::symlink(name, &latest)?;
        }
    }
    Ok(())
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The report's platform line: the platform, its Kubernetes version, the probe times it rounded.
pub fn platform_text(f: &crate::platform::PlatformFacts) -> String {
    use crate::platform::ProbeField;
    let mut s = format!("- platform: {}", f.platform);
    if let Some(v) = &f.kubernetes_version {
        s.push_str(&format!(", Kubernetes {v}"));
    }
    if !f.rounded_probe_times.is_empty() {
        let each: Vec<String> = f
            .rounded_probe_times
            .iter()
            .map(|r| {
                let probe = match r.probe {
                    crate::evidence::Probe::Readiness => "readiness",
                    crate::evidence::Probe::Liveness => "liveness",
                };
                let field = match r.field {
                    ProbeField::Period => "period",
                    ProbeField::Timeout => "timeout",
                };
                format!(
                    "{} {probe} {field} {} ms runs as {} ms",
                    r.service, r.asked_ms, r.runs_ms
                )
            })
            .collect();
        s.push_str(&format!(
            "; probe times rounded up to whole seconds (the probes run slower than the system file says): {}",
            each.join(", ")
        ));
    }
    s.push_str("\n\n");
    s
}

pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "# {} — {}\n\n{}\n\n- system: `{}`\n- run: `{}` (started {})\n- bugs: {}\n- wall time: {:.1} s (stack up in {}), harness CPU {:.1} s\n- load: {}, {} req/s, at most {} in flight, client timeout {:.1} s, warm-up {:.0} s (not judged); harness max RSS {:.0} MB\n- ingress: {}, retries `{}`, connect timeout {}, read timeout {}, fail-open {}, endpoint propagation delay {}\n",
        r.scenario, r.verdict.to_string().to_uppercase(), r.summary, r.system, r.run_id, r.started_at,
        if r.bugs.is_empty() { "none (hardened app)".to_string() } else { r.bugs.join(", ") },
        r.wall_time_s, r.stack_up_s.map_or("never".into(), |s| format!("{s:.1} s")), r.harness_cpu_s, r.load.model, r.load.rate, r.load.max_in_flight, r.load.timeout_s, r.load.warmup_s, r.load.harness_max_rss_mb,
        r.ingress.implementation, r.ingress.retries, r.ingress.connect_timeout, r.ingress.read_timeout, r.ingress.fail_open, r.ingress.propagation_delay
    );
    s.push_str(&platform_text(&r.platform));
    if let Some(reason) = &r.aborted {
        s.push_str(&format!(
            "**Aborted**: {reason}. Nothing was judged; below is what was recorded until then.\n\n"
        ));
    }
    s.push_str("## Expectations\n\n| id | kind | verdict | evidence |\n|---|---|---|---|\n");
    if let Some(why) = &r.silent_outages_allowed {
        s.push_str(&format!(
            "| no-silent-outage | no-silent-outage | off | the scenario opts out: {} |\n",
            why.replace('|', "\\|")
        ));
    }
    for v in &r.expectations {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            v.id,
            v.kind,
            if v.passed { "pass" } else { "**FAIL**" },
            v.evidence.replace('|', "\\|")
        ));
    }
    s.push_str("\n## Phases\n\nLatency is measured from each send's schedule. *sent* counts scheduled sends that went out (retries apart), *late* those that started over 100 ms after their schedule, *mix* the worst 5 s window's distance from the declared weights. *5xx client / edge*: the 5xx clients got, beside those the ingress's edge metrics counted (what the edge alert rules see; in brackets, made by the ingress itself).\n\n| phase | fault | nominal | sent | late | retries | mix (pp) | completed | no response | 5xx client / edge | statuses | p50 | p90 | p99 | max (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for p in &r.phases {
        let statuses = p.statuses_text();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.name,
            p.fault.as_deref().unwrap_or("-"),
            p.nominal,
            p.sent,
            p.late,
            p.retries,
            p.mix_worst_window_pp,
            p.completed,
            p.no_response,
            p.five_xx_text(),
            statuses,
            opt(p.latency_ms.p50),
            opt(p.latency_ms.p90),
            opt(p.latency_ms.p99),
            opt(p.latency_ms.max)
        ));
    }
    if !r.timelines.rollbacks.is_empty() {
        s.push_str("\n## Rollbacks on alert\n\nAs a deploy pipeline reports them: *detect* runs from the first 5xx (or no answer) a client got after the rollout began to the alert firing, *recover* from that first failure to the last one.\n\n| service | alert | rollout began | first failure | alert fired | rolled back | last failure | time to detect | time to recover | failed answers |\n|---|---|---|---|---|---|---|---|---|---|\n");
        let at = |t: Option<u64>| t.map_or("—".into(), |t| format!("{:.1} s", t as f64 / 1000.0));
        for b in &r.timelines.rollbacks {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                b.service,
                b.alert,
                at(Some(b.rollout_started_ms)),
                at(b.first_failure_ms),
                at(Some(b.alert_fired_ms)),
                at(Some(b.rolled_back_ms)),
                at(b.last_failure_ms),
                at(b.time_to_detect_ms),
                at(b.time_to_recover_ms),
                b.failed_answers
            ));
        }
    }
    s.push_str("\n## Timeline\n\n");
    let mut lines: Vec<(u64, String)> = Vec::new();
    for e in &r.timelines.events {
        lines.push((e.t_ms, e.what.clone()));
    }
    for l in &r.timelines.lifecycle {
        lines.push((
            l.t_ms,
            format!("{} {}: {}", l.replica, l.event.name(), l.event.describe()),
        ));
    }
    for p in &r.timelines.probes {
        lines.push((
            p.t_ms,
            format!(
                "{} {:?} {}: {}",
                p.replica,
                p.probe,
                if p.ok { "ok" } else { "FAIL" },
                p.result.describe()
            ),
        ));
    }
    for a in &r.timelines.alerts {
        lines.push((a.t_ms, format!("alert {} → {}", a.alert, a.state)));
    }
    for p in &r.phases {
        lines.push((p.start_ms, format!("phase {} begins", p.name)));
    }
    lines.sort_by_key(|(t, _)| *t);
    for (t, l) in lines {
        s.push_str(&format!("- `{:>7.1} s` {}\n", t as f64 / 1000.0, l));
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            s.push_str(&format!(
                "- `{:>7.1} s` {}\n",
                n.t_ms as f64 / 1000.0,
                n.text.replace('\n', " ")
            ));
        }
    }
    if let Some(logs) = &r.logs {
        s.push_str(&format!("\n## Logs\n\n{}\n", logs.usage_text()));
        if let Some(cut) = logs.cut_text() {
            s.push_str(&format!("\n{cut}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report states the platform, the Kubernetes version and every probe time the
    /// platform rounded up; the local platform's line is just its name.
    #[test]
    fn the_report_states_the_platform_its_version_and_rounded_probe_times() {
        use crate::platform::{PlatformFacts, ProbeField, RoundedProbeTime};
        assert_eq!(
            platform_text(&PlatformFacts::exact("local")),
            "- platform: local\n\n"
        );
        let facts = PlatformFacts {
            platform: "kubernetes".into(),
            kubernetes_version: Some("v1.34.0".into()),
            rounded_probe_times: vec![RoundedProbeTime {
                service: "checkout".into(),
                probe: crate::evidence::Probe::Readiness,
                field: ProbeField::Timeout,
                asked_ms: 800,
                runs_ms: 1000,
            }],
        };
        let text = platform_text(&facts);
        assert!(
            text.starts_with("- platform: kubernetes, Kubernetes v1.34.0; probe times rounded up")
                && text.contains("checkout readiness timeout 800 ms runs as 1000 ms"),
            "{text}"
        );
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(json["rounded_probe_times"][0]["probe"], "readiness");
        assert_eq!(json["rounded_probe_times"][0]["field"], "timeout");
    }

    #[test]
    fn a_rollback_on_alert_gets_its_time_to_detect_and_to_recover_from_what_clients_saw() {
        use crate::evidence::{ResponseRecord, RollbackRecord, RolloutRecord, RolloutState};
        let mut d = EvidenceData::default();
        let answer = |t_ms: u64, status: u16| -> ResponseRecord {
            let layer = if status == 0 {
                Layer::Client
            } else {
                Layer::App
            };
            crate::judge::testkit::response(t_ms, 0, status, layer, 5)
        };
        // A 500 before the rollout is not its doing; then 500s from 15 s to 25 s; a later
        // rollout's failures are not counted.
        d.responses = vec![
            answer(5_000, 500),
            answer(14_000, 200),
            answer(15_000, 500),
            answer(20_000, 0),
            answer(25_000, 500),
            answer(26_000, 200),
            answer(41_000, 500),
        ]
        .into_iter()
        .collect();
        for (id, started_ms) in [("checkout@r2", 13_800), ("checkout@r3", 40_000)] {
            d.rollouts.push(RolloutRecord {
                id: id.into(),
                service: "checkout".into(),
                change: String::new(),
                started_ms,
                ended_ms: None,
                outcome: RolloutState::InProgress,
                detail: String::new(),
            });
        }
        d.rollbacks.push(RollbackRecord {
            service: "checkout".into(),
            alert: "CheckoutHigh5xxRatio".into(),
            rollout_started_ms: 13_800,
            alert_fired_ms: 21_800,
            rolled_back_ms: 23_900,
        });
        let s = &rollback_summaries(&d)[0];
        assert_eq!(s.first_failure_ms, Some(15_000));
        assert_eq!(s.last_failure_ms, Some(25_000));
        assert_eq!(s.time_to_detect_ms, Some(6_800));
        assert_eq!(s.time_to_recover_ms, Some(10_000));
        assert_eq!(s.failed_answers, 3);
    }
}
