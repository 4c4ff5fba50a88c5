//! The game day's driver: the load at a rate set by hand, and a loop that answers the control
//! API's commands (inject, heal, rate, note, stop) until stopped, interrupted, capped or out of
//! memory, publishing the live view each second. Every change of the set of active faults opens
//! a window ([`windows`]); every fault still active is healed, newest first, at the end.

use super::{live, windows, Command, Reply};
use crate::error::Result;
use crate::evidence::Evidence;
use crate::faults::{self, ActiveFault};
use crate::load;
use crate::platform::Platform;
use crate::runner::{Driver, Timeline, WARMUP};
use crate::spec::{FaultSpec, Load};
use axum::http::StatusCode;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// A fault injected by hand and not yet healed.
struct Active {
    name: String,
    spec: FaultSpec,
    fault: ActiveFault,
    since: Instant,
}

/// The game day's state while it runs: the game day's driver.
pub(super) struct Loop<'s> {
    load: &'s Load,
    seed: u64,
    evidence: Evidence,
    active: Vec<Active>,
    windows: windows::Windows,
    /// The windows opened so far, each with the newest fault active in it (the report's `fault`).
    timeline: Timeline,
    agg: live::Aggregator,
    view_tx: watch::Sender<live::View>,
    commands: mpsc::Receiver<(Command, oneshot::Sender<Reply>)>,
    rate_tx: watch::Sender<u32>,
    rate_rx: watch::Receiver<u32>,
    rate: u32,
    max_rate: u32,
    cap: Duration,
    max_memory: u64,
    min_free_disk: u64,
    /// Where the responses stream to: its filesystem's free space is watched.
    report_dir: PathBuf,
    stage: String,
    /// The session file, removed once the system is torn down.
    session: PathBuf,
}

/// What a [`Loop`] starts from.
pub(super) struct Setup<'s> {
    pub load: &'s Load,
    pub seed: u64,
    pub evidence: Evidence,
    pub view_tx: watch::Sender<live::View>,
    pub commands: mpsc::Receiver<(Command, oneshot::Sender<Reply>)>,
    pub max_rate: u32,
    pub cap: Duration,
    pub max_memory: u64,
    pub min_free_disk: u64,
    pub report_dir: PathBuf,
    pub session: PathBuf,
}

impl<'s> Loop<'s> {
    pub(super) fn new(s: Setup<'s>) -> Loop<'s> {
        let (rate_tx, rate_rx) = watch::channel(s.load.rate);
        Loop {
            load: s.load,
            seed: s.seed,
            evidence: s.evidence,
            active: Vec::new(),
            windows: windows::Windows::default(),
            timeline: Timeline::default(),
            agg: live::Aggregator::default(),
            view_tx: s.view_tx,
            commands: s.commands,
            rate_tx,
            rate_rx,
            rate: s.load.rate,
            max_rate: s.max_rate,
            cap: s.cap,
            max_memory: s.max_memory,
            min_free_disk: s.min_free_disk,
            report_dir: s.report_dir,
            stage: "starting".into(),
            session: s.session,
        }
    }

    /// The run is over: the live view says so (with the report, if one was written), and
    /// pending API calls get "the game day is ending". The view's sender, to keep the page's
    /// stream open until the server stops.
    pub(super) fn end(self, report_dir: Option<&std::path::Path>) -> watch::Sender<live::View> {
        if let Some(dir) = report_dir {
            let mut v = self.view_tx.borrow().clone();
            v.stage = "ended".into();
            v.report = Some(dir.join("report.html").display().to_string());
            let _ = self.view_tx.send(v);
        }
        self.view_tx
    }

    /// Starts the window that the current set of active faults makes, with a snapshot of the
    /// ingress's counters at its start (so the report can set edge-counted answers beside what
    /// clients saw, per window).
    async fn new_window<P: Platform>(&mut self, platform: &mut P) {
        let names: Vec<&str> = self.active.iter().map(|a| a.name.as_str()).collect();
        let name = self.windows.next(&names);
        let fault = self.active.last().map(|a| a.spec.clone());
        self.timeline
            .open(platform, &self.evidence, &name, fault)
            .await;
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

impl Driver for Loop<'_> {
    fn start_load(&mut self, ingress_url: &str, evidence: &Evidence) -> Result<load::LoadRun> {
        load::start_steered(
            ingress_url,
            self.load,
            self.seed,
            evidence.clone(),
            // Room reserved for ten minutes of records; a longer game day grows the list.
            Duration::from_secs(600),
            self.cap + WARMUP,
            Some(load::Steering {
                rate: self.rate_rx.clone(),
                max_rate: self.max_rate,
            }),
        )
    }

    async fn drive<P: Platform>(
        &mut self,
        platform: &mut P,
        _evidence: &Evidence,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.cap;
        let ended = run_loop(self, platform, cancel, deadline).await;
        // Healing is what every ending does first, newest fault first.
        self.stage = "healing".into();
        self.publish();
        let healed = self.heal_all(platform).await;
        if !healed.is_empty() {
            eprintln!("brownout: healed {}", healed.join(", "));
        }
        ended
    }

    fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn tearing_down(&mut self) {
        self.stage = "tearing down".into();
        self.publish();
    }

    fn torn_down(&mut self) {
        let _ = std::fs::remove_file(&self.session);
    }
}

/// Answers commands until stopped, interrupted or capped.
async fn run_loop<P: Platform>(
    st: &mut Loop<'_>,
    platform: &mut P,
    cancel: &mut watch::Receiver<bool>,
    deadline: tokio::time::Instant,
) -> Result<()> {
    st.stage = "warming up".into();
    st.publish();
    let warm = tokio::time::Instant::now() + WARMUP;
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
                if last_print.elapsed() >= Duration::from_secs(10) {
                    give_back_freed_memory();
                }
                let rss = resident_bytes();
                let free = free_bytes(&st.report_dir);
                let limit = if rss > st.max_memory {
                    Some(format!(
                        "the harness reached its memory limit ({} MB of {} MB, --max-memory): stopping",
                        rss / 1_000_000,
                        st.max_memory / 1_000_000
                    ))
                } else {
                    free.filter(|f| *f < st.min_free_disk).map(|f| format!(
                        "the reports disk is nearly full ({} MB free, --min-free-disk {} MB): stopping",
                        f / 1_000_000,
                        st.min_free_disk / 1_000_000
                    ))
                };
                if let Some(what) = limit {
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
            got = st.commands.recv() => {
                let Some((cmd, reply)) = got else { return Ok(()) };
                if !started {
                    // The first window begins after the warm-up: actions wait for it.
                    let _ = reply.send(Err((StatusCode::CONFLICT, "the game day is still warming up; try again in a few seconds".into())));
                    continue;
                }
                let stop = matches!(cmd, Command::Stop);
                let answer = act(platform, st, cmd).await;
                let _ = reply.send(answer);
                st.publish();
                if stop {
                    return Ok(());
                }
            }
        }
    }
}

/// Returns the memory freed since the last call to the kernel. A fault that slows the system
/// down puts thousands of requests in flight at once (up to rate × timeout × 2); glibc keeps what
/// they freed in its per-thread arenas, so without this the resident size would stay at the
/// largest such burst for the rest of a game day, and `--max-memory` would judge that rather than
/// what the harness holds.
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own heaps, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Free bytes for an unprivileged writer on `dir`'s filesystem (`None` if statvfs cannot tell).
// `fsblkcnt_t` and `c_ulong` are u64 here but not on every target: the conversions stay.
#[allow(clippy::useless_conversion)]
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
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

async fn act<P: Platform>(platform: &mut P, st: &mut Loop<'_>, cmd: Command) -> Reply {
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
            let _ = st.rate_tx.send(r);
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
