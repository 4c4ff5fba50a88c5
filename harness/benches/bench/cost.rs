//! The harness's own cost as load grows: `brownout run` of a one-phase scenario (the sample
//! checkout system, catalog reads) at 40, 400 and 2,000 req/s, its CPU time and peak RSS as the
//! run's own report gives them (`harness_cpu_s`: getrusage of the brownout process, deploy and
//! teardown included; `harness_max_rss_mb`). Rounds rotate the rates; figures are medians.

use crate::common::{self, median, Mode, Row};
use serde_json::json;
use std::path::Path;
use std::process::Command;

pub struct Sample {
    pub cpu_s: f64,
    pub wall_s: f64,
    pub rss_mb: f64,
    pub requests: f64,
    pub verdict: String,
}

fn one_run(dir: &Path, rate: u32, secs: u64, round: usize) -> Sample {
    let root = common::root();
    let name = format!("harness-cost-{rate}-{round}");
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            r#"name = "{name}"
summary = "The harness's cost at {rate} req/s (bench)"
system = "{system}"
seed = 1
[load]
rate = {rate}
timeout = "5s"
max_in_flight = 1024
[[load.requests]]
name = "catalog"
path = "/api/catalog"
[[phases]]
name = "steady"
for = "{secs}s"
[[expect]]
id = "steady-answers"
kind = "status-codes"
during = "steady"
allowed = [200]
"#,
            system = root.join("scenarios/systems/checkout.toml").display()
        ),
    )
    .unwrap();
    let reports = dir.join("reports");
    let out = Command::new(common::release_bin("brownout"))
        .args(["run"])
        .arg(&file)
        .env("BROWNOUT_REPORTS", &reports)
        .env("BROWNOUT_SCENARIOS", root.join("scenarios"))
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| common::fail(&format!("cannot run brownout: {e}")));
    // 0 pass, 1 an expectation failed (the app may not keep up at 2,000 req/s): both have a report.
    if !matches!(out.status.code(), Some(0 | 1)) {
        common::fail(&format!(
            "brownout run at {rate} req/s: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let run_dir = std::fs::read_dir(reports.join(&name))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path())
        .unwrap_or_else(|| common::fail(&format!("no report for {name}")));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    let requests: f64 = report["phases"].as_array().map_or(0.0, |p| {
        p.iter()
            .map(|p| p["completed"].as_f64().unwrap_or(0.0))
            .sum()
    }) + report["load"]["warmup_sent"].as_f64().unwrap_or(0.0);
    // The run's directory holds its logs: gone before the next run, the disk stays small.
    let _ = std::fs::remove_dir_all(&run_dir);
    Sample {
        cpu_s: report["harness_cpu_s"].as_f64().unwrap_or(f64::NAN),
        wall_s: report["wall_time_s"].as_f64().unwrap_or(f64::NAN),
        rss_mb: report["load"]["harness_max_rss_mb"]
            .as_f64()
            .unwrap_or(f64::NAN),
        requests,
        verdict: report["verdict"].as_str().unwrap_or("?").to_string(),
    }
}

/// `goose_per_cpu`: bare goose's requests per CPU-second at each rate, from the load part if it
/// ran in this invocation.
pub fn run(mode: Mode, goose_per_cpu: &[(u32, f64)]) -> (Vec<Row>, serde_json::Value) {
    let rates = [40u32, 400, 2000];
    let rates: &[u32] = mode.pick(&rates, &rates[..1]);
    let rounds = mode.pick(3, 1);
    let secs = mode.pick(20, 2);
    let dir = tempfile::Builder::new()
        .prefix("brownout-bench-")
        .tempdir()
        .unwrap();
    println!("harness cost: brownout run, one {secs} s phase (+ 3 s warm-up), {rounds} rounds per rate, medians");
    let mut samples: Vec<Vec<Sample>> = rates.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for k in 0..rates.len() {
            let i = (r + k) % rates.len();
            samples[i].push(one_run(dir.path(), rates[i], secs, r));
        }
    }
    let mut figures = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let m = |f: &dyn Fn(&Sample) -> f64| median(&mut s.iter().map(f).collect::<Vec<_>>());
        let (cpu, wall, rss, req) = (
            m(&|x| x.cpu_s),
            m(&|x| x.wall_s),
            m(&|x| x.rss_mb),
            m(&|x| x.requests),
        );
        let verdicts: Vec<&str> = s.iter().map(|x| x.verdict.as_str()).collect();
        println!(
            "  {:>5} req/s: CPU {cpu:>5.2} s per {wall:.0} s run ({:.1}% of a core), {:>6.0} requests per CPU-second, peak RSS {rss:>5.1} MB, verdicts {verdicts:?}",
            rates[i], 100.0 * cpu / wall, req / cpu
        );
        figures.push((rates[i], cpu, wall, rss, req));
    }
    let mut rows = Vec::new();
    if let Some(&(_, cpu, wall, ..)) = figures.iter().find(|f| f.0 == 40) {
        let share = 100.0 * cpu / wall;
        rows.push(Row::new(
            "harness CPU during a run at 40 req/s",
            format!("{cpu:.2} s per {wall:.0} s run = {share:.1}% of a core"),
            "—".into(),
            "≤ 3% of a core",
            Some(share <= 3.0),
        ));
    }
    for &(rate, cpu, _, _, req) in figures.iter().filter(|f| f.0 >= 400) {
        let ours = req / cpu;
        let goose = goose_per_cpu.iter().find(|g| g.0 == rate).map(|g| g.1);
        rows.push(Row::new(
            &format!("harness CPU at {rate} req/s: requests per CPU-second (whole run)"),
            format!("{ours:.0} ({cpu:.2} s CPU)"),
            goose.map_or("bare goose: run `just bench load cost`".into(), |g| {
                format!("bare goose {g:.0}")
            }),
            "≥ 0.9× bare goose",
            goose.map(|g| ours >= 0.9 * g),
        ));
    }
    let rss: Vec<f64> = figures.iter().map(|f| f.3).collect();
    let (lo, hi) = (
        rss.iter().cloned().fold(f64::MAX, f64::min),
        rss.iter().cloned().fold(0.0, f64::max),
    );
    rows.push(Row::new(
        &format!(
            "harness peak RSS at {}",
            figures
                .iter()
                .map(|f| format!("{} req/s", f.0))
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        rss.iter()
            .map(|r| format!("{r:.0} MB"))
            .collect::<Vec<_>>()
            .join(" / "),
        format!("max/min {:.2}", hi / lo),
        "flat within 2×",
        (figures.len() > 1).then_some(hi <= 2.0 * lo),
    ));
    let details = json!({
        "rounds": rounds, "phase_s": secs,
        "rates": figures.iter().map(|f| json!({"rate": f.0, "harness_cpu_s": f.1, "wall_s": f.2, "max_rss_mb": f.3, "requests": f.4})).collect::<Vec<_>>(),
    });
    (rows, details)
}
