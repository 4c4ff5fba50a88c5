//! [`KubePlatform`]: the [`Platform`] on a Kubernetes cluster. `deploy` gets a client (for kind:
//! the `brownout` cluster created or reused, the images built and loaded, its kubeconfig; for
//! another cluster: the kubeconfig context given), deletes the namespaces of dead runs, creates
//! this run's namespace, applies the rendered objects (the apps' dependencies first, the apps once
//! those are available), starts the watches that feed the evidence, and waits, bounded, for every
//! Deployment to be available and the fixed host addresses (kind's port mappings) to answer. The
//! services and the ingress's mtail are read through the API server's proxy ([`super::relay`]).
//! Faults act through the API (rollouts, exec), the fault proxy's control API and PostgreSQL's
//! NodePort. `teardown` deletes the namespace and waits, bounded, until it is gone (so its
//! NodePorts are free for the next run).

use super::apply::{Cluster, Owner};
use super::images::{self, Tools};
use super::ingress;
use super::relay;
use super::render::{self, Object, RenderOptions};
use super::rollout;
use super::volumes::{self, KubeExec};
use super::watch::{self, Watches};
use crate::error::{BrownoutError, Result};
use crate::evidence::{EdgeCount, Evidence, Restarts};
use crate::fault_proxy::client::Client as ProxyClient;
use crate::faults::toxic::Toxic;
use crate::platform::{
    DatabaseControl, DatabaseHandle, DeployOptions, Endpoints, IngressSettings, MemoryLimiter,
    Platform, ProxyControl, RevisionChange, RolloutDriver, RolloutOutcome, VolumeFiller,
};
use crate::spec::{System, ToxicSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the harness reaches the cluster's NodePorts (kind-config/kind.yaml's port mappings).
#[derive(Debug, Clone)]
pub struct HostAddresses {
    pub ingress: String,
    pub prometheus: String,
    pub postgres: String,
    pub proxy_control: String,
}

impl Default for HostAddresses {
    fn default() -> Self {
        HostAddresses {
            ingress: "127.0.0.1:18080".into(),
            prometheus: "127.0.0.1:19090".into(),
            postgres: "127.0.0.1:15432".into(),
            proxy_control: "127.0.0.1:18474".into(),
        }
    }
}

/// Which cluster, and how to reach it.
pub enum Target {
    /// The `brownout` kind cluster: created if absent, images built from `root` on `base`.
    Kind { root: PathBuf, base: Option<String> },
    /// A kubeconfig context (opt-in, checked by the preflight); its images must be pullable.
    Context(String),
    /// A client made elsewhere (tests: a mock API server).
    Client(kube::Client),
}

struct Filled {
    service: String,
    volume: String,
    pods: Vec<String>,
    held: Vec<kube::api::AttachedProcess>,
}

/// What a deployed run holds.
struct Deployed {
    client: kube::Client,
    namespace: String,
    /// The Deployment applied last per service, and the one before it (rollback).
    current: BTreeMap<String, Deployment>,
    revision: BTreeMap<String, u32>,
    watches: Watches,
    proxy: Option<ProxyClient>,
    database_url: Option<String>,
    fills: Vec<Filled>,
    ingress: IngressSettings,
    /// The ingress's upstreams kept current ([`ingress`]), once the objects are applied.
    router: Option<ingress::Routing>,
    /// Local base URLs of the services, through the API server's service proxy.
    relays: Vec<relay::Relay>,
}

pub struct KubePlatform {
    target: Option<Target>,
    tools: Option<Box<dyn Tools + Send>>,
    pub addresses: HostAddresses,
    /// How long every Deployment gets to become available.
    pub ready_within: Duration,
    /// How long the host addresses get to answer once the Deployments are available.
    pub reachable_within: Duration,
    /// How often rollouts and readiness are polled.
    pub poll: Duration,
    deployed: Option<Deployed>,
    /// What the report states about this platform (filled in at deploy; kept after teardown).
    facts: crate::platform::PlatformFacts,
    /// Teardown leaves the run's namespace in place for a diagnosis (pods, events, logs):
    /// `BROWNOUT_KEEP_NAMESPACE=1` (scripts/test-kind.sh's smoke rows). The next run's sweep,
    /// or `brownout clean`, deletes it: its owner is gone.
    pub keep_namespace: bool,
}

impl KubePlatform {
    pub fn new(target: Target) -> KubePlatform {
        KubePlatform {
            target: Some(target),
            tools: Some(Box::new(images::Programs)),
            addresses: HostAddresses::default(),
            ready_within: Duration::from_secs(300),
            reachable_within: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            deployed: None,
            facts: crate::platform::PlatformFacts::exact("kubernetes"),
            keep_namespace: std::env::var_os("BROWNOUT_KEEP_NAMESPACE").is_some(),
        }
    }

    /// With other tools (tests).
    pub fn with_tools(mut self, tools: Box<dyn Tools + Send>) -> KubePlatform {
        self.tools = Some(tools);
        self
    }

    fn deployed(&self) -> Result<&Deployed> {
        self.deployed
            .as_ref()
            .ok_or_else(|| BrownoutError::Environment("the system is not deployed".into()))
    }

    fn deployed_mut(&mut self) -> Result<&mut Deployed> {
        self.deployed
            .as_mut()
            .ok_or_else(|| BrownoutError::Environment("the system is not deployed".into()))
    }

    /// The client, and the image tag the objects name: on kind the images' content tag
    /// ([`images::content_tag`], built and loaded once per job), elsewhere `tag` (the run's).
    async fn client(&mut self, tag: &str) -> Result<(kube::Client, String)> {
        let target = self
            .target
            .take()
            .ok_or_else(|| BrownoutError::Environment("deploy called twice".into()))?;
        let (config, tag) = match target {
            Target::Client(c) => return Ok((c, tag.to_string())),
            Target::Context(context) => (
                super::kube_config(Some(&context), None).await?,
                tag.to_string(),
            ),
            Target::Kind { root, base } => {
                let mut tools = self.tools.take().expect("tools");
                eprintln!(
                    "brownout: preparing the kind cluster '{}' and its images…",
                    images::CLUSTER
                );
                let (tools, prepared) = tokio::task::spawn_blocking(move || {
                    let r = images::prepare_kind(tools.as_mut(), &root, base.as_deref());
                    (tools, r)
                })
                .await
                .map_err(|e| BrownoutError::Environment(format!("kind preparation: {e}")))?;
                self.tools = Some(tools);
                let prepared = prepared?;
                eprintln!(
                    "brownout: images tagged {} ({})",
                    prepared.tag,
                    if prepared.loaded.is_empty() {
                        "already on the node".to_string()
                    } else {
                        format!("built and loaded: {}", prepared.loaded.join(", "))
                    }
                );
                (
                    super::kube_config(None, Some(&prepared.kubeconfig)).await?,
                    prepared.tag.to_string(),
                )
            }
        };
        let client = kube::Client::try_from(config)
            .map_err(|e| BrownoutError::Environment(format!("Kubernetes client: {e}")))?;
        Ok((client, tag))
    }
}

/// The run's namespace: a DNS label from the run id.
pub fn namespace_of(run_id: &str) -> String {
    let mut ns: String = format!("brownout-{run_id}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    while ns.ends_with('-') {
        ns.pop();
    }
    ns
}

/// Why a Deployment is not available yet, from its pods (e.g. `ImagePullBackOff`).
fn waiting_reasons(pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        for c in p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                out.push(format!(
                    "{name}: {}{}",
                    w.reason.clone().unwrap_or_default(),
                    w.message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            } else if !c.ready {
                out.push(format!("{name}: not ready, {} restarts", c.restart_count));
            }
        }
    }
    out
}

fn available(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.available_replicas.unwrap_or(0) == want
        && s.updated_replicas.unwrap_or(0) == want
}

/// `name a/n available`.
fn availability(d: &Deployment) -> String {
    let s = d.status.clone().unwrap_or_default();
    format!(
        "{} {}/{} available",
        d.metadata.name.clone().unwrap_or_default(),
        s.available_replicas.unwrap_or(0),
        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    )
}

/// Lists `namespace`'s Deployments every `every` until `pending` says nothing is (`None`), or
/// `within` has passed: then the error starts with `what`, says what was still pending and why
/// the pods wait.
async fn wait_deployments(
    client: &kube::Client,
    namespace: &str,
    what: &str,
    within: Duration,
    every: Duration,
    pending: impl Fn(&[Deployment]) -> Option<String>,
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let t0 = Instant::now();
    loop {
        let last = match api.list(&Default::default()).await {
            Ok(list) => match pending(&list.items) {
                None => return Ok(()),
                Some(last) => last,
            },
            Err(e) => e.to_string(),
        };
        if t0.elapsed() >= within {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let why = pods
                .list(&Default::default())
                .await
                .map(|l| waiting_reasons(&l.items))
                .unwrap_or_default();
            return Err(BrownoutError::Environment(format!(
                "{what} not ready within {:.0} s: {last}{}",
                within.as_secs_f64(),
                if why.is_empty() {
                    String::new()
                } else {
                    format!("; pods: {}", why.join("; "))
                }
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until every Deployment in `namespace` is available; the error names those that are
/// not and why their pods wait.
pub async fn wait_available(
    client: &kube::Client,
    namespace: &str,
    expected: usize,
    within: Duration,
    every: Duration,
) -> Result<()> {
    wait_deployments(
        client,
        namespace,
        "the Deployments",
        within,
        every,
        |items| {
            let not: Vec<&Deployment> = items.iter().filter(|d| !available(d)).collect();
            if items.len() >= expected && not.is_empty() {
                return None;
            }
            Some(
                not.iter()
                    .map(|d| availability(d))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        },
    )
    .await
}

/// The Deployments the apps depend on (the database, the fault proxy they reach it through).
const DEPENDENCIES: [&str; 2] = ["postgres", "fault-proxy"];

/// The objects in two applies: everything but the Deployments that are not dependencies, then
/// those (the apps, the ingress, Prometheus), each in the rendered order.
fn deploy_phases(objects: &[Object]) -> (Vec<Object>, Vec<Object>) {
    objects.iter().cloned().partition(|o| match o {
        Object::Deployment(d) => DEPENDENCIES.contains(&d.metadata.name.as_deref().unwrap_or("")),
        _ => true,
    })
}

/// Waits until the Deployments named `names` in `namespace` are available (the others are
/// not looked at); the error names those that are not and why their pods wait.
pub async fn wait_named_available(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
    within: Duration,
    every: Duration,
) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let what = "the apps' dependencies";
    wait_deployments(client, namespace, what, within, every, |items| {
        let mine: Vec<&Deployment> = items
            .iter()
            .filter(|d| names.contains(d.metadata.name.as_ref().unwrap_or(&String::new())))
            .collect();
        if mine.len() == names.len() && mine.iter().all(|d| available(d)) {
            return None;
        }
        Some(
            names
                .iter()
                .filter_map(
                    |n| match mine.iter().find(|d| d.metadata.name.as_ref() == Some(n)) {
                        Some(d) if available(d) => None,
                        Some(d) => Some(availability(d)),
                        None => Some(format!("{n} not created")),
                    },
                )
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
    .await
}

/// Waits until the ingress at `url` proxies to a replica: its answer carries the upstream it
/// proxied to ([`crate::load::UPSTREAM_ADDR_HEADER`], set by the ingress, not by the app). An
/// answer without it is the ingress's own (the seed's no-endpoints 503 before the router has
/// written the pods' addresses into nginx): Deployments being available says nothing about that,
/// and a load started then would meet 503s no system made.
async fn wait_routed(url: &str, within: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default();
    let t0 = Instant::now();
    loop {
        let last = match http.get(url).send().await {
            Ok(r) => {
                let upstream = r
                    .headers()
                    .get(crate::load::UPSTREAM_ADDR_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if !upstream.is_empty() && upstream != "-" {
                    return Ok(());
                }
                format!("it answered {} itself", r.status().as_u16())
            }
            Err(e) => e.to_string(),
        };
        if t0.elapsed() >= within {
            return Err(BrownoutError::Environment(format!(
                "the ingress at {url} did not route to a replica within {:.0} s ({last}); see the run's 'ingress upstreams' events and the ingress pod's log",
                within.as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `url` answers HTTP at all (any status), bounded.
async fn wait_answers(url: &str, within: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default();
    let t0 = Instant::now();
    loop {
        match http.get(url).send().await {
            Ok(_) => return Ok(()),
            Err(e) if t0.elapsed() >= within => {
                return Err(BrownoutError::Environment(format!(
                    "{url} did not answer within {:.0} s ({e}); is the kind cluster created from kind-config/kind.yaml (its port mappings)?",
                    within.as_secs_f64()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

impl Platform for KubePlatform {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn supports(&self, fault: &crate::spec::FaultSpec) -> Result<(), String> {
        super::refused::supports(fault)
    }

    fn platform_facts(&self) -> crate::platform::PlatformFacts {
        self.facts.clone()
    }

    async fn deploy(
        &mut self,
        system: &System,
        opts: &DeployOptions,
        evidence: &Evidence,
    ) -> Result<Endpoints> {
        let namespace = namespace_of(&opts.run_id);
        self.facts.rounded_probe_times = render::rounded_probe_times(system);
        let run_tag = namespace.trim_start_matches("brownout-").to_string();
        let (client, tag) = self.client(&run_tag).await?;
        let cluster = Cluster::new(client.clone());
        for gone in cluster.sweep().await? {
            evidence.event(format!("deleted namespace {gone} of a run that is gone"));
        }
        let owner = Owner::this_process(&opts.run_id);
        cluster.create_namespace(&namespace, &owner).await?;
        // For the report (a version that cannot be read is left out, not an error).
        self.facts.kubernetes_version =
            client.apiserver_version().await.ok().map(|v| v.git_version);
        let token = format!("{:032x}", rand::random::<u128>());
        let ropts = RenderOptions {
            image_tag: tag,
            proxy_token: token.clone(),
            bugs: opts.bugs.clone(),
            ..RenderOptions::new(&namespace, &opts.run_id)
        };
        let objects = render::render(system, &ropts)?;
        let spec = &system.file.ingress;
        let ingress = IngressSettings {
            implementation: "nginx Deployment routing to the pods' addresses from the EndpointSlices (upstreams written by exec, nginx reloaded)"
                .into(),
            retries: format!("proxy_next_upstream {}", spec.retries),
            connect_timeout: spec.connect_timeout.to_string(),
            read_timeout: spec.read_timeout.to_string(),
            fail_open: spec.fail_open,
            propagation_delay: "Kubernetes' own: EndpointSlice update, the harness's watch, exec into the ingress pod and nginx reload (not the system file's propagation_delay)".into(),
        };
        // From here on teardown has a namespace to delete, whatever fails next.
        let watches = watch::start(client.clone(), &namespace, evidence.clone());
        let current: BTreeMap<String, Deployment> = objects
            .iter()
            .filter_map(|o| match o {
                Object::Deployment(d) => {
                    Some((d.metadata.name.clone().unwrap_or_default(), d.clone()))
                }
                _ => None,
            })
            .collect();
        let expected = current.len();
        self.deployed = Some(Deployed {
            client: client.clone(),
            namespace: namespace.clone(),
            current,
            revision: BTreeMap::new(),
            watches,
            proxy: (!system.file.proxies.is_empty())
                .then(|| ProxyClient::new(&self.addresses.proxy_control, &token)),
            database_url: system.file.database.as_ref().map(|db| {
                format!(
                    "postgres://postgres@{}/{}",
                    self.addresses.postgres, db.name
                )
            }),
            fills: Vec::new(),
            ingress,
            router: None,
            relays: Vec::new(),
        });
        evidence.event(format!(
            "namespace {namespace}: applying {} objects",
            objects.len()
        ));
        // The apps' dependencies first, available before any app starts: on a cold node the
        // database's image pull would otherwise outlast the apps' migration retry and count as
        // a restart at bring-up.
        let (first, apps) = deploy_phases(&objects);
        cluster.apply(&first).await?;
        let dependencies: Vec<String> = first
            .iter()
            .filter(|o| matches!(o, Object::Deployment(_)))
            .map(|o| o.name().to_string())
            .collect();
        wait_named_available(
            &client,
            &namespace,
            &dependencies,
            self.ready_within,
            self.poll,
        )
        .await?;
        cluster.apply(&apps).await?;
        self.deployed_mut()?.router = Some(ingress::start(
            client.clone(),
            &namespace,
            &system.file.ingress.service,
            system.file.ingress.fail_open,
            evidence.clone(),
        ));
        wait_available(&client, &namespace, expected, self.ready_within, self.poll).await?;
        let ingress_url = format!("http://{}", self.addresses.ingress);
        let prometheus_url = format!("http://{}", self.addresses.prometheus);
        wait_answers(&ingress_url, self.reachable_within).await?;
        wait_routed(&ingress_url, self.reachable_within).await?;
        wait_answers(&format!("{prometheus_url}/-/ready"), self.reachable_within).await?;
        let proxies = system
            .file
            .proxies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.clone(),
                    format!("fault-proxy:{}", render::PROXY_FIRST_PORT + i as i32),
                )
            })
            .collect();
        // Services are ClusterIP: the host reaches them through the API server's service proxy.
        let mut relays = Vec::new();
        let mut service_urls = Vec::new();
        for spec in &system.file.services {
            let name = spec.name.get_ref();
            let r = relay::start(client.clone(), &namespace, name, render::SERVICE_PORT).await?;
            service_urls.push((name.clone(), r.url.clone()));
            relays.push(r);
        }
        self.deployed_mut()?.relays = relays;
        Ok(Endpoints {
            ingress_url,
            prometheus_url,
            service_urls,
            proxies,
        })
    }

    fn ingress_settings(&self) -> IngressSettings {
        self.deployed
            .as_ref()
            .map(|d| d.ingress.clone())
            .unwrap_or_else(|| IngressSettings {
                implementation: "nginx Deployment (not deployed)".into(),
                retries: "n/a".into(),
                connect_timeout: "n/a".into(),
                read_timeout: "n/a".into(),
                fail_open: false,
                propagation_delay: "n/a".into(),
            })
    }

    async fn edge_counts(&self) -> Option<Vec<EdgeCount>> {
        // mtail in the ingress pod, read directly (as the local platform reads its mtail) through
        // the API server's pod proxy: Prometheus' copy is up to a scrape interval behind.
        let d = self.deployed.as_ref()?;
        let pods: Api<Pod> = Api::namespaced(d.client.clone(), &d.namespace);
        let ingress = volumes::running_pods(&pods, "ingress").await.ok()?;
        let mut out: Vec<EdgeCount> = Vec::new();
        for pod in &ingress {
            let proxy = relay::pod_proxy_path(&d.namespace, pod, render::EDGE_METRICS_PORT);
            let body = relay::get_text(&d.client, &proxy, "/json").await.ok()?;
            let counts = crate::platform::edge_metrics::counts_from_json(body.as_bytes()).ok()?;
            for c in counts {
                match out
                    .iter_mut()
                    .find(|o| o.status == c.status && o.layer == c.layer)
                {
                    Some(o) => o.answers += c.answers,
                    None => out.push(c),
                }
            }
        }
        (!ingress.is_empty()).then_some(out)
    }

    fn restarts(&self) -> Vec<Restarts> {
        self.deployed
            .as_ref()
            .map(|d| d.watches.tracker.lock().expect("tracker").restarts())
            .unwrap_or_default()
    }

    async fn teardown(&mut self) {
        let Some(mut d) = self.deployed.take() else {
            return;
        };
        d.fills.clear();
        d.router = None;
        drop(d.watches);
        if self.keep_namespace {
            eprintln!(
                "brownout: namespace {} kept (BROWNOUT_KEEP_NAMESPACE); the next run's sweep or `brownout clean` deletes it",
                d.namespace
            );
            return;
        }
        if let Err(e) = Cluster::new(d.client.clone())
            .delete_namespace(&d.namespace)
            .await
        {
            eprintln!("brownout: {e}");
            return;
        }
        // Bounded wait until it is gone: its NodePorts are free again for the next run.
        let api: Api<Namespace> = Api::all(d.client);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(90) {
            match api.get_opt(&d.namespace).await {
                Ok(None) => return,
                Ok(Some(_)) => tokio::time::sleep(self.poll).await,
                Err(_) => tokio::time::sleep(self.poll).await,
            }
        }
        eprintln!(
            "brownout: namespace {} still terminating after 90 s",
            d.namespace
        );
    }
}

impl ProxyControl for KubePlatform {
    async fn add_toxic(&mut self, proxy: &str, toxic: Toxic) -> Result<()> {
        let spec = ToxicSpec::from(&toxic);
        self.proxy()?.add_toxic(proxy, &spec).await
    }
    async fn clear_toxics(&mut self, proxy: &str) -> Result<()> {
        self.proxy()?.clear_toxics(proxy).await
    }
    async fn set_down(&mut self, proxy: &str, down: bool) -> Result<()> {
        self.proxy()?.set_down(proxy, down).await
    }
}

impl KubePlatform {
    fn proxy(&self) -> Result<&ProxyClient> {
        self.deployed()?.proxy.as_ref().ok_or_else(|| {
            BrownoutError::BadInput("a proxy fault needs [[proxies]] in the system file".into())
        })
    }
}

impl DatabaseHandle for KubePlatform {
    async fn connect_database(&self) -> Result<Option<sqlx::PgConnection>> {
        crate::platform::connect_postgres(self.deployed()?.database_url.as_deref()).await
    }
}

impl KubePlatform {
    /// Scales the database's Deployment to `replicas` and waits until that many pods are ready.
    async fn scale_database(&mut self, replicas: i32, evidence: &Evidence) -> Result<()> {
        let (poll, ready_within) = (self.poll, self.ready_within);
        let d = self.deployed_mut()?;
        if d.database_url.is_none() {
            return Err(BrownoutError::BadInput(
                "fault database-down needs a [database] in the system file".into(),
            ));
        }
        let api: Api<Deployment> = Api::namespaced(d.client.clone(), &d.namespace);
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        api.patch(
            "postgres",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|e| BrownoutError::Environment(format!("scaling postgres to {replicas}: {e}")))?;
        let within = ready_within;
        let deadline = Instant::now() + within;
        loop {
            let dep = api.get("postgres").await.map_err(|e| {
                BrownoutError::Environment(format!("reading the postgres Deployment: {e}"))
            })?;
            let status = dep.status.unwrap_or_default();
            let ready = status.ready_replicas.unwrap_or(0);
            let total = status.replicas.unwrap_or(0);
            // `status.replicas` leaves out terminating pods: stopped means no postgres pod at
            // all, or the next start would run beside a server still shutting down on the
            // same claim.
            let lingering = if replicas == 0 && total == 0 {
                postgres_pods(&d.client, &d.namespace).await?
            } else {
                0
            };
            if ready == replicas && total == replicas && lingering == 0 {
                evidence.event(format!("postgres scaled to {replicas}"));
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BrownoutError::Environment(format!(
                    "postgres: {ready}/{total} pods ready {} s after scaling to {replicas}",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// PostgreSQL's pods, terminating ones included (by the component label).
async fn postgres_pods(client: &kube::Client, namespace: &str) -> Result<usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}=postgres", render::NAME_LABEL);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| BrownoutError::Environment(format!("listing postgres's pods: {e}")))?;
    // Filtered here too: the selector is the API server's to apply.
    Ok(list
        .items
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(render::NAME_LABEL))
                .is_some_and(|n| n == "postgres")
        })
        .count())
}

impl DatabaseControl for KubePlatform {
    async fn stop_database(&mut self, evidence: &Evidence) -> Result<()> {
        self.scale_database(0, evidence).await
    }
    async fn start_database(&mut self, evidence: &Evidence) -> Result<()> {
        self.scale_database(1, evidence).await
    }
}

impl MemoryLimiter for KubePlatform {
    async fn limit_memory(
        &mut self,
        service: &str,
        _bytes: Option<u64>,
        _evidence: &Evidence,
    ) -> Result<()> {
        // A pod's memory limit is part of its spec: changing it is a rollout, which would be a
        // different fault. Not built yet.
        Err(BrownoutError::Environment(format!(
            "fault memory-limit (service {service}) runs on the local platform only: on Kubernetes a container's limit changes only with a new pod"
        )))
    }
}

impl VolumeFiller for KubePlatform {
    async fn fill_volume(
        &mut self,
        service: &str,
        volume: &str,
        evidence: &Evidence,
    ) -> Result<()> {
        let d = self.deployed_mut()?;
        let exec = KubeExec {
            pods: Api::namespaced(d.client.clone(), &d.namespace),
        };
        let pods = volumes::running_pods(&exec.pods, service).await?;
        let held = volumes::fill(&exec, &pods, service, volume, evidence).await?;
        d.fills.push(Filled {
            service: service.into(),
            volume: volume.into(),
            pods,
            held,
        });
        Ok(())
    }

    async fn free_volume(&mut self, service: &str, volume: &str, evidence: &Evidence) {
        let Ok(d) = self.deployed_mut() else { return };
        let exec = KubeExec {
            pods: Api::namespaced(d.client.clone(), &d.namespace),
        };
        let (mine, rest): (Vec<Filled>, Vec<Filled>) = std::mem::take(&mut d.fills)
            .into_iter()
            .partition(|f| f.service == service && f.volume == volume);
        d.fills = rest;
        for f in mine {
            volumes::free(&exec, f.held, &f.pods, service, volume, evidence).await;
        }
    }
}

impl RolloutDriver for KubePlatform {
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        progress_deadline: Duration,
        evidence: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
        let poll = self.poll;
        let d = self.deployed_mut()?;
        let current = d.current.get(service).ok_or_else(|| {
            BrownoutError::BadInput(format!("no service '{service}' to roll out"))
        })?;
        let now = chrono::Utc::now().to_rfc3339();
        let next = rollout::changed(current, change, progress_deadline, &now);
        let revision = d.revision.entry(service.to_string()).or_insert(1);
        *revision += 1;
        let id = format!("{service}@r{revision}");
        evidence.rollout_started(&id, service, &change.describe());
        let task = rollout::start(
            d.client.clone(),
            &d.namespace,
            service,
            &next,
            id,
            evidence,
            d.watches.tracker.clone(),
            poll,
        )
        .await?;
        d.current.insert(service.to_string(), next);
        Ok(task)
    }

    async fn rollback(&mut self, service: &str, evidence: &Evidence) {
        let Ok(d) = self.deployed_mut() else { return };
        let Some(current) = d.current.get(service).cloned() else {
            return;
        };
        let id = format!(
            "{service}@r{}",
            d.revision.get(service).copied().unwrap_or(1)
        );
        match rollout::rollback(d.client.clone(), &d.namespace, &current).await {
            Ok((applied, to)) => {
                d.current.insert(service.to_string(), applied);
                rollout::record_rollback(evidence, &id, to);
            }
            Err(e) => evidence.event(format!("rollback of {service} failed: {e}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::evidence::Layer;
    use crate::platform::kube::mock::{self, Reply, Seen};
    use http::{Method, StatusCode};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn root() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// A real HTTP server on port 0 standing in for kind's port mappings (ingress, Prometheus).
    async fn host_ports() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // As the ingress answers once it routes: with the upstream it proxied to.
        let app = axum::Router::new().fallback(|| async {
            (
                [(crate::load::UPSTREAM_ADDR_HEADER, "10.244.0.7:8080")],
                "ok",
            )
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// A platform on the mock API server `client` that polls every 10 ms, with its ingress and
    /// Prometheus addresses on a real server on port 0 (returned).
    pub(crate) async fn fast_platform(client: kube::Client) -> (KubePlatform, String) {
        let host = host_ports().await;
        let mut p = KubePlatform::new(Target::Client(client));
        p.poll = Duration::from_millis(10);
        p.addresses.ingress = host.clone();
        p.addresses.prometheus = host.clone();
        (p, host)
    }

    /// The API server of a healthy cluster: applies succeed, the Deployments become available on
    /// the second look, watches stay open, the namespace is gone after its deletion.
    pub(crate) fn healthy_cluster(system: &System, available_after: usize) -> mock::Answer {
        let deployments: Vec<serde_json::Value> = render::render(
            system,
            &RenderOptions::new("x", "x"),
        )
        .unwrap()
        .into_iter()
        .filter_map(|o| match o {
            Object::Deployment(d) => Some(d),
            _ => None,
        })
        .map(|d| {
            let mut v = serde_json::to_value(&d).unwrap();
            let n = v["spec"]["replicas"].as_i64().unwrap_or(1);
            v["metadata"]["generation"] = json!(1);
            v["status"] = json!({"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                    "readyReplicas": n, "availableReplicas": n});
            v
        })
        .collect();
        let looks = Arc::new(AtomicUsize::new(0));
        let deleted = Arc::new(AtomicUsize::new(0));
        Box::new(move |s: &Seen| {
            let p = s.path_and_query.as_str();
            if s.is_watch() {
                return Reply::Watch(vec![]);
            }
            match s.method {
                Method::PATCH => mock::applied(s),
                Method::DELETE => {
                    deleted.fetch_add(1, Ordering::SeqCst);
                    Reply::Json(
                        StatusCode::OK,
                        json!({"kind": "Namespace", "apiVersion": "v1",
                        "metadata": {"name": "ns"}, "status": {"phase": "Terminating"}}),
                    )
                }
                Method::GET if p.starts_with("/api/v1/namespaces?") => {
                    mock::list("NamespaceList", "v1", vec![])
                }
                // One Deployment: as applied last, rolled out completely.
                Method::GET if p.contains("/deployments/") => {
                    let name = p
                        .split("/deployments/")
                        .nth(1)
                        .unwrap()
                        .split('?')
                        .next()
                        .unwrap();
                    let mut d = deployments
                        .iter()
                        .find(|d| d["metadata"]["name"] == name)
                        .cloned()
                        .unwrap();
                    d["metadata"]["generation"] = json!(2);
                    d["status"]["observedGeneration"] = json!(2);
                    Reply::Json(StatusCode::OK, d)
                }
                Method::GET if p.contains("/deployments") => {
                    if looks.fetch_add(1, Ordering::SeqCst) + 1 < available_after {
                        let not_yet: Vec<_> = deployments
                            .iter()
                            .map(|d| {
                                let mut d = d.clone();
                                d["status"]["availableReplicas"] = json!(0);
                                d
                            })
                            .collect();
                        return mock::list("DeploymentList", "apps/v1", not_yet);
                    }
                    mock::list("DeploymentList", "apps/v1", deployments.clone())
                }
                Method::GET if p.contains("/pods") => mock::list(
                    "PodList",
                    "v1",
                    vec![super::super::watch::tests::pod("checkout-abc-1", false, 3)],
                ),
                Method::GET if p.contains("/events") => mock::list("EventList", "v1", vec![]),
                Method::GET if p.contains("/endpointslices") => {
                    mock::list("EndpointSliceList", "discovery.k8s.io/v1", vec![])
                }
                // The namespace itself: terminating until deleted, then gone.
                Method::GET if p.starts_with("/api/v1/namespaces/") => {
                    if deleted.load(Ordering::SeqCst) > 0 {
                        mock::status(404, "NotFound", "namespaces \"ns\" not found")
                    } else {
                        Reply::Json(
                            StatusCode::OK,
                            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "ns"}}),
                        )
                    }
                }
                _ => mock::status(404, "NotFound", p),
            }
        })
    }

    pub(crate) fn opts(run_id: &str) -> DeployOptions {
        DeployOptions {
            run_id: run_id.into(),
            bugs: vec!["no-acquire-timeout".into()],
            bin_dir: PathBuf::from("/nonexistent"),
            log_dir: PathBuf::from("/nonexistent"),
            seed: 1,
        }
    }

    /// The postgres Deployment as the API server returns it: `want` replicas asked for, `pods`
    /// of them running and ready.
    fn postgres_deployment(want: i64, pods: i64) -> Reply {
        Reply::Json(
            StatusCode::OK,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "postgres"}, "spec": {"replicas": want},
                "status": {"replicas": pods, "readyReplicas": pods}}),
        )
    }

    /// A Deployment's `status.replicas` counts only non-terminated pods ("Total number of
    /// non-terminated pods targeted by this deployment", k8s.io/api apps/v1 DeploymentStatus;
    /// the controller's `calculateStatus` in pkg/controller/deployment/sync.go counts ReplicaSet
    /// replicas, which exclude pods with a deletionTimestamp), so it reads 0 while the old
    /// PostgreSQL pod is still shutting down on the claim. `stop_database` returns only once no
    /// postgres pod is listed at all: here one lingers, terminating, for three looks.
    #[tokio::test]
    async fn database_down_waits_until_the_terminating_postgres_pod_is_gone() {
        use std::sync::atomic::AtomicI64;
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let desired = Arc::new(AtomicI64::new(1));
        let pod_looks = Arc::new(AtomicUsize::new(0));
        let (d2, l2) = (desired.clone(), pod_looks.clone());
        let mut inner = healthy_cluster(&system, 1);
        let answer: mock::Answer = Box::new(move |s: &Seen| {
            let p = s.path_and_query.as_str();
            if !s.is_watch() && p.contains("/deployments/postgres") {
                if s.method == Method::PATCH {
                    d2.store(
                        s.body["spec"]["replicas"].as_i64().unwrap(),
                        Ordering::SeqCst,
                    );
                }
                let want = d2.load(Ordering::SeqCst);
                return postgres_deployment(want, want);
            }
            if !s.is_watch() && p.contains("/pods?") && p.contains("postgres") {
                let mut pg = super::super::watch::tests::pod("postgres-6f7c-abcde", false, 0);
                pg["metadata"]["labels"][render::NAME_LABEL] = json!("postgres");
                pg["metadata"]["deletionTimestamp"] = json!("2026-12-03T09:00:20Z");
                let items = if l2.fetch_add(1, Ordering::SeqCst) < 3 {
                    vec![pg]
                } else {
                    vec![]
                };
                return mock::list("PodList", "v1", items);
            }
            inner(s)
        });
        let (client, _log) = mock::server(answer);
        let (mut p, _host) = fast_platform(client).await;
        let ev = Evidence::new();
        p.deploy(&system, &opts("20261203T090000Z-db02"), &ev)
            .await
            .unwrap();
        p.stop_database(&ev).await.unwrap();
        assert!(
            pod_looks.load(Ordering::SeqCst) >= 4,
            "stopped while a postgres pod was still terminating ({} looks)",
            pod_looks.load(Ordering::SeqCst)
        );
        p.teardown().await;
    }

    /// `database-down` on a cluster: the postgres Deployment is scaled to 0 (a merge patch of
    /// `spec.replicas`) and the harness waits until no pod is left, then back to 1 and waits until
    /// it is ready; a database that never comes back is an error naming it.
    #[tokio::test]
    async fn database_down_scales_postgres_to_zero_and_back_and_waits_for_it() {
        use std::sync::atomic::AtomicI64;
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        // Desired replicas of postgres as patched; the pods follow after two looks, or never.
        for comes_back in [true, false] {
            let desired = Arc::new(AtomicI64::new(1));
            let looks = Arc::new(AtomicUsize::new(0));
            let (d2, l2) = (desired.clone(), looks.clone());
            let mut inner = healthy_cluster(&system, 3);
            let answer: mock::Answer = Box::new(move |s: &Seen| {
                let p = s.path_and_query.as_str();
                if !s.is_watch() && p.contains("/deployments/postgres") {
                    if s.method == Method::PATCH && s.content_type.contains("merge-patch") {
                        d2.store(
                            s.body["spec"]["replicas"].as_i64().unwrap(),
                            Ordering::SeqCst,
                        );
                        l2.store(0, Ordering::SeqCst);
                    }
                    let want = d2.load(Ordering::SeqCst);
                    let seen = l2.fetch_add(1, Ordering::SeqCst);
                    let pods = if seen >= 2 && (comes_back || want == 0) {
                        want
                    } else {
                        1 - want
                    };
                    return postgres_deployment(want, pods);
                }
                inner(s)
            });
            let (client, log) = mock::server(answer);
            let (mut p, _host) = fast_platform(client).await;
            let ev = Evidence::new();
            p.deploy(&system, &opts("20261203T090000Z-db01"), &ev)
                .await
                .unwrap();
            p.ready_within = Duration::from_millis(500);
            p.stop_database(&ev).await.unwrap();
            let result = p.start_database(&ev).await;
            let patches: Vec<serde_json::Value> = log
                .calls()
                .into_iter()
                .filter(|c| c.content_type.contains("merge-patch"))
                .map(|c| c.body)
                .collect();
            assert_eq!(
                patches,
                vec![
                    json!({"spec": {"replicas": 0}}),
                    json!({"spec": {"replicas": 1}})
                ]
            );
            if comes_back {
                result.unwrap();
                let events =
                    ev.with(|d| d.events.iter().map(|e| e.what.clone()).collect::<Vec<_>>());
                assert!(
                    events.contains(&"postgres scaled to 0".to_string()),
                    "{events:?}"
                );
                assert!(
                    events.contains(&"postgres scaled to 1".to_string()),
                    "{events:?}"
                );
            } else {
                let e = result.unwrap_err().to_string();
                assert!(
                    e.contains("postgres: 0/0 pods ready 0 s after scaling to 1"),
                    "{e}"
                );
            }
            p.teardown().await;
        }
    }

    #[tokio::test]
    async fn deploy_applies_everything_waits_for_availability_and_teardown_deletes_the_namespace() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let (client, log) = mock::server(healthy_cluster(&system, 3));
        let (mut p, host) = fast_platform(client).await;
        let ev = Evidence::new();
        let endpoints = p
            .deploy(&system, &opts("20261123T200000Z-ab12"), &ev)
            .await
            .unwrap();
        assert_eq!(endpoints.ingress_url, format!("http://{host}"));
        assert_eq!(endpoints.proxies[0].1, "fault-proxy:15000");
        assert!(p
            .ingress_settings()
            .implementation
            .contains("nginx Deployment"));
        let calls = log.calls();
        let ns = "brownout-20261123t200000z-ab12";
        assert!(
            calls[0].path_and_query.starts_with("/api/v1/namespaces?"),
            "the sweep first"
        );
        assert!(calls[1]
            .path_and_query
            .starts_with(&format!("/api/v1/namespaces/{ns}?")));
        assert_eq!(calls[1].method, Method::PATCH);
        let applies = calls.iter().filter(|c| c.method == Method::PATCH).count();
        let objects = render::render(&system, &RenderOptions::new(ns, "r"))
            .unwrap()
            .len();
        assert_eq!(applies, 1 + objects);
        let checkout = calls
            .iter()
            .find(|c| {
                c.path_and_query.starts_with(&format!(
                    "/apis/apps/v1/namespaces/{ns}/deployments/checkout?"
                ))
            })
            .unwrap();
        let image = checkout.body["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap();
        assert_eq!(
            image, "brownout/checkout:20261123t200000z-ab12",
            "images tagged with the run"
        );
        assert!(
            checkout.body.to_string().contains("no-acquire-timeout"),
            "bugs rendered in"
        );
        let looks = calls
            .iter()
            .filter(|c| c.method == Method::GET && c.path_and_query.contains("/deployments"))
            .count();
        // Three looks until the dependencies are available, one more for the rest.
        assert_eq!(looks, 4, "waited until available");
        // The services through the API server's service proxy.
        let names: Vec<&str> = endpoints
            .service_urls
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["payments", "checkout"]);
        let payments = &endpoints.service_urls[0].1;
        let _ = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{payments}/ledger"))
            .send()
            .await
            .unwrap();
        assert!(log.calls().iter().any(|c| c.method == Method::GET
            && c.path_and_query
                == format!("/api/v1/namespaces/{ns}/services/payments:8080/proxy/ledger")));

        p.teardown().await;
        let calls = log.calls();
        let delete = calls
            .iter()
            .position(|c| c.method == Method::DELETE)
            .expect("namespace deleted");
        assert!(calls[delete]
            .path_and_query
            .starts_with(&format!("/api/v1/namespaces/{ns}?")));
        assert!(calls[delete + 1..].iter().any(|c| c.method == Method::GET
            && c.path_and_query
                .starts_with(&format!("/api/v1/namespaces/{ns}"))));
        p.teardown().await; // idempotent
        assert_eq!(
            log.calls()
                .iter()
                .filter(|c| c.method == Method::DELETE)
                .count(),
            1
        );
    }

    /// With `keep_namespace` (`BROWNOUT_KEEP_NAMESPACE`, set by scripts/test-kind.sh for its
    /// smoke rows) teardown deletes nothing: the pods, their logs and the namespace's events stay
    /// for the diagnosis, and the namespace's owner label names a process that is gone, so the
    /// next run's sweep deletes it.
    #[tokio::test]
    async fn a_kept_namespace_is_left_for_the_diagnosis() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let (client, log) = mock::server(healthy_cluster(&system, 1));
        let (mut p, _) = fast_platform(client).await;
        p.keep_namespace = true;
        p.deploy(&system, &opts("20261123T200000Z-ab12"), &Evidence::new())
            .await
            .unwrap();
        p.teardown().await;
        assert!(
            !log.calls().iter().any(|c| c.method == Method::DELETE),
            "nothing deleted"
        );
    }

    #[tokio::test]
    async fn a_deployment_never_available_is_an_error_naming_it_and_why_its_pods_wait() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let (client, _log) = mock::server(healthy_cluster(&system, usize::MAX));
        let mut p = KubePlatform::new(Target::Client(client));
        p.poll = Duration::from_millis(10);
        p.ready_within = Duration::from_millis(200);
        let e = p
            .deploy(&system, &opts("r2"), &Evidence::new())
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("not ready within 0 s") && text.contains("postgres 0/1 available"),
            "{text}"
        );
        assert!(
            text.contains("checkout-abc-1: not ready, 3 restarts"),
            "{text}"
        );
        p.teardown().await;
    }

    /// Ctrl-C while the system comes up: the run stops as interrupted and the namespace goes.
    #[tokio::test]
    async fn ctrl_c_during_deploy_deletes_the_namespace() {
        let scenario =
            crate::spec::load_scenario(&root().join("scenarios/pool-exhaustion.toml")).unwrap();
        let (client, log) = mock::server(healthy_cluster(&scenario.system, usize::MAX));
        let mut p = KubePlatform::new(Target::Client(client));
        p.poll = Duration::from_millis(10);
        let reports = tempfile::tempdir().unwrap();
        let opts = crate::runner::RunOptions {
            bugs: Vec::new(),
            reports_dir: reports.path().to_path_buf(),
            bin_dir: PathBuf::from("/nonexistent"),
            baseline: None,
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        let watcher = log.clone();
        tokio::spawn(async move {
            // Once the objects are being applied, press Ctrl-C.
            while !watcher
                .calls()
                .iter()
                .any(|c| c.path_and_query.contains("/deployments"))
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tx.send(true).unwrap();
        });
        let r = crate::runner::run(&scenario, &mut p, &opts, rx)
            .await
            .expect("a report of the aborted run");
        assert!(
            matches!(r.error, Some(BrownoutError::Interrupted)),
            "{:?}",
            r.error
        );
        // The aborted run's report says so, with nothing judged.
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(r.report_dir.join("report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["verdict"], "aborted");
        assert_eq!(report["aborted"], "interrupted");
        assert_eq!(report["expectations"], json!([]));
        assert_eq!(report["stack_up_s"], serde_json::Value::Null);
        let calls = log.calls();
        assert!(
            calls.iter().any(|c| c.method == Method::DELETE
                && c.path_and_query.starts_with("/api/v1/namespaces/brownout-")),
            "namespace deleted on Ctrl-C"
        );
    }

    #[test]
    fn namespaces_are_dns_labels() {
        assert_eq!(
            namespace_of("20261123T200000Z-AB12"),
            "brownout-20261123t200000z-ab12"
        );
        assert_eq!(namespace_of(&"x".repeat(80)).len(), 63);
        assert_eq!(namespace_of("a_b."), "brownout-a-b");
    }

    /// The edge counts are mtail's own, read when asked (as on the local platform), not
    /// Prometheus' copy, which is up to a scrape interval behind. The harness reaches the
    /// ingress pod's mtail (port [`render::EDGE_METRICS_PORT`], the `metrics` port of its
    /// `mtail` container) through the API server's pod proxy,
    /// `/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy/{path}`
    /// (https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls;
    /// kubernetes/kubernetes pkg/registry/core/pod/rest/subresources.go, `ProxyREST`), at
    /// mtail's `/json` (google/mtail internal/exporter, `HandleJSON`; the same server also
    /// serves `/metrics`), and parses it with the local platform's parser. The pods are the
    /// running ones labelled `app.kubernetes.io/name=ingress`; their counts add up.
    #[tokio::test]
    async fn edge_counts_are_mtails_own_through_the_pod_proxy() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let objects = render::render(&system, &RenderOptions::new("x", "x")).unwrap();
        let ingress = objects
            .iter()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some("ingress") => {
                    d.spec.as_ref()?.template.spec.clone()
                }
                _ => None,
            })
            .unwrap();
        let mtail = ingress
            .containers
            .iter()
            .find(|c| c.name == "mtail")
            .unwrap();
        assert!(
            mtail
                .ports
                .iter()
                .flatten()
                .any(|p| p.container_port == render::EDGE_METRICS_PORT),
            "mtail listens on EDGE_METRICS_PORT"
        );
        let mtail_json = |ok: u64| {
            json!([{"Name": "ingress_http_requests_total", "Kind": 1, "Type": 0,
                "Keys": ["status", "made_by"],
                "LabelValues": [
                    {"Labels": ["200", "upstream"], "Value": {"Value": ok, "Time": 0}},
                    {"Labels": ["503", "ingress"], "Value": {"Value": 2, "Time": 0}}]}])
        };
        let mut inner = healthy_cluster(&system, 1);
        let answer: mock::Answer = Box::new(move |s: &Seen| {
            let p = s.path_and_query.as_str();
            if !s.is_watch() && p.contains("/pods?") && p.contains("ingress") {
                let pod = |name: &str| {
                    json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "labels": {render::NAME_LABEL: "ingress"}},
                        "status": {"phase": "Running"}})
                };
                return mock::list("PodList", "v1", vec![pod("ingress-a"), pod("ingress-b")]);
            }
            if p.contains("/proxy/json") {
                let ok = if p.contains("ingress-a") { 140 } else { 60 };
                return Reply::Json(StatusCode::OK, mtail_json(ok));
            }
            inner(s)
        });
        let (client, log) = mock::server(answer);
        let (mut p, _) = fast_platform(client).await;
        let ev = Evidence::new();
        p.deploy(&system, &opts("20261123T200000Z-ed01"), &ev)
            .await
            .unwrap();
        let counts = p.edge_counts().await.expect("edge counts");
        let counts: Vec<(u16, Layer, u64)> = counts
            .iter()
            .map(|c| (c.status, c.layer, c.answers))
            .collect();
        assert_eq!(
            counts,
            vec![(200, Layer::App, 200), (503, Layer::Ingress, 4)]
        );
        let ns = "brownout-20261123t200000z-ed01";
        let reads: Vec<String> = log
            .calls()
            .into_iter()
            .filter(|c| c.path_and_query.contains("/proxy/"))
            .map(|c| c.path_and_query)
            .collect();
        assert_eq!(
            reads,
            vec![
                format!("/api/v1/namespaces/{ns}/pods/ingress-a:3903/proxy/json"),
                format!("/api/v1/namespaces/{ns}/pods/ingress-b:3903/proxy/json"),
            ]
        );
        p.teardown().await;
    }

    /// On a first run the node pulls PostgreSQL (and the fault proxy's dependencies) while the
    /// apps start; an app whose boot-time migration gives up before the database answers exits
    /// and the kubelet restarts it ("restartPolicy: Always … restarts the container", with a
    /// back-off: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy),
    /// which the run counts as a restart at bring-up. A Deployment's pods are created as soon as
    /// it is applied (the ReplicaSet controller does not wait for other objects:
    /// kubernetes/kubernetes pkg/controller/replicaset/replica_set.go, `manageReplicas`), so
    /// the order is the harness's: the dependencies are applied first, and the apps only once
    /// the API server reports the dependencies available (`status.availableReplicas`, set by
    /// the Deployment controller from ready pods:
    /// https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status).
    #[tokio::test]
    async fn the_apps_are_applied_only_once_postgres_is_available() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        // The mock's Deployments are available from the third list on.
        let (client, log) = mock::server(healthy_cluster(&system, 3));
        let (mut p, _) = fast_platform(client).await;
        p.deploy(&system, &opts("20261123T200000Z-or01"), &Evidence::new())
            .await
            .unwrap();
        let calls = log.calls();
        let apply_of = |name: &str| {
            calls
                .iter()
                .position(|c| {
                    c.method == Method::PATCH
                        && c.path_and_query.contains(&format!("/deployments/{name}?"))
                })
                .unwrap_or_else(|| panic!("{name} applied"))
        };
        let lists: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.method == Method::GET && c.path_and_query.contains("/deployments?"))
            .map(|(i, _)| i)
            .collect();
        let postgres_available = lists[2];
        assert!(apply_of("postgres") < lists[0], "postgres first");
        assert!(apply_of("fault-proxy") < lists[0], "the fault proxy first");
        for svc in &system.file.services {
            let name = svc.name.get_ref();
            assert!(
                apply_of(name) > postgres_available,
                "{name} applied before postgres was available"
            );
        }
        // Every claim and Service exists before the apps start.
        let claim = calls
            .iter()
            .position(|c| c.path_and_query.contains("/persistentvolumeclaims/"))
            .unwrap();
        assert!(claim < lists[0]);
        p.teardown().await;
    }

    /// Deployments available is not the ingress routing: on a real cluster the ingress pod starts
    /// with the seed's no-endpoints form (it answers 503 itself, with no upstream) and routes only
    /// once the router has exec'd the pods' addresses into it (`ingress.rs`). nginx's
    /// `add_header … $upstream_addr always` sends no header when the variable is empty
    /// (https://nginx.org/en/docs/http/ngx_http_headers_module.html#add_header: "if the value of
    /// a header field is an empty string then this field will not be added"), so deploy returns
    /// only after an answer names the upstream it was proxied to, and fails naming the ingress
    /// when none ever does.
    #[tokio::test]
    async fn deploy_returns_only_once_the_ingress_routes_to_a_replica() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        for routes_after in [4usize, usize::MAX] {
            let seen = Arc::new(AtomicUsize::new(0));
            let counted = seen.clone();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let host = listener.local_addr().unwrap().to_string();
            let app = axum::Router::new().fallback(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n >= routes_after {
                        axum::response::IntoResponse::into_response((
                            [(crate::load::UPSTREAM_ADDR_HEADER, "10.244.0.7:8080")],
                            "ok",
                        ))
                    } else {
                        axum::response::IntoResponse::into_response((
                            StatusCode::SERVICE_UNAVAILABLE,
                            "",
                        ))
                    }
                }
            });
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let (client, _log) = mock::server(healthy_cluster(&system, 1));
            let (mut p, _) = fast_platform(client).await;
            p.addresses.ingress = host.clone();
            p.reachable_within = Duration::from_millis(1500);
            let r = p
                .deploy(&system, &opts("20261123T200000Z-rt01"), &Evidence::new())
                .await;
            if routes_after == usize::MAX {
                let e = r.unwrap_err().to_string();
                assert!(
                    e.contains("did not route to a replica") && e.contains("answered 503 itself"),
                    "{e}"
                );
            } else {
                r.unwrap();
                assert!(
                    seen.load(Ordering::SeqCst) >= routes_after,
                    "deploy returned after {} answers, before the ingress routed",
                    seen.load(Ordering::SeqCst)
                );
            }
            p.teardown().await;
        }
    }

    /// The report's platform facts: the API server's version as `GET /version` gives it
    /// (`gitVersion`; kube's `Client::apiserver_version`, the endpoint `kubectl version` reads:
    /// kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/version/types.go `Info`), and the
    /// probe times render rounds up to whole seconds (`periodSeconds`/`timeoutSeconds` are
    /// integers, at least 1: https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes).
    /// Kept after teardown (the report is written after it).
    #[tokio::test]
    async fn the_platform_facts_name_the_kubernetes_version_and_every_rounded_probe_time() {
        use crate::evidence::Probe;
        use crate::platform::{ProbeField, RoundedProbeTime};
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let mut inner = healthy_cluster(&system, 1);
        let answer: mock::Answer = Box::new(move |s: &Seen| {
            if s.path_and_query.starts_with("/version") {
                return Reply::Json(
                    StatusCode::OK,
                    json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0",
                        "gitCommit": "0", "gitTreeState": "clean",
                        "buildDate": "2025-08-27T00:00:00Z", "goVersion": "go1.24.6",
                        "compiler": "gc", "platform": "linux/amd64"}),
                );
            }
            inner(s)
        });
        let (client, _log) = mock::server(answer);
        let (mut p, _host) = fast_platform(client).await;
        p.deploy(&system, &opts("20261207T100000Z-fa01"), &Evidence::new())
            .await
            .unwrap();
        p.teardown().await;
        let facts = p.platform_facts();
        assert_eq!(facts.platform, "kubernetes");
        assert_eq!(facts.kubernetes_version.as_deref(), Some("v1.34.0"));
        let rounded = |service: &str, probe, asked_ms| RoundedProbeTime {
            service: service.into(),
            probe,
            field: ProbeField::Timeout,
            asked_ms,
            runs_ms: 1000,
        };
        assert_eq!(
            facts.rounded_probe_times,
            [
                rounded("payments", Probe::Readiness, 500),
                rounded("checkout", Probe::Readiness, 800),
                rounded("checkout", Probe::Liveness, 800),
            ],
            "periods of 1 s are whole seconds already"
        );
    }
}
