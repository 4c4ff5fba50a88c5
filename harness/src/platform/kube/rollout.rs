//! Rollouts on Kubernetes, done as kubectl does them: a rollout re-applies the service's
//! Deployment with the changed pod template (server-side apply; the Deployment controller rolls
//! it with maxSurge 1 / maxUnavailable 0, as rendered); a rolling restart changes only the
//! template's `kubectl.kubernetes.io/restartedAt` annotation (what `kubectl rollout restart` and
//! kube's `Api::restart` set); the fault's progress deadline becomes `progressDeadlineSeconds`.
//! The outcome is read from the Deployment's status: complete when every replica is updated and
//! available and no old one is left; stalled when the controller reports `Progressing=False`
//! with reason `ProgressDeadlineExceeded`. There is no rollback call in the API: the previous
//! ReplicaSet's template (by the `deployment.kubernetes.io/revision` annotation) is applied
//! again, without its `pod-template-hash` label, as `kubectl rollout undo` does.

use super::apply::Cluster;
use super::render::{Object, NAME_LABEL};
use super::watch::Tracker;
use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, RolloutState};
use crate::platform::{RevisionChange, RolloutOutcome};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::EnvVar;
use kube::api::ListParams;
use kube::Api;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `deployment` with `change` made to its pod template (an empty change: a restart stamped
/// `now`), and `progress_deadline` (rounded up to whole seconds).
pub fn changed(
    deployment: &Deployment,
    change: &RevisionChange,
    progress_deadline: Duration,
    now: &str,
) -> Deployment {
    let mut d = deployment.clone();
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.progress_deadline_seconds = Some(progress_deadline.as_secs_f64().ceil().max(1.0) as i32);
    let template = &mut spec.template;
    if change.remove_env.is_empty() && change.set_env.is_empty() {
        template
            .metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(RESTARTED_AT.into(), now.into());
        return d;
    }
    if let Some(pod) = template.spec.as_mut() {
        if let Some(c) = pod.containers.first_mut() {
            let env = c.env.get_or_insert_with(Vec::new);
            env.retain(|e| !change.remove_env.contains(&e.name));
            for (k, v) in &change.set_env {
                match env.iter_mut().find(|e| &e.name == k) {
                    Some(e) => {
                        e.value = Some(v.clone());
                        e.value_from = None;
                    }
                    None => env.push(EnvVar {
                        name: k.clone(),
                        value: Some(v.clone()),
                        value_from: None,
                    }),
                }
            }
        }
    }
    d
}

fn name_of(d: &Deployment) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

/// What the Deployment's status says of the rollout: `Some(Ok(()))` complete, `Some(Err(()))`
/// stalled, `None` still going.
fn progress(d: &Deployment) -> Option<std::result::Result<(), ()>> {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.as_ref()?;
    // A condition from before the controller saw this generation (a stalled earlier rollout
    // keeps `ProgressDeadlineExceeded` until the new template is observed) says nothing yet.
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    if !observed {
        return None;
    }
    let stalled = status.conditions.as_ref().is_some_and(|cs| {
        cs.iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    });
    if stalled {
        return Some(Err(()));
    }
    let done = status.updated_replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want;
    done.then_some(Ok(()))
}

/// Applies `next` (the changed Deployment) and follows the rollout in the background, polling
/// the Deployment every `every`; bounded: without a verdict from the controller within the
/// progress deadline plus two minutes, the outcome is `Failed`.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    client: kube::Client,
    namespace: &str,
    service: &str,
    next: &Deployment,
    id: String,
    evidence: &Evidence,
    tracker: Arc<Mutex<Tracker>>,
    every: Duration,
) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
    Cluster::new(client.clone())
        .apply(&[Object::Deployment(next.clone())])
        .await?;
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    let name = name_of(next);
    let deadline = Duration::from_secs(
        next.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600)
            .max(1) as u64,
    );
    let (service, evidence) = (service.to_string(), evidence.clone());
    Ok(tokio::spawn(async move {
        let t0 = Instant::now();
        let bound = deadline + Duration::from_secs(120);
        let mut last_error = String::new();
        let outcome = loop {
            if t0.elapsed() > bound {
                break RolloutOutcome::Failed {
                    reason: format!(
                        "neither complete nor ProgressDeadlineExceeded after {:.0} s{}",
                        t0.elapsed().as_secs_f64(),
                        if last_error.is_empty() {
                            String::new()
                        } else {
                            format!(" (last API error: {last_error})")
                        }
                    ),
                };
            }
            match api.get(&name).await {
                Ok(d) => match progress(&d) {
                    Some(Ok(())) => break RolloutOutcome::Complete { took: t0.elapsed() },
                    Some(Err(())) => {
                        let stuck = tracker.lock().expect("tracker").stuck_pod(&service);
                        let (replica, restarts, last_log_line) = stuck.unwrap_or_else(|| {
                            ("(no pod of the new revision seen)".into(), 0, String::new())
                        });
                        break RolloutOutcome::Stalled {
                            replica,
                            waited: t0.elapsed(),
                            restarts,
                            last_log_line,
                        };
                    }
                    None => {}
                },
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(every).await;
        };
        evidence.rollout_ended(&id, outcome.state(), &outcome.describe());
        outcome
    }))
}

/// Rolls `current` back to the previous revision: the template of the ReplicaSet with the
/// highest revision below the Deployment's, re-applied. Returns the Deployment as applied.
pub async fn rollback(
    client: kube::Client,
    namespace: &str,
    current: &Deployment,
) -> Result<(Deployment, u64)> {
    let name = name_of(current);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let live = deployments.get(&name).await.map_err(|e| {
        BrownoutError::Environment(format!("rollback: cannot read Deployment {name}: {e}"))
    })?;
    let revision = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| -> u64 {
        m.annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    };
    let now = revision(&live.metadata);
    let uid = live.metadata.uid.clone();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let service = current
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NAME_LABEL))
        .cloned()
        .unwrap_or(name.clone());
    let list = sets
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={service}")))
        .await
        .map_err(|e| {
            BrownoutError::Environment(format!("rollback: cannot list ReplicaSets of {name}: {e}"))
        })?;
    let previous = list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|o| o.kind == "Deployment" && Some(&o.uid) == uid.as_ref())
            })
        })
        .filter(|rs| revision(&rs.metadata) < now)
        .max_by_key(|rs| revision(&rs.metadata))
        .ok_or_else(|| {
            BrownoutError::Environment(format!(
                "rollback: Deployment {name} has no revision before {now}"
            ))
        })?;
    let to = revision(&previous.metadata);
    let mut template = previous
        .spec
        .map(|s| s.template.unwrap_or_default())
        .unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let mut d = current.clone();
    d.spec.get_or_insert_with(Default::default).template = template;
    Cluster::new(client)
        .apply(&[Object::Deployment(d.clone())])
        .await?;
    Ok((d, to))
}

/// Records a rollback in the evidence.
pub fn record_rollback(evidence: &Evidence, id: &str, to: u64) {
    evidence.rollout_ended(
        id,
        RolloutState::RolledBack,
        &format!("rolled back to revision {to} (the previous ReplicaSet's template re-applied)"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kube::mock::{self, Reply, Seen};
    use crate::platform::kube::render::{render, RenderOptions};
    use http::{Method, StatusCode};
    use serde_json::{json, Value};

    /// The checkout Deployment as rendered from the sample system.
    fn checkout() -> Deployment {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let system =
            crate::spec::load_system(&root.join("scenarios/systems/checkout.toml")).unwrap();
        render(&system, &RenderOptions::new("brownout-r1", "r1"))
            .unwrap()
            .into_iter()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some("checkout") => Some(d),
                _ => None,
            })
            .unwrap()
    }

    fn env_names(d: &Value) -> Vec<String> {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_change_edits_the_template_and_a_restart_only_stamps_it() {
        let d = checkout();
        let mut change = RevisionChange::default();
        change.remove_env.push("DATABASE_URL".into());
        change.set_env.insert("DRAIN_DELAY_MS".into(), "0".into());
        change.set_env.insert("NEW_VAR".into(), "x".into());
        let next = changed(&d, &change, Duration::from_millis(4500), "t");
        let v = serde_json::to_value(&next).unwrap();
        let names = env_names(&v);
        assert!(!names.contains(&"DATABASE_URL".to_string()));
        assert!(names.contains(&"NEW_VAR".to_string()));
        let drain = v["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "DRAIN_DELAY_MS")
            .unwrap()
            .clone();
        assert_eq!(drain["value"], "0");
        assert_eq!(v["spec"]["progressDeadlineSeconds"], 5);
        assert!(env_names(&serde_json::to_value(&d).unwrap()).contains(&"DATABASE_URL".to_string()));

        let restart = changed(
            &d,
            &RevisionChange::default(),
            Duration::from_secs(20),
            "2026-11-23T20:00:00Z",
        );
        let v = serde_json::to_value(&restart).unwrap();
        assert_eq!(
            v["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
            "2026-11-23T20:00:00Z"
        );
        assert_eq!(env_names(&v), env_names(&serde_json::to_value(&d).unwrap()));
    }

    /// The Deployment controller keeps an earlier rollout's `Progressing=False /
    /// ProgressDeadlineExceeded` until it observes the new generation
    /// (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#failed-deployment;
    /// `status.observedGeneration`, pkg/controller/deployment/progress.go): the first look after
    /// a new apply can still carry it, and says nothing about the new rollout yet.
    #[test]
    fn a_stale_deadline_condition_from_an_older_generation_is_not_a_stall() {
        let d = checkout();
        let stale: Deployment =
            serde_json::from_value(with_status(&d, 3, stalled_status())).unwrap();
        assert_eq!(progress(&stale), None, "generation 3 not observed yet");
        let seen: Deployment =
            serde_json::from_value(with_status(&d, 2, stalled_status())).unwrap();
        assert_eq!(progress(&seen), Some(Err(())));
        let done: Deployment =
            serde_json::from_value(with_status(&d, 2, complete_status())).unwrap();
        assert_eq!(progress(&done), Some(Ok(())));
    }

    fn with_status(d: &Deployment, generation: i64, status: Value) -> Value {
        let mut v = serde_json::to_value(d).unwrap();
        v["metadata"]["generation"] = json!(generation);
        v["metadata"]["resourceVersion"] = json!("200");
        v["status"] = status;
        v
    }

    fn stalled_status() -> Value {
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
            "availableReplicas": 2, "unavailableReplicas": 1, "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"checkout-7c9f8d\" has timed out progressing."}]})
    }

    fn progressing_status() -> Value {
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
            "availableReplicas": 2, "conditions": [{"type": "Progressing", "status": "True",
            "reason": "ReplicaSetUpdated"}]})
    }

    fn complete_status() -> Value {
        json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
            "availableReplicas": 2, "conditions": [{"type": "Progressing", "status": "True",
            "reason": "NewReplicaSetAvailable"}]})
    }

    /// The API answers an apply with the object, then each GET with the next status.
    fn following(d: Deployment, statuses: Vec<Value>) -> mock::Answer {
        let mut statuses = statuses.into_iter();
        let mut last = Value::Null;
        Box::new(move |s: &Seen| match s.method {
            Method::PATCH => mock::applied(s),
            Method::GET => {
                if let Some(st) = statuses.next() {
                    last = st;
                }
                Reply::Json(StatusCode::OK, with_status(&d, 2, last.clone()))
            }
            _ => mock::status(405, "MethodNotAllowed", "unexpected"),
        })
    }

    #[tokio::test]
    async fn a_stalled_rollout_is_reported_with_the_pod_it_waits_for() {
        let mut change = RevisionChange::default();
        change.remove_env.push("DATABASE_URL".into());
        let next = changed(&checkout(), &change, Duration::from_secs(5), "t");
        let (client, log) = mock::server(following(
            next.clone(),
            vec![progressing_status(), progressing_status(), stalled_status()],
        ));
        let ev = Evidence::new();
        ev.rollout_started("checkout@r2", "checkout", &change.describe());
        let tracker = Arc::new(Mutex::new(Tracker::new(ev.clone())));
        {
            // The new revision's pod, crash-looping (as the pod watch would have reported it).
            let mut p = crate::platform::kube::watch::tests::pod("checkout-7c9f8d-q2w3e", false, 2);
            p["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 1,
                "message": "startup failed: required environment variable DATABASE_URL is not set"}});
            tracker
                .lock()
                .unwrap()
                .on_pod(&serde_json::from_value(p).unwrap());
        }
        let task = start(
            client,
            "brownout-r1",
            "checkout",
            &next,
            "checkout@r2".into(),
            &ev,
            tracker,
            Duration::from_millis(5),
        )
        .await
        .unwrap();
        let outcome = task.await.unwrap();
        let RolloutOutcome::Stalled {
            replica,
            restarts,
            last_log_line,
            ..
        } = &outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(replica, "checkout-7c9f8d-q2w3e");
        assert_eq!(*restarts, 2);
        assert!(last_log_line.contains("DATABASE_URL"), "{last_log_line}");
        let calls = log.calls();
        assert_eq!(calls[0].method, Method::PATCH);
        assert!(calls[0]
            .path_and_query
            .starts_with("/apis/apps/v1/namespaces/brownout-r1/deployments/checkout?"));
        assert!(!env_names(&calls[0].body).contains(&"DATABASE_URL".to_string()));
        assert_eq!(calls[0].body["spec"]["progressDeadlineSeconds"], 5);
        assert_eq!(
            calls.len(),
            1 + 3,
            "one apply, then GETs until the controller said stalled"
        );
        let r = ev.with(|d| d.rollouts.clone());
        assert_eq!(r[0].outcome, RolloutState::Stalled);
    }

    #[tokio::test]
    async fn a_rollout_completes_when_every_replica_is_updated_and_available() {
        let next = changed(
            &checkout(),
            &RevisionChange::default(),
            Duration::from_secs(20),
            "t",
        );
        let (client, log) = mock::server(following(
            next.clone(),
            vec![progressing_status(), complete_status()],
        ));
        let ev = Evidence::new();
        ev.rollout_started("checkout@r2", "checkout", "restart (same spec)");
        let tracker = Arc::new(Mutex::new(Tracker::new(ev.clone())));
        let task = start(
            client,
            "brownout-r1",
            "checkout",
            &next,
            "checkout@r2".into(),
            &ev,
            tracker,
            Duration::from_millis(5),
        )
        .await
        .unwrap();
        assert!(matches!(
            task.await.unwrap(),
            RolloutOutcome::Complete { .. }
        ));
        assert_eq!(log.calls().len(), 3);
        assert_eq!(ev.with(|d| d.rollouts[0].outcome), RolloutState::Complete);
    }

    #[tokio::test]
    async fn rollback_applies_the_previous_replica_sets_template_as_kubectl_does() {
        let current = checkout();
        let mut bad = RevisionChange::default();
        bad.remove_env.push("DATABASE_URL".into());
        let template_of =
            |d: &Deployment| serde_json::to_value(&d.spec.as_ref().unwrap().template).unwrap();
        let rs = |rev: u32, owner: &str, template: Value| {
            let mut t = template;
            t["metadata"]["labels"]["pod-template-hash"] = json!(format!("h{rev}"));
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("checkout-h{rev}"), "namespace": "brownout-r1",
                    "annotations": {REVISION_ANNOTATION: rev.to_string()},
                    "labels": {NAME_LABEL: "checkout", "pod-template-hash": format!("h{rev}")},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": owner, "controller": true}]},
                "spec": {"replicas": 0, "selector": {"matchLabels": {NAME_LABEL: "checkout"}}, "template": t}})
        };
        let good = template_of(&current);
        let mut older = good.clone();
        older["metadata"]["annotations"] = json!({RESTARTED_AT: "2026-11-23T19:00:00Z"});
        let sets = vec![
            rs(1, "uid-1", older),
            rs(2, "uid-1", good.clone()),
            rs(
                3,
                "uid-1",
                template_of(&changed(&current, &bad, Duration::from_secs(5), "t")),
            ),
            rs(
                2,
                "uid-of-a-deleted-deployment",
                json!({"metadata": {"labels": {}}, "spec": {"containers": []}}),
            ),
        ];
        let live = {
            let mut v = serde_json::to_value(&current).unwrap();
            v["metadata"]["uid"] = json!("uid-1");
            v["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "3"});
            v
        };
        let (client, log) = mock::server(Box::new(move |s: &Seen| match s.method {
            Method::GET if s.path_and_query.contains("/replicasets") => {
                mock::list("ReplicaSetList", "apps/v1", sets.clone())
            }
            Method::GET => Reply::Json(StatusCode::OK, live.clone()),
            Method::PATCH => mock::applied(s),
            _ => mock::status(405, "MethodNotAllowed", "unexpected"),
        }));
        let (applied, to) = rollback(client, "brownout-r1", &current).await.unwrap();
        assert_eq!(to, 2);
        let calls = log.calls();
        assert!(
            calls[1]
                .path_and_query
                .contains("labelSelector=app.kubernetes.io%2Fname%3Dcheckout"),
            "{}",
            calls[1].path_and_query
        );
        let sent = &calls[2].body["spec"]["template"];
        assert_eq!(
            sent, &good,
            "the template of revision 2, without pod-template-hash"
        );
        assert!(env_names(&calls[2].body).contains(&"DATABASE_URL".to_string()));
        assert_eq!(template_of(&applied), good);

        // With no earlier revision there is nothing to roll back to: said, not ignored.
        let (client, _) = mock::server(Box::new(move |s: &Seen| match s.method {
            Method::GET if s.path_and_query.contains("/replicasets") => {
                mock::list("ReplicaSetList", "apps/v1", vec![])
            }
            _ => Reply::Json(StatusCode::OK, serde_json::to_value(checkout()).unwrap()),
        }));
        let e = rollback(client, "brownout-r1", &checkout())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no revision before"), "{e}");
    }
}
