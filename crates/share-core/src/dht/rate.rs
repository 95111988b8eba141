//! Rate limits on incoming queries: a token bucket per source IP (an IPv6 /64 counts as one
//! IP, see [`IpKey`]: a host picks addresses in its /64 at will) and one for all of them.
//!
//! The per-IP table holds at most [`MAX_TRACKED`] (4096) addresses; when it is full, buckets
//! that have refilled (their IP has been quiet) are dropped, and if none has, a new IP is
//! judged by the global bucket alone. Queries over the limit are dropped unanswered, which
//! is what BEP 5 nodes expect of an overloaded node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::IpKey;

pub const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Sustained queries per second.
    pub per_sec: f64,
    /// Queries allowed in a burst.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_sec).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn full_at(&self, rate: Rate, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + dt * rate.per_sec >= rate.burst
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    per_ip: HashMap<IpKey, Bucket>,
    ip_rate: Rate,
    global: Bucket,
    global_rate: Rate,
}

impl RateLimiter {
    pub fn new(ip_rate: Rate, global_rate: Rate, now: Instant) -> RateLimiter {
        RateLimiter {
            per_ip: HashMap::new(),
            ip_rate,
            global: Bucket {
                tokens: global_rate.burst,
                at: now,
            },
            global_rate,
        }
    }

    /// Whether a query from `ip` may be answered now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = IpKey::from(ip);
        if !self.per_ip.contains_key(&ip) && self.per_ip.len() >= MAX_TRACKED {
            let rate = self.ip_rate;
            self.per_ip.retain(|_, b| !b.full_at(rate, now));
        }
        let ip_ok = if self.per_ip.len() < MAX_TRACKED || self.per_ip.contains_key(&ip) {
            let rate = self.ip_rate;
            self.per_ip
                .entry(ip)
                .or_insert(Bucket {
                    tokens: rate.burst,
                    at: now,
                })
                .take(rate, now)
        } else {
            true
        };
        ip_ok && self.global.take(self.global_rate, now)
    }

    pub fn tracked(&self) -> usize {
        self.per_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const IP: Rate = Rate {
        per_sec: 10.0,
        burst: 20.0,
    };
    const ALL: Rate = Rate {
        per_sec: 1000.0,
        burst: 1000.0,
    };

    #[test]
    fn one_ip_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(IP, ALL, t0);
        let a: IpAddr = "127.0.0.9".parse().unwrap();
        let allowed = (0..100).filter(|_| r.allow(a, t0)).count();
        assert_eq!(allowed, 20);
        assert!(
            r.allow("127.0.0.10".parse().unwrap(), t0),
            "others are unaffected"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| r.allow(a, t1)).count(), 10);
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_one_bucket() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(IP, ALL, t0);
        let allowed = (0..100u32)
            .filter(|i| r.allow(format!("2001:db8:0:1::{:x}", i + 1).parse().unwrap(), t0))
            .count();
        assert_eq!(allowed, 20, "one burst for the whole /64");
        assert!(
            r.allow("2001:db8:0:2::1".parse().unwrap(), t0),
            "another /64 is unaffected"
        );
        assert_eq!(r.tracked(), 2);
    }

    #[test]
    fn the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(
            IP,
            Rate {
                per_sec: 1e9,
                burst: 1e9,
            },
            t0,
        );
        for i in 0..(MAX_TRACKED as u32 * 3) {
            r.allow(
                IpAddr::V4(Ipv4Addr::from(i)),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(r.tracked() <= MAX_TRACKED);
    }
}
