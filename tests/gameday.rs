//! A real game day on the local platform, driven through its live page in headless Chromium and
//! through the `brownout gameday` subcommands: open the page, inject the slow-payments preset with
//! the form, see the app's 503 share rise and the breaker alert fire on the page, write a note and
//! change the rate from the command line, heal with the page's button, see it clear, stop with
//! the stop button; then the report's windows, notes and rates, and nothing left behind — of what
//! the test's own game days started (a [`leftovers::Scope`]), whatever else runs on the machine.
//! Needs root, the local platform's programs and a headless browser (`./just deps local page`).
//! The 30-minute version is `./just gameday-soak`.

#[path = "support/cdp.rs"]
mod cdp;
#[path = "support/chromium.rs"]
#[allow(dead_code)] // only its Chromium lookup is used here
mod chromium;
#[path = "support/leftovers.rs"]
mod leftovers;

mod support;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{root, BROWNOUT};

/// The tests that run a stack take turns (two stacks at once would compete for the machine's
/// cores); each checks that its own scope is empty after it.
static STACK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn stack_turn() -> std::sync::MutexGuard<'static, ()> {
    STACK.lock().unwrap_or_else(|e| e.into_inner())
}

fn cli(scope: &leftovers::Scope, reports: &std::path::Path, args: &[&str]) -> std::process::Output {
    scope.output(
        Command::new(BROWNOUT)
            .arg("gameday")
            .args(args)
            .env("BROWNOUT_REPORTS", reports)
            .env_remove("BROWNOUT_GAMEDAY_TOKEN"),
    )
}

const SHARE_503: &str = "parseInt(document.getElementById('share-app-503').textContent)";
const BREAKER: &str = "(document.querySelector('tr[data-alert=\"CheckoutPaymentsBreakerOpen\"]') || {dataset: {}}).dataset.state";
const SHOW: &str = "JSON.stringify({stage: document.body.dataset.stage, updates: document.body.dataset.updates, s503: document.getElementById('share-app-503').textContent, breaker: (document.querySelector('tr[data-alert=\"CheckoutPaymentsBreakerOpen\"]') || {dataset: {}}).dataset.state, faults: [...document.querySelectorAll('li[data-fault]')].map(l => l.dataset.fault), error: document.getElementById('error').textContent})";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // held for the whole test, on purpose
async fn a_game_day_driven_from_the_browser_and_the_command_line() {
    let _turn = stack_turn();
    let scope = leftovers::Scope::new();
    let before = scope.snapshot();
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let log = std::fs::File::create(dir.path().join("gameday.log")).unwrap();
    let mut child = Command::new(BROWNOUT);
    child
        .current_dir(root())
        .args([
            "gameday",
            "scenarios/systems/checkout.toml",
            "--load",
            "scenarios/slow-upstream.toml",
            "--cap",
            "6m",
        ])
        .arg("--reports-dir")
        .arg(&reports)
        .env_remove("BROWNOUT_GAMEDAY_TOKEN")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null());
    let mut child = scope.spawn(&mut child);
    let log_tail = || {
        let text = std::fs::read_to_string(dir.path().join("gameday.log")).unwrap_or_default();
        text.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    let session = reports.join("gameday/session.json");
    let started = Instant::now();
    while !session.is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none(),
            "no game day session after 60 s:\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The session file holds the token: only its owner may read it.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&session).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    let url = format!(
        "{}/?token={}",
        info["url"].as_str().unwrap(),
        info["token"].as_str().unwrap()
    );

    let mut browser = cdp::Browser::launch().await;
    let page = browser.open(&url).await;
    browser
        .wait_for(
            &page,
            "document.body.dataset.stage === 'running'",
            Duration::from_secs(60),
            "the game day running",
            SHOW,
        )
        .await;
    // Steady for a while: hardly any 503 and the breaker alert not firing.
    browser
        .wait_for(&page, &format!("{SHARE_503} < 5 && Number(document.getElementById('answers-10s').textContent) > 300 && parseInt(document.getElementById('clock').textContent) >= 15"), Duration::from_secs(40), "a steady system", SHOW)
        .await;
    assert_ne!(browser.eval(&page, BREAKER).await, "firing");

    // Inject the slow-payments preset through the form.
    browser
        .eval(&page, "(() => { const s = document.getElementById('preset'); s.value = 'slow-payments'; s.dispatchEvent(new Event('change')); document.getElementById('inject-btn').click(); return true; })()")
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelector('li[data-fault=\"slow-payments\"]') !== null",
            Duration::from_secs(20),
            "the injected fault listed",
            SHOW,
        )
        .await;
    browser
        .wait_for(
            &page,
            &format!("{SHARE_503} >= 30 && {BREAKER} === 'firing'"),
            Duration::from_secs(60),
            "the 503 share up and the breaker alert firing",
            SHOW,
        )
        .await;
    let shot = dir.path().join("gameday.png");
    browser.screenshot(&page, &shot).await;
    if let Ok(to) = std::env::var("BROWNOUT_SCREENSHOT") {
        std::fs::copy(&shot, to).unwrap();
    }

    // From another terminal: a note, a rate, the status.
    let out = cli(
        &scope,
        &reports,
        &["note", "breaker open, reads still fine"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&scope, &reports, &["rate", "60"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&scope, &reports, &["status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("window slow-payments") && status.contains("fault slow-payments (proxy)"),
        "{status}"
    );
    // Wrong input from the command line: exit 2 with the reason, the game day goes on.
    let out = cli(
        &scope,
        &reports,
        &[
            "inject",
            r#"{"kind": "proxy", "proxy": "nope", "toxic": {"kind": "down"}}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("proxy 'nope'"));
    browser
        .wait_for(&page, "document.getElementById('rate').textContent === '60' && document.querySelectorAll('#notes li').length === 1", Duration::from_secs(10), "the new rate and the note on the page", SHOW)
        .await;

    // Heal with the page's button: the 503 share and the alert clear.
    browser
        .eval(&page, "(() => { document.querySelector('button.heal[data-name=\"slow-payments\"]').click(); return true; })()")
        .await;
    browser
        .wait_for(&page, &format!("document.querySelectorAll('li[data-fault]').length === 0 && {SHARE_503} < 5 && {BREAKER} !== 'firing'"), Duration::from_secs(90), "the fault healed, 503s and the breaker alert cleared", SHOW)
        .await;

    // Stop with the stop button (its confirmation answered yes).
    browser
        .eval(&page, "(() => { window.confirm = () => true; document.getElementById('stop').click(); return true; })()")
        .await;
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(120),
            "still running 120 s after stop:\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(browser);
    assert_eq!(
        status.code(),
        Some(0),
        "the game day's verdict:\n{}",
        log_tail()
    );
    assert!(!session.exists(), "the session file outlived the game day");

    let report_dir = std::fs::read_dir(reports.join("gameday-checkout"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("report.json").is_file())
        .expect("a report");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["steady", "slow-payments", "steady-2"],
        "the windows"
    );
    let slow = &r["phases"][1];
    assert_eq!(slow["fault"], "proxy");
    assert!(slow["client_5xx"].as_u64().unwrap() > 50, "{slow}");
    assert_eq!(r["notes"][0]["text"], "breaker open, reads still fine");
    let rates: Vec<u64> = r["load"]["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rate"].as_u64().unwrap())
        .collect();
    assert_eq!(rates, [40, 60]);
    // Slots for the highest rate `rate` may set (--max-rate 1000 × 10 s × 2), not for the
    // scenario's own 40 req/s: a rate raised later must not make sends late for want of slots.
    assert_eq!(r["load"]["max_in_flight"], 20_000);
    assert_eq!(r["verdict"], "pass");
    for f in ["report.md", "report.html", "responses.jsonl"] {
        assert!(report_dir.join(f).is_file(), "{f}");
    }
    let left = before.wait_back(&scope, Duration::from_secs(10));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_non_loopback_bind_is_refused_unless_asked_for_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BROWNOUT)
        .current_dir(root())
        .args([
            "gameday",
            "scenarios/systems/checkout.toml",
            "--listen",
            "0.0.0.0:0",
        ])
        .arg("--reports-dir")
        .arg(dir.path())
        .env_remove("BROWNOUT_GAMEDAY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--token"),
        "{err}"
    );
    // Nothing was started or written.
    assert!(!dir.path().join("gameday/session.json").exists());
    // A short token is refused too.
    let out = Command::new(BROWNOUT)
        .current_dir(root())
        .args([
            "gameday",
            "scenarios/systems/checkout.toml",
            "--listen",
            "0.0.0.0:0",
            "--token",
            "secret",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
    // No running game day: the subcommands say so (exit 3) instead of hanging.
    let out = cli(&leftovers::Scope::new(), dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running game day"));
}

#[test]
fn a_game_day_stops_itself_at_its_memory_limit_healing_and_reporting() {
    stops_itself_like_the_cap("--max-memory", "1MiB", "reached its memory limit");
}

/// Responses stream to the reports directory: a game day stops itself (healing, reporting)
/// before that filesystem fills, as at its memory limit. No disk here has 1 TiB free.
#[test]
fn a_game_day_stops_itself_when_its_reports_disk_is_nearly_full() {
    stops_itself_like_the_cap("--min-free-disk", "1TiB", "reports disk is nearly full");
}

/// Runs a game day with `flag value`, which must stop it by itself, saying `says`.
fn stops_itself_like_the_cap(flag: &str, value: &str, says: &str) {
    let _turn = stack_turn();
    let scope = leftovers::Scope::new();
    let before = scope.snapshot();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BROWNOUT);
    cmd.current_dir(root())
        .args([
            "gameday",
            "scenarios/systems/checkout.toml",
            "--load",
            "scenarios/slow-upstream.toml",
            "--cap",
            "2m",
            flag,
            value,
        ])
        .arg("--reports-dir")
        .arg(dir.path())
        .env_remove("BROWNOUT_GAMEDAY_TOKEN");
    let out = scope.output(&mut cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(says), "{err}");
    // Stopped like the cap stops it: torn down, a report written, exit by its verdict.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    let report = std::fs::read_dir(dir.path().join("gameday-checkout"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("report.json"))
        .find(|p| p.is_file())
        .expect("a report");
    let text = std::fs::read_to_string(report).unwrap();
    assert!(text.contains(says), "the report does not say {says:?}");
    assert!(!dir.path().join("gameday/session.json").exists());
    let left = before.wait_back(&scope, Duration::from_secs(10));
    assert!(left.is_empty(), "left behind: {left:?}");
}
