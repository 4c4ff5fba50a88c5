//! `plain-app`: an HTTP service that knows nothing of Brownout, to test the harness against an app
//! that does not cooperate. It sets no special header, has one health path, and on SIGTERM closes
//! its listener at once and finishes what is in flight (axum's graceful shutdown), as most servers
//! do: behind an ingress that still routes to it for a moment, new connections are refused unless
//! the platform runs a pre-stop hook first.
//!
//! `LISTEN_ADDR` (default 127.0.0.1:8080); `GET /` answers 200 after `WORK_MS` (default 2) ms;
//! `GET /healthz` answers 200.

use axum::routing::get;
use axum::Router;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let work = Duration::from_millis(
        std::env::var("WORK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
    );
    let app = Router::new()
        .route(
            "/",
            get(move || async move {
                tokio::time::sleep(work).await;
                "ok\n"
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("plain-app listening on {addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            term.recv().await;
            eprintln!("plain-app: SIGTERM, closing the listener");
        })
        .await?;
    eprintln!("plain-app: stopped");
    Ok(())
}
