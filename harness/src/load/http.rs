//! One send on the wire: the load driver's HTTP/1.1 exchange. A new connection per send (see
//! [`super::start_steered`] for why), the request written as bytes, the answer's head read with
//! `httparse` (the parser hyper itself uses) and its body read to its end by the framing HTTP/1.1
//! gives it (RFC 9112 §6.3: none, `Content-Length`, chunked, or until the server closes) and
//! thrown away. Only the status and three headers are kept ([`Answer`]). Redirects are followed
//! as reqwest followed them (up to 10; 301/302 turn a POST into a GET, 303 anything but HEAD),
//! but only on the target's own origin: the load goes nowhere else, so a redirect to another
//! host is recorded as the answer.
//!
//! Why not reqwest or hyper's client: during a fault an open-model driver holds thousands of sends
//! in flight (rate × how long the system takes to answer), and what each one costs while it waits
//! is what the harness's memory does during a fault. Measured on this machine
//! (`just bench inflight`): about 23 KB per send waiting for its answer with reqwest, about 15 KB
//! with hyper's `client::conn` (it reserves an 8 KiB read buffer and an 8 KiB header buffer per
//! connection, and neither can be made smaller without capping the answer's head at that size),
//! about 2 KB here: nothing is allocated for the answer until the socket is readable
//! ([`tokio::net::TcpStream::readable`]), so a send waiting for an answer holds a socket and a
//! small task.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Headers the driver reads from an answer; a larger head is refused, as hyper refuses one over
/// its default buffer limit.
const MAX_HEADERS: usize = 100;
/// hyper's default read-buffer limit (8 KiB + 100 × 4 KiB, `proto/h1/io.rs`).
const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// reqwest's default redirect policy (`redirect::Policy::default`, `limited(10)`).
const MAX_REDIRECTS: usize = 10;
/// How much is read from the socket at a time once it is readable.
const READ_CHUNK: usize = 4096;

/// Where the load goes: the ingress's address (resolved once, when the load starts), the `Host`
/// header, and the base URL each request's path is joined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Every address the host has, tried in turn (as hyper-util's connector does).
    addrs: Vec<SocketAddr>,
    host: String,
    base: String,
    url: reqwest::Url,
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
        let addrs: Vec<SocketAddr> = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| format!("the load's base URL '{base_url}': {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!(
                "the load's base URL '{base_url}': {host} has no address"
            ));
        }
        Ok(Target {
            addrs,
            url: url.clone(),
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
        Ok(origin_form_of(&url))
    }

    /// The URL of `path` (origin-form) on this target.
    fn url_of(&self, path: &str) -> Option<reqwest::Url> {
        self.url.join(path).ok()
    }

    /// Where a redirect from `from` to `location` goes, if it stays on this target's origin.
    fn redirect(&self, from: &str, location: &str) -> Option<reqwest::Url> {
        let next = self.url_of(from)?.join(location).ok()?;
        (next.scheme() == self.url.scheme()
            && next.host_str() == self.url.host_str()
            && next.port_or_known_default() == self.url.port_or_known_default())
        .then_some(next)
    }

    async fn connect(&self) -> Result<TcpStream, NoAnswer> {
        for addr in &self.addrs {
            if let Ok(s) = TcpStream::connect(addr).await {
                return Ok(s);
            }
        }
        Err(NoAnswer::Connect)
    }
}

/// `/path?query` of a URL, as a request line carries it.
fn origin_form_of(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
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
    fn encode(&self, target: &Target, referer: Option<&str>) -> Vec<u8> {
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
        if let Some(r) = referer {
            let _ = write!(head, "referer: {r}\r\n");
        }
        if let Some(b) = self.body {
            head.push_str("content-type: application/json\r\n");
            // reqwest sent no length for an empty body.
            if !b.is_empty() {
                let _ = write!(head, "content-length: {}\r\n", b.len());
            }
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
    /// More than [`MAX_REDIRECTS`] redirects in a row.
    Redirects,
}

impl NoAnswer {
    /// The word the evidence records ([`crate::evidence::CLIENT_ERRORS`]).
    pub fn as_str(self) -> &'static str {
        match self {
            NoAnswer::Timeout => "timeout",
            NoAnswer::Connect => "connect",
            NoAnswer::Closed => "closed",
            // reqwest's "too many redirects" was neither of the above.
            NoAnswer::Redirects => "other",
        }
    }
}

/// Sends `request` to `target` on a new connection and reads the whole answer, within `timeout`.
pub async fn exchange(
    target: &Target,
    request: &Request<'_>,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    tokio::time::timeout(timeout, following_redirects(target, request))
        .await
        .unwrap_or(Err(NoAnswer::Timeout))
}

/// The exchange, and those its redirects lead to on the target's origin (each on a new
/// connection, within the one timeout, as reqwest did).
async fn following_redirects(target: &Target, request: &Request<'_>) -> Result<Answer, NoAnswer> {
    let (mut method, mut body) = (request.method, request.body);
    let mut path = request.path.to_string();
    let mut referer: Option<String> = None;
    for _ in 0..=MAX_REDIRECTS {
        let hop = Request {
            method,
            path: &path,
            body,
            ..*request
        };
        let (answer, location) = exchange_once(target, &hop, referer.as_deref()).await?;
        let next = match (answer.status, location) {
            (301 | 302 | 303 | 307 | 308, Some(l)) => target.redirect(&path, &l),
            _ => None,
        };
        let Some(next) = next else {
            return Ok(answer);
        };
        // tower-http's FollowRedirect rules, which reqwest applies.
        match answer.status {
            301 | 302 if method == "POST" => (method, body) = ("GET", None),
            303 if method != "HEAD" => (method, body) = ("GET", None),
            _ => {}
        }
        referer = target.url_of(&path).map(|mut u| {
            u.set_fragment(None);
            u.to_string()
        });
        path = origin_form_of(&next);
    }
    Err(NoAnswer::Redirects)
}

/// One request on a new connection: the answer and its `Location`, if any.
async fn exchange_once(
    target: &Target,
    request: &Request<'_>,
    referer: Option<&str>,
) -> Result<(Answer, Option<String>), NoAnswer> {
    let mut stream = target.connect().await?;
    let _ = stream.set_nodelay(true);
    let bytes = request.encode(target, referer);
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
    location: Option<String>,
    len: usize,
    framing: Framing,
}

async fn read_answer(
    stream: &mut TcpStream,
    to_head: bool,
) -> Result<(Answer, Option<String>), NoAnswer> {
    // Nothing is allocated until the server has said something.
    let mut buf: Vec<u8> = Vec::new();
    let head = loop {
        // Only once the head's end is there: parsing is not repeated for every read of a large head.
        if head_may_be_complete(&buf) {
            if let Some(head) = parse_head(&buf, to_head)? {
                // Interim answers (100 Continue, 103 Early Hints) come before the final one;
                // hyper takes a 101 as final.
                if head.answer.status != 101 && (100..200).contains(&head.answer.status) {
                    buf.drain(..head.len);
                    continue;
                }
                break head;
            }
        }
        if buf.len() >= MAX_HEAD_BYTES || read_some(stream, &mut buf).await? == 0 {
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
    Ok((head.answer, head.location))
}

/// Whether `buf` holds an empty line (the end of a head), as hyper checks before parsing.
fn head_may_be_complete(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(3).any(|w| w == b"\n\r\n")
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
    // hyper refuses a status below 100 (`http::StatusCode`); httparse would take it.
    let status = response
        .code
        .filter(|c| *c >= 100)
        .ok_or(NoAnswer::Closed)?;
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
        // HTTP/1.0 has no transfer codings: hyper refuses the answer.
        if response.version == Some(0) {
            return Err(NoAnswer::Closed);
        }
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
            // As hyper reads it: digits only, and a list ("5, 5") of one value.
            for v in h.value.split(|&b| b == b',') {
                let v = v.trim_ascii();
                let n: u64 = (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(v).ok()?.parse().ok())
                    .flatten()
                    .ok_or(NoAnswer::Closed)?;
                if length.is_some_and(|l| l != n) {
                    return Err(NoAnswer::Closed);
                }
                length = Some(n);
            }
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
        location: first("location"),
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
