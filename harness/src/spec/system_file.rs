//! A system file's TOML shape: its services (replicas, command, env, probes, grace, volumes),
//! database, fault proxies, ingress, Prometheus rule files and data-integrity check. Checked and
//! loaded into a [`super::System`] by `system`.

use super::{Dur, Size};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

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
