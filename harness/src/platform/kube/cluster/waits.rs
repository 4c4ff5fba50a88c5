//! The bounded waits of a deploy: the Deployments available (all of them, or the apps' dependencies
//! first), the ingress routing to a replica, the host addresses answering; the error says what
//! was still pending and why the pods wait.

use super::render::Object;
use crate::error::{BrownoutError, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use std::time::{Duration, Instant};

/// Why a Deployment is not available yet, from its pods (e.g. `ImagePullBackOff`).
fn waiting_reasons(pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        for c in p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                out.push(format!(
                    "{name}: {}{}",
                    w.reason.clone().unwrap_or_default(),
                    w.message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            } else if !c.ready {
                out.push(format!("{name}: not ready, {} restarts", c.restart_count));
            }
        }
    }
    out
}

fn available(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.available_replicas.unwrap_or(0) == want
        && s.updated_replicas.unwrap_or(0) == want
}

/// `name a/n available`.
fn availability(d: &Deployment) -> String {
    let s = d.status.clone().unwrap_or_default();
    format!(
        "{} {}/{} available",
        d.metadata.name.clone().unwrap_or_default(),
        s.available_replicas.unwrap_or(0),
        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    )
}

/// Lists `namespace`'s Deployments every `every` until `pending` says nothing is (`None`), or
/// `within` has passed: then the error starts with `what`, says what was still pending and why
/// the pods wait.
async fn wait_deployments(
    client: &kube::Client,
    namespace: &str,
    what: &str,
    within: Duration,
    every: Duration,
    pending: impl Fn(&[Deployment]) -> Option<String>,
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let t0 = Instant::now();
    loop {
        let last = match api.list(&Default::default()).await {
            Ok(list) => match pending(&list.items) {
                None => return Ok(()),
                Some(last) => last,
            },
            Err(e) => e.to_string(),
        };
        if t0.elapsed() >= within {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let why = pods
                .list(&Default::default())
                .await
                .map(|l| waiting_reasons(&l.items))
                .unwrap_or_default();
            return Err(BrownoutError::Environment(format!(
                "{what} not ready within {:.0} s: {last}{}",
                within.as_secs_f64(),
                if why.is_empty() {
                    String::new()
                } else {
                    format!("; pods: {}", why.join("; "))
                }
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until every Deployment in `namespace` is available; the error names those that are
/// not and why their pods wait.
pub async fn wait_available(
    client: &kube::Client,
    namespace: &str,
    expected: usize,
    within: Duration,
    every: Duration,
) -> Result<()> {
    wait_deployments(
        client,
        namespace,
        "the Deployments",
        within,
        every,
        |items| {
            let not: Vec<&Deployment> = items.iter().filter(|d| !available(d)).collect();
            if items.len() >= expected && not.is_empty() {
                return None;
            }
            Some(
                not.iter()
                    .map(|d| availability(d))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        },
    )
    .await
}

/// The Deployments the apps depend on (the database, the fault proxy they reach it through).
const DEPENDENCIES: [&str; 2] = ["postgres", "fault-proxy"];

/// The objects in two applies: everything but the Deployments that are not dependencies, then
/// those (the apps, the ingress, Prometheus), each in the rendered order.
pub(super) fn deploy_phases(objects: &[Object]) -> (Vec<Object>, Vec<Object>) {
    objects.iter().cloned().partition(|o| match o {
        Object::Deployment(d) => DEPENDENCIES.contains(&d.metadata.name.as_deref().unwrap_or("")),
        _ => true,
    })
}

/// Waits until the Deployments named `names` in `namespace` are available (the others are
/// not looked at); the error names those that are not and why their pods wait.
pub async fn wait_named_available(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
    within: Duration,
    every: Duration,
) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let what = "the apps' dependencies";
    wait_deployments(client, namespace, what, within, every, |items| {
        let mine: Vec<&Deployment> = items
            .iter()
            .filter(|d| names.contains(d.metadata.name.as_ref().unwrap_or(&String::new())))
            .collect();
        if mine.len() == names.len() && mine.iter().all(|d| available(d)) {
            return None;
        }
        Some(
            names
                .iter()
                .filter_map(
                    |n| match mine.iter().find(|d| d.metadata.name.as_ref() == Some(n)) {
                        Some(d) if available(d) => None,
                        Some(d) => Some(availability(d)),
                        None => Some(format!("{n} not created")),
                    },
                )
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
    .await
}

/// Waits until the ingress at `url` proxies to a replica: its answer carries the upstream it
/// proxied to ([`crate::load::UPSTREAM_ADDR_HEADER`], set by the ingress, not by the app). An
/// answer without it is the ingress's own (the seed's no-endpoints 503 before the router has
/// written the pods' addresses into nginx): Deployments being available says nothing about that,
/// and a load started then would meet 503s no system made.
pub(super) async fn wait_routed(url: &str, within: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default();
    let t0 = Instant::now();
    loop {
        let last = match http.get(url).send().await {
            Ok(r) => {
                let upstream = r
                    .headers()
                    .get(crate::load::UPSTREAM_ADDR_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if !upstream.is_empty() && upstream != "-" {
                    return Ok(());
                }
                format!("it answered {} itself", r.status().as_u16())
            }
            Err(e) => e.to_string(),
        };
        if t0.elapsed() >= within {
            return Err(BrownoutError::Environment(format!(
                "the ingress at {url} did not route to a replica within {:.0} s ({last}); see the run's 'ingress upstreams' events and the ingress pod's log",
                within.as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `url` answers HTTP at all (any status), bounded.
pub(super) async fn wait_answers(url: &str, within: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default();
    let t0 = Instant::now();
    loop {
        match http.get(url).send().await {
            Ok(_) => return Ok(()),
            Err(e) if t0.elapsed() >= within => {
                return Err(BrownoutError::Environment(format!(
                    "{url} did not answer within {:.0} s ({e}); is the kind cluster created from kind-config/kind.yaml (its port mappings)?",
                    within.as_secs_f64()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
