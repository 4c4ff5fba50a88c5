//! The load driver against the tools people would use instead, on the same nginx static endpoint
//! at the same offered rate: Brownout's driver with full evidence recording (a process of its own:
//! this benchmark's executable re-run as `BROWNOUT_BENCH_ROLE=driver`), bare goose (the
//! `goose-driver` crate next to this one: goose's own metrics, no evidence), and `wrk` (closed
//! loop, paced by a Lua `delay()`: Debian's wrk has no fixed-rate mode). All three open a new
//! connection per request, as Brownout's driver does (see `load::start_steered`). Each driver's
//! CPU time and peak RSS come from `wait4`; rounds rotate the order; figures are medians.

use crate::common::{self, median, Mode, Row, Server};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The child side: runs Brownout's load driver against `BENCH_URL` at `BENCH_RATE` for
/// `BENCH_SECS`, recording evidence as a run does, and prints `{"requests":N,"ok":N}`.
pub fn driver_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| common::fail(&format!("{k} not set")));
    let url = var("BENCH_URL");
    let rate: u32 = var("BENCH_RATE").parse().unwrap();
    let secs: u64 = var("BENCH_SECS").parse().unwrap();
    let runtime = common::runtime();
    runtime.block_on(async {
        let evidence = harness::evidence::Evidence::new();
        let load = harness::spec::Load {
            rate,
            max_in_flight: 512,
            timeout: Duration::from_secs(5),
            requests: vec![serde_json::from_value(json!({"name": "root", "path": "/"})).unwrap()],
        };
        let planned = Duration::from_secs(secs);
        let run = harness::load::start(
            &url,
            &load,
            1,
            evidence.clone(),
            planned,
            planned + Duration::from_secs(1),
        )
        .unwrap();
        tokio::time::sleep(planned).await;
        run.stop().await.unwrap();
        let (requests, ok) = evidence.with(|d| {
            (
                d.responses.len(),
                d.responses
                    .iter()
                    .filter(|r| (200..300).contains(&r.status))
                    .count(),
            )
        });
        println!("{}", json!({"requests": requests, "ok": ok}));
    });
}

fn start_nginx(dir: &Path) -> (Server, u16) {
    let port = common::free_port();
    let t = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let user = if nix::unistd::geteuid().is_root() {
        "user root;\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!(
            "{user}master_process off;\ndaemon off;\npid {t}/nginx.pid;\nerror_log {t}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {t}/tmp/client;\n  proxy_temp_path {t}/tmp/proxy;\n  fastcgi_temp_path {t}/tmp/fastcgi;\n  uwsgi_temp_path {t}/tmp/uwsgi;\n  scgi_temp_path {t}/tmp/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    // One process (no master): it dies with the benchmark (see `dies_with_parent`).
    let child = common::dies_with_parent(&mut Command::new(common::system_program("nginx")))
        .args(["-e", &format!("{t}/error.log"), "-c"])
        .arg(&conf)
        .spawn()
        .unwrap_or_else(|e| common::fail(&format!("cannot start nginx: {e}")));
    common::wait_listening(port, "nginx");
    (Server(child), port)
}

/// Builds the goose driver (its own crate and target dir) if needed; returns its path.
fn goose_driver() -> PathBuf {
    let root = common::root();
    let manifest = root.join("harness/benches/goose-driver/Cargo.toml");
    let target = root.join("target/goose-driver");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap_or_else(|e| {
            common::fail(&format!("cannot run cargo to build the goose driver: {e}"))
        });
    if !status.success() {
        common::fail("building harness/benches/goose-driver failed (see above)");
    }
    target.join("release/goose-driver")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    Brownout,
    Goose,
    Wrk,
}

const DRIVERS: [Driver; 3] = [Driver::Brownout, Driver::Goose, Driver::Wrk];

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Brownout => "brownout (evidence on)",
            Driver::Goose => "bare goose",
            Driver::Wrk => "wrk",
        }
    }
}

struct Sample {
    requests: f64,
    cpu_s: f64,
    rss_mb: f64,
}

fn drive(driver: Driver, goose: &Path, dir: &Path, url: &str, rate: u32, secs: u64) -> Sample {
    let mut cmd = match driver {
        Driver::Brownout => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.env("BROWNOUT_BENCH_ROLE", "driver")
                .env("BENCH_URL", url)
                .env("BENCH_RATE", rate.to_string())
                .env("BENCH_SECS", secs.to_string());
            c
        }
        Driver::Goose => {
            let users = 32.to_string();
            let mut c = Command::new(goose);
            c.args(["--host", url, "--users", &users, "--increase-rate", "1000"])
                .args([
                    "--run-time",
                    &format!("{secs}s"),
                    "--throttle-requests",
                    &rate.to_string(),
                ])
                .args([
                    "--quiet",
                    "--no-print-metrics",
                    "--no-reset-metrics",
                    "--no-telnet",
                ]);
            c
        }
        Driver::Wrk => {
            let connections = 16u32;
            let script = dir.join("pace.lua");
            // Each connection waits this long before each request: connections × 1000 / delay
            // ≈ the offered rate (less the answers' latency).
            let delay = (connections * 1000 / rate.max(1)).max(1);
            std::fs::write(
                &script,
                format!(
                    "function delay() return {delay} end\nfunction done(summary, latency, requests)\n  io.write(string.format('{{\"requests\":%d,\"ok\":%d}}\\n', summary.requests, summary.requests - summary.errors.status - summary.errors.connect - summary.errors.read - summary.errors.write - summary.errors.timeout))\nend\n"
                ),
            )
            .unwrap();
            let mut c = Command::new(common::system_program("wrk"));
            c.args([
                "-t1",
                &format!("-c{connections}"),
                &format!("-d{secs}s"),
                "-H",
                "Connection: close",
                "-s",
            ])
            .arg(&script)
            .arg(format!("{url}/"));
            c
        }
    };
    let (out, usage) = common::run_measured(&mut cmd);
    let counts: serde_json::Value = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .unwrap_or_else(|| common::fail(&format!("{}: no result line in {out:?}", driver.name())));
    let requests = counts["requests"].as_f64().unwrap_or(0.0);
    if counts["ok"].as_f64().unwrap_or(0.0) < requests * 0.99 {
        common::fail(&format!(
            "{}: answers were not 2xx: {counts}",
            driver.name()
        ));
    }
    Sample {
        requests,
        cpu_s: usage.cpu_s,
        rss_mb: usage.max_rss_mb,
    }
}

pub struct RateResult {
    pub rate: u32,
    /// Per driver (in `DRIVERS` order): achieved rate, requests per CPU-second, peak RSS MB.
    pub figures: Vec<(f64, f64, f64)>,
}

pub fn run(mode: Mode) -> (Vec<Row>, serde_json::Value, Vec<RateResult>) {
    let dir = tempfile::Builder::new()
        .prefix("brownout-bench-")
        .tempdir()
        .unwrap();
    let goose = goose_driver();
    let (_nginx, port) = start_nginx(dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let rounds = mode.pick(3, 1);
    let secs = mode.pick(8, 1);
    let rates = mode.pick(vec![400, 2000], vec![200]);
    let mut results = Vec::new();
    println!("load drivers: {rounds} rounds × {secs} s per driver and rate, a new connection per request, medians");
    for &rate in &rates {
        let mut samples: Vec<Vec<Sample>> = DRIVERS.iter().map(|_| Vec::new()).collect();
        for r in 0..rounds {
            for k in 0..DRIVERS.len() {
                let i = (r + k) % DRIVERS.len();
                samples[i].push(drive(DRIVERS[i], &goose, dir.path(), &url, rate, secs));
            }
        }
        let mut figures = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            let achieved = median(
                &mut s
                    .iter()
                    .map(|x| x.requests / secs as f64)
                    .collect::<Vec<_>>(),
            );
            let per_cpu = median(
                &mut s
                    .iter()
                    .map(|x| x.requests / x.cpu_s.max(1e-6))
                    .collect::<Vec<_>>(),
            );
            let rss = median(&mut s.iter().map(|x| x.rss_mb).collect::<Vec<_>>());
            println!(
                "  offered {rate:>5}/s  {:<24} achieved {achieved:>7.0}/s  {per_cpu:>7.0} requests per CPU-second  peak RSS {rss:>6.1} MB",
                DRIVERS[i].name()
            );
            figures.push((achieved, per_cpu, rss));
        }
        results.push(RateResult { rate, figures });
    }
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for r in &results {
        let [(ba, bc, br), (ga, gc, gr), (wa, wc, wr)] = [r.figures[0], r.figures[1], r.figures[2]];
        rows.push(Row::new(
            &format!(
                "load driver at {} req/s offered: requests per CPU-second",
                r.rate
            ),
            format!("{bc:.0} (achieved {ba:.0}/s)"),
            format!("goose {gc:.0} (achieved {ga:.0}/s), wrk {wc:.0} (achieved {wa:.0}/s)"),
            "≥ 0.9× bare goose",
            Some(bc >= 0.9 * gc),
        ));
        details.push(json!({
            "offered_rate": r.rate,
            "brownout": {"achieved_rate": ba, "requests_per_cpu_s": bc, "max_rss_mb": br},
            "goose": {"achieved_rate": ga, "requests_per_cpu_s": gc, "max_rss_mb": gr},
            "wrk": {"achieved_rate": wa, "requests_per_cpu_s": wc, "max_rss_mb": wr},
        }));
    }
    (
        rows,
        json!({"rounds": rounds, "seconds": secs, "rates": details}),
        results,
    )
}
