//! A watchdog for the harness's own runtimes: a task that wakes every [`TICK`] and records an
//! evidence event when it woke more than [`STALL`] late. The harness runs the load and (on the
//! local platform) the fault proxies that sit in the system's dependency path; if the machine or
//! the harness itself stalls them, a verdict would be about the harness, not the system, so a stall
//! is reported with the run.

use crate::evidence::Evidence;
use std::time::Duration;

pub const TICK: Duration = Duration::from_millis(20);
/// A wake-up this much later than due counts as a stall.
pub const STALL: Duration = Duration::from_millis(200);

/// Starts the watchdog on the current runtime; abort the handle to stop it.
pub fn watch(runtime: &'static str, evidence: Evidence) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut due = tokio::time::Instant::now() + TICK;
        loop {
            tokio::time::sleep_until(due).await;
            let late = tokio::time::Instant::now().saturating_duration_since(due);
            if late > STALL {
                evidence.stall(runtime, late);
            }
            due = tokio::time::Instant::now() + TICK;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // One thread: the test body and the watchdog share it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_recorded_and_a_free_one_is_not() {
        let evidence = Evidence::new();
        let dog = watch("test", evidence.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            evidence.with(|d| d.stalls.is_empty()),
            "no stall while idle"
        );
        // Block the runtime's only thread: the watchdog cannot run for 500 ms.
        std::thread::sleep(Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(100)).await;
        dog.abort();
        let stalls = evidence.with(|d| d.stalls.clone());
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert!(stalls[0].late_ms >= 300, "{stalls:?}");
    }
}
