//! `memory-limit`: every replica of a service gets a memory limit (no swap), as a container's
//! limit, for the phase: a replica whose memory outgrows it is killed by the kernel (SIGKILL, exit
//! 137 in a container), restarted by the supervisor, and its in-flight requests are lost. Healed:
//! the limit is lifted. Acts only through [`MemoryLimiter`] (the local platform puts each replica
//! in a memory cgroup of its own).

use crate::error::Result;
use crate::evidence::Evidence;
use crate::platform::MemoryLimiter;

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
