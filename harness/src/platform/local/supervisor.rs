//! Kubelet-like supervision of one replica: start the process, probe readiness and liveness on
//! their periods with thresholds, restart with exponential back-off when it exits or liveness fails,
//! and stop it with a termination grace period (SIGTERM, then SIGKILL). Probe flips and lifecycle
//! events go to the evidence; readiness is published on a watch channel for the ingress.

use crate::evidence::{Evidence, Lifecycle, Probe, ProbeResult};
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};
use crate::spec::ProbeSpec;
use nix::sys::signal::Signal;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A replica never seen live is restarted after this long (a startup-probe allowance).
/// The longest any user-given wait is honoured (validation keeps them far below; this keeps
/// deadline arithmetic from overflowing whatever a caller passes).
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
const STARTUP_ALLOWANCE: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Running this long without trouble resets the back-off.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Probes {
    pub readiness: Option<ParsedProbe>,
    pub liveness: Option<ParsedProbe>,
}

#[derive(Clone)]
pub struct ParsedProbe {
    pub path: String,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl ParsedProbe {
    pub fn parse(p: &ProbeSpec) -> ParsedProbe {
        ParsedProbe {
            path: p.path.clone(),
            period: p.period.get(),
            timeout: p.timeout.get(),
            failure_threshold: p.failure_threshold.max(1),
            success_threshold: p.success_threshold.max(1),
        }
    }
}

/// What the rest of the platform holds of a supervised replica.
pub struct ReplicaHandle {
    pub name: String,
    pub port: u16,
    pub ready: watch::Receiver<bool>,
    pub restarts: Arc<AtomicU32>,
    stop_tx: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ReplicaHandle {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the supervisor has ended (the replica was stopped, or could not start).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the supervisor to stop the replica (SIGTERM, grace period, SIGKILL).
    pub fn request_stop(&self) {
        let _ = self.stop_tx.send(true);
    }

    /// Waits until the supervisor has stopped the replica.
    pub async fn wait_stopped(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

pub struct ReplicaConfig {
    /// The service it is a replica of.
    pub service: String,
    pub name: String,
    pub port: u16,
    pub spec: ChildSpec,
    pub probes: Probes,
    pub grace: Duration,
    pub pre_stop: Option<PreStop>,
    /// A replica of the stack's bring-up (nothing is judged yet): until it is first ready, its
    /// readiness is probed every [`BRING_UP_PROBE_EVERY`] instead of every period, so the harness
    /// does not wait a whole period for an app that was ready just after the first probe. From its
    /// first readiness on, and for rollouts and restarts, the configured period holds.
    pub bring_up: bool,
    /// OOM kills of its cgroup seen so far (an exit after a new one is reported as OOM-killed).
    pub oom_kills_seen: Arc<std::sync::atomic::AtomicU64>,
}

/// How often a bring-up replica's readiness is probed until it is first ready.
pub const BRING_UP_PROBE_EVERY: Duration = Duration::from_millis(50);

/// A pre-stop hook, run before SIGTERM and inside the grace period.
#[derive(Clone, Debug, PartialEq)]
pub enum PreStop {
    Sleep(Duration),
    /// GET this path on the replica and wait for the answer.
    Http(String),
}

impl PreStop {
    pub fn describe(&self) -> String {
        match self {
            PreStop::Sleep(d) => format!("sleep {} s", d.as_secs_f64()),
            PreStop::Http(p) => format!("GET {p}"),
        }
    }
}

pub fn start(config: ReplicaConfig, evidence: Evidence) -> ReplicaHandle {
    let (ready_tx, ready) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let restarts = Arc::new(AtomicU32::new(0));
    let name = config.name.clone();
    let port = config.port;
    let task = tokio::spawn(supervise(
        config,
        evidence,
        ready_tx,
        stop_rx,
        restarts.clone(),
    ));
    ReplicaHandle {
        name,
        port,
        ready,
        restarts,
        stop_tx,
        task: Some(task),
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) if s.code().is_some() => format!("exit code {}", s.code().unwrap_or_default()),
        Some(s) => format!("killed by signal {}", s.signal().unwrap_or_default()),
        None => "unknown".into(),
    }
}

/// The last non-empty line of a log file (shown as evidence when a replica exits).
pub fn last_log_line(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

async fn probe_once(client: &reqwest::Client, url: &str, timeout: Duration) -> ProbeResult {
    match client.get(url).timeout(timeout).send().await {
        Ok(r) if r.status().is_success() => ProbeResult::Answered {
            status: r.status().as_u16(),
            body: String::new(),
        },
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            ProbeResult::Answered {
                status,
                body: body.chars().take(200).collect(),
            }
        }
        Err(e) if e.is_timeout() => ProbeResult::TimedOut {
            after_ms: timeout.as_millis() as u64,
        },
        Err(e) if e.is_connect() => ProbeResult::Refused,
        Err(e) => ProbeResult::Failed {
            error: e.to_string(),
        },
    }
}

enum Outcome {
    /// Stopped on request: SIGTERM, then SIGKILL if the grace period ran out.
    Terminated,
    Restart(String),
}

async fn supervise(
    config: ReplicaConfig,
    evidence: Evidence,
    ready_tx: watch::Sender<bool>,
    mut stop_rx: watch::Receiver<bool>,
    restarts: Arc<AtomicU32>,
) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let base = format!("http://127.0.0.1:{}", config.port);
    let mut backoff = BACKOFF_START;
    // Only the first life of a bring-up replica is probed fast.
    let mut bring_up = config.bring_up;
    loop {
        let mut child = match spawn(&config.name, &config.spec) {
            Ok(c) => c,
            Err(e) => {
                evidence.lifecycle(
                    &config.service,
                    &config.name,
                    Lifecycle::FailedToStart {
                        error: e.to_string(),
                    },
                );
                return;
            }
        };
        evidence.lifecycle(
            &config.service,
            &config.name,
            Lifecycle::Started {
                pid: Some(child.pid()),
                container: None,
            },
        );
        let started = Instant::now();
        let outcome = run_probes(
            &config,
            bring_up,
            &evidence,
            &client,
            &base,
            &mut child,
            &ready_tx,
            &mut stop_rx,
        )
        .await;
        bring_up = false;
        let _ = ready_tx.send(false);
        match outcome {
            Outcome::Terminated => return,
            Outcome::Restart(reason) => {
                if child.try_wait().is_none() {
                    let (svc, name) = (&config.service, &config.name);
                    evidence.lifecycle(
                        svc,
                        name,
                        Lifecycle::Sigterm {
                            why: format!("restarting: {reason}"),
                        },
                    );
                    let (status, killed) = child.stop_async(Signal::SIGTERM, config.grace).await;
                    if killed {
                        evidence.lifecycle(
                            svc,
                            name,
                            Lifecycle::Sigkill {
                                status: describe(status),
                            },
                        );
                    }
                    evidence.lifecycle(
                        svc,
                        name,
                        Lifecycle::Exited {
                            status: describe(status),
                            last_log_line: last_log_line(&config.spec.log),
                        },
                    );
                }
                if started.elapsed() > BACKOFF_RESET_AFTER {
                    backoff = BACKOFF_START;
                }
                restarts.fetch_add(1, Ordering::SeqCst);
                evidence.lifecycle(
                    &config.service,
                    &config.name,
                    Lifecycle::Restarting {
                        reason: reason.clone(),
                        backoff_s: backoff.as_secs(),
                    },
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop_rx.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_probes(
    config: &ReplicaConfig,
    bring_up: bool,
    evidence: &Evidence,
    client: &reqwest::Client,
    base: &str,
    child: &mut ManagedChild,
    ready_tx: &watch::Sender<bool>,
    stop_rx: &mut watch::Receiver<bool>,
) -> Outcome {
    let period =
        // Never zero (tokio's interval panics on it); validation keeps periods at 100 ms or more.
        |p: &Option<ParsedProbe>| p.as_ref().map_or(Duration::from_secs(3600), |p| p.period.max(Duration::from_millis(10)));
    let readiness_period = period(&config.probes.readiness);
    // Until the first readiness (bring-up only): the faster cadence.
    let mut fast_until_ready = bring_up && BRING_UP_PROBE_EVERY < readiness_period;
    let mut readiness_tick = tokio::time::interval(if fast_until_ready {
        BRING_UP_PROBE_EVERY
    } else {
        readiness_period
    });
    let mut liveness_tick = tokio::time::interval(period(&config.probes.liveness));
    let mut exit_tick = tokio::time::interval(Duration::from_millis(100));
    for t in [&mut readiness_tick, &mut liveness_tick, &mut exit_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let started = Instant::now();
    let (mut ready_ok, mut ready_fail) = (0u32, 0u32);
    let mut live_fail = 0u32;
    let mut seen_live = config.probes.liveness.is_none();
    // Set once termination began: the moment the grace period ends.
    let mut kill_at: Option<tokio::time::Instant> = None;
    // The pre-stop hook while it runs; SIGTERM follows when it is done.
    let mut hook: Option<tokio::task::JoinHandle<String>> = None;
    if config.probes.readiness.is_none() {
        let _ = ready_tx.send(true);
    }
    loop {
        let grace_over = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let hook_done = async {
            match hook.as_mut() {
                Some(h) => h.await.unwrap_or_else(|e| e.to_string()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop_rx.changed(), if kill_at.is_none() => {
                // Like a kubelet: the pre-stop hook, then SIGTERM; keep probing (the evidence
                // shows readiness flipping during the drain), SIGKILL when the grace period
                // (counted from the start of the hook) is over.
                kill_at = Some(tokio::time::Instant::now() + config.grace.min(MAX_WAIT));
                match &config.pre_stop {
                    Some(pre_stop) => {
                        evidence.lifecycle(&config.service, &config.name, Lifecycle::PreStop { hook: pre_stop.describe(), grace_ms: config.grace.as_millis() as u64 });
                        let (pre_stop, client, base) = (pre_stop.clone(), client.clone(), base.to_string());
                        hook = Some(tokio::spawn(async move {
                            match pre_stop {
                                PreStop::Sleep(d) => { tokio::time::sleep(d).await; "slept".to_string() }
                                PreStop::Http(p) => match client.get(format!("{base}{p}")).send().await {
                                    Ok(r) => format!("answered {}", r.status().as_u16()),
                                    Err(e) => format!("failed: {e}"),
                                },
                            }
                        }));
                    }
                    None => {
                        evidence.lifecycle(&config.service, &config.name, Lifecycle::Sigterm { why: format!("terminating; grace period {} s", config.grace.as_secs_f64()) });
                        child.signal(Signal::SIGTERM);
                    }
                }
            }
            how = hook_done => {
                hook = None;
                let left = kill_at.map_or(Duration::ZERO, |k| k.saturating_duration_since(tokio::time::Instant::now()));
                evidence.lifecycle(&config.service, &config.name, Lifecycle::Sigterm { why: format!("after pre-stop ({how}); {:.1} s of the grace period left", left.as_secs_f64()) });
                child.signal(Signal::SIGTERM);
            }
            _ = grace_over => {
                let (status, _) = child.stop_async(Signal::SIGKILL, Duration::from_secs(1)).await;
                evidence.lifecycle(&config.service, &config.name, Lifecycle::Sigkill { status: describe(status) });
                return Outcome::Terminated;
            }
            _ = exit_tick.tick() => {
                if let Some(status) = child.try_wait() {
                    if kill_at.is_some() {
                        evidence.lifecycle(&config.service, &config.name, Lifecycle::Stopped { status: describe(Some(status)) });
                        return Outcome::Terminated;
                    }
                    let line = last_log_line(&config.spec.log);
                    let mut status = describe(Some(status));
                    if let Some(dir) = &config.spec.cgroup {
                        let kills = crate::platform::local::cgroup::oom_kills_in(dir);
                        if kills > config.oom_kills_seen.swap(kills, Ordering::SeqCst) {
                            status.push_str(", OOM-killed: over its memory limit (exit code 137 in a container)");
                        }
                    }
                    evidence.lifecycle(&config.service, &config.name, Lifecycle::Exited { status: status.clone(), last_log_line: line });
                    return Outcome::Restart(format!("process exited ({status})"));
                }
            }
            _ = readiness_tick.tick(), if config.probes.readiness.is_some() => {
                let p = config.probes.readiness.as_ref().expect("guarded");
                let result = probe_once(client, &format!("{base}{}", p.path), p.timeout).await;
                let ok = result.ok();
                evidence.probe(&config.service, &config.name, Probe::Readiness, result);
                if ok { ready_ok += 1; ready_fail = 0; } else { ready_fail += 1; ready_ok = 0; }
                if ok && ready_ok >= p.success_threshold && !*ready_tx.borrow() {
                    let _ = ready_tx.send(true);
                    if fast_until_ready {
                        fast_until_ready = false;
                        readiness_tick = tokio::time::interval_at(tokio::time::Instant::now() + readiness_period, readiness_period);
                        readiness_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                } else if !ok && ready_fail >= p.failure_threshold && *ready_tx.borrow() {
                    let _ = ready_tx.send(false);
                }
            }
            _ = liveness_tick.tick(), if config.probes.liveness.is_some() && kill_at.is_none() => {
                let p = config.probes.liveness.as_ref().expect("guarded");
                let result = probe_once(client, &format!("{base}{}", p.path), p.timeout).await;
                let (ok, detail) = (result.ok(), result.describe());
                if ok {
                    seen_live = true;
                    live_fail = 0;
                } else if seen_live {
                    live_fail += 1;
                }
                if seen_live {
                    evidence.probe(&config.service, &config.name, Probe::Liveness, result);
                }
                if live_fail >= p.failure_threshold {
                    return Outcome::Restart(format!("liveness failed {live_fail} times: {detail}"));
                }
                if !seen_live && started.elapsed() > STARTUP_ALLOWANCE {
                    return Outcome::Restart(format!("not live after {} s", STARTUP_ALLOWANCE.as_secs()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica that listens 300 ms after it starts, with a 3 s readiness period: a bring-up
    /// replica is seen ready soon after (probed every 50 ms until then), then probed every
    /// period; any other (a rollout's, a restart's) waits for its second probe, 3 s in.
    async fn ready_after(bring_up: bool) -> (Duration, usize) {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::tools::free_port().unwrap();
        let mut spec = ChildSpec::new("/bin/sh", dir.path(), dir.path().join("web.log")).args([
            "-c".to_string(),
            format!("sleep 0.3; exec python3 -m http.server {port} --bind 127.0.0.1"),
        ]);
        spec.death_signal = Signal::SIGKILL;
        let evidence = Evidence::new();
        let probe = ParsedProbe {
            path: "/".into(),
            period: Duration::from_secs(3),
            timeout: Duration::from_millis(500),
            failure_threshold: 1,
            success_threshold: 1,
        };
        let t = Instant::now();
        let mut handle = start(
            ReplicaConfig {
                service: "web".into(),
                name: "web-0".into(),
                port,
                spec,
                probes: Probes {
                    readiness: Some(probe),
                    liveness: None,
                },
                grace: Duration::from_secs(1),
                pre_stop: None,
                bring_up,
                oom_kills_seen: Default::default(),
            },
            evidence.clone(),
        );
        let mut ready = handle.ready.clone();
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .expect("ready within 10 s")
            .unwrap();
        let took = t.elapsed();
        // After the first readiness, the configured period holds: no probe in the next second.
        let probes = |ev: &Evidence| ev.with(|d| d.probes.len());
        let at_ready = probes(&evidence);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = probes(&evidence) - at_ready;
        handle.request_stop();
        handle.wait_stopped().await;
        (took, after)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bring_up_replicas_are_probed_fast_until_first_ready_and_others_every_period() {
        let (fast, probes_after) = ready_after(true).await;
        assert!(
            fast < Duration::from_millis(1500),
            "bring-up replica ready after {fast:?}"
        );
        assert_eq!(
            probes_after, 0,
            "probes in the second after readiness (period 3 s)"
        );
        let (slow, _) = ready_after(false).await;
        assert!(
            slow >= Duration::from_millis(2900),
            "a rollout's replica ready after {slow:?}, before its second probe"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_process_that_exits_at_boot_is_restarted_with_growing_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec =
            ChildSpec::new("/bin/sh", dir.path(), dir.path().join("crasher.log")).args([
                "-c",
                "echo 'startup failed: required environment variable X is not set' >&2; exit 1",
            ]);
        spec.death_signal = Signal::SIGKILL;
        let evidence = Evidence::new();
        let mut handle = start(
            ReplicaConfig {
                service: "crasher".into(),
                name: "crasher-0".into(),
                port: 9,
                spec,
                probes: Probes {
                    readiness: None,
                    liveness: None,
                },
                grace: Duration::from_secs(1),
                pre_stop: None,
                bring_up: false,
                oom_kills_seen: Default::default(),
            },
            evidence.clone(),
        );
        // Until the fourth start has crashed too (the fifth would come 8 s later), bounded.
        let exited = |ev: &Evidence| {
            ev.with(|d| {
                d.lifecycle
                    .iter()
                    .filter(|l| matches!(l.event, Lifecycle::Exited { .. }))
                    .count()
            })
        };
        let waited = std::time::Instant::now();
        while exited(&evidence) < 4 && waited.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        handle.request_stop();
        handle.wait_stopped().await;
        let starts: Vec<u64> = evidence.with(|d| {
            d.lifecycle
                .iter()
                .filter(|l| matches!(l.event, Lifecycle::Started { .. }))
                .map(|l| l.t_ms)
                .collect()
        });
        let exits: Vec<String> = evidence.with(|d| {
            d.lifecycle
                .iter()
                .filter(|l| matches!(l.event, Lifecycle::Exited { .. }))
                .map(|l| l.event.describe())
                .collect()
        });
        // Back-off 1 s, 2 s, 4 s: starts near 0, 1, 3 and 7 s.
        assert_eq!(starts.len(), 4, "starts at {starts:?}");
        let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps[0] >= 950 && gaps[1] >= 1950 && gaps[2] >= 3950,
            "back-off doubles: gaps {gaps:?} ms"
        );
        assert!(
            exits
                .iter()
                .all(|e| e.contains("exit code 1") && e.contains("startup failed")),
            "{exits:?}"
        );
        assert_eq!(handle.restarts.load(Ordering::SeqCst), 4);
    }
}
