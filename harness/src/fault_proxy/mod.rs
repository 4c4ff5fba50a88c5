//! The fault proxy: a TCP proxy (tokio) placed in front of a dependency (the payments upstream,
//! PostgreSQL, anything TCP) that can make it misbehave for real, Toxiproxy-style. Toxics are
//! switched on and off at run time: added latency with jitter, a timeout (accept and hold without
//! answering, optionally closing later), connection reset, refusal (accept then RST), the upstream
//! being down (nothing listens), and a bandwidth limit. Each toxic applies to a fraction of
//! connections, chosen by a seeded random generator so a run can be repeated. Toxics are re-read
//! for every chunk, so they also hit connections opened before they were switched on (clients keep
//! pooled connections). Latency and bandwidth act on data flowing back to the client.
//!
//! The upstream is a list of `host:port` addresses, resolved at each new connection and taken in
//! turn: one service address (a Kubernetes Service's DNS name), or the ready endpoints of a service
//! that a platform keeps current ([`FaultProxy::set_upstreams`]). With none, a new connection is
//! reset at once, like a Service without endpoints.

pub use crate::faults::toxic::{Toxic, ToxicKind};
pub mod api;
pub mod client;

use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Whether `addr` is `host:port` (a name or an address, resolved at each connection; port > 0):
/// what an upstream must look like, on the command line and in the API alike.
pub fn is_host_port(addr: &str) -> bool {
    matches!(addr.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// The toxics in place, shared by the proxy and its connections. With none on (the usual case)
/// a connection's data path reads one atomic per chunk and takes no lock; a connection's watcher
/// sleeps until the toxics change instead of polling them.
struct State {
    toxics: RwLock<Vec<Toxic>>,
    /// Whether any toxic is on.
    active: std::sync::atomic::AtomicBool,
    /// Bumped at every change, for the watchers.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for State {
    fn default() -> Self {
        State {
            toxics: RwLock::new(Vec::new()),
            active: std::sync::atomic::AtomicBool::new(false),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl State {
    fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Acquire)
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Toxic>)) {
        let mut toxics = self.toxics.write().expect("state lock");
        f(&mut toxics);
        self.active
            .store(!toxics.is_empty(), std::sync::atomic::Ordering::Release);
        drop(toxics);
        self.changes.send_modify(|n| *n += 1);
    }
}

/// A running proxy. Dropping it stops accepting; open connections end with their peers.
pub struct FaultProxy {
    pub name: String,
    pub listen: SocketAddr,
    /// Where new connections go (in turn); a platform moves it when the upstream service moves.
    upstreams: Arc<RwLock<Vec<String>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    state: Arc<State>,
    rng: Arc<Mutex<rand::rngs::StdRng>>,
    accept: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
    /// The runtime its tasks run on: the one it was started on, for good (a later `bring_up`
    /// from elsewhere does not move it), so a platform can keep it apart from the load.
    runtime: tokio::runtime::Handle,
}

/// Connection counters, for evidence.
#[derive(Default, Debug)]
pub struct Stats {
    pub connections: std::sync::atomic::AtomicU64,
    pub reset: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (port 0: any free port) and forwards to `upstreams` (`host:port`
    /// each), taking them in turn.
    pub async fn start(
        name: &str,
        port: u16,
        upstreams: Vec<String>,
        seed: u64,
    ) -> std::io::Result<FaultProxy> {
        Self::start_on(name, ([127, 0, 0, 1], port).into(), upstreams, seed).await
    }

    /// Like [`FaultProxy::start`], on any address (a pod's proxies listen on 0.0.0.0).
    pub async fn start_on(
        name: &str,
        addr: SocketAddr,
        upstreams: Vec<String>,
        seed: u64,
    ) -> std::io::Result<FaultProxy> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listen = listener.local_addr()?;
        let proxy = FaultProxy {
            name: name.to_string(),
            listen,
            upstreams: Arc::new(RwLock::new(upstreams)),
            next: Arc::default(),
            state: Arc::new(State::default()),
            rng: Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed))),
            accept: Mutex::new(None),
            stats: Arc::new(Stats::default()),
            runtime: tokio::runtime::Handle::current(),
        };
        proxy.spawn_accept(listener);
        Ok(proxy)
    }

    fn spawn_accept(&self, listener: std::net::TcpListener) {
        let (state, rng, upstreams, next, stats) = (
            self.state.clone(),
            self.rng.clone(),
            self.upstreams.clone(),
            self.next.clone(),
            self.stats.clone(),
        );
        let task = self.runtime.spawn(async move {
            // Registered with this runtime's reactor, not the caller's.
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            // Open connections live in this task's set: taking the proxy down (aborting this
            // task) closes them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                stats
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (draw, conn_seed) = {
                    let mut r = rng.lock().expect("rng lock");
                    (r.random::<f64>(), r.random::<u64>())
                };
                let to = {
                    let all = upstreams.read().expect("upstream lock");
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    (!all.is_empty()).then(|| all[i % all.len()].clone())
                };
                conns.spawn(handle(
                    client,
                    to,
                    state.clone(),
                    draw,
                    conn_seed,
                    stats.clone(),
                ));
            }
        });
        *self.accept.lock().expect("accept lock") = Some(task);
    }

    pub fn addr(&self) -> String {
        self.listen.to_string()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Where new connections go, in turn.
    pub fn upstreams(&self) -> Vec<String> {
        self.upstreams.read().expect("upstream lock").clone()
    }

    /// Sends new connections to `addrs` (`host:port` each; open connections stay where they are).
    pub fn set_upstreams(&self, addrs: Vec<String>) {
        *self.upstreams.write().expect("upstream lock") = addrs;
    }

    /// The toxics in place.
    pub fn toxics(&self) -> Vec<Toxic> {
        self.state.toxics.read().expect("state lock").clone()
    }

    /// Whether the listener is taken down.
    pub fn is_down(&self) -> bool {
        self.accept.lock().expect("accept lock").is_none()
    }

    /// Adds a toxic (replacing one of the same kind).
    pub fn add(&self, toxic: Toxic) {
        self.state.update(|toxics| {
            toxics
                .retain(|t| std::mem::discriminant(&t.kind) != std::mem::discriminant(&toxic.kind));
            toxics.push(toxic);
        });
    }

    /// Removes every toxic.
    pub fn clear(&self) {
        self.state.update(|toxics| toxics.clear());
    }

    /// The upstream is down: stop listening, so connecting is refused by the kernel, and close
    /// every open connection (as Toxiproxy does for a disabled proxy): a client holding warm
    /// keep-alive connections loses the upstream too. Returns once the sockets are closed.
    pub async fn take_down(&self) {
        let task = self.accept.lock().expect("accept lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen again on the same address after [`FaultProxy::take_down`].
    pub async fn bring_up(&self) -> std::io::Result<()> {
        if self.accept.lock().expect("accept lock").is_some() {
            return Ok(());
        }
        let listener = std::net::TcpListener::bind(self.listen)?;
        listener.set_nonblocking(true)?;
        self.spawn_accept(listener);
        Ok(())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.accept.lock().expect("accept lock").take() {
            task.abort();
        }
    }
}

/// Whether a reset toxic is due for a connection opened at `started`.
fn reset_due(state: &State, draw: f64, started: tokio::time::Instant) -> bool {
    current(state, draw)
        .iter()
        .any(|t| matches!(t, ToxicKind::Reset { after } if started.elapsed() >= *after))
}

fn current(state: &State, draw: f64) -> Vec<ToxicKind> {
    if !state.is_active() {
        return Vec::new();
    }
    state
        .toxics
        .read()
        .expect("state lock")
        .iter()
        .filter(|t| t.applies(draw))
        .map(|t| t.kind.clone())
        .collect()
}

/// Sets SO_LINGER 0 on an open socket, so that closing it sends RST instead of FIN.
fn linger_zero(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket fd the caller keeps open, with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Resets a connection (RST).
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    linger_zero(stream.as_raw_fd());
    drop(stream);
}

async fn handle(
    client: TcpStream,
    upstream: Option<String>,
    state: Arc<State>,
    draw: f64,
    seed: u64,
    stats: Arc<Stats>,
) {
    if current(&state, draw).contains(&ToxicKind::Refuse) {
        stats
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        reset(client);
        return;
    }
    // No upstream at all, or it refuses: pass that on as a reset.
    let Some(upstream) = upstream else {
        reset(client);
        return;
    };
    let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client, mut server) = (client, server);
    let started = tokio::time::Instant::now();
    // Both directions and the watcher in one task, on borrowed halves: cutting the connection is
    // dropping the sockets, which sends no FIN first (dropping an owned write half would).
    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let both = async {
            tokio::join!(
                pump(
                    client_read,
                    server_write,
                    &state,
                    draw,
                    seed,
                    started,
                    false
                ),
                pump(
                    server_read,
                    client_write,
                    &state,
                    draw,
                    seed ^ 0x5eed,
                    started,
                    true
                ),
            )
        };
        tokio::select! {
            _ = both => None,
            with_rst = ends(&state, draw, started) => Some(with_rst),
        }
    };
    if cut == Some(true) {
        use std::os::fd::AsRawFd;
        linger_zero(client.as_raw_fd());
        stats
            .reset
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Resolves when a toxic ends the connection: `true` for a reset, `false` for a timeout that
/// closes. Sleeps until the toxics change or the next such toxic is due; no polling.
async fn ends(state: &State, draw: f64, started: tokio::time::Instant) -> bool {
    // Subscribed before reading the toxics: a change in between is not missed.
    let mut changes = state.changes.subscribe();
    loop {
        let mut due: Option<tokio::time::Instant> = None;
        let mut close = false;
        for t in current(state, draw) {
            let (after, reset) = match t {
                ToxicKind::Reset { after } => (after, true),
                ToxicKind::Timeout {
                    close_after: Some(after),
                } => (after, false),
                _ => continue,
            };
            if started.elapsed() >= after {
                if reset {
                    return true;
                }
                close = true;
            } else {
                due = Some(due.map_or(started + after, |d| d.min(started + after)));
            }
        }
        if close {
            return false;
        }
        let wait = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The proxy is gone: nothing will end this connection but its peers.
                    std::future::pending::<()>().await;
                }
            }
            _ = wait => {}
        }
    }
}

/// Copies one direction, applying the toxics that hold, delay or throttle data.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    state: &State,
    draw: f64,
    seed: u64,
    started: tokio::time::Instant,
    downstream: bool,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // No toxic on: straight through, no lock taken.
        if !state.is_active() {
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
            continue;
        }
        // Once a reset is due nothing more goes through; the connection's watcher sends the RST.
        if reset_due(state, draw, started) {
            std::future::pending::<()>().await;
        }
        // A timeout toxic holds the data for as long as it is on.
        while current(state, draw)
            .iter()
            .any(|t| matches!(t, ToxicKind::Timeout { .. }))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if downstream {
            for t in current(state, draw) {
                match t {
                    ToxicKind::Latency { latency, jitter } => {
                        let j = jitter.as_millis() as i64;
                        let offset = if j > 0 { rng.random_range(-j..=j) } else { 0 };
                        let ms = (latency.as_millis() as i64 + offset).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    ToxicKind::Bandwidth { bytes_per_sec } if bytes_per_sec > 0 => {
                        tokio::time::sleep(Duration::from_secs_f64(
                            n as f64 / bytes_per_sec as f64,
                        ))
                        .await;
                    }
                    _ => {}
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An upstream that answers every line with "pong <line>", plus a 64 KiB blob for "blob".
    async fn upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let reply = if buf[..n].starts_with(b"blob") {
                            vec![b'x'; 64 * 1024]
                        } else {
                            [b"pong ", &buf[..n]].concat()
                        };
                        if s.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `msg` and reads until `want` bytes came back (or the connection ends/fails).
    async fn exchange(addr: SocketAddr, msg: &[u8], want: usize) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(msg).await?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while out.len() < want {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    async fn proxy(seed: u64) -> FaultProxy {
        FaultProxy::start("test", 0, vec![upstream().await.to_string()], seed)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn forwards_unchanged_without_toxics() {
        let p = proxy(1).await;
        assert_eq!(
            exchange(p.listen, b"ping\n", 10).await.unwrap(),
            b"pong ping\n"
        );
    }

    #[tokio::test]
    async fn latency_delays_the_answer_by_the_configured_time() {
        let p = proxy(1).await;
        p.add(Toxic::always(ToxicKind::Latency {
            latency: Duration::from_millis(300),
            jitter: Duration::from_millis(20),
        }));
        let t = Instant::now();
        assert_eq!(
            exchange(p.listen, b"ping\n", 10).await.unwrap(),
            b"pong ping\n"
        );
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(280), "delayed: {took:?}");
        p.clear();
        let t = Instant::now();
        exchange(p.listen, b"ping\n", 10).await.unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(280),
            "healed: {:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn reset_is_seen_by_the_client_as_connection_reset() {
        let p = proxy(1).await;
        p.add(Toxic::always(ToxicKind::Reset {
            after: Duration::ZERO,
        }));
        let err = exchange(p.listen, b"ping\n", 10).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        assert!(p.stats().reset.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn refuse_resets_new_connections_and_down_refuses_to_connect() {
        let p = proxy(1).await;
        p.add(Toxic::always(ToxicKind::Refuse));
        let err = exchange(p.listen, b"ping\n", 10).await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{err}"
        );
        p.clear();
        p.take_down().await;
        let err = TcpStream::connect(p.listen).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        p.bring_up().await.unwrap();
        assert_eq!(
            exchange(p.listen, b"ping\n", 10).await.unwrap(),
            b"pong ping\n"
        );
    }

    /// Reads until the connection fails (panics if it closes cleanly or nothing comes in 3 s).
    async fn read_until_error(s: &mut TcpStream) -> std::io::Error {
        let mut buf = vec![0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
                Ok(Ok(0)) => panic!("closed without a reset"),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return e,
                Err(_) => panic!("no reset within 3 s"),
            }
        }
    }

    /// Toxics switched on while a connection is open reach it: its data path sees them at the
    /// next chunk, and its watcher wakes on the change (no polling) and again when a reset's
    /// `after` comes due.
    #[tokio::test]
    async fn toxics_switched_on_later_reach_connections_already_open() {
        let p = proxy(1).await;
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        let mut buf = vec![0u8; 64];
        s.write_all(b"one\n").await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong one\n");
        // Latency on: the next answer on the same connection is late.
        p.add(Toxic::always(ToxicKind::Latency {
            latency: Duration::from_millis(300),
            jitter: Duration::ZERO,
        }));
        let t = Instant::now();
        s.write_all(b"two\n").await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong two\n");
        assert!(
            t.elapsed() >= Duration::from_millis(280),
            "{:?}",
            t.elapsed()
        );
        // A reset due 1 s into the connection's life (already past): it comes at once.
        p.add(Toxic::always(ToxicKind::Reset {
            after: Duration::from_secs(1),
        }));
        let t = Instant::now();
        let err = read_until_error(&mut s).await;
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        // On a new connection the same toxic waits for its `after`.
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        let t = Instant::now();
        let err = read_until_error(&mut s).await;
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }

    /// A client with a connection already open (a warm keep-alive pool) loses it when the proxy
    /// goes down, instead of going on as if nothing happened.
    #[tokio::test]
    async fn down_closes_the_connections_already_open() {
        let p = proxy(1).await;
        let mut kept = TcpStream::connect(p.listen).await.unwrap();
        kept.write_all(b"ping\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = kept.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong ping\n");
        p.take_down().await;
        let after = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = kept.write_all(b"ping\n").await;
            kept.read(&mut buf).await
        })
        .await
        .expect("the open connection was neither closed nor answered within 2 s");
        assert!(
            matches!(after, Ok(0) | Err(_)),
            "the open connection still answered: {after:?}"
        );
    }

    #[tokio::test]
    async fn timeout_holds_the_connection_without_answering_then_closes_if_asked() {
        let p = proxy(1).await;
        p.add(Toxic::always(ToxicKind::Timeout { close_after: None }));
        let held = tokio::time::timeout(
            Duration::from_millis(400),
            exchange(p.listen, b"ping\n", 10),
        )
        .await;
        assert!(held.is_err(), "no answer while the timeout toxic is on");
        p.add(Toxic::always(ToxicKind::Timeout {
            close_after: Some(Duration::from_millis(200)),
        }));
        let t = Instant::now();
        let got = exchange(p.listen, b"ping\n", 10).await.unwrap_or_default();
        assert!(
            got.is_empty() && t.elapsed() >= Duration::from_millis(180),
            "closed without data after ~200 ms: {:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn bandwidth_limits_throughput() {
        let p = proxy(1).await;
        p.add(Toxic::always(ToxicKind::Bandwidth {
            bytes_per_sec: 128 * 1024,
        }));
        let t = Instant::now();
        let got = exchange(p.listen, b"blob\n", 64 * 1024).await.unwrap();
        assert_eq!(got.len(), 64 * 1024);
        assert!(
            t.elapsed() >= Duration::from_millis(450),
            "64 KiB at 128 KiB/s: {:?}",
            t.elapsed()
        );
    }

    /// An upstream that answers anything with `tag`.
    async fn tagged(tag: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    if s.read(&mut buf).await.unwrap_or(0) > 0 {
                        let _ = s.write_all(tag.as_bytes()).await;
                    }
                });
            }
        });
        addr.to_string()
    }

    #[tokio::test]
    async fn upstreams_are_taken_in_turn_and_can_move_or_be_none() {
        let (a, b, c) = (tagged("a").await, tagged("b").await, tagged("c").await);
        let p = FaultProxy::start("t", 0, vec![a.clone(), b.clone()], 1)
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(exchange(p.listen, b"x", 1).await.unwrap());
        }
        assert_eq!(seen, [b"a", b"b", b"a", b"b"].map(|t| t.to_vec()));
        p.set_upstreams(vec![c.clone()]);
        assert_eq!(p.upstreams(), vec![c]);
        assert_eq!(exchange(p.listen, b"x", 1).await.unwrap(), b"c");
        // A name resolved at connect time works as well as an address.
        let port = p.upstreams()[0].rsplit_once(':').unwrap().1.to_string();
        p.set_upstreams(vec![format!("localhost:{port}")]);
        assert_eq!(exchange(p.listen, b"x", 1).await.unwrap(), b"c");
        // No endpoint at all: the connection is reset, nothing answers.
        p.set_upstreams(Vec::new());
        let got = exchange(p.listen, b"x", 1).await;
        assert!(
            got.as_ref().map_or(true, |d| d.is_empty()),
            "no upstream, no answer: {got:?}"
        );
    }

    /// Which of `n` sequential connections were refused.
    async fn refused_pattern(seed: u64, n: usize) -> Vec<bool> {
        let p = proxy(seed).await;
        p.add(Toxic {
            kind: ToxicKind::Refuse,
            fraction: 0.5,
        });
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(exchange(p.listen, b"ping\n", 10).await.is_err());
        }
        out
    }

    #[tokio::test]
    async fn a_fraction_applies_to_about_that_share_and_a_seed_repeats_it() {
        let a = refused_pattern(42, 60).await;
        let b = refused_pattern(42, 60).await;
        let c = refused_pattern(7, 60).await;
        let hits = a.iter().filter(|x| **x).count();
        assert!(
            (15..=45).contains(&hits),
            "about half of 60 refused: {hits}"
        );
        assert_eq!(a, b, "same seed, same connections hit");
        assert_ne!(a, c, "another seed, another pattern");
    }
}
