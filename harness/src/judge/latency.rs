//! `latency`: the given percentile of the latency (from each send's schedule, so a late send
//! counts its wait) during a phase, optionally for one load request, is at most the bound.

use super::{scope, Ctx, Judged, Latencies, Margin};

pub fn judge(ctx: &Ctx, during: &str, request: Option<&str>, p: f64, bound_ms: u64) -> Judged {
    let mut lat = Latencies::default();
    for r in ctx.in_phase(during, request) {
        lat.record(r.latency_from_schedule_ms());
    }
    let during = scope(during, request);
    let observed = lat.percentile(p);
    let margins = vec![Margin::new(format!("p{p}"), bound_ms, observed)];
    let (passed, evidence) = match observed {
        Some(v) => (
            v <= bound_ms,
            format!(
                "{during}: p{p} = {v} ms (bound {bound_ms} ms) over {} responses",
                lat.len()
            ),
        ),
        None => (false, format!("{during}: no responses recorded")),
    };
    Judged {
        passed,
        evidence,
        margins,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::evidence::{Layer, ResponseRecord};

    /// 100 answers in the fault phase: 1..=100 ms.
    fn spread() -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        for i in 0..100 {
            d.responses
                .push(response(10_000 + i * 50, 0, 200, Layer::App, i + 1));
        }
        d
    }

    #[test]
    fn a_percentile_within_its_bound_passes_with_its_margin() {
        let d = spread();
        let j = judge(&ctx(&d), "fault", None, 99.0, 150);
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(
            j.evidence,
            "fault: p99 = 99 ms (bound 150 ms) over 100 responses"
        );
        assert_eq!(j.margins, vec![Margin::new("p99", 150, Some(99))]);
    }

    #[test]
    fn a_percentile_over_its_bound_fails() {
        let d = spread();
        let j = judge(&ctx(&d), "fault", None, 99.0, 50);
        assert!(!j.passed);
        assert_eq!(j.margins[0].margin_ms, Some(-49));
    }

    /// Latency counts from the schedule: a send that waited 300 ms for a slot is 300 ms slower.
    #[test]
    fn lateness_counts_toward_latency() {
        let mut d = three_phases();
        answers(&mut d, 10_000, 20_000, 10, |t| ResponseRecord {
            late_ms: 300,
            ..response(t, 0, 200, Layer::App, 10)
        });
        let j = judge(&ctx(&d), "fault", None, 50.0, 100);
        assert!(!j.passed);
        assert!(j.evidence.contains("p50 = 310 ms"), "{}", j.evidence);
    }

    #[test]
    fn no_answers_fail_and_never_count_as_fast() {
        let d = three_phases();
        let j = judge(&ctx(&d), "fault", Some("checkout"), 99.0, 1_000);
        assert!(!j.passed);
        assert_eq!(j.evidence, "fault (checkout): no responses recorded");
        assert_eq!(j.margins[0].observed_ms, None);
    }
}
