//! Prometheus rule files, read when a system is loaded: each must be a rule file (`groups:` of
//! named groups of rules, each with an `alert` or a `record` and an `expr`), checked with
//! `promtool check rules` when promtool is installed, and its alert names known, so that an
//! expectation naming an alert no rule defines is refused at validation instead of failing (or
//! passing vacuously) at run time.

use crate::error::{BrownoutError, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    // Where a structural error is: the first line holding `needle` (a group's or rule's name),
    // else the `groups:` key.
    let bad_near = |needle: &str, msg: String| {
        let find = |n: &str| {
            text.lines()
                .enumerate()
                .find_map(|(i, l)| l.find(n).map(|c| (i + 1, c + 1)))
        };
        let (line, col) = find(needle).or_else(|| find("groups")).unwrap_or((1, 1));
        BrownoutError::BadInput(format!("{}:{line}:{col}: {msg}", path.display()))
    };
    let file: RuleFile = serde_saphyr::from_str(&text).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        // serde-saphyr says "error: line L column C: what"; the location is given separately.
        let first = first
            .split_once(": ")
            .filter(|(head, _)| head.starts_with("error"))
            .map_or(first, |(_, rest)| rest);
        let first = match first.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
            _ => first,
        }
        .to_string();
        match e.location() {
            Some(l) => BrownoutError::BadInput(format!(
                "{}:{}:{}: not a Prometheus rule file: {first}",
                path.display(),
                l.line(),
                l.column()
            )),
            None => BrownoutError::BadInput(format!(
                "{}:1:1: not a Prometheus rule file (`groups:` of rule groups): {first}",
                path.display()
            )),
        }
    })?;
    if file.groups.is_empty() {
        return Err(bad_near(
            "groups",
            "a rule file needs at least one group under `groups:`".into(),
        ));
    }
    let mut alerts = Vec::new();
    for g in &file.groups {
        if g.name.trim().is_empty() {
            return Err(bad_near("name:", "a rule group needs a name".into()));
        }
        for r in &g.rules {
            // Where to point at: the rule's name, else its group's.
            let named = r
                .alert
                .as_deref()
                .or(r.record.as_deref())
                .unwrap_or(&g.name);
            match (&r.alert, &r.record, &r.expr) {
                (_, _, None) => {
                    return Err(bad_near(
                        named,
                        format!("group '{}': a rule without `expr`", g.name),
                    ));
                }
                (Some(a), None, _) => alerts.push(AlertRule {
                    name: a.clone(),
                    severity: r.labels.get("severity").cloned().unwrap_or_default(),
                }),
                (None, Some(_), _) => {}
                _ => {
                    return Err(bad_near(
                        named,
                        format!(
                            "group '{}': each rule has exactly one of `alert` and `record`",
                            g.name
                        ),
                    ));
                }
            }
        }
    }
    promtool_check(path, &text)?;
    Ok(alerts)
}

/// `promtool check rules PATH`, when promtool is installed (it comes with Prometheus, which a
/// run needs anyway; without it the structural check above still holds).
fn promtool_check(path: &Path, text: &str) -> Result<()> {
    // A process may load the same rule files many times (suite, prove, the loader's fuzz test):
    // promtool runs once per distinct path and content.
    static PASSED: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
    let key = (path.to_path_buf(), text.to_string());
    if PASSED.lock().is_ok_and(|p| p.contains(&key)) {
        return Ok(());
    }
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
        if let Ok(mut p) = PASSED.lock() {
            p.push(key);
        }
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool names the place as "<path>: L:C: what" (YAML and PromQL errors alike).
    let shown = path.display().to_string();
    let located = text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(shown.as_str())?.strip_prefix(": ")?;
        let (pos, what) = rest.split_once(": ")?;
        let (line, col) = pos.split_once(':')?;
        Some((
            line.parse::<u32>().ok()?,
            col.parse::<u32>().ok()?,
            what.to_string(),
        ))
    });
    Err(BrownoutError::BadInput(match located {
        Some((line, col, what)) => {
            format!("{shown}:{line}:{col}: promtool check rules refuses it: {what}")
        }
        None => format!(
            "{shown}:1:1: promtool check rules refuses it: {}",
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Checking") && *l != "FAILED:")
                .take(3)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }))
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
