//! `database-down`: the system's database server stops for the phase (a fast shutdown: open
//! sessions are ended, new connections refused) and starts again at heal, on the same address with
//! the same data, as after a failover or a crash-restart. Acts only through [`DatabaseControl`]
//! (the local platform stops and restarts its PostgreSQL; a cluster scales its database to 0 and
//! back). Dropped un-healed, the platform's teardown stops the database anyway.

use super::kind::{Entry, Fault, Kind, Prediction, Preset, Problem, SystemFacts};
use crate::control::DatabaseControl;
use crate::error::Result;
use crate::evidence::Evidence;
use serde::Deserialize;

/// `{ kind = "database-down" }`: the system's database server stops (fast shutdown: sessions
/// ended, connections refused) for the phase, and starts again (same address, same data) at heal.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, system: &SystemFacts) -> std::result::Result<(), Problem> {
        if !system.has_database {
            return Err(Problem::at(
                "kind",
                "fault database-down needs a [database] in the system file",
            ));
        }
        Ok(())
    }
    fn predicts(&self) -> Prediction {
        Prediction::dependency_down(true)
    }
}

pub const KIND: Kind = Kind {
    name: "database-down",
    catalogue: |system| {
        system.has_database.then(|| Entry {
            parameters: "none: the database server stops (connections refused), and starts again at heal with the same data".into(),
            presets: vec![Preset {
                name: "db-down".into(),
                fault: serde_json::json!({"kind": "database-down"}),
            }],
        })
    },
    example: |system| {
        system
            .has_database
            .then(|| "kind = \"database-down\"".into())
    },
};

/// The database is stopped until healed.
#[derive(Debug)]
pub struct Stopped;

pub async fn inject<P: DatabaseControl>(platform: &mut P, evidence: &Evidence) -> Result<Stopped> {
    platform.stop_database(evidence).await?;
    Ok(Stopped)
}

pub async fn heal<P: DatabaseControl>(
    platform: &mut P,
    _stopped: Stopped,
    evidence: &Evidence,
) -> Result<()> {
    platform.start_database(evidence).await
}

pub fn describe() -> String {
    "database-down: the database server is stopped (connections refused)".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::fake::{Call, FakePlatform};

    #[tokio::test]
    async fn stops_the_database_then_starts_it_again() {
        let mut p = FakePlatform::default();
        let ev = Evidence::new();
        let s = inject(&mut p, &ev).await.unwrap();
        assert_eq!(p.calls, vec![Call::StopDatabase]);
        heal(&mut p, s, &ev).await.unwrap();
        assert_eq!(p.calls, vec![Call::StopDatabase, Call::StartDatabase]);
    }
}
