//! A fault as a scenario phase (`[phases.fault]`) or a game day's control API gives it. Its shape
//! and checks belong to its kind's module in [`crate::faults`] ([`FaultSpec`] is re-exported
//! here); this module gives the kinds what they check against ([`system_facts`], from the loaded
//! [`System`]) and places their errors (at a field, at the fault's table, or nowhere for a fault
//! that came as JSON). A proxy fault's `toxic` is the fault proxy's own wire type,
//! [`crate::fault_proxy::Toxic`].

use super::locate::Locator;
use super::{RequestSpec, System};
use crate::checks::Check;
use crate::error::Result;
use crate::faults::kind::{Problem, RequestFacts, ServiceFacts, SystemFacts};
use crate::key_path;

pub use crate::faults::FaultSpec;

/// What the fault kinds need to know of `system`.
pub fn system_facts(system: &System) -> SystemFacts {
    let f = &system.file;
    SystemFacts {
        name: system.name.clone(),
        has_database: f.database.is_some(),
        services: f
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ServiceFacts {
                name: s.name.get_ref().clone(),
                placeholders: super::system::known_placeholders(f, i),
                sized_volumes: s
                    .volumes
                    .iter()
                    .filter(|v| v.size.is_some())
                    .map(|v| v.name.clone())
                    .collect(),
            })
            .collect(),
        proxies: f.proxies.iter().map(|p| p.name.clone()).collect(),
        alerts: system.alerts.iter().map(|a| a.name.clone()).collect(),
    }
}

/// The checks of a fault's own fields (ranges, names, what the system must have for it): what is
/// wrong, prefixed "fault KIND: ", and the field it is about.
pub fn check_fields(f: &FaultSpec, system: &SystemFacts) -> std::result::Result<(), Problem> {
    f.fault().check(system).map_err(|p| Problem {
        field: p.field,
        msg: format!("fault {}: {}", f.kind(), p.msg),
    })
}

/// The checks of a fault's own fields, each located at the field (`phases[phase].fault.<field>`).
pub(super) fn check_fault(
    loc: &Locator,
    phase: usize,
    f: &FaultSpec,
    system: &System,
) -> Result<()> {
    check_fields(f, &system_facts(system))
        .map_err(|p| loc.at(key_path!["phases", phase, "fault", p.field], p.msg))
}

/// The checks of a fault against what the system and the load have, which name the fault as a
/// whole (located at its table): the service, proxy, requests or volume it refers to. `phase` is
/// the name of the phase the fault opens, `requests` the load's.
pub fn check_targets(
    f: &FaultSpec,
    system: &System,
    requests: &[RequestSpec],
    phase: &str,
) -> Check {
    let requests: Vec<RequestFacts> = requests
        .iter()
        .map(|r| RequestFacts {
            name: r.name.clone(),
            during: r.during.clone(),
        })
        .collect();
    f.fault()
        .check_targets(&system_facts(system), &requests, phase)
}
