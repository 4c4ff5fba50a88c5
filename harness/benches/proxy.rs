//! Benchmark: the fault proxy with no toxic on, against the same upstream reached directly, side
//! by side in one run (rounds alternate direct / proxied, so machine noise hits both alike).
//! Reports throughput ratio and added p50/p99 latency, for keep-alive clients (how the checkout
//! service talks to payments) and for a new connection per request.
//!
//! Run: `cargo bench -p harness --bench proxy` (bounded: a fixed number of requests per round).

use harness::fault_proxy::FaultProxy;
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const REQUESTS_PER_ROUND: usize = 3000;
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

/// Sends `REQUESTS_PER_ROUND` requests with `CONCURRENCY` workers; returns (elapsed, latencies in µs).
async fn round(client: &reqwest::Client, addr: SocketAddr) -> (Duration, Histogram<u64>) {
    let url = format!("http://{addr}/charges");
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let (client, url) = (client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for _ in (w..REQUESTS_PER_ROUND).step_by(CONCURRENCY) {
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
    (started.elapsed(), all)
}

async fn compare(label: &str, client: reqwest::Client, direct: SocketAddr, proxied: SocketAddr) {
    let mut totals = [
        (Duration::ZERO, Histogram::<u64>::new(3).unwrap()),
        (Duration::ZERO, Histogram::<u64>::new(3).unwrap()),
    ];
    // Warm-up, not measured.
    round(&client, direct).await;
    round(&client, proxied).await;
    for _ in 0..ROUNDS {
        for (i, addr) in [direct, proxied].into_iter().enumerate() {
            let (elapsed, h) = round(&client, addr).await;
            totals[i].0 += elapsed;
            totals[i].1.add(h).unwrap();
        }
    }
    let n = (ROUNDS * REQUESTS_PER_ROUND) as f64;
    let rps = |d: Duration| n / d.as_secs_f64();
    let (d, p) = (&totals[0], &totals[1]);
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("{label}:");
    println!(
        "  direct   {:>8.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms",
        rps(d.0),
        q(&d.1, 0.5),
        q(&d.1, 0.99)
    );
    println!(
        "  proxied  {:>8.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms",
        rps(p.0),
        q(&p.1, 0.5),
        q(&p.1, 0.99)
    );
    println!(
        "  ratio    throughput proxied/direct = {:.2}   added p50 {:+.3} ms   added p99 {:+.3} ms",
        rps(p.0) / rps(d.0),
        q(&p.1, 0.5) - q(&d.1, 0.5),
        q(&p.1, 0.99) - q(&d.1, 0.99)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let direct = upstream().await;
        let proxy = FaultProxy::start("bench", 0, vec![direct.to_string()], 1).await.unwrap();
        println!(
            "fault proxy overhead, no toxic on: {ROUNDS} rounds × {REQUESTS_PER_ROUND} requests × 2 targets, {CONCURRENCY} concurrent, 2 worker threads"
        );
        let keep_alive = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
        compare("keep-alive connections", keep_alive, direct, proxy.listen).await;
        let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        compare("a new connection per request", fresh, direct, proxy.listen).await;
    });
}
