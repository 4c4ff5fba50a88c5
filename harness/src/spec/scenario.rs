//! The checks of a scenario file that go beyond its TOML shape: safe names, HTTP methods, request
//! paths on the system under test only, JSON bodies, every number and duration in range, alerts
//! that a rule file defines, and faults the system can take (each kind's checks are its own, in
//! [`crate::faults`]; [`super::fault`] places their errors). Each error at file:line:col.

use super::fault::check_fault;
use super::locate::{Locator, Seg};
use super::{ExpectSpec, ScenarioFile, System};
use crate::checks::{self, secs, Check, HOUR};
use crate::error::Result;
use crate::key_path;
use std::time::Duration;

pub(super) fn check(loc: &Locator, file: &ScenarioFile, system: &System) -> Result<()> {
    let at = |keys: &[Seg], r: Check| r.map_err(|msg| loc.at(keys, msg));
    at(key_path!["name"], checks::name("scenario name", &file.name))?;
    for (i, p) in file.phases.iter().enumerate() {
        at(
            key_path!["phases", i, "name"],
            checks::name("phase name", p.name.get_ref()),
        )?;
        if let Some(f) = &p.fault {
            check_fault(loc, i, f.get_ref(), system)?;
        }
    }
    check_load(loc, file)?;
    for (i, e) in file.expect.iter().enumerate() {
        check_expectation(loc, i, e.get_ref(), system)?;
        check_settle(loc, i, e.get_ref(), file)?;
    }
    Ok(())
}

/// A `settle` as long as its phase (or longer) leaves no answer to judge: the expectation could
/// never fail, so it is refused.
fn check_settle(loc: &Locator, i: usize, e: &ExpectSpec, file: &ScenarioFile) -> Result<()> {
    let ExpectSpec::StatusCodes {
        id,
        during,
        settle: Some(settle),
        ..
    } = e
    else {
        return Ok(());
    };
    let Some(phase) = file.phases.iter().find(|p| p.name.get_ref() == during) else {
        return Ok(());
    };
    let length = *phase.duration.get_ref();
    if *settle >= length {
        return Err(loc.at(
            key_path!["expect", i, "settle"],
            format!("expectation '{id}': settle {settle} is as long as phase '{during}' ({length}) or longer, so no answer would be judged: make it shorter than the phase"),
        ));
    }
    Ok(())
}

fn check_load(loc: &Locator, file: &ScenarioFile) -> Result<()> {
    let at = |keys: &[Seg], r: Check| r.map_err(|msg| loc.at(keys, msg));
    let load = &file.load;
    at(
        key_path!["load", "timeout"],
        checks::duration(
            "load timeout",
            load.timeout.get_ref().get(),
            Duration::from_millis(1),
            secs(300),
        ),
    )?;
    if let Some(m) = load.max_in_flight {
        at(
            key_path!["load", "max_in_flight"],
            checks::number("max_in_flight", m, 1, 100_000),
        )?;
    }
    for (i, r) in load.requests.iter().enumerate() {
        let req = |field: &'static str, c: Check| {
            at(key_path!["load", "requests", i, field], c)
                .map_err(|e| prefix(e, &format!("request '{}': ", r.name)))
        };
        at(
            key_path!["load", "requests", i, "name"],
            checks::name("request name", &r.name),
        )?;
        if load.requests[..i].iter().any(|q| q.name == r.name) {
            return Err(loc.at(
                key_path!["load", "requests", i, "name"],
                format!(
                    "request name '{}' is used twice: expectations and reports tell requests apart by name",
                    r.name
                ),
            ));
        }
        req("method", checks::method(&r.method))?;
        req("path", checks::request_path("path", &r.path))?;
        if let Some(body) = &r.body {
            req(
                "body",
                serde_json::from_str::<serde_json::Value>(body)
                    .map(|_| ())
                    .map_err(|e| format!("body is not JSON ({e}); it is sent as application/json")),
            )?;
            if r.method == "GET" || r.method == "HEAD" {
                req(
                    "body",
                    Err(format!(
                        "a {} request has no body: use POST, PUT or PATCH",
                        r.method
                    )),
                )?;
            }
        }
        req(
            "weight",
            checks::number("weight", r.weight, 1, 1000)
                .map_err(|e| format!("{e} (to leave a request out, delete it)")),
        )?;
        if r.during.is_empty() && loc.has(key_path!["load", "requests", i, "during"]) {
            req(
                "during",
                Err("during lists no phase, so the request would never be sent: name its phases, or leave `during` off to send it in every phase".into()),
            )?;
        }
        for d in &r.during {
            if !file.phases.iter().any(|p| p.name.get_ref() == d) {
                let known: Vec<&str> = file
                    .phases
                    .iter()
                    .map(|p| p.name.get_ref().as_str())
                    .collect();
                req(
                    "during",
                    Err(format!(
                        "during names phase '{d}', which the scenario does not have (phases: {})",
                        known.join(", ")
                    )),
                )?;
            }
        }
        if let Some(retry) = &r.retry {
            req("retry", checks::number("retry max", retry.max, 1, 10))?;
            if retry.on.is_empty() {
                req(
                    "retry",
                    Err("retry.on lists no status: give the statuses to retry, e.g. [503]".into()),
                )?;
            }
            for s in &retry.on {
                req("retry", checks::status("retry.on", *s))?;
            }
        }
    }
    if !load.requests.is_empty() && load.requests.iter().all(|r| !r.during.is_empty()) {
        return Err(loc.at(
            key_path!["load", "requests", 0, "during"],
            "every request has `during`, so some moments would send nothing: leave `during` off at least one request (it is then sent in every phase)",
        ));
    }
    Ok(())
}

fn prefix(e: crate::error::BrownoutError, what: &str) -> crate::error::BrownoutError {
    // Insert after "file:line:col: ".
    let text = e.to_string();
    let cut = text.match_indices(": ").next().map_or(0, |(i, _)| i + 2);
    crate::error::BrownoutError::BadInput(format!("{}{what}{}", &text[..cut], &text[cut..]))
}

pub(super) fn check_expectation(
    loc: &Locator,
    i: usize,
    e: &ExpectSpec,
    system: &System,
) -> Result<()> {
    let id = e.id();
    let at = |field: &str, c: Check| {
        c.map_err(|msg| {
            loc.at(
                key_path!["expect", i, field],
                format!("expectation '{id}': {msg}"),
            )
        })
    };
    at("id", checks::name("id", id))?;
    let within = |what: &str, d: super::Dur| checks::duration(what, d.get(), Duration::ZERO, HOUR);
    match e {
        ExpectSpec::StatusCodes {
            allowed,
            retry_after,
            from_app,
            from_ingress,
            settle,
            ..
        } => {
            if *from_app && *from_ingress {
                at(
                    "from_ingress",
                    Err("from_app and from_ingress both set: no answer can be made by both; keep the one the phase expects".into()),
                )?;
            }
            if let Some(d) = settle {
                at("settle", within("settle", *d))?;
            }
            if allowed.is_empty() {
                at(
                    "allowed",
                    Err(
                        "allowed lists no status: every answer would fail it (e.g. [200, 201])"
                            .into(),
                    ),
                )?;
            }
            for s in allowed {
                at("allowed", checks::status("allowed", *s))?;
            }
            for s in retry_after {
                at("retry_after", checks::status("retry_after", *s))?;
                if !allowed.contains(s) {
                    at(
                        "retry_after",
                        Err(format!(
                            "retry_after lists {s}, which allowed does not: add it to allowed"
                        )),
                    )?;
                }
            }
        }
        ExpectSpec::Latency {
            percentile, below, ..
        } => {
            if !(*percentile > 0.0 && *percentile <= 100.0) {
                at(
                    "percentile",
                    Err(format!(
                        "percentile {percentile} must be above 0 and at most 100 (e.g. 99)"
                    )),
                )?;
            }
            at(
                "below",
                checks::duration("below", below.get(), Duration::from_millis(1), HOUR),
            )?;
        }
        ExpectSpec::Readiness {
            drops_within,
            recovers_within,
            ..
        } => {
            at("drops_within", within("drops_within", *drops_within))?;
            at(
                "recovers_within",
                within("recovers_within", *recovers_within),
            )?;
        }
        ExpectSpec::Restarts { max, .. } => at("max", checks::number("max", *max, 0, 10_000))?,
        ExpectSpec::Alert {
            alert,
            fires_within,
            clears_within,
            ..
        } => {
            if !system.alerts.iter().any(|a| a.name == *alert) {
                let mut names: Vec<&str> = system.alerts.iter().map(|a| a.name.as_str()).collect();
                names.sort();
                names.dedup();
                at(
                    "alert",
                    Err(if names.is_empty() {
                        format!(
                            "alert '{}' is in no rule file: the system '{}' has none ([prometheus] rule_files)",
                            alert.escape_debug(),
                            system.name
                        )
                    } else {
                        format!(
                            "alert '{}' is in no rule file of the system '{}' (alerts: {})",
                            alert.escape_debug(),
                            system.name,
                            names.join(", ")
                        )
                    }),
                )?;
            }
            at("fires_within", within("fires_within", *fires_within))?;
            at("clears_within", within("clears_within", *clears_within))?;
        }
        ExpectSpec::Recovery { within: w, .. } => at("within", within("within", *w))?,
        ExpectSpec::Rollout {
            within: Some(w), ..
        } => at("within", within("within", *w))?,
        ExpectSpec::NoSilentOutage {
            window,
            page_within,
            page_severities,
            min_answers,
            ..
        } => {
            at(
                "window",
                checks::duration("window", window.get(), secs(1), HOUR),
            )?;
            at("page_within", within("page_within", *page_within))?;
            if page_severities.is_empty() || page_severities.iter().any(|s| s.trim().is_empty()) {
                at(
                    "page_severities",
                    Err(
                        "page_severities must list severity labels, e.g. [\"page\", \"critical\"]"
                            .into(),
                    ),
                )?;
            }
            at(
                "min_answers",
                checks::number("min_answers", *min_answers, 1, 1_000_000),
            )?;
        }
        _ => {}
    }
    Ok(())
}
