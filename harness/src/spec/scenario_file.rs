//! A scenario file's TOML shape, as written: name, system, `[load]` and its requests,
//! `[[phases]]` (each with its fault), `[[expect]]`, `[catches]`, `[regression]` and the ingress
//! settings it may change. Checked and turned into a [`super::Scenario`] by `loading`.

use super::{Dur, ExpectSpec, FaultSpec, RegressionSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

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

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    pub on: Vec<u16>,
    #[serde(default = "one_u32")]
    pub max: u32,
}

fn one_u32() -> u32 {
    1
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
