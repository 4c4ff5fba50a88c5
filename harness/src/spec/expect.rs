//! An expectation's shape (`[[expect]]`, one variant per kind), as a scenario or a game day's
//! expect file writes it, and the standing no-silent-outage expectation.

use super::Dur;
use serde::Deserialize;

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
