//! A mock Kubernetes API server for the platform's tests, as kube's own `mock_tests.rs` does it:
//! a `tower_test::mock::pair` behind a real `kube::Client`. Every request is recorded (method,
//! path and query, content type, JSON body) and answered by the test's function, with a JSON
//! object (and a status), or, for a watch, with newline-delimited watch events on a stream that
//! then stays open as an API server's does until its timeout, or ends (an API server closes a
//! watch after an `ERROR` event such as 410 Expired).
//!
//! It also models what the platform's code relies on from a real cluster: answers after a
//! delay ([`server_delayed`]), a watch that expires ([`expired`], then kube's watcher re-lists),
//! and the kubelet's event recorder, which bumps counts, aggregates similar events under the
//! `(combined from similar events): ` prefix and drops what its spam filter refuses
//! ([`EventRecorder`]).

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
    /// Watch events, then the stream ends, as an API server ends a watch after an `ERROR` event
    /// (its watch cache's `errWatcher` sends the one event and closes: kubernetes/kubernetes
    /// staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go, `newErrWatcher`).
    WatchThenEnd(Vec<serde_json::Value>),
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
pub fn server(answer: Answer) -> (kube::Client, Log) {
    server_delayed(answer, std::time::Duration::ZERO)
}

/// As [`server`], but every answer leaves `delay` after its request came in (requests are
/// answered concurrently, as an API server does), so that code does not rely on answers being
/// instant.
pub fn server_delayed(mut answer: Answer, delay: std::time::Duration) -> (kube::Client, Log) {
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
                Reply::Watch(events) => watch_response(events, false),
                Reply::WatchThenEnd(events) => watch_response(events, true),
            };
            if delay.is_zero() {
                send.send_response(resp.unwrap());
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    send.send_response(resp.unwrap());
                });
            }
        }
    });
    (kube::Client::new(service, "default"), log)
}

fn watch_response(events: Vec<serde_json::Value>, end: bool) -> http::Result<Response<MockBody>> {
    let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = events
        .into_iter()
        .map(|e| {
            let mut line = serde_json::to_vec(&e).unwrap();
            line.push(b'\n');
            Ok(hyper::body::Frame::data(Bytes::from(line)))
        })
        .collect();
    let body = if end {
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    } else {
        let stream = futures_util::stream::iter(frames).chain(futures_util::stream::pending());
        StreamBody::new(stream).boxed_unsync()
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
}

/// The watch event an API server sends when a watch's resourceVersion is older than what it
/// keeps (etcd compacted it, or the watch cache's window moved on): `ERROR` with a `Status` of
/// code 410, reason `Expired`, after which the watch ends. A client must list again (the
/// "410 Gone" of https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes);
/// kube-runtime's watcher does so on a 410 in the stream (kube-runtime src/watcher.rs,
/// `step_trampolined`: `WatchEvent::Error` with code 410 → `State::default()`, a new list).
pub fn expired() -> serde_json::Value {
    serde_json::json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
        "metadata": {}, "status": "Failure",
        "message": "too old resource version: 100 (4711)", "reason": "Expired", "code": 410}})
}

/// The prefix the event recorder puts on an aggregated event's message.
pub const COMBINED: &str = "(combined from similar events): ";

/// How the kubelet's event recorder (client-go tools/record, `EventCorrelator` in
/// events_cache.go) turns what it records about a pod into the Events the API server stores:
///
/// - the aggregator keys events by source, object, type and reason; once 10 different messages
///   (`defaultAggregateMaxEvents`) were seen for one key, every further one becomes a single
///   aggregated event, `(combined from similar events): <the latest message>`, with a name of
///   its own;
/// - the logger bumps `count` of an event seen before (the same key) instead of creating one;
/// - the spam filter lets 25 events per source and object through (`defaultSpamBurst`), then
///   one per 5 minutes (`defaultSpamQPS`); a test runs for less than that, so none here.
#[derive(Default)]
pub struct EventRecorder {
    /// (object, reason) → the different messages seen.
    messages: std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>>,
    /// Event key → the Event as stored.
    stored: std::collections::BTreeMap<String, serde_json::Value>,
    /// Object → events let through by the spam filter.
    sent: std::collections::BTreeMap<String, u32>,
    names: u32,
    /// The resourceVersion of the last write.
    rv: u32,
}

impl EventRecorder {
    pub const AGGREGATE_AFTER: usize = 10;
    pub const SPAM_BURST: u32 = 25;

    /// The Event about container `checkout` of `pod` as the API server holds it after the
    /// kubelet recorded `reason`/`message`, or `None` if the spam filter dropped it.
    pub fn record(&mut self, pod: &str, reason: &str, message: &str) -> Option<serde_json::Value> {
        let similar = self
            .messages
            .entry((pod.to_string(), reason.to_string()))
            .or_default();
        similar.insert(message.to_string());
        let (key, message) = if similar.len() < Self::AGGREGATE_AFTER {
            (format!("{pod}/{reason}/{message}"), message.to_string())
        } else {
            (format!("{pod}/{reason}"), format!("{COMBINED}{message}"))
        };
        let names = &mut self.names;
        let event = self.stored.entry(key).or_insert_with(|| {
            *names += 1;
            serde_json::json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": format!("{pod}.{:x}", 0x1880_0000_0000u64 + *names as u64),
                    "namespace": "brownout-r1"},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": "brownout-r1",
                    "fieldPath": "spec.containers{checkout}"},
                "reason": reason, "type": "Warning", "count": 0,
                "source": {"component": "kubelet", "host": "brownout-control-plane"}})
        });
        event["count"] = (event["count"].as_i64().unwrap_or(0) + 1).into();
        event["message"] = message.into();
        self.rv += 1;
        event["metadata"]["resourceVersion"] = (200 + self.rv).to_string().into();
        let event = event.clone();
        let sent = self.sent.entry(pod.to_string()).or_default();
        if *sent >= Self::SPAM_BURST {
            return None;
        }
        *sent += 1;
        Some(event)
    }
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
