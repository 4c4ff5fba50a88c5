//! The report's phases: for each window the run opened, what the load was asked for and sent,
//! what came back (statuses, latency percentiles, no answers), the request mix's worst 5 s
//! window, and what the ingress's own counters saw.

use crate::evidence::{EvidenceData, Layer};
use crate::judge::{response_label, Latencies};
use crate::plan::{Plan, Window};
use crate::spec::Load;
use serde::Serialize;
use std::collections::BTreeMap;

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
    load: &Load,
    phase: Option<&str>,
    responses: &[&crate::evidence::ResponseRecord],
    start_ms: u64,
    end_ms: u64,
) -> f64 {
    let mut m = MixWindows::new(load, phase, start_ms, end_ms);
    for r in responses {
        m.add(r);
    }
    m.worst_pp()
}

/// [`mix_worst_window_pp`] as records stream by: sends counted per window and request.
struct MixWindows {
    weights: Vec<f64>,
    start_ms: u64,
    end_ms: u64,
    /// Per window (from `start_ms`, [`MIX_WINDOW_MS`] each), sends per request.
    counts: Vec<Vec<usize>>,
}

impl MixWindows {
    fn new(load: &Load, phase: Option<&str>, start_ms: u64, end_ms: u64) -> MixWindows {
        let weights: Vec<f64> = load
            .weights_in(phase)
            .into_iter()
            .map(|w| w as f64)
            .collect();
        let mut windows = 0;
        let mut from = start_ms;
        while from + MIX_WINDOW_MS / 2 <= end_ms {
            windows += 1;
            from = (from + MIX_WINDOW_MS).min(end_ms);
        }
        MixWindows {
            counts: vec![vec![0; weights.len()]; windows],
            weights,
            start_ms,
            end_ms,
        }
    }

    fn add(&mut self, r: &crate::evidence::ResponseRecord) {
        if r.attempt != 1 || r.t_ms < self.start_ms || r.t_ms >= self.end_ms {
            return;
        }
        let k = ((r.t_ms - self.start_ms) / MIX_WINDOW_MS) as usize;
        if let Some(c) = self.counts.get_mut(k).and_then(|w| w.get_mut(r.request)) {
            *c += 1;
        }
    }

    fn worst_pp(&self) -> f64 {
        let total: f64 = self.weights.iter().sum();
        let mut worst = 0.0f64;
        for counts in &self.counts {
            let n: usize = counts.iter().sum();
            if n > 0 {
                for (c, w) in counts.iter().zip(&self.weights) {
                    worst = worst.max(((*c as f64 / n as f64) - w / total).abs() * 100.0);
                }
            }
        }
        (worst * 10.0).round() / 10.0
    }
}

/// What the phase's answers add up to, as they stream by.
#[derive(Default)]
struct Answers {
    latency: Latencies,
    by_status: BTreeMap<String, usize>,
    completed: usize,
    no_response: usize,
    client_5xx: usize,
}

/// Each recorded window's figures; `windows` are those the run opened (the same order). One pass
/// over the responses file, whatever the number of phases.
pub fn phase_stats(plan: &Plan, windows: &[Window], data: &EvidenceData) -> Vec<PhaseStats> {
    let rate = plan.load.rate;
    let mut answers: Vec<Answers> = data.phases.iter().map(|_| Answers::default()).collect();
    // Sends by the time they went out, wherever their answers landed.
    let mut mixes: Vec<MixWindows> = data
        .phases
        .iter()
        .map(|w| MixWindows::new(&plan.load, Some(&w.name), w.start_ms, w.end_ms))
        .collect();
    for r in data.responses.iter() {
        for m in &mut mixes {
            m.add(&r);
        }
        let Some(a) = r.phase.and_then(|i| answers.get_mut(i)) else {
            continue;
        };
        a.latency.record(r.latency_from_schedule_ms());
        *a.by_status.entry(response_label(&r)).or_insert(0) += 1;
        if r.layer == Layer::Client {
            a.no_response += 1;
        } else {
            a.completed += 1;
        }
        a.client_5xx += usize::from(r.status >= 500);
    }
    data.phases
        .iter()
        .zip(answers)
        .zip(mixes)
        .enumerate()
        .map(|(i, ((w, a), mix))| {
            let sends = data.sends.get(i).cloned().unwrap_or_default();
            let p = a.latency.percentiles(&[50.0, 90.0, 99.0]);
            PhaseStats {
                name: w.name.clone(),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                fault: windows
                    .get(i)
                    .and_then(|w| w.fault.as_ref())
                    .map(|f| f.kind().to_string()),
                nominal: nominal_sends(&data.rates, rate, w.start_ms, w.end_ms),
                sent: sends.sent,
                late: sends.late,
                max_late_ms: sends.max_late_ms,
                retries: sends.retries,
                completed: a.completed,
                no_response: a.no_response,
                mix_worst_window_pp: mix.worst_pp(),
                by_status: a.by_status,
                client_5xx: a.client_5xx,
                edge: edge_phase(data, i),
                latency_ms: Percentiles {
                    p50: p[0],
                    p90: p[1],
                    p99: p[2],
                    max: a.latency.max(),
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

#[cfg(test)]
mod tests {
    use super::*;
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

    fn load() -> Load {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        crate::spec::load_scenario(&dir.join("pool-exhaustion.toml"))
            .unwrap()
            .load
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
        let s = load(); // checkout 3 : catalog 1
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
}
