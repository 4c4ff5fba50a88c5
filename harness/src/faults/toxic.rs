//! What a fault proxy can do to a connection (Toxiproxy's toxics), as typed values: the scenario
//! file's `toxic` is turned into one of these at validation, and any proxy implementation (the
//! local platform's, a pod's) applies it.

use std::time::Duration;

/// One kind of misbehaviour.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delay every chunk sent back to the client by `latency` ± `jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// Forward nothing; close the connection after `close_after` if given, else hold it open.
    Timeout { close_after: Option<Duration> },
    /// Reset the connection (RST) after `after`.
    Reset { after: Duration },
    /// Accept new connections and reset them at once.
    Refuse,
    /// Limit data sent back to the client to `bytes_per_sec`.
    Bandwidth { bytes_per_sec: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub kind: ToxicKind,
    /// Share of connections it applies to, 0.0 to 1.0.
    pub fraction: f64,
}

impl Toxic {
    pub fn always(kind: ToxicKind) -> Self {
        Toxic {
            kind,
            fraction: 1.0,
        }
    }
    /// Whether it hits a connection whose uniform draw in [0, 1) is `draw`.
    pub fn applies(&self, draw: f64) -> bool {
        draw < self.fraction
    }
}
