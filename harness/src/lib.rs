//! Brownout: a chaos and load-testing harness that reproduces the failure modes behind HTTP 5xx
//! responses and judges whether a service and its operations stack behave correctly while they
//! happen. See the top-level README and `shared/DESIGN.md` for the big picture.

pub mod alerts;
pub mod coverage;
pub mod error;
pub mod evidence;
pub mod faults;
pub mod integrity;
pub mod judge;
pub mod load;
pub mod platform;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod report;
pub mod rollout;
pub mod runner;
pub mod spec;
pub mod stall;
pub mod summary;
pub mod tools;
pub mod workdir;
