//! Prometheus metrics of the checkout service, served at `GET /metrics`. Counters and histograms are
//! updated as requests happen; gauges that describe current state (pool, receipts volume, breaker,
//! shutdown) are refreshed when Prometheus scrapes.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::sync::LazyLock;

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub db_pool_max: IntGauge,
    pub db_pool_size: IntGauge,
    pub db_pool_in_use: IntGauge,
    pub db_pool_idle: IntGauge,
    pub db_acquire_timeouts: IntCounter,
    pub breaker_state: IntGauge,
    pub payments_failures: IntCounterVec,
    pub receipts_free_bytes: IntGauge,
    pub receipts_size_bytes: IntGauge,
    pub receipts_write_failures: IntCounterVec,
    pub shutting_down: IntGauge,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "checkout_http_requests_total",
            "HTTP requests by route and status",
        ),
        &["route", "status"],
    )
    .expect("metric");
    let request_duration = HistogramVec::new(
        HistogramOpts::new(
            "checkout_http_request_duration_seconds",
            "HTTP request latency",
        )
        .buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]),
        &["route"],
    )
    .expect("metric");
    let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("metric");
    let m = Metrics {
        requests,
        request_duration,
        db_pool_max: gauge(
            "checkout_db_pool_max",
            "Configured maximum DB pool connections",
        ),
        db_pool_size: gauge("checkout_db_pool_size", "Open DB pool connections"),
        db_pool_in_use: gauge("checkout_db_pool_in_use", "DB pool connections in use"),
        db_pool_idle: gauge("checkout_db_pool_idle", "Idle DB pool connections"),
        db_acquire_timeouts: IntCounter::new(
            "checkout_db_pool_acquire_timeouts_total",
            "DB pool acquires that timed out",
        )
        .expect("metric"),
        breaker_state: gauge(
            "checkout_payments_breaker_state",
            "Payments circuit breaker: 0 closed, 1 half-open, 2 open",
        ),
        payments_failures: IntCounterVec::new(
            Opts::new(
                "checkout_payments_failures_total",
                "Failed payment calls by kind",
            ),
            &["kind"],
        )
        .expect("metric"),
        receipts_free_bytes: gauge(
            "checkout_receipts_free_bytes",
            "Free bytes on the receipts volume",
        ),
        receipts_size_bytes: gauge(
            "checkout_receipts_size_bytes",
            "Total bytes of the receipts volume",
        ),
        receipts_write_failures: IntCounterVec::new(
            Opts::new(
                "checkout_receipts_write_failures_total",
                "Failed receipt writes by kind",
            ),
            &["kind"],
        )
        .expect("metric"),
        shutting_down: gauge(
            "checkout_shutting_down",
            "1 once SIGTERM was received and the service is draining",
        ),
        registry,
    };
    let r = &m.registry;
    for c in [
        Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(m.request_duration.clone()),
        Box::new(m.db_pool_max.clone()),
        Box::new(m.db_pool_size.clone()),
        Box::new(m.db_pool_in_use.clone()),
        Box::new(m.db_pool_idle.clone()),
        Box::new(m.db_acquire_timeouts.clone()),
        Box::new(m.breaker_state.clone()),
        Box::new(m.payments_failures.clone()),
        Box::new(m.receipts_free_bytes.clone()),
        Box::new(m.receipts_size_bytes.clone()),
        Box::new(m.receipts_write_failures.clone()),
        Box::new(m.shutting_down.clone()),
    ] {
        r.register(c).expect("register metric");
    }
    m
});

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut buf)
        .expect("text encoding cannot fail");
    String::from_utf8(buf).expect("prometheus text is utf-8")
}
