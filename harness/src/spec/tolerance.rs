//! `[regression]`: how far a run may drift from its baseline run, and the tolerances it is
//! written in ("+25%", "+200ms", "+2pp", "+3s").

use super::parse_duration;
use serde::Deserialize;

/// The largest time or latency tolerance: added to a baseline's milliseconds, a larger one would
/// mean nothing (no run is that long) or overflow.
pub const MAX_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(3600);
/// The largest relative latency tolerance (100 times the baseline).
pub const MAX_PERCENT: f64 = 10_000.0;

/// How much worse than the baseline a latency may get: "+25%" (relative, never less than
/// 10 ms) or "+200ms" (absolute).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyTolerance {
    Percent(f64),
    Ms(u64),
}

impl<'de> Deserialize<'de> for LatencyTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "'{text}' is not a latency tolerance: write \"+25%\" or \"+200ms\" (at most \"+10000%\" or \"+1h\")"
            ))
        };
        let rest = text.trim().strip_prefix('+').ok_or_else(bad)?;
        if let Some(p) = rest.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(v.is_finite() && (0.0..=MAX_PERCENT).contains(&v)) {
                return Err(bad());
            }
            return Ok(LatencyTolerance::Percent(v));
        }
        parse_duration(rest)
            .ok()
            .filter(|d| *d <= MAX_TOLERANCE)
            .map(|d| LatencyTolerance::Ms(d.as_millis() as u64))
            .ok_or_else(bad)
    }
}

/// How many percentage points a share may grow: "+2pp".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointsTolerance(pub f64);

impl<'de> Deserialize<'de> for PointsTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .strip_prefix('+')
            .and_then(|r| r.strip_suffix("pp"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 100.0)
            .map(PointsTolerance)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "'{text}' is not a share tolerance: write percentage points, e.g. \"+2pp\""
                ))
            })
    }
}

/// How much later than in the baseline something may happen: "+3s".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeTolerance(pub u64);

impl<'de> Deserialize<'de> for TimeTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .strip_prefix('+')
            .and_then(|r| parse_duration(r).ok())
            .filter(|d| *d <= MAX_TOLERANCE)
            .map(|d| TimeTolerance(d.as_millis() as u64))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "'{text}' is not a time tolerance: write how much later, at most \"+1h\", e.g. \"+3s\""
                ))
            })
    }
}

/// `[regression]`: how far a run may drift from its baseline before that is a regression. Each
/// field has a default, so a scenario without the table still compares with a baseline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegressionSpec {
    /// Each phase's p99 latency.
    #[serde(default = "default_p99_tolerance")]
    pub p99: LatencyTolerance,
    /// Each phase's share of answers that were 5xx or missing.
    #[serde(default = "default_share_tolerance")]
    pub five_xx_share: PointsTolerance,
    /// Each replica's readiness drop and recovery, measured from the phase's start and end.
    #[serde(default = "default_time_tolerance")]
    pub readiness: TimeTolerance,
    /// Each alert's firing, from its phase's start.
    #[serde(default = "default_time_tolerance")]
    pub alert_fire: TimeTolerance,
    /// Each alert's clearing, from its phase's end.
    #[serde(default = "default_time_tolerance")]
    pub alert_clear: TimeTolerance,
}

fn default_p99_tolerance() -> LatencyTolerance {
    LatencyTolerance::Percent(50.0)
}
fn default_share_tolerance() -> PointsTolerance {
    PointsTolerance(5.0)
}
fn default_time_tolerance() -> TimeTolerance {
    TimeTolerance(3_000)
}

impl Default for RegressionSpec {
    fn default() -> Self {
        RegressionSpec {
            p99: default_p99_tolerance(),
            five_xx_share: default_share_tolerance(),
            readiness: default_time_tolerance(),
            alert_fire: default_time_tolerance(),
            alert_clear: default_time_tolerance(),
        }
    }
}
