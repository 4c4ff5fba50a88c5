//! What a game day offers for its system: every fault kind whose target the system has, with its
//! parameters in words, and ready-made presets. Generated from the kinds ([`faults::KINDS`]), so a
//! new kind appears here by itself; served as JSON by the control API (`GET /api/faults`) and
//! the page.

use crate::faults;
use serde::{Deserialize, Serialize};

pub use crate::faults::kind::Preset;

/// A fault kind the system can take, with its parameters in words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindInfo {
    pub kind: String,
    pub parameters: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub kinds: Vec<KindInfo>,
    pub presets: Vec<Preset>,
}

/// What the system supports: every fault kind whose target it has, and presets built from its
/// database, proxies, services and volumes.
pub fn catalog(system: &crate::spec::System) -> Catalog {
    let facts = crate::spec::system_facts(system);
    let mut kinds = Vec::new();
    let mut presets = Vec::new();
    for kind in faults::KINDS {
        if let Some(entry) = (kind.catalogue)(&facts) {
            kinds.push(KindInfo {
                kind: kind.name.into(),
                parameters: entry.parameters,
            });
            presets.extend(entry.presets);
        }
    }
    Catalog { kinds, presets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_offers_what_the_system_has() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/systems");
        let system = crate::spec::load_system(&dir.join("checkout.toml")).unwrap();
        let c = catalog(&system);
        let kinds: Vec<&str> = c.kinds.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "pool-exhaustion",
                "proxy",
                "rolling-restart",
                "rollout",
                "disk-full",
                "database-down",
                "memory-limit",
                "cpu-limit"
            ]
        );
        // Every preset is a fault the system accepts.
        let checks = crate::spec::gameday::FaultChecks::new(&system);
        for p in &c.presets {
            crate::spec::gameday::fault_for_gameday(&checks, &p.fault)
                .unwrap_or_else(|e| panic!("preset {}: {e}", p.name));
        }
        assert!(c.presets.iter().any(|p| p.name == "slow-payments"));
    }
}
