//! The client for the payments upstream: a per-request timeout and a circuit breaker, so a slow or
//! failing gateway turns into fast 503/504 answers instead of piled-up requests. The
//! `no-upstream-timeout` bug removes both.

use crate::error::AppError;
use crate::metrics::METRICS;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker states, as exported in `checkout_payments_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

/// A consecutive-failure circuit breaker: opens after `threshold` failures in a row, stays open for
/// `open_for`, then lets one trial call through (half-open); its success closes it again.
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<BreakerInner>,
}

struct BreakerInner {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            threshold,
            open_for,
            inner: Mutex::new(BreakerInner {
                consecutive_failures: 0,
                open_until: None,
                trial_in_flight: false,
            }),
        }
    }

    pub fn state(&self) -> BreakerState {
        let inner = self.inner.lock().expect("breaker lock");
        match inner.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go out now. In half-open state only one trial call is allowed.
    pub fn try_acquire(&self) -> bool {
        let mut inner = self.inner.lock().expect("breaker lock");
        match inner.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if inner.trial_in_flight => false,
            Some(_) => {
                inner.trial_in_flight = true;
                true
            }
        }
    }

    pub fn record_success(&self) {
        let mut inner = self.inner.lock().expect("breaker lock");
        inner.consecutive_failures = 0;
        inner.open_until = None;
        inner.trial_in_flight = false;
    }

    pub fn record_failure(&self) {
        let mut inner = self.inner.lock().expect("breaker lock");
        inner.consecutive_failures += 1;
        if inner.trial_in_flight || inner.consecutive_failures >= self.threshold {
            if inner.open_until.is_none() || inner.trial_in_flight {
                tracing::warn!(
                    failures = inner.consecutive_failures,
                    "payments circuit breaker opened"
                );
            }
            inner.open_until = Some(Instant::now() + self.open_for);
        }
        inner.trial_in_flight = false;
    }
}

#[derive(Serialize)]
struct ChargeRequest<'a> {
    order_id: &'a str,
    amount_cents: i64,
}

#[derive(Deserialize)]
struct ChargeResponse {
    charge_id: String,
}

/// The payments upstream as the checkout handler sees it.
pub struct Payments {
    base_url: Option<String>,
    client: reqwest::Client,
    timeout: Option<Duration>,
    pub breaker: Option<Breaker>,
    /// The `dependency-errors-500` bug: an unreachable payments is an unhandled 500.
    pub errors_as_500: bool,
}

impl Payments {
    /// `timeout` and `breaker` are `None` under the `no-upstream-timeout` bug.
    pub fn new(
        base_url: Option<String>,
        timeout: Option<Duration>,
        breaker: Option<Breaker>,
    ) -> Self {
        Payments {
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(16)
                .build()
                .expect("http client"),
            timeout,
            breaker,
            errors_as_500: false,
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker
            .as_ref()
            .map_or(BreakerState::Closed, Breaker::state)
    }

    /// Charges `amount_cents` for `order_id`; the order id is the idempotency key, so a retried
    /// checkout can never charge twice.
    pub async fn charge(&self, order_id: &str, amount_cents: i64) -> Result<String, AppError> {
        let base = self
            .base_url
            .as_deref()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("PAYMENTS_URL is not configured")))?;
        if let Some(breaker) = &self.breaker {
            if !breaker.try_acquire() {
                METRICS
                    .payments_failures
                    .with_label_values(&["breaker_open"])
                    .inc();
                return Err(AppError::Unavailable(
                    "payments circuit breaker open".into(),
                ));
            }
        }
        let mut request = self
            .client
            .post(format!("{base}/charges"))
            .header("Idempotency-Key", order_id)
            .json(&ChargeRequest {
                order_id,
                amount_cents,
            });
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        let sent = Instant::now();
        let result = match request.send().await {
            Ok(resp) if resp.status().is_success() => resp
                .json::<ChargeResponse>()
                .await
                .map(|c| c.charge_id)
                .map_err(|e| {
                    (
                        "bad_response",
                        AppError::Unavailable(format!("payments answered garbage: {e}")),
                    )
                }),
            Ok(resp) => Err((
                "status",
                AppError::Unavailable(format!("payments answered {}", resp.status())),
            )),
            Err(e) if e.is_timeout() => Err((
                "timeout",
                AppError::UpstreamTimeout(format!("no answer within {:?}", self.timeout)),
            )),
            Err(e) if self.errors_as_500 => Err((
                "connect",
                AppError::Internal(anyhow::Error::new(e).context("payments call")),
            )),
            Err(e) => Err((
                "connect",
                AppError::Unavailable(format!("payments unreachable: {e}")),
            )),
        };
        let elapsed_ms = sent.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(charge_id) => {
                if let Some(b) = &self.breaker {
                    b.record_success();
                }
                if elapsed_ms > 200.0 {
                    tracing::info!(elapsed_ms, "slow payments call");
                }
                Ok(charge_id)
            }
            Err((kind, err)) => {
                tracing::warn!(elapsed_ms, kind, error = %err, "payments call failed");
                METRICS.payments_failures.with_label_values(&[kind]).inc();
                if let Some(b) = &self.breaker {
                    // The bug's breaker was written for slow payments only.
                    if !self.errors_as_500 || kind == "timeout" {
                        b.record_failure();
                    }
                }
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_after_the_window() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            assert!(b.try_acquire());
            b.record_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(), "one trial call");
        assert!(!b.try_acquire(), "only one trial call");
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failed_trial_reopens() {
        let b = Breaker::new(1, Duration::from_millis(20));
        b.record_failure();
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.try_acquire());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
