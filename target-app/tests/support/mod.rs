//! Test support for the checkout service: a real throwaway PostgreSQL (the harness's launcher), the
//! real payments stub, a receipts dir, and the `checkout` binary started as a child process.

#![allow(dead_code)]

use harness::platform::local::postgres::TempPostgres;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHECKOUT: &str = env!("CARGO_BIN_EXE_checkout");
pub const PAYMENTS_STUB: &str = env!("CARGO_BIN_EXE_payments-stub");

pub fn free_port() -> u16 {
    harness::platform::local::tools::free_port().expect("free port")
}

/// A child that is killed when the test ends, whatever happens.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct App {
    pub pg: TempPostgres,
    pub db_url: String,
    pub base: String,
    pub payments_base: String,
    pub receipts: tempfile::TempDir,
    pub app: Proc,
    pub payments: Option<Proc>,
    pub log: PathBuf,
}

#[derive(Default)]
pub struct Options {
    pub bugs: &'static str,
    pub env: Vec<(&'static str, String)>,
    /// Payments URL to use instead of starting the stub.
    pub payments_url: Option<String>,
    pub receipts_dir: Option<PathBuf>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn start_payments_stub() -> (Proc, String) {
    let port = free_port();
    let child = Command::new(PAYMENTS_STUB)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start payments stub");
    let base = format!("http://127.0.0.1:{port}");
    wait_http_ok(&format!("{base}/healthz"), Duration::from_secs(10)).await;
    (Proc(child), base)
}

pub async fn wait_http_ok(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let c = client();
    loop {
        if let Ok(r) = c.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 2xx within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl App {
    pub async fn start(opts: Options) -> App {
        let pg = TempPostgres::start_standalone().await.expect("postgres");
        let db_url = pg.create_database("checkout").await.expect("create db");
        let (payments, payments_base) = match &opts.payments_url {
            Some(url) => (None, url.clone()),
            None => {
                let (p, b) = start_payments_stub().await;
                (Some(p), b)
            }
        };
        let receipts = tempfile::tempdir().unwrap();
        let receipts_dir = opts
            .receipts_dir
            .clone()
            .unwrap_or_else(|| receipts.path().to_path_buf());
        let port = free_port();
        let log = receipts.path().join("checkout.log");
        let mut cmd = Command::new(CHECKOUT);
        cmd.env_clear()
            .env("DATABASE_URL", &db_url)
            .env("PAYMENTS_URL", &payments_base)
            .env("RECEIPTS_DIR", &receipts_dir)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("REPLICA_NAME", "checkout-test")
            .env("CHECKOUT_BUGS", opts.bugs)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let app = Proc(cmd.spawn().expect("start checkout"));
        let base = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{base}/healthz/live"), Duration::from_secs(20)).await;
        App {
            pg,
            db_url,
            base,
            payments_base,
            receipts,
            app,
            payments,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn checkout(&self, key: &str) -> reqwest::Response {
        client()
            .post(self.url("/api/checkout"))
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"item_id": 1, "quantity": 2}))
            .send()
            .await
            .expect("checkout request")
    }

    pub async fn charges(&self) -> serde_json::Value {
        client()
            .get(format!("{}/charges", self.payments_base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A payments upstream that accepts connections and never answers (a really slow socket),
/// or answers a valid charge after `delay`.
pub async fn slow_upstream(delay: Option<Duration>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                match delay {
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        let body = format!("{{\"charge_id\":\"ch_slow_{n}\"}}");
                        let resp = format!(
                            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), handle)
}
