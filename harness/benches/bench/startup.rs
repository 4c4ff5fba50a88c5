//! Stack start-up on the local platform: the sample checkout system (PostgreSQL, the fault
//! proxies, payments, two checkout replicas, mtail, nginx, Prometheus) deployed and torn down N
//! times; the time until `deploy` returns with everything ready (median and max), and each
//! component's share from the platform's own start-up records (`EvidenceData::startup`).

use crate::common::{self, median, Mode, Row};
use harness::platform::{DeployOptions, Platform};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;

pub fn run(mode: Mode) -> (Vec<Row>, serde_json::Value) {
    let starts = mode.pick(10, 1);
    let root = common::root();
    let system = harness::spec::load_system(&root.join("scenarios/systems/checkout.toml"))
        .unwrap_or_else(|e| common::fail(&format!("loading the checkout system: {e}")));
    // The binaries the system runs ({bin_dir}).
    for bin in ["checkout", "payments-stub", "fault-proxy"] {
        common::release_bin(bin);
    }
    let logs = tempfile::Builder::new()
        .prefix("brownout-bench-")
        .tempdir()
        .unwrap();
    let runtime = common::runtime();
    let mut totals = Vec::new();
    let mut per: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    println!("stack start-up: {starts} starts of the checkout system on the local platform");
    for i in 0..starts {
        let log_dir = logs.path().join(format!("start-{i}"));
        std::fs::create_dir_all(&log_dir).unwrap();
        let opts = DeployOptions {
            run_id: format!("bench-{i}"),
            bugs: Vec::new(),
            bin_dir: root.join("target/release"),
            log_dir,
            seed: 1,
        };
        let evidence = harness::evidence::Evidence::new();
        let (elapsed, startup) = runtime.block_on(async {
            let mut platform = harness::platform::local::LocalPlatform::new();
            let t = Instant::now();
            let deployed = platform.deploy(&system, &opts, &evidence).await;
            let elapsed = t.elapsed().as_secs_f64();
            platform.teardown().await;
            if let Err(e) = deployed {
                common::fail(&format!("deploy failed: {e}"));
            }
            (elapsed, evidence.with(|d| d.startup.clone()))
        });
        let parts: Vec<String> = startup
            .iter()
            .map(|s| {
                format!(
                    "{} {:.2}",
                    s.component,
                    (s.ready_ms - s.started_ms) as f64 / 1000.0
                )
            })
            .collect();
        println!(
            "  start {:>2}: {elapsed:.2} s  ({})",
            i + 1,
            parts.join(", ")
        );
        totals.push(elapsed);
        for s in startup {
            if !order.contains(&s.component) {
                order.push(s.component.clone());
            }
            per.entry(s.component)
                .or_default()
                .push((s.ready_ms - s.started_ms) as f64 / 1000.0);
        }
    }
    let max = totals.iter().cloned().fold(0.0, f64::max);
    let med = median(&mut totals.clone());
    let breakdown: Vec<(String, f64)> = order
        .iter()
        .map(|c| (c.clone(), median(per.get_mut(c).unwrap())))
        .collect();
    println!(
        "  median {med:.2} s, max {max:.2} s; per component (median): {}",
        breakdown
            .iter()
            .map(|(c, s)| format!("{c} {s:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = vec![Row::new(
        "stack up (PostgreSQL, payments, 2 replicas, nginx, Prometheus, all ready)",
        format!("median {med:.2} s, max {max:.2} s over {starts}"),
        breakdown
            .iter()
            .map(|(c, s)| format!("{c} {s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        "≤ 1.5 s (median and max)",
        Some(med <= 1.5 && max <= 1.5),
    )];
    let details = json!({
        "starts": starts,
        "seconds": totals,
        "median_s": med,
        "max_s": max,
        "components_median_s": breakdown.iter().map(|(c, s)| (c.clone(), json!(s))).collect::<serde_json::Map<_, _>>(),
    });
    (rows, details)
}
