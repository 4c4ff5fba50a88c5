//! Cleanup under any abort: a short scenario (`tests/fixtures/abort/short-pool.toml`: start-up,
//! baseline, held DB locks, heal, teardown in about 12 s) is started again and again and stopped
//! at a random moment — by SIGINT (Ctrl-C) or by SIGKILL of the harness. After each, nothing of
//! the run may be left: no process of the programs a run starts, no listening port, no mount, no
//! work directory (after SIGKILL: once the next run has swept it), and so no PostgreSQL session
//! (the run's PostgreSQL is its own process). Every run after an abort must start clean.
//! Only what the test's own runs started counts (a [`Scope`]: their `TMPDIR` and a marker in their
//! environment), so a game day or another suite running on the machine at the same time does not.
//!
//! `BROWNOUT_ABORT_RUNS` sets the repetitions per signal (default 4; `just abort-soak` runs
//! 200). Each test prints how many aborts landed in each stage of the run.

#[path = "support/leftovers.rs"]
mod leftovers;

mod support;
use leftovers::{Scope, Snapshot};
use rand::Rng;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{root, BROWNOUT};

const SCENARIO: &str = "tests/fixtures/abort/short-pool.toml";
/// Longer than a whole run of the scenario (≈ 16 s), so some aborts land in teardown or after.
const LATEST: Duration = Duration::from_millis(17_000);

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn runs() -> usize {
    std::env::var("BROWNOUT_ABORT_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

fn spawn(scope: &Scope, reports: &Path, log: &Path) -> Child {
    scope.spawn(
        Command::new(BROWNOUT)
            .args(["run", SCENARIO, "--reports-dir", reports.to_str().unwrap()])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap())),
    )
}

/// Where in the run the signal landed, from the stage lines of its log and the phase lengths
/// (baseline 2 s, fault 3 s, recovery 2 s after "system up").
fn stage(log: &str, since_up: Option<Duration>) -> &'static str {
    if log.contains("tearing down") {
        return "teardown";
    }
    match since_up {
        None => "start-up",
        Some(t) if t < Duration::from_secs(2) => "baseline",
        Some(t) if t < Duration::from_millis(2300) => "injection",
        Some(t) if t < Duration::from_secs(5) => "fault",
        Some(t) if t < Duration::from_millis(5300) => "heal",
        Some(t) if t < Duration::from_secs(7) => "recovery",
        Some(_) => "teardown",
    }
}

/// Starts a run, waits a random time (watching for "system up"), sends `signal`; returns the
/// exit status, the stage the signal landed in, and the log.
fn abort_once(
    scope: &Scope,
    signal: nix::sys::signal::Signal,
    reports: &Path,
    rng: &mut impl Rng,
) -> (std::process::ExitStatus, &'static str, String) {
    let log = reports.join("stderr.log");
    let mut child = spawn(scope, reports, &log);
    let started = Instant::now();
    let wait = Duration::from_millis(rng.random_range(0..LATEST.as_millis() as u64));
    let mut up_at: Option<Instant> = None;
    let mut exited = None;
    while started.elapsed() < wait {
        if up_at.is_none()
            && std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("system up in")
        {
            up_at = Some(Instant::now());
        }
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let stage = if exited.is_some() {
        "after the run"
    } else {
        let s = stage(&text, up_at.map(|u| u.elapsed()));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        s
    };
    // Bounded: an abort that does not end the run is itself a failure.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = exited.or_else(|| child.try_wait().unwrap()) {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run did not end within 60 s of {signal:?} at {stage}: {text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (status, stage, text)
}

fn sweep_by_a_later_run(scope: &Scope) {
    // Any later run sweeps what a killed one left, even one that stops at bad input.
    let out = scope.output(
        Command::new(BROWNOUT)
            .args(["run", "no-such-scenario"])
            .current_dir(root()),
    );
    assert_eq!(out.status.code(), Some(2));
}

fn finish_cleanly(scope: &Scope, before: &Snapshot) {
    // The next run after all the aborts starts clean and runs to its verdict.
    let reports = tempfile::tempdir().unwrap();
    let log = reports.path().join("stderr.log");
    let status = spawn(scope, reports.path(), &log).wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the run after the aborts: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let left = before.wait_back(scope, Duration::from_secs(10));
    assert!(left.is_empty(), "after a complete run: {left:?}");
}

fn soak(signal: nix::sys::signal::Signal) {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(BROWNOUT).parent().unwrap();
    assert!(
        dir.join("checkout").is_file(),
        "build the workspace's binaries first (just test does)"
    );
    let scope = Scope::new();
    sweep_by_a_later_run(&scope);
    let before = scope.snapshot();
    assert!(
        before.is_empty(),
        "the scope is not clean before the test: {before:?}"
    );
    let mut rng = rand::rng();
    let mut stages: BTreeMap<&str, usize> = BTreeMap::new();
    let n = runs();
    for i in 0..n {
        let reports = tempfile::tempdir().unwrap();
        let (status, stage, log) = abort_once(&scope, signal, reports.path(), &mut rng);
        let mut counted_as = stage;
        let sigkill = signal == nix::sys::signal::Signal::SIGKILL;
        match (stage, sigkill) {
            ("after the run", _) => assert_eq!(status.code(), Some(0), "{log}"),
            (_, false) => {
                // Interrupted (130); or it had already judged and was tearing down (0); or the
                // signal came during start-up (the sweep, validation), before the process had
                // installed its handler (it had said nothing yet): then SIGINT's default action
                // ended it, as it ends any program, before the run had made anything (checked
                // below like every run).
                let before_the_handler =
                    status.signal() == Some(signal as i32) && !log.contains("brownout:");
                assert!(
                    matches!(status.code(), Some(130) | Some(0)) || before_the_handler,
                    "run {i}, SIGINT at {stage}: exit {status:?}: {log}"
                );
                if before_the_handler {
                    counted_as = "start-up, before the handler";
                }
            }
            (_, true) => {
                assert_eq!(status.signal(), Some(9), "run {i}: {status:?}");
            }
        }
        *stages.entry(counted_as).or_default() += 1;
        if sigkill {
            // The children die with the harness; only its work dir (and mounts) can stay, for the
            // next run to sweep.
            sweep_by_a_later_run(&scope);
        }
        let left = before.wait_back(&scope, Duration::from_secs(10));
        assert!(
            left.is_empty(),
            "run {i}: {signal:?} at {stage} left: {left:?}\n{log}"
        );
        if !sigkill && status.code() == Some(130) {
            // An interrupted run still wrote its report, unless it was stopped before it had
            // a report directory.
            let reports_of_run = reports.path().join("short-pool");
            if let Some(run) = std::fs::read_dir(&reports_of_run)
                .ok()
                .and_then(|mut rd| rd.next())
                .and_then(|e| e.ok())
            {
                let report = std::fs::read_to_string(run.path().join("report.json"))
                    .unwrap_or_else(|e| panic!("run {i} at {stage}: no report.json ({e}): {log}"));
                let report: serde_json::Value = serde_json::from_str(&report).unwrap();
                assert_eq!(report["verdict"], "aborted", "run {i} at {stage}");
            }
        }
    }
    eprintln!(
        "{signal:?} at a random moment, {n} runs, nothing left after any; by stage: {}",
        stages
            .iter()
            .map(|(s, c)| format!("{s} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    finish_cleanly(&scope, &before);
}

#[test]
fn sigint_at_a_random_moment_leaves_nothing() {
    soak(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigkill_at_a_random_moment_leaves_nothing_after_the_next_run() {
    soak(nix::sys::signal::Signal::SIGKILL);
}

/// The checks count what the test's own runs left and only that: a brownout-like process of
/// another run (its own work dir elsewhere, another suite's scope) is not counted; a process left
/// in this scope's work dir, or carrying its marker, or a work dir of its own, is.
#[test]
fn the_checks_count_only_what_the_tests_own_runs_left() {
    let scope = Scope::new();
    let before = scope.snapshot();
    assert!(before.is_empty(), "{before:?}");
    // Foreign: a run of someone else (a work dir in the machine's temp dir) and another suite's
    // run (another scope).
    let foreign_run = tempfile::Builder::new()
        .prefix("brownout-run-1-foreign-")
        .tempdir()
        .unwrap();
    let other = Scope::new();
    let other_run = other.dir().join("brownout-run-2-other");
    std::fs::create_dir(&other_run).unwrap();
    let mut foreign = [
        leftovers::plant_process(foreign_run.path(), &[]),
        leftovers::plant_process(&other_run, &[(leftovers::MARKER, other.dir())]),
    ];
    let left = before.wait_back(&scope, Duration::from_millis(300));
    assert!(left.is_empty(), "foreign processes counted: {left:?}");
    // Own: a process in a work dir of this scope, one elsewhere carrying its marker.
    let own_run = scope.dir().join("brownout-run-3-own");
    std::fs::create_dir(&own_run).unwrap();
    let mut own = [
        leftovers::plant_process(&own_run, &[]),
        leftovers::plant_process(foreign_run.path(), &[(leftovers::MARKER, scope.dir())]),
    ];
    let left = before.wait_back(&scope, Duration::from_millis(0));
    for child in own.iter_mut().chain(foreign.iter_mut()) {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut own_pids: Vec<u32> = own.iter().map(|c| c.id()).collect();
    own_pids.sort();
    let expected: Vec<String> = own_pids
        .iter()
        .map(|pid| format!("process {pid} (sleep)"))
        .chain([format!("run dir {}", own_run.display())])
        .collect();
    assert_eq!(left, expected);
}
