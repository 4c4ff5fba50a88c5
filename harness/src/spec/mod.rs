//! Scenario and system files: their TOML shape, loading, and validation. Every error names the
//! file, line and column and what is allowed (exit code 2). A scenario refers to a system file, which
//! describes the system under test once (services, replicas, commands, env, probes, grace periods,
//! volumes, the ingress route and the alert rules), so users can describe their own app the same way.
//!
//! The rooms: the shapes as written ([`ScenarioFile`] in `scenario_file`, [`ExpectSpec`] in
//! `expect`, [`SystemFile`] in `system_file`, the `[regression]` tolerances in `tolerance`, a
//! fault's in `fault`, durations and sizes in [`crate::units`]); the checks ([`crate::checks`] for single
//! values, `scenario` and `system` for a file's fields, located by [`locate`]); loading
//! (`loading`: a scenario file to a validated [`Scenario`]; `system`: a system file to a
//! [`System`]); the validated form (`model`); and [`gameday`], which checks a game day's
//! expectations and faults against a system loaded once.

mod expect;
mod fault;
pub mod gameday;
mod loading;
pub mod locate;
mod model;
pub mod rules;
mod scenario;
mod scenario_file;
pub mod source;
mod system;
mod system_file;
mod tolerance;

pub use expect::*;
pub use fault::*;
pub use loading::{
    check_bugs, default_max_in_flight, load_scenario, load_scenario_on, resolve_scenario,
    scenario_from_text, scenario_paths,
};
pub(crate) use loading::{parse_toml, read};
pub use model::*;
pub use scenario_file::*;
pub use system::load_system;
pub use system_file::*;
pub use tolerance::*;

pub use crate::units::{parse_duration, parse_size, Dur, Size, MAX_VOLUME_BYTES};
