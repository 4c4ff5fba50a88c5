//! Evidence from the Kubernetes API while a run lasts: three watches on the run's namespace
//! (kube-runtime's `watcher`, which lists, then watches, and re-lists after a gap) turned into
//! the same typed evidence the local platform records.
//!
//! | watched | evidence |
//! |---|---|
//! | Pods' `Ready` condition | readiness passed (the kubelet does not report the status code) |
//! | Events `Unhealthy` | the failing probe's result ([`facts::probe_from_unhealthy`]) |
//! | Pods' `restartCount`, `lastState.terminated` | a crash (exit code, reason, message), restarts |
//! | Pods' `deletionTimestamp` | termination began: the pre-stop hook, or SIGTERM |
//! | a deleted pod's container `terminated` state | exited by itself, or SIGKILL at the grace period (137) |
//! | Events `Killing`, `BackOff`, `Failed` | an event line |
//! | EndpointSlices | which replicas a Service routes to, and each endpoint's address → replica |
//!
//! [`Tracker`] is the pure part (objects in, evidence out), tested object by object; [`start`]
//! feeds it from the API, tested against the mock API server.

use super::facts;
use super::render::NAME_LABEL;
use crate::evidence::{Evidence, Lifecycle, Probe, ProbeResult, Restarts};
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
    /// Service → ready replicas last reported.
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

        // Readiness: a passing probe shows only as the Ready condition turning True.
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status == "True");
        if let Some(ready) = ready {
            if seen.ready != Some(ready) && ready {
                self.evidence
                    .probe(&service, &name, Probe::Readiness, ProbeResult::Passed);
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
            if !seen.ended {
                seen.ended = true;
                let service = seen.service.clone();
                self.evidence
                    .event(format!("pod {name} of {service} deleted"));
            }
        }
    }

    pub fn on_event(&mut self, e: &Event) {
        let name = e.metadata.name.clone().unwrap_or_default();
        let count = e.count.unwrap_or(1);
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
                let timeout = if message.starts_with("Liveness") {
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

    pub fn on_slice(&mut self, slice: &EndpointSlice) {
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
        if self.routed.get(&service) != Some(&ready) {
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
            self.routed.insert(service, ready);
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

/// Starts the three watches on `namespace`.
pub fn start(client: kube::Client, namespace: &str, evidence: Evidence) -> Watches {
    let tracker = Arc::new(Mutex::new(Tracker::new(evidence)));
    let tasks = vec![
        spawn_watch(
            Api::<Pod>::namespaced(client.clone(), namespace),
            tracker.clone(),
            |t, ev| match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => t.on_pod(&p),
                watcher::Event::Delete(p) => t.on_pod_deleted(&p),
                _ => {}
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
            |t, ev| {
                if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = ev {
                    t.on_slice(&s)
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
}
