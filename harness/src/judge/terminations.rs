//! `terminations`: every replica of a service that got SIGTERM during a phase failed readiness
//! while still answering (it said "not ready", rather than refusing connections) before it exited,
//! and exited by itself within its grace period (no SIGKILL). No SIGTERM at all fails: the fault
//! did not do what the expectation is about.

use super::{secs, Ctx, Judged};
use crate::evidence::{Lifecycle, PhaseWindow, Probe};

pub fn judge(ctx: &Ctx, service: &str, w: &PhaseWindow) -> Judged {
    let data = ctx.data;
    let sigterms: Vec<_> = data
        .lifecycle
        .iter()
        .filter(|l| {
            matches!(l.event, Lifecycle::Sigterm { .. })
                && l.service == service
                && l.t_ms >= w.start_ms
                && l.t_ms <= w.end_ms
        })
        .collect();
    let mut ok = !sigterms.is_empty();
    let mut parts = Vec::new();
    for t in &sigterms {
        let end = data.lifecycle.iter().find(|l| {
            l.replica == t.replica
                && l.t_ms >= t.t_ms
                && matches!(
                    l.event,
                    Lifecycle::Stopped { .. } | Lifecycle::Sigkill { .. }
                )
        });
        let end_ms = end.map_or(u64::MAX, |l| l.t_ms);
        // A readiness failure that the process itself answered (an HTTP status), not a refused connection.
        let flip = data.probes.iter().find(|p| {
            p.replica == t.replica
                && p.probe == Probe::Readiness
                && !p.ok
                && p.t_ms >= t.t_ms
                && p.t_ms <= end_ms
                && p.result.answered()
        });
        // Streamed from the responses file, once per SIGTERM.
        let last_served = data
            .responses
            .iter()
            .filter(|r| r.replica.as_deref() == Some(t.replica.as_str()))
            .map(|r| r.t_ms + r.latency_ms)
            .max();
        let by_itself = end.is_some_and(|l| matches!(l.event, Lifecycle::Stopped { .. }));
        ok &= by_itself && flip.is_some();
        let rel = |v: u64| format!("+{:.1} s", v.saturating_sub(t.t_ms) as f64 / 1000.0);
        let pre_stop = data
            .lifecycle
            .iter()
            .rev()
            .find(|l| {
                l.replica == t.replica
                    && matches!(l.event, Lifecycle::PreStop { .. })
                    && l.t_ms <= t.t_ms
            })
            .map_or(String::new(), |l| {
                format!(
                    " (after pre-stop {} from {})",
                    l.event.describe(),
                    secs(l.t_ms)
                )
            });
        parts.push(format!(
            "{}: SIGTERM at {}{pre_stop}, readiness failed {}, last request served {}, {} {}",
            t.replica,
            secs(t.t_ms),
            flip.map_or("never before exit".into(), |p| rel(p.t_ms)),
            last_served.map_or("never".into(), |v| if v >= t.t_ms {
                rel(v)
            } else {
                format!("{} before", secs(t.t_ms - v))
            }),
            match end {
                Some(l) if matches!(l.event, Lifecycle::Stopped { .. }) => {
                    format!("exited {}", rel(l.t_ms))
                }
                Some(l) => format!("SIGKILLed {}", rel(l.t_ms)),
                None => "never exited".into(),
            },
            end.map_or(String::new(), |l| format!("({})", l.event.describe())),
        ));
    }
    if sigterms.is_empty() {
        parts.push(format!(
            "no replica of {service} got SIGTERM during {}",
            w.name
        ));
    }
    Judged::new(ok, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::evidence::{Layer, ProbeResult, ResponseRecord};

    fn sigterm() -> Lifecycle {
        Lifecycle::Sigterm {
            why: "termination".into(),
        }
    }
    fn stopped() -> Lifecycle {
        Lifecycle::Stopped {
            status: "exit code 0".into(),
        }
    }

    /// checkout-0 gets SIGTERM at 12 s; its readiness then reads `probe` at 12.5 s, and it ends
    /// with `end` at 15 s. It served a request until 13 s.
    fn terminated(
        probe_result: Option<ProbeResult>,
        end: Option<Lifecycle>,
    ) -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        d.lifecycle.push(lifecycle(12_000, "checkout-0", sigterm()));
        if let Some(r) = probe_result {
            d.probes
                .push(probe(12_500, "checkout-0", Probe::Readiness, r));
        }
        if let Some(e) = end {
            d.lifecycle.push(lifecycle(15_000, "checkout-0", e));
        }
        d.responses.push(ResponseRecord {
            replica: Some("checkout-0".into()),
            ..response(12_800, 0, 200, Layer::App, 200)
        });
        d
    }

    fn verdict(d: &crate::evidence::EvidenceData) -> Judged {
        judge(&ctx(d), "checkout", &window(d, "fault"))
    }

    #[test]
    fn failing_readiness_then_exiting_by_itself_passes() {
        let d = terminated(Some(answered(503)), Some(stopped()));
        let j = verdict(&d);
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(j.evidence, "checkout-0: SIGTERM at 12.0 s, readiness failed +0.5 s, last request served +1.0 s, exited +3.0 s (exited by itself: exit code 0)");
    }

    /// The grace period ran out (e.g. SIGTERM ignored).
    #[test]
    fn a_sigkill_fails() {
        let d = terminated(
            Some(answered(503)),
            Some(Lifecycle::Sigkill {
                status: "signal 9".into(),
            }),
        );
        let j = verdict(&d);
        assert!(!j.passed);
        assert!(j.evidence.contains("SIGKILLed +3.0 s"), "{}", j.evidence);
    }

    #[test]
    fn readiness_that_never_fails_before_exit_fails() {
        let d = terminated(None, Some(stopped()));
        let j = verdict(&d);
        assert!(!j.passed);
        assert!(
            j.evidence.contains("readiness failed never before exit"),
            "{}",
            j.evidence
        );
    }

    /// A process that closes its listener at once fails its probes by refusing: it did not drain.
    #[test]
    fn readiness_failing_only_by_refused_connections_fails() {
        let d = terminated(Some(ProbeResult::Refused), Some(stopped()));
        assert!(!verdict(&d).passed);
    }

    #[test]
    fn a_replica_that_never_exits_fails() {
        let d = terminated(Some(answered(503)), None);
        let j = verdict(&d);
        assert!(!j.passed);
        assert!(j.evidence.contains("never exited"), "{}", j.evidence);
    }

    #[test]
    fn no_sigterm_in_the_phase_fails() {
        let d = three_phases();
        let j = verdict(&d);
        assert!(!j.passed);
        assert_eq!(
            j.evidence,
            "no replica of checkout got SIGTERM during fault"
        );
    }
}
