//! A pass-through for the Docker API socket that lowers the API version in each request's path to
//! what the daemon speaks. testcontainers 0.28 sends every request as API 1.53 and does not
//! negotiate (bollard's `negotiate_version` is never called), so against Debian 12's Docker 20.10
//! (API 1.41) or Docker 28 (1.51) every call is refused with "client version 1.53 is too new".
//! Upgraded connections (exec, attach) are spliced through. The calls the image tests make
//! (create, start, inspect, logs, exec, stop, wait, remove) have the
//! same shape in those versions. With a daemon new enough, nothing is rewritten.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};

/// The shim's socket, for `DOCKER_HOST=unix://…`; serves until the process ends.
pub fn start(daemon: &Path) -> PathBuf {
    // In cargo's per-test scratch dir (under target/), not /tmp: nothing is left outside the build
    // dir, and a stale socket from an earlier run of this test binary is replaced.
    let socket = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("docker-api-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    // Sockets of earlier runs whose process is gone.
    for e in std::fs::read_dir(env!("CARGO_TARGET_TMPDIR"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("docker-api-")
            .and_then(|n| n.strip_suffix(".sock"));
        if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let daemon = daemon.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = socket.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let version = daemon_version(&daemon).await;
            let listener = tokio::net::UnixListener::bind(&path).expect("bind the shim socket");
            tx.send(()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (daemon, version) = (daemon.clone(), version.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        forward(req, daemon.clone(), version.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the Docker API shim did not start: is dockerd running? (scripts/install-deps.sh starts it)");
    socket
}

async fn send(
    daemon: &Path,
    req: hyper::Request<
        impl hyper::body::Body<
                Data = hyper::body::Bytes,
                Error: Into<Box<dyn std::error::Error + Send + Sync>>,
            > + Send
            + 'static,
    >,
) -> Result<hyper::Response<Incoming>, String> {
    let stream = tokio::net::UnixStream::connect(daemon)
        .await
        .map_err(|e| format!("connect {}: {e}", daemon.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn.with_upgrades());
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// The daemon's API version ("1.41").
async fn daemon_version(daemon: &Path) -> String {
    let req = hyper::Request::get("/version")
        .header("host", "docker")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let resp = send(daemon, req).await.expect("GET /version from dockerd");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("version JSON");
    v["ApiVersion"].as_str().expect("ApiVersion").to_string()
}

fn older(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> (u32, u32) {
        let (x, y) = s.split_once('.').unwrap_or((s, "0"));
        (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
    };
    parse(a) < parse(b)
}

/// `/v1.53/containers/…` → `/v1.41/containers/…` when the daemon is older than the request.
fn rewrite(path_and_query: &str, daemon: &str) -> String {
    if let Some(rest) = path_and_query.strip_prefix("/v") {
        if let Some((asked, tail)) = rest.split_once('/') {
            if older(daemon, asked) {
                return format!("/v{daemon}/{tail}");
            }
        }
    }
    path_and_query.to_string()
}

async fn forward(
    mut req: hyper::Request<Incoming>,
    daemon: PathBuf,
    version: String,
) -> Result<hyper::Response<Incoming>, std::io::Error> {
    let client_side = hyper::upgrade::on(&mut req);
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = rewrite(pq, &version).parse().expect("a path");
    let mut resp = send(&daemon, hyper::Request::from_parts(parts, body))
        .await
        .map_err(std::io::Error::other)?;
    // exec and attach switch the connection to a raw stream (101 UPGRADED): splice both ends.
    if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
        let daemon_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = (client_side.await, daemon_side.await) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
            }
        });
    }
    Ok(resp)
}

#[test]
fn only_newer_versions_are_lowered() {
    assert_eq!(
        rewrite("/v1.53/containers/json?all=1", "1.41"),
        "/v1.41/containers/json?all=1"
    );
    assert_eq!(rewrite("/v1.40/info", "1.41"), "/v1.40/info");
    assert_eq!(rewrite("/_ping", "1.41"), "/_ping");
}
