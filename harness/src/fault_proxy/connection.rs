//! One proxied connection: the client and its upstream pumped both ways, the toxics in place
//! applied to every chunk (re-read each time, so toxics switched on later reach connections
//! already open), and a watcher that cuts the connection when a reset or a closing timeout comes
//! due.

use super::{State, Stats, Toxic};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether a reset toxic is due for a connection opened at `started`.
fn reset_due(state: &State, draw: f64, started: tokio::time::Instant) -> bool {
    current(state, draw)
        .iter()
        .any(|t| matches!(t, Toxic::Reset { after, .. } if started.elapsed() >= after.get()))
}

/// The toxics in place that hit a connection whose draw is `draw`.
fn current(state: &State, draw: f64) -> Vec<Toxic> {
    if !state.is_active() {
        return Vec::new();
    }
    state
        .toxics
        .read()
        .expect("state lock")
        .iter()
        .filter(|t| t.applies(draw))
        .cloned()
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

pub(super) async fn handle(
    client: TcpStream,
    upstream: Option<String>,
    state: Arc<State>,
    draw: f64,
    seed: u64,
    stats: Arc<Stats>,
) {
    if current(&state, draw)
        .iter()
        .any(|t| matches!(t, Toxic::Refuse { .. }))
    {
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
                Toxic::Reset { after, .. } => (after.get(), true),
                Toxic::Timeout {
                    close_after: Some(after),
                    ..
                } => (after.get(), false),
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
            .any(|t| matches!(t, Toxic::Timeout { .. }))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if downstream {
            for t in current(state, draw) {
                match t {
                    Toxic::Latency {
                        latency, jitter, ..
                    } => {
                        let j = jitter.get().as_millis() as i64;
                        let offset = if j > 0 { rng.random_range(-j..=j) } else { 0 };
                        let ms = (latency.get().as_millis() as i64 + offset).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Toxic::Bandwidth { bytes_per_sec, .. } if bytes_per_sec > 0 => {
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
