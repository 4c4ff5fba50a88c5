//! Many runs at a glance: reads every `report.json` below a directory and prints, per scenario ×
//! bugs, how many runs gave which verdict, and per expectation how often it held and the smallest
//! margin any run left to its time or percentile bound, so drift shows before a verdict flips.
//! `just stability N` runs the e2e matrix N times and then this.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a run is named in summaries: "scenario \[bugs\]", and " on <system>" when it ran against
/// another system file than its own (`--system`).
pub fn run_label(scenario: &str, bugs: &[String], system_override: Option<&str>) -> String {
    let mut s = format!("{scenario} [{}]", bugs.join(","));
    if let Some(system) = system_override {
        s.push_str(&format!(" on {system}"));
    }
    s
}

#[derive(Deserialize)]
struct ReportHead {
    scenario: String,
    verdict: String,
    bugs: Vec<String>,
    #[serde(default)]
    system_override: Option<String>,
    expectations: Vec<Expectation>,
}

#[derive(Deserialize)]
struct Expectation {
    id: String,
    passed: bool,
    #[serde(default)]
    margins: Vec<MarginRow>,
}

#[derive(Deserialize)]
struct MarginRow {
    what: String,
    margin_ms: Option<i64>,
}

/// One expectation over many runs.
#[derive(Default, Debug, PartialEq)]
pub struct ExpectationSummary {
    pub held: usize,
    pub runs: usize,
    /// The smallest margin over all runs (ms, what); `None` inside: the bound was never reached.
    pub smallest_margin: Option<(Option<i64>, String)>,
}

/// One scenario × bug combination over many runs.
#[derive(Default, Debug)]
pub struct RunSummary {
    pub runs: usize,
    pub passed: usize,
    pub expectations: BTreeMap<String, ExpectationSummary>,
}

fn report_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // `latest` links point at runs already counted.
        if p.is_symlink() {
            continue;
        }
        if p.is_dir() {
            report_files(&p, out);
        } else if p.file_name().is_some_and(|n| n == "report.json") {
            out.push(p);
        }
    }
}

/// Every `report.json` below `dir`, sorted (`latest` links skipped).
pub fn report_paths(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    report_files(dir, &mut files);
    files.sort();
    files
}

/// A `report.json`'s text through the capped reader (regular files only, at most
/// [`MAX_REPORT_BYTES`](crate::spec::source::MAX_REPORT_BYTES)): a FIFO, a device or a huge file
/// named `report.json` is an error naming it, never a hang or unbounded memory.
pub fn read_report(f: &Path) -> Result<String, String> {
    crate::spec::source::read_capped_to(f, crate::spec::source::MAX_REPORT_BYTES)
        .map_err(|e| e.to_string())
}

/// Summaries keyed by "scenario \[bugs\]"; files that are not reports are named in the error list.
pub fn summarize(dir: &Path) -> (BTreeMap<String, RunSummary>, Vec<String>) {
    let files = report_paths(dir);
    let mut out: BTreeMap<String, RunSummary> = BTreeMap::new();
    let mut errors = Vec::new();
    for f in files {
        let head: ReportHead = match read_report(&f) {
            Ok(t) => match serde_json::from_str(&t) {
                Ok(h) => h,
                Err(e) => {
                    errors.push(format!("{}: {e}", f.display()));
                    continue;
                }
            },
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let key = run_label(&head.scenario, &head.bugs, head.system_override.as_deref());
        let s = out.entry(key).or_default();
        s.runs += 1;
        s.passed += usize::from(head.verdict == "pass");
        for e in head.expectations {
            let es = s.expectations.entry(e.id).or_default();
            es.runs += 1;
            es.held += usize::from(e.passed);
            for m in e.margins {
                let smaller = match &es.smallest_margin {
                    None => true,
                    Some((cur, _)) => m.margin_ms.unwrap_or(i64::MIN) < cur.unwrap_or(i64::MIN),
                };
                if smaller {
                    es.smallest_margin = Some((m.margin_ms, m.what));
                }
            }
        }
    }
    (out, errors)
}

impl ExpectationSummary {
    /// Held in some runs and failed in others: the verdict is not a fact about the system.
    pub fn flaky(&self) -> bool {
        self.held != 0 && self.held != self.runs
    }
}

/// Every "scenario \[bugs\]: expectation" whose verdict changed between runs.
pub fn flaky(summaries: &BTreeMap<String, RunSummary>) -> Vec<String> {
    summaries
        .iter()
        .flat_map(|(k, r)| {
            r.expectations
                .iter()
                .filter(|(_, e)| e.flaky())
                .map(move |(id, _)| format!("{k}: {id}"))
        })
        .collect()
}

/// The summary as a text table.
pub fn render(summaries: &BTreeMap<String, RunSummary>) -> String {
    let mut s = String::new();
    for (key, r) in summaries {
        s.push_str(&format!("{key}: {} of {} runs passed\n", r.passed, r.runs));
        for (id, e) in &r.expectations {
            let margin = match &e.smallest_margin {
                None => String::new(),
                Some((Some(ms), what)) => {
                    format!("smallest margin {:+.2} s ({what})", *ms as f64 / 1000.0)
                }
                Some((None, what)) => format!("smallest margin: never ({what})"),
            };
            s.push_str(&format!(
                "    {id:<28} held {}/{}  {margin}{}\n",
                e.held,
                e.runs,
                if e.flaky() { "  FLAKY" } else { "" }
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, verdict: &str, passed: bool, margin: Option<i64>) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let json = serde_json::json!({
            "scenario": "pool-exhaustion", "verdict": verdict, "bugs": [],
            "expectations": [{"id": "readiness-drops", "passed": passed,
                "margins": [{"what": "checkout-0 readiness drop", "margin_ms": margin}]}]
        });
        std::fs::write(d.join("report.json"), json.to_string()).unwrap();
    }

    #[test]
    fn counts_verdicts_and_keeps_the_smallest_margin() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "pass", true, Some(3900));
        write(dir.path(), "b", "pass", true, Some(1200));
        write(dir.path(), "c", "fail", false, Some(-300));
        std::fs::write(dir.path().join("c/other.json"), "{}").unwrap();
        let (s, errors) = summarize(dir.path());
        assert!(errors.is_empty(), "{errors:?}");
        let r = &s["pool-exhaustion []"];
        assert_eq!((r.runs, r.passed), (3, 2));
        let e = &r.expectations["readiness-drops"];
        assert_eq!((e.held, e.runs), (2, 3));
        assert_eq!(
            e.smallest_margin,
            Some((Some(-300), "checkout-0 readiness drop".to_string()))
        );
        let text = render(&s);
        assert!(text.contains("2 of 3 runs passed"), "{text}");
        assert_eq!(flaky(&s), ["pool-exhaustion []: readiness-drops"]);
        assert!(text.contains("FLAKY"), "{text}");
        assert!(text.contains("held 2/3  smallest margin -0.30 s"), "{text}");
    }

    #[test]
    fn a_bound_never_reached_is_the_smallest_margin_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "pass", true, Some(100));
        write(dir.path(), "b", "fail", false, None);
        std::fs::create_dir_all(dir.path().join("x")).unwrap();
        std::fs::write(dir.path().join("x/report.json"), "not json").unwrap();
        let (s, errors) = summarize(dir.path());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(render(&s).contains("never (checkout-0 readiness drop)"));
        // Always failing (a bug caught every time) is stable, not flaky.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "fail", false, Some(-100));
        write(dir.path(), "b", "fail", false, Some(-200));
        assert!(flaky(&summarize(dir.path()).0).is_empty());
    }
}
