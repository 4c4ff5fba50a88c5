//! Game days: the system stays up under steady load while people inject and heal faults by hand
//! (the control API in [`api`], the page it serves, or `brownout gameday inject|heal|…`), watch it
//! live ([`live`]), write notes, and stop it (the stop button, Ctrl-C or the time cap). Then every
//! active fault is healed, newest first, the system is torn down and the same report as a
//! scenario's is written, with the fault windows as its phases ([`windows`]) and the notes.

pub mod api;
pub mod catalog;
mod driver;
pub mod live;
pub mod windows;

use crate::error::{BrownoutError, Result};
use crate::plan::{Pacing, Plan};
use crate::platform::Platform;
use crate::runner::{Run, RunOptions, RunOutcome};
use crate::spec::{ExpectSpec, FaultSpec, Scenario};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The longest cap a game day may be given.
pub const MAX_CAP: Duration = Duration::from_secs(12 * 3600);

/// An action, from the API to the game day's loop.
#[derive(Debug)]
pub enum Command {
    Inject {
        name: Option<String>,
        spec: FaultSpec,
    },
    /// Heal one fault by name, or all of them (newest first).
    Heal(Option<String>),
    Rate(u32),
    Note(String),
    Stop,
}

impl Command {
    pub fn describe(&self) -> String {
        match self {
            Command::Inject { name, spec } => {
                format!(
                    "inject {}: {}",
                    name.as_deref().unwrap_or("(unnamed)"),
                    spec.kind()
                )
            }
            Command::Heal(Some(n)) => format!("heal {n}"),
            Command::Heal(None) => "heal all".into(),
            Command::Rate(r) => format!("rate {r}"),
            Command::Note(t) => format!("note: {t}"),
            Command::Stop => "stop".into(),
        }
    }
}

/// The loop's answer: a JSON body, or a status and why.
pub type Reply = std::result::Result<serde_json::Value, (StatusCode, String)>;

/// A game day to run: the load (a scenario loaded against the game day's system; its phases and
/// expectations are not used) and the expectations to judge over the fault windows.
pub struct Gameday {
    pub load_from: Scenario,
    pub expectations: Vec<ExpectSpec>,
}

pub struct GamedayOptions {
    pub bugs: Vec<String>,
    pub reports_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub listen: SocketAddr,
    pub listen_given: bool,
    pub token: Option<String>,
    pub cap: Duration,
    pub max_rate: u32,
    /// Resident memory (bytes) past which the game day stops itself, like the cap.
    pub max_memory: u64,
    /// Free space (bytes) on the reports directory's filesystem below which the game day stops
    /// itself, like the cap: its responses stream there.
    pub min_free_disk: u64,
}

/// Where `brownout gameday inject|heal|…` find a running game day: URL, token and pid, written
/// 0600 under the reports directory and removed at the end.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    pub url: String,
    pub token: String,
    pub pid: u32,
    pub report_dir: String,
}

pub fn session_file(reports_dir: &std::path::Path) -> PathBuf {
    reports_dir.join("gameday").join("session.json")
}

fn write_session(path: &std::path::Path, info: &SessionInfo) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(serde_json::to_string_pretty(info)?.as_bytes())
}

/// Runs the game day until stopped or capped, then heals, tears down and writes the report.
pub async fn run<P: Platform>(
    gd: Gameday,
    platform: &mut P,
    opts: &GamedayOptions,
    cancel: watch::Receiver<bool>,
) -> Result<RunOutcome> {
    api::check_bind(opts.listen, opts.listen_given, opts.token.is_some())
        .map_err(BrownoutError::BadInput)?;
    if opts.cap.is_zero() || opts.cap > MAX_CAP {
        return Err(BrownoutError::BadInput(format!(
            "--cap {} is out of range: above 0 and at most 12h",
            humantime::format_duration(opts.cap)
        )));
    }
    if opts.max_rate == 0 || opts.max_rate > crate::spec::MAX_RATE {
        return Err(BrownoutError::BadInput(format!(
            "--max-rate {} is out of range: 1 to {}",
            opts.max_rate,
            crate::spec::MAX_RATE
        )));
    }
    let Gameday {
        load_from: scenario,
        expectations,
    } = gd;
    let max_rate = opts.max_rate.max(scenario.load.rate);
    let token = opts.token.clone().unwrap_or_else(api::new_token);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| {
            BrownoutError::Environment(format!("cannot listen on {}: {e}", opts.listen))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| BrownoutError::Environment(format!("listener: {e}")))?;
    let run_opts = RunOptions {
        bugs: opts.bugs.clone(),
        reports_dir: opts.reports_dir.clone(),
        bin_dir: opts.bin_dir.clone(),
        baseline: None,
    };
    let run = Run::begin(
        plan(&scenario, expectations),
        &scenario.system,
        scenario.seed,
        &run_opts,
    )?;
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (view_tx, view_rx) = watch::channel(live::View {
        stage: "starting".into(),
        rate: scenario.load.rate,
        max_rate,
        cap_s: opts.cap.as_secs(),
        ..live::View::default()
    });
    let state = Arc::new(api::ApiState {
        token: token.clone(),
        commands: cmd_tx,
        view: view_rx,
        fault_checks: crate::spec::gameday::FaultChecks::new(&scenario.system),
        catalog: catalog::catalog(&scenario.system),
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, api::router(state)).await;
    });
    let url = format!("http://{addr}");
    let session = session_file(&opts.reports_dir);
    let info = SessionInfo {
        url: url.clone(),
        token: token.clone(),
        pid: std::process::id(),
        report_dir: run.report_dir().display().to_string(),
    };
    if let Err(e) = write_session(&session, &info) {
        eprintln!(
            "brownout: cannot write {}: {e} (the subcommands need --url and --token)",
            session.display()
        );
    }
    eprintln!(
        "brownout: game day on {} — control API and live page:",
        scenario.system.name
    );
    eprintln!("  {url}/?token={token}");
    eprintln!("  brownout gameday inject|heal|rate|note|status|stop (from another terminal; they read {})", session.display());
    eprintln!(
        "  stops on the stop button, `brownout gameday stop`, Ctrl-C, or after {}",
        humantime::format_duration(opts.cap)
    );
    let mut driver = driver::Loop::new(driver::Setup {
        load: &scenario.load,
        seed: scenario.seed,
        evidence: run.evidence().clone(),
        view_tx,
        commands: cmd_rx,
        max_rate,
        cap: opts.cap,
        max_memory: opts.max_memory,
        min_free_disk: opts.min_free_disk,
        report_dir: run.report_dir().to_path_buf(),
        session,
    });
    let outcome = run.execute(&mut driver, platform, cancel).await;
    let view_tx = driver.end(outcome.as_ref().ok().map(|o| o.report_dir.as_path()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.abort();
    drop(view_tx);
    outcome
}

/// The game day's plan: its name and summary, its system, the load scenario's load (its rate set
/// by hand), and the expectations to judge over the fault windows.
fn plan(load_from: &Scenario, expectations: Vec<ExpectSpec>) -> Plan {
    let system = &load_from.system;
    Plan {
        name: format!("gameday-{}", system.name),
        summary: format!(
            "Game day on {}: faults injected and healed by hand under steady load",
            system.name
        ),
        system: system.path.clone(),
        system_override: load_from.system_override,
        load: load_from.load.clone(),
        pacing: Pacing::ByHand,
        expectations,
        silent_outages_allowed: None,
        regression: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A game day's plan is its own (name, summary, no regression, rate by hand), with the load
    /// and system of the scenario it was given and the expectations it was given.
    #[test]
    fn a_game_days_plan_is_its_own_with_the_given_load() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let load_from = crate::spec::load_scenario(&root.join("pool-exhaustion.toml")).unwrap();
        let p = plan(&load_from, vec![ExpectSpec::default_no_silent_outage()]);
        assert_eq!(p.name, format!("gameday-{}", load_from.system.name));
        assert_eq!(
            p.summary,
            format!(
                "Game day on {}: faults injected and healed by hand under steady load",
                load_from.system.name
            )
        );
        assert_eq!(p.system, load_from.system.path);
        assert_eq!(p.pacing, Pacing::ByHand);
        assert_eq!(p.load.rate, load_from.load.rate);
        assert_eq!(p.expectations.len(), 1);
        assert!(p.regression.is_none() && p.silent_outages_allowed.is_none());
    }
}
