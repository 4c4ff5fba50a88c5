//! What a game day reads: the load (the `[load]` of a scenario file, run against the game day's
//! system), the expectations to judge it by (a file of `[[expect]]`), and faults given by hand
//! (the same shape as a scenario's `[phases.fault]`, as JSON). Each is checked as a typed value
//! against the system loaded once when the game day starts, by the same checks a scenario's go
//! through, so a fault or expectation a scenario may not have, a game day may not have either.

use super::loading::{check_expectations, parse_toml, with_standing};
use super::locate::Locator;
use super::{fault, scenario, ExpectSpec, FaultSpec, Scenario};
use crate::checks;
use crate::error::Result;
use crate::faults::kind::SystemFacts;
use std::path::Path;
use toml::Spanned;

/// The scenario file whose `[load]` a game day drives, loaded against `system` (its own system
/// file, phases and expectations are not used).
pub fn load_for_gameday(scenario: &Path, system: &Path) -> Result<Scenario> {
    super::load_scenario_on(scenario, Some(system))
}

/// The phase a game day's expectations are judged in before any fault: the first window.
const STEADY: &str = "steady";

/// The expectations to judge a game day by: a file of `[[expect]]` entries, exactly as in a
/// scenario, checked against the load (request names) and the system (services, alerts) of
/// `load`, the game day's load as [`load_for_gameday`] gave it. A phase they name is a window:
/// `steady`, `steady-2`, … or a fault's name as it will be injected (`during = "slow-pay"`); one
/// that never becomes a window fails at the end, saying so. Without the standing
/// no-silent-outage, it is added (as in a scenario). Errors name the expect file's line and column.
pub fn expectations_for_gameday(expect: &Path, load: &Scenario) -> Result<Vec<ExpectSpec>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ExpectFile {
        #[serde(default)]
        expect: Vec<Spanned<ExpectSpec>>,
    }
    let text = super::source::read_capped(expect)?;
    let parsed: ExpectFile = parse_toml(expect, &text)?;
    // Every phase the expectations name is one they may name (it becomes a window or fails at
    // the end), if it can be a window's name.
    let loc = Locator::new(expect, &text);
    let mut phases: Vec<&str> = vec![STEADY];
    for (i, e) in parsed.expect.iter().enumerate() {
        for r in e.get_ref().phase_refs() {
            checks::name("phase name", r).map_err(|msg| {
                loc.at(
                    crate::key_path!["expect", i, super::loading::phase_key(e.get_ref())],
                    msg,
                )
            })?;
            if !phases.contains(&r) {
                phases.push(r);
            }
        }
    }
    for (i, e) in parsed.expect.iter().enumerate() {
        scenario::check_expectation(&loc, i, e.get_ref(), &load.system)?;
    }
    check_expectations(
        &loc,
        &parsed.expect,
        &phases,
        &load.load.requests,
        &load.system,
        None,
    )?;
    let (expectations, _) = with_standing(&loc, parsed.expect, None)?;
    Ok(expectations)
}

/// What a game day's faults are checked against: what the fault kinds need to know of its
/// system, taken once when the game day starts (never re-read per fault).
#[derive(Debug, Clone)]
pub struct FaultChecks {
    system: SystemFacts,
}

impl FaultChecks {
    pub fn new(system: &super::System) -> FaultChecks {
        FaultChecks {
            system: fault::system_facts(system),
        }
    }
}

/// The phase name a hand-given fault is checked as opening.
const FAULT_PHASE: &str = "fault";

/// A fault as the control API receives it (`{"kind": "proxy", "proxy": "payments", "toxic":
/// {...}}`), checked against the game day's system. The error says what is wrong, without a
/// location (the input was not a file). A `requests` fault is refused: a game day's load has no
/// request limited to a fault's window.
pub fn fault_for_gameday(
    checks: &FaultChecks,
    fault: &serde_json::Value,
) -> std::result::Result<FaultSpec, String> {
    if !fault.is_object() {
        return Err(
            "a fault is an object with a \"kind\" (e.g. {\"kind\": \"pool-exhaustion\"})".into(),
        );
    }
    if has_null(fault) {
        return Err("a fault has no null values: leave the field out instead".into());
    }
    let f: FaultSpec = serde_json::from_value(fault.clone()).map_err(|e| e.to_string())?;
    fault::check_fields(&f, &checks.system).map_err(|p| p.msg)?;
    f.fault().check_targets(&checks.system, &[], FAULT_PHASE)?;
    Ok(f)
}

/// Whether a JSON value holds a null anywhere (a file has no null: a fault given by hand may not
/// either, rather than have it read as "left out" for some fields and refused for others).
fn has_null(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.iter().any(has_null),
        serde_json::Value::Object(o) => o.values().any(has_null),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn system() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/systems/checkout.toml")
    }

    /// The checkout system file's text with its rule files named by absolute path, so a copy
    /// of it loads from anywhere.
    fn absolute_rules() -> String {
        let alerts = system().parent().unwrap().join("../alerts/");
        std::fs::read_to_string(system())
            .unwrap()
            .replace("\"../alerts/", &format!("\"{}", alerts.display()))
    }

    fn checks() -> FaultChecks {
        FaultChecks::new(&super::super::load_system(&system()).unwrap())
    }

    fn load() -> Scenario {
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        load_for_gameday(&scenarios.join("slow-upstream.toml"), &system()).unwrap()
    }

    #[test]
    fn a_scenario_fault_shape_is_accepted() {
        let f = fault_for_gameday(
            &checks(),
            &json!({"kind": "proxy", "proxy": "payments", "toxic": {"kind": "latency", "latency": "6s"}}),
        )
        .unwrap();
        assert_eq!(f.kind(), "proxy");
        let f = fault_for_gameday(&checks(), &json!({"kind": "pool-exhaustion"})).unwrap();
        assert_eq!(f.kind(), "pool-exhaustion");
    }

    #[test]
    fn faults_the_system_cannot_take_are_refused_with_the_reason() {
        let checks = checks();
        let e = fault_for_gameday(
            &checks,
            &json!({"kind": "proxy", "proxy": "nope", "toxic": {"kind": "latency", "latency": "6s"}}),
        )
        .unwrap_err();
        assert!(e.contains("proxy 'nope'"), "{e}");
        assert!(!e.starts_with("fault:"), "{e}");
        let e = fault_for_gameday(&checks, &json!({"kind": "meteor"})).unwrap_err();
        assert!(e.contains("meteor"), "{e}");
        let e = fault_for_gameday(&checks, &json!("pool-exhaustion")).unwrap_err();
        assert!(e.contains("object"), "{e}");
        let e = fault_for_gameday(
            &checks,
            &json!({"kind": "disk-full", "service": "checkout", "volume": "nope"}),
        )
        .unwrap_err();
        assert!(e.contains("volume 'nope'"), "{e}");
    }

    #[test]
    fn a_fault_field_error_is_the_scenario_message_without_a_location() {
        let e = fault_for_gameday(
            &checks(),
            &json!({"kind": "proxy", "proxy": "payments", "toxic": {"kind": "latency", "latency": "20m"}}),
        )
        .unwrap_err();
        assert!(
            e.starts_with("fault proxy: latency 20m is out of range"),
            "{e}"
        );
        let e = fault_for_gameday(
            &checks(),
            &json!({"kind": "rollout", "service": "checkout", "rollback_on_alert": null}),
        )
        .unwrap_err();
        assert!(e.contains("null"), "{e}");
    }

    #[test]
    fn faults_are_checked_against_the_system_loaded_once_not_its_file() {
        // The system file is read when the game day starts; a fault sent later is checked against
        // what was read then, even once the file is gone.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("checkout.toml");
        std::fs::write(&copy, absolute_rules()).unwrap();
        let checks = FaultChecks::new(&super::super::load_system(&copy).unwrap());
        std::fs::remove_file(&copy).unwrap();
        let f = fault_for_gameday(&checks, &json!({"kind": "pool-exhaustion"})).unwrap();
        assert_eq!(f.kind(), "pool-exhaustion");
    }

    #[test]
    fn expectations_are_checked_against_the_load_and_system_and_located_in_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let load = load();
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "[[expect]]\nid = \"pays\"\nkind = \"status-codes\"\nduring = \"slow-pay\"\nrequest = \"checkout\"\nallowed = [200, 201, 503]\n",
        )
        .unwrap();
        let e = expectations_for_gameday(&good, &load).unwrap();
        let ids: Vec<&str> = e.iter().map(|x| x.id()).collect();
        assert_eq!(ids, ["pays", "no-silent-outage"]);
        // A request the load does not have: the error names the expect file's own line and the
        // value's column.
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "# comment\n\n[[expect]]\nid = \"pays\"\nkind = \"status-codes\"\nduring = \"steady\"\nrequest = \"refund\"\nallowed = [200]\n",
        )
        .unwrap();
        let err = expectations_for_gameday(&bad, &load)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}:7:11:", bad.display())),
            "{err}"
        );
        assert!(err.contains("request 'refund'"), "{err}");
        // A field check (as in a scenario) is located at the field, in the file itself.
        std::fs::write(
            &bad,
            "[[expect]]\nid = \"pays\"\nkind = \"status-codes\"\nduring = \"steady\"\n\nallowed = []\n",
        )
        .unwrap();
        let err = expectations_for_gameday(&bad, &load)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "{}:6:11: expectation 'pays': allowed lists no status",
                bad.display()
            )),
            "{err}"
        );
        // A syntax error is located by the parser in the file itself.
        std::fs::write(&bad, "[[expect]]\nid = \n").unwrap();
        let err = expectations_for_gameday(&bad, &load)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("{}:2:", bad.display())), "{err}");
        // The reserved id of the standing expectation is refused at the id.
        std::fs::write(
            &bad,
            "[[expect]]\nid = \"no-silent-outage\"\nkind = \"status-codes\"\nduring = \"steady\"\nallowed = [200]\n",
        )
        .unwrap();
        let err = expectations_for_gameday(&bad, &load)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}:2:6:", bad.display())) && err.contains("reserved"),
            "{err}"
        );
    }

    #[test]
    fn expectations_are_checked_against_the_system_loaded_once_not_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("checkout.toml");
        std::fs::write(&copy, absolute_rules()).unwrap();
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let load = load_for_gameday(&scenarios.join("slow-upstream.toml"), &copy).unwrap();
        std::fs::remove_file(&copy).unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "[[expect]]\nid = \"ready\"\nkind = \"readiness\"\nduring = \"steady\"\nservice = \"checkout\"\ndrops_within = \"5s\"\nrecovers_within = \"30s\"\n",
        )
        .unwrap();
        let e = expectations_for_gameday(&good, &load).unwrap();
        assert_eq!(e[0].id(), "ready");
    }

    #[test]
    fn the_load_of_a_scenario_runs_against_the_given_system() {
        let s = load();
        assert_eq!(s.load.rate, 40);
        assert!(s.system_override);
    }
}
