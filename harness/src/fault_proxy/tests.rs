//! The fault proxy's own tests: each toxic against a real upstream on 127.0.0.1.

use super::*;
use crate::units::Dur;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Adds `toxic` (never `down`) to `p`.
fn add(p: &FaultProxy, toxic: Toxic) {
    p.add(toxic).expect("a toxic, not down");
}

fn ms(n: u64) -> Dur {
    Dur(Duration::from_millis(n))
}

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
    add(
        &p,
        Toxic::Latency {
            latency: ms(300),
            jitter: ms(20),
            fraction: 1.0,
        },
    );
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
    add(
        &p,
        Toxic::Reset {
            after: Dur::default(),
            fraction: 1.0,
        },
    );
    let err = exchange(p.listen, b"ping\n", 10).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(p.stats().reset.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn refuse_resets_new_connections_and_down_refuses_to_connect() {
    let p = proxy(1).await;
    add(&p, Toxic::Refuse { fraction: 1.0 });
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
    add(
        &p,
        Toxic::Latency {
            latency: ms(300),
            jitter: Dur::default(),
            fraction: 1.0,
        },
    );
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
    add(
        &p,
        Toxic::Reset {
            after: Dur::secs(1),
            fraction: 1.0,
        },
    );
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
    add(
        &p,
        Toxic::Timeout {
            close_after: None,
            fraction: 1.0,
        },
    );
    let held = tokio::time::timeout(
        Duration::from_millis(400),
        exchange(p.listen, b"ping\n", 10),
    )
    .await;
    assert!(held.is_err(), "no answer while the timeout toxic is on");
    add(
        &p,
        Toxic::Timeout {
            close_after: Some(ms(200)),
            fraction: 1.0,
        },
    );
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
    add(
        &p,
        Toxic::Bandwidth {
            bytes_per_sec: 128 * 1024,
            fraction: 1.0,
        },
    );
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
    add(&p, Toxic::Refuse { fraction: 0.5 });
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

/// `down` is the listener going away, not a toxic the proxy holds: `add` refuses it and
/// nothing changes.
#[tokio::test]
async fn down_is_refused_as_a_toxic() {
    let p = proxy(1).await;
    assert_eq!(p.add(Toxic::Down {}), Err(DownIsNotAToxic));
    assert!(p.toxics().is_empty() && !p.is_down());
    assert_eq!(
        exchange(p.listen, b"ping\n", 10).await.unwrap(),
        b"pong ping\n"
    );
}
