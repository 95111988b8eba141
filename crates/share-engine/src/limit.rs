//! A token-bucket rate limiter shared by the connections of a session.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Limits a flow of bytes to `rate` bytes per second, with a burst of a tenth of a second.
/// The rate can change while the limiter is in use (a torrent's limits set over the RPC);
/// one without a rate lets everything through.
#[derive(Debug)]
pub struct RateLimiter {
    // A plain mutex: held for a few arithmetic operations, never across an await.
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes per second; `None`: no limit.
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    at: Instant,
}

fn burst_of(rate: f64) -> f64 {
    (rate / 10.0).max(32.0 * 1024.0)
}

impl RateLimiter {
    pub fn new(rate: u64) -> Self {
        let r = RateLimiter::unlimited();
        r.set_rate(Some(rate));
        r
    }

    /// A limiter that limits nothing until a rate is set.
    pub fn unlimited() -> Self {
        RateLimiter {
            state: Mutex::new(Bucket {
                rate: None,
                burst: 0.0,
                tokens: 0.0,
                at: Instant::now(),
            }),
        }
    }

    /// Changes the rate (`None`: no limit); the bucket starts full.
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.rate = rate.map(|r| r.max(1) as f64);
        s.burst = s.rate.map_or(0.0, burst_of);
        s.tokens = s.burst;
        s.at = Instant::now();
    }

    pub fn rate(&self) -> Option<u64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.rate.map(|r| r as u64)
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
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(rate) = s.rate else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let refill = now.duration_since(s.at).as_secs_f64() * rate;
        s.tokens = (s.tokens + refill).min(s.burst) - bytes as f64;
        s.at = now;
        if s.tokens < 0.0 {
            Duration::from_secs_f64(-s.tokens / rate)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_rate_can_be_set_lifted_and_set_again() {
        let l = RateLimiter::unlimited();
        assert_eq!(l.reserve(10 << 20), Duration::ZERO);
        l.set_rate(Some(1 << 20));
        assert_eq!(l.rate(), Some(1 << 20));
        // 10 MiB at 1 MiB/s, less the burst: about 9.9 s.
        let wait = l.reserve(10 << 20).as_secs_f64();
        assert!((9.5..10.1).contains(&wait), "{wait}");
        l.set_rate(None);
        assert_eq!(l.reserve(10 << 20), Duration::ZERO);
    }

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
