//! Brownout: a chaos and load-testing harness that reproduces the failure modes behind HTTP 5xx
//! responses and judges whether a service and its operations stack behave correctly while they
//! happen. The top-level README says how to use it; `ARCHITECTURE.md` (at the repository's root)
//! is the map for changing it: the data flow, the rooms and what each may import (enforced by
//! `tests/architecture.rs`), and walk-throughs for adding a fault kind, an expectation kind and a
//! platform.
//!
//! # A tour, in the order data flows
//!
//! ```text
//! spec ──▶ plan ──▶ runner::Run (a Driver: a scenario's phases, or a game day's loop)
//!   │                  ├──▶ platform (deploy ▶ Endpoints, teardown; control traits: control)
//!   │                  ├──▶ faults  (one module per kind, injected and healed per window)
//!   │                  ├──▶ load    (open-model sends at a constant rate) ──┐
//!   │                  └──▶ alerts  (polls Prometheus' alerts API) ─────────┤
//!   │                                                                       ▼
//!   └───────────────────────────────────────────▶ judge ◀── evidence (recorder during the run,
//!                                                   │          read-only data after it)
//!                                                   ▼
//!                                                report ──▶ summary / coverage (many runs)
//! ```
//!
//! - [`spec`]: scenario, system and game-day input files, validated (errors name
//!   file:line:col); [`checks`]: the single-value rules they and the fault kinds share.
//! - [`plan`]: what a run was asked to do (expectations, request names, load) and the windows
//!   its driver opened; the judge and the report read this, never a scenario rewritten to fit.
//! - [`runner`]: one run end to end, on any [`platform::Platform`]: a `Run` owns the lifecycle
//!   (begin, bring up, drive, wind down, tear down, conclude) for scenarios and game days alike.
//! - [`platform`]: the boundary. Its `local/` module runs everything as processes on 127.0.0.1 and
//!   holds all of its machinery (processes, PostgreSQL, nginx, mtail, Prometheus, the `fault-proxy`
//!   program and the service addresses it holds, rollouts, cgroups, work dirs); no module outside
//!   it imports that machinery. Its `kube/` module runs the same on a kind cluster (or, opt-in,
//!   another cluster).
//! - [`control`]: the small traits faults act through, which every platform implements; it sits
//!   outside [`platform`] so that [`faults`] never imports the platform.
//! - [`faults`], [`load`], [`alerts`], [`integrity`]: what a run does to and observes of the
//!   system; [`fill`]: the disk-full writer, also the `fill-volume` program a pod runs.
//!   [`faults::KINDS`] lists the fault kinds; the game-day catalogue and `brownout new` are
//!   generated from it.
//! - [`fault_proxy`]: the Toxiproxy-like TCP proxy, a program (`fault-proxy`) with an HTTP control
//!   API and a client of that API, so any platform can run it as a process or a pod. Its
//!   `Toxic` is at once the API's JSON, a scenario's `toxic = {...}` and what the proxy applies;
//!   it depends on nothing of the scenario format.
//! - [`units`]: durations and sizes as files and the wire write them ("6s", "16MiB").
//! - [`evidence`]: what a run recorded; [`judge`] reads only this (one module per expectation
//!   kind, plus `regression` against a baseline run); [`report`] writes it out (JSON, Markdown,
//!   a self-contained HTML page, JUnit) and prints the terminal summary.
//! - [`gameday`]: a game day's driver (faults injected and healed by hand through a control API
//!   and a live page), its catalogue of faults and its windows.
//! - [`summary`], [`coverage`]: many runs at a glance (verdict stability, which alert rules fired).
//! - [`cli`], [`error`]: the command line (`run`, `prove`, `suite`, `gameday`, `new`, … over one
//!   session: runtime, Ctrl-C, baselines) and its exit codes; [`stall`]: the harness watching
//!   itself; [`confine`]: every path written stays under its base; [`tools`]: finding the system
//!   programs a run needs.

pub mod spec;

pub mod plan;
pub mod runner;

pub mod control;
pub mod platform;

pub mod alerts;
pub mod fault_proxy;
pub mod faults;
pub mod fill;
pub mod integrity;
pub mod load;

pub mod evidence;
pub mod judge;
pub mod report;

pub mod gameday;

pub mod coverage;
pub mod summary;

pub mod checks;
pub mod cli;
pub mod confine;
pub mod error;
pub mod stall;
pub mod tools;
pub mod units;
