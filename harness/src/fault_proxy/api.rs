//! The fault proxy's HTTP control API (what Toxiproxy's API does, for Brownout's toxics), served by
//! the `fault-proxy` program on 127.0.0.1. Every request needs `Authorization: Bearer <token>`
//! (401 otherwise); an unknown proxy is 404.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /proxies` | every proxy: listen address, upstream, down or up, toxics, stats |
//! | `POST /proxies/{name}/toxics` | adds a toxic: a scenario file's `toxic` as JSON, e.g. `{"kind": "latency", "latency": "300ms"}` (replaces one of its kind) |
//! | `DELETE /proxies/{name}/toxics` | removes every toxic |
//! | `POST /proxies/{name}/down`, `POST /proxies/{name}/up` | takes the listener away and closes the open connections / brings the listener back |
//! | `PUT /proxies/{name}/upstream` | `{"addrs": ["host:port", ...]}`: where new connections go, in turn (none: they are reset) |

use super::{FaultProxy, Toxic};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One proxy as `GET /proxies` shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ProxyView {
    pub name: String,
    pub listen: String,
    pub upstreams: Vec<String>,
    pub down: bool,
    pub toxics: Vec<Toxic>,
    pub connections: u64,
    pub reset: u64,
    pub refused: u64,
}

/// The body of `PUT /proxies/{name}/upstream`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpstreamBody {
    pub addrs: Vec<String>,
}

struct Control {
    proxies: BTreeMap<String, Arc<FaultProxy>>,
    token: String,
}

/// An answer other than success: a status and a JSON `{"error": ...}` body.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<StatusCode, ApiError>;
type Shared = State<Arc<Control>>;

impl Control {
    fn proxy(&self, name: &str) -> Result<&FaultProxy, ApiError> {
        self.proxies
            .get(name)
            .map(|p| p.as_ref())
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no proxy '{name}'")))
    }
}

/// Every route wants `Authorization: Bearer <token>`.
async fn require_token(State(c): Shared, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(c.token.as_str()) {
        let msg = "missing or wrong bearer token".to_string();
        return ApiError(StatusCode::UNAUTHORIZED, msg).into_response();
    }
    next.run(req).await
}

async fn list(State(c): Shared) -> Json<Vec<ProxyView>> {
    Json(
        c.proxies
            .values()
            .map(|p| ProxyView {
                name: p.name.clone(),
                listen: p.addr(),
                upstreams: p.upstreams(),
                down: p.is_down(),
                toxics: p.toxics(),
                connections: p.stats().connections.load(Ordering::Relaxed),
                reset: p.stats().reset.load(Ordering::Relaxed),
                refused: p.stats().refused.load(Ordering::Relaxed),
            })
            .collect(),
    )
}

async fn add_toxic(State(c): Shared, Path(name): Path<String>, Json(toxic): Json<Toxic>) -> Answer {
    let proxy = c.proxy(&name)?;
    toxic
        .check_fraction()
        .map_err(|msg| ApiError(StatusCode::BAD_REQUEST, msg))?;
    proxy.add(toxic).map_err(|super::DownIsNotAToxic| {
        let msg = "down is not a toxic: POST /proxies/{name}/down".to_string();
        ApiError(StatusCode::BAD_REQUEST, msg)
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_toxics(State(c): Shared, Path(name): Path<String>) -> Answer {
    c.proxy(&name)?.clear();
    Ok(StatusCode::NO_CONTENT)
}

async fn down(State(c): Shared, Path(name): Path<String>) -> Answer {
    c.proxy(&name)?.take_down().await;
    Ok(StatusCode::NO_CONTENT)
}

async fn up(State(c): Shared, Path(name): Path<String>) -> Answer {
    c.proxy(&name)?
        .bring_up()
        .await
        .map_err(|e| ApiError(StatusCode::CONFLICT, format!("cannot listen again: {e}")))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_upstream(
    State(c): Shared,
    Path(name): Path<String>,
    Json(body): Json<UpstreamBody>,
) -> Answer {
    let proxy = c.proxy(&name)?;
    if let Some(bad) = body.addrs.iter().find(|a| !super::is_host_port(a)) {
        let msg = format!("addr '{bad}' is not host:port");
        return Err(ApiError(StatusCode::BAD_REQUEST, msg));
    }
    proxy.set_upstreams(body.addrs);
    Ok(StatusCode::NO_CONTENT)
}

/// The control API over `proxies`, guarded by `token`.
pub fn router(proxies: Vec<Arc<FaultProxy>>, token: String) -> Router {
    let control = Arc::new(Control {
        proxies: proxies.into_iter().map(|p| (p.name.clone(), p)).collect(),
        token,
    });
    Router::new()
        .route("/proxies", get(list))
        .route(
            "/proxies/{name}/toxics",
            post(add_toxic).delete(clear_toxics),
        )
        .route("/proxies/{name}/down", post(down))
        .route("/proxies/{name}/up", post(up))
        .route("/proxies/{name}/upstream", put(set_upstream))
        .route_layer(middleware::from_fn_with_state(
            control.clone(),
            require_token,
        ))
        .with_state(control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream on port 0 that answers every connection with `reply` and closes.
    async fn upstream(reply: &'static [u8]) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(reply).await;
                });
            }
        });
        addr
    }

    /// Sends a line through the proxy and returns what came back (or the error kind).
    async fn through(addr: &str) -> Result<Vec<u8>, std::io::ErrorKind> {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.kind())?;
        s.write_all(b"hi\n").await.map_err(|e| e.kind())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.kind())?;
        Ok(out)
    }

    struct Api {
        base: String,
        client: reqwest::Client,
        proxy: String,
    }

    impl Api {
        async fn start() -> (Api, std::net::SocketAddr) {
            let a = upstream(b"from-a").await;
            let proxy = FaultProxy::start("payments", 0, vec![a.to_string()], 7).await;
            let proxy = Arc::new(proxy.unwrap());
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", l.local_addr().unwrap());
            let app = router(vec![proxy.clone()], "s3cret".into());
            tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
            let api = Api {
                base,
                client: reqwest::Client::new(),
                proxy: proxy.addr(),
            };
            (api, a)
        }
        fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
            self.client
                .request(m, format!("{}{path}", self.base))
                .bearer_auth("s3cret")
        }
        async fn list(&self) -> Vec<ProxyView> {
            self.req(reqwest::Method::GET, "/proxies")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn each_operation_changes_what_clients_get() {
        let (api, a) = Api::start().await;
        assert_eq!(through(&api.proxy).await.unwrap(), b"from-a");
        let v = &api.list().await[0];
        assert_eq!(
            (v.name.as_str(), v.upstreams.clone(), v.down),
            ("payments", vec![a.to_string()], false)
        );
        assert!(v.connections >= 1);

        // A latency toxic: the answer takes at least that long; listed; cleared.
        let r = api
            .req(reqwest::Method::POST, "/proxies/payments/toxics")
            .json(&serde_json::json!({"kind": "latency", "latency": "300ms"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(
            api.list().await[0].toxics,
            vec![Toxic::Latency {
                latency: crate::units::Dur(Duration::from_millis(300)),
                jitter: crate::units::Dur::default(),
                fraction: 1.0
            }]
        );
        let t0 = std::time::Instant::now();
        through(&api.proxy).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(280),
            "{:?}",
            t0.elapsed()
        );
        let r = api
            .req(reqwest::Method::DELETE, "/proxies/payments/toxics")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert!(api.list().await[0].toxics.is_empty());

        // Down: refused; up: answers again.
        api.req(reqwest::Method::POST, "/proxies/payments/down")
            .send()
            .await
            .unwrap();
        assert!(api.list().await[0].down);
        assert_eq!(
            through(&api.proxy).await,
            Err(std::io::ErrorKind::ConnectionRefused)
        );
        api.req(reqwest::Method::POST, "/proxies/payments/up")
            .send()
            .await
            .unwrap();
        assert_eq!(through(&api.proxy).await.unwrap(), b"from-a");

        // The upstream moves (a rollout of the upstream service): new connections follow.
        let b = upstream(b"from-b").await;
        let r = api
            .req(reqwest::Method::PUT, "/proxies/payments/upstream")
            .json(&serde_json::json!({"addrs": [b.to_string()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(through(&api.proxy).await.unwrap(), b"from-b");
        assert_eq!(api.list().await[0].upstreams, vec![b.to_string()]);
        // Two endpoints: new connections take them in turn.
        let r = api
            .req(reqwest::Method::PUT, "/proxies/payments/upstream")
            .json(&serde_json::json!({"addrs": [a.to_string(), b.to_string()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let mut got = vec![
            through(&api.proxy).await.unwrap(),
            through(&api.proxy).await.unwrap(),
        ];
        got.sort();
        assert_eq!(got, vec![b"from-a".to_vec(), b"from-b".to_vec()]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_or_wrong_token_is_refused_and_nothing_changes() {
        let (api, _) = Api::start().await;
        let down = format!("{}/proxies/payments/down", api.base);
        let r = api.client.post(&down).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = api
            .client
            .post(&down)
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = api
            .client
            .get(format!("{}/proxies", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(!api.list().await[0].down);
        assert_eq!(through(&api.proxy).await.unwrap(), b"from-a");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_proxies_and_bad_toxics_are_client_errors() {
        let (api, _) = Api::start().await;
        let r = api
            .req(reqwest::Method::POST, "/proxies/nope/down")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = api
            .req(reqwest::Method::POST, "/proxies/payments/toxics")
            .json(&serde_json::json!({"kind": "latency", "latency": "10ms", "fraction": 2.0}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = api
            .req(reqwest::Method::POST, "/proxies/payments/toxics")
            .json(&serde_json::json!({"kind": "cpu-hog"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        // `down` is an operation of its own, not a toxic.
        let r = api
            .req(reqwest::Method::POST, "/proxies/payments/toxics")
            .json(&serde_json::json!({"kind": "down"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(api.list().await[0].toxics.is_empty());
        // An upstream that is not host:port is refused, and the proxy keeps its upstream.
        for bad in ["payments", ":80", "h:0", "h:99999"] {
            let r = api
                .req(reqwest::Method::PUT, "/proxies/payments/upstream")
                .json(&serde_json::json!({ "addrs": [bad] }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{bad}");
        }
        assert_eq!(api.list().await[0].upstreams.len(), 1);
        assert_eq!(through(&api.proxy).await.unwrap(), b"from-a");
    }
}
