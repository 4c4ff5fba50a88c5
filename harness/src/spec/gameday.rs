//! What a game day reads: the load (the `[load]` of a scenario file, run against the game day's
//! system) and faults given by hand (the same shape as a scenario's `[phases.fault]`, as JSON or
//! TOML), validated exactly as a scenario's are: each is checked through a one-phase scenario, so
//! a fault a scenario may not have, a game day may not have either.

use super::{scenario_from_text, FaultSpec, Scenario};
use crate::error::{BrownoutError, Result};
use std::path::Path;

/// The scenario file whose `[load]` a game day drives, loaded against `system` (its own system
/// file, phases and expectations are not used).
pub fn load_for_gameday(scenario: &Path, system: &Path) -> Result<Scenario> {
    super::load_scenario_on(scenario, Some(system))
}

/// The expectations to judge a game day by: a file of `[[expect]]` entries, exactly as in a
/// scenario, checked against the load (request names) and the system (services, alerts) when the
/// game day starts. A phase they name is a window: `steady`, `steady-2`, … or a fault's name as it
/// will be injected (`during = "slow-pay"`); one that never becomes a window fails at the end,
/// saying so. Without the standing no-silent-outage, it is added (as in a scenario).
pub fn expectations_for_gameday(
    expect: &Path,
    load_scenario: &Path,
    system: &Path,
) -> Result<Vec<super::ExpectSpec>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ExpectFile {
        #[serde(default)]
        expect: Vec<super::ExpectSpec>,
    }
    let text = super::source::read_capped(expect)?;
    let parsed: ExpectFile = super::parse_toml(expect, &text)?;
    // Every phase the expectations name, as one-second phases of a synthetic scenario that has the
    // load scenario's [load] and the game day's system.
    let mut names: Vec<String> = vec!["steady".into()];
    for e in &parsed.expect {
        for r in e.phase_refs() {
            if !names.iter().any(|n| n == r) {
                names.push(r.to_string());
            }
        }
    }
    let load_text = super::source::read_capped(load_scenario)?;
    let load_table: toml::Table = toml::from_str(&load_text).map_err(|e| {
        BrownoutError::BadInput(format!("{}: {}", load_scenario.display(), e.message()))
    })?;
    let mut doc = toml::Table::new();
    doc.insert("name".into(), "gameday-expect".into());
    doc.insert("summary".into(), "expectations of a game day".into());
    doc.insert("system".into(), system.display().to_string().into());
    if let Some(load) = load_table.get("load") {
        doc.insert("load".into(), load.clone());
    }
    let phases: Vec<toml::Value> = names
        .iter()
        .map(|n| {
            let mut t = toml::Table::new();
            t.insert("name".into(), n.clone().into());
            t.insert("for".into(), "1s".into());
            t.into()
        })
        .collect();
    doc.insert("phases".into(), toml::Value::Array(phases));
    let header = toml::to_string(&doc)
        .map_err(|e| BrownoutError::BadInput(format!("{}: {e}", expect.display())))?;
    // The expect file's text follows the header unchanged, so an error's line is the header's
    // line count past the one in the file.
    let offset = header.lines().count() + 1;
    let text = format!("{header}\n{text}");
    match super::scenario_from_text(expect, &text, Some(system)) {
        Ok(s) => Ok(s.expectations),
        Err(BrownoutError::BadInput(msg)) => Err(BrownoutError::BadInput(shift_line(
            &msg,
            &expect.display().to_string(),
            offset,
        ))),
        Err(e) => Err(e),
    }
}

/// "FILE:LINE:COL: …" with LINE made `offset` smaller.
fn shift_line(msg: &str, file: &str, offset: usize) -> String {
    let Some(rest) = msg.strip_prefix(&format!("{file}:")) else {
        return msg.to_string();
    };
    let mut parts = rest.splitn(2, ':');
    match (
        parts.next().and_then(|l| l.parse::<usize>().ok()),
        parts.next(),
    ) {
        (Some(line), Some(rest)) if line > offset => format!("{file}:{}:{rest}", line - offset),
        _ => msg.to_string(),
    }
}

/// A fault as the control API receives it (`{"kind": "proxy", "proxy": "payments", "toxic":
/// {...}}`), checked against the system. The error says what is wrong, without a location (the
/// input was not a file).
pub fn fault_for_gameday(
    system: &Path,
    fault: &serde_json::Value,
) -> std::result::Result<FaultSpec, String> {
    if !fault.is_object() {
        return Err(
            "a fault is an object with a \"kind\" (e.g. {\"kind\": \"pool-exhaustion\"})".into(),
        );
    }
    let fault = toml::Value::try_from(fault)
        .map_err(|e| format!("the fault cannot be written as TOML (null values?): {e}"))?;
    let mut phase = toml::Table::new();
    phase.insert("name".into(), "fault".into());
    phase.insert("for".into(), "1s".into());
    phase.insert("fault".into(), fault);
    let mut request = toml::Table::new();
    request.insert("name".into(), "probe".into());
    request.insert("path".into(), "/".into());
    let mut load = toml::Table::new();
    load.insert("rate".into(), 1.into());
    load.insert("requests".into(), toml::Value::Array(vec![request.into()]));
    let mut doc = toml::Table::new();
    doc.insert("name".into(), "gameday-fault".into());
    doc.insert("summary".into(), "a fault given by hand".into());
    doc.insert("system".into(), system.display().to_string().into());
    doc.insert("load".into(), load.into());
    doc.insert("phases".into(), toml::Value::Array(vec![phase.into()]));
    let text = toml::to_string(&doc).map_err(|e| format!("cannot write the fault as TOML: {e}"))?;
    match scenario_from_text(Path::new("fault"), &text, Some(system)) {
        Ok(s) => s
            .phases
            .into_iter()
            .next()
            .and_then(|p| p.fault)
            .ok_or_else(|| "no fault given".to_string()),
        Err(BrownoutError::BadInput(msg)) => Err(strip_location(&msg)),
        Err(e) => Err(e.to_string()),
    }
}

/// "fault:9:1: fault proxy: …" → "fault proxy: …": the synthetic file's lines mean nothing to
/// whoever typed the fault.
fn strip_location(msg: &str) -> String {
    let mut parts = msg.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("fault"), Some(l), Some(c), Some(rest))
            if l.chars().all(|ch| ch.is_ascii_digit())
                && c.chars().all(|ch| ch.is_ascii_digit()) =>
        {
            rest.trim().to_string()
        }
        _ => msg.trim_start_matches("fault: ").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn system() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/systems/checkout.toml")
    }

    #[test]
    fn a_scenario_fault_shape_is_accepted() {
        let f = fault_for_gameday(
            &system(),
            &json!({"kind": "proxy", "proxy": "payments", "toxic": {"kind": "latency", "latency": "6s"}}),
        )
        .unwrap();
        assert_eq!(f.kind(), "proxy");
        let f = fault_for_gameday(&system(), &json!({"kind": "pool-exhaustion"})).unwrap();
        assert_eq!(f.kind(), "pool-exhaustion");
    }

    #[test]
    fn faults_the_system_cannot_take_are_refused_with_the_reason() {
        let e = fault_for_gameday(
            &system(),
            &json!({"kind": "proxy", "proxy": "nope", "toxic": {"kind": "latency", "latency": "6s"}}),
        )
        .unwrap_err();
        assert!(e.contains("proxy 'nope'"), "{e}");
        assert!(!e.starts_with("fault:"), "{e}");
        let e = fault_for_gameday(&system(), &json!({"kind": "meteor"})).unwrap_err();
        assert!(e.contains("meteor"), "{e}");
        let e = fault_for_gameday(&system(), &json!("pool-exhaustion")).unwrap_err();
        assert!(e.contains("object"), "{e}");
        let e = fault_for_gameday(
            &system(),
            &json!({"kind": "disk-full", "service": "checkout", "volume": "nope"}),
        )
        .unwrap_err();
        assert!(e.contains("volume 'nope'"), "{e}");
    }

    #[test]
    fn expectations_are_checked_against_the_load_and_system_and_located_in_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let load = scenarios.join("slow-upstream.toml");
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "[[expect]]\nid = \"pays\"\nkind = \"status-codes\"\nduring = \"slow-pay\"\nrequest = \"checkout\"\nallowed = [200, 201, 503]\n",
        )
        .unwrap();
        let e = expectations_for_gameday(&good, &load, &system()).unwrap();
        let ids: Vec<&str> = e.iter().map(|x| x.id()).collect();
        assert_eq!(ids, ["pays", "no-silent-outage"]);
        // A request the load does not have: the error names the expect file's own line.
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "# comment\n\n[[expect]]\nid = \"pays\"\nkind = \"status-codes\"\nduring = \"steady\"\nrequest = \"refund\"\nallowed = [200]\n",
        )
        .unwrap();
        let err = expectations_for_gameday(&bad, &load, &system())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("{}:3:", bad.display())), "{err}");
        assert!(err.contains("request 'refund'"), "{err}");
        // A syntax error is located by the parser in the file itself.
        std::fs::write(&bad, "[[expect]]\nid = \n").unwrap();
        let err = expectations_for_gameday(&bad, &load, &system())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("{}:2:", bad.display())), "{err}");
    }

    #[test]
    fn the_load_of_a_scenario_runs_against_the_given_system() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let s = load_for_gameday(&dir.join("slow-upstream.toml"), &system()).unwrap();
        assert_eq!(s.load.rate, 40);
        assert!(s.system_override);
    }
}
