//! `just bench` (`cargo bench -p harness --bench bench -- [PART…] [--quick]`): Brownout measured
//! against the tools people would use instead, side by side in one run, never against a fixed
//! time. Parts: `proxy` (the fault proxy vs HAProxy vs direct), `load` (the load driver vs bare
//! goose vs wrk), `startup` (the local stack, per component), `cost` (the harness's CPU and RSS
//! at 40 / 400 / 2,000 req/s), `inflight` (memory per send waiting for its answer: the load
//! driver vs reqwest vs hyper). Prints one table and writes it, with every figure, to
//! `reports/bench/<time>.json` and `reports/bench/latest.json`. `--quick` only checks that every
//! part still runs (CI): its figures mean nothing.

mod common;
mod cost;
mod inflight;
mod load;
mod proxy;
mod startup;

use common::{Mode, Row};
use serde_json::json;

const PARTS: [&str; 5] = ["proxy", "load", "startup", "cost", "inflight"];

fn main() {
    if std::env::var("BROWNOUT_BENCH_ROLE").as_deref() == Ok("driver") {
        load::driver_child();
        return;
    }
    if std::env::var("BROWNOUT_BENCH_ROLE").as_deref() == Ok("inflight") {
        inflight::child();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick =
        args.iter().any(|a| a == "--quick") || std::env::var_os("BROWNOUT_BENCH_QUICK").is_some();
    let mode = if quick { Mode::Quick } else { Mode::Full };
    // `cargo bench` adds `--bench`; anything else that is not a part is a mistake.
    let mut parts: Vec<&str> = Vec::new();
    for a in args.iter().filter(|a| !a.starts_with("--")) {
        match PARTS.iter().find(|p| **p == a.as_str()) {
            Some(p) => parts.push(p),
            None => {
                eprintln!(
                    "bench: unknown part '{a}'; the parts are {}",
                    PARTS.join(", ")
                );
                std::process::exit(2);
            }
        }
    }
    if parts.is_empty() {
        parts = PARTS.to_vec();
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut details = serde_json::Map::new();
    let mut goose_per_cpu = Vec::new();
    for part in &parts {
        let (r, d) = match *part {
            "proxy" => proxy::run(mode),
            "load" => {
                let (r, d, results) = load::run(mode);
                goose_per_cpu = results.iter().map(|x| (x.rate, x.figures[1].1)).collect();
                (r, d)
            }
            "startup" => startup::run(mode),
            "inflight" => inflight::run(mode),
            _ => cost::run(mode, &goose_per_cpu),
        };
        rows.extend(r);
        details.insert(part.to_string(), d);
        println!();
    }
    print_table(&rows, mode);
    let machine = machine();
    let doc = json!({
        "mode": mode,
        "machine": machine,
        "commit": git_commit(),
        "at": chrono::Utc::now().to_rfc3339(),
        "rows": rows,
        "details": details,
    });
    let dir = common::root().join("reports/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::to_string_pretty(&doc).unwrap();
    let file = dir.join(format!(
        "{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&file, &text).unwrap();
    std::fs::write(dir.join("latest.json"), &text).unwrap();
    println!("written: {}", file.display());
}

fn print_table(rows: &[Row], mode: Mode) {
    if mode == Mode::Quick {
        println!("(quick mode: every part ran; the figures below mean nothing)");
    }
    let w = [
        rows.iter()
            .map(|r| r.what.chars().count())
            .max()
            .unwrap_or(4)
            .max(4),
        rows.iter()
            .map(|r| r.brownout.chars().count())
            .max()
            .unwrap_or(8)
            .max(8),
        rows.iter()
            .map(|r| r.compared_with.chars().count())
            .max()
            .unwrap_or(13)
            .max(13),
        rows.iter()
            .map(|r| r.target.chars().count())
            .max()
            .unwrap_or(6)
            .max(6),
    ];
    let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
    println!(
        "| {} | {} | {} | {} | met |",
        pad("what", w[0]),
        pad("brownout", w[1]),
        pad("compared with", w[2]),
        pad("target", w[3])
    );
    println!(
        "|{}|{}|{}|{}|-----|",
        "-".repeat(w[0] + 2),
        "-".repeat(w[1] + 2),
        "-".repeat(w[2] + 2),
        "-".repeat(w[3] + 2)
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "n/a",
        };
        println!(
            "| {} | {} | {} | {} | {met:<3} |",
            pad(&r.what, w[0]),
            pad(&r.brownout, w[1]),
            pad(&r.compared_with, w[2]),
            pad(&r.target, w[3])
        );
    }
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")
            .and_then(|r| r.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
    });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|m| m.trim().to_string()));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpu": model, "cores": cores, "memory": mem, "kernel": kernel.trim()})
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(common::root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
