//! Brownout: a chaos and load-testing harness that reproduces the failure modes behind HTTP 5xx
//! responses and judges whether a service and its operations stack behave correctly while they
//! happen. See the top-level README and `shared/DESIGN.md` for the big picture.
//!
//! # A tour, in the order data flows
//!
//! ```text
//! spec ──▶ runner ──▶ platform (deploy; faults act through its control traits)
//!  │          ├──▶ faults  (one file per kind: inject at a phase's start, heal at its end)
//!  │          ├──▶ load    (open-model sends at a constant rate) ──┐
//!  │          └──▶ alerts  (polls Prometheus' alerts API) ─────────┤
//!  │                                                               ▼
//!  └─────────────────────────────────────────▶ judge ◀── evidence (every response, probe,
//!                                               │          lifecycle event, alert state)
//!                                               ▼
//!                                            report ──▶ summary / coverage (many runs)
//! ```
//!
//! - [`spec`]: scenario and system files, validated (errors name file:line:col).
//! - [`runner`]: one run end to end, on any [`platform::Platform`]: a `Run` owns the lifecycle,
//!   a driver (a scenario's phases, or a game day's loop) opens the run's windows; the judge and
//!   the report read a [`plan`] (what the run was asked to do) and those windows.
//! - [`platform`]: the boundary. Its `local/` module runs everything as processes on 127.0.0.1 and
//!   holds all of its machinery (processes, PostgreSQL, nginx, mtail, Prometheus, the `fault-proxy`
//!   program and the service addresses it holds, rollouts, work dirs); no module outside it
//!   imports that machinery.
//! - [`faults`], [`load`], [`alerts`], [`integrity`]: what a run does to and observes of the system;
//!   [`fill`]: the disk-full writer, also the `fill-volume` program a pod runs.
//! - [`fault_proxy`]: the Toxiproxy-like TCP proxy, a program (`fault-proxy`) with an HTTP control
//!   API and a client of that API, so any platform can run it as a process or a pod. Its
//!   `Toxic` is at once the API's JSON, a scenario's `toxic = {...}` and what the proxy applies;
//!   it depends on nothing of the scenario format.
//! - [`units`]: durations and sizes as files and the wire write them ("6s", "16MiB").
//! - [`evidence`]: what a run recorded; [`judge`] reads only this (one module per expectation
//!   kind, plus `regression` against a baseline run); [`report`] writes it out (JSON, Markdown,
//!   a self-contained HTML page, JUnit).
//! - [`summary`], [`coverage`]: many runs at a glance (verdict stability, which alert rules fired).
//! - [`cli`], [`error`]: the command line (`run`, `prove`, `suite`, … over one session: runtime,
//!   Ctrl-C, baselines) and its exit codes; [`stall`]: the harness watching itself.

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
