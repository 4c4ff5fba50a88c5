//! `cpu-limit`: every replica of a service gets a CPU quota, as a container's CPU limit, for the
//! phase: the kernel throttles a replica that uses its quota within a scheduling period (cgroup
//! `cpu.max` = "<quota> <period>"), so the app runs slower but is never killed. Healed: the quota
//! is lifted. Acts only through [`CpuLimiter`] (the local platform puts each replica in a cgroup of
//! its own; Kubernetes refuses it, see `platform::kube::refused::CPU_LIMIT`).
//!
//! What clients should see: slower answers. A throttled app that cannot finish work in time should
//! shed it itself, a fast 503 with Retry-After, rather than leave the ingress to give up (502/504):
//! no replica dies, so readiness need not drop.

use super::kind::{
    self, Check, Entry, Fault, Kind, Prediction, Preset, Problem, RequestFacts, SystemFacts,
};
use crate::control::CpuLimiter;
use crate::error::Result;
use crate::evidence::Evidence;
use serde::Deserialize;

/// The smallest and largest quota a fault may give, in CPUs.
pub const MIN_CPUS: f64 = 0.01;
pub const MAX_CPUS: f64 = 64.0;

/// `{ kind = "cpu-limit", service, cpus }`: every replica of `service` gets a CPU quota of `cpus`
/// CPUs (0.2: 20 ms of CPU time per 100 ms period), as a container's CPU limit: throttled, not
/// killed. Healed: lifted.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub service: String,
    pub cpus: f64,
}

impl Spec {
    /// The quota in thousandths of a CPU (what [`CpuLimiter`] takes), once checked.
    pub fn millicpus(&self) -> u32 {
        (self.cpus * 1000.0).round() as u32
    }
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, _: &SystemFacts) -> std::result::Result<(), Problem> {
        let cpus = self.cpus;
        if !(MIN_CPUS..=MAX_CPUS).contains(&cpus) {
            return Err(Problem::at(
                "cpus",
                format!("cpu limit of {cpus} CPUs is out of range: give between {MIN_CPUS} and {MAX_CPUS} (a hundredth of a CPU at least)"),
            ));
        }
        Ok(())
    }
    fn check_targets(&self, system: &SystemFacts, _: &[RequestFacts], _: &str) -> Check {
        kind::check_service(KIND.name, &self.service, system)
    }
    fn predicts(&self) -> Prediction {
        Prediction {
            allowed: vec![503],
            retry_after: vec![503],
            why: "a throttled app answers slower; work it cannot finish in time is a fast 503 with Retry-After from the app, never a 502/504 from the ingress",
            readiness_drops: false,
        }
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

pub const KIND: Kind = Kind {
    name: "cpu-limit",
    catalogue: |system| {
        (!system.services.is_empty()).then(|| Entry {
            parameters: "service, cpus (e.g. 0.2, between 0.01 and 64): every replica's CPU quota (throttled, not killed)".into(),
            presets: system
                .services
                .iter()
                .map(|s| Preset {
                    name: format!("throttle-{}", s.name),
                    fault: serde_json::json!({"kind": "cpu-limit", "service": s.name, "cpus": 0.1}),
                })
                .collect(),
        })
    },
    example: |system| {
        system
            .services
            .first()
            .map(|s| format!("kind = \"cpu-limit\", service = \"{}\", cpus = 0.2", s.name))
    },
};

#[derive(Debug)]
pub struct Limited {
    pub service: String,
    pub millicpus: u32,
}

pub async fn inject<P: CpuLimiter>(
    platform: &mut P,
    service: &str,
    millicpus: u32,
    evidence: &Evidence,
) -> Result<Limited> {
    platform
        .limit_cpu(service, Some(millicpus), evidence)
        .await?;
    Ok(Limited {
        service: service.to_string(),
        millicpus,
    })
}

pub async fn heal<P: CpuLimiter>(
    platform: &mut P,
    limited: Limited,
    evidence: &Evidence,
) -> Result<()> {
    platform.limit_cpu(&limited.service, None, evidence).await
}

pub fn describe(limited: &Limited) -> String {
    format!(
        "cpu-limit: every {} replica limited to {} CPUs",
        limited.service,
        limited.millicpus as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::fake::{Call, FakePlatform};
    use crate::faults::kind::testkit;

    fn spec(cpus: f64) -> Spec {
        Spec {
            service: "checkout".into(),
            cpus,
        }
    }

    #[test]
    fn cpus_must_be_between_a_hundredth_and_64() {
        let system = testkit::system();
        for ok in [0.01, 0.2, 1.0, 64.0] {
            assert_eq!(spec(ok).check(&system), Ok(()), "{ok}");
        }
        for bad in [0.0, 0.009, -1.0, 64.5, f64::NAN, f64::INFINITY] {
            let p = spec(bad).check(&system).unwrap_err();
            assert_eq!(p.field, "cpus");
            assert!(p.msg.contains("between 0.01 and 64"), "{bad}: {}", p.msg);
        }
        assert_eq!(spec(0.2).millicpus(), 200);
        assert_eq!(spec(0.01).millicpus(), 10);
    }

    #[test]
    fn the_service_must_be_the_systems() {
        let system = testkit::system();
        assert_eq!(spec(0.2).check_targets(&system, &[], "fault"), Ok(()));
        let mut s = spec(0.2);
        s.service = "nope".into();
        assert_eq!(
            s.check_targets(&system, &[], "fault").unwrap_err(),
            "fault cpu-limit refers to service 'nope', which the system 'shop' does not have"
        );
    }

    #[tokio::test]
    async fn limits_every_replica_then_lifts_it() {
        let mut p = FakePlatform::default();
        let ev = Evidence::new();
        let l = inject(&mut p, "checkout", 200, &ev).await.unwrap();
        assert_eq!(
            describe(&l),
            "cpu-limit: every checkout replica limited to 0.2 CPUs"
        );
        heal(&mut p, l, &ev).await.unwrap();
        assert_eq!(
            p.calls,
            vec![
                Call::LimitCpu("checkout".into(), Some(200)),
                Call::LimitCpu("checkout".into(), None)
            ]
        );
    }
}
