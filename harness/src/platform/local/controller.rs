//! The local platform's controller: a task that, every [`CONTROLLER_PERIOD`], forgets replicas
//! that have stopped (once their endpoint removal has propagated) and keeps the nginx upstreams,
//! the service addresses on the fault-proxy program and Prometheus' scrape targets in step with
//! the replica sets, the way Kubernetes' endpoint controllers do. Also [`Front`]: the ingress and
//! the controller that keeps it current, which start and stop together.

use super::nginx::Nginx;
use super::prometheus;
use super::services::{endpoints, routing, scrape_targets, SharedService};
use crate::evidence::Evidence;
use crate::fault_proxy::client::Client as ProxyClient;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the controller reconciles the ingress and the scrape targets.
const CONTROLLER_PERIOD: Duration = Duration::from_millis(100);

/// The ingress (nginx) and the controller task that keeps its upstreams current.
pub(super) struct Front {
    pub(super) nginx: Arc<tokio::sync::Mutex<Nginx>>,
    pub(super) controller: tokio::task::JoinHandle<()>,
}

/// The controller loop: forget stopped replicas, keep nginx upstreams, the service addresses'
/// endpoints (`(proxy name, service)` on the fault-proxy program) and scrape targets current.
pub(super) async fn control(
    services: Vec<(String, SharedService)>,
    routed: SharedService,
    propagation: Duration,
    nginx: Arc<tokio::sync::Mutex<Nginx>>,
    jobs: Vec<(SharedService, PathBuf)>,
    (client, addresses): (ProxyClient, Vec<(String, SharedService)>),
    evidence: Evidence,
) {
    let mut tick = tokio::time::interval(CONTROLLER_PERIOD);
    let mut written: BTreeMap<PathBuf, Vec<(String, String)>> = BTreeMap::new();
    let mut synced: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        tick.tick().await;
        for (_, svc) in &services {
            let mut s = svc.lock().expect("service lock");
            let finished: Vec<(String, u32)> = s
                .replicas
                .iter()
                // A terminated replica is forgotten only once its endpoint removal has reached
                // the ingress (propagation delay), even if its process exited earlier.
                .filter(|r| {
                    r.handle.is_finished()
                        && r.terminating
                            .is_none_or(|(since, _)| since.elapsed() >= propagation)
                })
                .map(|r| {
                    (
                        r.handle.name.clone(),
                        r.handle.restarts.load(Ordering::SeqCst),
                    )
                })
                .collect();
            for (name, restarts) in finished {
                s.restarts.insert(name.clone(), restarts);
                s.replicas.retain(|r| r.handle.name != name);
            }
        }
        let (ready, all) = routing(&routed.lock().expect("service lock"), propagation);
        nginx.lock().await.route_to(&ready, &all, &evidence);
        for (proxy, svc) in &addresses {
            let now = endpoints(&svc.lock().expect("service lock"), propagation);
            if synced.get(proxy) == Some(&now) {
                continue;
            }
            // Not marked synced when the call fails: the next tick tries again.
            match client.set_upstreams(proxy, &now).await {
                Ok(()) => {
                    evidence.event(format!("{proxy} endpoints: [{}]", now.join(", ")));
                    synced.insert(proxy.clone(), now);
                }
                Err(e) => evidence.event(format!("{proxy} endpoints not updated: {e}")),
            }
        }
        for (svc, file) in &jobs {
            let targets = scrape_targets(&svc.lock().expect("service lock"));
            if written.get(file) != Some(&targets) {
                let names: Vec<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
                evidence.event(format!(
                    "scrape targets {}: [{}]",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    names.join(", ")
                ));
                if let Err(e) = prometheus::write_targets(file, &targets) {
                    evidence.event(format!(
                        "cannot write scrape targets {}: {e}",
                        file.display()
                    ));
                }
                written.insert(file.clone(), targets);
            }
        }
    }
}
