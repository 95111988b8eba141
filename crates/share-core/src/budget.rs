//! A token bucket that counts events (messages, dials), not bytes: `burst` at once, then
//! `rate` a second.
//!
//! It is sans-IO: the caller says what time it is (`now`), so it runs as well under a
//! paused test clock as under the real one. Byte rate limits shared by many connections are
//! the engine's (`share_engine::RateLimiter`); this one belongs to one owner (a connection's
//! extension messages, a torrent's dials).

use std::time::Instant;

/// A token bucket counting events: `burst` at once, `rate` a second after.
#[derive(Debug, Clone)]
pub struct Budget {
    tokens: f64,
    at: Instant,
    burst: f64,
    rate: f64,
}

impl Budget {
    /// A full bucket at `now`.
    pub fn new(burst: f64, rate: f64, now: Instant) -> Self {
        Budget {
            tokens: burst,
            at: now,
            burst,
            rate,
        }
    }

    /// Whole tokens available at `now`.
    pub fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens as usize
    }

    /// Takes one token if there is one at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_taken_at_once_and_then_nothing() {
        let t0 = Instant::now();
        let mut b = Budget::new(3.0, 1.0, t0);
        assert_eq!(b.available(t0), 3);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert_eq!(b.available(t0), 0);
    }

    #[test]
    fn tokens_come_back_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Budget::new(10.0, 20.0, t0);
        while b.take(t0) {}
        assert_eq!(b.available(t0 + Duration::from_millis(100)), 2);
        assert_eq!(
            b.available(t0 + Duration::from_secs(60)),
            10,
            "capped at the burst"
        );
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let t1 = Instant::now() + Duration::from_secs(5);
        let mut b = Budget::new(1.0, 1.0, t1);
        assert!(b.take(t1));
        assert!(!b.take(t1 - Duration::from_secs(3)));
    }
}
