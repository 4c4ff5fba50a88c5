//! Hand-built evidence for the expectation kinds' tests: three phases (baseline 0–10 s, fault
//! 10–20 s, after 20–30 s), and one-line builders for each kind of record.

use super::Ctx;
use crate::evidence::{
    AlertRecord, AlertState, EvidenceData, Layer, Lifecycle, LifecycleRecord, PhaseWindow, Probe,
    ProbeRecord, ProbeResult, ResponseRecord,
};

pub const PHASES: [&str; 3] = ["baseline", "fault", "after"];
pub const REQUESTS: [&str; 2] = ["checkout", "catalog"];

/// Evidence with the three phase windows and nothing else.
pub fn three_phases() -> EvidenceData {
    let mut d = EvidenceData::default();
    for (i, name) in PHASES.iter().enumerate() {
        d.phases.push(PhaseWindow {
            name: name.to_string(),
            start_ms: i as u64 * 10_000,
            end_ms: (i as u64 + 1) * 10_000,
        });
    }
    d
}

pub fn ctx(data: &EvidenceData) -> Ctx<'_> {
    Ctx {
        data,
        phases: PHASES.to_vec(),
        requests: REQUESTS.to_vec(),
        restarts: &[],
        integrity: None,
    }
}

/// The window of a phase of [`three_phases`].
pub fn window(data: &EvidenceData, name: &str) -> PhaseWindow {
    data.phases.iter().find(|p| p.name == name).unwrap().clone()
}

/// A first attempt of `request` sent at `t_ms` (its phase from the three windows), answered
/// `status` by `layer` after `latency_ms`.
pub fn response(
    t_ms: u64,
    request: usize,
    status: u16,
    layer: Layer,
    latency_ms: u64,
) -> ResponseRecord {
    ResponseRecord {
        t_ms,
        phase: Some((t_ms / 10_000).min(2) as usize),
        request,
        attempt: 1,
        late_ms: 0,
        status,
        latency_ms,
        layer,
        replica: None,
        upstream: None,
        retry_after: false,
        seq: t_ms,
        error: None,
    }
}

/// `n` answers spread evenly over `[from_ms, to_ms)`, made by `f(t_ms)`.
pub fn answers(
    data: &mut EvidenceData,
    from_ms: u64,
    to_ms: u64,
    n: u64,
    f: impl Fn(u64) -> ResponseRecord,
) {
    for i in 0..n {
        data.responses.push(f(from_ms + i * (to_ms - from_ms) / n));
    }
}

/// "checkout-0" → "checkout".
fn service_of(replica: &str) -> String {
    replica
        .rsplit_once('-')
        .map_or(replica, |(s, _)| s)
        .to_string()
}

pub fn probe(t_ms: u64, replica: &str, probe: Probe, result: ProbeResult) -> ProbeRecord {
    ProbeRecord {
        t_ms,
        service: service_of(replica),
        replica: replica.into(),
        probe,
        ok: result.ok(),
        result,
    }
}

pub fn answered(status: u16) -> ProbeResult {
    ProbeResult::Answered {
        status,
        body: String::new(),
    }
}

pub fn alert(t_ms: u64, name: &str, state: AlertState) -> AlertRecord {
    AlertRecord {
        t_ms,
        alert: name.into(),
        state,
    }
}

pub fn lifecycle(t_ms: u64, replica: &str, event: Lifecycle) -> LifecycleRecord {
    LifecycleRecord {
        t_ms,
        service: service_of(replica),
        replica: replica.into(),
        event,
    }
}
