//! In-cluster HTTP through the API server, so the harness reads what only the cluster can reach
//! (ClusterIP Services, pod ports) without a port mapping of its own: the API server's proxy
//! subresources, `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}` and
//! `/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/{path}`
//! (https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls),
//! sent with the run's kube client (its credentials, its TLS).
//!
//! The core fetches a service by a plain base URL with reqwest (`Endpoints::service_urls`), so
//! a [`Relay`] gives it one: an HTTP server on 127.0.0.1:0 that forwards each request (method,
//! path, query, body, content type) to the service's proxy path and answers with what came back;
//! it stops when dropped (with the deployment).

use crate::error::{BrownoutError, Result};
use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};

/// The API server path proxying to port `port` of Service `service` (no trailing slash).
pub fn service_proxy_path(namespace: &str, service: &str, port: i32) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy")
}

/// The API server path proxying to port `port` of pod `pod` (no trailing slash).
pub fn pod_proxy_path(namespace: &str, pod: &str, port: i32) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy")
}

/// GET `path` (below a proxy path) through the API server; the body as text, an error for a
/// status that is not a success (kube's `request_text` maps it to an API error).
pub async fn get_text(client: &kube::Client, proxy: &str, path: &str) -> Result<String> {
    let req = Request::get(format!("{proxy}{path}"))
        .body(Vec::new())
        .map_err(|e| BrownoutError::Environment(format!("GET {proxy}{path}: {e}")))?;
    client
        .request_text(req)
        .await
        .map_err(|e| BrownoutError::Environment(format!("GET {proxy}{path}: {e}")))
}

/// A local base URL whose requests go to a Service through the API server's service proxy.
pub struct Relay {
    /// `http://127.0.0.1:<port>`: what the core fetches.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The largest request body relayed (the harness sends none, or small JSON).
const MAX_BODY: usize = 1 << 20;

async fn forward(client: kube::Client, prefix: String, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let failed = |status: StatusCode, what: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(what))
            .expect("a plain response")
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return failed(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{prefix}{path}"));
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    let out = match out.body(kube::client::Body::from(bytes.to_vec())) {
        Ok(r) => r,
        Err(e) => return failed(StatusCode::BAD_REQUEST, format!("{prefix}{path}: {e}")),
    };
    match client.send(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let mut r = Response::builder().status(parts.status);
            if let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
                r = r.header(header::CONTENT_TYPE, v);
            }
            r.body(Body::new(body))
                .unwrap_or_else(|e| failed(StatusCode::BAD_GATEWAY, e.to_string()))
        }
        Err(e) => failed(
            StatusCode::BAD_GATEWAY,
            format!("through the API server ({prefix}{path}): {e}"),
        ),
    }
}

/// Starts a relay to port `port` of Service `service` in `namespace`.
pub async fn start(
    client: kube::Client,
    namespace: &str,
    service: &str,
    port: i32,
) -> Result<Relay> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(crate::error::env_err("binding the service relay"))?;
    let addr = listener
        .local_addr()
        .map_err(crate::error::env_err("the service relay's address"))?;
    let prefix = service_proxy_path(namespace, service, port);
    let app = axum::Router::new()
        .fallback(move |req: Request<Body>| forward(client.clone(), prefix.clone(), req));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Relay {
        url: format!("http://{addr}"),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kube::mock::{self, Reply, Seen};
    use http::{Method, StatusCode};
    use serde_json::json;

    /// The API server's service proxy forwards the rest of the path and the query to the
    /// Service's port (kubernetes/kubernetes pkg/registry/core/service/proxy.go, `ProxyREST`:
    /// the location is resolved by `ResourceLocation` and the remaining path appended), and its
    /// answer comes back with its status and content type. Through the relay, the core's
    /// `GET <url>/ledger?since=0` is the API server's
    /// `GET /api/v1/namespaces/<ns>/services/payments:8080/proxy/ledger?since=0`, and a POST
    /// keeps its method and body; a 404 of the service stays a 404.
    #[tokio::test]
    async fn a_relay_reaches_the_service_through_the_api_servers_service_proxy() {
        let (client, log) = mock::server(Box::new(|s: &Seen| {
            if s.path_and_query.contains("/missing") {
                return mock::status(404, "NotFound", "no such page");
            }
            Reply::Json(StatusCode::OK, json!({"entries": [{"key": "k1"}]}))
        }));
        let relay = start(client, "brownout-r1", "payments", 8080)
            .await
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .get(format!("{}/ledger?since=0", relay.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body, json!({"entries": [{"key": "k1"}]}));
        let r = http
            .post(format!("{}/charges", relay.url))
            .json(&json!({"amount": 3}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = http
            .get(format!("{}/missing", relay.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let seen = log.all();
        assert_eq!(
            seen[0].path_and_query,
            "/api/v1/namespaces/brownout-r1/services/payments:8080/proxy/ledger?since=0"
        );
        assert_eq!(seen[0].method, Method::GET);
        assert_eq!(
            seen[1].path_and_query,
            "/api/v1/namespaces/brownout-r1/services/payments:8080/proxy/charges"
        );
        assert_eq!(seen[1].method, Method::POST);
        assert_eq!(seen[1].body, json!({"amount": 3}));
        assert!(seen[1].content_type.contains("application/json"));
        // Dropped with the deployment: the address no longer answers.
        let url = relay.url.clone();
        drop(relay);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        assert!(fresh.get(format!("{url}/ledger")).send().await.is_err());
    }
}
