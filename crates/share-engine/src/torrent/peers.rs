//! The torrent task's connections: remembering and dialing addresses, admitting peers,
//! closing and banning them.

use super::*;

impl Torrent {
    pub(super) fn spawn_peer(&mut self, addr: SocketAddr, stream: Option<TcpStream>) -> PeerKey {
        let key = self.next_key;
        self.next_key += 1;
        tokio::spawn(peer::run(key, addr, stream, self.shared.clone()));
        key
    }

    /// Remembers addresses (from a tracker) to dial.
    pub(super) fn add_known(&mut self, addrs: Vec<SocketAddr>) {
        let now = Instant::now();
        let ours = |a: &SocketAddr| {
            a.port() == self.listen.port()
                && (a.ip() == self.listen.ip()
                    || a.ip().is_loopback()
                    || self.listen.ip().is_unspecified())
        };
        for addr in addrs.into_iter().filter(|a| !ours(a)) {
            if self.known.len() >= MAX_KNOWN {
                break;
            }
            if !self.known.iter().any(|k| k.addr == addr) {
                self.known.push(Known {
                    addr,
                    next_try: now,
                    failures: 0,
                    busy: false,
                    seed: false,
                });
            }
        }
        self.dial_known();
    }

    pub(super) fn accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        if self.peers.len() + self.dialing.len() >= self.config.max_peers
            || self.banned_addrs.contains(&addr)
        {
            return;
        }
        self.spawn_peer(addr, Some(stream));
    }

    /// Dials known addresses that are due, while there is room and something to fetch.
    pub(super) fn dial_known(&mut self) {
        let now = Instant::now();
        let connected: HashSet<SocketAddr> = self
            .peers
            .values()
            .flat_map(|p| std::iter::once(p.addr).chain(p.listen_addr))
            .collect();
        let due: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|k| !k.busy && k.next_try <= now && !connected.contains(&k.addr))
            .filter(|k| !(k.seed && self.picker.is_complete()))
            .map(|k| k.addr)
            .collect();
        for addr in due {
            if self.peers.len() + self.dialing.len() >= self.config.max_peers {
                break;
            }
            if self.banned_addrs.contains(&addr) {
                continue;
            }
            if let Some(k) = self.known.iter_mut().find(|k| k.addr == addr) {
                k.busy = true;
            }
            let key = self.spawn_peer(addr, None);
            self.dialing.insert(key, addr);
        }
    }

    pub(super) fn on_connected(
        &mut self,
        key: PeerKey,
        addr: SocketAddr,
        hs: Handshake,
        tx: mpsc::Sender<Command>,
        queued: Arc<AtomicUsize>,
        token: CancellationToken,
    ) {
        let banned = self.banned_ids.contains(&hs.peer_id) || self.banned_addrs.contains(&addr);
        let outgoing = self.dialing.contains_key(&key);
        // Two connections to one peer: both sides keep the one that the lower peer id dialed,
        // so that when both dial at once they do not each close a different one (and keep
        // neither).
        let mut duplicate = false;
        if let Some((&old_key, old)) = self.peers.iter().find(|(_, p)| p.peer_id == hs.peer_id) {
            let we_are_lower = self.shared.peer_id < hs.peer_id;
            let keep_new = old.outgoing != outgoing && outgoing == we_are_lower;
            if keep_new {
                old.token.cancel();
                self.drop_peer(old_key);
            } else {
                duplicate = true;
            }
            // The address is a peer we have: no need to dial it for a while.
            if let Some(k) = self.known.iter_mut().find(|k| k.addr == addr) {
                k.next_try = Instant::now() + Duration::from_secs(300);
            }
        }
        if banned || duplicate || self.peers.len() >= self.config.max_peers {
            token.cancel();
            return;
        }
        let count = self.info.piece_count();
        let peer = Peer {
            addr,
            outgoing,
            listen_addr: None,
            peer_id: hs.peer_id,
            tx,
            token,
            queued,
            has: Bitfield::new(count),
            fast: hs.supports_fast(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: HashSet::new(),
            depth: MIN_DEPTH * 2,
            reqq: 250,
            allowed_fast: HashSet::new(),
            received_this_tick: 0,
            received_total: 0,
            rate: 0.0,
            last_block: Instant::now(),
            interested_since: Instant::now(),
            strikes: 0,
            bad_requests: 0,
        };
        let have = self.picker.have();
        if peer.fast && have.count() == 0 {
            peer.send(Message::HaveNone);
        } else if peer.fast && have.is_complete() {
            peer.send(Message::HaveAll);
        } else if have.count() > 0 {
            peer.send(Message::Bitfield(have.as_bytes().to_vec().into()));
        }
        tracing::debug!(%addr, client = %String::from_utf8_lossy(&hs.peer_id[..8]), "connected");
        self.peers.insert(key, peer);
        self.stats.peers.store(self.peers.len(), Ordering::Relaxed);
    }

    pub(super) fn on_closed(&mut self, key: PeerKey, reason: &str) {
        let addr = self
            .peers
            .get(&key)
            .map(|p| p.addr)
            .or(self.dialing.get(&key).copied());
        tracing::debug!(peer = ?addr, reason, "connection closed");
        let now = Instant::now();
        if reason == peer::SELF_CONNECTION {
            if let Some(addr) = self.dialing.get(&key) {
                let addr = *addr;
                self.known.retain(|k| k.addr != addr);
            }
        }
        if let Some(addr) = self.dialing.remove(&key) {
            // Never got through the handshake: back off before trying again.
            if let Some(k) = self.known.iter_mut().find(|k| k.addr == addr) {
                k.busy = false;
                k.failures += 1;
                // The later of the back-off and any wait set already (a duplicate).
                k.next_try = k
                    .next_try
                    .max(now + Duration::from_secs(2u64.pow(k.failures.min(6))));
            }
        }
        self.drop_peer(key);
    }

    /// Forgets peer `key` (closing its connection): its requests go back to the picker and
    /// then to the others, its pieces leave the availability counts, its slot is freed.
    pub(super) fn drop_peer(&mut self, key: PeerKey) {
        let now = Instant::now();
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        p.log_totals();
        p.token.cancel();
        for b in &p.inflight {
            self.picker.request_dropped(b, key);
        }
        self.picker.peer_lost_all(&p.has);
        self.count_seeds();
        self.choker.remove(key);
        if let Some(k) = self.known.iter_mut().find(|k| k.addr == p.addr) {
            k.busy = false;
            k.next_try = now + Duration::from_secs(3);
        }
        self.stats.peers.store(self.peers.len(), Ordering::Relaxed);
        // Its requests go to the others.
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
    }

    pub(super) fn ban(&mut self, key: PeerKey, reason: String) {
        if let Some(p) = self.peers.get(&key) {
            self.banned_addrs.insert(p.addr);
            self.banned_ids.insert(p.peer_id);
            let _ = self.notices.send(Notice::Banned {
                addr: p.addr,
                reason,
            });
            p.token.cancel();
        }
    }
}
