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

use crate::error::{BrownoutError, Result};
use crate::spec::{PreStopSpec, ProbeSpec, ServiceSpec, System};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretVolumeSource, Service,
    ServiceAccount, ServicePort, ServiceSpec as K8sServiceSpec, SleepAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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

fn service_objects(
    s: &ServiceSpec,
    opts: &RenderOptions,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Object>> {
    let name = s.name.get_ref();
    // The pod's name first: `$(BROWNOUT_POD_NAME)` in later values refers to it.
    let mut env_vars = vec![EnvVar {
        name: "BROWNOUT_POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    env_vars.extend(s.env.iter().map(|(k, v)| env(k, fill(v, vars))));
    if let Some(var) = &s.bug_env {
        env_vars.push(env(var, opts.bugs.join(",")));
    }
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    let mut tmpfs: u64 = 0;
    for v in &s.volumes {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: format!("/volumes/{}", v.name),
            ..Default::default()
        });
        volumes.push(Volume {
            name: v.name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: v.size.map(|_| "Memory".to_string()),
                size_limit: v.size.map(|sz| quantity(sz.0)),
            }),
            ..Default::default()
        });
        tmpfs += v.size.map_or(0, |sz| sz.0);
    }
    let pre_stop = s.pre_stop.as_ref().map(|p| Lifecycle {
        pre_stop: Some(match p {
            PreStopSpec::Sleep(d) => LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: d.ms().div_ceil(1000) as i64,
                }),
                ..Default::default()
            },
            PreStopSpec::Http(path) => LifecycleHandler {
                http_get: Some(HTTPGetAction {
                    path: Some(path.clone()),
                    port: IntOrString::Int(SERVICE_PORT),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }),
        ..Default::default()
    });
    // A memory-backed volume counts against the container's memory: keep the limit well above.
    let memory = quantity((256 << 20) + 2 * tmpfs);
    let container = Container {
        name: name.clone(),
        image: Some(image_of(s, &opts.image_tag)?),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(s.command.iter().map(|c| fill(c, vars)).collect()),
        env: Some(env_vars),
        ports: Some(vec![container_port("http", SERVICE_PORT)]),
        readiness_probe: s.readiness.as_ref().map(probe),
        liveness_probe: s.liveness.as_ref().map(probe),
        lifecycle: pre_stop,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), memory)])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        termination_grace_period_seconds: Some(s.grace_period.ms().div_ceil(1000) as i64),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    };
    let annotations = match &s.metrics_path {
        Some(path) => BTreeMap::from([
            (SCRAPE.to_string(), "true".to_string()),
            (SCRAPE_PATH.into(), path.clone()),
            (SCRAPE_PORT.into(), SERVICE_PORT.to_string()),
        ]),
        None => BTreeMap::new(),
    };
    Ok(vec![
        Object::Deployment(deployment(opts, name, s.replicas as i32, pod, annotations)),
        Object::Service(service(opts, name, vec![port("http", SERVICE_PORT, None)])),
    ])
}

fn postgres_objects(opts: &RenderOptions, database: &str) -> Vec<Object> {
    let container = Container {
        name: "postgres".into(),
        image: Some(opts.postgres_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vec![
            env("POSTGRES_HOST_AUTH_METHOD", "trust".into()),
            env("POSTGRES_DB", database.into()),
            env("PGDATA", "/var/lib/postgresql/data/pgdata".into()),
        ]),
        // The same settings as the local platform's throwaway cluster.
        args: Some(
            [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=200",
                "-c",
                "log_min_duration_statement=200ms",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("postgres", 5432)]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(
                    ["pg_isready", "-U", "postgres", "-d", database]
                        .map(String::from)
                        .to_vec(),
                ),
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/var/lib/postgresql/data".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: POSTGRES_CLAIM.into(),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    // The data stays on the claim when the pod goes (database-down scales to 0 and back; an
    // emptyDir would be deleted with the pod and the new one would run initdb again).
    let claim = PersistentVolumeClaim {
        metadata: meta(opts, POSTGRES_CLAIM),
        spec: Some(PersistentVolumeClaimSpec {
            // No storageClassName: the cluster's default (kind: "standard", local-path).
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("1Gi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut postgres = deployment(opts, "postgres", 1, pod, BTreeMap::new());
    // The old pod must be gone before the new one starts: both would mount the one
    // ReadWriteOnce volume, and two servers must never share a data directory.
    if let Some(spec) = postgres.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    vec![
        Object::PersistentVolumeClaim(claim),
        Object::Deployment(postgres),
        Object::Service(service(
            opts,
            "postgres",
            vec![port("postgres", 5432, Some(POSTGRES_NODE_PORT))],
        )),
    ]
}

fn proxy_objects(system: &System, opts: &RenderOptions) -> Vec<Object> {
    let file = &system.file;
    let mut args = vec![
        "--control".to_string(),
        format!("0.0.0.0:{PROXY_CONTROL_PORT}"),
        "--listen".into(),
        format!("0.0.0.0:{PROXY_FIRST_PORT}"),
        "--token-file".into(),
        "/etc/fault-proxy/token".into(),
    ];
    let mut ports = vec![port(
        "control",
        PROXY_CONTROL_PORT,
        Some(PROXY_CONTROL_NODE_PORT),
    )];
    for (i, p) in file.proxies.iter().enumerate() {
        // The upstream is the Service's name, resolved at each connection: it follows the
        // service's pods across rollouts, as kube-proxy routes them.
        let upstream = match p.upstream.as_str() {
            "database" => "postgres:5432".to_string(),
            s => format!("{s}:{SERVICE_PORT}"),
        };
        args.extend(["--proxy".to_string(), format!("{}={upstream}", p.name)]);
        // Port names are at most 15 characters: numbered, the proxy named in the args.
        ports.push(port(
            &format!("proxy-{i}"),
            PROXY_FIRST_PORT + i as i32,
            None,
        ));
    }
    let container = Container {
        name: "fault-proxy".into(),
        image: Some(format!("brownout/fault-proxy:{}", opts.image_tag)),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        ports: Some(
            ports
                .iter()
                .map(|p| container_port(p.name.as_deref().unwrap_or_default(), p.port))
                .collect(),
        ),
        readiness_probe: Some(Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(PROXY_CONTROL_PORT),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "token".into(),
            mount_path: "/etc/fault-proxy".into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("fault-proxy-token".into()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    vec![
        Object::Secret(Secret {
            metadata: meta(opts, "fault-proxy-token"),
            string_data: Some(BTreeMap::from([("token".into(), opts.proxy_token.clone())])),
            ..Default::default()
        }),
        Object::Deployment(deployment(opts, "fault-proxy", 1, pod, BTreeMap::new())),
        Object::Service(service(opts, "fault-proxy", ports)),
    ]
}

/// nginx (the same configuration as the local platform) routing to the pods of the routed
/// Service, with mtail reading its edge log from a shared emptyDir. The upstreams file lives in
/// another emptyDir, seeded at pod start with the no-endpoints form (nginx starts and answers 503
/// until the harness writes the pods' addresses into it by exec: [`super::ingress`]).
fn ingress_objects(system: &System, opts: &RenderOptions) -> Vec<Object> {
    let spec = &system.file.ingress;
    let conf = crate::platform::nginx_conf::render(
        &crate::platform::nginx_conf::Layout {
            run_as_root: false,
            pid: "/tmp/nginx.pid".into(),
            error_log: "/dev/stderr".into(),
            access_log: "/dev/stdout".into(),
            edge_log: "/var/log/brownout/ingress-edge.log".into(),
            temp_dir: "/tmp".into(),
            upstreams: super::ingress::UPSTREAMS_FILE.into(),
            listen: format!("{SERVICE_PORT}"),
        },
        spec,
    );
    // Not the Service's ClusterIP (kube-proxy never routes to unready pods, so no fail-open, and
    // `$upstream_addr` would name no pod): the harness writes the pods' addresses.
    let seed = crate::platform::nginx_conf::upstreams(&[]);
    let config = ConfigMap {
        metadata: meta(opts, "ingress"),
        data: Some(BTreeMap::from([
            ("nginx.conf".to_string(), conf),
            (UPSTREAMS_SEED.to_string(), seed),
            (
                "ingress.mtail".to_string(),
                crate::platform::nginx_conf::EDGE_PROGRAM.to_string(),
            ),
        ])),
        ..Default::default()
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let image = format!("brownout/ingress:{}", opts.image_tag);
    let nginx = Container {
        name: "nginx".into(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "nginx",
                "-c",
                "/etc/brownout/nginx.conf",
                "-g",
                "daemon off;",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("http", SERVICE_PORT)]),
        volume_mounts: Some(vec![
            mount("config", "/etc/brownout"),
            mount("edge-log", "/var/log/brownout"),
            mount("upstreams", super::ingress::UPSTREAMS_DIR),
        ]),
        ..Default::default()
    };
    // Runs once per pod (not per container restart): a restarted nginx keeps the last route
    // written, and the harness writes it again anyway.
    let seed_upstreams = Container {
        name: "seed-upstreams".into(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "cp".to_string(),
                format!("/etc/brownout/{UPSTREAMS_SEED}"),
                super::ingress::UPSTREAMS_FILE.to_string(),
            ]
            .to_vec(),
        ),
        volume_mounts: Some(vec![
            mount("config", "/etc/brownout"),
            mount("upstreams", super::ingress::UPSTREAMS_DIR),
        ]),
        ..Default::default()
    };
    let mtail = Container {
        name: "mtail".into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "mtail",
                "-progs",
                "/etc/brownout/ingress.mtail",
                "-logs",
                "/var/log/brownout/ingress-edge.log",
                "-port",
                "3903",
                "-poll_interval",
                "20ms",
                "-emit_prog_label=false",
                "-logtostderr",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("metrics", 3903)]),
        volume_mounts: Some(vec![
            mount("config", "/etc/brownout"),
            mount("edge-log", "/var/log/brownout"),
        ]),
        ..Default::default()
    };
    let pod = PodSpec {
        init_containers: Some(vec![seed_upstreams]),
        containers: vec![nginx, mtail],
        volumes: Some(vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "ingress".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "edge-log".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: "upstreams".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let annotations = BTreeMap::from([
        (SCRAPE.to_string(), "true".to_string()),
        (SCRAPE_PATH.into(), "/metrics".into()),
        (SCRAPE_PORT.into(), "3903".into()),
    ]);
    vec![
        Object::ConfigMap(config),
        Object::Deployment(deployment(opts, "ingress", 1, pod, annotations)),
        Object::Service(service(
            opts,
            "ingress",
            vec![port("http", SERVICE_PORT, Some(INGRESS_NODE_PORT))],
        )),
    ]
}

/// Prometheus' configuration on Kubernetes: the pods of the run's namespace that ask to be
/// scraped, labelled as on the local platform (`job` = the component, `replica` = the pod), so
/// the rule files run unchanged.
pub fn prometheus_config(system: &System, opts: &RenderOptions) -> String {
    let p = &system.file.prometheus;
    let mut rules = String::new();
    for r in &system.rule_files {
        let base = r.file_name().unwrap_or_default().to_string_lossy();
        rules.push_str(&format!("  - /etc/prometheus/rules/{base}\n"));
    }
    format!(
        r#"# Written by brownout for one run.
global:
  scrape_interval: {scrape}ms
  scrape_timeout: {scrape}ms
  evaluation_interval: {evaluation}ms
rule_files:
{rules}scrape_configs:
  - job_name: pods
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          names: ['{ns}']
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_brownout_dev_scrape]
        regex: 'true'
        action: keep
      - source_labels: [__meta_kubernetes_pod_annotation_brownout_dev_metrics_path]
        target_label: __metrics_path__
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_brownout_dev_metrics_port]
        separator: ':'
        target_label: __address__
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: ingress
        replacement: brownout-edge
        target_label: __tmp_job
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: '(.+)'
        target_label: job
      - source_labels: [__tmp_job]
        regex: '(.+)'
        target_label: job
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: replica
"#,
        scrape = p.scrape_interval.ms(),
        evaluation = p.evaluation_interval.ms(),
        ns = opts.namespace,
    )
}

fn prometheus_objects(system: &System, opts: &RenderOptions) -> Result<Vec<Object>> {
    let mut rules = BTreeMap::new();
    for r in &system.rule_files {
        let base = r
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(r)
            .map_err(|e| BrownoutError::BadInput(format!("rule file {}: {e}", r.display())))?;
        if rules.insert(base.clone(), text).is_some() {
            return Err(BrownoutError::BadInput(format!(
                "two rule files are named {base}: on Kubernetes they share one ConfigMap, rename one"
            )));
        }
    }
    let account = "prometheus";
    let config = ConfigMap {
        metadata: meta(opts, "prometheus"),
        data: Some(BTreeMap::from([(
            "prometheus.yml".to_string(),
            prometheus_config(system, opts),
        )])),
        ..Default::default()
    };
    let rule_map = ConfigMap {
        metadata: meta(opts, "prometheus-rules"),
        data: Some(rules),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(opts, account),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(["pods", "services", "endpoints"].map(String::from).to_vec()),
            verbs: ["get", "list", "watch"].map(String::from).to_vec(),
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(opts, account),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: account.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(opts.namespace.clone()),
            ..Default::default()
        }]),
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let container = Container {
        name: "prometheus".into(),
        image: Some(opts.prometheus_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(
            [
                "--config.file=/etc/prometheus/config/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("http", 9090)]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/-/ready".into()),
                port: IntOrString::Int(9090),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("config", "/etc/prometheus/config"),
            mount("rules", "/etc/prometheus/rules"),
            mount("data", "/prometheus"),
        ]),
        ..Default::default()
    };
    let config_volume = |name: &str, map: &str| Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: map.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        service_account_name: Some(account.into()),
        containers: vec![container],
        volumes: Some(vec![
            config_volume("config", "prometheus"),
            config_volume("rules", "prometheus-rules"),
            Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Ok(vec![
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(opts, account),
            ..Default::default()
        }),
        Object::Role(role),
        Object::RoleBinding(binding),
        Object::ConfigMap(config),
        Object::ConfigMap(rule_map),
        Object::Deployment(deployment(opts, "prometheus", 1, pod, BTreeMap::new())),
        Object::Service(service(
            opts,
            "prometheus",
            vec![port("http", 9090, Some(PROMETHEUS_NODE_PORT))],
        )),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn rendered(system: &str) -> Vec<Object> {
        let system = crate::spec::load_system(&root().join(system)).unwrap();
        let mut opts = RenderOptions::new("brownout-golden", "golden");
        opts.proxy_token = "golden-token".into();
        render(&system, &opts).unwrap()
    }

    /// The rendering is what `kind-config/golden/<name>.yaml` says (rewrite it with
    /// BROWNOUT_BLESS=1 after a deliberate change, and review the diff), and it reads back into
    /// the same typed objects.
    fn golden(system: &str, name: &str) {
        let objects = rendered(system);
        let yaml = to_yaml(&objects).unwrap();
        let path = root().join(format!("kind-config/golden/{name}.yaml"));
        if std::env::var_os("BROWNOUT_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &yaml).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (BROWNOUT_BLESS=1 writes it)", path.display()));
        assert!(
            yaml == want,
            "{} differs from the rendering; if the change is meant, rerun with BROWNOUT_BLESS=1 and review the diff",
            path.display()
        );
        assert_eq!(from_yaml(&want).unwrap(), objects, "reads back the same");
    }

    #[test]
    fn the_sample_system_renders_as_its_golden_file() {
        golden("scenarios/systems/checkout.toml", "checkout");
    }

    #[test]
    fn a_system_without_database_or_proxies_renders_as_its_golden_file() {
        golden(
            "tests/fixtures/plain/systems/plain-pre-stop.toml",
            "plain-pre-stop",
        );
    }

    /// database-down scales PostgreSQL's Deployment to 0 and back to 1: the new pod must find
    /// the old data, or the postgres image runs initdb again (its docker-entrypoint.sh does so
    /// when `$PGDATA/PG_VERSION` is missing: docker-library/postgres docker-entrypoint.sh,
    /// `docker_setup_env`) and the app, which migrated only at boot, finds no tables. An emptyDir
    /// cannot keep it: "When a Pod is removed from a node for any reason, the data in the emptyDir
    /// is deleted permanently"
    /// (https://kubernetes.io/docs/concepts/storage/volumes/#emptydir). A PersistentVolumeClaim
    /// outlives its pods; without `storageClassName` it gets the cluster's default class
    /// (https://kubernetes.io/docs/concepts/storage/persistent-volumes/#class-1), which on kind
    /// is `standard`, rancher.io/local-path, `volumeBindingMode: WaitForFirstConsumer`,
    /// `reclaimPolicy: Delete` (kubernetes-sigs/kind pkg/build/nodeimage/const_storage.go, applied
    /// at cluster creation by pkg/cluster/internal/create/actions/installstorage/storage.go), so
    /// it binds when the postgres pod is scheduled and its volume goes with the run's namespace.
    /// The strategy is `Recreate` ("All existing Pods are killed before new ones are created",
    /// https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#recreate-deployment):
    /// a RollingUpdate would start the new pod while the old one still holds the volume.
    #[test]
    fn postgres_keeps_its_data_on_a_claim_of_the_default_class_and_is_recreated() {
        let objects = rendered("scenarios/systems/checkout.toml");
        let claim = objects
            .iter()
            .find_map(|o| match o {
                Object::PersistentVolumeClaim(c) => Some(c),
                _ => None,
            })
            .expect("a PersistentVolumeClaim");
        assert_eq!(claim.metadata.name.as_deref(), Some(POSTGRES_CLAIM));
        assert_eq!(
            claim.metadata.namespace.as_deref(),
            Some("brownout-golden"),
            "in the run's namespace, so it goes with it"
        );
        let spec = claim.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name, None, "the cluster's default class");
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        let at = |kind: &str, name: &str| {
            objects
                .iter()
                .position(|o| o.kind() == kind && o.name() == name)
                .unwrap()
        };
        assert!(
            at("PersistentVolumeClaim", POSTGRES_CLAIM) < at("Deployment", "postgres"),
            "the claim is applied before its pod"
        );
        let postgres = deployment(&objects, "postgres");
        let dspec = postgres.spec.as_ref().unwrap();
        let strategy = dspec.strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
        assert_eq!(strategy.rolling_update, None);
        let pod = dspec.template.spec.as_ref().unwrap();
        let data = pod.volumes.as_ref().unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].empty_dir, None, "not an emptyDir");
        assert_eq!(
            data[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some(POSTGRES_CLAIM)
        );
        let mounts = container(postgres).volume_mounts.as_ref().unwrap();
        assert_eq!(mounts[0].name, data[0].name);
        assert_eq!(mounts[0].mount_path, "/var/lib/postgresql/data");
        // PGDATA is a directory below the mount (a fresh volume may hold lost+found).
        assert_eq!(
            env_of(container(postgres), "PGDATA"),
            "/var/lib/postgresql/data/pgdata"
        );
        // The apps keep the RollingUpdate of the system file.
        let checkout = deployment(&objects, "checkout").spec.as_ref().unwrap();
        assert_eq!(
            checkout.strategy.as_ref().unwrap().type_.as_deref(),
            Some("RollingUpdate")
        );
    }

    fn deployment<'a>(objects: &'a [Object], name: &str) -> &'a Deployment {
        objects
            .iter()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
                _ => None,
            })
            .unwrap()
    }

    fn container(d: &Deployment) -> &Container {
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env_of(c: &Container, name: &str) -> String {
        let e = c.env.as_ref().unwrap().iter().find(|e| e.name == name);
        e.and_then(|e| e.value.clone()).unwrap_or_default()
    }

    #[test]
    fn the_system_file_maps_onto_the_kubernetes_fields() {
        let objects = rendered("scenarios/systems/checkout.toml");
        let checkout = deployment(&objects, "checkout");
        let spec = checkout.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(10));
        let c = container(checkout);
        assert_eq!(c.image.as_deref(), Some("brownout/checkout:dev"));
        assert_eq!(c.command.as_ref().unwrap()[0], "/usr/local/bin/checkout");
        // 800 ms is not a whole second: rounded up to the 1 s Kubernetes allows at least.
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (ready.period_seconds, ready.timeout_seconds),
            (Some(1), Some(1))
        );
        assert_eq!(
            c.liveness_probe.as_ref().unwrap().failure_threshold,
            Some(3)
        );
        assert_eq!(env_of(c, "PAYMENTS_URL"), "http://fault-proxy:15000");
        assert_eq!(
            env_of(c, "DATABASE_URL"),
            "postgres://postgres@postgres:5432/checkout"
        );
        assert_eq!(env_of(c, "LISTEN_ADDR"), "0.0.0.0:8080");
        assert_eq!(env_of(c, "REPLICA_NAME"), "$(BROWNOUT_POD_NAME)");
        assert_eq!(
            c.env.as_ref().unwrap()[0].name,
            "BROWNOUT_POD_NAME",
            "defined first"
        );
        assert_eq!(env_of(c, "RECEIPTS_DIR"), "/volumes/receipts");
        let receipts = &pod.volumes.as_ref().unwrap()[0];
        let empty_dir = receipts.empty_dir.as_ref().unwrap();
        assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
        assert_eq!(empty_dir.size_limit, Some(Quantity("16Mi".into())));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(
            limits["memory"],
            Quantity("288Mi".into()),
            "256 MiB + twice the tmpfs"
        );
        // The fault proxy forwards to the Service's name, which follows the pods.
        let proxy = container(deployment(&objects, "fault-proxy"));
        assert!(proxy
            .args
            .as_ref()
            .unwrap()
            .contains(&"payments=payments:8080".to_string()));
        // Every object is in the run's namespace and carries the run label.
        for o in &objects {
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(
                json["metadata"]["namespace"],
                "brownout-golden",
                "{}",
                o.name()
            );
            assert_eq!(
                json["metadata"]["labels"][RUN_LABEL],
                "golden",
                "{}",
                o.name()
            );
        }
    }

    #[test]
    fn bugs_reach_the_bug_variable_and_a_foreign_command_needs_an_image() {
        let mut system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let mut opts = RenderOptions::new("ns", "run");
        opts.bugs = vec!["no-drain".into(), "ignore-sigterm".into()];
        let objects = render(&system, &opts).unwrap();
        let c = container(deployment(&objects, "checkout"));
        assert_eq!(env_of(c, "CHECKOUT_BUGS"), "no-drain,ignore-sigterm");

        system.file.services[0].command = vec!["/opt/shop/server".into()];
        let err = render(&system, &opts).unwrap_err().to_string();
        assert!(
            err.contains("service 'payments'") && err.contains("`image`"),
            "{err}"
        );
        system.file.services[0].image = Some("registry.example/shop:1.2".into());
        let objects = render(&system, &opts).unwrap();
        let c = container(deployment(&objects, "payments"));
        assert_eq!(c.image.as_deref(), Some("registry.example/shop:1.2"));
    }
}
