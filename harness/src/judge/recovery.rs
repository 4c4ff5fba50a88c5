//! `recovery`: after a phase ends, no 5xx (from any layer) and no missing answer starts later
//! than the bound, and there are answers after the bound to show it (silence is not recovery).

use super::{secs, Ctx, Judged, Margin};
use crate::evidence::{Layer, PhaseWindow};

pub fn judge(ctx: &Ctx, w: &PhaseWindow, bound: u64) -> Judged {
    // One pass over the answers sent after the phase ended.
    let (mut bad_count, mut last_bad, mut judged_after) = (0usize, None::<u64>, 0usize);
    for r in ctx.data.responses.iter().filter(|r| r.t_ms >= w.end_ms) {
        if r.status >= 500 || r.layer == Layer::Client {
            bad_count += 1;
            last_bad = last_bad.max(Some(r.t_ms - w.end_ms));
        }
        judged_after += usize::from(r.t_ms > w.end_ms + bound);
    }
    let passed = last_bad.is_none_or(|b| b <= bound) && judged_after > 0;
    Judged {
        passed,
        evidence: format!(
            "after {} ended: {bad_count} 5xx/no-response, the last {} after heal (bound {}); {judged_after} responses after the bound",
            w.name,
            last_bad.map_or("none".into(), secs),
            secs(bound)
        ),
        margins: vec![Margin::new(
            "last 5xx/no-response after heal",
            bound,
            Some(last_bad.unwrap_or(0)),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// 503s until 1 s after the fault phase, then 200s to the end.
    fn healed() -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        answers(&mut d, 10_000, 21_000, 44, |t| {
            response(t, 0, 503, Layer::App, 5)
        });
        answers(&mut d, 21_000, 30_000, 36, |t| {
            response(t, 0, 200, Layer::App, 5)
        });
        d
    }

    #[test]
    fn no_error_after_the_bound_passes() {
        let d = healed();
        let j = judge(&ctx(&d), &window(&d, "fault"), 2_000);
        assert!(j.passed, "{}", j.evidence);
        assert!(
            j.evidence.starts_with(
                "after fault ended: 4 5xx/no-response, the last 0.8 s after heal (bound 2.0 s)"
            ),
            "{}",
            j.evidence
        );
        assert_eq!(j.margins[0].margin_ms, Some(1_250));
    }

    #[test]
    fn a_late_5xx_breaks_recovery() {
        let mut d = healed();
        d.responses
            .push(response(27_000, 1, 502, Layer::Ingress, 5));
        let j = judge(&ctx(&d), &window(&d, "fault"), 2_000);
        assert!(!j.passed);
        assert!(
            j.evidence.contains("the last 7.0 s after heal"),
            "{}",
            j.evidence
        );
        assert_eq!(j.margins[0].margin_ms, Some(-5_000));
    }

    #[test]
    fn a_late_missing_answer_breaks_recovery() {
        let mut d = healed();
        d.responses
            .push(response(25_000, 0, 0, Layer::Client, 10_000));
        assert!(!judge(&ctx(&d), &window(&d, "fault"), 2_000).passed);
    }

    /// No answers after the bound: nothing shows the system recovered.
    #[test]
    fn silence_after_the_phase_is_not_recovery() {
        let mut d = three_phases();
        answers(&mut d, 10_000, 20_000, 40, |t| {
            response(t, 0, 503, Layer::App, 5)
        });
        let j = judge(&ctx(&d), &window(&d, "fault"), 2_000);
        assert!(!j.passed);
        assert!(
            j.evidence.ends_with("; 0 responses after the bound"),
            "{}",
            j.evidence
        );
    }
}
