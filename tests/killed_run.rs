//! A killed run leaves its evidence: `responses.jsonl` is written into the run's report directory
//! while the load runs (flushed at least once a second), so a harness SIGKILLed a few seconds into
//! its load — no teardown, no report, no destructor — still leaves parseable lines of every answer
//! recorded until about a second before. The stack is cleaned up as `tests/abort.rs` checks: only
//! this test's own runs count (a `Scope`), and a later run sweeps what the killed one left.

#[path = "support/leftovers.rs"]
mod leftovers;

mod support;
use leftovers::Scope;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{root, BROWNOUT};

/// Start-up, 2 s baseline, 3 s fault, 2 s recovery at 20 req/s (the abort tests' scenario).
const SCENARIO: &str = "tests/fixtures/abort/short-pool.toml";

/// The run's report directory under `reports` (`<scenario>/<run id>/`), once made.
fn report_dir(reports: &Path) -> Option<PathBuf> {
    std::fs::read_dir(reports.join("short-pool"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_dir())
}

#[test]
fn a_run_killed_during_its_load_leaves_its_responses_on_disk() {
    let dir = Path::new(BROWNOUT).parent().unwrap();
    assert!(
        dir.join("checkout").is_file(),
        "build the workspace's binaries first (just test does)"
    );
    let scope = Scope::new();
    let before = scope.snapshot();
    assert!(before.is_empty(), "the scope is not clean: {before:?}");
    let reports = tempfile::tempdir().unwrap();
    let log = reports.path().join("stderr.log");
    let mut child = scope.spawn(
        Command::new(BROWNOUT)
            .args(["run", SCENARIO, "--reports-dir"])
            .arg(reports.path())
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap())),
    );
    // Wait for the system to be up (the load starts then), bounded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("system up in") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended before its load began ({status:?}): {text}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the system did not come up within 120 s: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the fault phase: about 70 answers recorded by then at 20 req/s.
    std::thread::sleep(Duration::from_millis(3_500));
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");

    let run = report_dir(reports.path()).expect("the run's report directory");
    let text = std::fs::read_to_string(run.join("responses.jsonl"))
        .expect("responses.jsonl written during the run");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // 3.5 s at 20 req/s, less what the last second's buffer may still have held.
    assert!(
        lines.len() >= 30,
        "only {} responses on disk after 3.5 s of load",
        lines.len()
    );
    for l in &lines {
        for field in [
            "t_ms",
            "phase",
            "request",
            "status",
            "latency_ms",
            "layer",
            "seq",
        ] {
            assert!(l.get(field).is_some(), "no '{field}' in {l}");
        }
    }
    assert!(
        lines.iter().any(|l| l["status"] == 200),
        "no answered request among {} lines",
        lines.len()
    );
    // A killed run writes no report: only the streamed evidence is there.
    assert!(!run.join("report.json").exists());
    // The acknowledged keys stream too (the checkout requests carry idempotency keys).
    let keys = std::fs::read_to_string(run.join("acknowledged.jsonl")).unwrap();
    assert!(keys
        .lines()
        .all(|k| serde_json::from_str::<String>(k).is_ok()));

    // Cleaned up as after any SIGKILL: a later run sweeps what the killed one left.
    let out = scope.output(
        Command::new(BROWNOUT)
            .args(["run", "no-such-scenario"])
            .current_dir(root()),
    );
    assert_eq!(out.status.code(), Some(2));
    let left = before.wait_back(&scope, Duration::from_secs(10));
    assert!(left.is_empty(), "the killed run left: {left:?}");
}
