//! The loaded, validated form the rest of the harness reads: a [`Scenario`] (its [`Load`],
//! [`Phase`]s, expectations and catches) and its [`System`], durations parsed and paths resolved.

use super::{rules, ExpectSpec, FaultSpec, RegressionSpec, RequestSpec, SystemFile};
use std::path::PathBuf;
use std::time::Duration;

/// A validated scenario with its system, durations parsed and paths resolved.
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub summary: String,
    pub path: PathBuf,
    pub load: Load,
    pub phases: Vec<Phase>,
    pub expectations: Vec<ExpectSpec>,
    /// Why this scenario opted out of the standing no-silent-outage expectation, if it did.
    pub silent_outages_allowed: Option<String>,
    pub system: System,
    /// The system file was given on the command line (`--system`), not named by the scenario.
    pub system_override: bool,
    /// Each bug this scenario catches, with the expectation ids it must fail (sorted).
    pub catches: Vec<Catch>,
    /// The file has a `[catches]` table (maybe empty): `prove` runs it.
    pub declares_catches: bool,
    /// Tolerances against a baseline run.
    pub regression: RegressionSpec,
    pub seed: u64,
}

/// A bug and exactly the expectations it must fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catch {
    pub bug: String,
    pub fails: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Load {
    pub rate: u32,
    pub max_in_flight: u32,
    pub timeout: Duration,
    pub requests: Vec<RequestSpec>,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub duration: Duration,
    pub fault: Option<FaultSpec>,
}

#[derive(Debug)]
pub struct System {
    pub name: String,
    pub path: PathBuf,
    pub file: SystemFile,
    pub rule_files: Vec<PathBuf>,
    /// The alerting rules its rule files define.
    pub alerts: Vec<rules::AlertRule>,
}

impl Scenario {
    pub fn phase_index(&self, name: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.name == name)
    }
    pub fn total_duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }
}

/// The highest load rate a scenario or game day may ask for (requests per second).
pub const MAX_RATE: u32 = 5000;

impl Load {
    /// Each request's weight in phase `phase` (0 for a request not sent there).
    pub fn weights_in(&self, phase: Option<&str>) -> Vec<usize> {
        self.requests
            .iter()
            .map(|r| if r.sent_in(phase) { r.weight } else { 0 })
            .collect()
    }
}
