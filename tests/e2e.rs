//! End-to-end: `brownout run <scenario>` on the local platform, for real (PostgreSQL, nginx, mtail,
//! Prometheus). The scenario matrix (`MATRIX`, one row per scenario × bugs × system with the
//! expectations that must fail) shows every scenario passing on the hardened app and each bug failing
//! exactly the expectations that should catch it, the no-silent-outage expectation failing without
//! the edge alert rule, and then that every alert rule fired in some run and never in a baseline.
//! Every run also checks, from `responses.jsonl`, that the load offered the declared mix in every
//! 5 s window and the declared rate in every phase, and that the edge metrics counted the 5xx
//! clients got. Cleanup is checked after Ctrl-C and after `kill -9`.
//! An app that sets no header (`plain-app`) is attributed by the ingress, and drains with a pre-stop
//! hook.
//! These tests run one at a time (they share the machine's two cores); each run takes about a minute.
//! `BROWNOUT_E2E_REPEAT=3` repeats each matrix case to check that verdicts are stable;
//! `BROWNOUT_E2E_REPORTS=DIR` keeps every run's report there (`just stability` summarizes them);
//! `BROWNOUT_E2E_ONLY=<scenario>` runs only that scenario's rows.

#[path = "support/chromium.rs"]
mod chromium;

mod support;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{root, BROWNOUT};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn app_binaries_built() {
    let dir = Path::new(BROWNOUT).parent().unwrap();
    for bin in ["checkout", "payments-stub"] {
        assert!(dir.join(bin).is_file(), "{bin} is not built next to brownout: run `cargo build --workspace --bins` first (just test does)");
    }
}

fn spawn_run(
    scenario: &str,
    system: Option<&str>,
    reports: &Path,
    bugs: &[&str],
    log: &Path,
) -> Child {
    let mut cmd = Command::new(BROWNOUT);
    cmd.args(["run", scenario, "--reports-dir", reports.to_str().unwrap()])
        .current_dir(root())
        .stdout(Stdio::from(
            std::fs::File::create(log.with_extension("out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    for b in bugs {
        cmd.args(["--bug", b]);
    }
    if let Some(system) = system {
        cmd.args(["--system", system]);
    }
    // The kind workflow runs the same matrix on a kind cluster (see scenario_matrix_on_kind).
    if let Ok(platform) = std::env::var("BROWNOUT_E2E_PLATFORM") {
        cmd.args(["--platform", &platform]);
    }
    cmd.spawn().expect("start brownout")
}

/// Where a run writes its report: a kept directory when BROWNOUT_E2E_REPORTS is set.
fn reports_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("BROWNOUT_E2E_REPORTS") {
        Some(d) => {
            let d = std::path::absolute(PathBuf::from(d)).unwrap();
            std::fs::create_dir_all(&d).unwrap();
            (None, d)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

/// Runs the scenario (a name or a path) and returns (exit code, ids of failed expectations, the
/// run's report directory). The report dir lives as long as the returned guard.
fn run_scenario_at(
    scenario: &str,
    bugs: &[&str],
) -> (i32, BTreeSet<String>, PathBuf, Option<tempfile::TempDir>) {
    let (guard, reports) = reports_dir();
    let (code, failed, dir) = run_into(&reports, scenario, None, bugs);
    (code, failed, dir, guard)
}

/// Runs the scenario (on `system` if given) with its report below `reports`; returns (exit code,
/// ids of failed expectations, the run's report directory).
fn run_into(
    reports: &Path,
    scenario: &str,
    system: Option<&str>,
    bugs: &[&str],
) -> (i32, BTreeSet<String>, PathBuf) {
    let (code, out, stderr) = run_process(reports, scenario, system, bugs);
    let (failed, latest) = checked(scenario, bugs, &out, &stderr);
    (code, failed, latest)
}

/// Runs the scenario to its end; (exit code, what it printed on stdout, on stderr).
fn run_process(
    reports: &Path,
    scenario: &str,
    system: Option<&str>,
    bugs: &[&str],
) -> (i32, String, String) {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr.log");
    let status = spawn_run(scenario, system, reports, bugs, &log)
        .wait()
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let out = std::fs::read_to_string(log.with_extension("out")).unwrap_or_default();
    (status.code().unwrap_or(-1), out, stderr)
}

/// The run's report directory (from its last line, `report: <dir>/report.md`), checked: the ids
/// of the failed expectations, and the directory.
fn checked(scenario: &str, bugs: &[&str], out: &str, stderr: &str) -> (BTreeSet<String>, PathBuf) {
    let latest = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("report: "))
        .map(|p| Path::new(p).parent().unwrap().to_path_buf())
        .unwrap_or_else(|| panic!("no report path printed; stderr: {stderr}"));
    let failed = check_run(scenario, &latest, bugs, stderr);
    (failed, latest)
}

/// What a run refused because the platform cannot do one of its faults says (exit 3, before
/// anything is deployed: `BrownoutError::NotSupported`, e.g. memory-limit on Kubernetes).
const NOT_SUPPORTED: &str = "not supported on this platform";

/// Why the run was refused as not supported on this platform (the line saying so), from its
/// exit code and what it printed; `None` for a run that ran (or failed otherwise).
fn refusal(code: i32, printed: &str) -> Option<String> {
    if code != 3 {
        return None;
    }
    printed
        .lines()
        .find(|l| l.contains(NOT_SUPPORTED))
        .map(|l| l.trim().to_string())
}

/// Why a `brownout prove` row was not run on this platform: its `not_supported` field, the
/// refusal's message ("… not supported on this platform …"); `None` for a row that ran.
fn refused_row(row: &serde_json::Value) -> Option<String> {
    row["not_supported"]
        .as_str()
        .filter(|why| why.contains(NOT_SUPPORTED))
        .map(String::from)
}

/// Checks one run's report directory (report files, the load's promise, the edge counts, the
/// page in Chromium) and returns the ids of the failed expectations.
fn check_run(scenario: &str, dir: &Path, bugs: &[&str], stderr: &str) -> BTreeSet<String> {
    let report_path = dir.join("report.json");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report_path)
            .unwrap_or_else(|e| panic!("no report ({e}); stderr: {stderr}")),
    )
    .unwrap();
    let failed: BTreeSet<String> = report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["passed"] == false)
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    for e in report["expectations"].as_array().unwrap() {
        eprintln!(
            "  {scenario} [{}] {} {}: {}",
            bugs.join(","),
            if e["passed"] == true { "pass" } else { "FAIL" },
            e["id"],
            e["evidence"]
        );
    }
    assert_eq!(
        report["verdict"],
        if failed.is_empty() { "pass" } else { "fail" }
    );
    for file in ["report.md", "report.html", "junit.xml", "responses.jsonl"] {
        assert!(dir.join(file).is_file(), "{file} written");
    }
    // The page people look at renders in a real browser with everything on it.
    let page = chromium::render(&dir.join("report.html"), None);
    let problems = chromium::problems_of_report_page(&page);
    assert!(problems.is_empty(), "{scenario}: report.html: {problems:?}");
    assert_load_offered_what_was_declared(scenario, &report, dir);
    assert_edge_counted_what_clients_saw(scenario, &report, dir);
    failed
}

/// The edge metrics (what the edge alert rules see) counted the 5xx clients got: over the whole
/// run to within 2, and phase by phase to within 2 plus the 5xx answers that arrived in the last
/// 150 ms before a boundary of the phase (the exporter reads the log every 20 ms, so an answer
/// just before a boundary can be counted on its other side).
fn assert_edge_counted_what_clients_saw(scenario: &str, report: &serde_json::Value, dir: &Path) {
    let arrivals: Vec<u64> = responses(dir)
        .iter()
        .filter(|r| r["status"].as_u64().unwrap_or(0) >= 500 && !r["phase"].is_null())
        .map(|r| r["t_ms"].as_u64().unwrap() + r["latency_ms"].as_u64().unwrap())
        .collect();
    let near = |t: u64| {
        arrivals
            .iter()
            .filter(|a| **a + 150 >= t && **a <= t + 50)
            .count() as u64
    };
    let (mut client_total, mut edge_total) = (0, 0);
    for p in report["phases"].as_array().unwrap() {
        let client = p["client_5xx"].as_u64().unwrap();
        let edge = p["edge"]["s5xx"]
            .as_u64()
            .unwrap_or_else(|| panic!("{scenario} {}: no edge counts: {p}", p["name"]));
        let slack = 2 + near(p["start_ms"].as_u64().unwrap()) + near(p["end_ms"].as_u64().unwrap());
        assert!(
            client.abs_diff(edge) <= slack,
            "{scenario} {}: clients got {client} 5xx, the edge counted {edge} (slack {slack})",
            p["name"]
        );
        client_total += client;
        edge_total += edge;
    }
    assert!(
        client_total.abs_diff(edge_total) <= 2,
        "{scenario}: clients got {client_total} 5xx over the run, the edge counted {edge_total}"
    );
}

/// The load's promise, checked from `responses.jsonl` on a real run: in every 5 s window of every
/// phase, each request's share of the scheduled sends is within 5 points of its declared weight,
/// and in every phase the scheduled sends are within 3 % of rate × duration.
fn assert_load_offered_what_was_declared(scenario: &str, report: &serde_json::Value, dir: &Path) {
    let path = if scenario.ends_with(".toml") {
        root().join(scenario)
    } else {
        root().join("scenarios").join(format!("{scenario}.toml"))
    };
    let spec: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // A request's weight in a phase: 0 where its `during` leaves it out.
    let weights_in = |phase: &str| -> Vec<f64> {
        spec["load"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let sent = r
                    .get("during")
                    .and_then(|d| d.as_array())
                    .is_none_or(|d| d.iter().any(|p| p.as_str() == Some(phase)));
                if sent {
                    r.get("weight").and_then(|w| w.as_integer()).unwrap_or(1) as f64
                } else {
                    0.0
                }
            })
            .collect()
    };
    let rate = spec["load"]["rate"].as_integer().unwrap() as f64;
    let sends: Vec<(u64, usize)> = std::fs::read_to_string(dir.join("responses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["attempt"] == 1)
        .map(|r| {
            (
                r["t_ms"].as_u64().unwrap(),
                r["request"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    for phase in report["phases"].as_array().unwrap() {
        let (start, end) = (
            phase["start_ms"].as_u64().unwrap(),
            phase["end_ms"].as_u64().unwrap(),
        );
        let name = phase["name"].as_str().unwrap();
        let weights = weights_in(name);
        let total: f64 = weights.iter().sum();
        let in_phase = sends
            .iter()
            .filter(|(t, _)| *t >= start && *t < end)
            .count() as f64;
        let nominal = rate * (end - start) as f64 / 1000.0;
        assert!(
            (in_phase - nominal).abs() <= nominal * 0.03 + 1.0,
            "{scenario} {name}: {in_phase} sends, nominal {nominal}"
        );
        let mut from = start;
        while from + 2_500 <= end {
            let to = (from + 5_000).min(end);
            let mut counts = vec![0.0; weights.len()];
            for (t, i) in &sends {
                if *t >= from && *t < to {
                    counts[*i] += 1.0;
                }
            }
            let n: f64 = counts.iter().sum();
            for (i, (c, w)) in counts.iter().zip(&weights).enumerate() {
                let share = c / n;
                assert!(
                    (share - w / total).abs() <= 0.05,
                    "{scenario} {name} window {from}..{to} ms: request {i} share {share:.3}, weight {:.3}",
                    w / total
                );
            }
            from = to;
        }
    }
}

fn repeats() -> usize {
    std::env::var("BROWNOUT_E2E_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// A run beyond what `brownout prove` covers: a scenario and bugs on another system file, with
/// exactly the expectations that must fail.
struct Case {
    scenario: &'static str,
    bugs: &'static [&'static str],
    system: Option<&'static str>,
    fails: &'static [&'static str],
}

/// The system without the edge alert rule: the app's own rules only.
const NO_EDGE_RULE: Option<&str> = Some("tests/fixtures/no-edge-rule/checkout.toml");

/// The bugs of the scenario files' `[catches]` again, on the system without the edge rule: where
/// the app never counts what the ingress answered, only the edge rule pages.
#[rustfmt::skip]
const WITHOUT_EDGE_RULE: &[Case] = &[
    // no-drain's 502s are the ingress's: without the edge rule nothing pages for them.
    Case { scenario: "sigterm-grace", bugs: &["no-drain"], system: NO_EDGE_RULE,
           fails: &["restart-no-errors", "clean-terminations", "no-silent-outage"] },
    // The 504s (half of all answers) page no one.
    Case { scenario: "slow-upstream", bugs: &["no-upstream-timeout"], system: NO_EDGE_RULE,
           fails: &["slow-fails-fast-from-app", "slow-p99-bounded", "breaker-alert", "no-silent-outage"] },
    // The hardened app on the system without the edge rule still pages: its own rules say why.
    Case { scenario: "slow-upstream", bugs: &[], system: NO_EDGE_RULE, fails: &[] },
];

/// Scenarios whose `[catches]` names no app bug, shown failing another way: the same scenario
/// with what it proves taken away.
#[rustfmt::skip]
const WITHOUT_WHAT_THEY_PROVE: &[Case] = &[
    // The ingress fails open: with no replica ready it still routes, and the app answers.
    Case { scenario: "tests/fixtures/no-endpoints-fail-open.toml", bugs: &[], system: None,
           fails: &["ingress-answers-503"] },
    // No rollback on the alert: the bad revision stays, its 500s go on past the phase.
    Case { scenario: "tests/fixtures/bad-deploy-no-rollback.toml", bugs: &[], system: None,
           fails: &["rolled-back", "recovers", "5xx-alert"] },
];

/// What `brownout prove` printed and wrote: its exit code and prove.json's rows.
fn prove(reports: &Path, scenarios: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let mut cmd = Command::new(BROWNOUT);
    cmd.arg("prove")
        .args(scenarios)
        .args(["--reports-dir", reports.to_str().unwrap()])
        .current_dir(root());
    if let Ok(platform) = std::env::var("BROWNOUT_E2E_PLATFORM") {
        cmd.args(["--platform", &platform]);
    }
    let before: BTreeSet<PathBuf> = dirs_in(&reports.join("prove"));
    let out = cmd.output().expect("start brownout prove");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let new: Vec<PathBuf> = dirs_in(&reports.join("prove"))
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(
        new.len(),
        1,
        "one prove dir written: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(new[0].join("prove.json")).unwrap()).unwrap();
    junit_parses(&new[0].join("junit.xml"));
    (out.status.code().unwrap_or(-1), rows, stdout)
}

fn dirs_in(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The file is JUnit XML a JUnit parser reads; returns it parsed.
fn junit_parses(path: &Path) -> junit_parser::TestSuites {
    let text = std::fs::read_to_string(path).unwrap();
    junit_parser::from_reader(std::io::Cursor::new(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: not JUnit: {e}\n{text}", path.display()))
}

/// Every scenario proves what its `[catches]` says (`brownout prove`: the hardened app passes,
/// each bug fails exactly its listed expectations), each run checked for the load's promise, the
/// edge counts and its page; then the bugs on the system without the edge rule (each case
/// BROWNOUT_E2E_REPEAT times). Then, over all these runs, every alert rule fired somewhere and
/// none in a baseline phase. `BROWNOUT_E2E_ONLY=slow-upstream` runs one scenario (and skips the
/// rule check). The long tier: `./just test-matrix` (`--ignored`), not in `./just test`.
#[test]
#[ignore = "the long matrix (about 30 min): ./just test-matrix"]
fn scenario_matrix() {
    let _g = serial();
    matrix();
}

/// The same matrix on the `brownout` kind cluster (`--platform kind`), as `./just test-kind`
/// (scripts/test-kind.sh) and `.github/workflows/kind.yml` run it after their smoke rows. It
/// needs docker, kind and a cluster made from kind-config/kind.yaml (or none: the run creates
/// it); the images are built and loaded by the first run only (content-addressed tag). A row
/// the platform refuses (exit 3, "not supported on this platform": a fault it cannot do) is
/// listed as not supported, neither a failure nor checked as a run.
#[test]
#[ignore = "needs a kind cluster"]
fn scenario_matrix_on_kind() {
    let _g = serial();
    // Only this test runs with the variable set: it holds the one-at-a-time lock throughout.
    std::env::set_var("BROWNOUT_E2E_PLATFORM", "kind");
    let result = std::panic::catch_unwind(matrix);
    std::env::remove_var("BROWNOUT_E2E_PLATFORM");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn matrix() {
    app_binaries_built();
    let only = std::env::var("BROWNOUT_E2E_ONLY").ok();
    let (_guard, reports) = reports_dir();
    let mut wrong = Vec::new();
    // Rows the platform refused: "not supported on this platform" (never on the local one).
    let mut not_supported = Vec::new();
    let scenarios: Vec<&str> = only.iter().map(|s| s.as_str()).collect();
    for _ in 0..repeats() {
        let (code, rows, stdout) = prove(&reports, &scenarios);
        eprintln!("{stdout}");
        assert!(
            rows.len() >= if only.is_some() { 1 } else { 24 },
            "{stdout}"
        );
        let mut refused_rows = 0;
        for row in &rows {
            let scenario = row["scenario"].as_str().unwrap();
            let bugs: Vec<&str> = row["bugs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap())
                .collect();
            if let Some(why) = refused_row(row) {
                not_supported.push(format!("{scenario} [{}]: {why}", bugs.join(",")));
                refused_rows += 1;
                continue;
            }
            check_run(
                scenario,
                Path::new(row["report"].as_str().unwrap()),
                &bugs,
                "",
            );
            if row["ok"] != true {
                wrong.push(format!("prove: {row}"));
            }
        }
        // A non-zero exit is explained when the rows that were not as declared were all refused.
        let explained = refused_rows > 0
            && rows
                .iter()
                .all(|r| r["ok"] == true || refused_row(r).is_some());
        if code != 0 && !explained {
            wrong.push(format!("prove exited {code}:\n{stdout}"));
        }
        for case in WITHOUT_EDGE_RULE.iter().chain(WITHOUT_WHAT_THEY_PROVE) {
            if only.as_deref().is_some_and(|o| !case.scenario.contains(o)) {
                continue;
            }
            let (code, out, stderr) = run_process(&reports, case.scenario, case.system, case.bugs);
            if let Some(why) = refusal(code, &stderr) {
                not_supported.push(format!("{} {:?}: {why}", case.scenario, case.bugs));
                continue;
            }
            let (failed, _) = checked(case.scenario, case.bugs, &out, &stderr);
            let expected = set(case.fails);
            let expected_code = if case.fails.is_empty() { 0 } else { 1 };
            if failed != expected || code != expected_code {
                wrong.push(format!(
                    "{} {:?} on {}: failed {failed:?} (exit {code}), expected {expected:?} (exit {expected_code})",
                    case.scenario,
                    case.bugs,
                    case.system.unwrap_or("its own system")
                ));
            }
        }
    }
    if !not_supported.is_empty() {
        eprintln!(
            "not supported on this platform ({} runs, not run and not failed):\n  {}",
            not_supported.len(),
            not_supported.join("\n  ")
        );
    }
    assert!(
        wrong.is_empty(),
        "verdicts not as expected:\n{}",
        wrong.join("\n")
    );
    if only.is_some() {
        eprintln!("BROWNOUT_E2E_ONLY is set: the alert rule coverage is not checked");
        return;
    }
    let (coverage, errors) = harness::coverage::from_dir(&reports);
    assert!(errors.is_empty(), "{errors:?}");
    eprintln!("{}", harness::coverage::render(&coverage));
    // Every rule in scenarios/alerts/ was loaded, fired in some run, and never in a baseline.
    for rule in rule_names() {
        assert!(coverage.contains_key(&rule), "{rule} was never loaded");
    }
    let problems = harness::coverage::problems(&coverage);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A run the platform refuses because it cannot do one of the scenario's faults exits 3 with a
/// message containing "not supported on this platform", before anything is deployed (e.g.
/// memory-limit on Kubernetes); the kind matrix lists such a row as not supported instead of
/// checking it as a run (no report: `check_run` would panic) or counting it as a failure. Any
/// other exit 3 (a missing program, a cluster that cannot be created) stays a failure.
#[test]
fn a_run_refused_on_this_platform_is_not_supported_not_failed() {
    let refused = "brownout: fault memory-limit is not supported on this platform (kubernetes): a memory limit lowered in place is not an OOM kill";
    assert_eq!(
        refusal(3, &format!("starting\n{refused}\n")).as_deref(),
        Some(refused)
    );
    assert_eq!(
        refusal(3, "`kind create cluster` failed: no node image"),
        None
    );
    assert_eq!(refusal(1, refused), None, "a run that ran and failed");
    assert_eq!(refusal(0, ""), None);
    let row = serde_json::json!({
        "scenario": "oom-kill", "bugs": ["unbounded-export"], "ok": false,
        "verdict": "not-supported", "not_supported": refused,
    });
    assert_eq!(refused_row(&row).as_deref(), Some(refused));
    let row = serde_json::json!({
        "scenario": "oom-kill", "bugs": [], "ok": false, "verdict": "aborted",
        "aborted": "limit_memory failed", "report": "/tmp/r",
    });
    assert_eq!(refused_row(&row), None, "an aborted run is a failure");
}

/// `brownout prove` fails when a scenario's `[catches]` is wrong: the fixture declares that
/// no-drain fails only clean-terminations, but it also fails restart-no-errors.
#[test]
fn prove_fails_when_a_bug_fails_other_expectations_than_declared() {
    let _g = serial();
    app_binaries_built();
    let reports = tempfile::tempdir().unwrap();
    let (code, rows, stdout) = prove(
        reports.path(),
        &["tests/fixtures/ci/quick-restart-wrong-catch.toml"],
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(rows[0]["ok"], true, "the hardened app passes: {stdout}");
    assert_eq!(rows[1]["ok"], false, "{stdout}");
    assert_eq!(
        rows[1]["failed"],
        serde_json::json!(["restart-no-errors", "clean-terminations"]),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("quick-restart-wrong-catch")
                && l.contains(" no-drain ")
                && l.contains(" WRONG ")),
        "{stdout}"
    );
}

/// `brownout suite` exits 0 when every expectation holds and 1 when one fails (`--bug no-drain`),
/// writing one JUnit file a JUnit parser reads, with a test suite per scenario and a test case per
/// expectation whose failure message is the evidence; and suite.json.
#[test]
fn suite_exits_by_the_verdicts_and_writes_junit() {
    let _g = serial();
    app_binaries_built();
    let reports = tempfile::tempdir().unwrap();
    let suite = |bugs: &[&str]| {
        let mut cmd = Command::new(BROWNOUT);
        cmd.args([
            "suite",
            "tests/fixtures/ci/quick-restart.toml",
            "--reports-dir",
        ])
        .arg(reports.path())
        .current_dir(root());
        for b in bugs {
            cmd.args(["--bug", b]);
        }
        let before = dirs_in(&reports.path().join("suite"));
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let dir: Vec<PathBuf> = dirs_in(&reports.path().join("suite"))
            .difference(&before)
            .cloned()
            .collect();
        assert_eq!(dir.len(), 1, "{stdout}");
        let suite_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir[0].join("suite.json")).unwrap())
                .unwrap();
        (
            out.status.code(),
            junit_parses(&dir[0].join("junit.xml")),
            suite_json,
            stdout,
        )
    };
    let (code, junit, json, stdout) = suite(&[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(json["verdict"], "pass");
    assert_eq!(junit.suites.len(), 1);
    assert_eq!(junit.suites[0].name, "quick-restart");
    assert_eq!(junit.suites[0].tests, 7, "a test case per expectation");
    assert_eq!(junit.suites[0].failures, 0);
    // The run's own page, screenshotted for the README's picture of a report.
    let run_dir = PathBuf::from(json["runs"][0]["report"].as_str().unwrap());
    let page = chromium::render(
        &run_dir.join("report.html"),
        Some(&run_dir.join("report.png")),
    );
    assert!(chromium::problems_of_report_page(&page).is_empty());

    let (code, junit, json, stdout) = suite(&["no-drain"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(json["verdict"], "fail");
    let s = &junit.suites[0];
    assert_eq!(s.name, "quick-restart [bug no-drain]");
    assert_eq!(s.failures, 2, "{stdout}");
    let failed: Vec<&junit_parser::TestCase> =
        s.cases.iter().filter(|c| c.status.is_failure()).collect();
    let names: BTreeSet<&str> = failed.iter().map(|c| c.original_name.as_str()).collect();
    assert_eq!(
        names,
        ["clean-terminations", "restart-no-errors"]
            .into_iter()
            .collect()
    );
    // The failure message is the evidence.
    let restart = failed
        .iter()
        .find(|c| c.original_name == "restart-no-errors")
        .unwrap();
    let message = &restart.status.failure_as_ref().message;
    assert!(message.contains("502 (ingress)"), "{message}");
}

/// The alert names in scenarios/alerts/*.yml (groups[].rules[].alert).
fn rule_names() -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(root().join("scenarios/alerts"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap();
        for doc in yaml_rust2::YamlLoader::load_from_str(&text).unwrap() {
            for group in doc["groups"].as_vec().unwrap() {
                for rule in group["rules"].as_vec().unwrap() {
                    if let Some(alert) = rule["alert"].as_str() {
                        names.push(alert.to_string());
                    }
                }
            }
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    names
}

fn responses(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("responses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_app_that_sets_no_header_is_attributed_by_the_ingress() {
    // plain-app sets no header and closes its listener on SIGTERM. Its answers are the app's, by
    // replica; while the ingress still routes to a terminated replica (1 s propagation delay), its
    // refused connections are 502s made by the ingress, named with that replica.
    let _g = serial();
    app_binaries_built();
    let (code, failed, dir, _guard) = run_scenario_at("tests/fixtures/plain/restart.toml", &[]);
    assert_eq!(failed, set(&["restart-no-errors"]));
    assert_eq!(code, 1);
    let rs = responses(&dir);
    let ok: Vec<_> = rs.iter().filter(|r| r["status"] == 200).collect();
    assert!(ok.len() > 500, "{} answers", ok.len());
    for r in &ok {
        assert_eq!(r["layer"], "app", "{r}");
        let replica = r["replica"]
            .as_str()
            .unwrap_or_else(|| panic!("no replica: {r}"));
        assert!(replica.starts_with("plain-"), "{r}");
    }
    // Both first-revision replicas and both of their replacements served.
    let replicas: BTreeSet<&str> = ok.iter().map(|r| r["replica"].as_str().unwrap()).collect();
    assert_eq!(
        replicas,
        ["plain-0", "plain-1", "plain-r2-0", "plain-r2-1"]
            .into_iter()
            .collect()
    );
    let refused: Vec<_> = rs.iter().filter(|r| r["status"] == 502).collect();
    assert!(
        !refused.is_empty(),
        "the drain without pre-stop refuses connections"
    );
    for r in &refused {
        assert_eq!(r["layer"], "ingress", "{r}");
        let replica = r["replica"].as_str().unwrap_or_default();
        assert!(
            replica == "plain-0" || replica == "plain-1",
            "a terminated replica: {r}"
        );
    }
}

#[test]
fn a_pre_stop_hook_lets_an_app_that_closes_its_listener_drain() {
    let _g = serial();
    app_binaries_built();
    let (code, failed, dir, _guard) =
        run_scenario_at("tests/fixtures/plain/restart-pre-stop.toml", &[]);
    assert_eq!(failed, set(&[]));
    assert_eq!(code, 0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let lifecycle = report["timelines"]["lifecycle"].as_array().unwrap();
    for replica in ["plain-0", "plain-1"] {
        let at = |event: &str| {
            lifecycle
                .iter()
                .find(|l| l["replica"] == replica && l["event"] == event)
                .and_then(|l| l["t_ms"].as_u64())
                .unwrap_or_else(|| panic!("{replica} has no {event}"))
        };
        let waited = at("sigterm") - at("pre-stop");
        assert!(
            (1900..3000).contains(&waited),
            "{replica}: SIGTERM {waited} ms after pre-stop"
        );
    }
}

/// Pids of every process whose cwd is inside a work dir of the harness `pid`.
fn processes_of_run(pid: u32) -> (Vec<i32>, Vec<PathBuf>) {
    let prefix = format!("brownout-run-{pid}-");
    let dirs: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    let mut pids = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(n) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cwd) = std::fs::read_link(p.path().join("cwd")) {
            if dirs.iter().any(|d| cwd.starts_with(d)) {
                pids.push(n);
            }
        }
    }
    (pids, dirs)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Starts a run and waits until it is in the fault phase, holding DB locks; returns the child, the
/// processes it started and the ports it printed. The caller signals and waits for the child.
#[allow(clippy::zombie_processes)]
fn run_until_fault(reports: &Path) -> (Child, Vec<i32>, Vec<PathBuf>, Vec<u16>, PathBuf) {
    let log = reports.join("stderr.log");
    let mut child = spawn_run("pool-exhaustion", None, reports, &[], &log);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l.trim_start().starts_with("fault ")) {
            let ports: Vec<u16> = text
                .split("http://127.0.0.1:")
                .skip(1)
                .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                .collect();
            let (pids, dirs) = processes_of_run(child.id());
            if pids.len() >= 5 && ports.len() == 2 {
                return (child, pids, dirs, ports, log);
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("expected postgres, nginx, prometheus and replicas ({pids:?}) and two ports ({ports:?}): {text}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("never reached the fault phase: {text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_nothing_left(pids: &[i32], ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for port in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "port {port} still answers"
        );
    }
}

#[test]
fn ctrl_c_mid_fault_cleans_up_everything() {
    let _g = serial();
    app_binaries_built();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, pids, dirs, ports, log) = run_until_fault(reports.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_nothing_left(&pids, &ports);
    // Processes gone means PostgreSQL is gone, and with it the held locks and connections.
    for d in dirs {
        assert!(!d.exists(), "temp dir left behind: {}", d.display());
    }
    // The aborted run still wrote its report: verdict aborted, why, and what was recorded.
    let run = dirs_in(&reports.path().join("pool-exhaustion"))
        .into_iter()
        .find(|d| d.join("report.json").is_file())
        .expect("a report of the interrupted run");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"], "aborted");
    assert_eq!(report["aborted"], "interrupted");
    assert_eq!(
        report["expectations"],
        serde_json::json!([]),
        "nothing judged"
    );
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["baseline", "fault"],
        "recorded until the interrupt"
    );
    assert!(!responses(&run).is_empty());
    let junit = junit_parses(&run.join("junit.xml"));
    assert_eq!(
        junit.suites[0].errors, 1,
        "an aborted run is an errored test case"
    );
}

#[test]
fn kill_9_mid_fault_leaves_no_process_and_the_next_run_sweeps_the_temp_dir() {
    let _g = serial();
    app_binaries_built();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, pids, dirs, ports, _log) = run_until_fault(reports.path());
    child.kill().unwrap();
    child.wait().unwrap();
    // Children die with the harness (parent-death signal).
    assert_nothing_left(&pids, &ports);
    assert!(
        dirs.iter().all(|d| d.exists()),
        "a killed harness cannot remove its temp dir"
    );
    // Any later run sweeps it, even one that stops at bad input.
    let out = Command::new(BROWNOUT)
        .args(["run", "no-such-scenario"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for d in dirs {
        assert!(!d.exists(), "not swept: {}", d.display());
    }
}

/// The README's incident walkthrough runs as written: every command of its block (after `./just
/// build`, which the suite has done), from the repository, with the scenarios dir and the reports
/// in a temp dir. `new` writes a valid scenario; it passes on the hardened app and fails, naming
/// what the README says, with the incident's bug.
#[test]
fn the_readme_incident_walkthrough_runs_as_written() {
    let _g = serial();
    app_binaries_built();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## From an incident to a scenario")
        .nth(1)
        .expect("README has the walkthrough");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    let commands: Vec<String> = block
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 4, "{commands:?}");
    assert_eq!(commands[0], "./just build");
    let dir = tempfile::tempdir().unwrap();
    let mut outcomes = Vec::new();
    for cmd in &commands[1..] {
        // The block names ./target/release/brownout: the suite's own build of it.
        let cmd = cmd.replace("./target/release/brownout", BROWNOUT);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(root())
            .env("BROWNOUT_SCENARIOS", dir.path())
            .env("BROWNOUT_REPORTS", dir.path().join("reports"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        outcomes.push((out.status.code(), stdout, stderr));
    }
    let scenario = dir.path().join("payments-refused.toml");
    let (code, stdout, stderr) = &outcomes[0];
    assert_eq!(*code, Some(0), "new: {stdout}{stderr}");
    assert!(scenario.is_file(), "{stdout}");
    for (i, (bugs, want_code, want_failed)) in [
        (vec![], 0, set(&[])),
        (
            vec!["dependency-errors-500"],
            1,
            set(&["fault-answers-from-app", "pages"]),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, stdout, stderr) = &outcomes[i + 1];
        assert_eq!(*code, Some(want_code), "run {bugs:?}: {stdout}\n{stderr}");
        let report = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("report: "))
            .map(|p| Path::new(p).parent().unwrap().to_path_buf())
            .unwrap_or_else(|| panic!("no report path: {stdout}\n{stderr}"));
        let failed = check_run(scenario.to_str().unwrap(), &report, &bugs, stderr);
        assert_eq!(failed, want_failed, "run {bugs:?}");
    }
}
