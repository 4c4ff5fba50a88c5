//! Everything a run records, stamped with milliseconds since the run's clock started: every
//! response (phase, status, latency, which layer made it, Retry-After), probe results and replica
//! lifecycle events, ingress reloads, alert state changes, fault injection and heal times.
//! Judging (`judge`) and reports (`report`) read only this.
//!
//! Two halves, as a watcher and its store: [`Evidence`] (`recorder.rs`) is the shared handle the
//! run writes through while it lasts; [`EvidenceData`] and its record types (`data.rs`) are what
//! it recorded, taken once at the end ([`Evidence::finish`]) and only read after that.
//! Responses and acknowledged keys, which grow with the run's length, go to files as they
//! arrive (`responses.rs`: `responses.jsonl` in the report directory) and are read back by
//! streaming, never held in memory whole.

mod data;
mod recorder;
mod responses;

pub use data::*;
pub use recorder::Evidence;
pub use responses::{KeyLog, KeyReader, ResponseLog, Responses, FLUSH_EVERY};
