//! `fault-proxy`: Brownout's fault proxies as a program. Each `--proxy name=upstream` listens on
//! 127.0.0.1 (any free port) and forwards to `upstream`; the HTTP control API (see
//! `harness::fault_proxy::api`) listens on `--control` and wants the token read from
//! `--token-file` (a file, so the token is not in the process list). Prints one JSON line with the
//! addresses once everything listens; runs until SIGTERM or Ctrl-C.

use clap::Parser;
use harness::fault_proxy::{api, FaultProxy};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "fault-proxy",
    about = "TCP fault proxies with an HTTP control API"
)]
struct Args {
    /// name=host:port (repeatable).
    #[arg(long = "proxy", required = true)]
    proxies: Vec<String>,
    #[arg(long, default_value = "127.0.0.1:0")]
    control: std::net::SocketAddr,
    #[arg(long)]
    token_file: std::path::PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let token = std::fs::read_to_string(&args.token_file)
        .map_err(|e| format!("--token-file {}: {e}", args.token_file.display()))?;
    let mut proxies = Vec::new();
    for (i, p) in args.proxies.iter().enumerate() {
        let (name, upstream) = p
            .split_once('=')
            .ok_or(format!("--proxy {p}: write name=host:port"))?;
        let upstream = upstream.parse().map_err(|e| format!("--proxy {p}: {e}"))?;
        let proxy = FaultProxy::start(name, 0, upstream, args.seed + i as u64).await;
        proxies.push(Arc::new(proxy.map_err(|e| format!("--proxy {p}: {e}"))?));
    }
    let listener = tokio::net::TcpListener::bind(args.control)
        .await
        .map_err(|e| e.to_string())?;
    let listen: serde_json::Map<String, serde_json::Value> = proxies
        .iter()
        .map(|p| (p.name.clone(), p.addr().into()))
        .collect();
    let control = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::json!({ "control": control.to_string(), "proxies": listen })
    );
    let app = api::router(proxies, token.trim().to_string());
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| e.to_string())
}
