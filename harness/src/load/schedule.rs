//! When each send is due. At a fixed rate, send `seq` is due at `start + seq / rate`; when the rate
//! changes (a game day's `rate` command), the schedule is re-anchored at the change: sends from then
//! on are spaced by the new rate, starting where the old spacing left off, so no burst makes up for
//! a slower past and no gap follows a faster one.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    anchor: Instant,
    /// The first send spaced from `anchor`.
    base_seq: u64,
    rate: u32,
}

impl Schedule {
    pub fn new(start: Instant, rate: u32) -> Schedule {
        Schedule {
            anchor: start,
            base_seq: 0,
            rate: rate.max(1),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// When send `seq` (≥ the last re-anchoring's) is due.
    pub fn due(&self, seq: u64) -> Instant {
        let n = seq.saturating_sub(self.base_seq);
        self.anchor + Duration::from_nanos(n.saturating_mul(1_000_000_000) / self.rate as u64)
    }

    /// From send `next_seq` on, sends are spaced at `rate`; the first of them is due one new
    /// interval after the previous send's due time, or now if that is later (a paused schedule
    /// does not make up for lost time).
    pub fn set_rate(&mut self, now: Instant, next_seq: u64, rate: u32) {
        let rate = rate.max(1);
        let previous = if next_seq == 0 {
            None
        } else {
            Some(self.due(next_seq - 1))
        };
        let first = match previous {
            Some(p) => (p + Duration::from_nanos(1_000_000_000 / rate as u64)).max(now),
            None => self.anchor.max(now),
        };
        self.anchor = first;
        self.base_seq = next_seq;
        self.rate = rate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fixed_rate_spaces_sends_evenly() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 4);
        assert_eq!(s.due(0), t0);
        assert_eq!(s.due(1), t0 + Duration::from_millis(250));
        assert_eq!(s.due(8), t0 + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_takes_over_from_the_last_send_without_a_burst() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 10);
        // 10 sends went out (0..=9, the last due at 0.9 s); at 1.0 s the rate goes to 100.
        tokio::time::advance(Duration::from_secs(1)).await;
        s.set_rate(Instant::now(), 10, 100);
        assert_eq!(s.due(10), t0 + Duration::from_millis(1000));
        assert_eq!(s.due(110), t0 + Duration::from_millis(2000));
        // Down to 2 per second at 2 s: send 111 is due half a second after 110, not at once.
        tokio::time::advance(Duration::from_secs(1)).await;
        s.set_rate(Instant::now(), 111, 2);
        assert_eq!(s.due(111), t0 + Duration::from_millis(2500));
        assert_eq!(s.due(113), t0 + Duration::from_millis(3500));
        assert_eq!(s.rate(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_that_fell_behind_restarts_now_instead_of_bursting() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 1);
        // Only send 0 went out, and 10 s passed (the dispatcher was held up).
        tokio::time::advance(Duration::from_secs(10)).await;
        s.set_rate(Instant::now(), 1, 50);
        assert_eq!(s.due(1), t0 + Duration::from_secs(10));
        assert_eq!(s.due(51), t0 + Duration::from_secs(11));
        // A rate of 0 is read as 1 (the schedule never stops by itself; stopping is `stop`).
        s.set_rate(Instant::now(), 52, 0);
        assert_eq!(s.rate(), 1);
    }
}
