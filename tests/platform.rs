//! The local platform deployed for real, through the same calls the runner makes (no runner, no
//! load): a tiny system of `plain-app` with no database and no integrity check, and a fault proxy in
//! front of it. The fault proxy runs as the `fault-proxy` program, driven through its control API;
//! its upstream is the service's address, so it keeps working across a rollout of the service it
//! fronts. Needs the workspace's binaries built (`cargo build --workspace --bins`; `just test` does).

use harness::evidence::Evidence;
use harness::fault_proxy::Toxic;
use harness::platform::{
    DatabaseHandle, DeployOptions, Platform, ProxyControl, RevisionChange, RolloutDriver,
    RolloutOutcome,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BROWNOUT: &str = env!("CARGO_BIN_EXE_brownout");

fn bin_dir() -> PathBuf {
    let dir = Path::new(BROWNOUT).parent().unwrap().to_path_buf();
    for bin in ["plain-app", "fault-proxy"] {
        assert!(
            dir.join(bin).is_file(),
            "{bin} is not built next to brownout: run `cargo build --workspace --bins` first (just test does)"
        );
    }
    dir
}

fn system_file(dir: &Path) -> PathBuf {
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/alerts/edge.rules.yml")
        .canonicalize()
        .unwrap();
    let text = format!(
        r#"
name = "tiny"

[[services]]
name = "plain"
command = ["{{bin_dir}}/plain-app"]
replicas = 1
grace_period = "3s"
env = {{ LISTEN_ADDR = "{{listen_addr}}" }}
readiness = {{ path = "/healthz", period = "200ms", timeout = "500ms", failure_threshold = 1 }}

[[proxies]]
name = "to-plain"
upstream = "plain"

[ingress]
service = "plain"
propagation_delay = "500ms"

[prometheus]
rule_files = ["{}"]
"#,
        rules.display()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A new connection per request (no pooling), so each one goes where the proxy sends it now.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn status(c: &reqwest::Client, url: &str) -> Option<u16> {
    c.get(url).send().await.ok().map(|r| r.status().as_u16())
}

fn refused(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fault_proxy_follows_its_upstream_service_across_a_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let system = harness::spec::load_system(&system_file(dir.path())).unwrap();
    let opts = DeployOptions {
        run_id: "platform-test".into(),
        bugs: Vec::new(),
        bin_dir: bin_dir(),
        log_dir: dir.path().to_path_buf(),
        seed: 1,
    };
    let evidence = Evidence::new();
    let mut platform = harness::platform::embedded();
    let endpoints = platform.deploy(&system, &opts, &evidence).await.unwrap();

    // No [database]: nothing to connect to, and that is not an error.
    assert!(platform.connect_database().await.unwrap().is_none());

    let find = |list: &[(String, String)], name: &str| {
        list.iter().find(|(n, _)| n == name).unwrap().1.clone()
    };
    let proxy = find(&endpoints.proxies, "to-plain");
    let through_proxy = format!("http://{proxy}/healthz");
    let service = format!("{}/healthz", find(&endpoints.service_urls, "plain"));
    let c = client();
    assert_eq!(status(&c, &through_proxy).await, Some(200));
    assert_eq!(status(&c, &service).await, Some(200));
    let old = evidence.with(|d| {
        d.endpoints
            .iter()
            .find(|(_, r)| &***r == "plain-0")
            .map(|(a, _)| a.to_string())
            .unwrap()
    });

    // Toxics and down/up go through the program's control API.
    platform
        .add_toxic("to-plain", Toxic::Refuse { fraction: 1.0 })
        .await
        .unwrap();
    assert_eq!(status(&c, &through_proxy).await, None, "refused");
    assert_eq!(status(&c, &service).await, Some(200), "the service is fine");
    platform.clear_toxics("to-plain").await.unwrap();
    assert_eq!(status(&c, &through_proxy).await, Some(200));
    platform.set_down("to-plain", true).await.unwrap();
    assert!(refused(&proxy), "down: nothing listens");
    platform.set_down("to-plain", false).await.unwrap();
    assert_eq!(status(&c, &through_proxy).await, Some(200));
    let err = platform
        .add_toxic("nope", Toxic::Refuse { fraction: 1.0 })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no proxy 'nope'"), "{err}");

    // A rolling restart of the upstream service: plain-0 is replaced by plain-r2-0.
    let rollout = platform
        .start_rollout(
            "plain",
            &RevisionChange::default(),
            Duration::from_secs(30),
            &evidence,
        )
        .await
        .unwrap();
    let outcome = rollout.await.unwrap();
    assert!(
        matches!(outcome, RolloutOutcome::Complete { .. }),
        "{outcome:?}"
    );
    let waited = Instant::now();
    while !refused(&old) && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused(&old), "the old replica {old} is gone");
    // Endpoint removal propagates (500 ms), then every new connection reaches the new replica.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..20 {
        assert_eq!(
            status(&c, &through_proxy).await,
            Some(200),
            "through the proxy after the rollout"
        );
        assert_eq!(status(&c, &service).await, Some(200), "the service address");
    }
    let moved = evidence.with(|d| {
        d.events
            .iter()
            .any(|e| e.what.starts_with("service.plain endpoints: [") && !e.what.contains(&old))
    });
    assert!(moved, "the service address's endpoints were moved");

    platform.teardown().await;
    assert!(refused(&proxy), "the fault-proxy program stopped");
}

/// A database handle on a throwaway PostgreSQL, as a platform would hand one to a fault.
struct Db(String);

impl DatabaseHandle for Db {
    async fn connect_database(&self) -> harness::error::Result<Option<sqlx::PgConnection>> {
        use sqlx::Connection;
        Ok(Some(sqlx::PgConnection::connect(&self.0).await.unwrap()))
    }
}

struct NoDb;

impl DatabaseHandle for NoDb {
    async fn connect_database(&self) -> harness::error::Result<Option<sqlx::PgConnection>> {
        Ok(None)
    }
}

/// The pool-exhaustion fault through a database handle: while it holds its locks every write to
/// the table blocks (here until a 300 ms statement timeout) and reads still work; healed, writes
/// go through again. A system without a database is refused with a message naming the fix.
#[tokio::test(flavor = "multi_thread")]
async fn pool_exhaustion_blocks_writes_through_the_database_handle_until_healed() {
    use harness::faults::pool_exhaustion;
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let mut pg = harness::platform::local::postgres::TempPostgres::start_in(dir.path())
        .await
        .unwrap();
    let url = pg.create_database("shop").await.unwrap();
    let mut app = sqlx::PgConnection::connect(&url).await.unwrap();
    for q in [
        "CREATE TABLE orders (id int PRIMARY KEY)",
        "SET statement_timeout = 300",
    ] {
        sqlx::query(q).execute(&mut app).await.unwrap();
    }
    let write = "INSERT INTO orders SELECT coalesce(max(id), 0) + 1 FROM orders";

    let held = pool_exhaustion::inject(&Db(url.clone()), &["orders".into()])
        .await
        .unwrap();
    let err = sqlx::query(write).execute(&mut app).await.unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
    sqlx::query("SELECT count(*) FROM orders")
        .execute(&mut app)
        .await
        .expect("reads still work");
    pool_exhaustion::heal(held).await.unwrap();
    sqlx::query(write).execute(&mut app).await.expect("healed");

    let err = pool_exhaustion::inject(&NoDb, &["orders".into()])
        .await
        .err()
        .expect("no database, no fault");
    assert!(err.to_string().contains("[database]"), "{err}");
    drop(app);
    pg.stop();
}
