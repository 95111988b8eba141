//! A torrent's address book: the peer addresses it knows, where each came from, when each
//! may be dialed next, and who is banned.
//!
//! Every source (`--peer`, a magnet's `x.pe`, trackers, PEX, LSD, the DHT) feeds the same
//! bounded book, and dialing takes from it at a bounded rate. Addresses from the swarm (PEX,
//! LSD, DHT) are hints anyone can forge: they never push out an address that is trusted
//! (given by the user or a tracker) or that has worked, and at most [`MAX_HINTS`] of them are
//! held at once.
//!
//! A ban holds an address and the peer id. The address is the IP and port, as a peer listens
//! on one port and hosts behind one NAT'd IPv4 address are different peers; an IPv6 address
//! stands for its /64 ([`IpKey`]), since a host picks addresses in its /64 at will, so a ban
//! of `[2001:db8::1]:6881` refuses every address of `2001:db8::/64` on port 6881.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use share_core::IpKey;
use tokio::time::Instant;

use crate::PeerSource;

/// Most addresses remembered.
pub const MAX_KNOWN: usize = 1000;
/// Most addresses from untrusted sources (PEX, LSD, DHT) that have not worked yet.
pub const MAX_HINTS: usize = 600;
/// Dials started per second, per torrent, after a first burst.
pub const DIALS_PER_SEC: f64 = 10.0;
pub const DIAL_BURST: f64 = 20.0;
#[cfg(test)]
const DIALS_PER_TICK: usize = 10;
/// A peer we were connected to is not dialed again for this long after it closed.
const AFTER_CLOSE: Duration = Duration::from_secs(3);
/// An address of a peer we have through another connection waits this long.
const DUPLICATE_WAIT: Duration = Duration::from_secs(300);
/// An untrusted address that failed this often is forgotten.
const MAX_HINT_FAILURES: u32 = 3;

#[derive(Debug)]
struct Entry {
    source: PeerSource,
    next_try: Instant,
    failures: u32,
    /// A connection to it is under way or open.
    busy: bool,
    /// It had every piece when last seen: not worth dialing once we have them all too.
    seed: bool,
    /// A handshake with it once succeeded.
    worked: bool,
}

impl Entry {
    fn trusted(&self) -> bool {
        self.worked || !self.source.is_hint()
    }
}

#[derive(Debug)]
pub struct Book {
    entries: HashMap<SocketAddr, Entry>,
    banned_addrs: HashSet<(IpKey, u16)>,
    banned_ids: HashSet<[u8; 20]>,
    /// Our own listening address: a tracker may list us, and we do not dial ourselves.
    listen: SocketAddr,
    /// Take loopback addresses only (a test's promise that nothing leaves the machine).
    loopback_only: bool,
    /// Addresses learned from each source (for the progress display).
    pub learned: HashMap<PeerSource, u64>,
}

impl Book {
    pub fn new(listen: SocketAddr, loopback_only: bool) -> Self {
        Book {
            entries: HashMap::new(),
            banned_addrs: HashSet::new(),
            banned_ids: HashSet::new(),
            listen,
            loopback_only,
            learned: HashMap::new(),
        }
    }

    fn is_ours(&self, a: &SocketAddr) -> bool {
        a.port() == self.listen.port()
            && (a.ip() == self.listen.ip()
                || a.ip().is_loopback()
                || self.listen.ip().is_unspecified())
    }

    /// Remembers addresses from `source`; returns how many were new.
    pub fn add(
        &mut self,
        addrs: impl IntoIterator<Item = SocketAddr>,
        source: PeerSource,
        now: Instant,
    ) -> usize {
        let mut added = 0;
        for addr in addrs {
            if addr.port() == 0
                || self.is_ours(&addr)
                || self.banned_addrs.contains(&ban_key(&addr))
                || (self.loopback_only && !addr.ip().is_loopback())
            {
                continue;
            }
            if let Some(e) = self.entries.get_mut(&addr) {
                // A trusted source vouches for a hint.
                if !source.is_hint() && e.source.is_hint() {
                    e.source = source;
                }
                continue;
            }
            if !self.make_room(source) {
                continue;
            }
            self.entries.insert(
                addr,
                Entry {
                    source,
                    next_try: now,
                    failures: 0,
                    busy: false,
                    seed: false,
                    worked: false,
                },
            );
            added += 1;
        }
        *self.learned.entry(source).or_default() += added as u64;
        added
    }

    /// Whether an address from `source` may be added, evicting an untried hint if need be.
    fn make_room(&mut self, source: PeerSource) -> bool {
        let hints = self.entries.values().filter(|e| !e.trusted()).count();
        let hints_full = source.is_hint() && hints >= MAX_HINTS;
        if self.entries.len() < MAX_KNOWN && !hints_full {
            return true;
        }
        // Evict the untrusted, idle entry that failed most; never a trusted one. A hint only
        // replaces a hint that has failed; a trusted address replaces any hint.
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !e.trusted() && !e.busy)
            .max_by_key(|(_, e)| e.failures)
            .map(|(a, e)| (*a, e.failures));
        match victim {
            Some((v, failures)) if !source.is_hint() || failures > 0 => {
                self.entries.remove(&v);
                true
            }
            _ => false,
        }
    }

    /// Up to `limit` addresses that are due for a dial, marked busy. `connected` holds the
    /// addresses we are connected to already; seeds are skipped once we are complete.
    pub fn due(
        &mut self,
        now: Instant,
        complete: bool,
        connected: &HashSet<SocketAddr>,
        limit: usize,
    ) -> Vec<SocketAddr> {
        let mut due: Vec<(&SocketAddr, &mut Entry)> = self
            .entries
            .iter_mut()
            .filter(|(a, e)| !e.busy && e.next_try <= now && !connected.contains(a))
            .filter(|(_, e)| !(e.seed && complete))
            .collect();
        // Trusted addresses and those that failed least first.
        due.sort_by_key(|(_, e)| (!e.trusted(), e.failures, e.next_try));
        due.into_iter()
            .take(limit)
            .map(|(a, e)| {
                e.busy = true;
                *a
            })
            .collect()
    }

    /// A dial could not start after all (no connection slot): it stays due.
    pub fn undial(&mut self, addr: &SocketAddr) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.busy = false;
        }
    }

    /// A dial failed before the handshake: back off, exponentially; a hint that keeps
    /// failing is forgotten.
    pub fn dial_failed(&mut self, addr: &SocketAddr, now: Instant) {
        let Some(e) = self.entries.get_mut(addr) else {
            return;
        };
        e.busy = false;
        e.failures += 1;
        if !e.trusted() && e.failures >= MAX_HINT_FAILURES {
            self.entries.remove(addr);
            return;
        }
        // The later of the back-off and any wait set already (a duplicate).
        e.next_try = e
            .next_try
            .max(now + Duration::from_secs(2u64.pow(e.failures.min(6))));
    }

    /// A handshake with `addr` worked.
    pub fn worked(&mut self, addr: &SocketAddr) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.worked = true;
            e.failures = 0;
        }
    }

    /// A connection to `addr` closed after the handshake.
    pub fn closed(&mut self, addr: &SocketAddr, now: Instant) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.busy = false;
            e.next_try = now + AFTER_CLOSE;
        }
    }

    /// `addr` is a peer we already have through another connection.
    pub fn duplicate(&mut self, addr: &SocketAddr, now: Instant) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.next_try = now + DUPLICATE_WAIT;
        }
    }

    pub fn mark_seed(&mut self, addr: &SocketAddr) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.seed = true;
        }
    }

    /// `addr` is ourselves: never dial it again.
    pub fn forget(&mut self, addr: &SocketAddr) {
        self.entries.remove(addr);
    }

    /// Bans `addr` (with the rest of its /64, for IPv6) and the peer id `id`.
    pub fn ban(&mut self, addr: SocketAddr, id: [u8; 20]) {
        let key = ban_key(&addr);
        self.banned_addrs.insert(key);
        self.banned_ids.insert(id);
        // A scan of the book, once per ban: bans are rare and the book is bounded.
        self.entries.retain(|a, _| ban_key(a) != key);
    }

    /// Whether `addr` may be dialed at all (ours, banned, or off loopback under the
    /// loopback promise: not).
    pub fn may_dial(&self, addr: &SocketAddr) -> bool {
        addr.port() != 0
            && !self.is_ours(addr)
            && !self.banned_addrs.contains(&ban_key(addr))
            && (!self.loopback_only || addr.ip().is_loopback())
    }

    pub fn is_banned(&self, addr: &SocketAddr, id: Option<&[u8; 20]>) -> bool {
        self.banned_addrs.contains(&ban_key(addr))
            || id.is_some_and(|id| self.banned_ids.contains(id))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What a ban holds of an address: its [`IpKey`] and its port.
fn ban_key(addr: &SocketAddr) -> (IpKey, u16) {
    (IpKey::from(addr.ip()), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(std::net::IpAddr::V4((0x0a00_0000 + i).into()), 6881)
    }

    #[test]
    fn hints_never_push_out_trusted_or_working_addresses() {
        let now = Instant::now();
        let mut b = Book::new("127.0.0.1:7000".parse().unwrap(), false);
        b.add((0..300).map(addr), PeerSource::Tracker, now);
        b.add((1000..10_000).map(addr), PeerSource::Pex, now);
        assert_eq!(b.len(), 300 + MAX_HINTS);
        // The flood filled its share; a further flood of hints is refused while none failed.
        assert_eq!(b.add((20_000..20_100).map(addr), PeerSource::Dht, now), 0);
        // Trackers' addresses still get in, in place of hints once the book is full.
        b.add((300..700).map(addr), PeerSource::Tracker, now);
        assert_eq!(b.len(), MAX_KNOWN);
        assert!((0..700).all(|i| b.entries.contains_key(&addr(i))));
        // A hint that worked is kept as trusted.
        let h = *b.entries.iter().find(|(_, e)| !e.trusted()).unwrap().0;
        b.worked(&h);
        assert!(b.entries[&h].trusted());
    }

    #[test]
    fn due_is_rate_limited_trusted_first_and_skips_ourselves_banned_and_connected() {
        let now = Instant::now();
        let mut b = Book::new("0.0.0.0:7000".parse().unwrap(), false);
        b.add(
            ["127.0.0.1:7000".parse().unwrap()],
            PeerSource::Tracker,
            now,
        );
        assert_eq!(b.len(), 0, "our own address");
        b.add((0..30).map(addr), PeerSource::Pex, now);
        b.add([addr(100)], PeerSource::User, now);
        b.ban(addr(0), [0; 20]);
        b.add([addr(0)], PeerSource::User, now);
        let connected: HashSet<SocketAddr> = [addr(1)].into();
        let first = b.due(now, false, &connected, DIALS_PER_TICK);
        assert_eq!(first.len(), DIALS_PER_TICK);
        assert_eq!(first[0], addr(100));
        assert!(!first.contains(&addr(0)) && !first.contains(&addr(1)));
        // Busy ones are not handed out twice.
        let second = b.due(now, false, &connected, 100);
        assert_eq!(second.len(), 30 - 2 - (DIALS_PER_TICK - 1));
    }

    #[test]
    fn failures_back_off_and_failing_hints_are_forgotten() {
        let now = Instant::now();
        let mut b = Book::new("127.0.0.1:7000".parse().unwrap(), false);
        b.add([addr(1)], PeerSource::Tracker, now);
        b.add([addr(2)], PeerSource::Pex, now);
        for _ in 0..MAX_HINT_FAILURES {
            for a in b.due(now + Duration::from_secs(1000), false, &HashSet::new(), 10) {
                b.dial_failed(&a, now);
            }
        }
        assert!(b.entries.contains_key(&addr(1)));
        assert!(!b.entries.contains_key(&addr(2)));
        assert!(
            b.due(now, false, &HashSet::new(), 10).is_empty(),
            "backing off"
        );
    }

    #[test]
    fn a_ban_covers_the_ipv6_64_of_the_address_but_not_the_next_64() {
        let now = Instant::now();
        let mut b = Book::new("127.0.0.1:7000".parse().unwrap(), false);
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        b.add(
            [a("[2001:db8:0:1::1]:6881"), a("[2001:db8:0:1::2]:6881")],
            PeerSource::Tracker,
            now,
        );
        b.ban(a("[2001:db8:0:1::1]:6881"), [1; 20]);
        assert_eq!(b.len(), 0, "the other address of the /64 goes too");
        assert!(b.is_banned(&a("[2001:db8:0:1:ffff::9]:6881"), None));
        let later = [a("[2001:db8:0:1::3]:6881"), a("[2001:db8:0:2::1]:6881")];
        assert_eq!(b.add(later, PeerSource::Pex, now), 1);
        assert!(
            !b.is_banned(&a("[2001:db8:0:2::1]:6881"), None),
            "another /64"
        );
        // IPv4 addresses are banned one by one, with their port, as before.
        b.ban(a("192.0.2.1:6881"), [2; 20]);
        assert!(b.is_banned(&a("[::ffff:192.0.2.1]:6881"), None));
        assert!(!b.is_banned(&a("192.0.2.2:6881"), None));
        assert!(!b.is_banned(&a("192.0.2.1:6882"), None));
    }
}
