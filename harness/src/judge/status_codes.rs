//! `status-codes`: during a phase (optionally for one load request) every answer has an allowed
//! status; the listed statuses carry Retry-After; with `from_app`, every answer came from the app
//! (none made by the ingress, none missing); with `from_ingress`, every answer was made by the
//! ingress (no replica reached: the layer attribution of "no endpoints"). Answers sent in the
//! first `settle` of the phase are left out. No answers at all is a failure, not a pass.

use super::{count_label, mix, response_label, scope, secs, Ctx, Judged};
use crate::evidence::{Layer, ResponseRecord};
use std::collections::BTreeMap;

pub struct Bounds<'a> {
    pub during: &'a str,
    pub request: Option<&'a str>,
    pub allowed: &'a [u16],
    pub retry_after: &'a [u16],
    pub from_app: bool,
    pub from_ingress: bool,
    pub settle: std::time::Duration,
}

pub fn judge(ctx: &Ctx, b: &Bounds) -> Judged {
    let settled_from = ctx
        .data
        .phases
        .iter()
        .find(|p| p.name == b.during)
        .map_or(0, |p| p.start_ms + b.settle.as_millis() as u64);
    // One pass over the phase's answers, counting what the evidence text says.
    let setter = if b.from_ingress {
        Layer::Ingress
    } else {
        Layer::App
    };
    let (mut total, mut all) = (0usize, BTreeMap::new());
    let (mut bad_n, mut bad) = (0usize, BTreeMap::new());
    let mut first_bad: Vec<ResponseRecord> = Vec::new();
    // Per Retry-After code: (answers with it from the setter, of those without Retry-After).
    let mut with_code = vec![(0usize, 0usize); b.retry_after.len()];
    let (mut not_app, mut not_ingress) = (0usize, 0usize);
    for r in ctx
        .in_phase(b.during, b.request)
        .filter(|r| r.t_ms >= settled_from)
    {
        total += 1;
        count_label(&mut all, &r);
        if r.layer == Layer::Client || !b.allowed.contains(&r.status) {
            bad_n += 1;
            count_label(&mut bad, &r);
            if first_bad.len() < 3 {
                first_bad.push(r.clone());
            }
        }
        for (code, n) in b.retry_after.iter().zip(with_code.iter_mut()) {
            if r.status == *code && r.layer == setter {
                n.0 += 1;
                n.1 += usize::from(!r.retry_after);
            }
        }
        not_app += usize::from(r.layer != Layer::App);
        not_ingress += usize::from(r.layer != Layer::Ingress);
    }
    let settled = if b.settle.is_zero() {
        String::new()
    } else {
        format!(" after the first {}", secs(b.settle.as_millis() as u64))
    };
    let mut parts = vec![format!(
        "{}{settled}: {} responses: {}",
        scope(b.during, b.request),
        total,
        mix(&all)
    )];
    parts.push(format!(
        "not allowed: {}{}",
        bad_n,
        if bad_n == 0 {
            String::new()
        } else {
            format!(" ({})", mix(&bad))
        }
    ));
    if bad_n > 0 {
        // Request ids to look up in the app's and the ingress's logs.
        let ids: Vec<String> = first_bad
            .iter()
            .map(|r| {
                format!(
                    "{}-{}-{} ({} at {})",
                    ctx.data.request_id_prefix,
                    r.seq,
                    r.attempt,
                    response_label(r),
                    secs(r.t_ms)
                )
            })
            .collect();
        parts.push(format!("first: {}", ids.join(", ")));
    }
    let mut ok = bad_n == 0 && total > 0;
    // Retry-After is the app's to set, or the ingress's when it is the one judged.
    for (code, (n, missing)) in b.retry_after.iter().zip(with_code) {
        parts.push(format!("{code} without Retry-After: {missing} of {n}"));
        ok &= missing == 0;
    }
    if b.from_app {
        parts.push(format!("not from the app: {not_app}"));
        ok &= not_app == 0;
    }
    if b.from_ingress {
        parts.push(format!("not made by the ingress: {not_ingress}"));
        ok &= not_ingress == 0;
    }
    if total == 0 {
        parts.push("no responses recorded".into());
    }
    Judged::new(ok, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    const ALLOWED: &[u16] = &[200, 503];

    fn bounds(retry_after: &'static [u16], from_app: bool) -> Bounds<'static> {
        Bounds {
            during: "fault",
            request: None,
            allowed: ALLOWED,
            retry_after,
            from_app,
            from_ingress: false,
            settle: std::time::Duration::ZERO,
        }
    }

    /// "No endpoints": after the first 2 s (app 503s while readiness drops), 30 ingress 503s.
    fn no_endpoints(ingress_retry_after: bool) -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        answers(&mut d, 10_000, 12_000, 10, |t| ResponseRecord {
            retry_after: true,
            ..response(t, 0, 503, Layer::App, 250)
        });
        answers(&mut d, 12_000, 20_000, 30, |t| ResponseRecord {
            retry_after: ingress_retry_after,
            ..response(t, 0, 503, Layer::Ingress, 1)
        });
        d
    }

    fn ingress_bounds(settle_ms: u64) -> Bounds<'static> {
        Bounds {
            from_ingress: true,
            settle: std::time::Duration::from_millis(settle_ms),
            ..bounds(&[503], false)
        }
    }

    #[test]
    fn from_ingress_passes_once_settled_and_checks_the_ingress_retry_after() {
        let d = no_endpoints(true);
        let j = judge(&ctx(&d), &ingress_bounds(2_000));
        assert!(j.passed, "{}", j.evidence);
        assert!(
            j.evidence
                .starts_with("fault after the first 2.0 s: 30 responses: 503 (ingress)×30"),
            "{}",
            j.evidence
        );
        assert!(j.evidence.contains("503 without Retry-After: 0 of 30"));
        assert!(j.evidence.contains("not made by the ingress: 0"));
        // Without the settling time the app's answers count, and fail it.
        let j = judge(&ctx(&d), &ingress_bounds(0));
        assert!(!j.passed);
        assert!(
            j.evidence.contains("not made by the ingress: 10"),
            "{}",
            j.evidence
        );
        // The ingress's 503 without Retry-After fails it.
        let d = no_endpoints(false);
        let j = judge(&ctx(&d), &ingress_bounds(2_000));
        assert!(!j.passed);
        assert!(
            j.evidence.contains("503 without Retry-After: 30 of 30"),
            "{}",
            j.evidence
        );
    }

    /// The fault phase: 20 reads answered 200 and 20 checkouts answered 503 with Retry-After.
    fn fault_answers() -> crate::evidence::EvidenceData {
        let mut d = three_phases();
        answers(&mut d, 10_000, 20_000, 20, |t| {
            response(t, 1, 200, Layer::App, 5)
        });
        answers(&mut d, 10_000, 20_000, 20, |t| ResponseRecord {
            retry_after: true,
            ..response(t, 0, 503, Layer::App, 5)
        });
        // Outside the phase: not judged.
        d.responses.push(response(25_000, 0, 500, Layer::App, 5));
        d
    }

    #[test]
    fn allowed_statuses_from_the_app_with_retry_after_pass() {
        let d = fault_answers();
        let j = judge(&ctx(&d), &bounds(&[503], true));
        assert!(j.passed, "{}", j.evidence);
        assert!(
            j.evidence
                .starts_with("fault: 40 responses: 200×20, 503×20; not allowed: 0"),
            "{}",
            j.evidence
        );
        assert!(j.evidence.contains("503 without Retry-After: 0 of 20"));
    }

    #[test]
    fn a_status_not_allowed_fails_and_names_the_first_request_ids() {
        let mut d = fault_answers();
        d.request_id_prefix = "run1".into();
        d.responses.push(response(15_000, 0, 500, Layer::App, 5));
        let j = judge(&ctx(&d), &bounds(&[], false));
        assert!(!j.passed);
        assert!(
            j.evidence
                .contains("not allowed: 1 (500×1); first: run1-15000-1 (500 at 15.0 s)"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn no_response_is_never_allowed() {
        let mut d = fault_answers();
        d.responses
            .push(response(15_000, 0, 0, Layer::Client, 10_000));
        let j = judge(&ctx(&d), &bounds(&[], false));
        assert!(!j.passed);
        assert!(
            j.evidence.contains("not allowed: 1 (no response×1)"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_listed_status_without_retry_after_fails() {
        let mut d = fault_answers();
        d.responses.push(response(15_000, 0, 503, Layer::App, 5));
        let j = judge(&ctx(&d), &bounds(&[503], false));
        assert!(!j.passed);
        assert!(
            j.evidence.contains("503 without Retry-After: 1 of 21"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn an_allowed_status_made_by_the_ingress_fails_from_app() {
        let mut d = fault_answers();
        d.responses
            .push(response(15_000, 0, 503, Layer::Ingress, 5));
        assert!(judge(&ctx(&d), &bounds(&[], false)).passed);
        let j = judge(&ctx(&d), &bounds(&[], true));
        assert!(!j.passed);
        assert!(j.evidence.contains("not from the app: 1"), "{}", j.evidence);
    }

    #[test]
    fn no_answers_at_all_fail() {
        let d = three_phases();
        let j = judge(&ctx(&d), &bounds(&[], false));
        assert!(!j.passed);
        assert!(
            j.evidence.ends_with("no responses recorded"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn one_request_is_judged_apart_from_the_others() {
        let d = fault_answers();
        let only_reads = Bounds {
            allowed: &[200],
            request: Some("catalog"),
            ..bounds(&[], false)
        };
        let j = judge(&ctx(&d), &only_reads);
        assert!(j.passed, "{}", j.evidence);
        assert!(j.evidence.starts_with("fault (catalog): 20 responses"));
        let only_checkouts = Bounds {
            request: Some("checkout"),
            ..only_reads
        };
        assert!(!judge(&ctx(&d), &only_checkouts).passed);
    }
}
