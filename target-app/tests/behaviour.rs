//! The checkout service against a real PostgreSQL and real faults: the hardened behaviour under each
//! failure, and for every bug switch, proof that the defect really appears when it is on.

mod support;
use std::time::{Duration, Instant};
use support::{client, slow_upstream, App, Options};

fn retry_after(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn checkout_happy_path_and_idempotency() {
    let app = App::start(Options::default()).await;
    let c = client();
    let catalog: serde_json::Value = c
        .get(app.url("/api/catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog.as_array().unwrap().len(), 3);

    let first = app.checkout("key-1").await;
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["x-brownout-replica"], "checkout-test");
    assert!(first.headers().contains_key("x-request-id"));
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first["status"], "paid");
    assert_eq!(first["amount_cents"], 2 * 2490);

    let again = app.checkout("key-1").await;
    assert_eq!(again.status(), 200, "a retry answers the same order");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["charge_id"], first["charge_id"]);

    let other = app.checkout("key-2").await;
    assert_eq!(other.status(), 201);

    let read = c
        .get(app.url(&format!("/api/orders/{}", first["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let read: serde_json::Value = read.json().await.unwrap();
    assert_eq!(read["status"], "paid");

    let charges = app.charges().await;
    assert_eq!(charges["count"], 2, "two orders, two charges: {charges}");
    let receipts = std::fs::read_dir(app.receipts.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(receipts, 2);

    assert_eq!(
        c.get(app.url("/api/orders/not-a-uuid"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        c.get(app.url(&format!("/api/orders/{}", uuid::Uuid::new_v4())))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // One JSON log line per request, with its request id.
    let log = app.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("\"route\":\"/api/checkout\""))
        .expect("access log line");
    let parsed: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert!(parsed["request_id"].is_string());
    let metrics = c
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("checkout_http_requests_total{route=\"/api/checkout\",status=\"201\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn skip_env_validation_bug_boots_ready_and_serves_opaque_500s() {
    let mut app_opts = Options {
        bugs: "skip-env-validation",
        ..Options::default()
    };
    // Start normally, then start a second replica without PAYMENTS_URL against the same DB.
    app_opts.env.push(("PAYMENTS_URL", String::new()));
    let app = App::start(app_opts).await;
    let ready = client()
        .get(app.url("/healthz/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the buggy replica believes it is ready"
    );
    let r = app.checkout("k").await;
    assert_eq!(r.status(), 500);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error_id"].is_string());
    let text = body.to_string();
    assert!(
        !text.contains("PAYMENTS_URL") && !text.contains("panicked"),
        "no internals leak: {text}"
    );
    assert!(
        app.log_text().contains(body["error_id"].as_str().unwrap()),
        "full error logged with its id"
    );
}

/// Holds `LOCK TABLE orders IN EXCLUSIVE MODE` (blocks checkout's writes, not reads) until dropped.
async fn lock_orders(db_url: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    use sqlx::Connection;
    let conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let conn = Box::leak(Box::new(conn));
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("LOCK TABLE orders IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Runs `n` checkouts at once; returns (status or None for client timeout, Retry-After, latency).
async fn burst(
    app: &App,
    n: usize,
    client_timeout: Duration,
) -> Vec<(Option<u16>, Option<String>, Duration)> {
    let c = reqwest::Client::builder()
        .timeout(client_timeout)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = c.clone();
        let url = app.url("/api/checkout");
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .post(url)
                .header(
                    "Idempotency-Key",
                    format!("burst-{i}-{}", uuid::Uuid::new_v4()),
                )
                .json(&serde_json::json!({"item_id": 2}))
                .send()
                .await;
            match r {
                Ok(r) => (Some(r.status().as_u16()), retry_after(&r), t.elapsed()),
                Err(_) => (None, None, t.elapsed()),
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `loops` concurrent checkout loops for at most `bound`, so every pooled connection stays taken.
fn keep_pool_busy(app: &App, loops: usize, bound: Duration) -> tokio::task::JoinHandle<()> {
    let url = app.url("/api/checkout");
    tokio::spawn(async move {
        let c = client();
        let mut tasks = Vec::new();
        for _ in 0..loops {
            let (c, url) = (c.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + bound;
                while Instant::now() < deadline {
                    let _ = c
                        .post(&url)
                        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                        .json(&serde_json::json!({"item_id": 1}))
                        .send()
                        .await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}

const POOL_ENV: &[(&str, &str)] = &[
    ("DB_POOL_SIZE", "2"),
    ("DB_ACQUIRE_TIMEOUT_MS", "250"),
    ("DB_STATEMENT_TIMEOUT_MS", "1000"),
];

fn pool_opts(bugs: &'static str) -> Options {
    Options {
        bugs,
        env: POOL_ENV.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Options::default()
    }
}

#[tokio::test]
async fn pool_saturation_answers_fast_503_with_retry_after_and_readiness_drops() {
    let app = App::start(pool_opts("")).await;
    let tx = lock_orders(&app.db_url).await;
    let results = burst(&app, 8, Duration::from_secs(5)).await;
    let slowest = results.iter().map(|r| r.2).max().unwrap();
    for (status, retry, _) in &results {
        assert_eq!(
            *status,
            Some(503),
            "every checkout is a 503 while the pool is saturated: {results:?}"
        );
        assert!(retry.is_some(), "503 carries Retry-After");
    }
    assert!(
        slowest < Duration::from_millis(2500),
        "bounded: slowest {slowest:?}"
    );
    eprintln!("pool saturation: slowest 503 after {slowest:?}");
    // Keep the pool busy while probing health.
    let busy = keep_pool_busy(&app, 6, Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client()
        .get(app.url("/healthz/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    let failing = body["failing"].as_array().unwrap();
    assert!(
        failing.contains(&serde_json::json!("pool")),
        "pool headroom reported: {body}"
    );
    let live = client().get(app.url("/healthz/live")).send().await.unwrap();
    assert_eq!(
        live.status(),
        200,
        "liveness does not depend on the database"
    );
    busy.abort();
    tx.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.checkout("after-heal").await.status(), 201);
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("checkout_db_pool_acquire_timeouts_total 0"),
        "acquire timeouts counted"
    );
}

#[tokio::test]
async fn no_acquire_timeout_bug_hangs_under_saturation() {
    let app = App::start(pool_opts("no-acquire-timeout")).await;
    let _tx = lock_orders(&app.db_url).await;
    let results = burst(&app, 8, Duration::from_secs(3)).await;
    let hung = results.iter().filter(|r| r.0.is_none()).count();
    assert!(
        hung >= 2,
        "waiters hang past the client timeout with the bug: {results:?}"
    );
}

#[tokio::test]
async fn liveness_checks_db_bug_fails_liveness_when_the_db_is_saturated() {
    let app = App::start(pool_opts("liveness-checks-db")).await;
    let _tx = lock_orders(&app.db_url).await;
    let load = keep_pool_busy(&app, 6, Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut dead = 0;
    for _ in 0..3 {
        if client()
            .get(app.url("/healthz/live"))
            .send()
            .await
            .unwrap()
            .status()
            == 503
        {
            dead += 1;
        }
    }
    load.abort();
    assert!(
        dead >= 2,
        "with the bug, liveness fails when the DB is saturated ({dead}/3)"
    );
}

fn upstream_opts(bugs: &'static str, url: String) -> Options {
    Options {
        bugs,
        payments_url: Some(url),
        env: vec![
            ("PAYMENTS_TIMEOUT_MS", "300".into()),
            ("BREAKER_FAILURE_THRESHOLD", "3".into()),
            ("BREAKER_OPEN_MS", "5000".into()),
        ],
        ..Options::default()
    }
}

#[tokio::test]
async fn upstream_timeout_gives_bounded_504_then_breaker_503() {
    let (url, _server) = slow_upstream(None).await;
    let app = App::start(upstream_opts("", url)).await;
    let mut seen = Vec::new();
    for i in 0..6 {
        let t = Instant::now();
        let r = app.checkout(&format!("slow-{i}")).await;
        let took = t.elapsed();
        seen.push((r.status().as_u16(), retry_after(&r).is_some(), took));
        assert!(took < Duration::from_millis(1500), "bounded: {took:?}");
    }
    eprintln!("upstream timeout: {seen:?}");
    assert!(
        seen[..3].iter().all(|s| s.0 == 504 && s.1),
        "timeouts answer 504 + Retry-After: {seen:?}"
    );
    assert!(
        seen[3..]
            .iter()
            .all(|s| s.0 == 503 && s.1 && s.2 < Duration::from_millis(100)),
        "open breaker: fast 503: {seen:?}"
    );
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("checkout_payments_breaker_state 2"),
        "breaker open in metrics"
    );
    let ready: serde_json::Value = client()
        .get(app.url("/healthz/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["payments_breaker"], "open");
    assert_eq!(
        client()
            .get(app.url("/api/catalog"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "reads keep working"
    );
}

#[tokio::test]
async fn no_upstream_timeout_bug_waits_without_bound() {
    let (url, _server) = slow_upstream(None).await;
    let app = App::start(upstream_opts("no-upstream-timeout", url)).await;
    let results = burst(&app, 3, Duration::from_secs(3)).await;
    assert!(
        results.iter().all(|r| r.0.is_none()),
        "every checkout hangs past 3 s with the bug: {results:?}"
    );
}

/// A really small tmpfs mounted for the test; unmounted on drop.
struct SmallFs(tempfile::TempDir);
impl SmallFs {
    fn mount() -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=256k",
                "brownout-test",
                dir.path().to_str().unwrap(),
            ])
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs(dir)
    }
    /// Writes a filler file until the kernel says ENOSPC.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write_all(&chunk).and_then(|_| f.flush()) {
                Ok(()) => continue,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
    }
    fn free(&self) {
        std::fs::remove_file(self.0.path().join("filler")).unwrap();
    }
}
impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn full_disk_answers_507_reads_keep_working_and_recovers() {
    let fs = SmallFs::mount();
    let app = App::start(Options {
        receipts_dir: Some(fs.0.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    let ok: serde_json::Value = app.checkout("before").await.json().await.unwrap();
    fs.fill();
    let full = app.checkout("during").await;
    assert_eq!(full.status(), 507);
    assert!(retry_after(&full).is_some());
    let c = client();
    assert_eq!(
        c.get(app.url("/api/catalog"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(app.url(&format!("/api/orders/{}", ok["id"].as_str().unwrap())))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: serde_json::Value = c
        .get(app.url("/healthz/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["failing"], serde_json::json!(["receipts"]), "{ready}");
    // Consistency: the failed checkout left no charge, and its order is marked failed.
    assert_eq!(app.charges().await["count"], 1);
    fs.free();
    let retried = app.checkout("during").await;
    assert_eq!(
        retried.status(),
        201,
        "the same key succeeds once space is back"
    );
    assert_eq!(app.charges().await["count"], 2);
    assert!(app.app.0.id() > 0);
}

#[tokio::test]
async fn enospc_500_bug_turns_a_full_disk_into_a_500() {
    let fs = SmallFs::mount();
    let app = App::start(Options {
        bugs: "enospc-500",
        receipts_dir: Some(fs.0.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    fs.fill();
    let r = app.checkout("full").await;
    assert_eq!(r.status(), 500);
}

fn sigterm(app: &App) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app.app.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

async fn wait_exit(app: &mut App, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = app.app.0.try_wait().unwrap() {
            return Some(s);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn drain_opts(bugs: &'static str, payments: String) -> Options {
    Options {
        bugs,
        payments_url: Some(payments),
        env: vec![
            ("DRAIN_DELAY_MS", "500".into()),
            ("PAYMENTS_TIMEOUT_MS", "5000".into()),
        ],
        ..Options::default()
    }
}

/// Starts a checkout that takes ~1.5 s (the upstream answers late), then SIGTERMs the app.
async fn in_flight_then_sigterm(app: &App) -> tokio::task::JoinHandle<Result<u16, String>> {
    let url = app.url("/api/checkout");
    let inflight = tokio::spawn(async move {
        client()
            .post(url)
            .header("Idempotency-Key", "in-flight")
            .json(&serde_json::json!({"item_id": 3}))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(app);
    inflight
}

#[tokio::test]
async fn sigterm_fails_readiness_drains_and_finishes_in_flight_requests() {
    let (payments, _server) = slow_upstream(Some(Duration::from_millis(1500))).await;
    let mut app = App::start(drain_opts("", payments)).await;
    let t = Instant::now();
    let inflight = in_flight_then_sigterm(&app).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ready = client()
        .get(app.url("/healthz/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "readiness fails at once");
    assert_eq!(
        client()
            .get(app.url("/api/catalog"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still serving during the drain delay"
    );
    assert_eq!(
        inflight.await.unwrap(),
        Ok(201),
        "the in-flight checkout completes"
    );
    let status = wait_exit(&mut app, Duration::from_secs(5))
        .await
        .expect("exits by itself");
    eprintln!(
        "SIGTERM to exit with one in-flight request: {:?}",
        t.elapsed()
    );
    assert!(status.success(), "exit 0: {status}");
}

#[tokio::test]
async fn ignore_sigterm_bug_keeps_running_and_stays_ready() {
    let (payments, _server) = slow_upstream(Some(Duration::from_millis(10))).await;
    let mut app = App::start(drain_opts("ignore-sigterm", payments)).await;
    sigterm(&app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client()
            .get(app.url("/healthz/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        wait_exit(&mut app, Duration::from_secs(2)).await.is_none(),
        "only SIGKILL will stop it"
    );
}

#[tokio::test]
async fn no_drain_bug_drops_the_in_flight_request() {
    let (payments, _server) = slow_upstream(Some(Duration::from_millis(1500))).await;
    let mut app = App::start(drain_opts("no-drain", payments)).await;
    let inflight = in_flight_then_sigterm(&app).await;
    assert!(
        wait_exit(&mut app, Duration::from_millis(300))
            .await
            .is_some(),
        "exits at once"
    );
    assert!(
        inflight.await.unwrap().is_err(),
        "the in-flight request is dropped"
    );
}

/// A checkout of item 1 with `coupon`, under Idempotency-Key `key`.
async fn checkout_with_coupon(
    app: &App,
    key: &str,
    coupon: &str,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(app.url("/api/checkout"))
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({"item_id": 1, "quantity": 1, "coupon": coupon}))
        .send()
        .await
}

/// A malformed coupon panics in the handler: the hardened service answers 500 with only an error
/// id (no panic message, no backtrace), logs the panic with that id, counts it, and keeps serving.
/// Under `panic-unhandled` the connection is dropped without an answer, and the next request is
/// still served (the process survives; only the connection went).
#[tokio::test]
async fn a_panicking_request_is_a_500_with_an_error_id_and_the_process_survives() {
    let app = App::start(Options::default()).await;
    let c = client();
    let bad = checkout_with_coupon(&app, "coupon-1", "SAVE10")
        .await
        .unwrap();
    assert_eq!(bad.status(), 500);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "internal error");
    let id = body["error_id"].as_str().expect("an error id").to_string();
    let text = body.to_string();
    assert!(
        !text.contains("unwrap") && !text.contains("panicked") && !text.contains("api.rs"),
        "no internals in the body: {text}"
    );
    assert!(
        app.log_text().contains(&id),
        "the panic is logged with its id"
    );
    let good = checkout_with_coupon(&app, "coupon-2", "SAVE-10")
        .await
        .unwrap();
    assert_eq!(good.status(), 201, "still serving");
    let order: serde_json::Value = good.json().await.unwrap();
    assert_eq!(
        order["amount_cents"],
        2490 * 90 / 100,
        "the coupon's 10% off"
    );
    let metrics = c
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"checkout_http_requests_total{route="/api/checkout",status="500"} 1"#),
        "counted: {metrics}"
    );

    let buggy = App::start(Options {
        bugs: "panic-unhandled",
        ..Options::default()
    })
    .await;
    let dropped = checkout_with_coupon(&buggy, "coupon-3", "SAVE10").await;
    assert!(dropped.is_err(), "no answer at all: {dropped:?}");
    let after = c.get(buggy.url("/api/catalog")).send().await.unwrap();
    assert_eq!(after.status(), 200, "the process survived");
}

/// An export over MAX_EXPORT_ITEMS is refused with 413 before anything is built; one under it is
/// served with about 1 KiB per item. Under `unbounded-export` the large one is built.
#[tokio::test]
async fn an_oversized_export_is_refused_before_allocating() {
    let mut opts = Options::default();
    opts.env.push(("MAX_EXPORT_ITEMS", "1000".into()));
    let app = App::start(opts).await;
    let c = client();
    let ok = c
        .get(app.url("/api/export?items=500"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap().len(), 500 * 1024);
    let big = c
        .get(app.url("/api/export?items=1001"))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let body: serde_json::Value = big.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("at most 1000 items"),
        "{body}"
    );

    let mut opts = Options {
        bugs: "unbounded-export",
        ..Options::default()
    };
    opts.env.push(("MAX_EXPORT_ITEMS", "1000".into()));
    let buggy = App::start(opts).await;
    let built = c
        .get(buggy.url("/api/export?items=2000"))
        .send()
        .await
        .unwrap();
    assert_eq!(built.status(), 200);
    assert_eq!(built.text().await.unwrap().len(), 2000 * 1024);
}
