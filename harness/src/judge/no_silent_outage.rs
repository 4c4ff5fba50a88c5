//! The standing expectation: no silent outage. From what clients saw (every answer, by when it
//! arrived), find the outages — stretches where more than a share of the answers over a sliding
//! window failed (5xx from any layer, or no answer at all) — and check that an alert with a paging
//! severity was firing within a bound of each one's start; and that no page fired in a baseline
//! phase. It looks only at clients and alerts, so it holds for any app and any rule set.

use super::Margin;
use crate::evidence::{EvidenceData, Layer};

/// The expectation's settings, durations in ms.
pub struct Settings<'a> {
    pub failure_share: f64,
    pub window_ms: u64,
    pub page_within_ms: u64,
    pub page_severities: &'a [String],
    pub min_answers: usize,
    /// Phases `0..baseline_phases` are baseline (before the first fault).
    pub baseline_phases: usize,
}

/// A stretch of time during which the windowed failure share stayed above the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    /// When the share first went above the threshold (a window ending then).
    pub start_ms: u64,
    /// The last window end above the threshold.
    pub end_ms: u64,
    /// The worst window: failed answers and all answers in it.
    pub worst_failed: usize,
    pub worst_answers: usize,
}

impl Outage {
    fn worst_share(&self) -> f64 {
        self.worst_failed as f64 / self.worst_answers.max(1) as f64
    }
}

/// One answer as this expectation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Answer {
    pub arrived_ms: u64,
    pub failed: bool,
    /// Arrived in a phase (a window ending here is judged); warm-up answers only fill windows.
    pub judged: bool,
}

/// Outages in `answers` (sorted by arrival). Windows with fewer than `min_answers` answers are
/// not judged; two stretches less than a window apart are one outage.
#[cfg(test)]
pub fn outages(answers: &[Answer], s: &Settings) -> Vec<Outage> {
    outages_of(answers.iter().copied(), s)
}

/// [`outages`] over a stream sorted by arrival, keeping only the answers of one window.
fn outages_of(answers: impl Iterator<Item = Answer>, s: &Settings) -> Vec<Outage> {
    let mut out: Vec<Outage> = Vec::new();
    let mut window: std::collections::VecDeque<Answer> = std::collections::VecDeque::new();
    let mut failed = 0usize;
    for a in answers {
        let (t, bad) = (a.arrived_ms, a.failed);
        if bad {
            failed += 1;
        }
        window.push_back(a);
        while let Some(first) = window.front().filter(|f| f.arrived_ms + s.window_ms <= t) {
            if first.failed {
                failed -= 1;
            }
            window.pop_front();
        }
        let n = window.len();
        if !a.judged || n < s.min_answers || failed as f64 <= s.failure_share * n as f64 {
            continue;
        }
        match out.last_mut() {
            Some(o) if t <= o.end_ms + s.window_ms => {
                o.end_ms = t;
                if failed * o.worst_answers > o.worst_failed * n {
                    (o.worst_failed, o.worst_answers) = (failed, n);
                }
            }
            _ => out.push(Outage {
                start_ms: t,
                end_ms: t,
                worst_failed: failed,
                worst_answers: n,
            }),
        }
    }
    out
}

/// Every answer of the run in arrival order, streamed from the responses file. The file is in
/// the order answers were recorded, which is arrival order up to a small disorder: a first pass
/// measures the largest ([`super::max_lag`]), the second holds back only answers that a later
/// line could still precede (a heap as deep as that disorder, not the run).
fn answers_by_arrival(data: &EvidenceData) -> impl Iterator<Item = Answer> + '_ {
    use std::cmp::Reverse;
    let arrived = |r: &crate::evidence::ResponseRecord| r.t_ms + r.latency_ms;
    let lag = super::max_lag(data, arrived);
    let mut lines = data.responses.iter();
    let mut heap = std::collections::BinaryHeap::new();
    let mut top = 0u64;
    std::iter::from_fn(move || loop {
        // Anything older than (the latest arrival read − the largest disorder) is final.
        if let Some(Reverse(a)) = heap.peek() {
            let a: &Answer = a;
            if a.arrived_ms + lag < top {
                return heap.pop().map(|Reverse(a)| a);
            }
        }
        match lines.next() {
            Some(r) => {
                let a = Answer {
                    arrived_ms: arrived(&r),
                    failed: r.status >= 500 || r.layer == Layer::Client,
                    judged: r.phase.is_some(),
                };
                top = top.max(a.arrived_ms);
                heap.push(Reverse(a));
            }
            None => return heap.pop().map(|Reverse(a)| a),
        }
    })
}

/// Stretches during which some paging alert was firing: (from, to, alert names); `to` is
/// `u64::MAX` when it was still firing as recording stopped.
fn page_intervals(data: &EvidenceData, severities: &[String]) -> Vec<(u64, u64, Vec<String>)> {
    let mut out = Vec::new();
    for (i, rec) in data.firing.iter().enumerate() {
        let pages: Vec<String> = rec
            .firing
            .iter()
            .filter(|(_, sev)| severities.contains(sev))
            .map(|(name, _)| name.clone())
            .collect();
        if pages.is_empty() {
            continue;
        }
        let to = data.firing.get(i + 1).map_or(u64::MAX, |n| n.t_ms);
        out.push((rec.t_ms, to, pages));
    }
    out
}

/// The first moment at or after `t` a page was firing, and which.
fn first_page_from(pages: &[(u64, u64, Vec<String>)], t: u64) -> Option<(u64, &[String])> {
    pages
        .iter()
        .filter(|(_, to, _)| *to > t)
        .map(|(from, _, names)| ((*from).max(t), names.as_slice()))
        .min_by_key(|(at, _)| *at)
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// (passed, evidence, margins).
pub fn judge(data: &EvidenceData, s: &Settings) -> (bool, String, Vec<Margin>) {
    // Warm-up answers fill the first windows (so the baseline's first seconds are not judged on
    // a handful of answers) but no window ending in the warm-up is judged.
    let mut judged = 0usize;
    let found = outages_of(
        answers_by_arrival(data).inspect(|a| judged += usize::from(a.judged)),
        s,
    );
    let pages = page_intervals(data, s.page_severities);
    let recorded_until = data
        .phases
        .last()
        .map_or(0, |p| p.end_ms)
        .max(data.firing.last().map_or(0, |f| f.t_ms));
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let mut margins = Vec::new();
    let mut passed = true;
    let mut parts = Vec::new();
    for o in &found {
        let what = format!(
            "outage {}–{} (worst {} window: {} of {} failed, {})",
            secs(o.start_ms),
            secs(o.end_ms),
            secs(s.window_ms),
            o.worst_failed,
            o.worst_answers,
            pct(o.worst_share())
        );
        match first_page_from(&pages, o.start_ms) {
            Some((at, names)) if at - o.start_ms <= s.page_within_ms => {
                margins.push(Margin::new(
                    format!("page for the outage at {}", secs(o.start_ms)),
                    s.page_within_ms,
                    Some(at - o.start_ms),
                ));
                parts.push(format!(
                    "{what}: paged after {} by {}",
                    secs(at - o.start_ms),
                    names.join(", ")
                ));
            }
            _ if o.start_ms + s.page_within_ms > recorded_until => parts.push(format!(
                "{what}: began less than {} before the end of the run, not judged",
                secs(s.page_within_ms)
            )),
            later => {
                passed = false;
                margins.push(Margin::new(
                    format!("page for the outage at {}", secs(o.start_ms)),
                    s.page_within_ms,
                    later.map(|(at, _)| at - o.start_ms),
                ));
                let others: std::collections::BTreeSet<String> = data
                    .firing
                    .iter()
                    .filter(|f| {
                        f.t_ms >= o.start_ms
                            && f.t_ms <= o.end_ms.max(o.start_ms + s.page_within_ms)
                    })
                    .flat_map(|f| f.firing.iter().map(|(n, sev)| format!("{n} [{sev}]")))
                    .collect();
                parts.push(format!(
                    "SILENT {what}: no alert with severity {} fired within {}{}",
                    s.page_severities.join("|"),
                    secs(s.page_within_ms),
                    if others.is_empty() {
                        String::from(" (no alert fired at all)")
                    } else {
                        format!(
                            " (firing: {})",
                            others.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    }
                ));
            }
        }
    }
    if judged == 0 {
        // Nothing clients saw: no outage can be ruled out (the load never ran).
        passed = false;
        parts.push("no answers recorded in any phase: nothing to judge".into());
    } else if found.is_empty() {
        parts.push(format!(
            "no outage (no {} window with over {} of answers failed)",
            secs(s.window_ms),
            pct(s.failure_share)
        ));
    }
    // Pages during the baseline are false alarms.
    let baseline = data
        .phases
        .get(..s.baseline_phases.min(data.phases.len()))
        .filter(|b| !b.is_empty())
        .map(|b| (b[0].start_ms, b[b.len() - 1].end_ms));
    match baseline {
        Some((from, to)) => {
            let false_alarms: Vec<String> = pages
                .iter()
                .filter(|(f, t, _)| *f < to && *t > from)
                .map(|(f, _, names)| format!("{} at {}", names.join(", "), secs(*f)))
                .collect();
            if false_alarms.is_empty() {
                parts.push("no page in the baseline".into());
            } else {
                passed = false;
                parts.push(format!(
                    "FALSE PAGE in the baseline: {}",
                    false_alarms.join("; ")
                ));
            }
        }
        None => parts.push("no baseline phase".into()),
    }
    (passed, parts.join("; "), margins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{FiringRecord, PhaseWindow, ResponseRecord};

    fn settings(severities: &[String]) -> Settings<'_> {
        Settings {
            failure_share: 0.02,
            window_ms: 10_000,
            page_within_ms: 15_000,
            page_severities: severities,
            min_answers: 20,
            baseline_phases: 1,
        }
    }

    fn answer(t_ms: u64, status: u16, layer: Layer) -> ResponseRecord {
        ResponseRecord {
            t_ms,
            phase: Some(0),
            request: 0,
            attempt: 1,
            late_ms: 0,
            status,
            latency_ms: 5,
            layer,
            replica: None,
            upstream: None,
            retry_after: false,
            seq: 0,
            error: None,
        }
    }

    /// 40 answers a second for 63 s (warm-up 0–3 s, baseline 3–23 s, fault 23–43 s, recovery
    /// 43–63 s); those sent in `failing` fail as `status`/`layer`.
    fn run(failing: std::ops::Range<u64>, status: u16, layer: Layer) -> EvidenceData {
        let mut d = EvidenceData::default();
        for (name, from) in [("baseline", 3_000), ("fault", 23_000), ("recovery", 43_000)] {
            d.phases.push(PhaseWindow {
                name: name.into(),
                start_ms: from,
                end_ms: from + 20_000,
            });
        }
        for i in 0..2520u64 {
            let t = i * 25;
            let mut a = if failing.contains(&t) {
                answer(t, status, layer)
            } else {
                answer(t, 200, Layer::App)
            };
            a.phase = (t >= 3_000).then_some(0);
            d.responses.push(a);
        }
        d.firing.push(FiringRecord {
            t_ms: 0,
            firing: vec![],
        });
        d
    }

    fn fire(d: &mut EvidenceData, t_ms: u64, alerts: &[(&str, &str)]) {
        d.firing.push(FiringRecord {
            t_ms,
            firing: alerts
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        });
    }

    fn sev() -> Vec<String> {
        vec!["page".into(), "critical".into()]
    }

    #[test]
    fn an_outage_that_pages_in_time_passes_with_its_margin() {
        let mut d = run(23_000..43_000, 504, Layer::Ingress);
        fire(&mut d, 28_700, &[("IngressHigh5xxRatio", "page")]);
        fire(&mut d, 51_000, &[]);
        let s = sev();
        let (ok, text, margins) = judge(&d, &settings(&s));
        assert!(ok, "{text}");
        // 9 failures in a full window of 400 (over 2%) begin the outage at 23.2 s.
        assert!(text.contains("outage 23.2 s–52.8 s"), "{text}");
        assert!(
            text.contains("paged after 5.5 s by IngressHigh5xxRatio"),
            "{text}"
        );
        assert!(text.contains("no page in the baseline"), "{text}");
        assert_eq!(margins.len(), 1);
        // Arrivals are 5 ms after the send: the outage began at 23.205 s.
        assert_eq!(margins[0].margin_ms, Some(15_000 - 5_495));
    }

    #[test]
    fn an_outage_with_no_page_fails_and_names_what_did_fire() {
        let mut d = run(23_000..43_000, 504, Layer::Ingress);
        // Only a ticket-severity alert fires: that is not a page.
        fire(&mut d, 27_000, &[("CheckoutReplicaDown", "ticket")]);
        let s = sev();
        let (ok, text, margins) = judge(&d, &settings(&s));
        assert!(!ok);
        assert!(text.contains("SILENT outage 23.2 s"), "{text}");
        assert!(text.contains("CheckoutReplicaDown [ticket]"), "{text}");
        assert_eq!(margins[0].observed_ms, None);
        // The same run paged too late also fails, with a negative margin.
        fire(&mut d, 40_200, &[("IngressHigh5xxRatio", "critical")]);
        let (ok, text, margins) = judge(&d, &settings(&s));
        assert!(!ok, "{text}");
        assert_eq!(margins[0].margin_ms, Some(15_000 - 16_995));
    }

    #[test]
    fn no_answer_at_all_counts_as_a_failure() {
        let d = run(23_000..25_000, 0, Layer::Client);
        let s = sev();
        let (ok, text, _) = judge(&d, &settings(&s));
        assert!(!ok, "{text}");
        assert!(text.contains("SILENT"), "{text}");
    }

    #[test]
    fn a_failure_share_below_the_threshold_is_no_outage() {
        // 1 in 100 fails all along: 1%, under 2% in every window (the first ones too).
        let mut d = run(0..0, 200, Layer::App);
        let mut rs: Vec<ResponseRecord> = d.responses.iter().collect();
        for r in rs.iter_mut().skip(25).step_by(100) {
            r.status = 502;
            r.layer = Layer::Ingress;
        }
        d.responses = rs.into_iter().collect();
        let s = sev();
        let (ok, text, margins) = judge(&d, &settings(&s));
        assert!(ok, "{text}");
        assert!(text.starts_with("no outage"), "{text}");
        assert!(margins.is_empty());
    }

    #[test]
    fn a_page_in_the_baseline_is_a_false_alarm() {
        let mut d = run(0..0, 200, Layer::App);
        fire(&mut d, 12_000, &[("CheckoutDbPoolSaturated", "page")]);
        fire(&mut d, 14_000, &[]);
        // A page after the baseline is no false alarm.
        fire(&mut d, 30_000, &[("CheckoutDbPoolSaturated", "page")]);
        let s = sev();
        let (ok, text, _) = judge(&d, &settings(&s));
        assert!(!ok);
        assert!(
            text.contains("FALSE PAGE in the baseline: CheckoutDbPoolSaturated at 12.0 s"),
            "{text}"
        );
    }

    #[test]
    fn a_run_without_answers_is_not_a_run_without_outages() {
        let mut d = run(0..0, 200, Layer::App);
        d.responses = Default::default();
        let (ok, text, _) = judge(&d, &settings(&sev()));
        assert!(!ok);
        assert!(
            text.starts_with("no answers recorded in any phase: nothing to judge"),
            "{text}"
        );
    }

    #[test]
    fn an_outage_starting_too_close_to_the_end_is_not_judged() {
        let d = run(58_000..63_000, 503, Layer::App);
        let s = sev();
        let (ok, text, _) = judge(&d, &settings(&s));
        assert!(ok, "{text}");
        assert!(text.contains("not judged"), "{text}");
    }

    /// Answers recorded out of arrival order (a slow answer recorded after quicker ones) are
    /// judged as if sorted: the verdict of the shuffled file is that of the sorted one.
    #[test]
    fn answers_recorded_out_of_order_are_judged_in_arrival_order() {
        let sorted = run(25_000..30_000, 503, Layer::App);
        let mut rs: Vec<ResponseRecord> = sorted.responses.iter().collect();
        // Swap neighbours in blocks of 7 and move every 50th answer 3 s later in the file.
        for block in rs.chunks_mut(7) {
            block.reverse();
        }
        let mut late = Vec::new();
        let mut shuffled = Vec::new();
        for (i, r) in rs.into_iter().enumerate() {
            if i % 50 == 0 {
                late.push(r);
            } else {
                shuffled.push(r);
            }
            if i % 120 == 119 {
                shuffled.append(&mut late);
            }
        }
        shuffled.append(&mut late);
        let mut d = run(0..0, 200, Layer::App);
        d.responses = shuffled.into_iter().collect();
        let s = sev();
        let want = judge(&sorted, &settings(&s));
        assert!(want.1.contains("outage 2"), "{}", want.1);
        assert_eq!(judge(&d, &settings(&s)), want);
        let arrivals: Vec<u64> = answers_by_arrival(&d).map(|a| a.arrived_ms).collect();
        assert_eq!(arrivals.len(), 2520);
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn windows_with_too_few_answers_are_not_judged_and_bursts_merge() {
        let s = sev();
        let set = settings(&s);
        // 5 failures out of 5 answers: too few to give a share.
        let at = |t: u64, failed: bool| Answer {
            arrived_ms: t,
            failed,
            judged: true,
        };
        let few: Vec<Answer> = (0..5).map(|i| at(i * 100, true)).collect();
        assert!(outages(&few, &set).is_empty());
        // Two bursts 4 s apart in steady traffic are one outage; a burst 30 s later another.
        let burst = |t: u64| {
            [15_000..15_500, 19_500..20_000, 50_000..50_500]
                .iter()
                .any(|r| r.contains(&t))
        };
        let a: Vec<Answer> = (0..3000u64).map(|i| at(i * 25, burst(i * 25))).collect();
        let o = outages(&a, &set);
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!((o[0].start_ms, o[1].start_ms), (15_200, 50_200));
    }
}
