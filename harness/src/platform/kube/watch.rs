//! Evidence from the Kubernetes API while a run lasts: three watches on the run's namespace
//! (kube-runtime's `watcher`, which lists, then watches, and re-lists after a gap) turned into
//! the same typed evidence the local platform records.
//!
//! | watched | evidence |
//! |---|---|
//! | Pods' `Ready` condition | readiness passed, or dropped (no status code: [`ProbeResult::NotReady`]) |
//! | Events `Unhealthy` | the failing probe's result ([`facts::probe_from_unhealthy`]), aggregated or not |
//! | Containers' `state.running.startedAt` | a container started (once per start) |
//! | Pods' `restartCount`, `lastState.terminated` | a crash (exit code, reason, message), restarts |
//! | Pods' `deletionTimestamp` | termination began: the pre-stop hook, or SIGTERM |
//! | a deleted pod's container `terminated` state | exited by itself, or SIGKILL at the grace period (137) |
//! | Events `Killing`, `BackOff`, `Failed` | an event line |
//! | EndpointSlices | which replicas a Service routes to (the union of its slices), and each endpoint's address → replica |
//!
//! Events may be missing (the kubelet's recorder drops them past its spam filter), so readiness
//! is read from the pod's status both ways and events only add the probe's answer. The watches
//! may re-list at any time (after a 410 Expired): evidence is keyed so that a re-list adds
//! nothing, and what a re-list no longer holds is gone.
//!
//! [`Tracker`] is the pure part (objects in, evidence out), tested object by object; [`start`]
//! feeds it from the API, tested against the mock API server.

use super::facts;
use super::render::NAME_LABEL;
use crate::evidence::{ContainerStart, Evidence, Lifecycle, Probe, ProbeResult, Restarts};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// What has been seen of one pod, to report changes only.
#[derive(Default)]
struct PodSeen {
    service: String,
    ready: Option<bool>,
    restarts: u32,
    deleting: bool,
    ended: bool,
    /// The container starts reported: (container, `state.running.startedAt`).
    started: BTreeSet<(String, k8s_openapi::jiff::Timestamp)>,
    /// The last crash's message (the container's last words, when it wrote a termination message).
    last_exit: String,
    /// Probe timeouts (ms) from the pod's spec.
    readiness_timeout_ms: u64,
    liveness_timeout_ms: u64,
}

/// Turns API objects into evidence, remembering what it reported.
pub struct Tracker {
    evidence: Evidence,
    pods: BTreeMap<String, PodSeen>,
    /// Event name → the count already reported (the kubelet bumps `count` on repeats).
    events: BTreeMap<String, i32>,
    /// EndpointSlice name → (its Service, its ready replicas). A Service may have several.
    slices: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Service → ready replicas last reported (the union over its slices).
    routed: BTreeMap<String, BTreeSet<String>>,
    /// Events about pods not seen yet (the watches are independent streams), replayed when the
    /// pod shows up; bounded.
    early: Vec<Event>,
}

/// How many events about unseen pods are kept for later.
const EARLY_EVENTS: usize = 1000;

/// "exit code 137 (Error)": how a container ended.
fn exit_status(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> String {
    let reason = t.reason.as_ref().map(|r| format!(" ({r})"));
    format!("exit code {}{}", t.exit_code, reason.unwrap_or_default())
}

fn ms(seconds: Option<i32>, default_s: i32) -> u64 {
    seconds.unwrap_or(default_s).max(1) as u64 * 1000
}

impl Tracker {
    pub fn new(evidence: Evidence) -> Tracker {
        Tracker {
            evidence,
            pods: BTreeMap::new(),
            events: BTreeMap::new(),
            slices: BTreeMap::new(),
            routed: BTreeMap::new(),
            early: Vec::new(),
        }
    }

    /// Restarts so far of every pod seen, by service.
    pub fn restarts(&self) -> Vec<Restarts> {
        self.pods
            .iter()
            .map(|(name, p)| Restarts {
                service: p.service.clone(),
                replica: name.clone(),
                count: p.restarts,
            })
            .collect()
    }

    /// The not-ready pod of `service` with the most restarts, if any: (name, restarts, last
    /// crash message). What a stalled rollout is waiting for.
    pub fn stuck_pod(&self, service: &str) -> Option<(String, u32, String)> {
        self.pods
            .iter()
            .filter(|(_, p)| p.service == service && p.ready != Some(true) && !p.deleting)
            .max_by_key(|(_, p)| p.restarts)
            .map(|(n, p)| (n.clone(), p.restarts, p.last_exit.clone()))
    }

    /// The service (component label) of a pod seen so far.
    pub fn service_of(&self, pod: &str) -> Option<&str> {
        self.pods.get(pod).map(|p| p.service.as_str())
    }

    pub fn on_pod(&mut self, pod: &Pod) {
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        let Some(service) = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NAME_LABEL))
            .cloned()
        else {
            return;
        };
        let spec = pod.spec.as_ref();
        let main = spec.and_then(|s| s.containers.first());
        let new = !self.pods.contains_key(&name);
        let seen = self.pods.entry(name.clone()).or_insert_with(|| PodSeen {
            service: service.clone(),
            readiness_timeout_ms: ms(
                main.and_then(|c| c.readiness_probe.as_ref())
                    .and_then(|p| p.timeout_seconds),
                1,
            ),
            liveness_timeout_ms: ms(
                main.and_then(|c| c.liveness_probe.as_ref())
                    .and_then(|p| p.timeout_seconds),
                1,
            ),
            ..Default::default()
        });
        let status = pod.status.as_ref();

        // Readiness: the Ready condition turning True is a pass (the kubelet reports no status
        // code for it), turning False a drop; the `Unhealthy` event adds the answer when it comes.
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status == "True");
        if let Some(ready) = ready {
            if ready && seen.ready != Some(true) {
                self.evidence
                    .probe(&service, &name, Probe::Readiness, ProbeResult::Passed);
            } else if !ready && seen.ready == Some(true) {
                self.evidence
                    .probe(&service, &name, Probe::Readiness, ProbeResult::NotReady);
            }
            seen.ready = Some(ready);
        }

        // Crashes: restartCount up, with the last termination's facts.
        let statuses = status
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let restarts: u32 = statuses.iter().map(|c| c.restart_count.max(0) as u32).sum();
        if restarts > seen.restarts {
            let last = statuses
                .iter()
                .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref())
                .next_back();
            let (status, line) = match last {
                Some(t) => (exit_status(t), t.message.clone().unwrap_or_default()),
                None => ("restarted".into(), String::new()),
            };
            seen.last_exit = line.trim().to_string();
            for _ in seen.restarts..restarts {
                self.evidence.lifecycle(
                    &service,
                    &name,
                    Lifecycle::Exited {
                        status: status.clone(),
                        last_log_line: line.trim().to_string(),
                    },
                );
            }
            seen.restarts = restarts;
        }

        // Starts: each container's `state.running.startedAt`, once per start (a re-list or
        // another change to the pod shows the same one again).
        for c in &statuses {
            let Some(at) = c
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
            else {
                continue;
            };
            if seen.started.insert((c.name.clone(), at.0)) {
                self.evidence.lifecycle(
                    &service,
                    &name,
                    Lifecycle::Started {
                        pid: None,
                        container: Some(ContainerStart {
                            name: c.name.clone(),
                            started_at: at.0.to_string(),
                        }),
                    },
                );
            }
        }

        // Termination: deletion begins the pre-stop hook (or SIGTERM), then the container ends.
        if pod.metadata.deletion_timestamp.is_some() && !seen.deleting {
            seen.deleting = true;
            let grace_ms = pod
                .metadata
                .deletion_grace_period_seconds
                .or(spec.and_then(|s| s.termination_grace_period_seconds))
                .unwrap_or(30)
                .max(0) as u64
                * 1000;
            let hook = main
                .and_then(|c| c.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.as_ref());
            let event = match hook {
                Some(h) => Lifecycle::PreStop {
                    hook: match (&h.sleep, &h.http_get) {
                        (Some(s), _) => format!("sleep {} s", s.seconds),
                        (_, Some(g)) => format!("httpGet {}", g.path.clone().unwrap_or_default()),
                        _ => "exec".into(),
                    },
                    grace_ms,
                },
                None => Lifecycle::Sigterm {
                    why: format!("pod deleted (grace period {} s)", grace_ms / 1000),
                },
            };
            self.evidence.lifecycle(&service, &name, event);
        }
        if seen.deleting && !seen.ended {
            let ended = statuses
                .iter()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref());
            if let Some(t) = ended {
                seen.ended = true;
                let status = exit_status(t);
                let event = if t.exit_code == 137 {
                    Lifecycle::Sigkill { status }
                } else {
                    Lifecycle::Stopped { status }
                };
                self.evidence.lifecycle(&service, &name, event);
            }
        }
        if new {
            let (mine, rest) = std::mem::take(&mut self.early)
                .into_iter()
                .partition(|e| e.involved_object.name.as_deref() == Some(name.as_str()));
            self.early = rest;
            for e in mine {
                self.events
                    .remove(e.metadata.name.as_deref().unwrap_or_default());
                self.on_event(&e);
            }
        }
    }

    pub fn on_pod_deleted(&mut self, pod: &Pod) {
        // The pod object is gone: if its end was not seen, say so once.
        let Some(name) = pod.metadata.name.as_deref() else {
            return;
        };
        if let Some(seen) = self.pods.get_mut(name) {
            seen.deleting = true;
            if !seen.ended {
                seen.ended = true;
                let service = seen.service.clone();
                self.evidence
                    .event(format!("pod {name} of {service} deleted"));
            }
        }
    }

    /// A (re-)list of the pods ended (kube-runtime's `InitDone`) with `listed` in it: a pod seen
    /// before and not listed was deleted while the watch was not looking.
    pub fn on_pods_listed(&mut self, listed: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(name, p)| !p.ended && !listed.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            let mut pod = Pod::default();
            pod.metadata.name = Some(name);
            self.on_pod_deleted(&pod);
        }
    }

    pub fn on_event(&mut self, e: &Event) {
        let name = e.metadata.name.clone().unwrap_or_default();
        // The legacy recorder bumps `count`; the events.k8s.io one a `series` count.
        let count = e
            .count
            .unwrap_or(1)
            .max(e.series.as_ref().and_then(|s| s.count).unwrap_or(0));
        if self.events.get(&name).is_some_and(|c| *c >= count) {
            return;
        }
        self.events.insert(name, count);
        if e.involved_object.kind.as_deref() != Some("Pod") {
            return;
        }
        let pod = e.involved_object.name.clone().unwrap_or_default();
        let Some(seen) = self.pods.get(&pod) else {
            if self.early.len() < EARLY_EVENTS {
                self.early.push(e.clone());
            }
            return;
        };
        let (service, ready_ms, live_ms) = (
            seen.service.clone(),
            seen.readiness_timeout_ms,
            seen.liveness_timeout_ms,
        );
        let message = e.message.clone().unwrap_or_default();
        match e.reason.as_deref() {
            Some("Unhealthy") => {
                let plain = message
                    .strip_prefix(facts::COMBINED_PREFIX)
                    .unwrap_or(&message);
                let timeout = if plain.starts_with("Liveness") {
                    live_ms
                } else {
                    ready_ms
                };
                if let Some((probe, result)) = facts::probe_from_unhealthy(&message, timeout) {
                    self.evidence.probe(&service, &pod, probe, result);
                }
            }
            Some(reason @ ("Killing" | "BackOff" | "Failed" | "FailedPreStopHook")) => {
                self.evidence.event(format!("{pod}: {reason}: {message}"));
            }
            _ => {}
        }
    }

    /// One EndpointSlice added or changed: its endpoints replace what this slice said before; the
    /// Service routes to the ready endpoints of all its slices.
    pub fn on_slice(&mut self, slice: &EndpointSlice) {
        let Some(name) = slice.metadata.name.clone() else {
            return;
        };
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
        else {
            return;
        };
        let port = slice
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port);
        let mut ready = BTreeSet::new();
        for ep in &slice.endpoints {
            let Some(pod) = ep.target_ref.as_ref().and_then(|t| t.name.clone()) else {
                continue;
            };
            if let (Some(ip), Some(port)) = (ep.addresses.first(), port) {
                self.evidence.endpoint(&format!("{ip}:{port}"), &pod);
            }
            if ep
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(false)
            {
                ready.insert(pod);
            }
        }
        let before = self.slices.insert(name, (service.clone(), ready));
        if let Some((moved_from, _)) = before.filter(|(s, _)| *s != service) {
            self.route(&moved_from);
        }
        self.route(&service);
    }

    /// An EndpointSlice deleted: its endpoints no longer route.
    pub fn on_slice_deleted(&mut self, slice: &EndpointSlice) {
        let Some(name) = slice.metadata.name.as_deref() else {
            return;
        };
        if let Some((service, _)) = self.slices.remove(name) {
            self.route(&service);
        }
    }

    /// A (re-)list of the EndpointSlices ended with `listed` in it: the others were deleted.
    pub fn on_slices_listed(&mut self, listed: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .slices
            .keys()
            .filter(|n| !listed.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            let mut slice = EndpointSlice::default();
            slice.metadata.name = Some(name);
            self.on_slice_deleted(&slice);
        }
    }

    /// Reports the ready replicas of `service`, the union over its slices, if they changed.
    fn route(&mut self, service: &str) {
        let ready: BTreeSet<String> = self
            .slices
            .values()
            .filter(|(s, _)| s == service)
            .flat_map(|(_, r)| r.iter().cloned())
            .collect();
        if self.routed.get(service) != Some(&ready) {
            self.evidence.event(format!(
                "endpoints of {service}: {}",
                if ready.is_empty() {
                    "none ready".to_string()
                } else {
                    format!(
                        "ready {}",
                        ready.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            ));
            self.routed.insert(service.to_string(), ready);
        }
    }
}

/// The watches of one run, feeding one tracker until dropped.
pub struct Watches {
    pub tracker: Arc<Mutex<Tracker>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn spawn_watch<K, F>(
    api: Api<K>,
    tracker: Arc<Mutex<Tracker>>,
    mut apply: F,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    F: FnMut(&mut Tracker, watcher::Event<K>) + Send + 'static,
{
    use kube::runtime::WatchStreamExt;
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => apply(&mut tracker.lock().expect("tracker"), ev),
                Err(e) => tracing::warn!(error = %e, "kubernetes watch"),
            }
        }
    })
}

/// The names an `InitApply` run listed, handed over at its `InitDone` (kube-runtime's watcher:
/// "any objects that were previously applied but are not listed in any of the `InitApply` events
/// should be assumed to have been deleted").
#[derive(Default)]
struct Relist(BTreeSet<String>);

impl Relist {
    /// Follows one watcher event; `Some(names)` at the end of a (re-)list.
    fn follow<K: kube::Resource>(&mut self, ev: &watcher::Event<K>) -> Option<BTreeSet<String>> {
        match ev {
            watcher::Event::Init => self.0.clear(),
            watcher::Event::InitApply(o) => {
                self.0.insert(o.meta().name.clone().unwrap_or_default());
            }
            watcher::Event::InitDone => return Some(std::mem::take(&mut self.0)),
            _ => {}
        }
        None
    }
}

/// Starts the three watches on `namespace`.
pub fn start(client: kube::Client, namespace: &str, evidence: Evidence) -> Watches {
    let tracker = Arc::new(Mutex::new(Tracker::new(evidence)));
    let mut pods = Relist::default();
    let mut slices = Relist::default();
    let tasks = vec![
        spawn_watch(
            Api::<Pod>::namespaced(client.clone(), namespace),
            tracker.clone(),
            move |t, ev| {
                if let Some(listed) = pods.follow(&ev) {
                    t.on_pods_listed(&listed);
                }
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => t.on_pod(&p),
                    // The deleted object carries the pod's last status (its containers' end).
                    watcher::Event::Delete(p) => {
                        t.on_pod(&p);
                        t.on_pod_deleted(&p)
                    }
                    _ => {}
                }
            },
        ),
        spawn_watch(
            Api::<Event>::namespaced(client.clone(), namespace),
            tracker.clone(),
            |t, ev| {
                if let watcher::Event::Apply(e) | watcher::Event::InitApply(e) = ev {
                    t.on_event(&e)
                }
            },
        ),
        spawn_watch(
            Api::<EndpointSlice>::namespaced(client, namespace),
            tracker.clone(),
            move |t, ev| {
                if let Some(listed) = slices.follow(&ev) {
                    t.on_slices_listed(&listed);
                }
                match ev {
                    watcher::Event::Apply(s) | watcher::Event::InitApply(s) => t.on_slice(&s),
                    watcher::Event::Delete(s) => t.on_slice_deleted(&s),
                    _ => {}
                }
            },
        ),
    ];
    Watches { tracker, tasks }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
pub(crate) mod tests;
