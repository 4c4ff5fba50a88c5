//! The load: an **open** arrival model at a constant rate (like k6's `constant-arrival-rate`).
//! Send *i* is scheduled at `start + i / rate`, whatever the system does; which request it is comes
//! from a seeded, stationary [`mix`]. Each send runs as its own task with a connection of its own
//! ([`http`]: what a send costs while it waits is what a slow system costs the harness), so a slow
//! system costs in-flight tasks, not more clients; in-flight sends are capped (`max_in_flight`).
//! A send that starts later than its schedule (the cap was reached, or
//! the machine was too busy) is counted as *late* and its lateness recorded: latency is judged from
//! the **scheduled** time, so a driver that falls behind cannot hide slow answers (no coordinated
//! omission). Every load loop is bounded by `max_run` and by the number of sends that fit in it.
//!
//! Who answered comes from the ingress, not from the app: the ingress stamps every answer with the
//! upstream it proxied ([`UPSTREAM_ADDR_HEADER`]) and the time that upstream's header arrived
//! ([`UPSTREAM_HEADER_TIME_HEADER`], `-` when the ingress made the answer itself, e.g. a 504 after
//! its read timeout or a 502 for a refused connection); the replica is looked up from the address.

pub mod http;
pub mod mix;
pub mod schedule;

use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, Layer, ResponseRecord};
use crate::spec::{Load, RequestSpec};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A retry waits the answer's Retry-After, but never longer than this.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Response header with the address of the upstream the ingress proxied the request to (the
/// last one if it tried several). Every platform's ingress sets it; the app does not need to.
pub const UPSTREAM_ADDR_HEADER: &str = "x-brownout-upstream";
/// Response header with the upstream's header time (seconds), `-` when no upstream answered.
pub const UPSTREAM_HEADER_TIME_HEADER: &str = "x-brownout-upstream-header-time";

pub struct LoadRun {
    stop: Arc<AtomicBool>,
    stop_notify: Arc<tokio::sync::Notify>,
    dispatcher: tokio::task::JoinHandle<tokio::task::JoinSet<()>>,
    drain: Duration,
}

/// Who made an answer, from the ingress's stamps: (layer, upstream address).
pub fn attribute(
    upstream_addr: Option<&str>,
    header_time: Option<&str>,
) -> (Layer, Option<String>) {
    // nginx lists every upstream it tried ("a, b") and internal redirects ("a : b"): the last one
    // made the answer the client got.
    let last = |v: &str| {
        v.rsplit([',', ':'])
            .next()
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let last_addr = upstream_addr.map(|v| {
        v.rsplit([','])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    });
    match header_time.map(last) {
        Some(t) if !t.is_empty() && t != "-" => (Layer::App, last_addr.filter(|a| !a.is_empty())),
        _ => (Layer::Ingress, last_addr.filter(|a| !a.is_empty())),
    }
}

/// Lets the rate be changed while the load runs (game days): each new value applies from the next
/// send on (see [`schedule::Schedule::set_rate`]), capped at `max_rate`, which also bounds how many
/// sends the run may make.
pub struct Steering {
    pub rate: tokio::sync::watch::Receiver<u32>,
    pub max_rate: u32,
}

/// Starts the load against `base_url`; it is planned to run `planned` and stops by itself after
/// `max_run` at the latest.
pub fn start(
    base_url: &str,
    load: &Load,
    seed: u64,
    evidence: Evidence,
    planned: Duration,
    max_run: Duration,
) -> Result<LoadRun> {
    start_steered(base_url, load, seed, evidence, planned, max_run, None)
}

/// [`start`], with the rate steerable while it runs.
pub fn start_steered(
    base_url: &str,
    load: &Load,
    seed: u64,
    evidence: Evidence,
    _planned: Duration,
    max_run: Duration,
    steering: Option<Steering>,
) -> Result<LoadRun> {
    // A new connection per send: the local ingress reloads nginx when its endpoints change, and a
    // reloading nginx closes idle keep-alive connections, so a pooled connection can be closed
    // under a request just written to it (a "no response" that is about the harness's ingress,
    // not the system). Kubernetes ingresses update endpoints without closing connections.
    let target = http::Target::parse(base_url).map_err(BrownoutError::Environment)?;
    // Each request's request-line target, joined to the base URL once.
    let paths = load
        .requests
        .iter()
        .map(|r| target.origin_form(&r.path))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(BrownoutError::Environment)?;
    let target = Arc::new(target);
    let paths = Arc::new(paths);
    let timeout = load.timeout;
    let mut mixes = PhaseMixes::new(load, seed);
    let requests: Arc<Vec<RequestSpec>> = Arc::new(load.requests.clone());
    let rate = load.rate.max(1) as u64;
    let slots = Arc::new(tokio::sync::Semaphore::new(load.max_in_flight as usize));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_notify = Arc::new(tokio::sync::Notify::new());
    let nonce: u32 = rand::random();
    // Responses are streamed to the run's responses file as they arrive: no room to reserve.
    evidence.with(|d| d.request_id_prefix = format!("bo-{nonce:08x}"));
    let (stop2, notify2) = (stop.clone(), stop_notify.clone());
    let max_rate = steering
        .as_ref()
        .map_or(rate, |s| (s.max_rate as u64).max(rate));
    let mut steer = steering.map(|s| s.rate);
    evidence.rate(rate as u32);
    let dispatcher = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        let start = Instant::now();
        let deadline = start + max_run;
        let mut schedule = schedule::Schedule::new(start, rate as u32);
        // Bounded in count as well as in time.
        let max_sends = max_rate * max_run.as_secs().max(1);
        let mut seq = 0;
        while seq < max_sends {
            let due = schedule.due(seq);
            if due > deadline || stop2.load(Ordering::SeqCst) {
                break;
            }
            let rate_change = async {
                if let Some(rx) = steer.as_mut() {
                    if rx.changed().await.is_ok() {
                        return *rx.borrow_and_update();
                    }
                }
                std::future::pending().await
            };
            enum Wake {
                Due,
                Stop,
                Rate(u32),
            }
            let wake = tokio::select! {
                _ = tokio::time::sleep_until(due) => Wake::Due,
                _ = notify2.notified() => Wake::Stop,
                r = rate_change => Wake::Rate(r),
            };
            match wake {
                Wake::Due => {}
                Wake::Stop => break,
                Wake::Rate(r) => {
                    let r = (r as u64).clamp(1, max_rate) as u32;
                    schedule.set_rate(Instant::now(), seq, r);
                    evidence.rate(r);
                    continue;
                }
            }
            // Reap finished sends so the set does not grow with the run.
            while tasks.try_join_next().is_some() {}
            let index = mixes.next(&evidence, due);
            let send = Send {
                target: target.clone(),
                paths: paths.clone(),
                requests: requests.clone(),
                timeout,
                index,
                seq,
                due,
                request_id: format!("bo-{nonce:08x}-{seq}"),
            };
            let (ev, slots) = (evidence.clone(), slots.clone());
            // A send that waits for a slot holds only `send` and its place in the queue: the
            // exchange's state is made once it has a slot.
            tasks.spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                Box::pin(send.run(&ev)).await;
            });
            seq += 1;
        }
        tasks
    });
    Ok(LoadRun {
        stop,
        stop_notify,
        dispatcher,
        drain: load.timeout * 3 + MAX_RETRY_WAIT * 2,
    })
}

/// The request mix of each phase: one seeded [`mix::Mix`] per phase over the requests sent in it
/// (a request's `during`), made when the phase's first send is due. Without any `during`, one mix
/// runs through the whole load.
struct PhaseMixes {
    load: Load,
    seed: u64,
    per_phase: bool,
    mixes: std::collections::HashMap<Option<usize>, mix::Mix>,
}

impl PhaseMixes {
    fn new(load: &Load, seed: u64) -> PhaseMixes {
        PhaseMixes {
            load: load.clone(),
            seed,
            per_phase: load.requests.iter().any(|r| !r.during.is_empty()),
            mixes: Default::default(),
        }
    }

    /// Which request the send due at `due` is.
    fn next(&mut self, evidence: &Evidence, due: Instant) -> usize {
        let phase = if self.per_phase {
            evidence.phase_at(evidence.ms_at(due.into_std()))
        } else {
            None
        };
        let (load, seed, per_phase) = (&self.load, self.seed, self.per_phase);
        let mix = self.mixes.entry(phase).or_insert_with(|| {
            let mut weights = if per_phase {
                let name =
                    phase.and_then(|i| evidence.with(|d| d.phases.get(i).map(|p| p.name.clone())));
                load.weights_in(name.as_deref())
            } else {
                load.requests.iter().map(|r| r.weight).collect()
            };
            if weights.iter().all(|w| *w == 0) {
                weights = load.requests.iter().map(|r| r.weight).collect();
            }
            let phase_seed =
                phase.map_or(0, |i| (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            mix::Mix::new(&weights, seed ^ phase_seed)
        });
        mix.next().unwrap_or(0)
    }
}

impl LoadRun {
    /// Stops scheduling sends and waits for those in flight (each is bounded by the client
    /// timeout and its retries); any still running after that are abandoned.
    pub async fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_notify.notify_one();
        let mut tasks = self
            .dispatcher
            .await
            .map_err(|e| BrownoutError::Environment(format!("load dispatcher failed: {e}")))?;
        let drained = tokio::time::timeout(self.drain, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            return Err(BrownoutError::Environment(format!(
                "load: sends still in flight {} s after the load stopped",
                self.drain.as_secs()
            )));
        }
        Ok(())
    }
}

/// One scheduled send, with its retries.
struct Send {
    target: Arc<http::Target>,
    paths: Arc<Vec<String>>,
    requests: Arc<Vec<RequestSpec>>,
    timeout: Duration,
    index: usize,
    seq: u64,
    due: Instant,
    request_id: String,
}

impl Send {
    async fn run(self, ev: &Evidence) {
        let req = &self.requests[self.index];
        let key = req
            .idempotency_key
            .then(|| format!("{}-key", self.request_id));
        let max_attempts = req.retry.as_ref().map_or(0, |r| r.max).saturating_add(1);
        let mut attempt = 1;
        let mut wait_from = self.due;
        loop {
            let sent = Instant::now();
            // Lateness of a scheduled send, or of a retry past its Retry-After.
            let late = sent.saturating_duration_since(wait_from);
            let t_ms = ev.ms_at(sent.into_std());
            ev.sent(ev.phase_at(t_ms), self.index, attempt, late);
            let request_id = format!("{}-{attempt}", self.request_id);
            let request = http::Request {
                method: &req.method,
                path: &self.paths[self.index],
                request_id: &request_id,
                idempotency_key: key.as_deref(),
                body: req.body.as_deref(),
            };
            let result = http::exchange(&self.target, &request, self.timeout).await;
            let latency_ms = sent.elapsed().as_millis() as u64;
            // Judged in the phase in which the answer arrived: a request sent just before a fault
            // is injected and answered under it reflects the fault, not the phase it left in.
            let phase = ev.phase_at(ev.now_ms());
            let mut retry_wait = None;
            let record = match result {
                Ok(http::Answer {
                    status,
                    upstream,
                    header_time,
                    retry_after,
                }) => {
                    let (layer, upstream) = attribute(upstream.as_deref(), header_time.as_deref());
                    if attempt < max_attempts
                        && req.retry.as_ref().is_some_and(|rt| rt.on.contains(&status))
                    {
                        let secs = retry_after
                            .as_deref()
                            .and_then(|v| v.trim().parse::<f64>().ok())
                            .unwrap_or(1.0);
                        retry_wait = Some(Duration::from_secs_f64(
                            secs.clamp(0.0, MAX_RETRY_WAIT.as_secs_f64()),
                        ));
                    }
                    let (upstream, replica) = match upstream.as_deref().map(|a| ev.upstream(a)) {
                        Some((a, r)) => (Some(a), r),
                        None => (None, None),
                    };
                    ResponseRecord {
                        t_ms,
                        phase,
                        request: self.index,
                        attempt,
                        late_ms: late.as_millis() as u64,
                        status,
                        latency_ms,
                        replica,
                        upstream,
                        layer,
                        retry_after: retry_after.is_some(),
                        seq: self.seq,
                        error: None,
                    }
                }
                Err(e) => ResponseRecord {
                    t_ms,
                    phase,
                    request: self.index,
                    attempt,
                    late_ms: late.as_millis() as u64,
                    status: 0,
                    latency_ms,
                    layer: Layer::Client,
                    replica: None,
                    upstream: None,
                    retry_after: false,
                    seq: self.seq,
                    error: Some(e.as_str()),
                },
            };
            let acknowledged = (200..300).contains(&record.status);
            ev.response(record);
            if acknowledged {
                if let Some(k) = &key {
                    ev.acknowledged(k.clone());
                }
            }
            match retry_wait {
                Some(wait) => {
                    wait_from = Instant::now() + wait;
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingress_stamps_say_who_answered() {
        // nginx relayed the upstream's own answer (even its own 504): the app made it.
        assert_eq!(
            attribute(Some("127.0.0.1:4001"), Some("0.002")),
            (Layer::App, Some("127.0.0.1:4001".into()))
        );
        // nginx gave up (read timeout) or could not connect: it made the 504/502 itself.
        assert_eq!(
            attribute(Some("127.0.0.1:4001"), Some("-")),
            (Layer::Ingress, Some("127.0.0.1:4001".into()))
        );
        // No upstream at all (nginx answered from its own config).
        assert_eq!(attribute(None, None), (Layer::Ingress, None));
        // Several upstreams tried: the last one answered.
        assert_eq!(
            attribute(Some("127.0.0.1:4001, 127.0.0.1:4002"), Some("-, 0.010")),
            (Layer::App, Some("127.0.0.1:4002".into()))
        );
        assert_eq!(
            attribute(Some("127.0.0.1:4001, 127.0.0.1:4002"), Some("0.010, -")),
            (Layer::Ingress, Some("127.0.0.1:4002".into()))
        );
    }

    fn request(name: &str, weight: usize, during: &[&str]) -> RequestSpec {
        RequestSpec {
            name: name.into(),
            method: "GET".into(),
            path: format!("/{name}"),
            body: None,
            weight,
            idempotency_key: false,
            retry: None,
            during: during.iter().map(|d| d.to_string()).collect(),
        }
    }

    /// Requests with `during` are sent in their phases only, at their weight there; the others in
    /// every phase, including before the first.
    #[test]
    fn each_phase_sends_its_own_mix() {
        let load = Load {
            rate: 40,
            max_in_flight: 10,
            timeout: Duration::from_secs(1),
            requests: vec![
                request("always", 3, &[]),
                request("rare", 1, &["rare"]),
                request("storm", 3, &["storm"]),
            ],
        };
        let ev = Evidence::new();
        let mut mixes = PhaseMixes::new(&load, 7);
        let counts = |mixes: &mut PhaseMixes| {
            let mut c = [0usize; 3];
            for _ in 0..600 {
                c[mixes.next(&ev, Instant::now())] += 1;
            }
            c
        };
        assert_eq!(counts(&mut mixes), [600, 0, 0], "before the first phase");
        ev.begin_phase("baseline");
        assert_eq!(counts(&mut mixes), [600, 0, 0]);
        ev.begin_phase("rare");
        assert_eq!(counts(&mut mixes), [450, 150, 0], "3:1, exactly per block");
        ev.begin_phase("storm");
        assert_eq!(counts(&mut mixes), [300, 0, 300]);
        // Without any `during`, one mix over the whole run, as before.
        let plain = Load {
            requests: vec![request("a", 1, &[]), request("b", 1, &[])],
            ..load
        };
        let mut mixes = PhaseMixes::new(&plain, 7);
        assert_eq!(counts(&mut mixes), [300, 300, 0]);
    }
}
