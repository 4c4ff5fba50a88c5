//! The declared data-integrity check (`[integrity]` in a system file) against a real throwaway
//! PostgreSQL and a real HTTP ledger on 127.0.0.1 port 0: it holds on consistent data, and it
//! catches a lost acknowledged request, a committed record without a ledger entry and a double
//! entry, while an entry without a committed record is only reported.

use harness::integrity;
use harness::platform::local::postgres::TempPostgres;
use harness::spec::{IntegritySpec, LedgerSpec};
use sqlx::Connection;

async fn ledger(entries: serde_json::Value) -> String {
    let app = axum::Router::new().route(
        "/charges",
        axum::routing::get(move || {
            let e = entries.clone();
            async move { axum::Json(serde_json::json!({ "charges": e })) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn spec() -> IntegritySpec {
    IntegritySpec {
        committed_keys_query: "SELECT key FROM orders WHERE status = 'paid'".into(),
        committed_ids_query: Some("SELECT id::text FROM orders WHERE status = 'paid'".into()),
        ledger: Some(LedgerSpec {
            service: "payments".into(),
            path: "/charges".into(),
            list: Some("charges".into()),
            id_field: "order_id".into(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_declared_check_holds_on_consistent_data_and_catches_each_inconsistency() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = TempPostgres::start_in(dir.path()).await.unwrap();
    let db = pg.create_database("shop").await.unwrap();
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    for q in [
        "CREATE TABLE orders (id int PRIMARY KEY, key text, status text)",
        "INSERT INTO orders VALUES (1, 'k1', 'paid'), (2, 'k2', 'paid'), (3, 'k3', 'failed')",
    ] {
        sqlx::query(q).execute(&mut c).await.unwrap();
    }
    let acked = vec!["k1".to_string(), "k2".to_string()];

    // Consistent: both acknowledged keys paid, one charge each.
    let url = ledger(serde_json::json!([{"order_id": "1"}, {"order_id": "2"}])).await;
    let i = integrity::check(&spec(), &mut c, Some(&url), &acked)
        .await
        .unwrap();
    assert!(i.ok(), "{}", i.summary());
    assert_eq!((i.acknowledged, i.paid_orders, i.charges), (2, 2, 2));

    // Order 2 charged twice, order 1 never, a charge for the failed order 3 (reported only), and
    // a client was told k3 succeeded.
    let url =
        ledger(serde_json::json!([{"order_id": 2}, {"order_id": "2"}, {"order_id": "3"}])).await;
    let acked = vec!["k1".to_string(), "k2".to_string(), "k3".to_string()];
    let i = integrity::check(&spec(), &mut c, Some(&url), &acked)
        .await
        .unwrap();
    assert!(!i.ok());
    assert_eq!(i.acknowledged_missing, 1, "{}", i.summary());
    assert_eq!(i.paid_without_charge, 1, "{}", i.summary());
    assert_eq!(i.double_charges, 1, "{}", i.summary());
    assert_eq!(i.charges_without_paid_order, 1, "{}", i.summary());

    // A query whose first column is not text is an error that names the query, not zero rows.
    let mut bad = spec();
    bad.committed_keys_query = "SELECT id FROM orders".into();
    let err = integrity::check(&bad, &mut c, Some(&url), &acked)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SELECT id FROM orders"), "{err}");
    drop(c);
    pg.stop();
}
