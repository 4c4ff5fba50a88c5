//! `data-integrity`: the system's `[integrity]` check (run after the load stops) found every
//! acknowledged request committed, every committed record with exactly one ledger entry, and no
//! double entry. Entries without a committed record are reported, not failed (a retry with the
//! same key reconciles them). A check that could not run fails.

use super::Judged;
use crate::integrity::Integrity;

pub fn judge(integrity: Option<&Integrity>) -> Judged {
    match integrity {
        Some(i) => Judged::new(i.ok(), i.summary()),
        None => Judged::new(false, "the integrity check could not run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Integrity {
        Integrity {
            acknowledged: 300,
            acknowledged_missing: 0,
            paid_orders: 300,
            charges: 302,
            paid_without_charge: 0,
            charges_without_paid_order: 2,
            double_charges: 0,
        }
    }

    /// Two charges without an order (the fault struck between charge and commit) do not fail.
    #[test]
    fn a_clean_ledger_passes_and_reports_what_is_left_to_reconcile() {
        let j = judge(Some(&clean()));
        assert!(j.passed, "{}", j.evidence);
        assert!(j
            .evidence
            .contains("entries without a committed record (to reconcile, not failing): 2"));
    }

    #[test]
    fn a_lost_acknowledged_request_fails() {
        let j = judge(Some(&Integrity {
            acknowledged_missing: 1,
            ..clean()
        }));
        assert!(!j.passed);
        assert!(
            j.evidence
                .starts_with("300 acknowledged requests, 1 missing"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_committed_record_without_its_ledger_entry_fails() {
        let j = judge(Some(&Integrity {
            paid_without_charge: 1,
            ..clean()
        }));
        assert!(!j.passed);
        assert!(
            j.evidence.contains("committed without an entry: 1"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn a_double_entry_fails() {
        let j = judge(Some(&Integrity {
            double_charges: 1,
            ..clean()
        }));
        assert!(!j.passed);
        assert!(j.evidence.ends_with("double entries: 1"), "{}", j.evidence);
    }

    #[test]
    fn a_check_that_could_not_run_fails() {
        let j = judge(None);
        assert!(!j.passed);
        assert_eq!(j.evidence, "the integrity check could not run");
    }
}
