//! `checkout`: boots one replica. Config is validated before the port is bound; any startup failure
//! is one clear line on stderr and exit code 1.

use std::process::ExitCode;
use target_app::config::Config;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("startup failed: {e}");
            return ExitCode::from(1);
        }
    };
    target_app::init_logging();
    target_app::error::RETRY_AFTER_SECS.store(
        config.retry_after_secs,
        std::sync::atomic::Ordering::Relaxed,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("startup failed: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("startup failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    let addr = config.listen_addr;
    tracing::info!(replica = %config.replica_name, bugs = %config.bugs, %addr, "starting");
    if let Some(dir) = &config.receipts_dir {
        target_app::receipts::spawn_pruner(dir.clone(), config.receipts_keep);
    }
    let state = target_app::state::AppState::build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "listening");
    target_app::server::serve(state, listener).await
}
