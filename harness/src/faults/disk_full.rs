//! `disk-full`: every replica's sized volume written full until the kernel answers ENOSPC, and
//! kept full while the fault lasts; healed by deleting what was written. Acts only through
//! [`VolumeFiller`] (the local platform mounts a real tmpfs per replica).

use super::kind::{
    Check, Entry, Fault, Kind, Prediction, Preset, Problem, RequestFacts, SystemFacts,
};
use crate::control::VolumeFiller;
use crate::error::Result;
use crate::evidence::Evidence;
use serde::Deserialize;

/// `{ kind = "disk-full", service, volume }`: fills the volume `volume` of every replica of
/// `service` until the kernel answers ENOSPC (healed: the filler is deleted). The volume must have
/// a `size` (a real small filesystem).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub service: String,
    pub volume: String,
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, _: &SystemFacts) -> std::result::Result<(), Problem> {
        Ok(())
    }
    /// The service has the volume, with a size.
    fn check_targets(&self, system: &SystemFacts, _: &[RequestFacts], _: &str) -> Check {
        let (service, volume) = (&self.service, &self.volume);
        if !system
            .service(service)
            .is_some_and(|s| s.sized_volumes.contains(volume))
        {
            return Err(format!("fault disk-full: service '{service}' has no volume '{volume}' with a size (a real small filesystem is needed)"));
        }
        Ok(())
    }
    fn predicts(&self) -> Prediction {
        Prediction {
            allowed: vec![503, 507],
            retry_after: vec![503, 507],
            why: "a full disk: 507 (or 503) with Retry-After from the app, never an unhandled 500",
            readiness_drops: false,
        }
    }
}

/// Every sized volume: (service, volume).
fn sized(system: &SystemFacts) -> Vec<(&str, &str)> {
    system
        .services
        .iter()
        .flat_map(|s| {
            s.sized_volumes
                .iter()
                .map(move |v| (s.name.as_str(), v.as_str()))
        })
        .collect()
}

pub const KIND: Kind = Kind {
    name: "disk-full",
    catalogue: |system| {
        let sized = sized(system);
        (!sized.is_empty()).then(|| Entry {
            parameters: "service, volume (one with a size)".into(),
            presets: sized
                .into_iter()
                .map(|(service, volume)| Preset {
                    name: format!("full-{volume}"),
                    fault: serde_json::json!({"kind": "disk-full", "service": service, "volume": volume}),
                })
                .collect(),
        })
    },
    example: |system| {
        sized(system).first().map(|(service, volume)| {
            format!("kind = \"disk-full\", service = \"{service}\", volume = \"{volume}\"")
        })
    },
};

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
