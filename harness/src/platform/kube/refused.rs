//! The faults the Kubernetes platform refuses, and why: the runner asks
//! [`crate::platform::Platform::supports`] for every fault of a scenario before anything is
//! deployed, so such a run ends at once with exit 3 and "not supported on this platform", never
//! as an aborted run. Refused: `memory-limit` ([`MEMORY_LIMIT`]) and `cpu-limit` ([`CPU_LIMIT`]).

use crate::spec::FaultSpec;

/// Why `memory-limit` is refused on Kubernetes (the text the refusal carries).
///
/// The fault needs a lower memory limit on replicas that are already running, enforced at once
/// by the kernel (a replica that goes over is OOM-killed), and every replica started later limited
/// too. On Kubernetes a container's memory limit is part of the pod spec:
///
/// - Changing it in the Deployment's template is a rollout: new pods replace the running ones,
///   a different fault (rollouts are their own fault here).
/// - In-place pod resize (the `pods/resize` subresource, KEP-1287, beta and on by default since
///   Kubernetes 1.33) changes a running pod's limit, but a decrease is best-effort: "Before
///   decreasing container memory limits, if memory usage exceeds the requested limit, the resize
///   will be skipped and the status will remain in an 'In Progress' state"
///   (https://kubernetes.io/docs/tasks/configure-pod-container/resize-container-resources/#limitations,
///   kubernetes/website content/en/docs/tasks/configure-pod-container/resize-container-resources.md;
///   kubernetes/enhancements keps/sig-node/1287-in-place-update-pod-resources). A replica whose
///   usage is over 64 MiB when the fault starts would keep its old limit: the fault would be
///   silently not injected on exactly the replica it is about, and the scenario would judge a
///   system that was never limited. It also acts per pod (a replica created later, e.g. after a
///   rollout, gets the template's limit) and needs a cluster of 1.33 or later.
///
/// So the fault is refused rather than half-done; it runs on the local platform (a cgroup v2
/// `memory.max` written directly, which the kernel enforces at once).
pub const MEMORY_LIMIT: &str = "a running container's memory limit cannot be lowered reliably on Kubernetes (a template change is a rollout, a different fault; an in-place resize (pods/resize) that lowers it is skipped while the container uses more than the new limit, so the limit may never apply); run it on the local platform";

/// Why `cpu-limit` is refused on Kubernetes (the text the refusal carries).
///
/// Unlike a memory limit, a lower CPU limit is applied in place without a restart by an in-place
/// pod resize (the `pods/resize` subresource, KEP-1287, beta and on by default since Kubernetes
/// 1.33; kubernetes.io "Resize CPU and Memory Resources assigned to Containers",
/// https://kubernetes.io/docs/tasks/configure-pod-container/resize-container-resources/). It
/// still cannot do this fault right here:
///
/// - The pods this platform deploys declare no resources (QoS class BestEffort), and a resize
///   cannot change a Pod's QoS class, so it cannot give them a CPU limit at all; and a limit,
///   once set, cannot be removed by a resize, so the fault could not be healed to what it was.
/// - A resize acts on the pods that exist: a replica created while the fault lasts (a rollout, a
///   rescheduled pod) gets the template's resources, unlimited. Changing the template instead is
///   a rollout, a different fault.
///
/// So it is refused rather than half-done; it runs on the local platform (cgroup `cpu.max`, or
/// `cpu.cfs_quota_us` on cgroup v1, written directly, which the scheduler enforces at once).
pub const CPU_LIMIT: &str = "a CPU limit cannot be set and lifted again on this platform's pods (they declare no resources, and an in-place resize (pods/resize) can neither change a pod's QoS class nor remove a limit once set; a template change is a rollout, a different fault); run it on the local platform";

/// Whether the Kubernetes platform can inject `fault`; `Err` says why not.
pub fn supports(fault: &FaultSpec) -> Result<(), String> {
    match fault {
        FaultSpec::MemoryLimit(_) => Err(MEMORY_LIMIT.into()),
        FaultSpec::CpuLimit(_) => Err(CPU_LIMIT.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{BrownoutError, Exit};
    use crate::platform::kube::cluster::{KubePlatform, Target};
    use crate::platform::kube::mock;
    use std::time::Duration;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `oom-kill` on Kubernetes: refused before anything is deployed (not one request reaches the
    /// API server, no report is written), exit 3, the message naming the platform and the fault
    /// and saying "not supported on this platform" (what `prove`, `suite` and the kind matrix key
    /// on). Why memory-limit cannot be had: [`MEMORY_LIMIT`]'s doc (in-place resize skips a
    /// decrease below current usage, kubernetes.io "Resize CPU and Memory Resources assigned to
    /// Containers", Limitations).
    #[tokio::test]
    async fn a_fault_kubernetes_cannot_do_is_refused_before_anything_is_deployed() {
        let scenario = crate::spec::load_scenario(&root().join("scenarios/oom-kill.toml")).unwrap();
        let (client, log) = mock::server(Box::new(mock::applied));
        let mut p = KubePlatform::new(Target::Client(client));
        // Were it deployed, the mock's Deployments never become available: fail fast.
        p.poll = Duration::from_millis(10);
        p.ready_within = Duration::from_millis(200);
        p.reachable_within = Duration::from_millis(200);
        let reports = tempfile::tempdir().unwrap();
        let opts = crate::runner::RunOptions {
            bugs: Vec::new(),
            reports_dir: reports.path().to_path_buf(),
            bin_dir: std::path::PathBuf::from("/nonexistent"),
            baseline: None,
        };
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let e = match crate::runner::run(&scenario, &mut p, &opts, rx).await {
            Ok(outcome) => panic!(
                "the run went ahead: {:?} ({:?})",
                outcome.report.verdict, outcome.report.aborted
            ),
            Err(e) => e,
        };
        assert!(
            matches!(&e, BrownoutError::NotSupported { platform, fault, .. }
                if platform == "kubernetes" && fault == "memory-limit"),
            "{e:?}"
        );
        assert_eq!(e.exit(), Exit::Environment, "exit 3");
        let text = e.to_string();
        assert!(
            text.starts_with("fault memory-limit is not supported on this platform (kubernetes): "),
            "{text}"
        );
        assert!(log.all().is_empty(), "nothing deployed: {:?}", log.all());
        assert_eq!(
            std::fs::read_dir(reports.path()).unwrap().count(),
            0,
            "no report of a run that never began"
        );
    }

    /// `cpu-limit` is refused too, with its reason (the in-place resize it would need cannot
    /// give a BestEffort pod a limit nor lift one; see [`CPU_LIMIT`]'s doc, which cites
    /// kubernetes.io "Resize CPU and Memory Resources assigned to Containers").
    #[test]
    fn cpu_limit_is_refused_with_its_reason() {
        let f: FaultSpec = toml::from_str::<toml::Table>(
            "fault = { kind = \"cpu-limit\", service = \"checkout\", cpus = 0.2 }",
        )
        .and_then(|t| t["fault"].clone().try_into())
        .unwrap();
        assert_eq!(supports(&f), Err(CPU_LIMIT.to_string()));
        assert!(CPU_LIMIT.contains("pods/resize"));
    }

    /// Every other fault of the shipped scenarios is one the platform does.
    #[test]
    fn only_memory_limit_is_refused_among_the_shipped_scenarios() {
        let mut refused = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(root().join("scenarios"))
            .unwrap()
            .flatten()
        {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let Ok(s) = crate::spec::load_scenario(&path) else {
                continue;
            };
            for f in s.phases.iter().filter_map(|p| p.fault.as_ref()) {
                if supports(f).is_err() {
                    refused.insert(f.kind());
                }
            }
        }
        assert_eq!(refused.into_iter().collect::<Vec<_>>(), ["memory-limit"]);
    }
}
