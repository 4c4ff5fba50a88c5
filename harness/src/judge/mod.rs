//! Judges a scenario's expectations from the recorded evidence, after the run (the standing
//! no-silent-outage expectation in its own module). Each verdict has the
//! expectation's id, pass/fail, and the evidence in words (`fault: 503 without Retry-After: 0 of 812`).

mod no_silent_outage;

use crate::evidence::{
    AlertState, EvidenceData, Layer, Lifecycle, Probe, ResponseRecord, RolloutState,
};
use crate::integrity::Integrity;
use crate::spec::{ExpectSpec, Scenario};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Margin {
    /// What was measured, e.g. "checkout-0 readiness drop".
    pub what: String,
    pub bound_ms: u64,
    /// `None`: it never happened (the bound was missed outright).
    pub observed_ms: Option<u64>,
    /// bound − observed; negative when the bound was exceeded, `None` when it never happened.
    pub margin_ms: Option<i64>,
}

impl Margin {
    pub fn new(what: impl Into<String>, bound_ms: u64, observed_ms: Option<u64>) -> Margin {
        Margin {
            what: what.into(),
            bound_ms,
            observed_ms,
            margin_ms: observed_ms.map(|o| bound_ms as i64 - o as i64),
        }
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

/// What judging needs beyond the evidence.
pub struct JudgeInput<'a> {
    pub scenario: &'a Scenario,
    pub data: &'a EvidenceData,
    pub restarts: &'a [crate::evidence::Restarts],
    pub integrity: Option<&'a Integrity>,
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
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
    input
        .scenario
        .expectations
        .iter()
        .map(|e| judge_one(input, e))
        .collect()
}

fn judge_one(input: &JudgeInput, e: &ExpectSpec) -> Verdict {
    let data = input.data;
    let phase = |name: &str| {
        input
            .scenario
            .phase_index(name)
            .and_then(|i| data.phases.get(i))
    };
    // Responses in a phase, optionally only those to one load request (by name).
    let in_phase = |name: &str, request: &Option<String>| {
        let idx = input.scenario.phase_index(name);
        let req = request.as_ref().map(|r| {
            input
                .scenario
                .load
                .requests
                .iter()
                .position(|q| q.name == *r)
        });
        data.responses
            .iter()
            .filter(move |r| r.phase == idx && req.is_none_or(|q| q == Some(r.request)))
    };
    let scope = |during: &str, request: &Option<String>| match request {
        Some(r) => format!("{during} ({r})"),
        None => during.to_string(),
    };
    let mut margins: Vec<Margin> = Vec::new();
    let (kind, passed, evidence) = match e {
        ExpectSpec::StatusCodes {
            during,
            request,
            allowed,
            retry_after,
            from_app,
            ..
        } => {
            let rs: Vec<&ResponseRecord> = in_phase(during, request).collect();
            let bad: Vec<&ResponseRecord> = rs
                .iter()
                .copied()
                .filter(|r| r.layer == Layer::Client || !allowed.contains(&r.status))
                .collect();
            let mut parts = vec![format!(
                "{}: {} responses: {}",
                scope(during, request),
                rs.len(),
                mix(&histogram_of(rs.iter().copied()))
            )];
            parts.push(format!(
                "not allowed: {}{}",
                bad.len(),
                if bad.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", mix(&histogram_of(bad.iter().copied())))
                }
            ));
            if !bad.is_empty() {
                // Request ids to look up in the app's and the ingress's logs.
                let ids: Vec<String> = bad
                    .iter()
                    .take(3)
                    .map(|r| {
                        format!(
                            "{}-{}-{} ({} at {})",
                            data.request_id_prefix,
                            r.seq,
                            r.attempt,
                            response_label(r),
                            secs(r.t_ms)
                        )
                    })
                    .collect();
                parts.push(format!("first: {}", ids.join(", ")));
            }
            let mut ok = bad.is_empty() && !rs.is_empty();
            for code in retry_after {
                let with_code: Vec<_> = rs
                    .iter()
                    .filter(|r| r.status == *code && r.layer == Layer::App)
                    .collect();
                let missing = with_code.iter().filter(|r| !r.retry_after).count();
                parts.push(format!(
                    "{code} without Retry-After: {missing} of {}",
                    with_code.len()
                ));
                ok &= missing == 0;
            }
            if *from_app {
                let foreign = rs.iter().filter(|r| r.layer != Layer::App).count();
                parts.push(format!("not from the app: {foreign}"));
                ok &= foreign == 0;
            }
            if rs.is_empty() {
                parts.push("no responses recorded".into());
            }
            ("status-codes", ok, parts.join("; "))
        }
        ExpectSpec::Latency {
            during,
            request,
            percentile: p,
            below,
            ..
        } => {
            let lat: Vec<u64> = in_phase(during, request)
                .map(|r| r.latency_from_schedule_ms())
                .collect();
            let during = &scope(during, request);
            let bound = below.ms();
            let observed = percentile(&lat, *p);
            margins.push(Margin::new(format!("p{p}"), bound, observed));
            match observed {
                Some(v) => (
                    "latency",
                    v <= bound,
                    format!(
                        "{during}: p{p} = {v} ms (bound {bound} ms) over {} responses",
                        lat.len()
                    ),
                ),
                None => ("latency", false, format!("{during}: no responses recorded")),
            }
        }
        ExpectSpec::Readiness {
            service,
            during,
            drops_within,
            recovers_within,
            ..
        } => {
            let Some(w) = phase(during) else {
                return missing_phase(e);
            };
            let mut replicas: Vec<&str> = data
                .probes
                .iter()
                .filter(|p| p.probe == Probe::Readiness && p.service == *service)
                .map(|p| p.replica.as_str())
                .collect();
            replicas.sort();
            replicas.dedup();
            let (drop_bound, recover_bound) = (drops_within.ms(), recovers_within.ms());
            let mut ok = !replicas.is_empty();
            let mut parts = Vec::new();
            for rep in &replicas {
                let recs: Vec<_> = data
                    .probes
                    .iter()
                    .filter(|p| p.probe == Probe::Readiness && p.replica == *rep)
                    .collect();
                let dropped = recs
                    .iter()
                    .find(|p| !p.ok && p.t_ms >= w.start_ms && p.t_ms <= w.end_ms)
                    .map(|p| p.t_ms - w.start_ms);
                let state_at_end = recs
                    .iter()
                    .rev()
                    .find(|p| p.t_ms <= w.end_ms)
                    .is_some_and(|p| p.ok);
                let recovered = if state_at_end {
                    Some(0)
                } else {
                    recs.iter()
                        .find(|p| p.ok && p.t_ms > w.end_ms)
                        .map(|p| p.t_ms - w.end_ms)
                };
                let d_ok = dropped.is_some_and(|d| d <= drop_bound);
                let r_ok = recovered.is_some_and(|r| r <= recover_bound);
                margins.push(Margin::new(
                    format!("{rep} readiness drop"),
                    drop_bound,
                    dropped,
                ));
                margins.push(Margin::new(
                    format!("{rep} readiness recovery"),
                    recover_bound,
                    recovered,
                ));
                ok &= d_ok && r_ok;
                parts.push(format!(
                    "{rep}: not ready {} after {during} start, ready again {} after its end",
                    dropped.map_or("never".into(), secs),
                    recovered.map_or("never".into(), secs)
                ));
            }
            (
                "readiness",
                ok,
                format!(
                    "{} (bounds: drop {}, recover {})",
                    parts.join("; "),
                    secs(drop_bound),
                    secs(recover_bound)
                ),
            )
        }
        ExpectSpec::Restarts { service, max, .. } => {
            let rs: Vec<_> = input
                .restarts
                .iter()
                .filter(|r| r.service == *service)
                .collect();
            let total: u32 = rs.iter().map(|r| r.count).sum();
            let live_fail = data
                .probes
                .iter()
                .filter(|p| p.probe == Probe::Liveness && !p.ok && p.service == *service)
                .count();
            let list = rs
                .iter()
                .map(|r| format!("{}: {}", r.replica, r.count))
                .collect::<Vec<_>>()
                .join(", ");
            (
                "restarts",
                total <= *max,
                format!("{total} restarts (max {max}) [{list}]; liveness failures: {live_fail}"),
            )
        }
        ExpectSpec::Alert {
            alert,
            phase: pname,
            fires_within,
            clears_within,
            ..
        } => {
            let Some(w) = phase(pname) else {
                return missing_phase(e);
            };
            let recs: Vec<_> = data.alerts.iter().filter(|a| a.alert == *alert).collect();
            let early = recs
                .iter()
                .find(|a| a.state != AlertState::Inactive && a.t_ms < w.start_ms);
            let fired = recs
                .iter()
                .find(|a| a.state == AlertState::Firing && a.t_ms >= w.start_ms)
                .map(|a| a.t_ms);
            let cleared = fired.and_then(|f| {
                let last = recs.iter().rev().find(|a| a.t_ms >= f)?;
                (last.state == AlertState::Inactive).then(|| last.t_ms.saturating_sub(w.end_ms))
            });
            let (fb, cb) = (fires_within.ms(), clears_within.ms());
            let fired_rel = fired.map(|f| f - w.start_ms);
            margins.push(Margin::new(format!("{alert} firing"), fb, fired_rel));
            margins.push(Margin::new(format!("{alert} clearing"), cb, cleared));
            let ok = early.is_none()
                && fired_rel.is_some_and(|f| f <= fb)
                && cleared.is_some_and(|c| c <= cb);
            let mut text = format!(
                "{alert}: fired {} after {pname} start (bound {}), cleared {} after its end (bound {})",
                fired_rel.map_or("never".into(), secs),
                secs(fb),
                match (fired, cleared) {
                    (None, _) => "n/a".to_string(),
                    (Some(_), None) => "never".to_string(),
                    (Some(_), Some(c)) => secs(c),
                },
                secs(cb)
            );
            match early {
                Some(a) => text.push_str(&format!(
                    "; FALSE ALARM: {} at {} before {pname}",
                    a.state,
                    secs(a.t_ms)
                )),
                None => text.push_str(&format!("; not active before {pname}")),
            }
            if recs.is_empty() {
                text.push_str("; (no such alert rule was loaded)");
            }
            ("alert", ok, text)
        }
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
                baseline_phases: input
                    .scenario
                    .phases
                    .iter()
                    .position(|p| p.fault.is_some())
                    .unwrap_or(input.scenario.phases.len()),
            };
            let (ok, text, m) = no_silent_outage::judge(data, &settings);
            margins = m;
            ("no-silent-outage", ok, text)
        }
        ExpectSpec::Recovery { after, within, .. } => {
            let Some(w) = phase(after) else {
                return missing_phase(e);
            };
            let bound = within.ms();
            let later: Vec<_> = data
                .responses
                .iter()
                .filter(|r| r.t_ms >= w.end_ms)
                .collect();
            let is_bad = |r: &&&ResponseRecord| r.status >= 500 || r.layer == Layer::Client;
            let last_bad = later.iter().filter(is_bad).map(|r| r.t_ms - w.end_ms).max();
            let judged_after = later.iter().filter(|r| r.t_ms > w.end_ms + bound).count();
            let ok = last_bad.is_none_or(|b| b <= bound) && judged_after > 0;
            margins.push(Margin::new(
                "last 5xx/no-response after heal",
                bound,
                Some(last_bad.unwrap_or(0)),
            ));
            let bad_count = later.iter().filter(is_bad).count();
            (
                "recovery",
                ok,
                format!(
                    "after {after} ended: {bad_count} 5xx/no-response, the last {} after heal (bound {}); {judged_after} responses after the bound",
                    last_bad.map_or("none".into(), secs),
                    secs(bound)
                ),
            )
        }
        ExpectSpec::Rollout {
            service,
            phase: pname,
            outcome,
            within,
            ..
        } => {
            let Some(w) = phase(pname) else {
                return missing_phase(e);
            };
            match data.rollouts.iter().find(|r| {
                r.service == *service && r.started_ms >= w.start_ms && r.started_ms <= w.end_ms
            }) {
                None => (
                    "rollout",
                    false,
                    format!("no rollout of {service} started during {pname}"),
                ),
                Some(r) => {
                    let took = r.ended_ms.map(|end| end - r.started_ms);
                    let complete = *outcome == RolloutState::Complete;
                    if let (true, Some(b)) = (complete, within) {
                        margins.push(Margin::new("rollout duration", b.ms(), took));
                    }
                    let in_time = match (complete, within) {
                        (true, Some(bound)) => took.is_some_and(|t| t <= bound.ms()),
                        _ => true,
                    };
                    let ok = r.outcome == *outcome && in_time;
                    let bound =
                        within.map_or(String::new(), |b| format!(" (bound {})", secs(b.ms())));
                    (
                        "rollout",
                        ok,
                        format!(
                            "{} ({}): expected {outcome}{bound}, was {}: {}",
                            r.id, r.change, r.outcome, r.detail
                        ),
                    )
                }
            }
        }
        ExpectSpec::Terminations {
            service,
            phase: pname,
            ..
        } => {
            let Some(w) = phase(pname) else {
                return missing_phase(e);
            };
            let sigterms: Vec<_> = data
                .lifecycle
                .iter()
                .filter(|l| {
                    matches!(l.event, Lifecycle::Sigterm { .. })
                        && l.service == *service
                        && l.t_ms >= w.start_ms
                        && l.t_ms <= w.end_ms
                })
                .collect();
            let mut ok = !sigterms.is_empty();
            let mut parts = Vec::new();
            for t in &sigterms {
                let end = data.lifecycle.iter().find(|l| {
                    l.replica == t.replica
                        && l.t_ms >= t.t_ms
                        && matches!(
                            l.event,
                            Lifecycle::Stopped { .. } | Lifecycle::Sigkill { .. }
                        )
                });
                let end_ms = end.map_or(u64::MAX, |l| l.t_ms);
                // A readiness failure that the process itself answered (an HTTP status), not a refused connection.
                let flip = data.probes.iter().find(|p| {
                    p.replica == t.replica
                        && p.probe == Probe::Readiness
                        && !p.ok
                        && p.t_ms >= t.t_ms
                        && p.t_ms <= end_ms
                        && p.result.answered()
                });
                let last_served = data
                    .responses
                    .iter()
                    .filter(|r| r.replica.as_deref() == Some(t.replica.as_str()))
                    .map(|r| r.t_ms + r.latency_ms)
                    .max();
                let by_itself = end.is_some_and(|l| matches!(l.event, Lifecycle::Stopped { .. }));
                ok &= by_itself && flip.is_some();
                let rel = |v: u64| format!("+{:.1} s", v.saturating_sub(t.t_ms) as f64 / 1000.0);
                let pre_stop = data
                    .lifecycle
                    .iter()
                    .rev()
                    .find(|l| {
                        l.replica == t.replica
                            && matches!(l.event, Lifecycle::PreStop { .. })
                            && l.t_ms <= t.t_ms
                    })
                    .map_or(String::new(), |l| {
                        format!(
                            " (after pre-stop {} from {})",
                            l.event.describe(),
                            secs(l.t_ms)
                        )
                    });
                parts.push(format!(
                    "{}: SIGTERM at {}{pre_stop}, readiness failed {}, last request served {}, {} {}",
                    t.replica,
                    secs(t.t_ms),
                    flip.map_or("never before exit".into(), |p| rel(p.t_ms)),
                    last_served.map_or("never".into(), |v| if v >= t.t_ms {
                        rel(v)
                    } else {
                        format!("{} before", secs(t.t_ms - v))
                    }),
                    match end {
                        Some(l) if matches!(l.event, Lifecycle::Stopped { .. }) => {
                            format!("exited {}", rel(l.t_ms))
                        }
                        Some(l) => format!("SIGKILLed {}", rel(l.t_ms)),
                        None => "never exited".into(),
                    },
                    end.map_or(String::new(), |l| format!("({})", l.event.describe())),
                ));
            }
            if sigterms.is_empty() {
                parts.push(format!(
                    "no replica of {service} got SIGTERM during {pname}"
                ));
            }
            ("terminations", ok, parts.join("; "))
        }
        ExpectSpec::DataIntegrity { .. } => match input.integrity {
            Some(i) => ("data-integrity", i.ok(), i.summary()),
            None => (
                "data-integrity",
                false,
                "the integrity check could not run".into(),
            ),
        },
    };
    Verdict {
        id: e.id().to_string(),
        kind: kind.into(),
        passed,
        evidence,
        margins,
    }
}

fn missing_phase(e: &ExpectSpec) -> Verdict {
    Verdict {
        id: e.id().into(),
        kind: "invalid".into(),
        passed: false,
        evidence: "refers to a phase that was not run".into(),
        margins: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
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

    /// Facts, not names: a service whose name starts with another's ("checkout-worker") is not
    /// counted as that one ("checkout"), because every record carries its service.
    #[test]
    fn restarts_are_counted_by_the_service_each_record_names() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let scenario = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
        let data = EvidenceData::default();
        let restarts = |n: u32| {
            vec![
                crate::evidence::Restarts {
                    service: "checkout-worker".into(),
                    replica: "checkout-worker-0".into(),
                    count: 3,
                },
                crate::evidence::Restarts {
                    service: "checkout".into(),
                    replica: "checkout-0".into(),
                    count: n,
                },
            ]
        };
        let verdict = |rs: &[crate::evidence::Restarts]| {
            judge(&JudgeInput {
                scenario: &scenario,
                data: &data,
                restarts: rs,
                integrity: None,
            })
            .into_iter()
            .find(|v| v.id == "liveness-holds")
            .unwrap()
        };
        let v = verdict(&restarts(0));
        assert!(v.passed, "{}", v.evidence);
        assert!(
            v.evidence.starts_with("0 restarts (max 0) [checkout-0: 0]"),
            "{}",
            v.evidence
        );
        let v = verdict(&restarts(2));
        assert!(!v.passed, "{}", v.evidence);
    }
}
