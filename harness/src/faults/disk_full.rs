//! `disk-full`: every replica's sized volume written full until the kernel answers ENOSPC, and
//! kept full while the fault lasts; healed by deleting what was written. Acts only through
//! [`VolumeFiller`] (the local platform mounts a real tmpfs per replica).

use crate::error::Result;
use crate::evidence::Evidence;
use crate::platform::VolumeFiller;

#[derive(Debug)]
pub struct Filled {
    pub service: String,
    pub volume: String,
}

pub async fn inject<P: VolumeFiller>(
    platform: &mut P,
    service: &str,
    volume: &str,
    evidence: &Evidence,
) -> Result<Filled> {
    platform.fill_volume(service, volume, evidence).await?;
    Ok(Filled {
        service: service.to_string(),
        volume: volume.to_string(),
    })
}

pub async fn heal<P: VolumeFiller>(platform: &mut P, filled: Filled, evidence: &Evidence) {
    platform
        .free_volume(&filled.service, &filled.volume, evidence)
        .await
}

pub fn describe(filled: &Filled) -> String {
    format!(
        "disk-full: volume {} of every {} replica at ENOSPC",
        filled.volume, filled.service
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::fake::{Call, FakePlatform};

    #[tokio::test]
    async fn fills_every_replica_then_frees_it() {
        let mut p = FakePlatform::default();
        let ev = Evidence::new();
        let f = inject(&mut p, "checkout", "receipts", &ev).await.unwrap();
        assert_eq!(
            describe(&f),
            "disk-full: volume receipts of every checkout replica at ENOSPC"
        );
        heal(&mut p, f, &ev).await;
        assert_eq!(
            p.calls,
            vec![
                Call::Fill("checkout".into(), "receipts".into()),
                Call::Free("checkout".into(), "receipts".into())
            ]
        );
    }
}
