//! The sample checkout service that Brownout puts under fault: axum + sqlx/PostgreSQL, a payments
//! upstream over HTTP, receipt files on a volume. Hardened by default; `CHECKOUT_BUGS` switches
//! classic 5xx defects back on (see `config::Bug` and the crate README).

pub mod api;
pub mod config;
pub mod error;
pub mod health;
pub mod metrics;
pub mod payments;
pub mod receipts;
pub mod server;
pub mod state;

/// Installs the JSON log subscriber (one object per line on stderr).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
