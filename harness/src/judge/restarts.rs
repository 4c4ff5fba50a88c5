//! `restarts`: at most `max` restarts of a service's replicas over the whole run, counted from the
//! records of that service (a service whose name starts with another's is not that one). A service
//! of which no replica was seen fails instead of passing on nothing.

use super::{Ctx, Judged};
use crate::evidence::Probe;

pub fn judge(ctx: &Ctx, service: &str, max: u32) -> Judged {
    let rs: Vec<_> = ctx
        .restarts
        .iter()
        .filter(|r| r.service == service)
        .collect();
    let total: u32 = rs.iter().map(|r| r.count).sum();
    let live_fail = ctx
        .data
        .probes
        .iter()
        .filter(|p| p.probe == Probe::Liveness && !p.ok && p.service == service)
        .count();
    if rs.is_empty() {
        let known: std::collections::BTreeSet<&str> =
            ctx.restarts.iter().map(|r| r.service.as_str()).collect();
        return Judged::new(
            false,
            format!(
                "no replica of service '{service}' was seen (services: {})",
                known.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let list = rs
        .iter()
        .map(|r| format!("{}: {}", r.replica, r.count))
        .collect::<Vec<_>>()
        .join(", ");
    Judged::new(
        total <= max,
        format!("{total} restarts (max {max}) [{list}]; liveness failures: {live_fail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::evidence::Restarts;

    fn restarts(checkout_0: u32) -> Vec<Restarts> {
        let r = |service: &str, replica: &str, count| Restarts {
            service: service.into(),
            replica: replica.into(),
            count,
        };
        vec![
            r("checkout-worker", "checkout-worker-0", 3),
            r("checkout", "checkout-0", checkout_0),
            r("checkout", "checkout-1", 0),
        ]
    }

    fn verdict(rs: &[Restarts], service: &str, max: u32) -> Judged {
        let mut d = three_phases();
        d.probes
            .push(probe(12_000, "checkout-0", Probe::Liveness, answered(500)));
        let c = super::super::Ctx {
            restarts: rs,
            ..ctx(&d)
        };
        judge(&c, service, max)
    }

    /// Facts, not names: "checkout-worker"'s restarts are not "checkout"'s.
    #[test]
    fn restarts_within_the_bound_pass_counting_only_the_service() {
        let j = verdict(&restarts(0), "checkout", 0);
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(
            j.evidence,
            "0 restarts (max 0) [checkout-0: 0, checkout-1: 0]; liveness failures: 1"
        );
    }

    #[test]
    fn more_restarts_than_the_bound_fail() {
        let j = verdict(&restarts(2), "checkout", 1);
        assert!(!j.passed);
        assert!(
            j.evidence.starts_with("2 restarts (max 1)"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_service_with_no_replica_seen_fails_instead_of_passing_on_nothing() {
        let j = verdict(&restarts(0), "chekout", 0);
        assert!(!j.passed);
        assert_eq!(
            j.evidence,
            "no replica of service 'chekout' was seen (services: checkout, checkout-worker)"
        );
    }
}
