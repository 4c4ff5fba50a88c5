//! Prometheus rule files, read when a system is loaded: each must be a rule file (`groups:` of
//! named groups of rules, each with an `alert` or a `record` and an `expr`), checked with
//! `promtool check rules` when promtool is installed, and its alert names known, so that an
//! expectation naming an alert no rule defines is refused at validation instead of failing (or
//! passing vacuously) at run time.

use crate::error::{BrownoutError, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(flatten)]
    _rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(flatten)]
    _rest: BTreeMap<String, serde_json::Value>,
}

/// An alerting rule of a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub name: String,
    /// The `severity` label, or "".
    pub severity: String,
}

/// Reads a rule file and returns its alerting rules.
pub fn load(path: &Path) -> Result<Vec<AlertRule>> {
    let text = super::source::read_capped(path)?;
    let bad = |msg: String| BrownoutError::BadInput(format!("{}: {msg}", path.display()));
    let file: RuleFile = serde_saphyr::from_str(&text).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        match e.location() {
            Some(l) => BrownoutError::BadInput(format!(
                "{}:{}:{}: not a Prometheus rule file: {first}",
                path.display(),
                l.line(),
                l.column()
            )),
            None => bad(format!(
                "not a Prometheus rule file (`groups:` of rule groups): {first}"
            )),
        }
    })?;
    if file.groups.is_empty() {
        return Err(bad(
            "a rule file needs at least one group under `groups:`".into()
        ));
    }
    let mut alerts = Vec::new();
    for g in &file.groups {
        if g.name.trim().is_empty() {
            return Err(bad("a rule group needs a name".into()));
        }
        for r in &g.rules {
            match (&r.alert, &r.record, &r.expr) {
                (_, _, None) => {
                    return Err(bad(format!("group '{}': a rule without `expr`", g.name)));
                }
                (Some(a), None, _) => alerts.push(AlertRule {
                    name: a.clone(),
                    severity: r.labels.get("severity").cloned().unwrap_or_default(),
                }),
                (None, Some(_), _) => {}
                _ => {
                    return Err(bad(format!(
                        "group '{}': each rule has exactly one of `alert` and `record`",
                        g.name
                    )));
                }
            }
        }
    }
    promtool_check(path)?;
    Ok(alerts)
}

/// `promtool check rules PATH`, when promtool is installed (it comes with Prometheus, which a
/// run needs anyway; without it the structural check above still holds).
fn promtool_check(path: &Path) -> Result<()> {
    let Ok(promtool) = crate::tools::find(&crate::tools::PROMTOOL) else {
        return Ok(());
    };
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| BrownoutError::Environment(format!("cannot run promtool: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let why: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Checking"))
        .take(3)
        .collect();
    Err(BrownoutError::BadInput(format!(
        "{}: promtool check rules refuses it: {}",
        path.display(),
        why.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.yml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn the_shipped_rule_files_give_their_alerts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/alerts");
        let alerts = load(&root.join("checkout.rules.yml")).unwrap();
        assert!(alerts.iter().any(|a| a.name == "CheckoutDbPoolSaturated"));
        let edge = load(&root.join("edge.rules.yml")).unwrap();
        assert!(edge.iter().all(|a| !a.severity.is_empty()));
    }

    #[test]
    fn a_file_that_is_not_a_rule_file_is_refused() {
        let (_d, p) = write("root:x:0:0:root:/root:/bin/bash\n");
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("not a Prometheus rule file"), "{e}");
        let (_d, p) = write("groups: []\n");
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("at least one group"));
        let (_d, p) = write("groups:\n  - name: g\n    rules:\n      - alert: A\n");
        assert!(load(&p).unwrap_err().to_string().contains("without `expr`"));
    }

    #[test]
    fn promtool_refuses_a_bad_expression() {
        if crate::tools::find(&crate::tools::PROMTOOL).is_err() {
            panic!("promtool installed (scripts/install-deps.sh)");
        }
        let (_d, p) =
            write("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n");
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("promtool check rules refuses it"), "{e}");
    }
}
