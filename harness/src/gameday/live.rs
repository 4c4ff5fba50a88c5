//! The live view of a game day: what the page and `brownout gameday status` show, rebuilt once a
//! second from the evidence. Answers are counted per second of arrival (app 2xx/4xx/5xx/503,
//! ingress-made 5xx, no response) for the last [`HISTORY_S`] seconds; a second's latencies are kept
//! only while the last-10-s shares may need them ([`LATENCIES_S`]), then its percentiles are frozen
//! and the latencies dropped: the view costs the same in the second hour as in the first minute,
//! and a few seconds of answers, not ten minutes of them, at any rate.

use crate::evidence::{AlertState, EvidenceData, Layer, Lifecycle, Probe};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Seconds of history the view keeps.
pub const HISTORY_S: u64 = 600;
/// Seconds whose latencies are kept (the last-10-s shares, and answers recorded up to a few
/// seconds after they arrived: the responses file is flushed every second, folded every second).
pub const LATENCIES_S: u64 = 15;

/// One second of answers, by when they arrived.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    pub t_s: u64,
    pub ok: u32,
    pub s4xx: u32,
    /// 5xx made by an app replica (503 included).
    pub app_5xx: u32,
    /// Of those, 503.
    pub app_503: u32,
    /// 5xx the ingress made itself (502/504 after an upstream failed).
    pub ingress_5xx: u32,
    /// No HTTP answer (timeout, connection error).
    pub none: u32,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

impl Second {
    pub fn answers(&self) -> u32 {
        self.ok + self.s4xx + self.app_5xx + self.ingress_5xx + self.none
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaView {
    pub service: String,
    pub replica: String,
    pub ready: Option<bool>,
    pub live: Option<bool>,
    pub restarts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertView {
    pub alert: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultView {
    pub name: String,
    pub kind: String,
    pub what: String,
    pub since_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseView {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoteView {
    pub t_s: f64,
    pub text: String,
}

/// Shares of the answers that arrived in the last 10 s.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Shares {
    pub answers: u32,
    pub s5xx: f64,
    pub app_503: f64,
    pub ingress_5xx: f64,
    pub none: f64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct View {
    /// Seconds since the game day began.
    pub t_s: f64,
    /// Where the game day is: starting, running, healing, ended.
    pub stage: String,
    pub rate: u32,
    pub max_rate: u32,
    pub cap_s: u64,
    pub phase: Option<String>,
    pub last_10s: Shares,
    pub seconds: Vec<Second>,
    pub replicas: Vec<ReplicaView>,
    pub alerts: Vec<AlertView>,
    pub faults: Vec<FaultView>,
    pub phases: Vec<PhaseView>,
    pub notes: Vec<NoteView>,
    /// The last events (injections, heals, lifecycle), newest last.
    pub events: Vec<String>,
    /// The report, once written.
    pub report: Option<String>,
}

/// Folds new responses into per-second counts; keeps only the last [`HISTORY_S`] seconds.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// How far into the evidence's responses file (bytes) was folded in already.
    cursor: u64,
    seconds: VecDeque<Slot>,
}

/// One second of the history: its counts, and its latencies until its percentiles are frozen.
#[derive(Debug, Default)]
struct Slot {
    second: Second,
    latencies: Vec<u32>,
    /// Percentiles taken and latencies dropped: later answers still count, their latencies not.
    frozen: bool,
}

impl Slot {
    fn new(t_s: u64) -> Slot {
        Slot {
            second: Second {
                t_s,
                ..Second::default()
            },
            ..Slot::default()
        }
    }

    /// The second with its percentiles.
    fn with_percentiles(&self) -> Second {
        if self.frozen {
            return self.second.clone();
        }
        let (p50, p99) = percentiles(&self.latencies);
        Second {
            p50_ms: p50,
            p99_ms: p99,
            ..self.second.clone()
        }
    }
}

impl Aggregator {
    /// Folds in the responses recorded since the last call.
    pub fn fold(&mut self, d: &EvidenceData) {
        // Only what was recorded since the last call is read from the responses file.
        let mut new = d.responses.iter_from(self.cursor);
        for r in &mut new {
            let r = &r;
            let t_s = (r.t_ms + r.latency_ms) / 1000;
            let Some(front) = self.seconds.front().map(|s| s.second.t_s) else {
                self.seconds.push_back(Slot::new(t_s));
                self.add(r);
                continue;
            };
            if t_s < front {
                continue; // older than the history kept
            }
            self.add(r);
        }
        self.cursor = new.position();
        while let (Some(f), Some(b)) = (self.seconds.front(), self.seconds.back()) {
            if b.second.t_s - f.second.t_s >= HISTORY_S {
                self.seconds.pop_front();
            } else {
                break;
            }
        }
        let newest = self.seconds.back().map_or(0, |s| s.second.t_s);
        for slot in self
            .seconds
            .iter_mut()
            .rev()
            .skip_while(|s| newest - s.second.t_s < LATENCIES_S)
            .take_while(|s| !s.frozen)
        {
            slot.second = slot.with_percentiles();
            slot.latencies = Vec::new();
            slot.frozen = true;
        }
    }

    fn add(&mut self, r: &crate::evidence::ResponseRecord) {
        let t_s = (r.t_ms + r.latency_ms) / 1000;
        let back = self.seconds.back().map_or(t_s, |s| s.second.t_s);
        for t in back + 1..=t_s {
            self.seconds.push_back(Slot::new(t));
        }
        let front = self.seconds.front().map_or(0, |s| s.second.t_s);
        let Some(slot) = self.seconds.get_mut((t_s - front) as usize) else {
            return;
        };
        let s = &mut slot.second;
        match (r.layer, r.status) {
            (Layer::Client, _) => s.none += 1,
            (Layer::Ingress, st) if st >= 500 => s.ingress_5xx += 1,
            (_, 503) => {
                s.app_5xx += 1;
                s.app_503 += 1
            }
            (_, st) if st >= 500 => s.app_5xx += 1,
            (_, st) if st >= 400 => s.s4xx += 1,
            _ => s.ok += 1,
        }
        if !slot.frozen {
            let latency = r.latency_from_schedule_ms().min(u32::MAX as u64) as u32;
            slot.latencies.push(latency);
        }
    }

    /// The per-second counts with their percentiles, oldest first.
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds.iter().map(Slot::with_percentiles).collect()
    }

    /// Shares over the last `n` complete-or-current seconds up to `now_s`.
    pub fn shares(&self, now_s: u64, n: u64) -> Shares {
        let from = now_s.saturating_sub(n);
        let mut lat = Vec::new();
        let mut sum = Second::default();
        for Slot {
            second: s,
            latencies: l,
            ..
        } in self
            .seconds
            .iter()
            .filter(|s| s.second.t_s >= from && s.second.t_s <= now_s)
        {
            sum.ok += s.ok;
            sum.s4xx += s.s4xx;
            sum.app_5xx += s.app_5xx;
            sum.app_503 += s.app_503;
            sum.ingress_5xx += s.ingress_5xx;
            sum.none += s.none;
            lat.extend_from_slice(l);
        }
        let answers = sum.answers();
        let share = |x: u32| {
            if answers == 0 {
                0.0
            } else {
                x as f64 / answers as f64
            }
        };
        let (p50, p99) = percentiles(&lat);
        Shares {
            answers,
            s5xx: share(sum.app_5xx + sum.ingress_5xx),
            app_503: share(sum.app_503),
            ingress_5xx: share(sum.ingress_5xx),
            none: share(sum.none),
            p50_ms: p50,
            p99_ms: p99,
        }
    }
}

fn percentiles(lat: &[u32]) -> (Option<u64>, Option<u64>) {
    if lat.is_empty() {
        return (None, None);
    }
    let mut v = lat.to_vec();
    v.sort_unstable();
    let at =
        |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as u64;
    (Some(at(50.0)), Some(at(99.0)))
}

/// Replicas (last readiness and liveness result, restarts), alerts (last state) and recent
/// events, from the evidence.
pub fn states(d: &EvidenceData) -> (Vec<ReplicaView>, Vec<AlertView>, Vec<String>) {
    let mut replicas: BTreeMap<String, ReplicaView> = BTreeMap::new();
    let entry = |m: &mut BTreeMap<String, ReplicaView>, service: &str, replica: &str| {
        m.entry(replica.to_string())
            .or_insert_with(|| ReplicaView {
                service: service.into(),
                replica: replica.into(),
                ready: None,
                live: None,
                restarts: 0,
            })
            .replica
            .clone()
    };
    for l in &d.lifecycle {
        let key = entry(&mut replicas, &l.service, &l.replica);
        if matches!(l.event, Lifecycle::Restarting { .. }) {
            if let Some(r) = replicas.get_mut(&key) {
                r.restarts += 1;
            }
        }
    }
    for p in &d.probes {
        let key = entry(&mut replicas, &p.service, &p.replica);
        if let Some(r) = replicas.get_mut(&key) {
            match p.probe {
                Probe::Readiness => r.ready = Some(p.ok),
                Probe::Liveness => r.live = Some(p.ok),
            }
        }
    }
    let mut alerts: BTreeMap<&str, AlertState> = BTreeMap::new();
    for a in &d.alerts {
        alerts.insert(&a.alert, a.state);
    }
    let alerts = alerts
        .into_iter()
        .map(|(a, s)| AlertView {
            alert: a.into(),
            state: s.to_string(),
        })
        .collect();
    let events = d
        .events
        .iter()
        .rev()
        .take(30)
        .rev()
        .map(|e| format!("{:.1} s {}", e.t_ms as f64 / 1000.0, e.what))
        .collect();
    (replicas.into_values().collect(), alerts, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ResponseRecord;

    /// A first attempt answered `status` by `layer` after `latency_ms` (the judge's test builder;
    /// the live view ignores the phase).
    fn answer(t_ms: u64, status: u16, layer: Layer, latency_ms: u64) -> ResponseRecord {
        crate::judge::testkit::response(t_ms, 0, status, layer, latency_ms)
    }

    #[test]
    fn answers_are_counted_by_the_second_they_arrived_and_by_who_made_them() {
        let mut d = EvidenceData::default();
        d.responses.push(answer(100, 200, Layer::App, 10));
        d.responses.push(answer(200, 503, Layer::App, 5));
        d.responses.push(answer(300, 504, Layer::Ingress, 900)); // arrives in second 1
        d.responses.push(answer(400, 0, Layer::Client, 3_000)); // second 3
        let mut a = Aggregator::default();
        a.fold(&d);
        let s = a.seconds();
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].ok, s[0].app_503, s[0].app_5xx), (1, 1, 1));
        assert_eq!(s[1].ingress_5xx, 1);
        assert_eq!(s[2].answers(), 0);
        assert_eq!(s[3].none, 1);
        let sh = a.shares(3, 10);
        assert_eq!(sh.answers, 4);
        assert_eq!(sh.s5xx, 0.5);
        assert_eq!(sh.app_503, 0.25);
        assert_eq!(sh.none, 0.25);
        // Folding again adds only what is new.
        d.responses.push(answer(3_100, 200, Layer::App, 10));
        a.fold(&d);
        assert_eq!(a.seconds()[3].ok, 1);
        assert_eq!(a.shares(3, 10).answers, 5);
    }

    #[test]
    fn only_the_last_ten_minutes_are_kept() {
        let mut d = EvidenceData::default();
        for s in 0..(HISTORY_S * 3) {
            d.responses.push(answer(s * 1000, 200, Layer::App, 1));
        }
        let mut a = Aggregator::default();
        a.fold(&d);
        let s = a.seconds();
        assert_eq!(s.len() as u64, HISTORY_S);
        assert_eq!(s.last().unwrap().t_s, HISTORY_S * 3 - 1);
        // An answer older than the kept history is not counted anywhere.
        d.responses.push(answer(0, 200, Layer::App, 1));
        a.fold(&d);
        assert_eq!(
            a.seconds().iter().map(|s| s.ok).sum::<u32>() as u64,
            HISTORY_S
        );
    }

    /// Only the last [`LATENCIES_S`] seconds hold their latencies; older seconds keep the
    /// percentiles they had, so the view's memory does not grow with rate × ten minutes.
    #[test]
    fn latencies_are_kept_only_for_the_recent_seconds_and_percentiles_stay() {
        let mut d = EvidenceData::default();
        // 100 answers a second for 60 s; second s's latencies are 1..=100 ms plus s.
        for sec in 0..60u64 {
            for i in 0..100u64 {
                d.responses
                    .push(answer(sec * 1000 + i, 200, Layer::App, sec + i % 100 + 1));
            }
        }
        let mut a = Aggregator::default();
        a.fold(&d);
        let held: usize = a.seconds.iter().map(|s| s.latencies.capacity()).sum();
        let fresh = a.seconds.iter().filter(|s| !s.frozen).count() as u64;
        assert_eq!(fresh, LATENCIES_S, "seconds still holding latencies");
        assert!(
            held <= (LATENCIES_S as usize + 1) * 256,
            "{held} latencies held"
        );
        let s = a.seconds();
        // A frozen second kept its percentiles (from 1..=100 ms after its own second's offset).
        assert_eq!((s[5].p50_ms, s[5].p99_ms), (Some(55), Some(104)));
        assert_eq!(s[5].ok, 100);
        // A late answer for a frozen second still counts; its latency cannot move the frozen
        // percentiles.
        d.responses.push(answer(5_500, 200, Layer::App, 400));
        a.fold(&d);
        let s = a.seconds();
        assert_eq!((s[5].ok, s[5].p99_ms), (101, Some(104)));
        // The last-10-s shares still see every latency of their seconds.
        assert_eq!(a.shares(59, 9).answers, 1000);
        assert!(a.shares(59, 9).p99_ms.is_some());
    }
}
