//! `rollout`: the rollout of a service started during a phase ended with the expected outcome
//! (complete, stalled or rolled back), a complete or rolled-back one within the bound if one is
//! given (a bad deploy taken back within so long of its start).

use super::{secs, Ctx, Judged, Margin};
use crate::evidence::{PhaseWindow, RolloutState};

pub fn judge(
    ctx: &Ctx,
    service: &str,
    w: &PhaseWindow,
    outcome: RolloutState,
    within: Option<u64>,
) -> Judged {
    let Some(r) =
        ctx.data.rollouts.iter().find(|r| {
            r.service == service && r.started_ms >= w.start_ms && r.started_ms <= w.end_ms
        })
    else {
        return Judged::new(
            false,
            format!("no rollout of {service} started during {}", w.name),
        );
    };
    let took = r.ended_ms.map(|end| end - r.started_ms);
    // `within` bounds how long a rollout took to complete, or to be rolled back.
    let complete = matches!(outcome, RolloutState::Complete | RolloutState::RolledBack);
    let mut margins = Vec::new();
    if let (true, Some(b)) = (complete, within) {
        margins.push(Margin::new("rollout duration", b, took));
    }
    let in_time = match (complete, within) {
        (true, Some(bound)) => took.is_some_and(|t| t <= bound),
        _ => true,
    };
    let bound = within.map_or(String::new(), |b| format!(" (bound {})", secs(b)));
    Judged {
        passed: r.outcome == outcome && in_time,
        evidence: format!(
            "{} ({}): expected {outcome}{bound}, was {}: {}",
            r.id, r.change, r.outcome, r.detail
        ),
        margins,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::evidence::RolloutRecord;

    fn rolled(
        started_ms: u64,
        ended_ms: Option<u64>,
        outcome: RolloutState,
    ) -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        d.rollouts.push(RolloutRecord {
            id: "checkout-r2".into(),
            service: "checkout".into(),
            change: "env PAYMENTS_URL removed".into(),
            started_ms,
            ended_ms,
            outcome,
            detail: "2 of 2 replaced".into(),
        });
        d
    }

    fn verdict(
        d: &crate::evidence::EvidenceData,
        outcome: RolloutState,
        within: Option<u64>,
    ) -> Judged {
        judge(&ctx(d), "checkout", &window(d, "fault"), outcome, within)
    }

    #[test]
    fn a_rollout_ending_as_expected_in_time_passes() {
        let d = rolled(10_500, Some(16_500), RolloutState::Complete);
        let j = verdict(&d, RolloutState::Complete, Some(8_000));
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(
            j.margins,
            vec![Margin::new("rollout duration", 8_000, Some(6_000))]
        );
        assert!(j.evidence.starts_with("checkout-r2 (env PAYMENTS_URL removed): expected complete (bound 8.0 s), was complete"), "{}", j.evidence);
    }

    #[test]
    fn a_complete_rollout_slower_than_the_bound_fails() {
        let d = rolled(10_500, Some(19_500), RolloutState::Complete);
        let j = verdict(&d, RolloutState::Complete, Some(8_000));
        assert!(!j.passed);
        assert_eq!(j.margins[0].margin_ms, Some(-1_000));
    }

    /// The bug that lets a broken revision roll out: expected to stall, it completed.
    #[test]
    fn another_outcome_than_expected_fails() {
        let d = rolled(10_500, Some(16_500), RolloutState::Complete);
        let j = verdict(&d, RolloutState::Stalled, None);
        assert!(!j.passed);
        assert!(
            j.evidence.contains("expected stalled, was complete"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn no_rollout_in_the_phase_fails() {
        let d = rolled(2_000, Some(6_000), RolloutState::Complete);
        let j = verdict(&d, RolloutState::Complete, None);
        assert!(!j.passed);
        assert_eq!(j.evidence, "no rollout of checkout started during fault");
    }
}
