//! One send on the wire: the load driver's HTTP/1.1 exchange. A new connection per send (see
//! [`super::start_steered`] for why), the request written as bytes, the answer's head read with
//! `httparse` (the parser hyper itself uses) and its body read to its end by the framing HTTP/1.1
//! gives it (RFC 9112 §6.3: none, `Content-Length`, chunked, or until the server closes) and
//! thrown away. Only the status and three headers are kept ([`Answer`]).
//!
//! Why not reqwest or hyper's client: during a fault an open-model driver holds thousands of sends
//! in flight (rate × how long the system takes to answer), and what each one costs while it waits
//! is what the harness's memory does during a fault. Measured on this machine
//! (`just bench inflight`): about 27 KB per send waiting for its answer with reqwest, about 17 KB
//! with hyper's `client::conn` (it reserves an 8 KiB read buffer and an 8 KiB header buffer per
//! connection, and neither can be made smaller without capping the answer's head at that size).
//! Here nothing is allocated for the answer until the socket is readable
//! ([`tokio::net::TcpStream::readable`]), so a send waiting for an answer holds a socket and a
//! small task.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Headers the driver reads from an answer; a larger head is refused, as hyper refuses one over
/// its default buffer limit.
const MAX_HEADERS: usize = 100;
const MAX_HEAD_BYTES: usize = 400 * 1024;
/// How much is read from the socket at a time once it is readable.
const READ_CHUNK: usize = 4096;

/// Where the load goes: the ingress's address (resolved once, when the load starts), the `Host`
/// header, and the base URL each request's path is joined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    addr: SocketAddr,
    host: String,
    base: String,
}

impl Target {
    /// `http://HOST[:PORT][/PREFIX]`, as the platform gives the ingress's URL.
    pub fn parse(base_url: &str) -> Result<Target, String> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| format!("the load's base URL '{base_url}': {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "the load's base URL '{base_url}': only http:// is supported (the ingress the platform starts)"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("the load's base URL '{base_url}' has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| format!("the load's base URL '{base_url}': {e}"))?
            .next()
            .ok_or_else(|| format!("the load's base URL '{base_url}': {host} has no address"))?;
        Ok(Target {
            addr,
            host: match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            },
            base: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// The request line's target for `path` (origin-form, `/p?q`): the base URL and the path
    /// joined and normalised as a URL parser does (dot segments resolved, characters outside
    /// the path set percent-encoded), once per request when the load starts.
    pub fn origin_form(&self, path: &str) -> Result<String, String> {
        let url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| format!("request path '{path}': {e}"))?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        })
    }
}

/// One request as the driver sends it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Upper case, as validated in the scenario (`GET`, `POST`, …).
    pub method: &'a str,
    /// Origin-form, from [`Target::origin_form`].
    pub path: &'a str,
    pub request_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// Sent as `application/json`.
    pub body: Option<&'a str>,
}

impl Request<'_> {
    /// The request's bytes: the same headers reqwest sent (`host`, `accept: */*`, the body's
    /// `content-type` and `content-length`) plus the driver's own.
    fn encode(&self, target: &Target) -> Vec<u8> {
        use std::fmt::Write;
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "{} {} HTTP/1.1\r\nhost: {}\r\naccept: */*\r\nx-request-id: {}\r\n",
            self.method, self.path, target.host, self.request_id
        );
        if let Some(k) = self.idempotency_key {
            let _ = write!(head, "idempotency-key: {k}\r\n");
        }
        if let Some(b) = self.body {
            let _ = write!(
                head,
                "content-type: application/json\r\ncontent-length: {}\r\n",
                b.len()
            );
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some(b) = self.body {
            bytes.extend_from_slice(b.as_bytes());
        }
        bytes
    }
}

/// What the driver keeps of an answer: its status and the headers it judges by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// [`super::UPSTREAM_ADDR_HEADER`].
    pub upstream: Option<String>,
    /// [`super::UPSTREAM_HEADER_TIME_HEADER`].
    pub header_time: Option<String>,
    pub retry_after: Option<String>,
}

/// Why a send got no complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// No complete answer within the load's timeout (connecting included).
    Timeout,
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// The connection ended, or carried something that is not an HTTP/1.1 answer, before the
    /// answer was complete.
    Closed,
}

impl NoAnswer {
    /// The word the evidence records ([`crate::evidence::CLIENT_ERRORS`]).
    pub fn as_str(self) -> &'static str {
        match self {
            NoAnswer::Timeout => "timeout",
            NoAnswer::Connect => "connect",
            NoAnswer::Closed => "closed",
        }
    }
}

/// Sends `request` to `target` on a new connection and reads the whole answer, within `timeout`.
pub async fn exchange(
    target: &Target,
    request: &Request<'_>,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    tokio::time::timeout(timeout, exchange_on_new_connection(target, request))
        .await
        .unwrap_or(Err(NoAnswer::Timeout))
}

async fn exchange_on_new_connection(
    target: &Target,
    request: &Request<'_>,
) -> Result<Answer, NoAnswer> {
    let mut stream = TcpStream::connect(target.addr)
        .await
        .map_err(|_| NoAnswer::Connect)?;
    let _ = stream.set_nodelay(true);
    let bytes = request.encode(target);
    stream
        .write_all(&bytes)
        .await
        .map_err(|_| NoAnswer::Closed)?;
    drop(bytes);
    read_answer(&mut stream, request.method == "HEAD").await
}

/// How the answer's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed head: the answer, where its body starts in the buffer, how the body ends.
#[derive(Debug)]
struct Head {
    answer: Answer,
    len: usize,
    framing: Framing,
}

async fn read_answer(stream: &mut TcpStream, to_head: bool) -> Result<Answer, NoAnswer> {
    // Nothing is allocated until the server has said something.
    let mut buf: Vec<u8> = Vec::new();
    let head = loop {
        if let Some(head) = parse_head(&buf, to_head)? {
            // Interim answers (1xx: 100 Continue, 103 Early Hints) come before the final one.
            if (100..200).contains(&head.answer.status) {
                buf.drain(..head.len);
                continue;
            }
            break head;
        }
        if buf.len() > MAX_HEAD_BYTES || read_some(stream, &mut buf).await? == 0 {
            return Err(NoAnswer::Closed);
        }
    };
    buf.drain(..head.len);
    match head.framing {
        Framing::None => {}
        Framing::Length(mut left) => {
            let mut have = buf.len() as u64;
            loop {
                left = left.saturating_sub(have);
                if left == 0 {
                    break;
                }
                buf.clear();
                have = read_some(stream, &mut buf).await? as u64;
                if have == 0 {
                    return Err(NoAnswer::Closed);
                }
            }
        }
        Framing::Chunked => {
            let mut state = Chunks::Size;
            loop {
                let used = state.advance(&buf)?;
                buf.drain(..used);
                if state == Chunks::Done {
                    break;
                }
                if used == 0 && read_some(stream, &mut buf).await? == 0 {
                    return Err(NoAnswer::Closed);
                }
            }
        }
        Framing::UntilClose => loop {
            buf.clear();
            if read_some(stream, &mut buf).await? == 0 {
                break;
            }
        },
    }
    Ok(head.answer)
}

/// Waits until the socket is readable, then reads what it has onto `buf`; 0 at the end.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, NoAnswer> {
    loop {
        stream.readable().await.map_err(|_| NoAnswer::Closed)?;
        buf.reserve(READ_CHUNK);
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(NoAnswer::Closed),
        }
    }
}

/// The head at the start of `buf`, if it is all there; an error if it is not HTTP/1.x.
fn parse_head(buf: &[u8], to_head: bool) -> Result<Option<Head>, NoAnswer> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(NoAnswer::Closed),
    };
    let status = response.code.ok_or(NoAnswer::Closed)?;
    // The first value of a header, if it is visible ASCII (what `HeaderValue::to_str` accepts).
    let first = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| {
                h.value
                    .iter()
                    .all(|&b| b == b'\t' || (32..127).contains(&b))
                    .then(|| String::from_utf8_lossy(h.value).into_owned())
            })
    };
    let framing = if to_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if let Some(te) = response
        .headers
        .iter()
        .rfind(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        let last = te.value.rsplit(|&b| b == b',').next().unwrap_or_default();
        if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        let mut length = None;
        for h in response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        {
            let n: u64 = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(NoAnswer::Closed)?;
            if length.is_some_and(|l| l != n) {
                return Err(NoAnswer::Closed);
            }
            length = Some(n);
        }
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    let answer = Answer {
        status,
        upstream: first(super::UPSTREAM_ADDR_HEADER),
        header_time: first(super::UPSTREAM_HEADER_TIME_HEADER),
        retry_after: first("retry-after"),
    };
    Ok(Some(Head {
        answer,
        len,
        framing,
    }))
}

/// Where a chunked body is: reading a chunk's size line, its data, the CRLF after the data, or
/// the trailer section after the last chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunks {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl Chunks {
    /// Consumes what it can of `buf`; returns how many bytes it used (0: it needs more).
    fn advance(&mut self, buf: &[u8]) -> Result<usize, NoAnswer> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match *self {
                Chunks::Done => return Ok(used),
                Chunks::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, 0))) => {
                        used += n;
                        *self = Chunks::Trailers;
                    }
                    Ok(httparse::Status::Complete((n, size))) => {
                        used += n;
                        *self = Chunks::Data(size);
                    }
                    Ok(httparse::Status::Partial) => return Ok(used),
                    Err(_) => return Err(NoAnswer::Closed),
                },
                Chunks::Data(left) => {
                    let n = (rest.len() as u64).min(left);
                    if n == 0 {
                        return Ok(used);
                    }
                    used += n as usize;
                    *self = if n == left {
                        Chunks::DataEnd
                    } else {
                        Chunks::Data(left - n)
                    };
                }
                Chunks::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(used);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(NoAnswer::Closed);
                    }
                    used += 2;
                    *self = Chunks::Size;
                }
                // Trailer fields, each a line, then an empty line.
                Chunks::Trailers => match rest.windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        used += 2;
                        *self = Chunks::Done;
                    }
                    Some(i) => used += i + 2,
                    None => return Ok(used),
                },
            }
        }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
