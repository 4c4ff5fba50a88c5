//! The ingress's routing against a mock API server: upstreams from the EndpointSlices, written
//! into the nginx pod by exec, fail-open and the no-endpoints form.

use super::*;
use crate::platform::kube::mock::{self, Reply, Seen};
use crate::platform::kube::volumes::ExecOutput;
use crate::platform::kube::watch::Tracker;
use serde_json::{json, Value};
use std::sync::Mutex;

/// (pod, ip, ready, serving, terminating); `None` leaves a condition out (nil).
type Ep<'a> = (&'a str, &'a str, Option<bool>, Option<bool>, Option<bool>);

fn slice_json(name: &str, service: &str, family: &str, eps: &[Ep]) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(pod, ip, ready, serving, terminating)| {
            let mut c = serde_json::Map::new();
            for (k, v) in [
                ("ready", ready),
                ("serving", serving),
                ("terminating", terminating),
            ] {
                if let Some(v) = v {
                    c.insert(k.into(), json!(v));
                }
            }
            json!({"addresses": [ip], "conditions": c,
                "targetRef": {"kind": "Pod", "name": pod, "namespace": "brownout-r1"}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
        "metadata": {"name": name, "namespace": "brownout-r1", "resourceVersion": "103",
            "labels": {SERVICE_NAME_LABEL: service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints})
}

fn slice(name: &str, eps: &[Ep]) -> EndpointSlice {
    serde_json::from_value(slice_json(name, "checkout", "IPv4", eps)).unwrap()
}

const READY: (Option<bool>, Option<bool>, Option<bool>) = (Some(true), Some(true), Some(false));
const UNREADY: (Option<bool>, Option<bool>, Option<bool>) = (Some(false), Some(false), Some(false));
/// Terminating, still answering (in its pre-stop sleep).
const DRAINING: (Option<bool>, Option<bool>, Option<bool>) = (Some(false), Some(true), Some(true));

fn ep<'a>(pod: &'a str, ip: &'a str, c: (Option<bool>, Option<bool>, Option<bool>)) -> Ep<'a> {
    (pod, ip, c.0, c.1, c.2)
}

fn addrs(r: &Route) -> Vec<String> {
    r.upstreams.iter().map(ToString::to_string).collect()
}

/// The ready endpoints of every slice of the Service, once each. A Service's endpoints are
/// spread over several EndpointSlices, and "endpoints may be represented in more than one
/// EndpointSlice at the same time … clients … must iterate through all the existing
/// EndpointSlices associated to a Service and build a complete list of unique network
/// endpoints" (https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#duplicate-endpoints;
/// kube-proxy's EndpointSliceCache, kubernetes/kubernetes pkg/proxy/endpointslicecache.go).
/// `ready` mirrors the pod's Ready condition (…/endpoint-slices/#conditions); the
/// upstreams are pod addresses with the slice's port, which is the container's port. An
/// endpoint in two slices with different conditions (one copy not updated yet) is ready if
/// either copy says so: a passing moment of doubt does not empty the route.
#[test]
fn the_route_is_the_ready_pods_of_every_slice_of_the_service_once_each() {
    let a = slice(
        "checkout-abc",
        &[
            ep("checkout-a", "10.244.0.7", READY),
            ep("checkout-b", "10.244.0.8", UNREADY),
        ],
    );
    let b = slice(
        "checkout-def",
        &[
            ep("checkout-c", "10.244.0.9", READY),
            // Seen in both slices while it moves, this copy older: one upstream, ready.
            ep("checkout-a", "10.244.0.7", UNREADY),
        ],
    );
    let other: EndpointSlice = serde_json::from_value(slice_json(
        "payments-xyz",
        "payments",
        "IPv4",
        &[ep("payments-a", "10.244.0.20", READY)],
    ))
    .unwrap();
    let r = route([&a, &b, &other], "checkout", false);
    assert_eq!(r.mode, Mode::Ready);
    assert_eq!(addrs(&r), ["10.244.0.7:8080", "10.244.0.9:8080"]);
    assert_eq!(
        r.file(),
        "upstream backend {\n    server 10.244.0.7:8080 max_fails=0;\n    server 10.244.0.9:8080 max_fails=0;\n}\nmap $host $brownout_no_endpoints { default 0; }\n"
    );
    assert_eq!(
        r.event(),
        "ingress upstreams: [10.244.0.7:8080, 10.244.0.9:8080]"
    );
    // The same for fail_open: some are ready.
    assert_eq!(route([&a, &b, &other], "checkout", true), r);
}

/// With no endpoint ready and `fail_open`, every endpoint that is not terminating, as the
/// local platform routes to every live replica. Not what kube-proxy does: its fallback is to
/// serving-and-terminating endpoints only, never to merely unready ones (kubernetes/kubernetes
/// pkg/proxy/topology.go `CategorizeEndpoints`; KEP-1669), which is why the ingress cannot
/// go through the ClusterIP. Unready pods are in the slices with `ready: false`
/// (https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#conditions).
#[test]
fn with_none_ready_fail_open_routes_to_every_live_pod_and_not_to_terminating_ones() {
    let s = slice(
        "checkout-abc",
        &[
            ep("checkout-a", "10.244.0.7", UNREADY),
            ep("checkout-b", "10.244.0.8", DRAINING),
            ep("checkout-c", "10.244.0.9", UNREADY),
        ],
    );
    let r = route([&s], "checkout", true);
    assert_eq!(r.mode, Mode::FailOpen);
    assert_eq!(addrs(&r), ["10.244.0.7:8080", "10.244.0.9:8080"]);
    assert_eq!(
        r.event(),
        "ingress upstreams: [10.244.0.7:8080, 10.244.0.9:8080] (none ready: fail-open to all)"
    );
    assert!(r.file().contains("default 0;"), "{}", r.file());
    // Only terminating ones left: nothing to fail open to.
    let s = slice("checkout-abc", &[ep("checkout-b", "10.244.0.8", DRAINING)]);
    let r = route([&s], "checkout", true);
    assert_eq!((r.mode, r.upstreams.len()), (Mode::NoEndpoints, 0));
}

/// With no endpoint ready and not `fail_open`, the ingress answers 503 itself, with
/// `Retry-After` if the system sets one: the upstreams file's no-endpoints form sets
/// `$brownout_no_endpoints`, which the rendered nginx.conf turns into that 503. The same
/// file seeds the pod's `emptyDir`, so nginx starts (and answers 503) before the harness
/// has written anything. The upstreams file is not in the ConfigMap: mounted ConfigMaps are
/// refreshed only after the kubelet's sync period plus its cache TTL
/// (https://kubernetes.io/docs/concepts/configuration/configmap/#mounted-configmaps-are-updated-automatically).
#[test]
fn with_none_ready_and_not_fail_open_the_ingress_answers_503_with_retry_after() {
    let s = slice(
        "checkout-abc",
        &[
            ep("checkout-a", "10.244.0.7", UNREADY),
            ep("checkout-b", "10.244.0.8", DRAINING),
        ],
    );
    let r = route([&s], "checkout", false);
    assert_eq!(r.mode, Mode::NoEndpoints);
    assert_eq!(r.file(), crate::platform::nginx_conf::upstreams(&[]));
    assert!(r.file().contains("$brownout_no_endpoints { default 1; }"));
    assert_eq!(r.event(), "ingress upstreams: []");
    // No slice at all (the Service has no pod): the same.
    assert_eq!(route([], "checkout", true), r);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut system =
        crate::spec::load_system(&root.join("scenarios/systems/checkout.toml")).unwrap();
    system.file.ingress.no_endpoints_retry_after = Some(crate::spec::Dur::secs(2));
    let objects = crate::platform::kube::render::render(
        &system,
        &crate::platform::kube::render::RenderOptions::new("ns", "run"),
    )
    .unwrap();
    let config = objects
        .iter()
        .find_map(|o| match o {
            crate::platform::kube::render::Object::ConfigMap(c)
                if c.metadata.name.as_deref() == Some(INGRESS) =>
            {
                c.data.clone()
            }
            _ => None,
        })
        .unwrap();
    let conf = &config["nginx.conf"];
    assert!(
        conf.contains(
            "if ($brownout_no_endpoints) { add_header Retry-After 2 always; return 503; }"
        ),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("include {UPSTREAMS_FILE};")),
        "{conf}"
    );
    assert!(
        !config.contains_key("upstreams.conf"),
        "not from the ConfigMap"
    );
    assert_eq!(config["upstreams.seed.conf"], r.file());
}

/// A deleted slice takes its endpoints with it: the route is computed from the slices that
/// exist (the reflector's Store drops a slice on a watch DELETED event, and a re-list
/// replaces the whole set). Terminating pods leave the ready set at once: the endpoint
/// stays in the slice with `ready: false, serving: true, terminating: true` during its
/// grace period (https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#conditions).
/// Conditions left out are read as the API says: nil ready "should be interpreted as
/// ready", nil terminating as not terminating (k8s.io/api discovery/v1 types.go,
/// EndpointConditions). IPv6 addresses are written as nginx writes them, `[ip]:port`;
/// FQDN slices are not routed to.
#[test]
fn deleted_slices_terminating_pods_and_unset_conditions_follow_the_api() {
    let a = slice("checkout-abc", &[ep("checkout-a", "10.244.0.7", READY)]);
    let b = slice("checkout-def", &[ep("checkout-b", "10.244.0.8", READY)]);
    assert_eq!(route([&a, &b], "checkout", false).upstreams.len(), 2);
    assert_eq!(
        addrs(&route([&b], "checkout", false)),
        ["10.244.0.8:8080"],
        "checkout-abc deleted"
    );
    let b = slice("checkout-def", &[ep("checkout-b", "10.244.0.8", DRAINING)]);
    assert_eq!(
        addrs(&route([&a, &b], "checkout", false)),
        ["10.244.0.7:8080"]
    );
    let unset = slice(
        "checkout-abc",
        &[("checkout-a", "10.244.0.7", None, None, None)],
    );
    assert_eq!(
        addrs(&route([&unset], "checkout", false)),
        ["10.244.0.7:8080"]
    );
    let v6: EndpointSlice = serde_json::from_value(slice_json(
        "checkout-v6",
        "checkout",
        "IPv6",
        &[ep("checkout-a", "fd00:10:244::7", READY)],
    ))
    .unwrap();
    assert_eq!(
        addrs(&route([&v6], "checkout", false)),
        ["[fd00:10:244::7]:8080"]
    );
    let fqdn: EndpointSlice = serde_json::from_value(slice_json(
        "checkout-dns",
        "checkout",
        "FQDN",
        &[ep("checkout-a", "checkout.example", READY)],
    ))
    .unwrap();
    assert_eq!(route([&fqdn], "checkout", false).mode, Mode::NoEndpoints);
}

/// Attribution (issue 28, item 15): nginx logs `$upstream_addr` as `ip:port` (`[ip]:port`
/// for IPv6), every upstream tried separated by ", "
/// (https://nginx.org/en/docs/http/ngx_http_upstream_module.html#var_upstream_addr;
/// nginx src/core/ngx_inet.c `ngx_sock_ntop`). With pod addresses as upstreams, the header
/// the ingress adds maps to the pod through `Evidence::endpoint`, recorded in that exact
/// form from the EndpointSlices (each endpoint's `targetRef` names its pod), both by the
/// watches' tracker and by the router itself.
#[tokio::test]
async fn an_answer_maps_to_the_pod_whose_address_nginx_logged() {
    let s = slice(
        "checkout-abc",
        &[
            ep("checkout-a", "10.244.0.7", READY),
            ep("checkout-b", "10.244.0.8", READY),
        ],
    );
    let header = "10.244.0.7:8080, 10.244.0.8:8080";
    let (layer, last) = crate::load::attribute(Some(header), Some("0.004, 0.002"));
    assert_eq!(layer, crate::evidence::Layer::App);
    let last = last.unwrap();
    assert_eq!(
        last,
        route([&s], "checkout", false).upstreams[1].to_string()
    );

    let ev = Evidence::new();
    Tracker::new(ev.clone()).on_slice(&s);
    assert_eq!(ev.upstream(&last).1.as_deref(), Some("checkout-b"));

    let ev = Evidence::new();
    let v6: EndpointSlice = serde_json::from_value(slice_json(
        "checkout-v6",
        "checkout",
        "IPv6",
        &[ep("checkout-a", "fd00:10:244::7", READY)],
    ))
    .unwrap();
    let mut router = Router::new("checkout", true, ev.clone());
    let exec = FakeExec::default();
    let slices = [Arc::new(s), Arc::new(v6)];
    router.sync(&exec, &slices, &[]).await;
    assert_eq!(
        ev.upstream("10.244.0.8:8080").1.as_deref(),
        Some("checkout-b")
    );
    assert_eq!(
        ev.upstream("[fd00:10:244::7]:8080").1.as_deref(),
        Some("checkout-a")
    );
}

/// One exec: pod, container, argv.
type Call = (String, String, Vec<String>);

/// Records every exec; answers from `fail` (pod names whose next exec fails once).
#[derive(Default, Clone)]
struct FakeExec {
    calls: Arc<Mutex<Vec<Call>>>,
    fail: Arc<Mutex<Vec<String>>>,
}

impl FakeExec {
    /// The upstreams files written, by pod, in order.
    fn written(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(pod, _, argv)| (pod.clone(), argv[4].clone()))
            .collect()
    }
}

impl PodExec for FakeExec {
    type Held = ();
    async fn run(&self, pod: &str, container: &str, argv: &[String]) -> Result<ExecOutput> {
        self.calls
            .lock()
            .unwrap()
            .push((pod.into(), container.into(), argv.to_vec()));
        let mut fail = self.fail.lock().unwrap();
        if let Some(i) = fail.iter().position(|p| p == pod) {
            fail.remove(i);
            return Ok(ExecOutput {
                success: false,
                output: "nginx: [error] open() \"/tmp/nginx.pid\" failed (2: No such file or directory)\n".into(),
            });
        }
        Ok(ExecOutput {
            success: true,
            output: String::new(),
        })
    }
    async fn hold(&self, _: &str, _: &str, _: &[String]) -> Result<(String, ())> {
        unreachable!("the router never holds a program")
    }
}

fn ingress_pod(name: &str, restarts: i32, running: bool, deleting: bool) -> Value {
    let state = if running {
        json!({"running": {"startedAt": "2026-11-23T20:00:05Z"}})
    } else {
        json!({"waiting": {"reason": "ContainerCreating"}})
    };
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "brownout-r1", "resourceVersion": "104",
            "labels": {NAME_LABEL: INGRESS}},
        "spec": {"containers": [{"name": "nginx"}, {"name": "mtail"}]},
        "status": {"phase": if running {"Running"} else {"Pending"}, "containerStatuses": [
            {"name": "mtail", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {}}},
            {"name": "nginx", "ready": running, "restartCount": restarts, "image": "",
                "imageID": "", "state": state}]}});
    if deleting {
        p["metadata"]["deletionTimestamp"] = json!("2026-11-23T20:01:00Z");
    }
    p
}

fn pods(list: &[Value]) -> Vec<Arc<Pod>> {
    list.iter()
        .map(|p| Arc::new(serde_json::from_value(p.clone()).unwrap()))
        .collect()
}

fn events(ev: &Evidence) -> Vec<String> {
    ev.with(|d| d.events.iter().map(|e| e.what.clone()).collect())
}

/// The router writes a route into the running nginx once per change, by exec (the file as
/// an argument, renamed into place, then `nginx -s reload`: a reload re-reads the
/// configuration and replaces the workers gracefully, https://nginx.org/en/docs/control.html);
/// a pod not running yet or being deleted is not written to; a write that fails (nginx not
/// started: no pid file) is reported once and tried again; a restarted nginx container
/// (restartCount up: a new process, https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-restarts)
/// or a replacement pod gets the route again.
#[tokio::test]
async fn the_router_writes_each_change_into_every_running_nginx_and_again_after_a_restart() {
    let ev = Evidence::new();
    let exec = FakeExec::default();
    let mut router = Router::new("checkout", false, ev.clone());
    let both = [Arc::new(slice(
        "checkout-abc",
        &[
            ep("checkout-a", "10.244.0.7", READY),
            ep("checkout-b", "10.244.0.8", READY),
        ],
    ))];
    let one = [Arc::new(slice(
        "checkout-abc",
        &[
            ep("checkout-a", "10.244.0.7", UNREADY),
            ep("checkout-b", "10.244.0.8", READY),
        ],
    ))];
    let starting = pods(&[ingress_pod("ingress-x", 0, false, false)]);
    let running = pods(&[ingress_pod("ingress-x", 0, true, false)]);
    assert!(router.sync(&exec, &both, &starting).await);
    assert!(exec.written().is_empty(), "nginx not running yet");

    exec.fail.lock().unwrap().push("ingress-x".into());
    assert!(!router.sync(&exec, &both, &running).await, "to be retried");
    assert!(router.sync(&exec, &both, &running).await);
    assert!(router.sync(&exec, &both, &running).await);
    assert_eq!(
        exec.written().len(),
        2,
        "one failed write, one write, no more"
    );
    assert!(router.sync(&exec, &one, &running).await);

    let restarted = pods(&[ingress_pod("ingress-x", 1, true, false)]);
    assert!(router.sync(&exec, &one, &restarted).await);
    let replaced = pods(&[
        ingress_pod("ingress-x", 1, true, true),
        ingress_pod("ingress-y", 0, true, false),
    ]);
    assert!(router.sync(&exec, &one, &replaced).await);
    assert!(router.sync(&exec, &one, &replaced).await);

    let both_file = route(both.iter().map(|s| s.as_ref()), "checkout", false).file();
    let one_file = route(one.iter().map(|s| s.as_ref()), "checkout", false).file();
    let written: Vec<(String, String)> = exec.written();
    assert_eq!(
        written,
        [
            ("ingress-x".to_string(), both_file.clone()),
            ("ingress-x".into(), both_file),
            ("ingress-x".into(), one_file.clone()),
            ("ingress-x".into(), one_file.clone()),
            ("ingress-y".into(), one_file),
        ]
    );
    let (pod, container, argv) = exec.calls.lock().unwrap()[0].clone();
    assert_eq!((pod.as_str(), container.as_str()), ("ingress-x", "nginx"));
    assert_eq!(
        argv[..4],
        [
            "sh",
            "-c",
            "printf '%s' \"$1\" > /var/lib/brownout/upstreams.conf.tmp && mv -f /var/lib/brownout/upstreams.conf.tmp /var/lib/brownout/upstreams.conf && nginx -c /etc/brownout/nginx.conf -s reload",
            "sh"
        ]
    );
    assert_eq!(
        events(&ev),
        [
            "ingress: upstreams not written yet: writing the upstreams into ingress-x failed: nginx: [error] open() \"/tmp/nginx.pid\" failed (2: No such file or directory)",
            "ingress upstreams: [10.244.0.7:8080, 10.244.0.8:8080]",
            "ingress upstreams: [10.244.0.8:8080]",
            "ingress: nginx in ingress-x restarted, upstreams written again",
        ]
    );
}

/// The router against the mock API server: each reflector lists (the slices by their
/// `kubernetes.io/service-name` label, the ingress pods by the component label), then
/// watches from the list's resourceVersion; nothing is written before both have listed
/// (an empty Store is not "no endpoints"; a failed list is retried with backoff by kube's
/// watcher), a watch `DELETED` of a slice removes its
/// endpoints (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
#[tokio::test]
async fn the_router_follows_the_slices_watch_including_deletions() {
    let a = slice_json(
        "checkout-abc",
        "checkout",
        "IPv4",
        &[ep("checkout-a", "10.244.0.7", READY)],
    );
    let b = slice_json(
        "checkout-def",
        "checkout",
        "IPv4",
        &[ep("checkout-b", "10.244.0.8", READY)],
    );
    let mut slice_lists = 0;
    let answer: mock::Answer = Box::new(move |s: &Seen| {
        let path = s.path_and_query.as_str();
        if path.starts_with("/apis/discovery.k8s.io/v1/namespaces/brownout-r1/endpointslices") {
            if !s.is_watch() {
                slice_lists += 1;
                if slice_lists == 1 {
                    // The pods are listed, the slices not yet: nothing to write.
                    return mock::status(500, "InternalError", "etcd leader changed");
                }
                return mock::list(
                    "EndpointSliceList",
                    "discovery.k8s.io/v1",
                    vec![a.clone(), b.clone()],
                );
            }
            return Reply::Watch(vec![json!({"type": "DELETED", "object": a.clone()})]);
        }
        if path.starts_with("/api/v1/namespaces/brownout-r1/pods") {
            if !s.is_watch() {
                return mock::list(
                    "PodList",
                    "v1",
                    vec![ingress_pod("ingress-x", 0, true, false)],
                );
            }
            return Reply::Watch(vec![]);
        }
        mock::status(404, "NotFound", path)
    });
    let (client, log) = mock::server(answer);
    let ev = Evidence::new();
    let exec = FakeExec::default();
    let router = Router::new("checkout", false, ev.clone());
    let task = tokio::spawn(run(client, "brownout-r1".into(), router, exec.clone()));
    let want = route(
        [&serde_json::from_value::<EndpointSlice>(slice_json(
            "checkout-def",
            "checkout",
            "IPv4",
            &[ep("checkout-b", "10.244.0.8", READY)],
        ))
        .unwrap()],
        "checkout",
        false,
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while exec.written().last().map(|w| &w.1) != Some(&want.file()) {
        assert!(
            std::time::Instant::now() < until,
            "not routed to checkout-b alone: {:?} {:?}",
            exec.written(),
            log.all()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(
        !exec.written().iter().any(|(_, f)| f.contains("default 1;")),
        "never the empty route of a store not yet listed: {:?}",
        exec.written()
    );
    assert_eq!(
        events(&ev).last().map(String::as_str),
        Some("ingress upstreams: [10.244.0.8:8080]")
    );
    let seen = log.all();
    let slices: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path_and_query.contains("/endpointslices?"))
        .collect();
    assert!(
        slices[0]
            .path_and_query
            .contains("labelSelector=kubernetes.io%2Fservice-name%3Dcheckout"),
        "{slices:?}"
    );
    assert!(slices
        .iter()
        .any(|s| s.is_watch() && s.path_and_query.contains("resourceVersion=100")));
    assert!(seen.iter().any(|s| s.path_and_query.contains("/pods?")
        && s.path_and_query
            .contains("labelSelector=app.kubernetes.io%2Fname%3Dingress")));
}
