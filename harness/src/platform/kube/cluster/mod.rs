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

mod control;
mod waits;

use super::apply::{Cluster, Owner};
use super::images::{self, Tools};
use super::ingress;
use super::relay;
use super::render::{self, Object, RenderOptions};
use super::volumes;
use super::watch::{self, Watches};
use crate::error::{BrownoutError, Result};
use crate::evidence::{EdgeCount, Evidence, Restarts};
use crate::fault_proxy::client::Client as ProxyClient;
use crate::platform::{DeployOptions, Endpoints, IngressSettings, Platform};
use crate::spec::System;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use waits::{deploy_phases, wait_answers, wait_available, wait_named_available, wait_routed};

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

#[cfg(test)]
mod database_tests;
#[cfg(test)]
pub(crate) mod tests;
