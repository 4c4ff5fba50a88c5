//! database-down on Kubernetes against a mock API server: postgres scaled to 0 and back, and
//! waited for until no pod is left.

use super::tests::{fast_platform, healthy_cluster, opts, root};
use super::*;
use crate::platform::kube::mock::{self, Reply, Seen};
use crate::platform::DatabaseControl;
use http::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
    let system = crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
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
            let events = ev.with(|d| d.events.iter().map(|e| e.what.clone()).collect::<Vec<_>>());
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
