//! The fault proxy's HTTP control API (what Toxiproxy's API does, for Brownout's toxics), served by
//! the `fault-proxy` program on 127.0.0.1. Every request needs `Authorization: Bearer <token>`
//! (401 otherwise); an unknown proxy is 404.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /proxies` | every proxy: listen address, upstream, down or up, toxics, stats |
//! | `POST /proxies/{name}/toxics` | adds a toxic: a scenario file's `toxic` as JSON, e.g. `{"kind": "latency", "latency": "300ms"}` (replaces one of its kind) |
//! | `DELETE /proxies/{name}/toxics` | removes every toxic |
//! | `POST /proxies/{name}/down`, `POST /proxies/{name}/up` | takes the listener away / back |
//! | `PUT /proxies/{name}/upstream` | `{"addr": "host:port"}`: where new connections go |

use super::FaultProxy;
use crate::spec::ToxicSpec;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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
    pub upstream: String,
    pub down: bool,
    pub toxics: Vec<ToxicSpec>,
    pub connections: u64,
    pub reset: u64,
    pub refused: u64,
}

#[derive(Deserialize)]
struct UpstreamBody {
    addr: String,
}

struct Control {
    proxies: BTreeMap<String, Arc<FaultProxy>>,
    token: String,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

impl Control {
    /// The proxy named `name`, once the token checks out.
    fn authorized(
        &self,
        headers: &HeaderMap,
        name: Option<&str>,
    ) -> Result<Option<&FaultProxy>, (StatusCode, String)> {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(self.token.as_str()) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            ));
        }
        match name {
            None => Ok(None),
            Some(n) => self
                .proxies
                .get(n)
                .map(|p| Some(p.as_ref()))
                .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no proxy '{n}'"))),
        }
    }
}

type Shared = State<Arc<Control>>;

async fn list(State(c): Shared, headers: HeaderMap) -> Response {
    if let Err((status, msg)) = c.authorized(&headers, None) {
        return error(status, msg);
    }
    let views: Vec<ProxyView> = c
        .proxies
        .values()
        .map(|p| ProxyView {
            name: p.name.clone(),
            listen: p.addr(),
            upstream: p.upstream().to_string(),
            down: p.is_down(),
            toxics: p.toxics().iter().map(ToxicSpec::from).collect(),
            connections: p.stats().connections.load(Ordering::Relaxed),
            reset: p.stats().reset.load(Ordering::Relaxed),
            refused: p.stats().refused.load(Ordering::Relaxed),
        })
        .collect();
    Json(views).into_response()
}

async fn add_toxic(
    State(c): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(spec): Json<ToxicSpec>,
) -> Response {
    let proxy = match c.authorized(&headers, Some(&name)) {
        Err((status, msg)) => return error(status, msg),
        Ok(p) => p.expect("named"),
    };
    if !(0.0..=1.0).contains(&spec.fraction()) {
        let msg = format!("fraction {} must be between 0 and 1", spec.fraction());
        return error(StatusCode::BAD_REQUEST, msg);
    }
    match spec.to_toxic() {
        Some(t) => {
            proxy.add(t);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(
            StatusCode::BAD_REQUEST,
            "down is not a toxic: POST /proxies/{name}/down",
        ),
    }
}

async fn clear_toxics(State(c): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match c.authorized(&headers, Some(&name)) {
        Err((status, msg)) => error(status, msg),
        Ok(p) => {
            p.expect("named").clear();
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn down(State(c): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match c.authorized(&headers, Some(&name)) {
        Err((status, msg)) => error(status, msg),
        Ok(p) => {
            p.expect("named").take_down().await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn up(State(c): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match c.authorized(&headers, Some(&name)) {
        Err((status, msg)) => error(status, msg),
        Ok(p) => match p.expect("named").bring_up().await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => error(StatusCode::CONFLICT, format!("cannot listen again: {e}")),
        },
    }
}

async fn set_upstream(
    State(c): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<UpstreamBody>,
) -> Response {
    match c.authorized(&headers, Some(&name)) {
        Err((status, msg)) => error(status, msg),
        Ok(p) => match body.addr.parse() {
            Ok(addr) => {
                p.expect("named").set_upstream(addr);
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                format!("addr '{}': {e}", body.addr),
            ),
        },
    }
}

/// The control API over `proxies`, guarded by `token`.
pub fn router(proxies: Vec<Arc<FaultProxy>>, token: String) -> Router {
    let control = Control {
        proxies: proxies.into_iter().map(|p| (p.name.clone(), p)).collect(),
        token,
    };
    Router::new()
        .route("/proxies", get(list))
        .route(
            "/proxies/{name}/toxics",
            post(add_toxic).delete(clear_toxics),
        )
        .route("/proxies/{name}/down", post(down))
        .route("/proxies/{name}/up", post(up))
        .route("/proxies/{name}/upstream", put(set_upstream))
        .with_state(Arc::new(control))
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
            let proxy = Arc::new(FaultProxy::start("payments", 0, a, 7).await.unwrap());
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
            (v.name.as_str(), v.upstream.clone(), v.down),
            ("payments", a.to_string(), false)
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
            vec![ToxicSpec::Latency {
                latency: crate::spec::Dur(Duration::from_millis(300)),
                jitter: crate::spec::Dur::default(),
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
            .json(&serde_json::json!({"addr": b.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(through(&api.proxy).await.unwrap(), b"from-b");
        assert_eq!(api.list().await[0].upstream, b.to_string());
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
    }
}
