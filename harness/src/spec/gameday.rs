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
    fn the_load_of_a_scenario_runs_against_the_given_system() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let s = load_for_gameday(&dir.join("slow-upstream.toml"), &system()).unwrap();
        assert_eq!(s.load.rate, 40);
        assert!(s.system_override);
    }
}
