//! The platform's deploy and teardown against a mock API server, and the helpers the other
//! kube tests share (a fast platform, a healthy cluster, deploy options).

use super::*;
use crate::evidence::Layer;
use crate::platform::kube::mock::{self, Reply, Seen};
use http::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(super) fn root() -> PathBuf {
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
    let deployments: Vec<serde_json::Value> = render::render(system, &RenderOptions::new("x", "x"))
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

#[tokio::test]
async fn deploy_applies_everything_waits_for_availability_and_teardown_deletes_the_namespace() {
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.report_dir.join("report.json")).unwrap())
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
