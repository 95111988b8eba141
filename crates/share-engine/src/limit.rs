//! A token-bucket rate limiter shared by the connections of a session.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Limits a flow of bytes to `rate` bytes per second, with a burst of a tenth of a second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    // A plain mutex: held for a few arithmetic operations, never across an await.
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let burst = (rate / 10.0).max(32.0 * 1024.0);
        RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until `bytes` may pass. Takes the tokens at once (going into debt if need be)
    /// and sleeps off the debt, so concurrent callers queue fairly.
    pub async fn acquire(&self, bytes: usize) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the tokens for `bytes` now; returns how long to wait before sending them.
    pub fn reserve(&self, bytes: usize) -> Duration {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
            s.0 = (s.0 + refill).min(self.burst) - bytes as f64;
            s.1 = now;
            if s.0 < 0.0 {
                Duration::from_secs_f64(-s.0 / self.rate)
            } else {
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sustained_rate_is_held() {
        let l = RateLimiter::new(100_000);
        let start = Instant::now();
        for _ in 0..100 {
            l.acquire(10_000).await;
        }
        // 1 MB at 100 kB/s, less the initial burst: about 9.7 s of virtual time.
        let t = start.elapsed().as_secs_f64();
        assert!((9.0..11.0).contains(&t), "{t}");
    }
}
