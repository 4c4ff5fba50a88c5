//! Scenario and system files: their TOML shape, loading, and validation. Every error names the
//! file, line and column and what is allowed (exit code 2). A scenario refers to a system file, which
//! describes the system under test once (services, replicas, commands, env, probes, grace periods,
//! volumes, the ingress route and the alert rules), so users can describe their own app the same way.

pub mod checks;
pub mod gameday;
pub mod locate;
pub mod rules;
mod scenario;
pub mod source;
mod system;

pub use system::load_system;

use crate::error::{BrownoutError, Result};
use locate::Locator;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A duration as written in a file ("30s", "500ms", "1m30s"), parsed when the file is read: code
/// after validation holds a [`Duration`], never the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
    pub fn ms(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Written back as the file would say it ("300ms", "6s").
impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A size as written in a file ("16MiB"), parsed when the file is read (in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_size(&text)
            .map(Size)
            .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- regression tolerances

/// How much worse than the baseline a latency may get: "+25%" (relative, never less than
/// 10 ms) or "+200ms" (absolute).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyTolerance {
    Percent(f64),
    Ms(u64),
}

impl<'de> Deserialize<'de> for LatencyTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "'{text}' is not a latency tolerance: write \"+25%\" or \"+200ms\""
            ))
        };
        let rest = text.trim().strip_prefix('+').ok_or_else(bad)?;
        if let Some(p) = rest.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad());
            }
            return Ok(LatencyTolerance::Percent(v));
        }
        parse_duration(rest)
            .map(|d| LatencyTolerance::Ms(d.as_millis() as u64))
            .map_err(|_| bad())
    }
}

/// How many percentage points a share may grow: "+2pp".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointsTolerance(pub f64);

impl<'de> Deserialize<'de> for PointsTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .strip_prefix('+')
            .and_then(|r| r.strip_suffix("pp"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 100.0)
            .map(PointsTolerance)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "'{text}' is not a share tolerance: write percentage points, e.g. \"+2pp\""
                ))
            })
    }
}

/// How much later than in the baseline something may happen: "+3s".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeTolerance(pub u64);

impl<'de> Deserialize<'de> for TimeTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .strip_prefix('+')
            .and_then(|r| parse_duration(r).ok())
            .map(|d| TimeTolerance(d.as_millis() as u64))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "'{text}' is not a time tolerance: write how much later, e.g. \"+3s\""
                ))
            })
    }
}

/// `[regression]`: how far a run may drift from its baseline before that is a regression. Each
/// field has a default, so a scenario without the table still compares with a baseline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegressionSpec {
    /// Each phase's p99 latency.
    #[serde(default = "default_p99_tolerance")]
    pub p99: LatencyTolerance,
    /// Each phase's share of answers that were 5xx or missing.
    #[serde(default = "default_share_tolerance")]
    pub five_xx_share: PointsTolerance,
    /// Each replica's readiness drop and recovery, measured from the phase's start and end.
    #[serde(default = "default_time_tolerance")]
    pub readiness: TimeTolerance,
    /// Each alert's firing, from its phase's start.
    #[serde(default = "default_time_tolerance")]
    pub alert_fire: TimeTolerance,
    /// Each alert's clearing, from its phase's end.
    #[serde(default = "default_time_tolerance")]
    pub alert_clear: TimeTolerance,
}

fn default_p99_tolerance() -> LatencyTolerance {
    LatencyTolerance::Percent(50.0)
}
fn default_share_tolerance() -> PointsTolerance {
    PointsTolerance(5.0)
}
fn default_time_tolerance() -> TimeTolerance {
    TimeTolerance(3_000)
}

impl Default for RegressionSpec {
    fn default() -> Self {
        RegressionSpec {
            p99: default_p99_tolerance(),
            five_xx_share: default_share_tolerance(),
            readiness: default_time_tolerance(),
            alert_fire: default_time_tolerance(),
            alert_clear: default_time_tolerance(),
        }
    }
}

// ---------------------------------------------------------------- scenario files

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    pub summary: String,
    /// Path of the system file, relative to the scenario file.
    pub system: Spanned<String>,
    /// Seeds every random choice of the run (which connections a proxy toxic hits, jitter).
    #[serde(default = "one_u64")]
    pub seed: u64,
    pub load: LoadSpec,
    pub phases: Vec<PhaseSpec>,
    #[serde(default)]
    pub expect: Vec<Spanned<ExpectSpec>>,
    /// Opts out of the standing no-silent-outage expectation; the value says why (shown in the
    /// report).
    pub silent_outages_allowed: Option<Spanned<String>>,
    /// Which bug of the system fails which expectation ids: what `brownout prove` checks (the
    /// hardened app passes, each bug fails exactly its ids). An empty `[catches]` says the
    /// scenario proves something of the system without an app bug (e.g. the ingress's layer
    /// attribution): `prove` then runs it on the hardened app only.
    pub catches: Option<BTreeMap<Spanned<String>, Spanned<Vec<String>>>>,
    /// How far a run may drift from a baseline run (`--baseline`) before that is a regression.
    pub regression: Option<RegressionSpec>,
    /// Ingress settings this scenario changes from its system file's (e.g. `fail_open = false`
    /// to see what clients get when no replica is ready).
    pub ingress: Option<IngressOverride>,
}

/// The ingress settings a scenario may set over its system file's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressOverride {
    pub fail_open: Option<bool>,
    pub no_endpoints_retry_after: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Requests per second offered, kept steady while the system degrades.
    pub rate: Spanned<u32>,
    /// Most sends in flight at once (an open model: sends are scheduled at `rate` whatever the
    /// system does, each one a task, not a user); default: enough that the rate holds while every
    /// send and one retry take the full `timeout`. A send that finds the cap reached waits and is
    /// counted late.
    pub max_in_flight: Option<u32>,
    /// Client timeout per request.
    #[serde(default = "default_timeout")]
    pub timeout: Spanned<Dur>,
    pub requests: Vec<RequestSpec>,
}

fn default_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::secs(10))
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub name: String,
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    /// JSON body.
    pub body: Option<String>,
    #[serde(default = "one")]
    pub weight: usize,
    /// Send a fresh `Idempotency-Key` header; 2xx answers count as acknowledged (data integrity).
    #[serde(default)]
    pub idempotency_key: bool,
    /// Retry answers with these statuses (same Idempotency-Key), waiting Retry-After (at most 2 s).
    pub retry: Option<RetrySpec>,
    /// Send this request only during these phases (default: all). Its weight counts in those
    /// phases only: how an incident's traffic changes (a bulk export starting, a client sending a
    /// malformed body).
    #[serde(default)]
    pub during: Vec<String>,
}

impl RequestSpec {
    /// Whether this request is sent in phase `phase` (`None`: before the first phase).
    pub fn sent_in(&self, phase: Option<&str>) -> bool {
        self.during.is_empty() || phase.is_some_and(|p| self.during.iter().any(|d| d == p))
    }
}

impl Load {
    /// Each request's weight in phase `phase` (0 for a request not sent there).
    pub fn weights_in(&self, phase: Option<&str>) -> Vec<usize> {
        self.requests
            .iter()
            .map(|r| if r.sent_in(phase) { r.weight } else { 0 })
            .collect()
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    pub on: Vec<u16>,
    #[serde(default = "one_u32")]
    pub max: u32,
}

fn one_u64() -> u64 {
    1
}

fn get() -> String {
    "GET".into()
}
fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub name: Spanned<String>,
    #[serde(rename = "for")]
    pub duration: Spanned<Dur>,
    pub fault: Option<Spanned<FaultSpec>>,
}

/// A fault, injected at the start of its phase and healed at its end.
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// The harness holds DB-side what the app needs: an EXCLUSIVE lock on `tables` (blocks
    /// writes, not reads), so every checkout holds its pooled connection until the statement timeout.
    PoolExhaustion {
        #[serde(default = "orders")]
        tables: Vec<String>,
    },
    /// A rolling update of `service` to a revision with changed env (e.g. a required variable
    /// removed). At heal, a rollout that did not complete is rolled back.
    Rollout {
        service: String,
        #[serde(default)]
        remove_env: Vec<String>,
        #[serde(default)]
        set_env: BTreeMap<String, String>,
        #[serde(default = "progress_deadline")]
        progress_deadline: Dur,
        /// Roll back as soon as this alert fires while the phase lasts, as a deploy pipeline's
        /// analysis step does (Argo Rollouts, Flagger); the report shows the time to detect and
        /// the time to recover. Without it, a rollout that completed stays.
        rollback_on_alert: Option<String>,
    },
    /// A rolling restart of `service` under load (a rollout of the same spec): every replica gets
    /// SIGTERM and its grace period, after its replacement is ready.
    RollingRestart {
        service: String,
        #[serde(default = "progress_deadline")]
        progress_deadline: Dur,
    },
    /// A toxic on one of the system's fault proxies (healed: removed).
    Proxy { proxy: String, toxic: ToxicSpec },
    /// Fills the volume `volume` of every replica of `service` until the kernel answers ENOSPC
    /// (healed: the filler is deleted). The volume must have a `size` (a real small filesystem).
    DiskFull { service: String, volume: String },
    /// The system's database server stops (fast shutdown: sessions ended, connections refused)
    /// for the phase, and starts again (same address, same data) at heal.
    DatabaseDown {},
    /// Every replica of `service` gets a memory limit of `limit` (no swap), as a container's
    /// memory limit: one that goes over is killed by the kernel (OOM kill). Healed: lifted.
    MemoryLimit { service: String, limit: Size },
    /// Nothing is done to the system: the fault is in the traffic, the load's `requests` (each
    /// limited to this phase with `during`), e.g. a malformed body or an oversized export.
    Requests { requests: Vec<String> },
}

/// What a fault proxy does to connections; each applies to `fraction` of them (default all).
/// The same shape is the body of the fault proxy's control API (`POST /proxies/{name}/toxics`).
#[derive(Debug, Deserialize, serde::Serialize, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ToxicSpec {
    Latency {
        latency: Dur,
        #[serde(default)]
        jitter: Dur,
        #[serde(default = "all")]
        fraction: f64,
    },
    Timeout {
        close_after: Option<Dur>,
        #[serde(default = "all")]
        fraction: f64,
    },
    Reset {
        #[serde(default)]
        after: Dur,
        #[serde(default = "all")]
        fraction: f64,
    },
    Refuse {
        #[serde(default = "all")]
        fraction: f64,
    },
    /// Nothing listens: connecting is refused.
    Down {},
    Bandwidth {
        bytes_per_sec: u64,
        #[serde(default = "all")]
        fraction: f64,
    },
}

fn all() -> f64 {
    1.0
}

impl ToxicSpec {
    /// The proxy toxic, or `None` for `down` (which is not a toxic but the listener going away).
    pub fn to_toxic(&self) -> Option<crate::faults::toxic::Toxic> {
        use crate::faults::toxic::{Toxic, ToxicKind};
        let (kind, fraction) = match self {
            ToxicSpec::Latency {
                latency,
                jitter,
                fraction,
            } => (
                ToxicKind::Latency {
                    latency: latency.get(),
                    jitter: jitter.get(),
                },
                fraction,
            ),
            ToxicSpec::Timeout {
                close_after,
                fraction,
            } => (
                ToxicKind::Timeout {
                    close_after: close_after.map(Dur::get),
                },
                fraction,
            ),
            ToxicSpec::Reset { after, fraction } => {
                (ToxicKind::Reset { after: after.get() }, fraction)
            }
            ToxicSpec::Refuse { fraction } => (ToxicKind::Refuse, fraction),
            ToxicSpec::Bandwidth {
                bytes_per_sec,
                fraction,
            } => (
                ToxicKind::Bandwidth {
                    bytes_per_sec: *bytes_per_sec,
                },
                fraction,
            ),
            ToxicSpec::Down {} => return None,
        };
        Some(Toxic {
            kind,
            fraction: *fraction,
        })
    }
    pub fn fraction(&self) -> f64 {
        match self {
            ToxicSpec::Latency { fraction, .. }
            | ToxicSpec::Timeout { fraction, .. }
            | ToxicSpec::Reset { fraction, .. }
            | ToxicSpec::Refuse { fraction }
            | ToxicSpec::Bandwidth { fraction, .. } => *fraction,
            ToxicSpec::Down {} => 1.0,
        }
    }
}

impl From<&crate::faults::toxic::Toxic> for ToxicSpec {
    fn from(t: &crate::faults::toxic::Toxic) -> Self {
        use crate::faults::toxic::ToxicKind;
        let fraction = t.fraction;
        match &t.kind {
            ToxicKind::Latency { latency, jitter } => ToxicSpec::Latency {
                latency: Dur(*latency),
                jitter: Dur(*jitter),
                fraction,
            },
            ToxicKind::Timeout { close_after } => ToxicSpec::Timeout {
                close_after: close_after.map(Dur),
                fraction,
            },
            ToxicKind::Reset { after } => ToxicSpec::Reset {
                after: Dur(*after),
                fraction,
            },
            ToxicKind::Refuse => ToxicSpec::Refuse { fraction },
            ToxicKind::Bandwidth { bytes_per_sec } => ToxicSpec::Bandwidth {
                bytes_per_sec: *bytes_per_sec,
                fraction,
            },
        }
    }
}

fn progress_deadline() -> Dur {
    Dur::secs(30)
}

fn orders() -> Vec<String> {
    vec!["orders".into()]
}

impl FaultSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::PoolExhaustion { .. } => "pool-exhaustion",
            FaultSpec::Rollout { .. } => "rollout",
            FaultSpec::RollingRestart { .. } => "rolling-restart",
            FaultSpec::Proxy { .. } => "proxy",
            FaultSpec::DiskFull { .. } => "disk-full",
            FaultSpec::DatabaseDown {} => "database-down",
            FaultSpec::MemoryLimit { .. } => "memory-limit",
            FaultSpec::Requests { .. } => "requests",
        }
    }
    /// The service a fault acts on, if it names one.
    pub fn service(&self) -> Option<&str> {
        match self {
            FaultSpec::Rollout { service, .. }
            | FaultSpec::RollingRestart { service, .. }
            | FaultSpec::MemoryLimit { service, .. } => Some(service),
            _ => None,
        }
    }
}

/// One expectation, judged from recorded evidence after the run.
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExpectSpec {
    /// Only `allowed` statuses during `during`; `retry_after` statuses must carry Retry-After;
    /// with `from_app`, every answer must come from the app (not made by the ingress).
    StatusCodes {
        id: String,
        during: String,
        /// Only responses to this load request (by name); default: all.
        request: Option<String>,
        allowed: Vec<u16>,
        #[serde(default)]
        retry_after: Vec<u16>,
        #[serde(default)]
        from_app: bool,
        /// Every answer was made by the ingress itself (none by the app, none missing); then
        /// `retry_after` is checked on the ingress's answers.
        #[serde(default)]
        from_ingress: bool,
        /// Answers in the first `settle` of the phase are not judged: the time the system may
        /// take to get to the state judged (e.g. readiness failing on every replica).
        settle: Option<Dur>,
    },
    /// The `percentile` latency during `during` is below `below`.
    Latency {
        id: String,
        during: String,
        request: Option<String>,
        percentile: f64,
        below: Dur,
    },
    /// Every replica of `service` turns not-ready within `drops_within` of the start of `during`,
    /// and all are ready again within `recovers_within` of its end.
    Readiness {
        id: String,
        service: String,
        during: String,
        drops_within: Dur,
        recovers_within: Dur,
    },
    /// At most `max` restarts of `service`'s replicas over the whole run.
    Restarts {
        id: String,
        service: String,
        max: u32,
    },
    /// `alert` fires within `fires_within` of the start of phase `phase`, clears within
    /// `clears_within` of its end, and is never pending or firing before `phase`.
    Alert {
        id: String,
        alert: String,
        phase: String,
        fires_within: Dur,
        clears_within: Dur,
    },
    /// No 5xx (nor client error) starts later than `within` after the end of phase `after`.
    Recovery {
        id: String,
        after: String,
        within: Dur,
    },
    /// After the run, the system's `[integrity]` check: every acknowledged request was committed,
    /// every committed record has exactly one ledger entry (ledger entries without a committed
    /// record are reported, not failed: a retry with the same key reconciles them).
    DataIntegrity { id: String },
    /// The rollout of `service` started in phase `phase` ends `outcome` ("complete" or "stalled");
    /// a complete one within `within` if given.
    Rollout {
        id: String,
        service: String,
        phase: String,
        outcome: crate::evidence::RolloutState,
        within: Option<Dur>,
    },
    /// Every replica of `service` that got SIGTERM during `phase` failed readiness (answering,
    /// not refusing) before it exited, and exited by itself within its grace period (no SIGKILL).
    Terminations {
        id: String,
        service: String,
        phase: String,
    },
    /// The standing expectation, in every scenario unless it opts out (`silent_outages_allowed`):
    /// whenever more than `failure_share` of the answers clients got over a `window` failed (5xx
    /// from any layer, or no answer at all), an alert whose severity is one of `page_severities`
    /// fires within `page_within` of the outage's start; and none fires in a baseline phase (the
    /// phases before the first fault). Declare it in `[[expect]]` to change its settings.
    NoSilentOutage {
        #[serde(default = "no_silent_outage_id")]
        id: String,
        #[serde(default = "default_failure_share")]
        failure_share: f64,
        #[serde(default = "default_outage_window")]
        window: Dur,
        #[serde(default = "default_page_within")]
        page_within: Dur,
        #[serde(default = "default_page_severities")]
        page_severities: Vec<String>,
        /// Windows with fewer answers are not judged (too few to give a share).
        #[serde(default = "default_min_answers")]
        min_answers: u32,
    },
}

/// The id of the standing no-silent-outage expectation.
pub const NO_SILENT_OUTAGE: &str = "no-silent-outage";

fn no_silent_outage_id() -> String {
    NO_SILENT_OUTAGE.into()
}
fn default_failure_share() -> f64 {
    0.02
}
fn default_outage_window() -> Dur {
    Dur::secs(10)
}
fn default_page_within() -> Dur {
    Dur::secs(15)
}
fn default_page_severities() -> Vec<String> {
    vec!["page".into(), "critical".into()]
}
fn default_min_answers() -> u32 {
    20
}

impl ExpectSpec {
    /// The standing no-silent-outage expectation with its default settings.
    pub fn default_no_silent_outage() -> ExpectSpec {
        ExpectSpec::NoSilentOutage {
            id: no_silent_outage_id(),
            failure_share: default_failure_share(),
            window: default_outage_window(),
            page_within: default_page_within(),
            page_severities: default_page_severities(),
            min_answers: default_min_answers(),
        }
    }
}

impl ExpectSpec {
    pub fn id(&self) -> &str {
        match self {
            ExpectSpec::StatusCodes { id, .. }
            | ExpectSpec::Latency { id, .. }
            | ExpectSpec::Readiness { id, .. }
            | ExpectSpec::Restarts { id, .. }
            | ExpectSpec::Alert { id, .. }
            | ExpectSpec::Recovery { id, .. }
            | ExpectSpec::DataIntegrity { id }
            | ExpectSpec::Rollout { id, .. }
            | ExpectSpec::Terminations { id, .. }
            | ExpectSpec::NoSilentOutage { id, .. } => id,
        }
    }
    /// Phase names this expectation refers to.
    pub fn phase_refs(&self) -> Vec<&str> {
        match self {
            ExpectSpec::StatusCodes { during, .. }
            | ExpectSpec::Latency { during, .. }
            | ExpectSpec::Readiness { during, .. } => vec![during],
            ExpectSpec::Alert { phase, .. }
            | ExpectSpec::Rollout { phase, .. }
            | ExpectSpec::Terminations { phase, .. } => vec![phase],
            ExpectSpec::Recovery { after, .. } => vec![after],
            _ => vec![],
        }
    }
}

// ---------------------------------------------------------------- system files

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemFile {
    pub name: String,
    pub database: Option<DatabaseSpec>,
    pub services: Vec<ServiceSpec>,
    /// Fault proxies in front of dependencies; services reach one at `{proxy.<name>.addr}`.
    #[serde(default)]
    pub proxies: Vec<ProxySpec>,
    pub ingress: IngressSpec,
    pub prometheus: PrometheusSpec,
    /// How to check, after a run, that what clients were told happened did happen (the
    /// `data-integrity` expectation needs it).
    pub integrity: Option<IntegritySpec>,
}

/// The system's data-integrity check, run against its database (and optionally a downstream
/// ledger) once the load has stopped.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct IntegritySpec {
    /// Returns one text column: the idempotency key of every request the system committed. Every
    /// key a client got a 2xx for must be in it (no acknowledged request lost).
    pub committed_keys_query: String,
    /// Returns one text column: the id of every committed record that must have exactly one entry
    /// in the ledger.
    pub committed_ids_query: Option<String>,
    /// A downstream ledger of effects (e.g. charges) the committed ids are checked against.
    pub ledger: Option<LedgerSpec>,
}

/// A JSON list of effects served by one of the system's services.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LedgerSpec {
    /// The service that serves it.
    pub service: String,
    /// Its path, e.g. `/charges`.
    pub path: String,
    /// The field of the JSON object holding the list (e.g. `charges`); none: the body is the list.
    pub list: Option<String>,
    /// The field of each entry naming the record it belongs to (e.g. `order_id`).
    pub id_field: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Name of the database created in the throwaway PostgreSQL cluster.
    pub name: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: Spanned<String>,
    /// Program and arguments. `{bin_dir}` is the directory of the brownout binary (where cargo
    /// puts the workspace's binaries).
    pub command: Vec<String>,
    /// The container image on a Kubernetes platform (default for a workspace binary
    /// `{bin_dir}/<name>`: `brownout/<name>:<tag>`, built from `kind-config/`).
    pub image: Option<String>,
    #[serde(default = "one_u32")]
    pub replicas: u32,
    /// Environment; values may use `{listen_addr}`, `{replica}`, `{database_url}`,
    /// `{service.<name>.url}` and `{volume.<name>}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The variable that receives `--bug` names (comma-separated).
    pub bug_env: Option<String>,
    /// The bug names the service knows; `--bug` is checked against them (empty: not checked).
    #[serde(default)]
    pub bugs: Vec<String>,
    #[serde(default = "default_grace")]
    pub grace_period: Dur,
    /// Runs when a replica is terminated, before its SIGTERM, like Kubernetes'
    /// `lifecycle.preStop`; it counts inside the grace period. `{ sleep = "2s" }` keeps the replica
    /// serving while the ingress stops routing to it (what most servers, which close their
    /// listener on SIGTERM, need); `{ http = "/path" }` calls that path on the replica and waits.
    pub pre_stop: Option<PreStopSpec>,
    pub readiness: Option<ProbeSpec>,
    pub liveness: Option<ProbeSpec>,
    /// Path Prometheus scrapes on every replica.
    pub metrics_path: Option<String>,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
}

fn one_u32() -> u32 {
    1
}
/// A pre-stop hook (see [`ServiceSpec::pre_stop`]).
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum PreStopSpec {
    Sleep(Dur),
    Http(String),
}

fn default_grace() -> Dur {
    Dur::secs(30)
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub path: String,
    #[serde(default = "probe_period")]
    pub period: Dur,
    #[serde(default = "probe_timeout")]
    pub timeout: Dur,
    #[serde(default = "three")]
    pub failure_threshold: u32,
    #[serde(default = "one_u32")]
    pub success_threshold: u32,
}

fn probe_period() -> Dur {
    Dur::secs(1)
}
fn probe_timeout() -> Dur {
    Dur::secs(1)
}
fn three() -> u32 {
    3
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    pub name: String,
    /// A service name (the proxy forwards to the service's address, so it follows the service's
    /// replicas across rollouts) or "database".
    pub upstream: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: String,
    /// With a size (e.g. "16MiB"), the volume is a real filesystem of that size (a tmpfs mounted
    /// per replica; needs root), so it can really fill up. Without, a plain directory.
    pub size: Option<Size>,
}

/// The largest sized volume: a tmpfs lives in memory.
pub const MAX_VOLUME_BYTES: u64 = 1 << 30;

/// Parses "16MiB", "512KiB", "1GiB" or a plain byte count.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((t, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| (64 * 1024..=MAX_VOLUME_BYTES).contains(n))
        .ok_or_else(|| {
            format!("'{s}' is not a size from 64KiB to 1GiB (a sized volume is a tmpfs, held in memory); write it like \"16MiB\"")
        })
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct IngressSpec {
    /// The service the route sends traffic to.
    pub service: String,
    #[serde(default = "connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "read_timeout")]
    pub read_timeout: Dur,
    /// nginx `proxy_next_upstream`: "off" (default: never retry, so errors are not masked) or a
    /// list such as "error timeout".
    #[serde(default = "off")]
    pub retries: String,
    /// How long a terminating replica is still routed to (endpoint removal reaching the ingress,
    /// as in Kubernetes). Default 1s.
    #[serde(default = "propagation_delay")]
    pub propagation_delay: Dur,
    /// When no replica is ready, route to all of them instead of answering 503 from the ingress
    /// (Envoy's panic routing). Default true.
    #[serde(default = "yes")]
    pub fail_open: bool,
    /// With no replica ready (and `fail_open = false`), the ingress's own 503 carries
    /// `Retry-After` with this many seconds (a custom error page's header, as teams configure on
    /// their ingress). Default: no Retry-After.
    pub no_endpoints_retry_after: Option<Dur>,
}

fn connect_timeout() -> Dur {
    Dur::secs(1)
}
fn read_timeout() -> Dur {
    Dur::secs(5)
}
fn propagation_delay() -> Dur {
    Dur::secs(1)
}
fn off() -> String {
    "off".into()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSpec {
    #[serde(default = "probe_period")]
    pub scrape_interval: Dur,
    #[serde(default = "probe_period")]
    pub evaluation_interval: Dur,
    /// Rule files, relative to the system file.
    #[serde(default)]
    pub rule_files: Vec<String>,
}

// ---------------------------------------------------------------- loaded, validated form

/// A validated scenario with its system, durations parsed and paths resolved.
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub summary: String,
    pub path: PathBuf,
    pub load: Load,
    pub phases: Vec<Phase>,
    pub expectations: Vec<ExpectSpec>,
    /// Why this scenario opted out of the standing no-silent-outage expectation, if it did.
    pub silent_outages_allowed: Option<String>,
    pub system: System,
    /// The system file was given on the command line (`--system`), not named by the scenario.
    pub system_override: bool,
    /// Each bug this scenario catches, with the expectation ids it must fail (sorted).
    pub catches: Vec<Catch>,
    /// The file has a `[catches]` table (maybe empty): `prove` runs it.
    pub declares_catches: bool,
    /// Tolerances against a baseline run.
    pub regression: RegressionSpec,
    pub seed: u64,
}

/// A bug and exactly the expectations it must fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catch {
    pub bug: String,
    pub fails: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Load {
    pub rate: u32,
    pub max_in_flight: u32,
    pub timeout: Duration,
    pub requests: Vec<RequestSpec>,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub duration: Duration,
    pub fault: Option<FaultSpec>,
}

#[derive(Debug)]
pub struct System {
    pub name: String,
    pub path: PathBuf,
    pub file: SystemFile,
    pub rule_files: Vec<PathBuf>,
    /// The alerting rules its rule files define.
    pub alerts: Vec<rules::AlertRule>,
}

impl Scenario {
    pub fn phase_index(&self, name: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.name == name)
    }
    pub fn total_duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }
}

/// The highest load rate a scenario or game day may ask for (requests per second).
pub const MAX_RATE: u32 = 5000;

/// Parses "30s", "500ms", "1m30s".
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); write it like \"30s\", \"500ms\" or \"1m30s\"")
    })
}

/// Where a byte offset sits in a text: 1-based line and column.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

fn at(
    path: &Path,
    text: &str,
    span: std::ops::Range<usize>,
    msg: impl std::fmt::Display,
) -> BrownoutError {
    let (line, col) = line_col(text, span.start);
    BrownoutError::BadInput(format!("{}:{line}:{col}: {msg}", path.display()))
}

fn read(path: &Path) -> Result<String> {
    source::read_capped(path)
}

pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(span) => at(path, text, span, msg),
            None => BrownoutError::BadInput(format!("{}: {msg}", path.display())),
        }
    })
}

/// Loads and validates a scenario file and the system file it refers to.
pub fn load_scenario(path: &Path) -> Result<Scenario> {
    load_scenario_on(path, None)
}

/// Loads a scenario to run against `system` instead of the system file it names (the same
/// faults, load and expectations against another deployment of the app, or another rule set).
pub fn load_scenario_on(path: &Path, system_arg: Option<&Path>) -> Result<Scenario> {
    let text = read(path)?;
    scenario_from_text(path, &text, system_arg)
}

/// A scenario from its text (`path` names it in errors and resolves its system file).
pub fn scenario_from_text(path: &Path, text: &str, system_arg: Option<&Path>) -> Result<Scenario> {
    let text = text.to_string();
    let file: ScenarioFile = parse_toml(path, &text)?;
    let err = |span: std::ops::Range<usize>, msg: String| at(path, &text, span, msg);

    if let Some(system) = system_arg {
        if let Some(why) = source::not_a_file(system) {
            let why = if why == "does not exist" {
                "no such file".to_string()
            } else {
                why
            };
            return Err(BrownoutError::BadInput(format!(
                "--system {}: {why} (give the path of a system file, e.g. scenarios/systems/checkout.toml)",
                system.display()
            )));
        }
    }
    let system_path = match system_arg {
        Some(s) => s.to_path_buf(),
        None => path
            .parent()
            .unwrap_or(Path::new("."))
            .join(file.system.get_ref()),
    };
    if let Some(why) = source::not_a_file(&system_path) {
        return Err(err(
            file.system.span(),
            format!("system file '{}' {why}", system_path.display()),
        ));
    }
    let mut system = load_system(&system_path)?;
    if let Some(o) = &file.ingress {
        let ingress = &mut system.file.ingress;
        if let Some(v) = o.fail_open {
            ingress.fail_open = v;
        }
        if let Some(v) = o.no_endpoints_retry_after {
            ingress.no_endpoints_retry_after = Some(v);
        }
    }
    let loc = Locator::new(path, &text);
    scenario::check(&loc, &file, &system)?;

    if file.phases.is_empty() {
        return Err(loc.at(
            crate::key_path!["phases"],
            "a scenario needs at least one [[phases]] entry",
        ));
    }
    let mut phases = Vec::new();
    for p in &file.phases {
        let name = p.name.get_ref().clone();
        if phases.iter().any(|q: &Phase| q.name == name) {
            return Err(err(
                p.name.span(),
                format!("phase '{name}' is defined twice"),
            ));
        }
        let duration = p.duration.get_ref().get();
        if duration < Duration::from_secs(1) || duration > Duration::from_secs(6 * 3600) {
            return Err(err(
                p.duration.span(),
                format!(
                    "phase duration '{}' is impossible: it must be between 1s and 6h",
                    p.duration.get_ref()
                ),
            ));
        }
        if let Some(fault) = &p.fault {
            let f = fault.get_ref();
            if let Some(service) = f.service() {
                if !system
                    .file
                    .services
                    .iter()
                    .any(|s| s.name.get_ref() == service)
                {
                    return Err(err(fault.span(), format!("fault {} refers to service '{service}', which the system '{}' does not have", f.kind(), system.name)));
                }
            }
            if let FaultSpec::Proxy { proxy, toxic } = f {
                if !system.file.proxies.iter().any(|p| p.name == *proxy) {
                    let known: Vec<&str> = system
                        .file
                        .proxies
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    return Err(err(fault.span(), format!("fault proxy refers to proxy '{proxy}', which the system does not have (proxies: {})", known.join(", "))));
                }
                if !(0.0..=1.0).contains(&toxic.fraction()) {
                    return Err(err(
                        fault.span(),
                        format!(
                            "fault proxy: fraction {} must be between 0 and 1",
                            toxic.fraction()
                        ),
                    ));
                }
            }
            if let FaultSpec::Requests { requests } = f {
                if requests.is_empty() {
                    return Err(err(fault.span(), "fault requests names no request: list the load requests this phase adds, e.g. requests = [\"bad-coupon\"]".into()));
                }
                for r in requests {
                    match file.load.requests.iter().find(|q| q.name == *r) {
                        None => return Err(err(fault.span(), format!("fault requests names request '{r}', which [load] does not have"))),
                        Some(q) if !q.during.iter().any(|d| d == p.name.get_ref()) => {
                            return Err(err(fault.span(), format!("fault requests names request '{r}', which is not limited to this phase: add during = [\"{}\"] to it (otherwise it is sent in every phase, and is no fault of this one)", p.name.get_ref())))
                        }
                        Some(_) => {}
                    }
                }
            }
            if let FaultSpec::DiskFull { service, volume } = f {
                let svc = system
                    .file
                    .services
                    .iter()
                    .find(|s| s.name.get_ref() == service);
                if !svc.is_some_and(|s| {
                    s.volumes
                        .iter()
                        .any(|v| v.name == *volume && v.size.is_some())
                }) {
                    return Err(err(fault.span(), format!("fault disk-full: service '{service}' has no volume '{volume}' with a size (a real small filesystem is needed)")));
                }
            }
        }
        phases.push(Phase {
            name,
            duration,
            fault: p.fault.as_ref().map(|f| f.get_ref().clone()),
        });
    }

    let rate = *file.load.rate.get_ref();
    if rate == 0 || rate > MAX_RATE {
        return Err(err(
            file.load.rate.span(),
            format!("load rate {rate} is out of range: 1 to {MAX_RATE} requests per second"),
        ));
    }
    let timeout = file.load.timeout.get_ref().get();
    if timeout.is_zero() {
        return Err(err(
            file.load.timeout.span(),
            "load timeout must be above 0".into(),
        ));
    }
    if file.load.requests.is_empty() {
        return Err(loc.at(
            crate::key_path!["load", "requests"],
            "[load] needs at least one [[load.requests]] entry",
        ));
    }
    // Enough slots that the rate holds even when every send and a retry wait the full timeout.
    let max_in_flight = file.load.max_in_flight.unwrap_or_else(|| {
        (rate as f64 * timeout.as_secs_f64() * 2.0)
            .ceil()
            .clamp(16.0, 100_000.0) as u32
    });
    if max_in_flight == 0 {
        return Err(loc.at(
            crate::key_path!["load", "max_in_flight"],
            "[load] max_in_flight must be above 0",
        ));
    }
    if file.load.requests.iter().all(|r| r.weight == 0) {
        return Err(loc.at(
            crate::key_path!["load", "requests"],
            "[load] every request has weight 0: give at least one a weight above 0",
        ));
    }

    let mut ids = Vec::new();
    for e in &file.expect {
        let spec = e.get_ref();
        if ids.contains(&spec.id()) {
            return Err(err(
                e.span(),
                format!("expectation id '{}' is used twice", spec.id()),
            ));
        }
        ids.push(spec.id());
        for phase in spec.phase_refs() {
            if !phases.iter().any(|p| p.name == phase) {
                let known: Vec<_> = phases.iter().map(|p| p.name.as_str()).collect();
                return Err(err(
                    e.span(),
                    format!("expectation '{}' refers to phase '{phase}', which does not exist (phases: {})", spec.id(), known.join(", ")),
                ));
            }
        }
        if let ExpectSpec::Latency { percentile, .. } = spec {
            if !(0.0..=100.0).contains(percentile) {
                return Err(err(
                    e.span(),
                    format!(
                        "expectation '{}': percentile {percentile} must be between 0 and 100",
                        spec.id()
                    ),
                ));
            }
        }
        if let ExpectSpec::StatusCodes {
            request: Some(r), ..
        }
        | ExpectSpec::Latency {
            request: Some(r), ..
        } = spec
        {
            if !file.load.requests.iter().any(|q| q.name == *r) {
                return Err(err(
                    e.span(),
                    format!(
                        "expectation '{}' refers to request '{r}', which [load] does not have",
                        spec.id()
                    ),
                ));
            }
        }
        if let ExpectSpec::NoSilentOutage {
            failure_share,
            min_answers,
            ..
        } = spec
        {
            if !(*failure_share > 0.0 && *failure_share < 1.0) {
                return Err(err(
                    e.span(),
                    format!("expectation '{}': failure_share {failure_share} must be above 0 and below 1 (0.02 is 2%)", spec.id()),
                ));
            }
            if *min_answers == 0 {
                return Err(err(
                    e.span(),
                    format!(
                        "expectation '{}': min_answers must be at least 1",
                        spec.id()
                    ),
                ));
            }
            if let Some(reason) = &file.silent_outages_allowed {
                return Err(err(
                    reason.span(),
                    format!("silent_outages_allowed opts out of no-silent-outage, but expectation '{}' declares it: keep one of the two", spec.id()),
                ));
            }
        }
        if matches!(spec, ExpectSpec::DataIntegrity { .. }) && system.file.integrity.is_none() {
            return Err(err(
                e.span(),
                format!(
                    "expectation '{}' checks data integrity, but the system '{}' declares no [integrity] (see the README)",
                    spec.id(),
                    system.name
                ),
            ));
        }
        if let ExpectSpec::Rollout { outcome, .. } = spec {
            use crate::evidence::RolloutState;
            if !matches!(
                outcome,
                RolloutState::Complete | RolloutState::Stalled | RolloutState::RolledBack
            ) {
                return Err(err(
                    e.span(),
                    format!(
                        "expectation '{}': outcome '{outcome}' must be \"complete\", \"stalled\" or \"rolled-back\"",
                        spec.id()
                    ),
                ));
            }
        }
        if let ExpectSpec::Readiness { service, .. }
        | ExpectSpec::Restarts { service, .. }
        | ExpectSpec::Rollout { service, .. }
        | ExpectSpec::Terminations { service, .. } = spec
        {
            if !system
                .file
                .services
                .iter()
                .any(|s| s.name.get_ref() == service)
            {
                return Err(err(e.span(), format!("expectation '{}' refers to service '{service}', which the system '{}' does not have", spec.id(), system.name)));
            }
        }
    }
    let reserved_id_taken = file
        .expect
        .iter()
        .find(|e| e.get_ref().id() == NO_SILENT_OUTAGE)
        .map(|e| e.span());
    let mut expectations: Vec<ExpectSpec> =
        file.expect.into_iter().map(|e| e.into_inner()).collect();
    let silent_outages_allowed = match file.silent_outages_allowed {
        Some(reason) => {
            if reason.get_ref().trim().is_empty() {
                return Err(err(
                    reason.span(),
                    "silent_outages_allowed needs a reason: say why this scenario may have an outage no alert pages for".into(),
                ));
            }
            Some(reason.into_inner())
        }
        None => None,
    };
    if silent_outages_allowed.is_none()
        && !expectations
            .iter()
            .any(|e| matches!(e, ExpectSpec::NoSilentOutage { .. }))
    {
        if let Some(span) = reserved_id_taken {
            return Err(err(
                span,
                format!("expectation id '{NO_SILENT_OUTAGE}' is reserved for the standing expectation of kind no-silent-outage: rename yours"),
            ));
        }
        expectations.push(ExpectSpec::default_no_silent_outage());
    }
    let mut catches = Vec::new();
    for (bug, ids) in file.catches.iter().flatten() {
        let known: Vec<&String> = system
            .file
            .services
            .iter()
            .flat_map(|s| s.bugs.iter())
            .collect();
        if !known.contains(&bug.get_ref()) {
            return Err(err(
                bug.span(),
                format!(
                    "catches: '{}' is not a bug of system '{}' (bugs: {})",
                    bug.get_ref(),
                    system.name,
                    known
                        .iter()
                        .map(|b| b.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if ids.get_ref().is_empty() {
            return Err(err(ids.span(), format!("catches: bug '{}' lists no expectation: a caught bug fails at least one (list the ids it fails)", bug.get_ref())));
        }
        let mut fails: Vec<String> = Vec::new();
        for id in ids.get_ref() {
            if !expectations.iter().any(|e| e.id() == id) {
                let all: Vec<&str> = expectations.iter().map(|e| e.id()).collect();
                return Err(err(ids.span(), format!("catches: bug '{}' lists '{id}', which is no expectation of this scenario (ids: {})", bug.get_ref(), all.join(", "))));
            }
            if fails.contains(id) {
                return Err(err(
                    ids.span(),
                    format!("catches: bug '{}' lists '{id}' twice", bug.get_ref()),
                ));
            }
            fails.push(id.clone());
        }
        fails.sort();
        catches.push(Catch {
            bug: bug.get_ref().clone(),
            fails,
        });
    }
    Ok(Scenario {
        catches,
        declares_catches: file.catches.is_some(),
        regression: file.regression.unwrap_or_default(),
        name: file.name,
        summary: file.summary,
        path: path.to_path_buf(),
        load: Load {
            rate,
            max_in_flight,
            timeout,
            requests: file.load.requests,
        },
        phases,
        expectations,
        silent_outages_allowed,
        system,
        system_override: system_arg.is_some(),
        seed: file.seed,
    })
}

/// Checks `--bug` names against the bugs the system's services declare.
pub fn check_bugs(system: &System, bugs: &[String]) -> Result<()> {
    let known: Vec<&String> = system
        .file
        .services
        .iter()
        .filter(|s| s.bug_env.is_some())
        .flat_map(|s| s.bugs.iter())
        .collect();
    if bugs.is_empty() {
        return Ok(());
    }
    if !system.file.services.iter().any(|s| s.bug_env.is_some()) {
        return Err(BrownoutError::BadInput(format!(
            "--bug given, but no service of system '{}' has a bug_env to receive it",
            system.name
        )));
    }
    for b in bugs {
        if !known.is_empty() && !known.contains(&b) {
            return Err(BrownoutError::BadInput(format!(
                "unknown bug '{b}' for system '{}' (known: {})",
                system.name,
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// Every `*.toml` scenario directly in `dir`, sorted by name.
pub fn scenario_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BrownoutError::BadInput(format!("{}: cannot list: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Resolves a scenario argument: a path to a file, or a name in `scenarios/`.
pub fn resolve_scenario(arg: &str, scenarios_dir: &Path) -> Result<PathBuf> {
    let as_path = PathBuf::from(arg);
    if as_path.is_file() {
        return Ok(as_path);
    }
    let named = scenarios_dir.join(format!("{arg}.toml"));
    if named.is_file() {
        return Ok(named);
    }
    let known: Vec<String> = scenario_paths(scenarios_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .collect();
    Err(BrownoutError::BadInput(format!(
        "unknown scenario '{arg}': no file {} (known: {})",
        named.display(),
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn durations_parse_and_bad_ones_explain_the_format() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").unwrap_err().contains("\"30s\""));
    }
}
