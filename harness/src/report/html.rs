//! `report.html`: one self-contained page per run (inline CSS, JS and SVG; nothing fetched). The
//! header, the expectation table with evidence and margins, and the phase table are rendered here;
//! the timelines (status mix per second with the fault windows shaded and app vs ingress answers
//! apart, latency percentiles, readiness per replica, alert states, lifecycle events) are drawn
//! in the page from a JSON summary of the evidence, aggregated per second so the page stays small.

use super::Report;
use crate::evidence::{AlertState, EvidenceData, Layer, Lifecycle, Probe};
use crate::judge::Latencies;
use serde::Serialize;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("report.html");

/// What the page's script draws.
#[derive(Serialize, Default)]
pub struct Series {
    /// Seconds covered (the x axis), from the first send to the last answer.
    pub seconds: u64,
    pub phases: Vec<PhaseBand>,
    /// Per second of send time: answers by who made them.
    pub mix: Vec<Mix>,
    /// Per second of send time: p50 and p99 latency from the schedule, in ms.
    pub latency: Vec<(u64, Option<u64>, Option<u64>)>,
    /// Per replica: (from_ms, state) changes, readiness and process state merged.
    pub readiness: BTreeMap<String, Vec<(u64, ReplicaState)>>,
    /// Alert states: (from_ms, state) changes per alert.
    pub alerts: BTreeMap<String, Vec<(u64, AlertState)>>,
    /// Lifecycle events: (t_ms, replica, event name, description).
    pub lifecycle: Vec<(u64, String, String, String)>,
}

/// What a replica's row shows from a moment on.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaState {
    Ready,
    NotReady,
    /// Crashed (exited unasked), until it is started again.
    Down,
    /// Terminated on request (stopped by itself or SIGKILLed): the replica is gone.
    Gone,
}

/// Each replica's rows: readiness flips, with crashes (down until started again, then its last
/// readiness) and terminations (gone) merged in by time.
fn replica_states(data: &EvidenceData) -> BTreeMap<String, Vec<(u64, ReplicaState)>> {
    enum Ev {
        Ready(bool),
        Crashed,
        Started,
        Ended,
    }
    let mut events: BTreeMap<&str, Vec<(u64, Ev)>> = BTreeMap::new();
    for p in data.probes.iter().filter(|p| p.probe == Probe::Readiness) {
        events
            .entry(&p.replica)
            .or_default()
            .push((p.t_ms, Ev::Ready(p.ok)));
    }
    for l in &data.lifecycle {
        let ev = match l.event {
            Lifecycle::Exited { .. } | Lifecycle::FailedToStart { .. } => Ev::Crashed,
            Lifecycle::Started { .. } => Ev::Started,
            Lifecycle::Stopped { .. } | Lifecycle::Sigkill { .. } => Ev::Ended,
            _ => continue,
        };
        events.entry(&l.replica).or_default().push((l.t_ms, ev));
    }
    events
        .into_iter()
        .map(|(replica, mut evs)| {
            evs.sort_by_key(|(t, _)| *t);
            let mut out: Vec<(u64, ReplicaState)> = Vec::new();
            let mut ready: Option<bool> = None;
            let mut down = false;
            for (t, ev) in evs {
                let state = match ev {
                    Ev::Ready(ok) => {
                        ready = Some(ok);
                        if down {
                            continue;
                        }
                        if ok {
                            ReplicaState::Ready
                        } else {
                            ReplicaState::NotReady
                        }
                    }
                    Ev::Crashed => {
                        down = true;
                        ReplicaState::Down
                    }
                    Ev::Started if down => {
                        down = false;
                        match ready {
                            Some(true) => ReplicaState::Ready,
                            Some(false) => ReplicaState::NotReady,
                            None => continue,
                        }
                    }
                    Ev::Started => continue,
                    Ev::Ended => ReplicaState::Gone,
                };
                if out.last().is_none_or(|(_, s)| *s != state) {
                    out.push((t, state));
                }
            }
            (replica.to_string(), out)
        })
        .collect()
}

#[derive(Serialize)]
pub struct PhaseBand {
    pub name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub fault: Option<String>,
}

#[derive(Serialize, Default, Clone, Copy)]
pub struct Mix {
    /// Non-5xx answers.
    pub ok: u32,
    /// 5xx the app sent.
    pub app_5xx: u32,
    /// 5xx the ingress made itself (502/503/504 with no upstream answer).
    pub ingress_5xx: u32,
    /// No answer (timeout, refused, reset).
    pub none: u32,
}

pub fn series(report: &Report, data: &EvidenceData) -> Series {
    // Two passes over the responses file: the first finds the last second and how far a record
    // can fall behind the latest send read before it; the second keeps exact latencies only for
    // the seconds a later record could still land in, and turns older ones into percentiles.
    let (mut end_ms, mut top_ms, mut lag_ms) = (0u64, 0u64, 0u64);
    for r in data.responses.iter() {
        end_ms = end_ms.max(r.t_ms + r.latency_ms);
        top_ms = top_ms.max(r.t_ms);
        lag_ms = lag_ms.max(top_ms - r.t_ms);
    }
    let end_ms = end_ms.max(data.phases.last().map_or(0, |p| p.end_ms));
    let seconds = end_ms.div_ceil(1000).max(1);
    let mut mix = vec![Mix::default(); seconds as usize];
    let mut latency: Vec<(u64, Option<u64>, Option<u64>)> =
        (0..seconds).map(|i| (i, None, None)).collect();
    let mut open: BTreeMap<usize, Latencies> = BTreeMap::new();
    let close = |latency: &mut Vec<(u64, Option<u64>, Option<u64>)>, s: usize, l: Latencies| {
        let p = l.percentiles(&[50.0, 99.0]);
        latency[s] = (s as u64, p[0], p[1]);
    };
    let mut top_ms = 0u64;
    for r in data.responses.iter() {
        let s = ((r.t_ms / 1000) as usize).min(mix.len() - 1);
        let m = &mut mix[s];
        match (r.layer, r.status >= 500) {
            (Layer::Client, _) => m.none += 1,
            (_, false) => m.ok += 1,
            (Layer::App, true) => m.app_5xx += 1,
            (Layer::Ingress, true) => m.ingress_5xx += 1,
        }
        open.entry(s)
            .or_default()
            .record(r.latency_from_schedule_ms());
        top_ms = top_ms.max(r.t_ms);
        // No later record is sent before `top_ms - lag_ms`: seconds before it are complete.
        let complete = ((top_ms.saturating_sub(lag_ms) / 1000) as usize).min(mix.len() - 1);
        while let Some(entry) = open.first_entry().filter(|e| *e.key() < complete) {
            let (s, l) = (*entry.key(), entry.remove());
            close(&mut latency, s, l);
        }
    }
    for (s, l) in open {
        close(&mut latency, s, l);
    }
    let readiness = replica_states(data);
    let mut alerts: BTreeMap<String, Vec<(u64, AlertState)>> = BTreeMap::new();
    for a in &data.alerts {
        alerts
            .entry(a.alert.clone())
            .or_default()
            .push((a.t_ms, a.state));
    }
    Series {
        seconds,
        phases: report
            .phases
            .iter()
            .map(|p| PhaseBand {
                name: p.name.clone(),
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                fault: p.fault.clone(),
            })
            .collect(),
        mix,
        latency,
        readiness,
        alerts,
        lifecycle: data
            .lifecycle
            .iter()
            .map(|l| {
                (
                    l.t_ms,
                    l.replica.clone(),
                    l.event.name().to_string(),
                    l.event.describe(),
                )
            })
            .collect(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON to put inside a `<script type="application/json">`: nothing in it may close the element,
/// so `</` and `<!--` are escaped (the same JSON value).
fn embed_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/")
        .replace("<!--", "<\\u0021--")
}

/// The page for `report`, with the evidence's timelines.
pub fn render(report: &Report, data: &EvidenceData) -> String {
    let series = series(report, data);
    let json = embed_json(&series);
    let verdict = report.verdict.to_string();
    let mut header = format!(
        "<h1>{} <span id=\"verdict\" class=\"verdict {verdict}\">{}</span></h1>\n<p>{}</p>\n<ul class=\"facts\"><li>run <code>{}</code>, started {}</li><li>system <code>{}</code></li><li>bugs: {}</li><li>load: {} req/s, open model; wall {:.1} s, stack up {}</li>{}<li id=\"platform\">{}</li></ul>\n",
        esc(&report.scenario),
        verdict.to_uppercase(),
        esc(&report.summary),
        esc(&report.run_id),
        esc(&report.started_at),
        esc(&report.system),
        if report.bugs.is_empty() { "none (hardened app)".to_string() } else { esc(&report.bugs.join(", ")) },
        report.load.rate,
        report.wall_time_s,
        report.stack_up_s.map_or("never".into(), |s| format!("{s:.1} s")),
        report.baseline.as_ref().map_or(String::new(), |b| format!("<li>baseline <code>{}</code></li>", esc(b))),
        esc(super::platform_text(&report.platform).trim_start_matches("- ").trim_end()),
    );
    if let Some(reason) = &report.aborted {
        header.push_str(&format!(
            "<p id=\"aborted\" class=\"aborted\">Aborted: {}. Nothing was judged; below is what was recorded until then.</p>\n",
            esc(reason)
        ));
    }
    let mut table = String::from("<table id=\"expectations\"><thead><tr><th>expectation</th><th>kind</th><th>result</th><th>smallest margin</th><th>evidence</th></tr></thead><tbody>\n");
    for v in &report.expectations {
        table.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            if v.passed { "pass" } else { "fail" },
            esc(&v.id),
            esc(&v.kind),
            if v.passed { "pass" } else { "FAIL" },
            esc(&v.margin_text()),
            esc(&v.evidence)
        ));
    }
    table.push_str("</tbody></table>\n");
    let mut margins = String::from("<table id=\"margins\"><thead><tr><th>expectation</th><th>measured</th><th>bound</th><th>observed</th><th>margin</th></tr></thead><tbody>\n");
    for v in &report.expectations {
        for m in &v.margins {
            let ms = |x: Option<u64>| {
                x.map_or("never".into(), |x| format!("{:.2} s", x as f64 / 1000.0))
            };
            margins.push_str(&format!(
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{:.2} s</td><td>{}</td><td>{}</td></tr>\n",
                if m.margin_ms.is_some_and(|x| x >= 0) { "pass" } else { "fail" },
                esc(&v.id),
                esc(&m.what),
                m.bound_ms as f64 / 1000.0,
                ms(m.observed_ms),
                m.margin_ms.map_or("missed".into(), |x| format!("{:+.2} s", x as f64 / 1000.0)),
            ));
        }
    }
    margins.push_str("</tbody></table>\n");
    let mut phases = String::from("<table id=\"phases\"><thead><tr><th>phase</th><th>fault</th><th>sent</th><th>completed</th><th>no response</th><th>5xx client / edge</th><th>statuses</th><th>p50</th><th>p99</th></tr></thead><tbody>\n");
    for p in &report.phases {
        let ms = |x: Option<u64>| x.map_or("-".into(), |x| format!("{x} ms"));
        phases.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&p.name),
            esc(p.fault.as_deref().unwrap_or("-")),
            p.sent,
            p.completed,
            p.no_response,
            esc(&p.five_xx_text()),
            esc(&p.statuses_text()),
            ms(p.latency_ms.p50),
            ms(p.latency_ms.p99),
        ));
    }
    phases.push_str("</tbody></table>\n");
    if !report.notes.is_empty() {
        phases.push_str("<h3>Notes</h3>\n<ul id=\"notes\">\n");
        for n in &report.notes {
            phases.push_str(&format!(
                "<li><code>{:.1} s</code> {}</li>\n",
                n.t_ms as f64 / 1000.0,
                esc(&n.text)
            ));
        }
        phases.push_str("</ul>\n");
    }
    // Filled in the template's order, each placeholder once, so text from the files (a summary
    // that happens to contain a placeholder's name) is never filled in again.
    let mut out = String::with_capacity(TEMPLATE.len() + json.len() + table.len());
    let mut rest = TEMPLATE;
    for (key, value) in [
        (
            "__TITLE__",
            esc(&format!("{} — {}", report.scenario, verdict)),
        ),
        ("__HEADER__", header),
        ("__EXPECTATIONS__", table),
        ("__PHASES__", phases),
        ("__MARGINS__", margins),
        ("__DATA__", json),
    ] {
        match rest.split_once(key) {
            Some((before, after)) => {
                out.push_str(before);
                out.push_str(&value);
                rest = after;
            }
            None => out.push_str(&format!("<!-- template has no {key} -->")),
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every placeholder is in the template, in the order `render` fills them, once.
    #[test]
    fn the_template_has_each_placeholder_once_in_order() {
        let keys = [
            "__TITLE__",
            "__HEADER__",
            "__EXPECTATIONS__",
            "__PHASES__",
            "__MARGINS__",
            "__DATA__",
        ];
        let mut at = 0;
        for k in keys {
            assert_eq!(TEMPLATE.matches(k).count(), 1, "{k}");
            let i = TEMPLATE.find(k).unwrap();
            assert!(i > at, "{k} out of order");
            at = i;
        }
        // Nothing is fetched: no external script, style, font or image.
        for bad in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(!TEMPLATE.contains(bad), "{bad}");
        }
    }

    /// A row is not green after its replica is gone: a termination ends it, a crash shows it down
    /// until it is started again.
    #[test]
    fn replica_rows_show_crashes_and_terminations() {
        use crate::evidence::{LifecycleRecord, ProbeRecord, ProbeResult};
        let mut d = EvidenceData::default();
        let probe = |t_ms, ok| ProbeRecord {
            t_ms,
            service: "checkout".into(),
            replica: "checkout-0".into(),
            probe: Probe::Readiness,
            ok,
            result: if ok {
                ProbeResult::Passed
            } else {
                ProbeResult::Refused
            },
        };
        let life = |t_ms, event| LifecycleRecord {
            t_ms,
            service: "checkout".into(),
            replica: "checkout-0".into(),
            event,
        };
        d.probes = vec![probe(100, true), probe(5_000, false), probe(9_000, true)];
        d.lifecycle = vec![
            life(
                50,
                Lifecycle::Started {
                    pid: Some(1),
                    container: None,
                },
            ),
            life(
                3_000,
                Lifecycle::Exited {
                    status: "exit code 1".into(),
                    last_log_line: String::new(),
                },
            ),
            life(
                4_000,
                Lifecycle::Started {
                    pid: Some(2),
                    container: None,
                },
            ),
            life(
                12_000,
                Lifecycle::Stopped {
                    status: "exit code 0".into(),
                },
            ),
        ];
        use ReplicaState::*;
        assert_eq!(
            replica_states(&d)["checkout-0"],
            vec![
                (100, Ready),
                (3_000, Down),
                (4_000, Ready),
                (5_000, NotReady),
                (9_000, Ready),
                (12_000, Gone)
            ]
        );
    }

    #[test]
    fn json_in_the_page_cannot_close_its_script_element() {
        let json = embed_json(&"</script><script>alert(1)</script><!--");
        assert!(!json.contains("</"));
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, "</script><script>alert(1)</script><!--");
    }
}
