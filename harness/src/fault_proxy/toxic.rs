//! A toxic: what a fault proxy does to connections, as one type that is at once the wire format
//! (the body of `POST /proxies/{name}/toxics`, the `toxics` of `GET /proxies`, and a scenario
//! file's `toxic = {...}` table: `kind` tag in kebab-case, "6s"-style durations, unknown fields
//! refused), its checks, and what the proxy applies (Toxiproxy keeps one type per toxic, wire and
//! behaviour alike). Imports nothing of the scenario format.

use crate::units::{check_duration, check_number, Dur};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a fault proxy does to connections; each applies to `fraction` of them (default all),
/// drawn per connection.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Toxic {
    /// Delay every chunk sent back to the client by `latency` ± `jitter`.
    Latency {
        latency: Dur,
        #[serde(default)]
        jitter: Dur,
        #[serde(default = "all")]
        fraction: f64,
    },
    /// Forward nothing; close the connection after `close_after` if given, else hold it open.
    Timeout {
        close_after: Option<Dur>,
        #[serde(default = "all")]
        fraction: f64,
    },
    /// Reset the connection (RST) after `after`.
    Reset {
        #[serde(default)]
        after: Dur,
        #[serde(default = "all")]
        fraction: f64,
    },
    /// Accept new connections and reset them at once.
    Refuse {
        #[serde(default = "all")]
        fraction: f64,
    },
    /// Nothing listens: connecting is refused. Not a toxic the proxy holds but its listener
    /// going away ([`super::FaultProxy::take_down`], `POST /proxies/{name}/down`).
    Down {},
    /// Limit data sent back to the client to `bytes_per_sec`.
    Bandwidth {
        bytes_per_sec: u64,
        #[serde(default = "all")]
        fraction: f64,
    },
}

fn all() -> f64 {
    1.0
}

/// The longest a toxic's duration may be.
const MAX_DURATION: Duration = Duration::from_secs(600);

impl Toxic {
    /// Share of connections it applies to, 0.0 to 1.0 (`down`: all).
    pub fn fraction(&self) -> f64 {
        match self {
            Toxic::Latency { fraction, .. }
            | Toxic::Timeout { fraction, .. }
            | Toxic::Reset { fraction, .. }
            | Toxic::Refuse { fraction }
            | Toxic::Bandwidth { fraction, .. } => *fraction,
            Toxic::Down {} => 1.0,
        }
    }

    /// Whether it hits a connection whose uniform draw in [0, 1) is `draw`.
    pub fn applies(&self, draw: f64) -> bool {
        draw < self.fraction()
    }

    /// Whether it is the listener going away rather than a toxic the proxy holds.
    pub fn is_down(&self) -> bool {
        matches!(self, Toxic::Down {})
    }

    /// The fraction is a share (what the proxy's control API checks).
    pub fn check_fraction(&self) -> Result<(), String> {
        let f = self.fraction();
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("fraction {f} must be between 0 and 1"));
        }
        Ok(())
    }

    /// Every field in range (the fraction first): what a scenario or a game day may ask for.
    pub fn check(&self) -> Result<(), String> {
        self.check_fraction()?;
        let d = |what: &str, v: Dur| check_duration(what, v.get(), Duration::ZERO, MAX_DURATION);
        match self {
            Toxic::Latency {
                latency, jitter, ..
            } => {
                d("latency", *latency)?;
                d("jitter", *jitter)
            }
            Toxic::Timeout {
                close_after: Some(c),
                ..
            } => d("close_after", *c),
            Toxic::Reset { after, .. } => d("after", *after),
            Toxic::Bandwidth { bytes_per_sec, .. } => {
                check_number("bytes_per_sec", *bytes_per_sec, 1, 10_000_000_000)
            }
            Toxic::Timeout {
                close_after: None, ..
            }
            | Toxic::Refuse { .. }
            | Toxic::Down {} => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Toxic, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_wire_form_fills_defaults_and_reads_back_as_written() {
        let t = parse(r#"{"kind": "latency", "latency": "6s"}"#).unwrap();
        assert_eq!(
            t,
            Toxic::Latency {
                latency: Dur::secs(6),
                jitter: Dur::default(),
                fraction: 1.0
            }
        );
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"kind":"latency","latency":"6s","jitter":"0s","fraction":1.0}"#
        );
        assert_eq!(parse(&serde_json::to_string(&t).unwrap()).unwrap(), t);
        assert_eq!(parse(r#"{"kind": "down"}"#).unwrap(), Toxic::Down {});
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        let e = parse(r#"{"kind": "cpu-hog"}"#).unwrap_err();
        assert!(e.contains("unknown variant `cpu-hog`"), "{e}");
        let e = parse(r#"{"kind": "reset", "afterr": "1s"}"#).unwrap_err();
        assert!(e.contains("unknown field `afterr`"), "{e}");
        let e = parse(r#"{"kind": "down", "fraction": 0.5}"#).unwrap_err();
        assert!(e.contains("unknown field `fraction`"), "{e}");
    }

    #[test]
    fn checks_name_the_field_out_of_range() {
        let t = |json: &str| parse(json).unwrap().check();
        assert_eq!(
            t(r#"{"kind": "refuse", "fraction": 1.5}"#).unwrap_err(),
            "fraction 1.5 must be between 0 and 1"
        );
        assert!(t(r#"{"kind": "refuse", "fraction": 0.5}"#).is_ok());
        assert!(t(r#"{"kind": "latency", "latency": "11m"}"#)
            .unwrap_err()
            .starts_with("latency 11m is out of range"));
        assert!(t(r#"{"kind": "bandwidth", "bytes_per_sec": 0}"#)
            .unwrap_err()
            .starts_with("bytes_per_sec 0 is out of range"));
        assert!(t(r#"{"kind": "timeout"}"#).is_ok());
    }

    #[test]
    fn a_fraction_applies_below_its_share() {
        let t = Toxic::Refuse { fraction: 0.25 };
        assert!(t.applies(0.2) && !t.applies(0.25) && !t.applies(0.9));
        assert!(Toxic::Down {}.applies(0.99) && Toxic::Down {}.is_down());
    }
}
