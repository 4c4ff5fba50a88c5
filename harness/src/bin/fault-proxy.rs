//! `fault-proxy`: Brownout's fault proxies as a program. Each `--proxy name=host:port[,host:port]`
//! listens on `--listen` (127.0.0.1, any free port, by default) and forwards to its upstreams in turn (`--proxy name` alone:
//! none yet, set them through the API); the HTTP control API (see `harness::fault_proxy::api`)
//! listens on `--control` and wants the token read from `--token-file` (a file, so the token is
//! not in the process list). Once everything listens it prints one JSON line with the addresses,
//! and writes the same to `--ready-file` if given; runs until SIGTERM or Ctrl-C.

use clap::Parser;
use harness::fault_proxy::{self, api, FaultProxy};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "fault-proxy",
    about = "TCP fault proxies with an HTTP control API"
)]
struct Args {
    /// name=host:port[,host:port...], or just name (repeatable).
    #[arg(long = "proxy", required = true)]
    proxies: Vec<String>,
    /// Where to write the addresses (JSON) once everything listens, for a supervisor to wait on.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    #[arg(long, default_value = "127.0.0.1:0")]
    control: std::net::SocketAddr,
    /// Where the proxies listen: port 0 gives each a free port; port P gives them P, P+1, … in
    /// the order of `--proxy` (fixed ports a Kubernetes Service can name; a pod uses 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
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
        let (name, upstreams) = p.split_once('=').unwrap_or((p, ""));
        if name.is_empty() || proxies.iter().any(|q: &Arc<FaultProxy>| q.name == name) {
            return Err(format!("--proxy {p}: each proxy needs a name of its own"));
        }
        let upstreams: Vec<String> = upstreams
            .split(',')
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = upstreams.iter().find(|u| !fault_proxy::is_host_port(u)) {
            return Err(format!("--proxy {p}: upstream '{bad}' is not host:port"));
        }
        let mut at = args.listen;
        if at.port() != 0 {
            let port = at.port().checked_add(i as u16);
            at.set_port(port.ok_or(format!("--listen {}: ports run out", args.listen))?);
        }
        let proxy = FaultProxy::start_on(name, at, upstreams, args.seed + i as u64).await;
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
    let ready = serde_json::json!({ "control": control.to_string(), "proxies": listen });
    println!("{ready}");
    if let Some(path) = &args.ready_file {
        // Written whole, then renamed: a reader never sees half of it.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, ready.to_string())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("--ready-file {}: {e}", path.display()))?;
    }
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
