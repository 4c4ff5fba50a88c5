//! Bare goose for the load benchmark: `goose-driver [GOOSE FLAGS]` (`--host`, `--users`,
//! `--throttle-requests`, `--run-time`, …) GETs `/` on the host, a new connection per request as
//! Brownout's driver does, and prints one JSON line `{"requests":N,"ok":N}` when done.

use goose::prelude::*;
use std::time::Duration;

async fn new_connection_per_request(user: &mut GooseUser) -> TransactionResult {
    let builder = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(5));
    user.set_client_builder(builder).await?;
    Ok(())
}

async fn get_root(user: &mut GooseUser) -> TransactionResult {
    let _ = user.get("/").await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let metrics = GooseAttack::initialize()?
        .register_scenario(
            scenario!("bench")
                .register_transaction(transaction!(new_connection_per_request).set_on_start())
                .register_transaction(transaction!(get_root)),
        )
        .execute()
        .await?;
    let (mut requests, mut ok) = (0, 0);
    for r in metrics.requests.values() {
        requests += r.success_count + r.fail_count;
        ok += r.success_count;
    }
    println!("{}", serde_json::json!({ "requests": requests, "ok": ok }));
    Ok(())
}
