//! What a run recorded, as read-only data: [`EvidenceData`] and its record types (responses,
//! sends per phase, probes, lifecycle, alerts, edge counters, rollouts, events, notes). The judge
//! and the report read these; only the recorder ([`super::Evidence`]) writes them, during the run.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Who produced a response, as the ingress tells it (see [`crate::load::attribute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// One response, as a line of `responses.jsonl` (written as it arrives, read back by the judge
/// and the report: see [`super::ResponseLog`]).
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

/// A line of `responses.jsonl` as read: a [`ResponseRecord`] with its error as written.
#[derive(Deserialize)]
struct ResponseLine {
    t_ms: u64,
    phase: Option<usize>,
    request: usize,
    attempt: u32,
    late_ms: u64,
    status: u16,
    latency_ms: u64,
    layer: Layer,
    replica: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    retry_after: bool,
    seq: u64,
    error: Option<String>,
}

impl<'de> Deserialize<'de> for ResponseRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ResponseRecord::try_from(ResponseLine::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<ResponseLine> for ResponseRecord {
    type Error = String;

    /// The error must be one of [`CLIENT_ERRORS`]: another word means the file is not one the
    /// load wrote.
    fn try_from(l: ResponseLine) -> Result<ResponseRecord, String> {
        let error = match l.error {
            None => None,
            Some(e) => Some(
                CLIENT_ERRORS
                    .iter()
                    .find(|k| **k == e)
                    .copied()
                    .ok_or_else(|| {
                        format!("error '{e}' is none of {}", CLIENT_ERRORS.join(", "))
                    })?,
            ),
        };
        Ok(ResponseRecord {
            t_ms: l.t_ms,
            phase: l.phase,
            request: l.request,
            attempt: l.attempt,
            late_ms: l.late_ms,
            status: l.status,
            latency_ms: l.latency_ms,
            layer: l.layer,
            replica: l.replica,
            upstream: l.upstream,
            retry_after: l.retry_after,
            seq: l.seq,
            error,
        })
    }
}

/// Why a request got no response, as the load names it.
pub const CLIENT_ERRORS: [&str; 4] = ["timeout", "connect", "closed", "other"];

impl ResponseRecord {
    /// Latency as a client scheduled it: the wait for a late send counts (no coordinated omission).
    pub fn latency_from_schedule_ms(&self) -> u64 {
        self.latency_ms + self.late_ms
    }
}

/// A send that starts more than this after its schedule counts as late ([`SendCounts::late`]).
pub const LATE_AFTER: Duration = Duration::from_millis(100);

/// What the load driver sent in one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendCounts {
    /// Scheduled sends that went out (first attempts).
    pub sent: u64,
    /// Of those, how many started later than their schedule by more than [`LATE_AFTER`].
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
    /// Every response, streamed to a file as it arrived (`responses.jsonl`).
    pub responses: super::ResponseLog,
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
    pub acknowledged_keys: super::KeyLog,
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
    /// How long each component of the stack took to start (see
    /// [`crate::evidence::Evidence::component_up`]).
    pub startup: Vec<StartupRecord>,
    /// Answers per phase (index = phase) by kind, counted as they were recorded: the live
    /// progress line reads these, not the responses file.
    #[serde(skip)]
    pub tallies: Vec<PhaseTally>,
    // --- H-logs: component logs (platform/local/logcap.rs) ---
    /// Every cut of a component log (a rotation, or bytes dropped to hold a cap), in time order.
    pub log_cuts: Vec<LogCut>,
    /// The component logs' bytes over the run and the caps they were held to (`None`: the
    /// platform does not bound its logs itself, e.g. Kubernetes, where the kubelet does).
    pub log_usage: Option<LogUsage>,
}

// --- H-logs: component logs (platform/local/logcap.rs) ---
/// Why a component log was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogCutReason {
    /// It passed the per-file cap: moved to `<file>.1` (the previous `.1`'s bytes dropped).
    Rotated,
    /// The run's logs passed the per-run cap: this file's bytes dropped, oldest rotated first.
    RunCap,
}

/// One cut of a component log: when (ms since the evidence's start), which file (its name in the
/// run's log dir), why, and how many bytes were lost for good (0 when a rotation kept them all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogCut {
    pub t_ms: u64,
    pub file: String,
    pub reason: LogCutReason,
    pub dropped_bytes: u64,
}

/// The component logs over a run: bytes written (kept + dropped), kept at the end, and the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogUsage {
    pub per_file_cap_bytes: u64,
    pub per_run_cap_bytes: u64,
    pub written_bytes: u64,
    pub kept_bytes: u64,
    pub dropped_bytes: u64,
}

/// A phase's answers by kind, counted as they arrive (see [`EvidenceData::tallies`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTally {
    pub answers: u64,
    /// 2xx.
    pub ok: u64,
    /// 503 made by the app.
    pub app_503: u64,
    /// Any other 5xx (from the app or the ingress).
    pub other_5xx: u64,
    /// No response (client timeout or connection error).
    pub none: u64,
}

impl PhaseTally {
    pub fn count(&mut self, r: &ResponseRecord) {
        self.answers += 1;
        let app_503 = r.status == 503 && r.layer == Layer::App;
        self.ok += u64::from((200..300).contains(&r.status));
        self.app_503 += u64::from(app_503);
        self.other_5xx += u64::from(r.status >= 500 && !app_503);
        self.none += u64::from(r.layer == Layer::Client);
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
