//! The run's summary on the terminal (stdout), after its report is written: each expectation
//! with its smallest margin and evidence, each phase's figures, the verdict and what the run cost.

use super::Report;
use std::io::Write;
use std::path::Path;

/// Prints the summary of `r`, written in `dir`.
pub fn print_summary(r: &Report, dir: &Path) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\n{:<28} {:<6} {:<40} evidence",
        "expectation", "result", "smallest margin"
    );
    for v in &r.expectations {
        let _ = writeln!(
            out,
            "{:<28} {:<6} {:<40} {}",
            v.id,
            if v.passed { "pass" } else { "FAIL" },
            v.margin_text(),
            v.evidence
        );
    }
    let _ = writeln!(
        out,
        "\nphase       nominal  sent  late  retries  mix(pp)  completed  no-resp  p50    p99    5xx client/edge       statuses"
    );
    for p in &r.phases {
        let statuses = p.statuses_text();
        let _ = writeln!(
            out,
            "{:<11} {:>7}  {:>4}  {:>4}  {:>7}  {:>7}  {:>9}  {:>7}  {:>5}  {:>5}  {:<21} {statuses}",
            p.name,
            p.nominal,
            p.sent,
            p.late,
            p.retries,
            p.mix_worst_window_pp,
            p.completed,
            p.no_response,
            p.latency_ms.p50.map_or("-".into(), |v| format!("{v}ms")),
            p.latency_ms.p99.map_or("-".into(), |v| format!("{v}ms")),
            p.five_xx_text()
        );
    }
    let failed: Vec<&str> = r
        .expectations
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.id.as_str())
        .collect();
    let requests: u64 =
        r.phases.iter().map(|p| p.sent + p.retries).sum::<u64>() + r.load.warmup_sent;
    let tail = format!(
        "wall {:.1} s, stack up {}, harness CPU {:.1} s ({:.1} ms per 1,000 requests), max RSS {:.0} MB",
        r.wall_time_s,
        r.stack_up_s.map_or("never".into(), |s| format!("{s:.1} s")),
        r.harness_cpu_s,
        r.harness_cpu_s * 1e6 / requests.max(1) as f64,
        r.load.harness_max_rss_mb,
    );
    match &r.aborted {
        Some(reason) => {
            let _ = writeln!(
                out,
                "\nABORTED: {reason}; nothing judged ({} phases recorded); {tail}",
                r.phases.len()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\n{}: {} of {} expectations held{}; {tail}",
                r.verdict.to_string().to_uppercase(),
                r.expectations.len() - failed.len(),
                r.expectations.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" — failed: {}", failed.join(", "))
                },
            );
        }
    }
    if let Some(cut) = r.logs.as_ref().and_then(|l| l.cut_text()) {
        let _ = writeln!(out, "{cut}");
    }
    let _ = writeln!(out, "report: {}", dir.join("report.md").display());
}
