//! Loading a scenario: read the file, parse its TOML shape, resolve and load its system, run every
//! check (each error at file:line:col), and build the validated [`Scenario`] in named steps: the
//! system, the phases, the load, the expectations, the catches.

use super::locate::Locator;
use super::{
    fault, load_system, scenario, source, Catch, ExpectSpec, Load, LoadSpec, Phase, RequestSpec,
    Scenario, ScenarioFile, System, MAX_RATE, NO_SILENT_OUTAGE,
};
use crate::error::{BrownoutError, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where a byte offset sits in a text: 1-based line and column (the column in bytes).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// A file's text, to place errors at the span a parsed value came from.
#[derive(Clone, Copy)]
pub(super) struct Spans<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Spans<'_> {
    /// A bad-input error at `span`: "file:line:col: msg".
    pub fn at(&self, span: Range<usize>, msg: impl std::fmt::Display) -> BrownoutError {
        let (line, col) = line_col(self.text, span.start);
        BrownoutError::BadInput(format!("{}:{line}:{col}: {msg}", self.path.display()))
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    source::read_capped(path)
}

pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                // An error about a value 'X' located at the table holding it (a fault's fields
                // go through its `kind` tag, which loses their spans): point at the value.
                let value = msg
                    .split_once('\'')
                    .and_then(|(_, rest)| rest.split_once('\''))
                    .map(|(v, _)| v);
                let at = value
                    .filter(|_| span.len() > 1)
                    .and_then(|v| Locator::new(path, text).string_within(&span, v));
                Spans { path, text }.at(at.unwrap_or(span), msg)
            }
            None => BrownoutError::BadInput(format!("{}: {msg}", path.display())),
        }
    })
}

/// Loads and validates a scenario file and the system file it refers to.
pub fn load_scenario(path: &Path) -> Result<Scenario> {
    load_scenario_on(path, None)
}

/// Loads a scenario to run against `system` instead of the system file it names (the same
/// faults, load and expectations against another deployment of the app, or another rule set).
pub fn load_scenario_on(path: &Path, system_arg: Option<&Path>) -> Result<Scenario> {
    let text = read(path)?;
    scenario_from_text(path, &text, system_arg)
}

/// A scenario from its text (`path` names it in errors and resolves its system file).
pub fn scenario_from_text(path: &Path, text: &str, system_arg: Option<&Path>) -> Result<Scenario> {
    let file: ScenarioFile = parse_toml(path, text)?;
    let spans = Spans { path, text };
    let system = resolve_system(spans, &file, system_arg)?;
    let loc = Locator::new(path, text);
    scenario::check(&loc, &file, &system)?;
    let phases = phases(spans, &loc, &file, &system)?;
    let load = load(spans, &loc, &file.load)?;
    let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    let opt_out = file.silent_outages_allowed.as_ref().map(|r| r.span());
    check_expectations(
        &loc,
        &file.expect,
        &names,
        &file.load.requests,
        &system,
        opt_out,
    )?;
    let declares_catches = file.catches.is_some();
    let (expectations, silent_outages_allowed) =
        with_standing(&loc, file.expect, file.silent_outages_allowed)?;
    let catches = catches(spans, file.catches.iter().flatten(), &expectations, &system)?;
    Ok(Scenario {
        catches,
        declares_catches,
        regression: file.regression.unwrap_or_default(),
        name: file.name,
        summary: file.summary,
        path: path.to_path_buf(),
        load,
        phases,
        expectations,
        silent_outages_allowed,
        system,
        system_override: system_arg.is_some(),
        seed: file.seed,
    })
}

/// The system the scenario runs against: `--system` if given, else the file it names (relative
/// to the scenario), loaded and checked, with the scenario's ingress settings over its own.
fn resolve_system(spans: Spans, file: &ScenarioFile, system_arg: Option<&Path>) -> Result<System> {
    if let Some(system) = system_arg {
        if let Some(why) = source::not_a_file(system) {
            let why = if why == "does not exist" {
                "no such file".to_string()
            } else {
                why
            };
            return Err(BrownoutError::BadInput(format!(
                "--system {}: {why} (give the path of a system file, e.g. scenarios/systems/checkout.toml)",
                system.display()
            )));
        }
    }
    let system_path: PathBuf = match system_arg {
        Some(s) => s.to_path_buf(),
        None => spans
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(file.system.get_ref()),
    };
    if let Some(why) = source::not_a_file(&system_path) {
        return Err(spans.at(
            file.system.span(),
            format!("system file '{}' {why}", system_path.display()),
        ));
    }
    let mut system = load_system(&system_path)?;
    if let Some(o) = &file.ingress {
        let ingress = &mut system.file.ingress;
        if let Some(v) = o.fail_open {
            ingress.fail_open = v;
        }
        if let Some(v) = o.no_endpoints_retry_after {
            ingress.no_endpoints_retry_after = Some(v);
        }
    }
    Ok(system)
}

/// The phases: at least one, names unique, durations possible, each fault's targets (service,
/// proxy, requests, volume) ones the system and the load have.
fn phases(spans: Spans, loc: &Locator, file: &ScenarioFile, system: &System) -> Result<Vec<Phase>> {
    if file.phases.is_empty() {
        return Err(loc.at(
            crate::key_path!["phases"],
            "a scenario needs at least one [[phases]] entry",
        ));
    }
    let mut phases = Vec::new();
    for p in &file.phases {
        let name = p.name.get_ref().clone();
        if phases.iter().any(|q: &Phase| q.name == name) {
            return Err(spans.at(p.name.span(), format!("phase '{name}' is defined twice")));
        }
        let duration = p.duration.get_ref().get();
        if duration < Duration::from_secs(1) || duration > Duration::from_secs(6 * 3600) {
            return Err(spans.at(
                p.duration.span(),
                format!(
                    "phase duration '{}' is impossible: it must be between 1s and 6h",
                    p.duration.get_ref()
                ),
            ));
        }
        if let Some(fault) = &p.fault {
            fault::check_targets(fault.get_ref(), system, &file.load.requests, &name)
                .map_err(|msg| spans.at(fault.span(), msg))?;
        }
        phases.push(Phase {
            name,
            duration,
            fault: p.fault.as_ref().map(|f| f.get_ref().clone()),
        });
    }
    Ok(phases)
}

/// The load: rate and timeout in range, requests given and weighed, and the in-flight cap.
fn load(spans: Spans, loc: &Locator, spec: &LoadSpec) -> Result<Load> {
    let rate = *spec.rate.get_ref();
    if rate == 0 || rate > MAX_RATE {
        return Err(spans.at(
            spec.rate.span(),
            format!("load rate {rate} is out of range: 1 to {MAX_RATE} requests per second"),
        ));
    }
    let timeout = spec.timeout.get_ref().get();
    if timeout.is_zero() {
        return Err(spans.at(spec.timeout.span(), "load timeout must be above 0"));
    }
    if spec.requests.is_empty() {
        return Err(loc.at(
            crate::key_path!["load", "requests"],
            "[load] needs at least one [[load.requests]] entry",
        ));
    }
    let max_in_flight = spec
        .max_in_flight
        .unwrap_or_else(|| default_max_in_flight(rate, timeout));
    if max_in_flight == 0 {
        return Err(loc.at(
            crate::key_path!["load", "max_in_flight"],
            "[load] max_in_flight must be above 0",
        ));
    }
    if spec.requests.iter().all(|r| r.weight == 0) {
        return Err(loc.at(
            crate::key_path!["load", "requests"],
            "[load] every request has weight 0: give at least one a weight above 0",
        ));
    }
    Ok(Load {
        rate,
        max_in_flight,
        timeout,
        requests: spec.requests.clone(),
    })
}

/// `[load] max_in_flight` when the scenario does not give it: enough slots that `rate` holds even
/// when every send and a retry wait the full timeout.
pub fn default_max_in_flight(rate: u32, timeout: Duration) -> u32 {
    (rate as f64 * timeout.as_secs_f64() * 2.0)
        .ceil()
        .clamp(16.0, 100_000.0) as u32
}

/// The key of an `[[expect]]` entry that names `phase` (`during`, `phase` or `after`), so an
/// error about it is located at that value.
pub(super) fn phase_key(spec: &ExpectSpec) -> &'static str {
    match spec {
        ExpectSpec::Alert { .. } | ExpectSpec::Rollout { .. } | ExpectSpec::Terminations { .. } => {
            "phase"
        }
        ExpectSpec::Recovery { .. } => "after",
        _ => "during",
    }
}

/// The checks of expectations against each other, the phases, the load's requests and the
/// system, each located at the value it is about inside its `[[expect]]` entry (the `i`-th of
/// the file: a scenario's, or a game day's expect file's), or at the entry when no one value is
/// wrong. `opt_out` is the span of the scenario's `silent_outages_allowed`, if it has one.
pub(super) fn check_expectations(
    loc: &Locator,
    expect: &[Spanned<ExpectSpec>],
    phases: &[&str],
    requests: &[RequestSpec],
    system: &System,
    opt_out: Option<Range<usize>>,
) -> Result<()> {
    let mut ids = Vec::new();
    for (i, e) in expect.iter().enumerate() {
        let spec = e.get_ref();
        let at = |key: Option<&str>, msg: String| match key {
            Some(key) => loc.at(crate::key_path!["expect", i, key], msg),
            None => loc.at_span(e.span(), msg),
        };
        if ids.contains(&spec.id()) {
            return Err(at(
                Some("id"),
                format!("expectation id '{}' is used twice", spec.id()),
            ));
        }
        ids.push(spec.id());
        for phase in spec.phase_refs() {
            if !phases.contains(&phase) {
                return Err(at(
                    Some(phase_key(spec)),
                    format!(
                    "expectation '{}' refers to phase '{phase}', which does not exist (phases: {})",
                    spec.id(),
                    phases.join(", ")
                ),
                ));
            }
        }
        check_expectation(spec, requests, system, opt_out.clone()).map_err(|(msg, place)| {
            match place {
                Place::Span(span) => loc.at_span(span, msg),
                Place::Key(key) => at(Some(key), msg),
                Place::Entry => at(None, msg),
            }
        })?;
    }
    Ok(())
}

/// Where an expectation's error belongs: at one of its keys, at the entry, or elsewhere.
enum Place {
    Key(&'static str),
    Entry,
    Span(Range<usize>),
}

/// One expectation against the load's requests and the system: what is wrong, and where.
fn check_expectation(
    spec: &ExpectSpec,
    requests: &[RequestSpec],
    system: &System,
    opt_out: Option<Range<usize>>,
) -> std::result::Result<(), (String, Place)> {
    let at = |(key, msg): (&'static str, String)| (msg, Place::Key(key));
    check_one(spec, requests).map_err(at)?;
    if let (ExpectSpec::NoSilentOutage { .. }, Some(span)) = (spec, opt_out) {
        return Err((
            format!("silent_outages_allowed opts out of no-silent-outage, but expectation '{}' declares it: keep one of the two", spec.id()),
            Place::Span(span),
        ));
    }
    check_refs(spec, system).map_err(|(key, msg)| match key {
        Some(key) => (msg, Place::Key(key)),
        None => (msg, Place::Entry),
    })
}

/// The checks of one expectation up to (and with) its no-silent-outage settings: the key that
/// is wrong, and why.
fn check_one(
    spec: &ExpectSpec,
    requests: &[RequestSpec],
) -> std::result::Result<(), (&'static str, String)> {
    if let ExpectSpec::Latency { percentile, .. } = spec {
        if !(0.0..=100.0).contains(percentile) {
            return Err((
                "percentile",
                format!(
                    "expectation '{}': percentile {percentile} must be between 0 and 100",
                    spec.id()
                ),
            ));
        }
    }
    if let ExpectSpec::StatusCodes {
        request: Some(r), ..
    }
    | ExpectSpec::Latency {
        request: Some(r), ..
    } = spec
    {
        if !requests.iter().any(|q| q.name == *r) {
            return Err((
                "request",
                format!(
                    "expectation '{}' refers to request '{r}', which [load] does not have",
                    spec.id()
                ),
            ));
        }
    }
    if let ExpectSpec::NoSilentOutage {
        failure_share,
        min_answers,
        ..
    } = spec
    {
        if !(*failure_share > 0.0 && *failure_share < 1.0) {
            return Err(("failure_share", format!("expectation '{}': failure_share {failure_share} must be above 0 and below 1 (0.02 is 2%)", spec.id())));
        }
        if *min_answers == 0 {
            return Err((
                "min_answers",
                format!(
                    "expectation '{}': min_answers must be at least 1",
                    spec.id()
                ),
            ));
        }
    }
    Ok(())
}

/// The checks of one expectation against what the system declares: the key that is wrong (none:
/// the entry as a whole), and why.
fn check_refs(
    spec: &ExpectSpec,
    system: &System,
) -> std::result::Result<(), (Option<&'static str>, String)> {
    if matches!(spec, ExpectSpec::DataIntegrity { .. }) && system.file.integrity.is_none() {
        return Err((None, format!(
            "expectation '{}' checks data integrity, but the system '{}' declares no [integrity] (see the README)",
            spec.id(),
            system.name
        )));
    }
    if let ExpectSpec::Rollout { outcome, .. } = spec {
        use crate::evidence::RolloutState;
        if !matches!(
            outcome,
            RolloutState::Complete | RolloutState::Stalled | RolloutState::RolledBack
        ) {
            return Err((Some("outcome"), format!(
                "expectation '{}': outcome '{outcome}' must be \"complete\", \"stalled\" or \"rolled-back\"",
                spec.id()
            )));
        }
    }
    if let ExpectSpec::Readiness { service, .. }
    | ExpectSpec::Restarts { service, .. }
    | ExpectSpec::Rollout { service, .. }
    | ExpectSpec::Terminations { service, .. } = spec
    {
        if !system
            .file
            .services
            .iter()
            .any(|s| s.name.get_ref() == service)
        {
            return Err((Some("service"), format!(
                "expectation '{}' refers to service '{service}', which the system '{}' does not have",
                spec.id(),
                system.name
            )));
        }
    }
    Ok(())
}

/// The expectations to judge by: the ones written, plus the standing no-silent-outage unless one
/// is written or `silent_outages_allowed` gives a reason (the reason is returned).
pub(super) fn with_standing(
    loc: &Locator,
    expect: Vec<Spanned<ExpectSpec>>,
    silent_outages_allowed: Option<Spanned<String>>,
) -> Result<(Vec<ExpectSpec>, Option<String>)> {
    let reserved_id_taken = expect
        .iter()
        .position(|e| e.get_ref().id() == NO_SILENT_OUTAGE)
        .map(|i| loc.span(crate::key_path!["expect", i, "id"]));
    let mut expectations: Vec<ExpectSpec> = expect.into_iter().map(|e| e.into_inner()).collect();
    let silent_outages_allowed = match silent_outages_allowed {
        Some(reason) => {
            if reason.get_ref().trim().is_empty() {
                return Err(loc.at_span(
                    reason.span(),
                    "silent_outages_allowed needs a reason: say why this scenario may have an outage no alert pages for",
                ));
            }
            Some(reason.into_inner())
        }
        None => None,
    };
    if silent_outages_allowed.is_none()
        && !expectations
            .iter()
            .any(|e| matches!(e, ExpectSpec::NoSilentOutage { .. }))
    {
        if let Some(span) = reserved_id_taken {
            return Err(loc.at_span(
                span,
                format!("expectation id '{NO_SILENT_OUTAGE}' is reserved for the standing expectation of kind no-silent-outage: rename yours"),
            ));
        }
        expectations.push(ExpectSpec::default_no_silent_outage());
    }
    Ok((expectations, silent_outages_allowed))
}

/// `[catches]`: each bug one of the system's, each listing expectation ids of this scenario,
/// once each (sorted).
fn catches<'a>(
    spans: Spans,
    table: impl Iterator<Item = (&'a Spanned<String>, &'a Spanned<Vec<String>>)>,
    expectations: &[ExpectSpec],
    system: &System,
) -> Result<Vec<Catch>> {
    let mut catches = Vec::new();
    for (bug, ids) in table {
        let known: Vec<&String> = system
            .file
            .services
            .iter()
            .flat_map(|s| s.bugs.iter())
            .collect();
        if !known.contains(&bug.get_ref()) {
            return Err(spans.at(
                bug.span(),
                format!(
                    "catches: '{}' is not a bug of system '{}' (bugs: {})",
                    bug.get_ref(),
                    system.name,
                    known
                        .iter()
                        .map(|b| b.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if ids.get_ref().is_empty() {
            return Err(spans.at(ids.span(), format!("catches: bug '{}' lists no expectation: a caught bug fails at least one (list the ids it fails)", bug.get_ref())));
        }
        let mut fails: Vec<String> = Vec::new();
        for id in ids.get_ref() {
            if !expectations.iter().any(|e| e.id() == id) {
                let all: Vec<&str> = expectations.iter().map(|e| e.id()).collect();
                return Err(spans.at(ids.span(), format!("catches: bug '{}' lists '{id}', which is no expectation of this scenario (ids: {})", bug.get_ref(), all.join(", "))));
            }
            if fails.contains(id) {
                return Err(spans.at(
                    ids.span(),
                    format!("catches: bug '{}' lists '{id}' twice", bug.get_ref()),
                ));
            }
            fails.push(id.clone());
        }
        fails.sort();
        catches.push(Catch {
            bug: bug.get_ref().clone(),
            fails,
        });
    }
    Ok(catches)
}

/// Checks `--bug` names against the bugs the system's services declare.
pub fn check_bugs(system: &System, bugs: &[String]) -> Result<()> {
    let known: Vec<&String> = system
        .file
        .services
        .iter()
        .filter(|s| s.bug_env.is_some())
        .flat_map(|s| s.bugs.iter())
        .collect();
    if bugs.is_empty() {
        return Ok(());
    }
    if !system.file.services.iter().any(|s| s.bug_env.is_some()) {
        return Err(BrownoutError::BadInput(format!(
            "--bug given, but no service of system '{}' has a bug_env to receive it",
            system.name
        )));
    }
    for b in bugs {
        if !known.is_empty() && !known.contains(&b) {
            return Err(BrownoutError::BadInput(format!(
                "unknown bug '{b}' for system '{}' (known: {})",
                system.name,
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// Every `*.toml` scenario directly in `dir`, sorted by name.
pub fn scenario_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BrownoutError::BadInput(format!("{}: cannot list: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Resolves a scenario argument: a path to a file, or a name in `scenarios/`.
pub fn resolve_scenario(arg: &str, scenarios_dir: &Path) -> Result<PathBuf> {
    let as_path = PathBuf::from(arg);
    // A path that is there but cannot be read as a scenario (a symlink loop, a FIFO, a device) is
    // returned as it is, for the reader to name what it is rather than "unknown scenario".
    if as_path.is_file() || source::describe(&as_path).is_some_and(|d| d != "a directory") {
        return Ok(as_path);
    }
    let named = scenarios_dir.join(format!("{arg}.toml"));
    if named.is_file() {
        return Ok(named);
    }
    let known: Vec<String> = scenario_paths(scenarios_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .collect();
    Err(BrownoutError::BadInput(format!(
        "unknown scenario '{arg}': no file {} (known: {})",
        named.display(),
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
