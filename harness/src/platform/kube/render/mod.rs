//! A system file as Kubernetes objects (typed, from k8s-openapi), for one run's namespace. No CRDs,
//! no cluster-scoped object: everything lives in the namespace and goes with it.
//!
//! | system file | objects |
//! |---|---|
//! | `[[services]]` | a Deployment (replicas, env, probes, `terminationGracePeriodSeconds`, `preStop`, surge 1 / unavailable 0) and a Service on port 8080 |
//! | `volumes` with a `size` | `emptyDir { medium: Memory, sizeLimit }` (a tmpfs: a real ENOSPC; a disk-backed emptyDir evicts the pod instead), with a memory limit well above it |
//! | `[database]` | PostgreSQL: a Deployment (strategy `Recreate`) on a PersistentVolumeClaim of the cluster's default StorageClass, so its data outlives the pod (database-down), and a NodePort Service (the harness holds its locks through a fixed address) |
//! | `[[proxies]]` | one `fault-proxy` Deployment holding every proxy on fixed ports, its control API behind a NodePort and a token Secret |
//! | `[ingress]` | nginx with the same configuration as the local platform ([`crate::platform::nginx_conf`]) routing to the Service's pods (upstreams written by [`super::ingress`] into an `emptyDir`), plus mtail for the edge metrics |
//! | `[prometheus]` | a plain Deployment that discovers the namespace's pods (a namespaced Role) and evaluates the unchanged rule files from a ConfigMap |
//!
//! Placeholders become in-cluster values: `{listen_addr}` → `0.0.0.0:8080`, `{replica}` → the pod's
//! name, `{service.<name>.url}` → `http://<name>:8080`, `{proxy.<name>.addr}` → `fault-proxy:<port>`,
//! `{database_url}` → the PostgreSQL Service, `{volume.<name>}` → `/volumes/<name>`. Probe periods
//! and timeouts are whole seconds on Kubernetes (at least 1): shorter ones are rounded up.

mod apps;
mod nginx;
mod postgres;
mod prometheus;
mod proxies;

use crate::error::{BrownoutError, Result};
use crate::spec::{ProbeSpec, ServiceSpec, System};
use apps::service_objects;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim, PodSpec,
    PodTemplateSpec, Probe, Secret, Service, ServiceAccount, ServicePort,
    ServiceSpec as K8sServiceSpec,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nginx::ingress_objects;
use postgres::postgres_objects;
pub use prometheus::prometheus_config;
use prometheus::prometheus_objects;
use proxies::proxy_objects;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The port every service listens on inside its pod.
pub const SERVICE_PORT: i32 = 8080;
/// The fault proxies' first port (the next ones follow in the system file's order).
pub const PROXY_FIRST_PORT: i32 = 15000;
/// The fault proxy's control API (Toxiproxy's port).
pub const PROXY_CONTROL_PORT: i32 = 8474;
/// Node ports the kind config maps to 127.0.0.1 (`kind-config/kind.yaml`).
pub const INGRESS_NODE_PORT: i32 = 30080;
pub const POSTGRES_NODE_PORT: i32 = 30432;
pub const PROMETHEUS_NODE_PORT: i32 = 30090;
pub const PROXY_CONTROL_NODE_PORT: i32 = 30474;

/// The PersistentVolumeClaim holding PostgreSQL's data.
pub const POSTGRES_CLAIM: &str = "postgres-data";
/// The port of mtail's HTTP server in the ingress pod (its `/json` and `/metrics`).
pub const EDGE_METRICS_PORT: i32 = 3903;

/// The label every object of a run carries (the run id), so leftovers of dead runs can be found.
pub const RUN_LABEL: &str = "brownout.dev/run";
/// The label naming the component (a service's name, `postgres`, `ingress`, …).
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// What a rendering depends on besides the system file.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub namespace: String,
    pub run_id: String,
    /// Tag of the images built from `kind-config/` (non-`latest`, so `kind load` works).
    pub image_tag: String,
    /// The fault proxy's control token (a Secret).
    pub proxy_token: String,
    /// `--bug` names, passed to services that declare `bug_env`.
    pub bugs: Vec<String>,
    /// Images of third-party components.
    pub postgres_image: String,
    pub prometheus_image: String,
}

impl RenderOptions {
    pub fn new(namespace: &str, run_id: &str) -> RenderOptions {
        RenderOptions {
            namespace: namespace.into(),
            run_id: run_id.into(),
            image_tag: "dev".into(),
            proxy_token: String::new(),
            bugs: Vec::new(),
            postgres_image: "postgres:17-bookworm".into(),
            prometheus_image: "prom/prometheus:v3.5.0".into(),
        }
    }
}

/// One object of a run, in the order they are applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
// A few dozen objects per run, built once: their sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Object {
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    Secret(Secret),
    ConfigMap(ConfigMap),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Deployment(Deployment),
    Service(Service),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::Secret(_) => "Secret",
            Object::ConfigMap(_) => "ConfigMap",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

/// Every object as one YAML stream (`---` between documents), the form of the golden files.
pub fn to_yaml(objects: &[Object]) -> Result<String> {
    let mut out = String::new();
    for o in objects {
        let doc = serde_saphyr::to_string(o).map_err(|e| {
            BrownoutError::Environment(format!("cannot write {} {}: {e}", o.kind(), o.name()))
        })?;
        out.push_str("---\n");
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Reads a YAML stream back into typed objects, by each document's `kind`.
pub fn from_yaml(text: &str) -> Result<Vec<Object>> {
    let bad = |e: String| BrownoutError::BadInput(format!("manifests: {e}"));
    let mut out = Vec::new();
    for doc in text.split("\n---\n").map(|d| d.trim_start_matches("---\n")) {
        if doc.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_saphyr::from_str(doc).map_err(|e| bad(e.to_string()))?;
        let typed = |v: serde_json::Value| -> Result<Object> {
            let e = |e: serde_json::Error| bad(e.to_string());
            Ok(match v["kind"].as_str().unwrap_or_default() {
                "ServiceAccount" => Object::ServiceAccount(serde_json::from_value(v).map_err(e)?),
                "Role" => Object::Role(serde_json::from_value(v).map_err(e)?),
                "RoleBinding" => Object::RoleBinding(serde_json::from_value(v).map_err(e)?),
                "Secret" => Object::Secret(serde_json::from_value(v).map_err(e)?),
                "ConfigMap" => Object::ConfigMap(serde_json::from_value(v).map_err(e)?),
                "PersistentVolumeClaim" => {
                    Object::PersistentVolumeClaim(serde_json::from_value(v).map_err(e)?)
                }
                "Deployment" => Object::Deployment(serde_json::from_value(v).map_err(e)?),
                "Service" => Object::Service(serde_json::from_value(v).map_err(e)?),
                other => return Err(bad(format!("unexpected kind '{other}'"))),
            })
        };
        out.push(typed(value)?);
    }
    Ok(out)
}

fn labels(opts: &RenderOptions, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), name.to_string()),
        (RUN_LABEL.to_string(), opts.run_id.clone()),
    ])
}

fn meta(opts: &RenderOptions, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(opts.namespace.clone()),
        labels: Some(labels(opts, name)),
        ..Default::default()
    }
}

/// Whole seconds, at least 1 (what probe fields take).
fn whole_secs(d: crate::spec::Dur) -> i32 {
    (d.ms().div_ceil(1000) as i32).max(1)
}

/// The probe periods and timeouts of `system`'s services that [`whole_secs`] rounds up (a probe's
/// `periodSeconds` and `timeoutSeconds` are whole seconds, at least 1:
/// https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes),
/// for the report: those probes run slower, or wait longer, than the system file says.
pub fn rounded_probe_times(system: &System) -> Vec<crate::platform::RoundedProbeTime> {
    use crate::evidence::Probe as Kind;
    use crate::platform::{ProbeField, RoundedProbeTime};
    let mut out = Vec::new();
    for s in &system.file.services {
        let probes = [
            (Kind::Readiness, &s.readiness),
            (Kind::Liveness, &s.liveness),
        ];
        for (kind, p) in probes {
            let Some(p) = p else { continue };
            for (field, d) in [
                (ProbeField::Period, p.period),
                (ProbeField::Timeout, p.timeout),
            ] {
                let runs_ms = whole_secs(d) as u64 * 1000;
                if runs_ms != d.ms() {
                    out.push(RoundedProbeTime {
                        service: s.name.get_ref().clone(),
                        probe: kind,
                        field,
                        asked_ms: d.ms(),
                        runs_ms,
                    });
                }
            }
        }
    }
    out
}

fn probe(p: &ProbeSpec) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(p.path.clone()),
            port: IntOrString::Int(SERVICE_PORT),
            ..Default::default()
        }),
        period_seconds: Some(whole_secs(p.period)),
        timeout_seconds: Some(whole_secs(p.timeout)),
        failure_threshold: Some(p.failure_threshold as i32),
        success_threshold: Some(p.success_threshold as i32),
        ..Default::default()
    }
}

/// `Mi` when the size is a whole number of MiB, else bytes.
fn quantity(bytes: u64) -> Quantity {
    if bytes.is_multiple_of(1 << 20) {
        Quantity(format!("{}Mi", bytes >> 20))
    } else {
        Quantity(bytes.to_string())
    }
}

/// The image a service runs: its own `image`, or for a workspace binary (`{bin_dir}/<name>`) the
/// image `kind-config/` builds for it.
pub fn image_of(svc: &ServiceSpec, tag: &str) -> Result<String> {
    if let Some(image) = &svc.image {
        return Ok(image.clone());
    }
    match svc.command.first().and_then(|c| c.strip_prefix("{bin_dir}/")) {
        Some(bin) => Ok(format!("brownout/{bin}:{tag}")),
        None => Err(BrownoutError::BadInput(format!(
            "service '{}': on Kubernetes it needs an `image` (its command is not a workspace binary under {{bin_dir}})",
            svc.name.get_ref()
        ))),
    }
}

/// Replaces the placeholders with their in-cluster values.
fn fill(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn deployment(
    opts: &RenderOptions,
    name: &str,
    replicas: i32,
    pod: PodSpec,
    annotations: BTreeMap<String, String>,
) -> Deployment {
    Deployment {
        metadata: meta(opts, name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(NAME_LABEL.into(), name.into())])),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(opts, name)),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(opts: &RenderOptions, name: &str, ports: Vec<ServicePort>) -> Service {
    let node_port = ports.iter().any(|p| p.node_port.is_some());
    Service {
        metadata: meta(opts, name),
        spec: Some(K8sServiceSpec {
            selector: Some(BTreeMap::from([(NAME_LABEL.into(), name.into())])),
            type_: Some(if node_port { "NodePort" } else { "ClusterIP" }.into()),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port(name: &str, port: i32, node_port: Option<i32>) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        node_port,
        ..Default::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..Default::default()
    }
}

/// Where the ingress pod (and [`super::ingress`], which writes it) keeps the upstreams file: an `emptyDir`, writable, seeded at start.
pub const UPSTREAMS_DIR: &str = "/var/lib/brownout";
pub const UPSTREAMS_FILE: &str = "/var/lib/brownout/upstreams.conf";
/// The ingress ConfigMap's key holding the upstreams file's first form (no endpoints).
pub const UPSTREAMS_SEED: &str = "upstreams.seed.conf";

/// The pod annotations the Prometheus discovery keeps: scrape this pod, at this path.
const SCRAPE: &str = "brownout.dev/scrape";
const SCRAPE_PATH: &str = "brownout.dev/metrics-path";
const SCRAPE_PORT: &str = "brownout.dev/metrics-port";

/// Every object of a run of `system`.
pub fn render(system: &System, opts: &RenderOptions) -> Result<Vec<Object>> {
    let file = &system.file;
    let mut vars = BTreeMap::from([
        ("bin_dir".to_string(), "/usr/local/bin".to_string()),
        ("listen_addr".into(), format!("0.0.0.0:{SERVICE_PORT}")),
        ("replica".into(), "$(BROWNOUT_POD_NAME)".into()),
    ]);
    if let Some(db) = &file.database {
        vars.insert(
            "database_url".into(),
            format!("postgres://postgres@postgres:5432/{}", db.name),
        );
    }
    for s in &file.services {
        let n = s.name.get_ref();
        vars.insert(
            format!("service.{n}.url"),
            format!("http://{n}:{SERVICE_PORT}"),
        );
    }
    for (i, p) in file.proxies.iter().enumerate() {
        vars.insert(
            format!("proxy.{}.addr", p.name),
            format!("fault-proxy:{}", PROXY_FIRST_PORT + i as i32),
        );
    }

    let mut out = Vec::new();
    out.extend(prometheus_objects(system, opts)?);
    if let Some(db) = &file.database {
        out.extend(postgres_objects(opts, &db.name));
    }
    if !file.proxies.is_empty() {
        out.extend(proxy_objects(system, opts));
    }
    for s in &file.services {
        let mut vars = vars.clone();
        for v in &s.volumes {
            vars.insert(format!("volume.{}", v.name), format!("/volumes/{}", v.name));
        }
        out.extend(service_objects(s, opts, &vars)?);
    }
    out.extend(ingress_objects(system, opts));
    Ok(out)
}

#[cfg(test)]
mod tests;
