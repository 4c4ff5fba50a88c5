//! Run reports: `report.json` (stable schema, versioned by `schema`), `report.md`,
//! `report.html` (self-contained, with timelines: `html`), `junit.xml` for CI (`junit`), and
//! `responses.jsonl` (every recorded response), in
//! `reports/<scenario>/<run-id>/` beside the component logs; `reports/<scenario>/latest` points at
//! the newest run.

pub mod html;
pub mod junit;

use crate::evidence::{
    AlertRecord, EventRecord, EvidenceData, Layer, LifecycleRecord, ProbeRecord, RolloutRecord,
};
use crate::integrity::Integrity;
use crate::judge::{percentile, response_label, Verdict};
use crate::platform::IngressSettings;
use crate::runner::RunVerdict;
use crate::spec::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
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
pub struct PhaseStats {
    pub name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub fault: Option<String>,
    /// rate × duration (over each rate the load ran at in the phase): what was asked for.
    pub nominal: u64,
    /// Scheduled sends that went out in the phase (measured).
    pub sent: u64,
    /// Of those, sent later than scheduled by more than 100 ms.
    pub late: u64,
    pub max_late_ms: u64,
    /// Retries sent in the phase (not counted in `sent`).
    pub retries: u64,
    /// Answers with an HTTP status (any attempt).
    pub completed: usize,
    /// Client timeouts and connection errors (any attempt).
    pub no_response: usize,
    /// The largest distance, in percentage points, between a load request's share of the scheduled
    /// sends in any 5 s window of the phase and its declared weight.
    pub mix_worst_window_pp: f64,
    pub by_status: BTreeMap<String, usize>,
    /// 5xx answers clients got in the phase, whoever made them (no-response apart).
    pub client_5xx: usize,
    /// What the ingress's edge metrics (the counters alert rules see) counted in the phase;
    /// `None` when the platform has no edge metrics.
    pub edge: Option<EdgePhase>,
    /// Latency from each send's schedule (lateness included), every attempt.
    pub latency_ms: Percentiles,
}

/// The ingress's own count of one phase's answers: the difference of its counters between the
/// phase's start and the next phase's (or the end of the load).
#[derive(Serialize, Debug, PartialEq)]
pub struct EdgePhase {
    pub answers: u64,
    pub s5xx: u64,
    /// Of the 5xx, those the ingress made itself (not relayed from an upstream).
    pub s5xx_by_ingress: u64,
}

/// Phase `i`'s edge counts, from the snapshot taken at its start and the next one.
pub fn edge_phase(data: &EvidenceData, i: usize) -> Option<EdgePhase> {
    let (from, to) = (data.edge.get(i)?, data.edge.get(i + 1)?);
    let sum = |snap: &crate::evidence::EdgeSnapshot,
               f: &dyn Fn(&crate::evidence::EdgeCount) -> bool|
     -> u64 { snap.counts.iter().filter(|c| f(c)).map(|c| c.answers).sum() };
    let delta =
        |f: &dyn Fn(&crate::evidence::EdgeCount) -> bool| sum(to, f).saturating_sub(sum(from, f));
    Some(EdgePhase {
        answers: delta(&|_| true),
        s5xx: delta(&|c| c.status >= 500),
        s5xx_by_ingress: delta(&|c| c.status >= 500 && c.layer == Layer::Ingress),
    })
}

#[derive(Serialize)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
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
            let failures: Vec<u64> = data
                .responses
                .iter()
                .filter(|r| r.t_ms >= b.rollout_started_ms && r.t_ms < until)
                .filter(|r| r.layer == Layer::Client || r.status >= 500)
                .map(|r| r.t_ms)
                .collect();
            let first = failures.iter().min().copied();
            let last = failures.iter().max().copied();
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
                failed_answers: failures.len(),
            }
        })
        .collect()
}

impl PhaseStats {
    /// The figures a baseline comparison looks at.
    pub fn figures(&self) -> crate::judge::regression::PhaseFigures {
        crate::judge::regression::PhaseFigures {
            name: self.name.clone(),
            completed: self.completed,
            no_response: self.no_response,
            client_5xx: self.client_5xx,
            latency_ms: crate::judge::regression::P99 {
                p99: self.latency_ms.p99,
            },
        }
    }

    /// "386 / 387 (387 by ingress)": client-seen 5xx beside the edge-counted ones.
    pub fn five_xx_text(&self) -> String {
        match &self.edge {
            Some(e) => format!(
                "{} / {} ({} by ingress)",
                self.client_5xx, e.s5xx, e.s5xx_by_ingress
            ),
            None => format!("{} / -", self.client_5xx),
        }
    }

    /// "200×27, 503×404": the status mix in words.
    pub fn statuses_text(&self) -> String {
        self.by_status
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Window over which the request mix is checked.
pub const MIX_WINDOW_MS: u64 = 5_000;

/// The worst distance (percentage points) of any request's share from its weight, over the
/// consecutive 5 s windows of `[start_ms, end_ms)`, counting scheduled sends (first attempts).
/// A trailing window shorter than half a window is left out (too few sends to mean anything).
/// The weights are those of phase `phase` (requests with `during` count only in their phases).
pub fn mix_worst_window_pp(
    scenario: &Scenario,
    phase: Option<&str>,
    responses: &[&crate::evidence::ResponseRecord],
    start_ms: u64,
    end_ms: u64,
) -> f64 {
    let weights: Vec<f64> = scenario
        .load
        .weights_in(phase)
        .into_iter()
        .map(|w| w as f64)
        .collect();
    let total: f64 = weights.iter().sum();
    let mut worst = 0.0f64;
    let mut from = start_ms;
    while from + MIX_WINDOW_MS / 2 <= end_ms {
        let to = (from + MIX_WINDOW_MS).min(end_ms);
        let mut counts = vec![0usize; weights.len()];
        for r in responses {
            if r.attempt == 1 && r.t_ms >= from && r.t_ms < to {
                counts[r.request] += 1;
            }
        }
        let n: usize = counts.iter().sum();
        if n > 0 {
            for (c, w) in counts.iter().zip(&weights) {
                worst = worst.max(((*c as f64 / n as f64) - w / total).abs() * 100.0);
            }
        }
        from = to;
    }
    (worst * 10.0).round() / 10.0
}

pub fn phase_stats(scenario: &Scenario, data: &EvidenceData, rate: u32) -> Vec<PhaseStats> {
    data.phases
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let rs: Vec<_> = data
                .responses
                .iter()
                .filter(|r| r.phase == Some(i))
                .collect();
            let lat: Vec<u64> = rs.iter().map(|r| r.latency_from_schedule_ms()).collect();
            let sends = data.sends.get(i).cloned().unwrap_or_default();
            let mut by_status = BTreeMap::new();
            for r in &rs {
                *by_status.entry(response_label(r)).or_insert(0) += 1;
            }
            PhaseStats {
                name: w.name.clone(),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                fault: scenario
                    .phases
                    .get(i)
                    .and_then(|p| p.fault.as_ref())
                    .map(|f| f.kind().to_string()),
                nominal: nominal_sends(&data.rates, rate, w.start_ms, w.end_ms),
                sent: sends.sent,
                late: sends.late,
                max_late_ms: sends.max_late_ms,
                retries: sends.retries,
                completed: rs.iter().filter(|r| r.layer != Layer::Client).count(),
                no_response: rs.iter().filter(|r| r.layer == Layer::Client).count(),
                // Sends by the time they went out, wherever their answers landed.
                mix_worst_window_pp: mix_worst_window_pp(
                    scenario,
                    Some(&w.name),
                    &data.responses.iter().collect::<Vec<_>>(),
                    w.start_ms,
                    w.end_ms,
                ),
                by_status,
                client_5xx: rs.iter().filter(|r| r.status >= 500).count(),
                edge: edge_phase(data, i),
                latency_ms: Percentiles {
                    p50: percentile(&lat, 50.0),
                    p90: percentile(&lat, 90.0),
                    p99: percentile(&lat, 99.0),
                    max: lat.iter().max().copied(),
                },
            }
        })
        .collect()
}

/// Sends the load was asked for in `[start_ms, end_ms)`: each rate in force (from `rates`, or
/// `rate` before the first record) times how long it was.
pub fn nominal_sends(
    rates: &[crate::evidence::RateRecord],
    rate: u32,
    start_ms: u64,
    end_ms: u64,
) -> u64 {
    let mut total_milli = 0u64;
    let mut t = start_ms;
    let mut current = rates
        .iter()
        .rev()
        .find(|r| r.t_ms <= start_ms)
        .map_or(rate, |r| r.rate);
    for r in rates
        .iter()
        .filter(|r| r.t_ms > start_ms && r.t_ms < end_ms)
    {
        total_milli += (r.t_ms - t) * current as u64;
        t = r.t_ms;
        current = r.rate;
    }
    total_milli += end_ms.saturating_sub(t) * current as u64;
    total_milli / 1000
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
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("responses.jsonl"))?);
    for r in &data.responses {
        serde_json::to_writer(&mut f, r)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
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
    use crate::evidence::ResponseRecord;

    fn send(t_ms: u64, request: usize) -> ResponseRecord {
        ResponseRecord {
            t_ms,
            phase: Some(0),
            request,
            attempt: 1,
            late_ms: 0,
            status: 200,
            latency_ms: 1,
            layer: Layer::App,
            replica: None,
            upstream: None,
            retry_after: false,
            seq: 0,
            error: None,
        }
    }

    fn scenario() -> Scenario {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        crate::spec::load_scenario(&dir.join("pool-exhaustion.toml")).unwrap()
    }

    #[test]
    fn nominal_sends_follow_every_rate_change() {
        use crate::evidence::RateRecord;
        let rates = [
            RateRecord { t_ms: 0, rate: 10 },
            RateRecord {
                t_ms: 5_000,
                rate: 100,
            },
            RateRecord {
                t_ms: 7_000,
                rate: 1,
            },
        ];
        // 5 s at 10 + 2 s at 100 + 3 s at 1.
        assert_eq!(nominal_sends(&rates, 10, 0, 10_000), 50 + 200 + 3);
        // A window inside one rate, and one that starts mid-rate.
        assert_eq!(nominal_sends(&rates, 10, 5_000, 6_000), 100);
        assert_eq!(nominal_sends(&rates, 10, 6_000, 8_000), 101);
        // No records: the declared rate.
        assert_eq!(nominal_sends(&[], 40, 0, 2_500), 100);
    }

    #[test]
    fn the_mix_check_finds_a_window_that_strays_from_the_weights() {
        let s = scenario(); // checkout 3 : catalog 1
                            // 10 s at 40/s: the first 5 s keep 3:1, the second 5 s sends only checkouts.
        let mut rs: Vec<ResponseRecord> = (0..200)
            .map(|i| send(i * 25, usize::from(i % 4 == 3)))
            .collect();
        rs.extend((200..400).map(|i| send(i * 25, 0)));
        let refs: Vec<&ResponseRecord> = rs.iter().collect();
        assert_eq!(mix_worst_window_pp(&s, None, &refs[..200], 0, 5_000), 0.0);
        assert_eq!(mix_worst_window_pp(&s, None, &refs, 0, 10_000), 25.0);
        // Retries do not count as sends.
        let mut retried = rs[..200].to_vec();
        retried.extend((0..100).map(|i| ResponseRecord {
            attempt: 2,
            ..send(i * 50, 0)
        }));
        let refs: Vec<&ResponseRecord> = retried.iter().collect();
        assert_eq!(mix_worst_window_pp(&s, None, &refs, 0, 5_000), 0.0);
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
        ];
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
