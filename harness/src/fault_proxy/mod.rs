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

pub mod api;
pub mod client;
mod connection;
mod toxic;

pub use toxic::Toxic;

use connection::handle;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpListener;
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

/// What [`FaultProxy::add`] says to a `down` toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownIsNotAToxic;

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

    /// Adds a toxic (replacing one of the same kind). `down` is refused: it is no toxic but the
    /// listener going away ([`FaultProxy::take_down`]).
    pub fn add(&self, toxic: Toxic) -> Result<(), DownIsNotAToxic> {
        if toxic.is_down() {
            return Err(DownIsNotAToxic);
        }
        self.state.update(|toxics| {
            toxics.retain(|t| std::mem::discriminant(t) != std::mem::discriminant(&toxic));
            toxics.push(toxic);
        });
        Ok(())
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

#[cfg(test)]
mod tests;
