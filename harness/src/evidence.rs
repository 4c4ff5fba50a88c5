//! Everything a run records, stamped with milliseconds since the run's clock started: every
//! response (phase, status, latency, which layer made it, Retry-After), probe results and replica
//! lifecycle events, ingress reloads, alert state changes, fault injection and heal times.
//! Judging (`judge`) and reports (`report`) read only this.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who produced a response, as the ingress tells it (see [`crate::load::attribute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// An upstream replica of the app made it; the ingress relayed it.
    App,
    /// The ingress made it itself: e.g. nginx's 504 after its read timeout, 502 when the
    /// upstream refused the connection, 503 when it had no endpoint.
    Ingress,
    /// No HTTP response at all: client timeout or connection error.
    Client,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseRecord {
    /// When the request was sent.
    pub t_ms: u64,
    /// The phase in which the answer (or the client's error) arrived, i.e. the state of the
    /// system it reflects; `None` during the warm-up (not judged). A request sent in the last
    /// moments of a baseline and answered after the fault was injected belongs to the fault.
    pub phase: Option<usize>,
    /// Index of the load request (`[[load.requests]]`).
    pub request: usize,
    /// 1 for a scheduled send, 2… for its retries.
    pub attempt: u32,
    /// How much later than scheduled it was sent (for a retry: than its Retry-After).
    pub late_ms: u64,
    /// HTTP status; 0 when there was no response (`layer` = client).
    pub status: u16,
    /// From the send to the end of the answer's body (or the error).
    pub latency_ms: u64,
    pub layer: Layer,
    /// The replica behind `upstream`, as the platform registered it.
    pub replica: Option<Arc<str>>,
    /// The upstream address the ingress proxied to.
    pub upstream: Option<Arc<str>>,
    pub retry_after: bool,
    /// The send's number in the schedule; its `X-Request-Id` is `<request_id_prefix>-<seq>-<attempt>`.
    pub seq: u64,
    /// Why there was no response (`layer` = client): timeout, connect, closed (the connection
    /// ended before a complete answer), other.
    pub error: Option<&'static str>,
}

impl ResponseRecord {
    /// Latency as a client scheduled it: the wait for a late send counts (no coordinated omission).
    pub fn latency_from_schedule_ms(&self) -> u64 {
        self.latency_ms + self.late_ms
    }
}

/// What the load driver sent in one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendCounts {
    /// Scheduled sends that went out (first attempts).
    pub sent: u64,
    /// Of those, how many started later than their schedule by more than [`crate::load::LATE_AFTER`].
    pub late: u64,
    /// The largest lateness of a scheduled send.
    pub max_late_ms: u64,
    /// Retries (second and later attempts).
    pub retries: u64,
    /// Scheduled sends per load request.
    pub by_request: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Readiness,
    Liveness,
}

/// What one probe got: a fact any platform can report (a kubelet's probe results have the same
/// shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ProbeResult {
    /// The replica answered with an HTTP status (2xx: ok); the start of the body.
    Answered { status: u16, body: String },
    /// Nothing listened (connection refused).
    Refused,
    /// No answer within the probe's timeout.
    TimedOut { after_ms: u64 },
    /// Another error (e.g. the connection closed mid-answer).
    Failed { error: String },
    /// The probe passed, with no more said: a kubelet reports a passing probe only as the pod's
    /// Ready condition, without the status code.
    Passed,
    /// Not ready, with no more said: a pod's Ready condition turned False (the kubelet's probe
    /// failed `failureThreshold` times, or the container stopped). No probe answer comes with it:
    /// the kubelet's `Unhealthy` event carries that, when it is not rate-limited away.
    NotReady,
}

impl ProbeResult {
    pub fn ok(&self) -> bool {
        matches!(self, ProbeResult::Passed)
            || matches!(self, ProbeResult::Answered { status, .. } if (200..300).contains(status))
    }

    /// The process itself answered (it may say "not ready"), as opposed to refusing or hanging.
    pub fn answered(&self) -> bool {
        matches!(self, ProbeResult::Answered { .. } | ProbeResult::Passed)
    }

    pub fn describe(&self) -> String {
        match self {
            ProbeResult::Answered { status, body } if body.is_empty() => status.to_string(),
            ProbeResult::Answered { status, body } => format!("{status} {body}"),
            ProbeResult::Refused => "connection refused".into(),
            ProbeResult::TimedOut { after_ms } => format!("timed out after {after_ms} ms"),
            ProbeResult::Failed { error } => error.clone(),
            ProbeResult::Passed => "passed".into(),
            ProbeResult::NotReady => "Ready condition False (no probe answer reported)".into(),
        }
    }
}

/// A probe state change of one replica (the first result, then every flip).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecord {
    pub t_ms: u64,
    pub service: String,
    pub replica: String,
    pub probe: Probe,
    pub ok: bool,
    #[serde(flatten)]
    pub result: ProbeResult,
}

/// How often one replica was restarted over the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restarts {
    pub service: String,
    pub replica: String,
    pub count: u32,
}

/// Something that happened to a replica's process, as a kubelet would report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Lifecycle {
    /// The replica's process or container started; each platform says what it knows of it.
    Started {
        /// The process id (the local platform starts processes itself).
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The container and when it started (Kubernetes: the kubelet reports no pid).
        #[serde(skip_serializing_if = "Option::is_none")]
        container: Option<ContainerStart>,
    },
    FailedToStart {
        error: String,
    },
    /// Termination began with the pre-stop hook (it counts inside the grace period).
    PreStop {
        hook: String,
        grace_ms: u64,
    },
    /// SIGTERM sent; `why` says what led to it (termination, a restart, the hook's end).
    Sigterm {
        why: String,
    },
    /// SIGKILL sent: the grace period ran out.
    Sigkill {
        status: String,
    },
    /// Terminated on request and exited by itself within its grace period.
    Stopped {
        status: String,
    },
    /// Exited when nobody asked it to (a crash); it will be restarted.
    Exited {
        status: String,
        last_log_line: String,
    },
    /// About to be restarted after the back-off.
    Restarting {
        reason: String,
        backoff_s: u64,
    },
}

/// A container's start as the kubelet reports it in the pod's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerStart {
    /// The container's name in the pod.
    pub name: String,
    /// Its `state.running.startedAt`, as the API server sent it (RFC 3339).
    pub started_at: String,
}

impl Lifecycle {
    pub fn name(&self) -> &'static str {
        match self {
            Lifecycle::Started { .. } => "started",
            Lifecycle::FailedToStart { .. } => "failed-to-start",
            Lifecycle::PreStop { .. } => "pre-stop",
            Lifecycle::Sigterm { .. } => "sigterm",
            Lifecycle::Sigkill { .. } => "sigkill",
            Lifecycle::Stopped { .. } => "stopped",
            Lifecycle::Exited { .. } => "exited",
            Lifecycle::Restarting { .. } => "restarting",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Lifecycle::Started { pid, container } => match (pid, container) {
                (Some(pid), _) => format!("pid {pid}"),
                (None, Some(c)) => format!("container {} started at {}", c.name, c.started_at),
                (None, None) => "started".into(),
            },
            Lifecycle::FailedToStart { error } => error.clone(),
            Lifecycle::PreStop { hook, grace_ms } => {
                format!("{hook} (grace period {} s)", *grace_ms as f64 / 1000.0)
            }
            Lifecycle::Sigterm { why } => why.clone(),
            Lifecycle::Sigkill { status } => format!("grace period over; {status}"),
            Lifecycle::Stopped { status } => format!("exited by itself: {status}"),
            Lifecycle::Exited {
                status,
                last_log_line,
            } => format!("{status}; last log line: {last_log_line}"),
            Lifecycle::Restarting { reason, backoff_s } => {
                format!("{reason}; back-off {backoff_s} s")
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LifecycleRecord {
    pub t_ms: u64,
    pub service: String,
    pub replica: String,
    #[serde(flatten)]
    pub event: Lifecycle,
}

/// An alert's state, as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl std::fmt::Display for AlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    pub t_ms: u64,
    pub alert: String,
    pub state: AlertState,
}

/// Which alerts were firing, with their severity label, from `t_ms` until the next record.
/// Kept per (name, severity) so two rules that share a name at different severities stay apart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiringRecord {
    pub t_ms: u64,
    /// (alert name, severity label or "")
    pub firing: Vec<(String, String)>,
}

/// One line of the ingress's request counter: answers with `status` made by `layer`
/// ([`Layer::App`]: an upstream replica; [`Layer::Ingress`]: the ingress itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeCount {
    pub status: u16,
    pub layer: Layer,
    pub answers: u64,
}

/// The ingress's counters as its edge metrics told them at `t_ms` (at each phase start, and once
/// the load has stopped).
#[derive(Debug, Clone, Serialize)]
pub struct EdgeSnapshot {
    pub t_ms: u64,
    pub counts: Vec<EdgeCount>,
}

/// The harness's own runtime woke up late (see [`crate::stall`]).
#[derive(Debug, Clone, Serialize)]
pub struct StallRecord {
    pub t_ms: u64,
    pub runtime: String,
    pub late_ms: u64,
}

/// A note someone wrote during a game day.
#[derive(Debug, Clone, Serialize)]
pub struct NoteRecord {
    pub t_ms: u64,
    pub text: String,
}

/// The load's rate from `t_ms` on (a game day can change it; a scenario's is set once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateRecord {
    pub t_ms: u64,
    pub rate: u32,
}

/// One component of the stack up: when its start began and when it was ready (ms since the
/// evidence's start), as the platform measured it.
#[derive(Debug, Clone, Serialize)]
pub struct StartupRecord {
    pub component: String,
    pub started_ms: u64,
    pub ready_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub t_ms: u64,
    pub what: String,
}

/// Where a rollout got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    InProgress,
    Complete,
    /// A new replica did not become ready within the progress deadline.
    Stalled,
    Failed,
    RolledBack,
}

impl std::fmt::Display for RolloutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RolloutState::InProgress => "in progress",
            RolloutState::Complete => "complete",
            RolloutState::Stalled => "stalled",
            RolloutState::Failed => "failed",
            RolloutState::RolledBack => "rolled back",
        })
    }
}

/// A rollout rolled back because an alert fired (`rollback_on_alert`), as a deploy pipeline does.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackRecord {
    pub service: String,
    pub alert: String,
    pub rollout_started_ms: u64,
    /// When the harness saw the alert firing.
    pub alert_fired_ms: u64,
    /// When the rollback was done (the previous revision serving again).
    pub rolled_back_ms: u64,
}

/// One rolling update: when it began and ended, and how.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutRecord {
    pub id: String,
    pub service: String,
    pub change: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub outcome: RolloutState,
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
    /// Changes of the set of firing alerts (see [`FiringRecord`]).
    pub firing: Vec<FiringRecord>,
    /// Each alerting rule's `severity` label (e.g. page, ticket), as Prometheus loaded it.
    pub alert_severity: BTreeMap<String, String>,
    /// The ingress's edge counters over the run (none if the platform has no edge metrics).
    pub edge: Vec<EdgeSnapshot>,
    pub rollouts: Vec<RolloutRecord>,
    pub rollbacks: Vec<RollbackRecord>,
    /// Fault injections/heals, ingress reloads and other notable moments.
    pub events: Vec<EventRecord>,
    /// Idempotency keys of acknowledged (2xx) requests, for the data-integrity check.
    #[serde(skip)]
    pub acknowledged_keys: Vec<String>,
    /// Sends per phase (index = phase), and during the warm-up.
    pub sends: Vec<SendCounts>,
    pub warmup_sends: SendCounts,
    /// Upstream address → replica, as the platform started replicas (the latest wins).
    pub endpoints: BTreeMap<Arc<str>, Arc<str>>,
    /// Upstream addresses seen that no replica was registered for.
    #[serde(skip)]
    pub unknown_upstreams: std::collections::BTreeSet<Arc<str>>,
    /// Every send's `X-Request-Id` starts with this (then `-<seq>-<attempt>`).
    pub request_id_prefix: String,
    /// Moments the harness itself was stalled.
    pub stalls: Vec<StallRecord>,
    /// Notes written during a game day, in time order.
    pub notes: Vec<NoteRecord>,
    /// Every rate the load was set to, from when (a scenario's: one, at the start).
    pub rates: Vec<RateRecord>,
    /// How long each component of the stack took to start (see [`Evidence::component_up`]).
    pub startup: Vec<StartupRecord>,
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

    /// A component of the stack, started at `started`, is ready now.
    pub fn component_up(&self, component: impl Into<String>, started: Instant) {
        let record = StartupRecord {
            component: component.into(),
            started_ms: self.ms_at(started),
            ready_ms: self.now_ms(),
        };
        self.with(|d| d.startup.push(record));
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
            if late > crate::load::LATE_AFTER {
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

    pub fn response(&self, r: ResponseRecord) {
        self.with(|d| d.responses.push(r));
    }

    pub fn acknowledged(&self, key: String) {
        self.with(|d| d.acknowledged_keys.push(key));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records serialize flat, with the kind of fact named: what report.json and any other
    /// platform's evidence look like.
    #[test]
    fn typed_records_serialize_as_flat_facts() {
        let l = LifecycleRecord {
            t_ms: 5,
            service: "checkout".into(),
            replica: "checkout-0".into(),
            event: Lifecycle::Stopped {
                status: "exit code 0".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"t_ms": 5, "service": "checkout", "replica": "checkout-0",
                               "event": "stopped", "status": "exit code 0"})
        );
        let answered = ProbeResult::Answered {
            status: 503,
            body: "{\"failing\":[\"pool\"]}".into(),
        };
        assert!(!answered.ok() && answered.answered());
        assert!(!ProbeResult::Refused.answered());
        assert!(ProbeResult::Answered {
            status: 200,
            body: String::new()
        }
        .ok());
        assert_eq!(
            ProbeResult::TimedOut { after_ms: 800 }.describe(),
            "timed out after 800 ms"
        );
    }
}
