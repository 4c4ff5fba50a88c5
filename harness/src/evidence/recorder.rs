//! The recorder: [`Evidence`], the shared handle every part of a run writes through while it
//! lasts (load, probes, platform, faults, alerts, the harness's own stalls). [`Evidence::finish`]
//! takes what it recorded as read-only [`EvidenceData`] once the run is over.

use super::data::*;
use super::{KeyLog, ResponseLog};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
/// The shared recorder. Cheap to clone.
#[derive(Clone)]
pub struct Evidence {
    start: Instant,
    data: Arc<Mutex<EvidenceData>>,
}

impl Default for Evidence {
    fn default() -> Self {
        Self::new()
    }
}

impl Evidence {
    pub fn new() -> Self {
        Evidence {
            start: Instant::now(),
            data: Arc::new(Mutex::new(EvidenceData::default())),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn ms_at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_millis() as u64
    }

    /// A component of the stack, started at `started`, is ready now.
    pub fn component_up(&self, component: impl Into<String>, started: Instant) {
        let record = StartupRecord {
            component: component.into(),
            started_ms: self.ms_at(started),
            ready_ms: self.now_ms(),
        };
        self.with(|d| d.startup.push(record));
    }

    /// What was recorded, taken out: read-only data for the judge and the report. Anything a
    /// clone of this handle records afterwards goes into a new, empty record.
    pub fn finish(self) -> EvidenceData {
        self.with(std::mem::take)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut EvidenceData) -> R) -> R {
        f(&mut self.data.lock().expect("evidence lock"))
    }

    /// The phase index at `t_ms`: `None` before the first phase (the warm-up, not judged); after
    /// the last, the last.
    pub fn phase_at(&self, t_ms: u64) -> Option<usize> {
        self.with(|d| d.phases.iter().rposition(|p| p.start_ms <= t_ms))
    }

    /// Counts a send (attempt 1 is the scheduled one) in its phase.
    pub fn sent(&self, phase: Option<usize>, request: usize, attempt: u32, late: Duration) {
        self.with(|d| {
            let counts = match phase {
                Some(i) => {
                    if d.sends.len() <= i {
                        d.sends.resize(i + 1, SendCounts::default());
                    }
                    &mut d.sends[i]
                }
                None => &mut d.warmup_sends,
            };
            if attempt > 1 {
                counts.retries += 1;
                return;
            }
            counts.sent += 1;
            if late > LATE_AFTER {
                counts.late += 1;
            }
            counts.max_late_ms = counts.max_late_ms.max(late.as_millis() as u64);
            if counts.by_request.len() <= request {
                counts.by_request.resize(request + 1, 0);
            }
            counts.by_request[request] += 1;
        });
    }

    /// Registers the replica that listens at `addr` (the ingress names upstreams by address).
    pub fn endpoint(&self, addr: &str, replica: &str) {
        self.with(|d| d.endpoints.insert(Arc::from(addr), Arc::from(replica)));
    }

    /// The upstream address, shared (not copied per response), and the replica listening there
    /// if the platform registered one.
    pub fn upstream(&self, addr: &str) -> (Arc<str>, Option<Arc<str>>) {
        self.with(|d| match d.endpoints.get_key_value(addr) {
            Some((a, r)) => (a.clone(), Some(r.clone())),
            None => match d.unknown_upstreams.get(addr) {
                Some(a) => (a.clone(), None),
                None => {
                    let a: Arc<str> = Arc::from(addr);
                    d.unknown_upstreams.insert(a.clone());
                    (a, None)
                }
            },
        })
    }

    /// Appends a response to the run's responses file, and counts it in its phase's tally.
    pub fn response(&self, r: ResponseRecord) {
        self.with(|d| {
            if let Some(i) = r.phase {
                if d.tallies.len() <= i {
                    d.tallies.resize(i + 1, PhaseTally::default());
                }
                d.tallies[i].count(&r);
            }
            d.responses.push(r)
        });
    }

    pub fn acknowledged(&self, key: String) {
        self.with(|d| d.acknowledged_keys.push(&key));
    }

    /// From now on, responses go to `<dir>/responses.jsonl` and acknowledged keys to
    /// `<dir>/acknowledged.jsonl` as they arrive (a run's report directory). Anything recorded
    /// before is copied over.
    pub fn stream_to(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let mut responses = ResponseLog::create(&dir.join("responses.jsonl"))?;
        let mut keys = KeyLog::create(&dir.join("acknowledged.jsonl"))?;
        self.with(|d| {
            for r in d.responses.iter() {
                responses.push(r);
            }
            for k in d.acknowledged_keys.iter() {
                keys.push(&k);
            }
            d.responses = responses;
            d.acknowledged_keys = keys;
        });
        Ok(())
    }

    /// Records a probe result if it differs from that replica's previous one for this probe.
    pub fn probe(&self, service: &str, replica: &str, probe: Probe, result: ProbeResult) {
        let t_ms = self.now_ms();
        let ok = result.ok();
        self.with(|d| {
            let last = d
                .probes
                .iter()
                .rev()
                .find(|p| p.replica == replica && p.probe == probe);
            // A flip, or the probe's own answer after a bare "not ready" (a pod's Ready condition
            // can turn False before the kubelet's event with the status code arrives).
            let detail = !ok
                && result != ProbeResult::NotReady
                && last.is_some_and(|l| l.result == ProbeResult::NotReady);
            if last.is_none_or(|l| l.ok != ok) || detail {
                d.probes.push(ProbeRecord {
                    t_ms,
                    service: service.into(),
                    replica: replica.into(),
                    probe,
                    ok,
                    result,
                });
            }
        });
    }

    pub fn lifecycle(&self, service: &str, replica: &str, event: Lifecycle) {
        let t_ms = self.now_ms();
        tracing::info!(replica, event = event.name(), detail = %event.describe(), "lifecycle");
        self.with(|d| {
            d.lifecycle.push(LifecycleRecord {
                t_ms,
                service: service.into(),
                replica: replica.into(),
                event,
            })
        });
    }

    pub fn alert_state(&self, alert: &str, state: AlertState) {
        let t_ms = self.now_ms();
        self.with(|d| {
            let last = d.alerts.iter().rev().find(|a| a.alert == alert);
            // The first state of every alert is recorded (so a silent alert is known), then changes.
            if last.is_none_or(|a| a.state != state) {
                d.alerts.push(AlertRecord {
                    t_ms,
                    alert: alert.into(),
                    state,
                });
            }
        });
    }

    /// Records the set of firing (alert, severity) pairs if it changed.
    pub fn firing(&self, mut firing: Vec<(String, String)>) {
        firing.sort();
        firing.dedup();
        let t_ms = self.now_ms();
        self.with(|d| {
            if d.firing.last().is_none_or(|l| l.firing != firing) {
                d.firing.push(FiringRecord { t_ms, firing });
            }
        });
    }

    /// Records the ingress's edge counters now.
    pub fn edge(&self, counts: Vec<EdgeCount>) {
        let t_ms = self.now_ms();
        self.with(|d| d.edge.push(EdgeSnapshot { t_ms, counts }));
    }

    pub fn stall(&self, runtime: &str, late: Duration) {
        let t_ms = self.now_ms();
        let late_ms = late.as_millis() as u64;
        tracing::warn!(runtime, late_ms, "harness stalled");
        self.with(|d| {
            d.stalls.push(StallRecord {
                t_ms,
                runtime: runtime.into(),
                late_ms,
            })
        });
    }

    pub fn event(&self, what: impl Into<String>) {
        let t_ms = self.now_ms();
        let what = what.into();
        tracing::info!(%what, "event");
        self.with(|d| d.events.push(EventRecord { t_ms, what }));
    }

    /// A note (game days), also kept as an event.
    pub fn note(&self, text: &str) {
        let t_ms = self.now_ms();
        self.event(format!("note: {text}"));
        self.with(|d| {
            d.notes.push(NoteRecord {
                t_ms,
                text: text.into(),
            })
        });
    }

    /// The load's rate from now on.
    pub fn rate(&self, rate: u32) {
        let t_ms = self.now_ms();
        self.with(|d| d.rates.push(RateRecord { t_ms, rate }));
    }

    /// A rollout of `service` begun at `rollout_started_ms` was rolled back, now, because `alert`
    /// fired at `alert_fired_ms`.
    pub fn rolled_back_on_alert(
        &self,
        service: &str,
        alert: &str,
        rollout_started_ms: u64,
        alert_fired_ms: u64,
    ) {
        let t = self.now_ms();
        self.with(|d| {
            d.rollbacks.push(RollbackRecord {
                service: service.into(),
                alert: alert.into(),
                rollout_started_ms,
                alert_fired_ms,
                rolled_back_ms: t,
            })
        });
    }

    pub fn rollout_started(&self, id: &str, service: &str, change: &str) {
        let t = self.now_ms();
        self.event(format!("rollout {id} started: {change}"));
        self.with(|d| {
            d.rollouts.push(RolloutRecord {
                id: id.into(),
                service: service.into(),
                change: change.into(),
                started_ms: t,
                ended_ms: None,
                outcome: RolloutState::InProgress,
                detail: String::new(),
            })
        });
    }

    /// Records how a rollout ended; a later outcome (e.g. rolled back after stalling) is kept in
    /// the detail too, and a complete rollout later rolled back ends as rolled back.
    pub fn rollout_ended(&self, id: &str, outcome: RolloutState, detail: &str) {
        let t = self.now_ms();
        self.event(format!("rollout {id} {outcome}: {detail}"));
        self.with(|d| {
            if let Some(r) = d.rollouts.iter_mut().rev().find(|r| r.id == id) {
                if r.ended_ms.is_none() {
                    r.ended_ms = Some(t);
                    r.outcome = outcome;
                    r.detail = detail.into();
                } else if r.outcome == RolloutState::Complete && outcome == RolloutState::RolledBack
                {
                    // A revision that went live and was taken back: rolled back is its outcome,
                    // and it ended when the previous revision served again.
                    r.detail = format!("{}; then {outcome}: {detail}", r.detail);
                    r.outcome = outcome;
                    r.ended_ms = Some(t);
                } else {
                    r.detail = format!("{}; then {outcome}: {detail}", r.detail);
                }
            }
        });
    }

    pub fn begin_phase(&self, name: &str) {
        let t = self.now_ms();
        self.with(|d| {
            if let Some(last) = d.phases.last_mut() {
                last.end_ms = t;
            }
            d.phases.push(PhaseWindow {
                name: name.into(),
                start_ms: t,
                end_ms: t,
            });
        });
    }

    pub fn end_phases(&self) {
        let t = self.now_ms();
        self.with(|d| {
            if let Some(last) = d.phases.last_mut() {
                last.end_ms = t;
            }
        });
    }

    // --- H-logs: component logs (platform/local/logcap.rs) ---
    /// A component log was cut now.
    pub fn log_cut(&self, file: &str, reason: LogCutReason, dropped_bytes: u64) {
        let t_ms = self.now_ms();
        let cut = LogCut {
            t_ms,
            file: file.into(),
            reason,
            dropped_bytes,
        };
        self.with(|d| d.log_cuts.push(cut));
    }

    /// The component logs' totals, once their writers have stopped.
    pub fn log_usage(&self, usage: LogUsage) {
        self.with(|d| d.log_usage = Some(usage));
    }
}
