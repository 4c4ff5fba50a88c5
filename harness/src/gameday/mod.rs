//! Game days: the system stays up under steady load while people inject and heal faults by hand
//! (the control API in [`api`], the page it serves, or `brownout gameday inject|heal|…`), watch it
//! live ([`live`]), write notes, and stop it (the stop button, Ctrl-C or the time cap). Then every
//! active fault is healed, newest first, the system is torn down and the same report as a
//! scenario's is written, with the fault windows as its phases ([`windows`]) and the notes.

pub mod api;
pub mod live;
pub mod windows;

use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::faults::{self, ActiveFault};
use crate::load;
use crate::platform::Platform;
use crate::runner::{self, Ending, RunOptions, RunOutcome};
use crate::spec::{ExpectSpec, FaultSpec, Phase, Scenario};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

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

/// A fault kind the system can take, with its parameters in words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindInfo {
    pub kind: String,
    pub parameters: String,
}

/// A ready-made fault for this system (the page's preset list).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    pub fault: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub kinds: Vec<KindInfo>,
    pub presets: Vec<Preset>,
}

/// What the system supports: every fault kind whose target it has, and presets built from its
/// proxies, services and volumes.
pub fn catalog(system: &crate::spec::System) -> Catalog {
    use serde_json::json;
    let f = &system.file;
    let mut kinds = Vec::new();
    let mut presets = Vec::new();
    if f.database.is_some() {
        kinds.push(KindInfo {
            kind: "pool-exhaustion".into(),
            parameters: "tables (default [\"orders\"]): tables to hold an EXCLUSIVE lock on".into(),
        });
        presets.push(Preset {
            name: "db-lock".into(),
            fault: json!({"kind": "pool-exhaustion"}),
        });
    }
    if !f.proxies.is_empty() {
        kinds.push(KindInfo {
            kind: "proxy".into(),
            parameters: format!(
                "proxy ({}), toxic: latency {{latency, jitter, fraction}}, reset, timeout, bandwidth, down, … (as in a scenario)",
                f.proxies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
        for p in &f.proxies {
            presets.push(Preset {
                name: format!("slow-{}", p.name),
                fault: json!({"kind": "proxy", "proxy": p.name, "toxic": {"kind": "latency", "latency": "6s"}}),
            });
            presets.push(Preset {
                name: format!("{}-down", p.name),
                fault: json!({"kind": "proxy", "proxy": p.name, "toxic": {"kind": "down"}}),
            });
        }
    }
    if !f.services.is_empty() {
        kinds.push(KindInfo {
            kind: "rolling-restart".into(),
            parameters: "service, progress_deadline (default as in a scenario)".into(),
        });
        kinds.push(KindInfo {
            kind: "rollout".into(),
            parameters: "service, remove_env [..], set_env {..}, progress_deadline".into(),
        });
        for s in &f.services {
            presets.push(Preset {
                name: format!("restart-{}", s.name.get_ref()),
                fault: json!({"kind": "rolling-restart", "service": s.name.get_ref()}),
            });
        }
    }
    let sized: Vec<(String, String)> = f
        .services
        .iter()
        .flat_map(|s| {
            s.volumes
                .iter()
                .filter(|v| v.size.is_some())
                .map(move |v| (s.name.get_ref().clone(), v.name.clone()))
        })
        .collect();
    if !sized.is_empty() {
        kinds.push(KindInfo {
            kind: "disk-full".into(),
            parameters: "service, volume (one with a size)".into(),
        });
        for (service, volume) in sized {
            presets.push(Preset {
                name: format!("full-{volume}"),
                fault: json!({"kind": "disk-full", "service": service, "volume": volume}),
            });
        }
    }
    Catalog { kinds, presets }
}

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

struct Active {
    name: String,
    spec: FaultSpec,
    fault: ActiveFault,
    since: Instant,
}

/// Runs the game day until stopped or capped, then heals, tears down and writes the report.
pub async fn run<P: Platform>(
    gd: Gameday,
    platform: &mut P,
    opts: &GamedayOptions,
    mut cancel: watch::Receiver<bool>,
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
        load_from: mut scenario,
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
    let name = format!("gameday-{}", scenario.system.name);
    let run_opts = RunOptions {
        bugs: opts.bugs.clone(),
        reports_dir: opts.reports_dir.clone(),
        bin_dir: opts.bin_dir.clone(),
        baseline: None,
    };
    let start = runner::begin(&name, scenario.seed, &run_opts)?;
    let evidence = Evidence::new();
    let (cmd_tx, mut cmd_rx) = mpsc::channel(16);
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
        system: scenario.system.path.clone(),
        catalog: catalog(&scenario.system),
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
        report_dir: start.report_dir.display().to_string(),
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

    let watchdog = crate::stall::watch("harness", evidence.clone());
    let mut stack_up = None;
    let mut loop_state = Loop {
        evidence: evidence.clone(),
        active: Vec::new(),
        windows: windows::Windows::default(),
        window_faults: Vec::new(),
        agg: live::Aggregator::default(),
        view_tx,
        rate: scenario.load.rate,
        max_rate,
        stage: "starting".into(),
    };
    let driven = drive(
        &scenario,
        platform,
        &start.deploy,
        opts,
        &mut loop_state,
        &mut cmd_rx,
        &mut cancel,
        &mut stack_up,
    )
    .await;
    watchdog.abort();
    loop_state.stage = "tearing down".into();
    loop_state.publish();
    eprintln!("brownout: tearing down");
    platform.teardown().await;
    let _ = std::fs::remove_file(&session);
    let data = evidence.with(std::mem::take);
    // The report's phases are the windows, each with the fault that opened it.
    scenario.phases = data
        .phases
        .iter()
        .enumerate()
        .map(|(i, w)| Phase {
            name: w.name.clone(),
            duration: Duration::from_millis(w.end_ms.saturating_sub(w.start_ms)),
            fault: loop_state.window_faults.get(i).cloned().flatten(),
        })
        .collect();
    scenario.name = name;
    scenario.summary = format!(
        "Game day on {}: faults injected and healed by hand under steady load",
        scenario.system.name
    );
    scenario.expectations = expectations;
    scenario.catches.clear();
    scenario.declares_catches = false;
    scenario.silent_outages_allowed = None;
    let outcome = runner::conclude(
        &scenario,
        start,
        Ending {
            driven,
            restarts: platform.restarts(),
            stack_up,
            ingress: platform.ingress_settings(),
            platform: platform.platform_facts(),
            bugs: &opts.bugs,
            baseline: None,
            load_model: "open: arrival rate set by hand (see load.rates), seeded stationary mix"
                .into(),
        },
        data,
    );
    if let Ok(o) = &outcome {
        let mut v = loop_state.view_tx.borrow().clone();
        v.stage = "ended".into();
        v.report = Some(o.report_dir.join("report.html").display().to_string());
        let _ = loop_state.view_tx.send(v);
    }
    // Pending API calls get "the game day is ending".
    drop(cmd_rx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.abort();
    outcome
}

/// The game day's state while it runs.
struct Loop {
    evidence: Evidence,
    active: Vec<Active>,
    windows: windows::Windows,
    /// For each window (phase index), the newest fault active in it (the report's `fault`).
    window_faults: Vec<Option<FaultSpec>>,
    agg: live::Aggregator,
    view_tx: watch::Sender<live::View>,
    rate: u32,
    max_rate: u32,
    stage: String,
}

impl Loop {
    /// Starts the window that the current set of active faults makes, with a snapshot of the
    /// ingress's counters at its start (so the report can set edge-counted answers beside what
    /// clients saw, per window).
    async fn new_window<P: Platform>(&mut self, platform: &mut P) {
        if let Some(counts) = platform.edge_counts().await {
            self.evidence.edge(counts);
        }
        let names: Vec<&str> = self.active.iter().map(|a| a.name.as_str()).collect();
        let name = self.windows.next(&names);
        self.evidence.begin_phase(&name);
        self.window_faults
            .push(self.active.last().map(|a| a.spec.clone()));
    }

    fn publish(&mut self) {
        let now_ms = self.evidence.now_ms();
        let view = self.evidence.with(|d| {
            self.agg.fold(d);
            let (replicas, alerts, events) = live::states(d);
            live::View {
                t_s: now_ms as f64 / 1000.0,
                stage: self.stage.clone(),
                rate: self.rate,
                max_rate: self.max_rate,
                cap_s: self.view_tx.borrow().cap_s,
                phase: d.phases.last().map(|p| p.name.clone()),
                last_10s: self.agg.shares(now_ms / 1000, 10),
                seconds: self.agg.seconds(),
                replicas,
                alerts,
                faults: self
                    .active
                    .iter()
                    .map(|a| live::FaultView {
                        name: a.name.clone(),
                        kind: a.spec.kind().into(),
                        what: a.fault.describe(),
                        since_s: self.evidence.ms_at(a.since) as f64 / 1000.0,
                    })
                    .collect(),
                phases: d
                    .phases
                    .iter()
                    .map(|p| live::PhaseView {
                        name: p.name.clone(),
                        start_s: p.start_ms as f64 / 1000.0,
                        end_s: p.end_ms.max(p.start_ms) as f64 / 1000.0,
                    })
                    .collect(),
                notes: d
                    .notes
                    .iter()
                    .map(|n| live::NoteView {
                        t_s: n.t_ms as f64 / 1000.0,
                        text: n.text.clone(),
                    })
                    .collect(),
                events,
                report: None,
            }
        });
        let _ = self.view_tx.send(view);
    }

    async fn heal<P: Platform>(&mut self, platform: &mut P, index: usize) -> Result<String> {
        let a = self.active.remove(index);
        let result = a.fault.heal(platform, &self.evidence).await;
        match &result {
            Ok(()) => self
                .evidence
                .event(format!("fault healed: {} ({})", a.name, a.spec.kind())),
            Err(e) => self.evidence.event(format!(
                "fault heal failed: {} ({}): {e}",
                a.name,
                a.spec.kind()
            )),
        }
        self.new_window(platform).await;
        result.map(|()| a.name)
    }

    /// Heals every active fault, newest first.
    async fn heal_all<P: Platform>(&mut self, platform: &mut P) -> Vec<String> {
        let mut healed = Vec::new();
        while !self.active.is_empty() {
            let i = self.active.len() - 1;
            match self.heal(platform, i).await {
                Ok(n) => healed.push(n),
                Err(e) => healed.push(format!("failed: {e}")),
            }
        }
        healed
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive<P: Platform>(
    scenario: &Scenario,
    platform: &mut P,
    deploy: &crate::platform::DeployOptions,
    opts: &GamedayOptions,
    st: &mut Loop,
    commands: &mut mpsc::Receiver<(Command, oneshot::Sender<Reply>)>,
    cancel: &mut watch::Receiver<bool>,
    stack_up: &mut Option<Duration>,
) -> Result<runner::Driven> {
    let evidence = st.evidence.clone();
    let (endpoints, poller) = runner::bring_up(
        &scenario.system,
        platform,
        deploy,
        &evidence,
        cancel,
        stack_up,
    )
    .await?;
    let (rate_tx, rate_rx) = watch::channel(scenario.load.rate);
    let load = load::start_steered(
        &endpoints.ingress_url,
        &scenario.load,
        scenario.seed,
        evidence.clone(),
        // Room reserved for ten minutes of records; a longer game day grows the list.
        Duration::from_secs(600),
        opts.cap + runner::WARMUP,
        Some(load::Steering {
            rate: rate_rx,
            max_rate: st.max_rate,
        }),
    )?;
    let deadline = tokio::time::Instant::now() + opts.cap;
    let ended = run_loop(
        platform,
        st,
        commands,
        cancel,
        &rate_tx,
        deadline,
        opts.max_memory,
    )
    .await;
    // Healing is what every ending does first, newest fault first.
    st.stage = "healing".into();
    st.publish();
    let healed = st.heal_all(platform).await;
    if !healed.is_empty() {
        eprintln!("brownout: healed {}", healed.join(", "));
    }
    let stopped = runner::wind_down(load, poller, platform, &evidence).await;
    ended?;
    stopped?;
    Ok(runner::Driven {
        restarts: platform.restarts(),
        integrity: None,
    })
}

/// Answers commands until stopped, interrupted or capped.
async fn run_loop<P: Platform>(
    platform: &mut P,
    st: &mut Loop,
    commands: &mut mpsc::Receiver<(Command, oneshot::Sender<Reply>)>,
    cancel: &mut watch::Receiver<bool>,
    rate_tx: &watch::Sender<u32>,
    deadline: tokio::time::Instant,
    max_memory: u64,
) -> Result<()> {
    st.stage = "warming up".into();
    st.publish();
    let warm = tokio::time::Instant::now() + runner::WARMUP;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_print = Instant::now();
    let mut started = false;
    loop {
        if !started && tokio::time::Instant::now() >= warm {
            st.new_window(platform).await;
            st.stage = "running".into();
            started = true;
        }
        tokio::select! {
            _ = tick.tick() => {
                st.publish();
                let rss = resident_bytes();
                if rss > max_memory {
                    let what = format!(
                        "the harness reached its memory limit ({} MB of {} MB, --max-memory): stopping",
                        rss / 1_000_000,
                        max_memory / 1_000_000
                    );
                    st.evidence.event(what.clone());
                    eprintln!("brownout: {what}");
                    return Ok(());
                }
                if last_print.elapsed() >= Duration::from_secs(10) {
                    last_print = Instant::now();
                    let v = st.view_tx.borrow().clone();
                    eprintln!(
                        "  {:>6.0} s  {:<24} rate {:>4}/s  last 10 s: {} answers, 5xx {:.0}% (ingress {:.0}%), no answer {:.0}%, p99 {}  faults: {}",
                        v.t_s, v.phase.as_deref().unwrap_or("-"), v.rate, v.last_10s.answers,
                        v.last_10s.s5xx * 100.0, v.last_10s.ingress_5xx * 100.0, v.last_10s.none * 100.0,
                        v.last_10s.p99_ms.map_or("-".into(), |p| format!("{p} ms")),
                        if v.faults.is_empty() { "none".to_string() } else { v.faults.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ") },
                    );
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                st.evidence.event("the game day reached its cap");
                eprintln!("brownout: the game day reached its cap");
                return Ok(());
            }
            _ = cancel.wait_for(|c| *c) => {
                st.evidence.event("stopped by Ctrl-C");
                eprintln!("brownout: stopping (Ctrl-C)");
                return Ok(());
            }
            got = commands.recv() => {
                let Some((cmd, reply)) = got else { return Ok(()) };
                if !started {
                    // The first window begins after the warm-up: actions wait for it.
                    let _ = reply.send(Err((StatusCode::CONFLICT, "the game day is still warming up; try again in a few seconds".into())));
                    continue;
                }
                let stop = matches!(cmd, Command::Stop);
                let answer = act(platform, st, cmd, rate_tx).await;
                let _ = reply.send(answer);
                st.publish();
                if stop {
                    return Ok(());
                }
            }
        }
    }
}

/// This process's resident memory now, in bytes (0 if /proc cannot tell).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| {
            // SAFETY: sysconf only reads a system constant.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            pages * page.max(4096) as u64
        })
}

async fn act<P: Platform>(
    platform: &mut P,
    st: &mut Loop,
    cmd: Command,
    rate_tx: &watch::Sender<u32>,
) -> Reply {
    use serde_json::json;
    let evidence = st.evidence.clone();
    match cmd {
        Command::Inject { name, spec } => {
            let taken = |n: &str| st.active.iter().any(|a| a.name == n);
            if let Some(n) = &name {
                if taken(n) {
                    return Err((
                        StatusCode::CONFLICT,
                        format!(
                            "a fault named '{n}' is active: heal it first or pick another name"
                        ),
                    ));
                }
            }
            let name = name.unwrap_or_else(|| windows::default_name(spec.kind(), &taken));
            match faults::inject(&spec, platform, &evidence).await {
                Ok(fault) => {
                    let what = fault.describe();
                    evidence.event(format!("fault injected: {name} ({}): {what}", spec.kind()));
                    eprintln!("brownout: injected {name}: {what}");
                    st.active.push(Active {
                        name: name.clone(),
                        spec: spec.clone(),
                        fault,
                        since: Instant::now(),
                    });
                    st.new_window(platform).await;
                    Ok(json!({"injected": name, "what": what}))
                }
                Err(e) => {
                    evidence.event(format!(
                        "fault injection failed: {name} ({}): {e}",
                        spec.kind()
                    ));
                    Err((
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("injecting {name} failed: {e}"),
                    ))
                }
            }
        }
        Command::Heal(Some(name)) => {
            let Some(i) = st.active.iter().position(|a| a.name == name) else {
                let active: Vec<&str> = st.active.iter().map(|a| a.name.as_str()).collect();
                return Err((
                    StatusCode::NOT_FOUND,
                    format!(
                        "no active fault named '{name}' (active: {})",
                        if active.is_empty() {
                            "none".into()
                        } else {
                            active.join(", ")
                        }
                    ),
                ));
            };
            match st.heal(platform, i).await {
                Ok(n) => {
                    eprintln!("brownout: healed {n}");
                    Ok(json!({"healed": [n]}))
                }
                Err(e) => Err((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("healing {name} failed: {e}"),
                )),
            }
        }
        Command::Heal(None) => {
            let healed = st.heal_all(platform).await;
            eprintln!(
                "brownout: healed {}",
                if healed.is_empty() {
                    "nothing (no fault was active)".into()
                } else {
                    healed.join(", ")
                }
            );
            Ok(json!({"healed": healed}))
        }
        Command::Rate(r) => {
            if r == 0 || r > st.max_rate {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!(
                        "rate {r} is out of range: 1 to {} (--max-rate)",
                        st.max_rate
                    ),
                ));
            }
            st.rate = r;
            let _ = rate_tx.send(r);
            evidence.event(format!("load rate set to {r}/s"));
            eprintln!("brownout: load rate {r}/s");
            Ok(json!({"rate": r}))
        }
        Command::Note(text) => {
            evidence.note(&text);
            Ok(json!({"noted": text}))
        }
        Command::Stop => {
            evidence.event("stopped from the control API");
            eprintln!("brownout: stopping (control API)");
            Ok(json!({"stopping": true}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_offers_what_the_system_has() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/systems");
        let system = crate::spec::load_system(&dir.join("checkout.toml")).unwrap();
        let c = catalog(&system);
        let kinds: Vec<&str> = c.kinds.iter().map(|k| k.kind.as_str()).collect();
        assert!(kinds.contains(&"pool-exhaustion"), "{kinds:?}");
        assert!(kinds.contains(&"proxy"));
        assert!(kinds.contains(&"disk-full"));
        // Every preset is a fault the system accepts.
        for p in &c.presets {
            crate::spec::gameday::fault_for_gameday(&system.path, &p.fault)
                .unwrap_or_else(|e| panic!("preset {}: {e}", p.name));
        }
        assert!(c.presets.iter().any(|p| p.name == "slow-payments"));
    }
}
