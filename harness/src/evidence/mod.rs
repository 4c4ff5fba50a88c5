//! Everything a run records, stamped with milliseconds since the run's clock started: every
//! response (phase, status, latency, which layer made it, Retry-After), probe results and replica
//! lifecycle events, ingress reloads, alert state changes, fault injection and heal times.
//! Judging (`judge`) and reports (`report`) read only this.
//!
//! Two halves, as a watcher and its store: [`Evidence`] (`recorder.rs`) is the shared handle the
//! run writes through while it lasts; [`EvidenceData`] and its record types (`data.rs`) are what
//! it recorded, taken once at the end ([`Evidence::finish`]) and only read after that.

mod data;
mod recorder;

pub use data::*;
pub use recorder::Evidence;
