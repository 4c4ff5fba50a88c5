//! The fault proxy (the `fault-proxy` program, no toxic on) against HAProxy 2.6 in TCP mode and
//! against the upstream reached directly, side by side: every round runs the three targets one
//! after the other, in a rotating order, so machine noise hits all alike; figures are medians
//! over rounds. Measured for keep-alive clients (how the checkout service talks to payments) and
//! for a new connection per request. Both proxies run as processes of their own, as on the local
//! platform; their CPU per request comes from /proc.

use crate::common::{self, median, Mode, Row, Server};
use hdrhistogram::Histogram;
use serde_json::json;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

const CONCURRENCY: usize = 16;

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/charges",
        axum::routing::post(|| async {
            (axum::http::StatusCode::CREATED, r#"{"charge_id":"ch_1"}"#)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn start_fault_proxy(up: SocketAddr, dir: &std::path::Path) -> (Server, SocketAddr) {
    let token = dir.join("token");
    std::fs::write(&token, "bench-token-bench-token").unwrap();
    let mut child = common::dies_with_parent(&mut Command::new(common::release_bin("fault-proxy")))
        .args(["--proxy", &format!("bench={up}"), "--token-file"])
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| common::fail(&format!("cannot start fault-proxy: {e}")));
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| common::fail(&format!("fault-proxy said {line:?}")));
    let addr = ready["proxies"]["bench"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| common::fail(&format!("fault-proxy said {line:?}")));
    (Server(child), addr)
}

fn start_haproxy(up: SocketAddr, dir: &std::path::Path) -> (Server, SocketAddr) {
    let port = common::free_port();
    let cfg = dir.join("haproxy.cfg");
    // TCP mode, as the fault proxy is; threads default to one per CPU, as tokio's workers do.
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 4096\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\nlisten bench\n  bind 127.0.0.1:{port}\n  server up {up}\n"
        ),
    )
    .unwrap();
    let child = common::dies_with_parent(&mut Command::new(common::system_program("haproxy")))
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| common::fail(&format!("cannot start haproxy: {e}")));
    common::wait_listening(port, "haproxy");
    (Server(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One round: `n` requests with `CONCURRENCY` workers. Returns (req/s, p50 ms, p99 ms).
async fn round(client: &reqwest::Client, addr: SocketAddr, n: usize) -> (f64, f64, f64) {
    let url = format!("http://{addr}/charges");
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let (client, url) = (client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for _ in (w..n).step_by(CONCURRENCY) {
                let t = Instant::now();
                let r = client.post(&url).body("{}").send().await.expect("request");
                assert!(r.status().is_success());
                r.bytes().await.expect("body");
                h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for w in workers {
        all.add(w.await.unwrap()).unwrap();
    }
    let q = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    (n as f64 / started.elapsed().as_secs_f64(), q(0.5), q(0.99))
}

#[derive(Default)]
struct Series {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    cpu_us: Vec<f64>,
}

struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    cpu_us: f64,
}

impl Series {
    fn summary(&mut self) -> Summary {
        Summary {
            rps: median(&mut self.rps),
            p50: median(&mut self.p50),
            p99: median(&mut self.p99),
            cpu_us: median(&mut self.cpu_us),
        }
    }
}

/// Rounds over direct, fault proxy and HAProxy; returns their summaries in that order.
async fn compare(
    client: reqwest::Client,
    targets: &[(SocketAddr, Option<u32>); 3],
    rounds: usize,
    n: usize,
) -> [Summary; 3] {
    for (addr, _) in targets {
        round(&client, *addr, n / 4 + 1).await; // warm-up, not measured
    }
    let mut series: [Series; 3] = Default::default();
    for r in 0..rounds {
        for k in 0..3 {
            let i = (r + k) % 3;
            let (addr, pid) = targets[i];
            let cpu0 = pid.map(common::proc_cpu);
            let (rps, p50, p99) = round(&client, addr, n).await;
            series[i].rps.push(rps);
            series[i].p50.push(p50);
            series[i].p99.push(p99);
            if let (Some(pid), Some(c0)) = (pid, cpu0) {
                let used = common::proc_cpu(pid).saturating_sub(c0);
                series[i].cpu_us.push(used.as_secs_f64() * 1e6 / n as f64);
            }
        }
    }
    series.map(|mut s| s.summary())
}

pub fn run(mode: Mode) -> (Vec<Row>, serde_json::Value) {
    let rounds = mode.pick(5, 1);
    let (n_keep, n_fresh) = mode.pick((6000, 2000), (200, 100));
    let dir = tempfile::Builder::new()
        .prefix("brownout-bench-")
        .tempdir()
        .unwrap();
    let runtime = common::runtime();
    runtime.block_on(async {
        let direct = upstream().await;
        let (fp, fp_addr) = start_fault_proxy(direct, dir.path());
        let (ha, ha_addr) = start_haproxy(direct, dir.path());
        let targets = [
            (direct, None),
            (fp_addr, Some(fp.0.id())),
            (ha_addr, Some(ha.0.id())),
        ];
        let keep = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .unwrap();
        let [kd, kf, kh] = compare(keep, &targets, rounds, n_keep).await;
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .unwrap();
        let [fd, ff, fh] = compare(fresh, &targets, rounds, n_fresh).await;
        let line = |label: &str, s: &Summary, d: &Summary| {
            println!(
                "  {label:<28} {:>8.0} req/s  ratio {:>4.2}  p50 {:>6.3} ms ({:+.3})  p99 {:>6.3} ms  proxy CPU {:>5.1} µs/req",
                s.rps, s.rps / d.rps, s.p50, s.p50 - d.p50, s.p99, s.cpu_us
            )
        };
        println!("proxy: {rounds} rounds, {CONCURRENCY} concurrent, medians");
        for (title, d, f, h) in [("keep-alive", &kd, &kf, &kh), ("new connection per request", &fd, &ff, &fh)] {
            println!(" {title}:");
            line("direct", d, d);
            line("fault proxy", f, d);
            line("HAProxy (TCP mode)", h, d);
        }
        let (ratio_f, ratio_h) = (kf.rps / kd.rps, kh.rps / kd.rps);
        let (add_f, add_h) = (ff.p50 - fd.p50, fh.p50 - fd.p50);
        let rows = vec![
            Row::new(
                "fault proxy, keep-alive, 16 concurrent: throughput proxied/direct",
                format!("{ratio_f:.2} (p50 {:+.3} ms)", kf.p50 - kd.p50),
                format!("HAProxy {ratio_h:.2} (p50 {:+.3} ms)", kh.p50 - kd.p50),
                "≥ HAProxy's and ≥ 0.9",
                Some(ratio_f >= ratio_h && ratio_f >= 0.9),
            ),
            Row::new(
                "fault proxy, new connection per request: added p50",
                format!("{add_f:+.3} ms (ratio {:.2})", ff.rps / fd.rps),
                format!("HAProxy {add_h:+.3} ms (ratio {:.2})", fh.rps / fd.rps),
                "≤ HAProxy's",
                Some(add_f <= add_h),
            ),
        ];
        let summary = |s: &Summary| json!({"rps": s.rps, "p50_ms": s.p50, "p99_ms": s.p99, "proxy_cpu_us_per_request": s.cpu_us});
        let details = json!({
            "rounds": rounds, "concurrency": CONCURRENCY,
            "keep_alive": {"requests_per_round": n_keep, "direct": summary(&kd), "fault_proxy": summary(&kf), "haproxy": summary(&kh)},
            "new_connection": {"requests_per_round": n_fresh, "direct": summary(&fd), "fault_proxy": summary(&ff), "haproxy": summary(&fh)},
        });
        drop((fp, ha));
        (rows, details)
    })
}
