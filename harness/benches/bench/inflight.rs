//! What one send costs the harness while it waits for its answer — the figure that sets the
//! harness's memory during a fault, when rate × answer time sends are in flight at once. Three
//! clients make the same sends (a POST with the driver's headers and body, a new connection each,
//! 1,000 a second) to a local server that accepts every connection and never answers: Brownout's
//! load driver (`harness::load`, evidence recorded as in a run), reqwest (what the driver used
//! before, and what goose uses), and hyper's `client::conn` (the HTTP library under both). Each
//! runs in a process of its own (this benchmark's executable re-run with
//! `BROWNOUT_BENCH_ROLE=inflight`), which reports its resident memory once a third of the sends
//! are waiting and once all are: the slope between the two is the cost per send, without what
//! a client costs once (its runtime, the driver's evidence files). Rounds rotate the order;
//! figures are medians.

use crate::common::{self, median, Mode, Row};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const CLIENTS: [&str; 3] = ["brownout", "reqwest", "hyper"];
const BODY: &str = r#"{"item_id": 1, "quantity": 3}"#;
const RATE: u64 = 1000;

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The child side: `BENCH_CLIENT` makes `BENCH_SENDS` sends to a server that never answers and
/// prints `{"third_kb":…,"after_kb":…}`: resident memory with a third of them waiting, and all.
pub fn child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| common::fail(&format!("{k} not set")));
    let client = var("BENCH_CLIENT");
    let sends: u64 = var("BENCH_SENDS").parse().unwrap();
    // The server: accepts and holds every connection, reads nothing, answers nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let runtime = common::runtime();
    runtime.block_on(async move {
        let url = format!("http://127.0.0.1:{port}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = tokio::time::Instant::now();
        let spread = Duration::from_millis(sends * 1000 / RATE);
        let timeout = Duration::from_secs(60);
        // Samples resident memory when a third of the sends are out, whoever makes them.
        let third = tokio::spawn(async move {
            tokio::time::sleep_until(start + spread / 3 + Duration::from_millis(200)).await;
            rss_kb()
        });
        let mut _keep = None;
        let mut tasks = tokio::task::JoinSet::new();
        match client.as_str() {
            "brownout" => {
                let evidence = harness::evidence::Evidence::new();
                let dir = tempfile::tempdir().unwrap();
                evidence.stream_to(dir.path()).unwrap();
                let load = harness::spec::Load {
                    rate: RATE as u32,
                    max_in_flight: 100_000,
                    timeout,
                    requests: vec![serde_json::from_value(json!({
                        "name": "checkout", "method": "POST", "path": "/api/checkout",
                        "body": BODY, "idempotency_key": true
                    }))
                    .unwrap()],
                };
                let run =
                    harness::load::start(&url, &load, 1, evidence.clone(), spread, spread).unwrap();
                _keep = Some((run, evidence, dir));
            }
            "reqwest" => {
                let c = reqwest::Client::builder()
                    .timeout(timeout)
                    .pool_max_idle_per_host(0)
                    .tcp_nodelay(true)
                    .no_proxy()
                    .build()
                    .unwrap();
                paced(&mut tasks, sends, move |i| {
                    let (c, url) = (c.clone(), format!("{url}/api/checkout"));
                    async move {
                        let _ = c
                            .post(url)
                            .header("x-request-id", format!("bo-00000000-{i}-1"))
                            .header("idempotency-key", format!("bo-00000000-{i}-key"))
                            .header("content-type", "application/json")
                            .body(BODY)
                            .send()
                            .await;
                    }
                })
                .await;
            }
            _ => {
                paced(&mut tasks, sends, move |i| async move {
                    let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                        return;
                    };
                    let _ = s.set_nodelay(true);
                    let Ok((mut tx, conn)) =
                        hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(s)).await
                    else {
                        return;
                    };
                    tokio::spawn(conn);
                    let req = hyper::Request::post("/api/checkout")
                        .header("host", format!("127.0.0.1:{port}"))
                        .header("x-request-id", format!("bo-00000000-{i}-1"))
                        .header("idempotency-key", format!("bo-00000000-{i}-key"))
                        .header("content-type", "application/json")
                        .body(BODY.to_string())
                        .unwrap();
                    let _ = tokio::time::timeout(timeout, tx.send_request(req)).await;
                })
                .await;
            }
        }
        // Every send made and waiting (the driver paces itself; the others were paced above).
        tokio::time::sleep_until(start + spread + Duration::from_millis(200)).await;
        let after = rss_kb();
        let third = third.await.unwrap_or(0);
        println!("{}", json!({"third_kb": third, "after_kb": after}));
        // The sends are abandoned with the process: none is ever answered.
        std::process::exit(0);
    });
}

/// Starts `sends` tasks made by `make`, at `RATE` a second.
async fn paced<F, Fut>(tasks: &mut tokio::task::JoinSet<()>, sends: u64, make: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = tokio::time::Instant::now();
    for i in 0..sends {
        tokio::time::sleep_until(start + Duration::from_micros(i * 1_000_000 / RATE)).await;
        tasks.spawn(make(i));
    }
}

/// Bytes per send waiting for its answer, for `client`.
fn measure(client: &str, sends: u64) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let (out, _) = common::run_measured(
        Command::new(exe)
            .env("BROWNOUT_BENCH_ROLE", "inflight")
            .env("BENCH_CLIENT", client)
            .env("BENCH_SENDS", sends.to_string()),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| common::fail(&format!("inflight child said {out:?}: {e}")));
    let kb = |k: &str| v[k].as_f64().unwrap_or(0.0);
    // The sends made between the two samples: two thirds of them.
    (kb("after_kb") - kb("third_kb")) * 1024.0 / (sends - sends / 3) as f64
}

pub fn run(mode: Mode) -> (Vec<Row>, serde_json::Value) {
    let rounds = mode.pick(3, 1);
    let sends = mode.pick(3000, 200);
    println!(
        "memory per send waiting for its answer: {sends} sends at {RATE}/s to a server that never answers, {rounds} rounds, medians"
    );
    let mut samples: Vec<Vec<f64>> = CLIENTS.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for k in 0..CLIENTS.len() {
            let i = (r + k) % CLIENTS.len();
            samples[i].push(measure(CLIENTS[i], sends));
        }
    }
    let per: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    for (c, b) in CLIENTS.iter().zip(&per) {
        println!("  {c:<10} {:>8.0} bytes per send in flight", b);
    }
    let (b, rq, hy) = (per[0], per[1], per[2]);
    let rows = vec![Row::new(
        "memory per send waiting for its answer",
        format!("{:.1} KB", b / 1000.0),
        format!(
            "reqwest {:.1} KB ({:.1}×), hyper client::conn {:.1} KB ({:.1}×)",
            rq / 1000.0,
            rq / b.max(1.0),
            hy / 1000.0,
            hy / b.max(1.0)
        ),
        "≤ 0.25× reqwest",
        Some(b <= 0.25 * rq),
    )];
    (
        rows,
        json!({"rounds": rounds, "sends": sends, "rate": RATE,
               "bytes_per_send": {"brownout": b, "reqwest": rq, "hyper": hy}}),
    )
}
