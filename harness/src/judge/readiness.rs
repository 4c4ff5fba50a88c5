//! `readiness`: every replica of a service turns not-ready within a bound of the phase's start
//! and is ready again within a bound of its end (ready at the end counts as recovered at once).
//! A service with no readiness record fails: there is nothing to judge.

use super::{secs, Ctx, Judged, Margin, Measure};
use crate::evidence::{PhaseWindow, Probe};

pub fn judge(
    ctx: &Ctx,
    service: &str,
    w: &PhaseWindow,
    drop_bound: u64,
    recover_bound: u64,
) -> Judged {
    let data = ctx.data;
    let mut replicas: Vec<&str> = data
        .probes
        .iter()
        .filter(|p| p.probe == Probe::Readiness && p.service == service)
        .map(|p| p.replica.as_str())
        .collect();
    replicas.sort();
    replicas.dedup();
    let mut ok = !replicas.is_empty();
    let mut parts = Vec::new();
    let mut margins = Vec::new();
    for rep in &replicas {
        let recs: Vec<_> = data
            .probes
            .iter()
            .filter(|p| p.probe == Probe::Readiness && p.replica == *rep)
            .collect();
        let dropped = recs
            .iter()
            .find(|p| !p.ok && p.t_ms >= w.start_ms && p.t_ms <= w.end_ms)
            .map(|p| p.t_ms - w.start_ms);
        let state_at_end = recs
            .iter()
            .rev()
            .find(|p| p.t_ms <= w.end_ms)
            .is_some_and(|p| p.ok);
        let recovered = if state_at_end {
            Some(0)
        } else {
            recs.iter()
                .find(|p| p.ok && p.t_ms > w.end_ms)
                .map(|p| p.t_ms - w.end_ms)
        };
        let d_ok = dropped.is_some_and(|d| d <= drop_bound);
        let r_ok = recovered.is_some_and(|r| r <= recover_bound);
        margins.push(
            Margin::new(format!("{rep} readiness drop"), drop_bound, dropped)
                .of(Measure::ReadinessDrop),
        );
        margins.push(
            Margin::new(
                format!("{rep} readiness recovery"),
                recover_bound,
                recovered,
            )
            .of(Measure::ReadinessRecovery),
        );
        ok &= d_ok && r_ok;
        parts.push(format!(
            "{rep}: not ready {} after {} start, ready again {} after its end",
            dropped.map_or("never".into(), secs),
            w.name,
            recovered.map_or("never".into(), secs)
        ));
    }
    if replicas.is_empty() {
        parts.push(format!(
            "no readiness probe of service '{service}' was recorded"
        ));
    }
    Judged {
        passed: ok,
        evidence: format!(
            "{} (bounds: drop {}, recover {})",
            parts.join("; "),
            secs(drop_bound),
            secs(recover_bound)
        ),
        margins,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::evidence::ProbeRecord;

    /// checkout-0 and checkout-1 ready from the start; each then changes at the given times
    /// (ready: 200, not ready: 503).
    fn flips(changes: &[(&str, u64, bool)]) -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        let mut recs: Vec<ProbeRecord> = ["checkout-0", "checkout-1"]
            .iter()
            .map(|r| probe(0, r, Probe::Readiness, answered(200)))
            .collect();
        for (r, t, ready) in changes {
            recs.push(probe(
                *t,
                r,
                Probe::Readiness,
                answered(if *ready { 200 } else { 503 }),
            ));
        }
        recs.sort_by_key(|p| p.t_ms);
        d.probes = recs;
        d
    }

    fn verdict(d: &crate::evidence::EvidenceData) -> Judged {
        judge(&ctx(d), "checkout", &window(d, "fault"), 2_000, 3_000)
    }

    const GOOD: &[(&str, u64, bool)] = &[
        ("checkout-0", 11_000, false),
        ("checkout-1", 11_500, false),
        ("checkout-0", 21_000, true),
        ("checkout-1", 22_000, true),
    ];

    #[test]
    fn every_replica_dropping_and_recovering_in_time_passes() {
        let d = flips(GOOD);
        let j = verdict(&d);
        assert!(j.passed, "{}", j.evidence);
        assert!(j.evidence.starts_with("checkout-0: not ready 1.0 s after fault start, ready again 1.0 s after its end; checkout-1: not ready 1.5 s"), "{}", j.evidence);
        assert_eq!(j.margins.len(), 4);
        assert_eq!(
            j.margins[3],
            Margin::new("checkout-1 readiness recovery", 3_000, Some(2_000))
                .of(Measure::ReadinessRecovery)
        );
    }

    #[test]
    fn a_replica_that_never_drops_fails() {
        let d = flips(&[GOOD[0], GOOD[2]]);
        let j = verdict(&d);
        assert!(!j.passed);
        assert!(
            j.evidence
                .contains("checkout-1: not ready never after fault start"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_drop_later_than_the_bound_fails() {
        let d = flips(&[GOOD[0], ("checkout-1", 12_500, false), GOOD[2], GOOD[3]]);
        let j = verdict(&d);
        assert!(!j.passed);
        assert_eq!(j.margins[2].margin_ms, Some(-500));
    }

    #[test]
    fn a_replica_that_never_recovers_fails() {
        let d = flips(&[GOOD[0], GOOD[1], GOOD[2]]);
        let j = verdict(&d);
        assert!(!j.passed);
        assert!(
            j.evidence
                .contains("checkout-1: not ready 1.5 s after fault start, ready again never"),
            "{}",
            j.evidence
        );
        assert_eq!(j.margins[3].observed_ms, None);
    }

    #[test]
    fn a_recovery_later_than_the_bound_fails() {
        let d = flips(&[GOOD[0], GOOD[1], GOOD[2], ("checkout-1", 23_500, true)]);
        let j = verdict(&d);
        assert!(!j.passed);
        assert_eq!(j.margins[3].margin_ms, Some(-500));
    }

    /// Ready again before the phase ends counts as recovered at once.
    #[test]
    fn ready_again_within_the_phase_is_recovered() {
        let d = flips(&[
            GOOD[0],
            GOOD[1],
            ("checkout-0", 15_000, true),
            ("checkout-1", 15_000, true),
        ]);
        let j = verdict(&d);
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(j.margins[1].observed_ms, Some(0));
    }

    #[test]
    fn a_service_without_readiness_records_fails() {
        let d = flips(GOOD);
        let j = judge(&ctx(&d), "payments", &window(&d, "fault"), 2_000, 3_000);
        assert!(!j.passed);
        assert!(
            j.evidence
                .starts_with("no readiness probe of service 'payments' was recorded"),
            "{}",
            j.evidence
        );
    }
}
