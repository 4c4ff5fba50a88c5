//! The watches folded into evidence, against a mock API server: pods (lifecycle, readiness,
//! restarts), events, EndpointSlices, re-lists and a deleted pod's last status.

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
fn aggregated_unhealthy_events_as_the_event_recorder_stores_them_still_say_what_the_probe_got() {
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
    let got: Vec<(bool, ProbeResult)> = d.probes.iter().map(|p| (p.ok, p.result.clone())).collect();
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
async fn an_expired_watch_relists_without_repeating_evidence_and_what_the_relist_lacks_is_gone() {
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
                "/events" => mock::list("EventList", "v1", vec![unhealthy("e1", a, refused, 1)]),
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
