//! The exchange against a real local server that answers byte for byte as each test scripts it:
//! every framing, interim answers, answers cut short, garbage, refused and silent servers.

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One piece of a scripted answer: bytes to write, then a pause.
enum Step {
    Write(Vec<u8>),
    Pause(Duration),
    /// Keep the connection open (and quiet) for this long before closing it.
    Hold(Duration),
}

fn w(s: &str) -> Step {
    Step::Write(s.as_bytes().to_vec())
}

/// A server for one connection: reads the request's head (and a body of its content-length),
/// plays `steps`, then closes. Returns the target and the request it received.
async fn serve(steps: Vec<Step>) -> (Target, tokio::task::JoinHandle<String>) {
    let (target, server) = serve_each(vec![steps]).await;
    let one = tokio::spawn(async move { server.await.unwrap().pop().unwrap_or_default() });
    (target, one)
}

/// A server for one connection per script, one after the other; returns the requests received.
async fn serve_each(scripts: Vec<Vec<Step>>) -> (Target, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut requests = Vec::new();
        for steps in scripts {
            let (mut s, _) = listener.accept().await.unwrap();
            requests.push(read_request(&mut s).await);
            for step in steps {
                match step {
                    Step::Write(bytes) => {
                        if s.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Step::Pause(d) => tokio::time::sleep(d).await,
                    Step::Hold(d) => tokio::time::sleep(d).await,
                }
            }
        }
        requests
    });
    let target = Target::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    (target, server)
}

/// A request's head and a body of its content-length, as text.
async fn read_request(s: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let want = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let head_len = text.find("\r\n\r\n").map_or(0, |i| i + 4);
    while got.len() < head_len + want {
        let n = s.read(&mut b).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&got).to_string()
}

/// A GET to a server that plays `steps`, with a 2 s timeout.
async fn get_from(steps: Vec<Step>) -> Result<Answer, NoAnswer> {
    let (target, _server) = serve(steps).await;
    exchange(&target, &get("a"), 2 * SECOND).await
}

fn get(id: &str) -> Request<'_> {
    Request {
        method: "GET",
        path: "/api/catalog",
        request_id: id,
        idempotency_key: None,
        body: None,
    }
}

const SECOND: Duration = Duration::from_secs(1);

fn answer(status: u16) -> Answer {
    Answer {
        status,
        upstream: None,
        header_time: None,
        retry_after: None,
    }
}

#[tokio::test]
async fn the_request_carries_the_path_ids_and_body_as_reqwest_sent_them() {
    let (target, server) =
        serve(vec![w("HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")]).await;
    let req = Request {
        method: "POST",
        path: "/shop/api/checkout",
        request_id: "bo-1-7-1",
        idempotency_key: Some("bo-1-7-key"),
        body: Some(r#"{"item_id": 1}"#),
    };
    assert_eq!(exchange(&target, &req, SECOND).await, Ok(answer(201)));
    let got = server.await.unwrap();
    assert_eq!(
        got,
        format!(
            "POST /shop/api/checkout HTTP/1.1\r\nhost: {}\r\naccept: */*\r\nx-request-id: bo-1-7-1\r\n\
             idempotency-key: bo-1-7-key\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{{\"item_id\": 1}}",
            target.host
        )
    );
}

#[tokio::test]
async fn a_body_of_a_given_length_is_read_to_its_end_across_writes() {
    let got = get_from(vec![
        w("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nX-Brownout-Upstream: 127.0.0.1:4001\r\n"),
        Step::Pause(Duration::from_millis(20)),
        w("x-brownout-upstream-header-time: 0.004\r\ncontent-length: 10\r\n\r\nhello"),
        Step::Pause(Duration::from_millis(20)),
        w("world"),
        // The server does not close: the answer is complete at its length.
        Step::Hold(Duration::from_secs(5)),
    ]).await;
    assert_eq!(
        got,
        Ok(Answer {
            status: 503,
            upstream: Some("127.0.0.1:4001".into()),
            header_time: Some("0.004".into()),
            retry_after: Some("2".into()),
        })
    );
}

#[tokio::test]
async fn a_chunked_body_with_trailers_is_read_byte_by_byte() {
    let body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
    let mut steps: Vec<Step> = body.bytes().map(|b| Step::Write(vec![b])).collect();
    steps.push(Step::Hold(Duration::from_secs(5)));
    assert_eq!(get_from(steps).await, Ok(answer(200)));
}

#[tokio::test]
async fn a_body_without_framing_ends_when_the_server_closes() {
    assert_eq!(
        get_from(vec![
            w("HTTP/1.1 500 Internal Server Error\r\n\r\nsomething broke"),
            Step::Pause(Duration::from_millis(50)),
            w(" badly"),
        ])
        .await,
        Ok(answer(500))
    );
}

#[tokio::test]
async fn no_content_and_interim_answers_are_read_right() {
    // 204 has no body even if the server keeps the connection open.
    assert_eq!(
        get_from(vec![
            w("HTTP/1.1 204 No Content\r\n\r\n"),
            Step::Hold(Duration::from_secs(5)),
        ])
        .await,
        Ok(answer(204))
    );
    // 103 Early Hints, then the final answer.
    assert_eq!(
        get_from(vec![
            w("HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"),
            w("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            Step::Hold(Duration::from_secs(5)),
        ])
        .await,
        Ok(answer(200))
    );
    // A HEAD's answer announces a length it does not send.
    let (target, _server) = serve(vec![
        w("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"),
        Step::Hold(Duration::from_secs(5)),
    ])
    .await;
    let head = Request {
        method: "HEAD",
        ..get("a")
    };
    assert_eq!(exchange(&target, &head, 2 * SECOND).await, Ok(answer(200)));
}

#[tokio::test]
async fn answers_cut_short_or_not_http_are_closed() {
    let cases: Vec<(&str, Vec<Step>)> = vec![
        ("closed before any answer", vec![]),
        (
            "closed inside the head",
            vec![w("HTTP/1.1 200 OK\r\ncontent-len")],
        ),
        (
            "closed before the length",
            vec![w("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")],
        ),
        (
            "closed inside a chunk",
            vec![w(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            )],
        ),
        (
            "a chunk without its CRLF",
            vec![w(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
            )],
        ),
        ("not HTTP", vec![w("SSH-2.0-OpenSSH_9.2\r\n\r\n")]),
        (
            "two lengths",
            vec![w(
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nok",
            )],
        ),
        (
            "a length that is not a number",
            vec![w("HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n")],
        ),
        (
            "a length with a sign (hyper reads digits only)",
            vec![w("HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok")],
        ),
        (
            "a status below 100",
            vec![w("HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n")],
        ),
        (
            "a transfer coding on an HTTP/1.0 answer",
            vec![w(
                "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            )],
        ),
    ];
    for (what, steps) in cases {
        assert_eq!(get_from(steps).await, Err(NoAnswer::Closed), "{what}");
    }
}

#[tokio::test]
async fn a_head_larger_than_the_limit_is_refused_not_buffered_forever() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\n",
        "a".repeat(MAX_HEAD_BYTES + 10)
    );
    let (target, _server) = serve(vec![
        Step::Write(big.into_bytes()),
        Step::Hold(Duration::from_secs(5)),
    ])
    .await;
    assert_eq!(
        exchange(&target, &get("a"), 3 * SECOND).await,
        Err(NoAnswer::Closed)
    );
}

#[tokio::test]
async fn headers_are_read_as_reqwest_read_them() {
    // First of duplicates, names in any case, values with bytes outside visible ASCII dropped.
    let head = b"HTTP/1.1 502 Bad Gateway\r\nX-BROWNOUT-UPSTREAM: 127.0.0.1:4002\r\nx-brownout-upstream: 127.0.0.1:4003\r\nretry-after: caf\xc3\xa9\r\ncontent-length: 0\r\n\r\n".to_vec();
    assert_eq!(
        get_from(vec![Step::Write(head)]).await,
        Ok(Answer {
            status: 502,
            upstream: Some("127.0.0.1:4002".into()),
            header_time: None,
            retry_after: None,
        })
    );
}

#[tokio::test]
async fn a_refused_connection_and_a_silent_server_are_told_apart() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let target = Target::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    assert_eq!(
        exchange(&target, &get("a"), SECOND).await,
        Err(NoAnswer::Connect)
    );
    let (target, _server) = serve(vec![Step::Hold(Duration::from_secs(5))]).await;
    assert_eq!(
        exchange(&target, &get("a"), Duration::from_millis(300)).await,
        Err(NoAnswer::Timeout)
    );
    // A server that dribbles an answer slower than the timeout: a timeout too.
    let steps = std::iter::once(w("HTTP/1.1 200 OK\r\nx-slow: "))
        .chain((0..50).flat_map(|_| [w("a"), Step::Pause(Duration::from_millis(50))]))
        .collect();
    let (target, _server) = serve(steps).await;
    assert_eq!(
        exchange(&target, &get("a"), Duration::from_millis(300)).await,
        Err(NoAnswer::Timeout)
    );
}

#[tokio::test]
async fn answers_hyper_takes_are_taken() {
    // A list of one length, as hyper reads it.
    let got = get_from(vec![
        w("HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok"),
        Step::Hold(Duration::from_secs(5)),
    ])
    .await;
    assert_eq!(got, Ok(answer(200)));
    // 101 is a final answer for hyper, with no body.
    let got = get_from(vec![
        w("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"),
        Step::Hold(Duration::from_secs(5)),
    ])
    .await;
    assert_eq!(got, Ok(answer(101)));
}

/// reqwest followed redirects (its default policy, tower-http's method rules); the driver does
/// too, on the target's origin only.
#[tokio::test]
async fn redirects_on_the_same_origin_are_followed_as_reqwest_followed_them() {
    let checkout = Request {
        method: "POST",
        path: "/api/checkout",
        request_id: "bo-1-7-1",
        idempotency_key: Some("bo-1-7-key"),
        body: Some("{}"),
    };
    // 302 turns the POST into a GET without its body; 307 keeps both.
    let (got, requests, host) = redirected(
        "HTTP/1.1 302 Found\r\nlocation: /api/orders/1?x=1\r\ncontent-length: 0\r\n\r\n",
        &checkout,
    )
    .await;
    assert_eq!(got, Ok(answer(200)));
    let second = &requests[1];
    assert!(
        second.starts_with("GET /api/orders/1?x=1 HTTP/1.1\r\n"),
        "{second}"
    );
    assert!(second.contains("x-request-id: bo-1-7-1\r\n"), "{second}");
    let referer = format!("referer: http://{host}/api/checkout\r\n");
    assert!(second.contains(&referer), "{second}");
    assert!(!second.contains("content-length"), "{second}");
    let (got, requests, _) = redirected(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: ../api/retry\r\ncontent-length: 0\r\n\r\n",
        &checkout,
    )
    .await;
    assert_eq!(got, Ok(answer(200)));
    let second = &requests[1];
    assert!(
        second.starts_with("POST /api/retry HTTP/1.1\r\n"),
        "{second}"
    );
    assert!(second.ends_with("content-length: 2\r\n\r\n{}"), "{second}");
    // Another origin (here another port): not followed, the redirect is the answer.
    let (target, server) = serve_each(vec![vec![w(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:1/elsewhere\r\n\r\n",
    )]])
    .await;
    assert_eq!(
        exchange(&target, &checkout, 2 * SECOND).await,
        Ok(answer(307))
    );
    assert_eq!(server.await.unwrap().len(), 1);
    // Redirects without end: reqwest's "too many redirects" after 10.
    let hop = || {
        vec![w(
            "HTTP/1.1 302 Found\r\nlocation: /again\r\ncontent-length: 0\r\n\r\n",
        )]
    };
    let (target, server) = serve_each((0..=MAX_REDIRECTS).map(|_| hop()).collect()).await;
    assert_eq!(
        exchange(&target, &get("a"), 2 * SECOND).await,
        Err(NoAnswer::Redirects)
    );
    assert_eq!(server.await.unwrap().len(), MAX_REDIRECTS + 1);
}

/// `request` to a server that answers `redirect`, then 200 on the next connection: the outcome,
/// the requests the server received and the target's host.
async fn redirected(
    redirect: &str,
    request: &Request<'_>,
) -> (Result<Answer, NoAnswer>, Vec<String>, String) {
    let (target, server) = serve_each(vec![
        vec![w(redirect)],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")],
    ])
    .await;
    let got = exchange(&target, request, 2 * SECOND).await;
    (got, server.await.unwrap(), target.host.clone())
}

#[tokio::test]
async fn every_address_of_the_target_is_tried_in_turn() {
    let (mut target, _server) =
        serve(vec![w("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")]).await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nothing = refused.local_addr().unwrap();
    drop(refused);
    target.addrs.insert(0, nothing);
    assert_eq!(
        exchange(&target, &get("a"), 2 * SECOND).await,
        Ok(answer(200))
    );
}

#[test]
fn base_urls_give_the_address_host_and_request_targets() {
    let t = Target::parse("http://127.0.0.1:8080/shop/").unwrap();
    assert_eq!(t.addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(t.host, "127.0.0.1:8080");
    assert_eq!(t.origin_form("/api/x?y=1").unwrap(), "/shop/api/x?y=1");
    // Normalised as reqwest's URL was: dot segments resolved, spaces and non-ASCII encoded.
    assert_eq!(
        t.origin_form("/a/../b/caf\u{e9} x").unwrap(),
        "/shop/b/caf%C3%A9%20x"
    );
    let t = Target::parse("http://127.0.0.1").unwrap();
    assert_eq!((t.addrs[0].port(), t.host.as_str()), (80, "127.0.0.1"));
    assert_eq!(t.origin_form("/").unwrap(), "/");
    let t = Target::parse("http://[::1]:9/").unwrap();
    assert_eq!(
        (t.addrs[0], t.host.as_str()),
        ("[::1]:9".parse().unwrap(), "[::1]:9")
    );
    let t = Target::parse("http://localhost:9").unwrap();
    assert!(t.addrs.iter().all(|a| a.ip().is_loopback()), "{t:?}");
    for bad in ["https://127.0.0.1:8443", "127.0.0.1:80", "http://"] {
        assert!(Target::parse(bad).is_err(), "{bad}");
    }
}

/// What a send costs while it waits for its answer is this future, a socket, and no buffer (the
/// answer's buffer is made when the socket is readable; `just bench inflight` measures the whole
/// cost against reqwest and hyper).
#[tokio::test]
async fn a_send_waiting_for_its_answer_is_a_small_state() {
    let (target, _server) = serve(vec![Step::Hold(Duration::from_secs(5))]).await;
    let req = get("a");
    let fut = exchange(&target, &req, SECOND);
    assert!(
        std::mem::size_of_val(&fut) < 1024,
        "the exchange's state is {} bytes",
        std::mem::size_of_val(&fut)
    );
}
