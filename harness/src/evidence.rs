//! Everything a run records, stamped with milliseconds since the run's clock started: every
//! response (phase, status, latency, which layer made it, Retry-After), probe results and replica
//! lifecycle events, ingress reloads, alert state changes, fault injection and heal times.
//! Judging (`judge`) and reports (`report`) read only this.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Who produced a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The app (its replica header was present).
    App,
    /// The ingress made it (no replica header): e.g. nginx 502/504.
    Ingress,
    /// No HTTP response at all: client timeout or connection error.
    Client,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseRecord {
    /// When the request was sent.
    pub t_ms: u64,
    pub phase: usize,
    pub request: usize,
    /// HTTP status; 0 when there was no response (`layer` = client).
    pub status: u16,
    pub latency_ms: u64,
    pub layer: Layer,
    pub replica: Option<String>,
    pub retry_after: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Readiness,
    Liveness,
}

/// A probe state change of one replica (the first result, then every flip).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecord {
    pub t_ms: u64,
    pub replica: String,
    pub probe: Probe,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LifecycleRecord {
    pub t_ms: u64,
    pub replica: String,
    /// started, exited, restarting, sigterm, sigkill, stopped
    pub event: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    pub t_ms: u64,
    pub alert: String,
    /// inactive, pending, firing
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub t_ms: u64,
    pub what: String,
}

/// One rolling update: when it began and ended, and how.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutRecord {
    pub id: String,
    pub service: String,
    pub change: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// in progress, complete, stalled, failed, rolled back
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseWindow {
    pub name: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct EvidenceData {
    pub phases: Vec<PhaseWindow>,
    pub responses: Vec<ResponseRecord>,
    pub probes: Vec<ProbeRecord>,
    pub lifecycle: Vec<LifecycleRecord>,
    pub alerts: Vec<AlertRecord>,
    pub rollouts: Vec<RolloutRecord>,
    /// Fault injections/heals, ingress reloads and other notable moments.
    pub events: Vec<EventRecord>,
    /// Idempotency keys of acknowledged (2xx) requests, for the data-integrity check.
    #[serde(skip)]
    pub acknowledged_keys: Vec<String>,
}

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

    pub fn with<R>(&self, f: impl FnOnce(&mut EvidenceData) -> R) -> R {
        f(&mut self.data.lock().expect("evidence lock"))
    }

    /// The phase index at `t_ms`: before the first phase counts as phase 0 (warm-up is judged
    /// as baseline), after the last as the last.
    pub fn phase_at(&self, t_ms: u64) -> usize {
        self.with(|d| {
            d.phases
                .iter()
                .rposition(|p| p.start_ms <= t_ms)
                .unwrap_or(0)
        })
    }

    pub fn response(&self, r: ResponseRecord) {
        self.with(|d| d.responses.push(r));
    }

    pub fn acknowledged(&self, key: String) {
        self.with(|d| d.acknowledged_keys.push(key));
    }

    /// Records a probe result if it differs from that replica's previous one for this probe.
    pub fn probe(&self, replica: &str, probe: Probe, ok: bool, detail: String) {
        let t_ms = self.now_ms();
        self.with(|d| {
            let last = d
                .probes
                .iter()
                .rev()
                .find(|p| p.replica == replica && p.probe == probe);
            if last.is_none_or(|l| l.ok != ok) {
                d.probes.push(ProbeRecord {
                    t_ms,
                    replica: replica.into(),
                    probe,
                    ok,
                    detail,
                });
            }
        });
    }

    pub fn lifecycle(&self, replica: &str, event: &str, detail: impl Into<String>) {
        let t_ms = self.now_ms();
        let detail = detail.into();
        tracing::info!(replica, event, %detail, "lifecycle");
        self.with(|d| {
            d.lifecycle.push(LifecycleRecord {
                t_ms,
                replica: replica.into(),
                event: event.into(),
                detail,
            })
        });
    }

    pub fn alert_state(&self, alert: &str, state: &str) {
        let t_ms = self.now_ms();
        self.with(|d| {
            let last = d.alerts.iter().rev().find(|a| a.alert == alert);
            // The first state of every alert is recorded (so a silent alert is known), then changes.
            if last.is_none_or(|a| a.state != state) {
                d.alerts.push(AlertRecord {
                    t_ms,
                    alert: alert.into(),
                    state: state.into(),
                });
            }
        });
    }

    pub fn event(&self, what: impl Into<String>) {
        let t_ms = self.now_ms();
        let what = what.into();
        tracing::info!(%what, "event");
        self.with(|d| d.events.push(EventRecord { t_ms, what }));
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
                outcome: "in progress".into(),
                detail: String::new(),
            })
        });
    }

    /// Records how a rollout ended; a later outcome (e.g. rolled back after stalling) is kept in
    /// the detail too.
    pub fn rollout_ended(&self, id: &str, outcome: &str, detail: &str) {
        let t = self.now_ms();
        self.event(format!("rollout {id} {outcome}: {detail}"));
        self.with(|d| {
            if let Some(r) = d.rollouts.iter_mut().rev().find(|r| r.id == id) {
                if r.ended_ms.is_none() {
                    r.ended_ms = Some(t);
                    r.outcome = outcome.into();
                    r.detail = detail.into();
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
}
