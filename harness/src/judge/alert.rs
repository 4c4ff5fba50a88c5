//! `alert`: an alert fires within a bound of a phase's start, clears (inactive again) within a
//! bound of its end, and is never pending or firing before the phase (a false alarm). An alert
//! with no state record at all was not among the loaded rules, which the evidence says.

use super::{secs, Ctx, Judged, Margin, Measure};
use crate::evidence::{AlertState, PhaseWindow};

pub fn judge(ctx: &Ctx, alert: &str, w: &PhaseWindow, fire_bound: u64, clear_bound: u64) -> Judged {
    let recs: Vec<_> = ctx
        .data
        .alerts
        .iter()
        .filter(|a| a.alert == alert)
        .collect();
    let early = recs
        .iter()
        .find(|a| a.state != AlertState::Inactive && a.t_ms < w.start_ms);
    let fired = recs
        .iter()
        .find(|a| a.state == AlertState::Firing && a.t_ms >= w.start_ms)
        .map(|a| a.t_ms);
    let cleared = fired.and_then(|f| {
        let last = recs.iter().rev().find(|a| a.t_ms >= f)?;
        (last.state == AlertState::Inactive).then(|| last.t_ms.saturating_sub(w.end_ms))
    });
    let fired_rel = fired.map(|f| f - w.start_ms);
    let margins = vec![
        Margin::new(format!("{alert} firing"), fire_bound, fired_rel).of(Measure::AlertFiring),
        Margin::new(format!("{alert} clearing"), clear_bound, cleared).of(Measure::AlertClearing),
    ];
    let passed = early.is_none()
        && fired_rel.is_some_and(|f| f <= fire_bound)
        && cleared.is_some_and(|c| c <= clear_bound);
    let pname = &w.name;
    let mut text = format!(
        "{alert}: fired {} after {pname} start (bound {}), cleared {} after its end (bound {})",
        fired_rel.map_or("never".into(), secs),
        secs(fire_bound),
        match (fired, cleared) {
            (None, _) => "n/a".to_string(),
            (Some(_), None) => "never".to_string(),
            (Some(_), Some(c)) => secs(c),
        },
        secs(clear_bound)
    );
    match early {
        Some(a) => text.push_str(&format!(
            "; FALSE ALARM: {} at {} before {pname}",
            a.state,
            secs(a.t_ms)
        )),
        None => text.push_str(&format!("; not active before {pname}")),
    }
    if recs.is_empty() {
        text.push_str("; (no such alert rule was loaded)");
    }
    Judged {
        passed,
        evidence: text,
        margins,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::evidence::AlertState::{Firing, Inactive, Pending};

    fn verdict(states: &[(u64, AlertState)]) -> Judged {
        let mut d = three_phases();
        d.alerts.push(alert(0, "Other", Firing));
        for (t, s) in states {
            d.alerts.push(alert(*t, "PoolSaturated", *s));
        }
        judge(
            &ctx(&d),
            "PoolSaturated",
            &window(&d, "fault"),
            5_000,
            6_000,
        )
    }

    const GOOD: &[(u64, AlertState)] = &[
        (0, Inactive),
        (12_000, Pending),
        (13_000, Firing),
        (24_000, Inactive),
    ];

    #[test]
    fn firing_and_clearing_in_time_passes_with_both_margins() {
        let j = verdict(GOOD);
        assert!(j.passed, "{}", j.evidence);
        assert_eq!(j.evidence, "PoolSaturated: fired 3.0 s after fault start (bound 5.0 s), cleared 4.0 s after its end (bound 6.0 s); not active before fault");
        assert_eq!(j.margins[0].margin_ms, Some(2_000));
        assert_eq!(j.margins[1].margin_ms, Some(2_000));
    }

    #[test]
    fn an_alert_that_never_fires_fails() {
        let j = verdict(&GOOD[..2]);
        assert!(!j.passed);
        assert!(
            j.evidence
                .starts_with("PoolSaturated: fired never after fault start"),
            "{}",
            j.evidence
        );
        assert!(j.evidence.contains("cleared n/a"));
    }

    #[test]
    fn firing_later_than_the_bound_fails() {
        let j = verdict(&[(0, Inactive), (16_000, Firing), (24_000, Inactive)]);
        assert!(!j.passed);
        assert_eq!(j.margins[0].margin_ms, Some(-1_000));
    }

    #[test]
    fn an_alert_that_never_clears_fails() {
        let j = verdict(&GOOD[..3]);
        assert!(!j.passed);
        assert!(
            j.evidence.contains("cleared never after its end"),
            "{}",
            j.evidence
        );
        assert_eq!(j.margins[1].observed_ms, None);
    }

    #[test]
    fn clearing_later_than_the_bound_fails() {
        let j = verdict(&[(0, Inactive), (13_000, Firing), (27_000, Inactive)]);
        assert!(!j.passed);
        assert_eq!(j.margins[1].margin_ms, Some(-1_000));
    }

    /// Pending before the phase is already a false alarm, even if it fires in time afterwards.
    #[test]
    fn an_alert_active_before_the_phase_is_a_false_alarm() {
        let mut states = vec![(0, Inactive), (4_000, Pending), (5_000, Inactive)];
        states.extend_from_slice(&GOOD[1..]);
        let j = verdict(&states);
        assert!(!j.passed);
        assert!(
            j.evidence
                .ends_with("; FALSE ALARM: pending at 4.0 s before fault"),
            "{}",
            j.evidence
        );
    }

    #[test]
    fn an_alert_with_no_rule_loaded_says_so() {
        let j = verdict(&[]);
        assert!(!j.passed);
        assert!(
            j.evidence.ends_with("(no such alert rule was loaded)"),
            "{}",
            j.evidence
        );
    }
}
