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
pub(crate) mod tests {
    use super::*;
    use crate::evidence::EvidenceData;
    use crate::platform::kube::mock::{self, Reply, Seen};
    use serde_json::{json, Value};

    /// A pod of the checkout Deployment as the API server returns it.
    pub(crate) fn pod(name: &str, ready: bool, restarts: i32) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "brownout-r1", "resourceVersion": "101",
                "labels": {"app.kubernetes.io/name": "checkout", "pod-template-hash": "5d9c7b6f4"}},
            "spec": {"terminationGracePeriodSeconds": 12, "containers": [{
                "name": "checkout", "image": "brownout/checkout:r1",
                "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 8080}, "timeoutSeconds": 1, "periodSeconds": 1},
                "livenessProbe": {"httpGet": {"path": "/healthz/live", "port": 8080}, "timeoutSeconds": 2, "periodSeconds": 1},
                "lifecycle": {"preStop": {"sleep": {"seconds": 3}}}}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                "containerStatuses": [{"name": "checkout", "ready": ready, "restartCount": restarts,
                    "image": "brownout/checkout:r1", "imageID": "", "started": true,
                    "state": {"running": {"startedAt": "2026-11-23T20:00:05Z"}}}]}
        })
    }

    fn unhealthy(name: &str, pod: &str, message: &str, count: i32) -> Value {
        json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "brownout-r1", "resourceVersion": "102"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "brownout-r1", "fieldPath": "spec.containers{checkout}"},
            "reason": "Unhealthy", "message": message, "count": count, "type": "Warning",
            "source": {"component": "kubelet"}})
    }

    /// The `Started` of the checkout container at `at`.
    fn started(at: &str) -> Lifecycle {
        Lifecycle::Started {
            pid: None,
            container: Some(ContainerStart {
                name: "checkout".into(),
                started_at: at.into(),
            }),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn data(ev: &Evidence) -> EvidenceData {
        ev.with(std::mem::take)
    }

    #[test]
    fn readiness_comes_from_the_ready_condition_and_failures_from_unhealthy_events() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let name = "checkout-5d9c7b6f4-x7k2p";
        t.on_pod(&parse(pod(name, true, 0)));
        t.on_pod(&parse(pod(name, true, 0)));
        let msg = "Readiness probe failed: HTTP probe failed with statuscode: 503";
        t.on_event(&parse(unhealthy("e1", name, msg, 1)));
        t.on_event(&parse(unhealthy("e1", name, msg, 1)));
        let timeout = "Liveness probe failed: Get \"http://10.244.0.7:8080/healthz/live\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        t.on_event(&parse(unhealthy("e2", name, timeout, 1)));
        // An event about a pod not seen yet waits for it.
        t.on_event(&parse(unhealthy("e3", "checkout-later", msg, 1)));
        assert_eq!(ev.with(|d| d.probes.len()), 3);
        t.on_pod(&parse(pod("checkout-later", false, 0)));
        let d = data(&ev);
        let got: Vec<(Probe, ProbeResult)> = d
            .probes
            .iter()
            .map(|p| (p.probe, p.result.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Probe::Readiness, ProbeResult::Passed),
                (
                    Probe::Readiness,
                    ProbeResult::Answered {
                        status: 503,
                        body: String::new()
                    }
                ),
                (Probe::Liveness, ProbeResult::TimedOut { after_ms: 2000 }),
                (
                    Probe::Readiness,
                    ProbeResult::Answered {
                        status: 503,
                        body: String::new()
                    }
                ),
            ]
        );
        assert!(d.probes[..3]
            .iter()
            .all(|p| p.service == "checkout" && p.replica == name));
        assert_eq!(d.probes[3].replica, "checkout-later");
    }

    #[test]
    fn restarts_and_terminations_become_lifecycle_events() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let name = "checkout-5d9c7b6f4-x7k2p";
        t.on_pod(&parse(pod(name, true, 0)));
        let mut crashed = pod(name, false, 2);
        crashed["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {
            "exitCode": 1, "reason": "Error", "message": "startup failed: required environment variable DATABASE_URL is not set\n",
            "startedAt": "2026-11-23T20:00:05Z", "finishedAt": "2026-11-23T20:00:06Z"}});
        t.on_pod(&parse(crashed));
        assert_eq!(t.restarts()[0].count, 2);
        let mut deleting = pod(name, false, 2);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-23T20:01:00Z");
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(12);
        t.on_pod(&parse(deleting.clone()));
        deleting["status"]["containerStatuses"][0]["state"] = json!({"terminated": {
            "exitCode": 137, "reason": "Error", "startedAt": "2026-11-23T20:00:05Z", "finishedAt": "2026-11-23T20:01:12Z"}});
        t.on_pod(&parse(deleting.clone()));
        t.on_pod(&parse(deleting));
        let d = data(&ev);
        let events: Vec<Lifecycle> = d.lifecycle.iter().map(|l| l.event.clone()).collect();
        let crash = Lifecycle::Exited {
            status: "exit code 1 (Error)".into(),
            last_log_line: "startup failed: required environment variable DATABASE_URL is not set"
                .into(),
        };
        assert_eq!(
            events,
            vec![
                started("2026-11-23T20:00:05Z"),
                crash.clone(),
                crash,
                Lifecycle::PreStop {
                    hook: "sleep 3 s".into(),
                    grace_ms: 12_000
                },
                Lifecycle::Sigkill {
                    status: "exit code 137 (Error)".into()
                },
            ]
        );
    }

    #[test]
    fn a_pod_without_a_hook_gets_sigterm_and_an_exit_0_is_a_clean_stop() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let mut p = pod("checkout-a", true, 0);
        p["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("lifecycle");
        p["metadata"]["deletionTimestamp"] = json!("2026-11-23T20:01:00Z");
        p["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        t.on_pod(&parse(p));
        let events: Vec<Lifecycle> = data(&ev).lifecycle.into_iter().map(|l| l.event).collect();
        assert_eq!(
            events,
            vec![
                Lifecycle::Sigterm {
                    why: "pod deleted (grace period 12 s)".into()
                },
                Lifecycle::Stopped {
                    status: "exit code 0 (Completed)".into()
                },
            ]
        );
    }

    fn slice(ready: &[(&str, &str, bool)]) -> Value {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "checkout-abcde", "namespace": "brownout-r1", "resourceVersion": "103",
                "labels": {"kubernetes.io/service-name": "checkout"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": ready.iter().map(|(pod, ip, r)| json!({
                "addresses": [ip], "conditions": {"ready": r, "serving": r, "terminating": !r},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": "brownout-r1"}})).collect::<Vec<_>>()})
    }

    #[test]
    fn endpoint_slices_say_which_replicas_are_routed_and_who_listens_where() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        t.on_slice(&parse(slice(&[
            ("checkout-a", "10.244.0.7", true),
            ("checkout-b", "10.244.0.8", true),
        ])));
        t.on_slice(&parse(slice(&[
            ("checkout-a", "10.244.0.7", true),
            ("checkout-b", "10.244.0.8", true),
        ])));
        t.on_slice(&parse(slice(&[
            ("checkout-a", "10.244.0.7", false),
            ("checkout-b", "10.244.0.8", true),
        ])));
        t.on_slice(&parse(slice(&[])));
        assert_eq!(
            ev.upstream("10.244.0.8:8080").1.as_deref(),
            Some("checkout-b")
        );
        let d = data(&ev);
        let lines: Vec<&str> = d.events.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            lines,
            [
                "endpoints of checkout: ready checkout-a, checkout-b",
                "endpoints of checkout: ready checkout-b",
                "endpoints of checkout: none ready",
            ]
        );
    }

    /// The watches against a mock API server: each is a list, then a watch from its
    /// resourceVersion; what streams in becomes evidence.
    #[tokio::test]
    async fn the_watches_list_then_watch_and_turn_what_streams_into_evidence() {
        let name = "checkout-5d9c7b6f4-x7k2p";
        let answer: mock::Answer = Box::new(move |s: &Seen| {
            let path = s.path_and_query.as_str();
            let watch = s.is_watch();
            if path.starts_with("/api/v1/namespaces/brownout-r1/pods") {
                if !watch {
                    return mock::list("PodList", "v1", vec![pod(name, false, 0)]);
                }
                return Reply::Watch(vec![
                    json!({"type": "MODIFIED", "object": pod(name, true, 0)}),
                ]);
            }
            if path.starts_with("/api/v1/namespaces/brownout-r1/events") {
                if !watch {
                    return mock::list("EventList", "v1", vec![]);
                }
                let m = "Readiness probe failed: Get \"http://10.244.0.7:8080/healthz/ready\": dial tcp 10.244.0.7:8080: connect: connection refused";
                return Reply::Watch(vec![
                    json!({"type": "ADDED", "object": unhealthy("e1", name, m, 1)}),
                ]);
            }
            if path.starts_with("/apis/discovery.k8s.io/v1/namespaces/brownout-r1/endpointslices") {
                if !watch {
                    return mock::list("EndpointSliceList", "discovery.k8s.io/v1", vec![]);
                }
                return Reply::Watch(vec![
                    json!({"type": "ADDED", "object": slice(&[(name, "10.244.0.7", true)])}),
                ]);
            }
            mock::status(404, "NotFound", path)
        });
        let (client, log) = mock::server(answer);
        let ev = Evidence::new();
        let watches = start(client, "brownout-r1", ev.clone());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (probes, events) = ev.with(|d| (d.probes.len(), d.events.len()));
            if probes >= 2 && events >= 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "no evidence from the watches: {:?}",
                log.all()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            watches.tracker.lock().unwrap().service_of(name),
            Some("checkout")
        );
        drop(watches);
        let d = data(&ev);
        let results: Vec<ProbeResult> = d.probes.iter().map(|p| p.result.clone()).collect();
        assert_eq!(results, [ProbeResult::Passed, ProbeResult::Refused]);
        let seen = log.all();
        for kind in ["/pods?", "/events?", "/endpointslices?"] {
            let of_kind: Vec<&Seen> = seen
                .iter()
                .filter(|s| s.path_and_query.contains(kind))
                .collect();
            assert!(!of_kind[0].is_watch(), "{kind}: a list first");
            assert!(
                of_kind
                    .iter()
                    .any(|s| s.is_watch() && s.path_and_query.contains("resourceVersion=100")),
                "{kind}: then a watch from the list's resourceVersion: {of_kind:?}"
            );
        }
    }

    /// A container's start as the kubelet reports it: `status.containerStatuses[].state.running
    /// .startedAt`, "the time at which the container was last (re-)started"
    /// (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-states;
    /// kubernetes/kubernetes pkg/kubelet/kubelet_pods.go, `convertToAPIContainerStatuses`, sets it
    /// from the runtime's start time). Every status update and every re-list shows the same
    /// `startedAt` again; a restart shows a new one. So: one `Started` per container start, for a
    /// pod running from before the watch too (runs that delete no pod still get lifecycle marks).
    #[test]
    fn a_container_start_is_recorded_once_per_start_keyed_by_started_at() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let name = "checkout-5d9c7b6f4-x7k2p";
        t.on_pod(&parse(pod(name, false, 0)));
        t.on_pod(&parse(pod(name, true, 0)));
        // The same pod again, as a re-list returns it.
        t.on_pod(&parse(pod(name, true, 0)));
        // It crashed and runs again: a new startedAt, with the crash in lastState.
        let mut again = pod(name, true, 1);
        again["status"]["containerStatuses"][0]["state"] =
            json!({"running": {"startedAt": "2026-11-23T20:03:17Z"}});
        again["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {
            "exitCode": 2, "reason": "Error", "startedAt": "2026-11-23T20:00:05Z", "finishedAt": "2026-11-23T20:03:01Z"}});
        t.on_pod(&parse(again.clone()));
        t.on_pod(&parse(again));
        // A pod waiting in CrashLoopBackOff has no running state: no start.
        let mut waiting = pod("checkout-5d9c7b6f4-w8z1q", false, 3);
        waiting["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        t.on_pod(&parse(waiting));
        let d = data(&ev);
        assert!(!d
            .lifecycle
            .iter()
            .any(|l| l.replica != name && matches!(l.event, Lifecycle::Started { .. })));
        let events: Vec<(&str, Lifecycle)> = d
            .lifecycle
            .iter()
            .filter(|l| l.replica == name)
            .map(|l| (l.replica.as_str(), l.event.clone()))
            .collect();
        assert_eq!(
            events,
            vec![
                (name, started("2026-11-23T20:00:05Z")),
                (
                    name,
                    Lifecycle::Exited {
                        status: "exit code 2 (Error)".into(),
                        last_log_line: String::new()
                    }
                ),
                (name, started("2026-11-23T20:03:17Z")),
            ]
        );
        assert_eq!(
            d.lifecycle[0].event.describe(),
            "container checkout started at 2026-11-23T20:00:05Z"
        );
        let json = serde_json::to_value(&d.lifecycle[0]).unwrap();
        assert_eq!(json["event"], "started");
        assert_eq!(json["container"]["started_at"], "2026-11-23T20:00:05Z");
        assert!(json.get("pid").is_none(), "no pid is invented: {json}");
    }

    /// The kubelet's `Unhealthy` events go through client-go's event recorder (tools/record
    /// events_cache.go, `EventCorrelator`): once 10 different messages with the same reason were
    /// seen for one pod within 10 minutes (`defaultAggregateMaxEvents`,
    /// `defaultAggregateIntervalInSeconds`), each further one is stored as one event with the
    /// message `(combined from similar events): <latest message>` (`EventAggregatorByReasonMessageFunc`)
    /// whose `count` is bumped on repeats; the spam filter lets 25 events per object through
    /// (`defaultSpamBurst`), then one per 5 minutes (`defaultSpamQPS`). Liveness and readiness
    /// failures share the reason `Unhealthy`. The aggregated event still says what the probe got.
    #[test]
    fn aggregated_unhealthy_events_as_the_event_recorder_stores_them_still_say_what_the_probe_got()
    {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let name = "checkout-5d9c7b6f4-x7k2p";
        t.on_pod(&parse(pod(name, true, 0)));
        let mut recorder = mock::EventRecorder::default();
        // Nine different liveness failures (each probe's timeout message names another port
        // here, as messages differ in a real run by address, path or error), each seen once.
        for i in 0..9 {
            let m = format!("Liveness probe failed: Get \"http://10.244.0.7:{}/healthz/live\": dial tcp 10.244.0.7:{}: connect: connection refused", 8080 + i, 8080 + i);
            t.on_event(&parse(recorder.record(name, "Unhealthy", &m).unwrap()));
        }
        // The tenth different message: aggregated, under a name of its own.
        let ready = "Readiness probe failed: HTTP probe failed with statuscode: 503";
        let combined = recorder.record(name, "Unhealthy", ready).unwrap();
        assert_eq!(
            combined["message"],
            format!("(combined from similar events): {ready}")
        );
        t.on_event(&parse(combined));
        let probes = ev.with(|d| d.probes.clone());
        assert_eq!(
            probes.len(),
            3,
            "a pass, the first liveness failure, the 503"
        );
        let readiness: Vec<&ProbeResult> = probes
            .iter()
            .filter(|p| p.probe == Probe::Readiness)
            .map(|p| &p.result)
            .collect();
        assert_eq!(
            readiness,
            [
                &ProbeResult::Passed,
                &ProbeResult::Answered {
                    status: 503,
                    body: String::new()
                }
            ]
        );
        // The aggregated event again, count bumped: not reported twice.
        let mut times = 0;
        while let Some(e) = recorder.record(name, "Unhealthy", ready) {
            times += 1;
            assert!(e["count"].as_i64().unwrap() > 1);
            t.on_event(&parse(e));
        }
        assert_eq!(times, 25 - 10, "the spam filter's burst is spent");
        assert_eq!(ev.with(|d| d.probes.len()), 3, "nothing new");
    }

    /// A pod's `Ready` condition is the kubelet's verdict on its readiness probe: False after
    /// `failureThreshold` failures, True after `successThreshold` successes
    /// (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-conditions and
    /// #container-probes; kubernetes/kubernetes pkg/kubelet/prober/worker.go feeds the results,
    /// pkg/kubelet/status/status_manager.go `SetContainerReadiness` writes the condition). The
    /// `Unhealthy` event that would carry the status code may never come (the event recorder's
    /// spam filter, see above). So True→False is a readiness failure with no status code
    /// invented — what the readiness judge counts as "not ready" (`!ok`,
    /// harness/src/judge/readiness.rs) — and an event arriving after it still adds the answer
    /// the terminations judge needs (`answered()`, harness/src/judge/terminations.rs).
    #[test]
    fn a_ready_condition_turning_false_with_no_event_is_a_readiness_drop() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let name = "checkout-5d9c7b6f4-x7k2p";
        for ready in [true, false, false, true] {
            t.on_pod(&parse(pod(name, ready, 0)));
        }
        let d = data(&ev);
        let got: Vec<(bool, ProbeResult)> =
            d.probes.iter().map(|p| (p.ok, p.result.clone())).collect();
        assert_eq!(
            got,
            [
                (true, ProbeResult::Passed),
                (false, ProbeResult::NotReady),
                (true, ProbeResult::Passed)
            ]
        );
        assert!(!d.probes[1].result.answered(), "no status code invented");
        // Dropped again, and this time the event comes too, after the condition.
        t.on_pod(&parse(pod(name, false, 0)));
        let msg = "Readiness probe failed: HTTP probe failed with statuscode: 503";
        t.on_event(&parse(unhealthy("e1", name, msg, 1)));
        let d = data(&ev);
        let got: Vec<ProbeResult> = d.probes.iter().map(|p| p.result.clone()).collect();
        assert_eq!(
            got,
            [
                ProbeResult::NotReady,
                ProbeResult::Answered {
                    status: 503,
                    body: String::new()
                }
            ]
        );
        // The event first and then the condition: the condition adds nothing.
        t.on_pod(&parse(pod(name, true, 0)));
        t.on_event(&parse(unhealthy("e1", name, msg, 2)));
        t.on_pod(&parse(pod(name, false, 0)));
        let results: Vec<ProbeResult> = data(&ev).probes.into_iter().map(|p| p.result).collect();
        assert_eq!(
            results,
            [
                ProbeResult::Passed,
                ProbeResult::Answered {
                    status: 503,
                    body: String::new()
                }
            ]
        );
    }

    fn named_slice(name: &str, service: &str, ready: &[(&str, &str, bool)]) -> Value {
        let mut s = slice(ready);
        s["metadata"]["name"] = name.into();
        s["metadata"]["labels"]["kubernetes.io/service-name"] = service.into();
        s
    }

    /// A Service's endpoints are spread over several EndpointSlices: the controller puts at
    /// most 100 endpoints in a slice (`--max-endpoints-per-slice`), a Service may have slices
    /// of several address types, and the mirroring controller adds its own; consumers must
    /// join all the slices labelled `kubernetes.io/service-name` and handle slices being
    /// deleted (https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/,
    /// "Ownership", "EndpointSlice mirroring", "Distribution of EndpointSlices";
    /// kubernetes/kubernetes pkg/controller/endpointslice/reconciler.go deletes slices it no
    /// longer needs). The routed set is the union; a deleted slice routes nothing.
    #[test]
    fn a_services_routed_replicas_are_the_union_of_its_slices_and_a_deleted_slice_routes_nothing() {
        let ev = Evidence::new();
        let mut t = Tracker::new(ev.clone());
        let a = named_slice(
            "checkout-abcde",
            "checkout",
            &[("checkout-a", "10.244.0.7", true)],
        );
        let b = named_slice(
            "checkout-fghij",
            "checkout",
            &[("checkout-b", "10.244.0.8", true)],
        );
        t.on_slice(&parse(a.clone()));
        t.on_slice(&parse(b.clone()));
        // Another Service's slice changes nothing of checkout's.
        t.on_slice(&parse(named_slice(
            "catalog-klmno",
            "catalog",
            &[("catalog-a", "10.244.0.9", false)],
        )));
        // The first slice changes: b is still routed through the second.
        t.on_slice(&parse(named_slice(
            "checkout-abcde",
            "checkout",
            &[("checkout-a", "10.244.0.7", false)],
        )));
        t.on_slice_deleted(&parse(b));
        t.on_slice_deleted(&parse(a));
        let d = data(&ev);
        let lines: Vec<&str> = d.events.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            lines,
            [
                "endpoints of checkout: ready checkout-a",
                "endpoints of checkout: ready checkout-a, checkout-b",
                "endpoints of catalog: none ready",
                "endpoints of checkout: ready checkout-b",
                "endpoints of checkout: none ready",
            ]
        );
    }

    /// A watch from a resourceVersion the API server no longer keeps ends with an `ERROR` event,
    /// a `Status` of code 410 reason `Expired` (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes;
    /// kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go returns
    /// it as a watch event, not an HTTP status, once the request was admitted). kube-runtime's
    /// watcher then lists again: `Init`, an `InitApply` for every object, `InitDone`, and
    /// "objects that were previously applied but are not listed … should be assumed to have been
    /// deleted" (kube-runtime src/watcher.rs, `Event::InitDone`). Evidence must not repeat on
    /// the re-list, and what it lacks is gone. The mock answers every request 30 ms late.
    #[tokio::test]
    async fn an_expired_watch_relists_without_repeating_evidence_and_what_the_relist_lacks_is_gone()
    {
        let (a, b) = ("checkout-5d9c7b6f4-aaaaa", "checkout-5d9c7b6f4-bbbbb");
        let refused = "Liveness probe failed: Get \"http://10.244.0.7:8080/healthz/live\": dial tcp 10.244.0.7:8080: connect: connection refused";
        let lists = Arc::new(Mutex::new(BTreeMap::<&'static str, usize>::new()));
        let counted = lists.clone();
        let answer: mock::Answer = Box::new(move |s: &Seen| {
            let path = s.path_and_query.as_str();
            let kind = ["/pods", "/events", "/endpointslices"]
                .into_iter()
                .find(|k| path.contains(&format!("{k}?")));
            let Some(kind) = kind else {
                return mock::status(404, "NotFound", path);
            };
            let mut lists = counted.lock().unwrap();
            let n = *lists.get(kind).unwrap_or(&0);
            if !s.is_watch() {
                lists.insert(kind, n + 1);
                let first = n == 0;
                return match kind {
                    "/pods" if first => {
                        mock::list("PodList", "v1", vec![pod(a, true, 0), pod(b, true, 0)])
                    }
                    "/pods" => mock::list("PodList", "v1", vec![pod(a, true, 0)]),
                    "/events" => {
                        mock::list("EventList", "v1", vec![unhealthy("e1", a, refused, 1)])
                    }
                    _ if first => mock::list(
                        "EndpointSliceList",
                        "discovery.k8s.io/v1",
                        vec![named_slice(
                            "checkout-abcde",
                            "checkout",
                            &[(a, "10.244.0.7", true), (b, "10.244.0.8", true)],
                        )],
                    ),
                    _ => mock::list(
                        "EndpointSliceList",
                        "discovery.k8s.io/v1",
                        vec![named_slice(
                            "checkout-fghij",
                            "checkout",
                            &[(a, "10.244.0.7", true)],
                        )],
                    ),
                };
            }
            if n == 1 {
                // The first watch: a change that repeats what the list said, then it expires.
                let mut first = vec![mock::expired()];
                if kind == "/pods" {
                    first.insert(0, json!({"type": "MODIFIED", "object": pod(a, true, 0)}));
                }
                return Reply::WatchThenEnd(first);
            }
            Reply::Watch(vec![])
        });
        let (client, log) = mock::server_delayed(answer, std::time::Duration::from_millis(30));
        let ev = Evidence::new();
        let watches = start(client, "brownout-r1", ev.clone());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let relisted = lists.lock().unwrap().values().filter(|n| **n >= 2).count() == 3;
            let settled = ev.with(|d| d.events.iter().any(|e| e.what.contains("deleted")))
                && watches
                    .tracker
                    .lock()
                    .unwrap()
                    .routed
                    .get("checkout")
                    .map(|r| r.len())
                    == Some(1);
            if relisted && settled {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "no re-list: {:?}",
                log.all()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Let the re-listed events and slices land too.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        drop(watches);
        let d = data(&ev);
        let starts: Vec<&str> = d
            .lifecycle
            .iter()
            .filter(|l| matches!(l.event, Lifecycle::Started { .. }))
            .map(|l| l.replica.as_str())
            .collect();
        assert_eq!(starts.len(), 2, "one start per pod: {starts:?}");
        let probes: Vec<(&str, Probe, ProbeResult)> = d
            .probes
            .iter()
            .map(|p| (p.replica.as_str(), p.probe, p.result.clone()))
            .collect();
        assert_eq!(probes.len(), 3, "no repeat: {probes:?}");
        assert!(probes.contains(&(a, Probe::Liveness, ProbeResult::Refused)));
        // The pod and slice watches re-list independently: their lines come in either order.
        let mut lines: Vec<String> = d.events.iter().map(|e| e.what.clone()).collect();
        assert_eq!(lines[0], format!("endpoints of checkout: ready {a}, {b}"));
        lines.sort();
        assert_eq!(
            lines,
            [
                format!("endpoints of checkout: ready {a}"),
                format!("endpoints of checkout: ready {a}, {b}"),
                format!("pod {b} of checkout deleted"),
            ],
            "every line once"
        );
    }
}
