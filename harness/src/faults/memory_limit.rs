//! `memory-limit`: every replica of a service gets a memory limit (no swap), as a container's
//! limit, for the phase: a replica whose memory outgrows it is killed by the kernel (SIGKILL, exit
//! 137 in a container), restarted by the supervisor, and its in-flight requests are lost. Healed:
//! the limit is lifted. Acts only through [`MemoryLimiter`] (the local platform puts each replica
//! in a memory cgroup of its own).

use super::kind::{
    self, Check, Entry, Fault, Kind, Prediction, Preset, Problem, RequestFacts, SystemFacts,
};
use crate::control::MemoryLimiter;
use crate::error::Result;
use crate::evidence::Evidence;
use crate::units::MemSize;
use serde::Deserialize;

/// `{ kind = "memory-limit", service, limit }`: every replica of `service` gets a memory limit of
/// `limit` (no swap), as a container's memory limit: one that goes over is killed by the kernel
/// (OOM kill). Healed: lifted.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub service: String,
    pub limit: MemSize,
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, _: &SystemFacts) -> std::result::Result<(), Problem> {
        crate::units::check_memory(self.limit.0).map_err(|msg| Problem::at("limit", msg))
    }
    fn check_targets(&self, system: &SystemFacts, _: &[RequestFacts], _: &str) -> Check {
        kind::check_service(KIND.name, &self.service, system)
    }
    fn predicts(&self) -> Prediction {
        Prediction {
            allowed: vec![413, 503],
            retry_after: vec![503],
            why: "requests that would outgrow the memory limit are refused before allocating; no replica is killed",
            readiness_drops: false,
        }
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

pub const KIND: Kind = Kind {
    name: "memory-limit",
    catalogue: |system| {
        (!system.services.is_empty()).then(|| Entry {
            parameters: "service, limit (e.g. \"64MiB\", at least \"8MiB\"): every replica's memory limit (no swap; over it, the kernel kills the replica)".into(),
            presets: system
                .services
                .iter()
                .map(|s| Preset {
                    name: format!("oom-{}", s.name),
                    fault: serde_json::json!({"kind": "memory-limit", "service": s.name, "limit": "64MiB"}),
                })
                .collect(),
        })
    },
    example: |system| {
        system.services.first().map(|s| {
            format!(
                "kind = \"memory-limit\", service = \"{}\", limit = \"64MiB\"",
                s.name
            )
        })
    },
};

#[derive(Debug)]
pub struct Limited {
    pub service: String,
    pub bytes: u64,
}

pub async fn inject<P: MemoryLimiter>(
    platform: &mut P,
    service: &str,
    bytes: u64,
    evidence: &Evidence,
) -> Result<Limited> {
    platform
        .limit_memory(service, Some(bytes), evidence)
        .await?;
    Ok(Limited {
        service: service.to_string(),
        bytes,
    })
}

pub async fn heal<P: MemoryLimiter>(
    platform: &mut P,
    limited: Limited,
    evidence: &Evidence,
) -> Result<()> {
    platform
        .limit_memory(&limited.service, None, evidence)
        .await
}

pub fn describe(limited: &Limited) -> String {
    format!(
        "memory-limit: every {} replica limited to {} MiB",
        limited.service,
        limited.bytes >> 20
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::fake::{Call, FakePlatform};

    #[tokio::test]
    async fn limits_every_replica_then_lifts_it() {
        let mut p = FakePlatform::default();
        let ev = Evidence::new();
        let l = inject(&mut p, "checkout", 96 << 20, &ev).await.unwrap();
        assert_eq!(
            describe(&l),
            "memory-limit: every checkout replica limited to 96 MiB"
        );
        heal(&mut p, l, &ev).await.unwrap();
        assert_eq!(
            p.calls,
            vec![
                Call::LimitMemory("checkout".into(), Some(96 << 20)),
                Call::LimitMemory("checkout".into(), None)
            ]
        );
    }
}
