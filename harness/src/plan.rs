//! What a run was asked to do, as the judge and the report read it: a [`Plan`] (its name, the
//! system it ran against, the load, the expectations, the regression tolerances), known before
//! the run starts, and the [`Window`]s its driver opened while it ran (a scenario's phases, or a
//! game day's fault windows), each with the fault that opened it. Built from a scenario
//! ([`Plan::of_scenario`]) or by a game day; never a scenario rewritten to fit.

use crate::spec::{ExpectSpec, FaultSpec, Load, RegressionSpec, Scenario};
use std::path::PathBuf;

/// What a run is asked to do, as judged and reported.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The report's `scenario`: a scenario's name, or `gameday-<system>`.
    pub name: String,
    pub summary: String,
    /// The system file the run deploys.
    pub system: PathBuf,
    /// That system file was given on the command line (`--system`), not named by the scenario.
    pub system_override: bool,
    /// The load: its rate, in-flight cap, timeout and requests (names and weights).
    pub load: Load,
    /// How the load's rate is set.
    pub pacing: Pacing,
    pub expectations: Vec<ExpectSpec>,
    /// Why the run opted out of the standing no-silent-outage expectation, if it did.
    pub silent_outages_allowed: Option<String>,
    /// Tolerances against a baseline run; `None` for a run that cannot be compared with one.
    pub regression: Option<RegressionSpec>,
}

/// How the load's arrival rate is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// The scenario's rate, all run long.
    Constant,
    /// Set by hand while the run goes (a game day's `rate`).
    ByHand,
}

impl Pacing {
    /// The report's `load.model`.
    pub fn describe(self) -> &'static str {
        match self {
            Pacing::Constant => "open: constant arrival rate, seeded stationary mix",
            Pacing::ByHand => {
                "open: arrival rate set by hand (see load.rates), seeded stationary mix"
            }
        }
    }
}

/// A named stretch of a run (a recorded phase), with the fault that opened it.
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    pub fault: Option<FaultSpec>,
}

impl Plan {
    /// A scenario's plan: everything it says but its phases, which its run opens as windows.
    pub fn of_scenario(s: &Scenario) -> Plan {
        Plan {
            name: s.name.clone(),
            summary: s.summary.clone(),
            system: s.system.path.clone(),
            system_override: s.system_override,
            load: s.load.clone(),
            pacing: Pacing::Constant,
            expectations: s.expectations.clone(),
            silent_outages_allowed: s.silent_outages_allowed.clone(),
            regression: Some(s.regression.clone()),
        }
    }

    /// The load's request names, in order (a response's `request` indexes them).
    pub fn request_names(&self) -> Vec<&str> {
        self.load.requests.iter().map(|r| r.name.as_str()).collect()
    }
}

/// How many windows come before the first one a fault opened (all of them when none did).
pub fn before_first_fault(windows: &[Window]) -> usize {
    windows
        .iter()
        .position(|w| w.fault.is_some())
        .unwrap_or(windows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(name: &str, fault: Option<FaultSpec>) -> Window {
        Window {
            name: name.into(),
            fault,
        }
    }

    #[test]
    fn a_scenarios_plan_says_what_the_scenario_says() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let s = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
        let p = Plan::of_scenario(&s);
        assert_eq!(p.name, "pool-exhaustion");
        assert_eq!(p.system, s.system.path);
        assert_eq!(p.expectations.len(), s.expectations.len());
        assert_eq!(p.request_names(), ["checkout", "catalog"]);
        assert_eq!(p.pacing.describe(), Pacing::Constant.describe());
        assert_eq!(p.regression.as_ref(), Some(&s.regression));
    }

    #[test]
    fn the_windows_before_the_first_fault_are_counted() {
        let fault = || {
            let f: crate::spec::FaultSpec = toml::from_str("kind = 'pool-exhaustion'").unwrap();
            Some(f)
        };
        assert_eq!(before_first_fault(&[]), 0);
        assert_eq!(
            before_first_fault(&[window("a", None), window("b", None)]),
            2
        );
        assert_eq!(
            before_first_fault(&[window("a", None), window("b", fault()), window("c", None)]),
            1
        );
        assert_eq!(before_first_fault(&[window("a", fault())]), 0);
    }
}
