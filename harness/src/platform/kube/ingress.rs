//! The ingress's routes on Kubernetes, by the same rules as the local platform
//! (the local ingress's `route_to`): nginx's upstreams are the pods'
//! addresses (`podIP:port`) from the EndpointSlices of the Service the ingress fronts — the ready
//! ones; every live one when none is ready and `fail_open`; none (the ingress's own 503, with
//! `Retry-After` if the system sets one) when none is ready and not `fail_open`.
//!
//! Not the Service's ClusterIP: with every replica unready kube-proxy has no endpoint to send a
//! connection to (it falls back to serving-and-terminating endpoints only), so nginx would make
//! 502s where the local platform answers 503 or fails open, and `$upstream_addr` would name no pod.
//!
//! While a run lasts, [`start`] keeps two reflectors (a [`Store`] per kind: the Service's
//! EndpointSlices by their `kubernetes.io/service-name` label, several per Service, deletions
//! included; the ingress pods) and, whenever the computed [`Route`] or the running nginx changes,
//! writes the upstreams file into the ingress pod by exec and reloads nginx ([`install`]). Not a
//! ConfigMap: the kubelet refreshes mounted ConfigMaps only after its sync period plus its cache's
//! TTL, about a minute. The file lives in an `emptyDir` the pod seeds at start with the
//! no-endpoints form ([`crate::platform::kube::render`]), so nginx starts before anything is
//! written; a restarted or replaced nginx gets the current route again.
//!
//! [`route`] is the pure part (slices in, route out) and [`Router::sync`] the decisions, both
//! tested without a cluster; exec goes through [`PodExec`] (a fake in the tests).

use super::render::{NAME_LABEL, UPSTREAMS_FILE};
use super::volumes::PodExec;
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The label the EndpointSlice controller puts on a Service's slices.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The component label value of the ingress's pods, and its container running nginx.
pub const INGRESS: &str = "ingress";
pub const NGINX_CONTAINER: &str = "nginx";
/// The Service port (and so the EndpointSlice port) the ingress routes to.
pub const PORT_NAME: &str = "http";
/// The nginx configuration in the ingress pod (from the run's ConfigMap).
pub const NGINX_CONF: &str = "/etc/brownout/nginx.conf";
/// How soon a write that failed (nginx not started yet, exec refused) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Why the route is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The ready endpoints (possibly none: see [`Mode::NoEndpoints`]).
    Ready,
    /// None ready, `fail_open`: every endpoint that is not terminating.
    FailOpen,
    /// None ready, not `fail_open` (or nothing at all): the ingress answers 503 itself.
    NoEndpoints,
}

/// What nginx routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// In nginx's own form: `ip:port`, `[ipv6]:port` (as `$upstream_addr` logs them), sorted.
    pub upstreams: Vec<SocketAddr>,
    pub mode: Mode,
}

impl Route {
    /// The upstreams file ([`crate::platform::nginx_conf::upstreams`], as on the local platform).
    pub fn file(&self) -> String {
        crate::platform::nginx_conf::upstreams(&self.addrs())
    }

    fn addrs(&self) -> Vec<String> {
        self.upstreams.iter().map(SocketAddr::to_string).collect()
    }

    /// The evidence line, the same as the local platform's.
    pub fn event(&self) -> String {
        let mode = match self.mode {
            Mode::FailOpen => " (none ready: fail-open to all)",
            Mode::Ready | Mode::NoEndpoints => "",
        };
        format!("ingress upstreams: [{}]{mode}", self.addrs().join(", "))
    }
}

/// One endpoint of the Service, deduplicated across slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The pod behind it (`targetRef`), if the slice names one.
    pub pod: Option<String>,
    pub ready: bool,
    pub terminating: bool,
}

/// The port of `slice` named [`PORT_NAME`], or its only port.
fn slice_port(slice: &EndpointSlice) -> Option<u16> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let named = ports.iter().find(|p| p.name.as_deref() == Some(PORT_NAME));
    let port = match (named, ports) {
        (Some(p), _) => p,
        (None, [only]) => only,
        _ => return None,
    };
    port.port.and_then(|p| u16::try_from(p).ok())
}

/// Every endpoint of `service` in `slices` (slices of other Services and FQDN slices are
/// ignored), once per address, sorted by address.
pub fn endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    service: &str,
) -> Vec<Endpoint> {
    let mut out: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    for slice in slices {
        let of_service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .is_some_and(|s| s == service);
        if !of_service || !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(port) = slice_port(slice) else {
            continue;
        };
        for ep in &slice.endpoints {
            // "clients may choose to only use the first element" (EndpointSlice API reference).
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            let conditions = ep.conditions.clone().unwrap_or_default();
            let found = Endpoint {
                addr: SocketAddr::new(ip, port),
                pod: ep.target_ref.as_ref().and_then(|t| t.name.clone()),
                // nil ready: "consumers should interpret this unknown state as ready".
                ready: conditions.ready.unwrap_or(true),
                // nil terminating: "interpret this unknown state to mean … not terminating".
                terminating: conditions.terminating.unwrap_or(false),
            };
            // The same endpoint in two slices (a move between slices seen half-way): ready if
            // either copy says so, terminating only if both do.
            out.entry(found.addr)
                .and_modify(|e| {
                    e.ready |= found.ready;
                    e.terminating &= found.terminating;
                    if e.pod.is_none() {
                        e.pod.clone_from(&found.pod);
                    }
                })
                .or_insert(found);
        }
    }
    out.into_values().collect()
}

/// The route for `service`: the local platform's rules on the Service's EndpointSlices.
pub fn route<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    service: &str,
    fail_open: bool,
) -> Route {
    let all = endpoints(slices, service);
    let ready: Vec<SocketAddr> = all.iter().filter(|e| e.ready).map(|e| e.addr).collect();
    if !ready.is_empty() {
        return Route {
            upstreams: ready,
            mode: Mode::Ready,
        };
    }
    let live: Vec<SocketAddr> = all
        .iter()
        .filter(|e| !e.terminating)
        .map(|e| e.addr)
        .collect();
    if fail_open && !live.is_empty() {
        Route {
            upstreams: live,
            mode: Mode::FailOpen,
        }
    } else {
        Route {
            upstreams: Vec::new(),
            mode: Mode::NoEndpoints,
        }
    }
}

/// One running nginx: a new pod or a restarted container is a new instance (a fresh process
/// that must be given the route again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub pod: String,
    pub restarts: i32,
}

/// The nginx of `pod`, if it is an ingress pod whose nginx container is running and the pod is
/// not being deleted.
pub fn instance(pod: &Pod) -> Option<Instance> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get(NAME_LABEL).map(String::as_str) != Some(INGRESS)
        || pod.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let status = pod.status.as_ref()?;
    let nginx = status
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == NGINX_CONTAINER)?;
    nginx.state.as_ref()?.running.as_ref()?;
    Some(Instance {
        pod: pod.metadata.name.clone()?,
        restarts: nginx.restart_count,
    })
}

/// The program that installs `file` in the ingress pod: written beside the live file, renamed
/// over it (nginx never reads half a file), then nginx told to reload. The text is an argument,
/// not stdin: closing stdin over exec needs the v5 streaming protocol, an argument does not.
pub fn install_argv(file: &str) -> Vec<String> {
    let tmp = format!("{UPSTREAMS_FILE}.tmp");
    let script = format!(
        "printf '%s' \"$1\" > {tmp} && mv -f {tmp} {UPSTREAMS_FILE} && nginx -c {NGINX_CONF} -s reload"
    );
    ["sh", "-c", &script, "sh", file].map(String::from).to_vec()
}

/// Writes `route` into `pod`'s nginx and reloads it.
pub async fn install<E: PodExec>(exec: &E, pod: &str, route: &Route) -> Result<()> {
    let out = exec
        .run(pod, NGINX_CONTAINER, &install_argv(&route.file()))
        .await?;
    if out.success {
        Ok(())
    } else {
        Err(BrownoutError::Environment(format!(
            "writing the upstreams into {pod} failed: {}",
            out.output.trim()
        )))
    }
}

/// What the router knows: the route last computed, what each running nginx has.
pub struct Router {
    service: String,
    fail_open: bool,
    evidence: Evidence,
    /// The route last announced in the evidence (written into at least one nginx).
    announced: Option<Route>,
    /// Per pod: the instance written into, and what it was given.
    written: BTreeMap<String, (Instance, Route)>,
    /// Failures already reported, so a retry loop says it once.
    failing: BTreeSet<String>,
}

impl Router {
    pub fn new(service: &str, fail_open: bool, evidence: Evidence) -> Router {
        Router {
            service: service.into(),
            fail_open,
            evidence,
            announced: None,
            written: BTreeMap::new(),
            failing: BTreeSet::new(),
        }
    }

    /// Brings every running nginx to the route `slices` give; `false` if a write failed (to be
    /// tried again).
    pub async fn sync<E: PodExec>(
        &mut self,
        exec: &E,
        slices: &[Arc<EndpointSlice>],
        pods: &[Arc<Pod>],
    ) -> bool {
        let all = endpoints(slices.iter().map(|s| s.as_ref()), &self.service);
        // Attribution: the pod behind each address, in the form nginx logs in `$upstream_addr`.
        for e in &all {
            if let Some(pod) = &e.pod {
                self.evidence.endpoint(&e.addr.to_string(), pod);
            }
        }
        let route = route(
            slices.iter().map(|s| s.as_ref()),
            &self.service,
            self.fail_open,
        );
        let mut instances: Vec<Instance> = pods.iter().filter_map(|p| instance(p)).collect();
        instances.sort_by(|a, b| a.pod.cmp(&b.pod));
        self.written
            .retain(|pod, _| instances.iter().any(|i| &i.pod == pod));
        let mut ok = true;
        for inst in instances {
            let have = self.written.get(&inst.pod);
            if have.is_some_and(|(i, r)| i == &inst && r == &route) {
                continue;
            }
            let again = have.is_some_and(|(i, _)| i != &inst);
            let key = format!("{} {}", inst.pod, inst.restarts);
            match install(exec, &inst.pod, &route).await {
                Ok(()) => {
                    self.failing.remove(&key);
                    if self.announced.as_ref() != Some(&route) {
                        self.evidence.event(route.event());
                        self.announced = Some(route.clone());
                    } else if again {
                        self.evidence.event(format!(
                            "ingress: nginx in {} restarted, upstreams written again",
                            inst.pod
                        ));
                    }
                    self.written.insert(inst.pod.clone(), (inst, route.clone()));
                }
                Err(e) => {
                    ok = false;
                    if self.failing.insert(key) {
                        self.evidence
                            .event(format!("ingress: upstreams not written yet: {e}"));
                    }
                }
            }
        }
        ok
    }
}

/// The router of one run, until dropped.
pub struct Routing {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Routing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts routing the ingress of `namespace` to `service`'s pods, exec'ing through the API.
pub fn start(
    client: kube::Client,
    namespace: &str,
    service: &str,
    fail_open: bool,
    evidence: Evidence,
) -> Routing {
    let exec = super::volumes::KubeExec {
        pods: Api::namespaced(client.clone(), namespace),
    };
    let router = Router::new(service, fail_open, evidence);
    Routing {
        task: tokio::spawn(run(client, namespace.to_string(), router, exec)),
    }
}

/// The router's loop: both reflectors, and a sync after every batch of changes once both have
/// listed (a sync before would write the empty route of a store not yet filled).
pub async fn run<E: PodExec>(client: kube::Client, namespace: String, mut router: Router, exec: E) {
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let slice_watch =
        watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={}", router.service));
    let pod_watch = watcher::Config::default().labels(&format!("{NAME_LABEL}={INGRESS}"));
    let mut slice_events = std::pin::pin!(reflector::reflector(
        slice_writer,
        watcher(Api::namespaced(client.clone(), &namespace), slice_watch)
    )
    .default_backoff());
    let mut pod_events = std::pin::pin!(reflector::reflector(
        pod_writer,
        watcher(Api::namespaced(client, &namespace), pod_watch)
    )
    .default_backoff());
    let mut retry = false;
    loop {
        tokio::select! {
            ev = slice_events.next() => log_error("EndpointSlices", ev),
            ev = pod_events.next() => log_error("ingress pods", ev),
            () = tokio::time::sleep(RETRY), if retry => {}
        }
        // Everything already arrived, before one write for all of it.
        while let Some(ev) = slice_events.next().now_or_never() {
            log_error("EndpointSlices", ev);
        }
        while let Some(ev) = pod_events.next().now_or_never() {
            log_error("ingress pods", ev);
        }
        if ready(&slices) && ready(&pods) {
            retry = !router.sync(&exec, &slices.state(), &pods.state()).await;
        }
    }
}

fn ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.wait_until_ready().now_or_never().is_some()
}

fn log_error<T>(what: &str, ev: Option<std::result::Result<T, watcher::Error>>) {
    if let Some(Err(e)) = ev {
        tracing::warn!(error = %e, "ingress router: watch of {what}");
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
