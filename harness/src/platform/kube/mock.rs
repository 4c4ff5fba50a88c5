//! A mock Kubernetes API server for the platform's tests, as kube's own `mock_tests.rs` does it:
//! a `tower_test::mock::pair` behind a real `kube::Client`. Every request is recorded (method,
//! path and query, content type, JSON body) and answered by the test's function, with a JSON
//! object (and a status), or, for a watch, with newline-delimited watch events on a stream that
//! then stays open as an API server's does until its timeout.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use kube::client::Body;
use std::sync::{Arc, Mutex};
use tower_test::mock;

/// One request the mock API server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path_and_query: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

impl Seen {
    pub fn is_watch(&self) -> bool {
        self.path_and_query.contains("watch=true")
    }
}

/// What the mock answers.
pub enum Reply {
    Json(StatusCode, serde_json::Value),
    /// Watch events (`{"type": "ADDED", "object": …}`), then the stream stays open.
    Watch(Vec<serde_json::Value>),
}

pub type Answer = Box<dyn FnMut(&Seen) -> Reply + Send>;

type MockBody = UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// Requests seen so far, shared with the serving task.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    /// The requests that are not watches (lists, gets, applies, deletes), in order.
    pub fn calls(&self) -> Vec<Seen> {
        self.all().into_iter().filter(|s| !s.is_watch()).collect()
    }
}

/// A client talking to a mock API server that answers every request with `answer` until the
/// client is dropped.
pub fn server(mut answer: Answer) -> (kube::Client, Log) {
    let (service, handle) = mock::pair::<Request<Body>, Response<MockBody>>();
    let log = Log::default();
    let seen_log = log.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let s = Seen {
                method: parts.method,
                path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or_default(),
            };
            let reply = answer(&s);
            seen_log.0.lock().unwrap().push(s);
            let resp = match reply {
                Reply::Json(status, json) => Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(
                        http_body_util::Full::new(Bytes::from(serde_json::to_vec(&json).unwrap()))
                            .boxed_unsync(),
                    ),
                Reply::Watch(events) => {
                    let frames = events.into_iter().map(|e| {
                        let mut line = serde_json::to_vec(&e).unwrap();
                        line.push(b'\n');
                        Ok(hyper::body::Frame::data(Bytes::from(line)))
                    });
                    let stream =
                        futures_util::stream::iter(frames).chain(futures_util::stream::pending());
                    Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "application/json")
                        .body(StreamBody::new(stream).boxed_unsync())
                }
            };
            send.send_response(resp.unwrap());
        }
    });
    (kube::Client::new(service, "default"), log)
}

/// What an API server answers to an apply: the object, with server-set metadata.
pub fn applied(s: &Seen) -> Reply {
    let mut o = s.body.clone();
    o["metadata"]["uid"] = "3f6c2b0e-0000-4000-8000-000000000001".into();
    o["metadata"]["resourceVersion"] = "4711".into();
    o["metadata"]["creationTimestamp"] = "2026-11-23T20:00:00Z".into();
    Reply::Json(StatusCode::OK, o)
}

/// A list of `kind` (e.g. "PodList") with `items`, at resourceVersion 100.
pub fn list(kind: &str, api_version: &str, items: Vec<serde_json::Value>) -> Reply {
    Reply::Json(
        StatusCode::OK,
        serde_json::json!({"kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": "100"}, "items": items}),
    )
}

pub fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::Json(
        StatusCode::from_u16(code).unwrap(),
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}
