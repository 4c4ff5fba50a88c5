//! The game day's control API and live page, served on 127.0.0.1 (axum). Every call needs the
//! token printed at start, as `Authorization: Bearer <token>` or `?token=<token>` (the page's URL
//! carries it); anything else is 401. The handlers only parse and validate; each action is sent to
//! the game day's loop, which does it, records it in the evidence and answers.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /?token=…` | the live page |
//! | `GET /api/status` | the live view (JSON) |
//! | `GET /api/events` | the live view once a second (server-sent events) |
//! | `GET /api/faults` | the fault kinds the system supports, presets for it, the active faults |
//! | `POST /api/faults` | injects `{"name": "slow-pay", "fault": {…a scenario's fault…}}` (name optional) |
//! | `DELETE /api/faults/{name}`, `DELETE /api/faults` | heals one, or all (newest first) |
//! | `PUT /api/rate` | `{"rate": 100}`: the load's rate from now on |
//! | `POST /api/notes` | `{"text": "…"}` |
//! | `POST /api/stop` | heals everything, stops, tears down, writes the report |

use super::catalog::Catalog;
use super::live::View;
use super::{Command, Reply};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

const PAGE: &str = include_str!("page.html");

pub struct ApiState {
    pub token: String,
    pub commands: mpsc::Sender<(Command, oneshot::Sender<Reply>)>,
    pub view: watch::Receiver<View>,
    /// What a fault sent to the API is checked against (the system, loaded once).
    pub fault_checks: crate::spec::gameday::FaultChecks,
    pub catalog: Catalog,
}

type Shared = State<Arc<ApiState>>;

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn require_token(
    State(s): Shared,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = bearer.or(q.get("token").map(String::as_str));
    if !given.is_some_and(|g| same(g, &s.token)) {
        let msg = "missing or wrong token: give the one printed at start, as `Authorization: Bearer <token>` or `?token=<token>`";
        return ApiError(StatusCode::UNAUTHORIZED, msg.into()).into_response();
    }
    next.run(req).await
}

/// Sends a command to the game day's loop and returns its answer.
async fn ask(s: &ApiState, cmd: Command) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.commands.send((cmd, tx)).await.is_err() {
        return ApiError(StatusCode::CONFLICT, "the game day is ending".into()).into_response();
    }
    match rx.await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err((code, msg))) => ApiError(code, msg).into_response(),
        Err(_) => ApiError(StatusCode::CONFLICT, "the game day is ending".into()).into_response(),
    }
}

async fn page(State(s): Shared) -> Html<String> {
    let presets = serde_json::to_string(&s.catalog.presets).unwrap_or_else(|_| "[]".into());
    // Inside a <script type="application/json">: no "</" may end it early.
    Html(PAGE.replace("__PRESETS__", &presets.replace("</", "<\\/")))
}

async fn status(State(s): Shared) -> Json<View> {
    Json(s.view.borrow().clone())
}

async fn events(
    State(s): Shared,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = s.view.clone();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let json = serde_json::to_string(&*rx.borrow_and_update()).unwrap_or_default();
        Some((Ok(Event::default().event("view").data(json)), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn faults(State(s): Shared) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "kinds": s.catalog.kinds,
        "presets": s.catalog.presets,
        "active": s.view.borrow().faults,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectBody {
    name: Option<String>,
    fault: serde_json::Value,
}

async fn inject(
    State(s): Shared,
    body: Result<Json<InjectBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("{e}; send {{\"name\": \"slow-pay\", \"fault\": {{\"kind\": …}}}}");
            return ApiError(StatusCode::BAD_REQUEST, msg).into_response();
        }
    };
    if let Some(name) = &body.name {
        if let Err(e) = crate::checks::name("fault name", name) {
            return ApiError(StatusCode::BAD_REQUEST, e).into_response();
        }
    }
    let spec = match crate::spec::gameday::fault_for_gameday(&s.fault_checks, &body.fault) {
        Ok(f) => f,
        Err(e) => return ApiError(StatusCode::BAD_REQUEST, e).into_response(),
    };
    ask(
        &s,
        Command::Inject {
            name: body.name,
            spec,
        },
    )
    .await
}

async fn heal_one(State(s): Shared, Path(name): Path<String>) -> Response {
    ask(&s, Command::Heal(Some(name))).await
}

async fn heal_all(State(s): Shared) -> Response {
    ask(&s, Command::Heal(None)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    rate: u32,
}

async fn rate(
    State(s): Shared,
    body: Result<Json<RateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) => ask(&s, Command::Rate(b.rate)).await,
        Err(e) => ApiError(
            StatusCode::BAD_REQUEST,
            format!("{e}; send {{\"rate\": 100}}"),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn note(
    State(s): Shared,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) if b.text.trim().is_empty() => {
            ApiError(StatusCode::BAD_REQUEST, "a note needs some text".into()).into_response()
        }
        Ok(Json(b)) if b.text.len() > 4096 => ApiError(
            StatusCode::BAD_REQUEST,
            "a note is at most 4096 bytes".into(),
        )
        .into_response(),
        Ok(Json(b)) => ask(&s, Command::Note(b.text)).await,
        Err(e) => ApiError(
            StatusCode::BAD_REQUEST,
            format!("{e}; send {{\"text\": \"…\"}}"),
        )
        .into_response(),
    }
}

async fn stop(State(s): Shared) -> Response {
    ask(&s, Command::Stop).await
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/events", get(events))
        .route("/api/faults", get(faults).post(inject).delete(heal_all))
        .route("/api/faults/{name}", delete(heal_one))
        .route("/api/rate", put(rate))
        .route("/api/notes", post(note))
        .route("/api/stop", post(stop))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Where the API may listen: loopback always; another address only when asked for with
/// `--listen` *and* a token chosen by the caller (so whoever can reach it was meant to).
pub fn check_bind(addr: SocketAddr, listen_given: bool, token_given: bool) -> Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if listen_given && token_given {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the game day's control API on {addr}, which is not a loopback address: anyone who reaches it could break the system. Give --listen {addr} together with --token (or BROWNOUT_GAMEDAY_TOKEN) to mean it, or use 127.0.0.1"
    ))
}

/// A fresh token: 32 random bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gameday::live::FaultView;

    fn catalog() -> Catalog {
        Catalog {
            kinds: vec![],
            presets: vec![],
        }
    }

    /// Serves the router on 127.0.0.1:0 with a fake loop that answers every command with what it
    /// was, and records them.
    async fn serve() -> (String, String, mpsc::Receiver<String>) {
        let (tx, mut rx) = mpsc::channel::<(Command, oneshot::Sender<Reply>)>(8);
        let (seen_tx, seen_rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some((cmd, reply)) = rx.recv().await {
                let what = cmd.describe();
                let _ = seen_tx.send(what.clone()).await;
                let _ = reply.send(Ok(serde_json::json!({ "done": what })));
            }
        });
        let mut view = View::default();
        view.faults.push(FaultView {
            name: "slow-pay".into(),
            kind: "proxy".into(),
            what: "latency".into(),
            since_s: 1.0,
        });
        let (_vtx, vrx) = watch::channel(view);
        std::mem::forget(_vtx);
        let token = new_token();
        let state = Arc::new(ApiState {
            token: token.clone(),
            commands: tx,
            view: vrx,
            fault_checks: crate::spec::gameday::FaultChecks::new(
                &crate::spec::load_system(
                    &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../scenarios/systems/checkout.toml"),
                )
                .unwrap(),
            ),
            catalog: catalog(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        (url, token, seen_rx)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    #[tokio::test]
    async fn every_call_without_the_token_is_refused_with_401() {
        let (url, token, _) = serve().await;
        // One hex digit off (the last one changed, whatever it was: appending "0" to the first
        // 63 would be the token itself one time in 16).
        let last = if token.ends_with('0') { "1" } else { "0" };
        let wrong_token = format!("{}{last}", &token[..63]);
        assert_ne!(wrong_token, token);
        let c = client();
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/api/status"),
            ("GET", "/api/faults"),
            ("POST", "/api/faults"),
            ("DELETE", "/api/faults"),
            ("DELETE", "/api/faults/x"),
            ("PUT", "/api/rate"),
            ("POST", "/api/notes"),
            ("POST", "/api/stop"),
        ] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let none = c
                .request(m.clone(), format!("{url}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(none.status(), 401, "{method} {path} without a token");
            let wrong = c
                .request(m.clone(), format!("{url}{path}"))
                .bearer_auth(&wrong_token)
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
        }
        // With it (header or query), the same calls get through.
        let ok = c
            .get(format!("{url}/api/status"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let page = c.get(format!("{url}/?token={token}")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("<title>"));
    }

    #[tokio::test]
    async fn actions_are_validated_then_handed_to_the_loop() {
        let (url, token, mut seen) = serve().await;
        let c = client();
        let r = c
            .post(format!("{url}/api/faults"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "slow-pay", "fault": {"kind": "proxy", "proxy": "payments", "toxic": {"kind": "latency", "latency": "6s"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(seen.recv().await.unwrap(), "inject slow-pay: proxy");
        // A fault the system cannot take never reaches the loop.
        let r = c
            .post(format!("{url}/api/faults"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"fault": {"kind": "proxy", "proxy": "nope", "toxic": {"kind": "latency", "latency": "6s"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("nope"));
        let r = c
            .post(format!("{url}/api/faults"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "../x", "fault": {"kind": "pool-exhaustion"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = c
            .put(format!("{url}/api/rate"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"rate": "fast"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = c
            .put(format!("{url}/api/rate"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"rate": 100}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(seen.recv().await.unwrap(), "rate 100");
        let r = c
            .delete(format!("{url}/api/faults/slow-pay"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(seen.recv().await.unwrap(), "heal slow-pay");
        let r = c
            .post(format!("{url}/api/notes"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"text": " "}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = c
            .post(format!("{url}/api/notes"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"text": "breaker opened"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(seen.recv().await.unwrap(), "note: breaker opened");
        let faults: serde_json::Value = c
            .get(format!("{url}/api/faults"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(faults["active"][0]["name"], "slow-pay");
    }

    #[test]
    fn non_loopback_binds_need_listen_and_a_chosen_token() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let lo6: SocketAddr = "[::1]:0".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_bind(lo, false, false).is_ok());
        assert!(check_bind(lo6, true, false).is_ok());
        assert!(check_bind(any, false, false)
            .unwrap_err()
            .contains("not a loopback"));
        assert!(check_bind(any, true, false).is_err());
        assert!(check_bind(any, false, true).is_err());
        assert!(check_bind(any, true, true).is_ok());
    }

    #[test]
    fn tokens_are_long_and_fresh_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..63]));
    }
}
