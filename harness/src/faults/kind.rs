//! What every fault kind knows besides inject/heal, and the registry of kinds ([`super::KINDS`]): its
//! checks against the system (as [`SystemFacts`], so this module never imports the scenario
//! format's types: `spec` depends on `faults`, never the other way), its game-day catalogue entry
//! and presets, and what `brownout new` predicts for it. The game-day catalogue and `brownout new`
//! are generated from [`super::KINDS`], so they cannot fall behind a new kind.

use serde::{Deserialize, Serialize};

/// What a check of a fault returns: nothing, or what is wrong (for the caller to locate).
pub type Check = std::result::Result<(), String>;

/// A check of one of a fault's fields failed: the field (where the caller locates it) and what
/// is wrong, without the "fault KIND: " prefix the caller adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub msg: String,
}

impl Problem {
    pub fn at(field: &'static str, msg: impl Into<String>) -> Problem {
        Problem {
            field,
            msg: msg.into(),
        }
    }
}

/// Placed at `field`: turns a plain [`Check`] into a located one.
pub fn at(field: &'static str, c: Check) -> std::result::Result<(), Problem> {
    c.map_err(|msg| Problem::at(field, msg))
}

/// What a fault's checks, presets and predictions need of the system under test (built by
/// `spec` from a loaded system file).
#[derive(Debug, Clone, Default)]
pub struct SystemFacts {
    pub name: String,
    pub has_database: bool,
    pub services: Vec<ServiceFacts>,
    /// The fault proxies' names.
    pub proxies: Vec<String>,
    /// The alerts its rule files define (as defined: not sorted, maybe repeated).
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceFacts {
    pub name: String,
    /// The `{placeholders}` its env may use.
    pub placeholders: Vec<String>,
    /// Its volumes with a size (a real filesystem that can fill up).
    pub sized_volumes: Vec<String>,
}

impl SystemFacts {
    pub fn service(&self, name: &str) -> Option<&ServiceFacts> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// A load request, as a `requests` fault needs it: its name and the phases it is limited to.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub name: String,
    pub during: Vec<String>,
}

/// A ready-made fault for a system (the game day page's preset list), in the control API's JSON
/// shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    pub fault: serde_json::Value,
}

/// A kind's entry in a system's game-day catalogue.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its parameters in words.
    pub parameters: String,
    pub presets: Vec<Preset>,
}

/// What clients should see while a fault lasts, as `brownout new` writes it into the fault
/// phase's expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// Statuses allowed besides 2xx.
    pub allowed: Vec<u16>,
    /// Statuses that must carry Retry-After.
    pub retry_after: Vec<u16>,
    /// Why, in one line (the expectation's comment).
    pub why: &'static str,
    /// The ingress service's replicas should turn not-ready (their dependency is gone).
    pub readiness_drops: bool,
}

impl Prediction {
    /// A dependency down or saturated.
    pub fn dependency_down(readiness_drops: bool) -> Prediction {
        Prediction {
            allowed: vec![503],
            retry_after: vec![503],
            why: "a dependency down or saturated: a fast 503 with Retry-After from the app, never a 502/504 from the ingress",
            readiness_drops,
        }
    }
}

/// What one fault of a kind knows of itself (each kind's `Spec` implements it; [`super::FaultSpec`]
/// dispatches to it).
pub trait Fault {
    /// Its `kind = "..."` name.
    fn kind(&self) -> &'static str;
    /// The checks of its own fields against the system (ranges, names, what the system must have
    /// for it), located at a field.
    fn check(&self, system: &SystemFacts) -> std::result::Result<(), Problem>;
    /// The checks of what it refers to (a service, proxy, volume or load request), located at the
    /// fault as a whole; `phase` is the phase it opens. The message is whole ("fault proxy refers
    /// to ...").
    fn check_targets(
        &self,
        _system: &SystemFacts,
        _requests: &[RequestFacts],
        _phase: &str,
    ) -> Check {
        Ok(())
    }
    /// What clients should see while it lasts.
    fn predicts(&self) -> Prediction;
    /// The service it acts on, if it names one.
    fn service(&self) -> Option<&str> {
        None
    }
    /// The load requests it adds to its phase (`brownout new` limits them to the fault phase).
    fn adds_requests(&self) -> &[String] {
        &[]
    }
}

/// One fault kind, as the catalogue and `brownout new` see it.
pub struct Kind {
    /// Its `kind = "..."` name.
    pub name: &'static str,
    /// Its catalogue entry for a system; `None` when the system has nothing it acts on, or a game
    /// day cannot inject it (say why in the kind's module).
    pub catalogue: fn(&SystemFacts) -> Option<Entry>,
    /// A fault of this kind for this system as `brownout new --fault` takes it (a scenario's
    /// inline table without the braces); `None` when the system has nothing it acts on.
    pub example: fn(&SystemFacts) -> Option<String>,
}

/// The service a fault names is one of the system's (located at the fault as a whole).
pub fn check_service(kind: &str, service: &str, system: &SystemFacts) -> Check {
    if system.service(service).is_none() {
        return Err(format!(
            "fault {kind} refers to service '{service}', which the system '{}' does not have",
            system.name
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testkit {
    use super::*;

    /// A system with every target a fault kind can have.
    pub fn system() -> SystemFacts {
        SystemFacts {
            name: "shop".into(),
            has_database: true,
            services: vec![
                ServiceFacts {
                    name: "checkout".into(),
                    placeholders: vec!["listen_addr".into()],
                    sized_volumes: vec!["receipts".into()],
                },
                ServiceFacts {
                    name: "payments".into(),
                    ..Default::default()
                },
            ],
            proxies: vec!["payments".into()],
            alerts: vec!["B".into(), "A".into(), "A".into()],
        }
    }
}
