//! The transfer phase: the [`Torrent`] (the picker, the peer table, pieces being assembled,
//! uploads, choking), how it starts (place the files, check what is there, start the disk
//! thread), the event loop that is its one owner, and the wind-down (tell the trackers,
//! flush the disk, write resume data, close every connection).
//!
//! What the loop does with each kind of event lives beside it: peers come and go in
//! `peers.rs`, their messages in `exchange.rs` and `extensions.rs`, choking in
//! `choking.rs`, piece priorities and readers' deadlines in `priorities.rs`, the views the
//! daemon asks for in `status.rs`, resume data in `check.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use share_core::choker::Choker;
use share_core::picker::{PeerKey, Picker};
use share_core::seeding::Handout;
use share_core::{Info, Metainfo};
use share_storage::store::Store;
use share_storage::Layout;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::base::Base;
use super::peers::Peer;
use super::{check, magnet, priorities, Outcome, TorrentCommand};
use crate::assembly::Assembler;
use crate::ctx::ContentClaim;
use crate::disk::{self, Done, Job};
use crate::peer::{Command, Event};
use crate::uploads::Uploads;
use crate::{EngineError, Notice};

/// Jobs queued for the disk thread. Most are single-block reads for uploads; the pieces
/// among them are already bounded by the assembly budget (a piece stays "under way" in the
/// picker until the disk thread has verified it).
const DISK_QUEUE: usize = 16;
/// Memory for pieces being assembled: bounds the pieces under way.
const ASSEMBLY_BUDGET: u64 = 32 << 20;
/// Pieces under way at once for a torrent whose pieces are written through to the disk.
const WRITE_THROUGH_PARTIAL: usize = 8;
/// How often resume data is written while pieces arrive.
const RESUME_EVERY: Duration = Duration::from_secs(30);

/// A torrent in its transfer phase: the one owner of its transfer state.
pub(super) struct Torrent {
    pub(super) base: Base,
    pub(super) meta: Metainfo,
    pub(super) info: Info,
    pub(super) picker: Picker,
    pub(super) peers: HashMap<PeerKey, Peer>,
    /// Connections banned in this run (their blocks may still be in pieces under way).
    pub(super) banned_keys: HashSet<PeerKey>,
    /// Readers waiting for pieces, in the order they asked.
    pub(super) waiters: Vec<(std::ops::Range<u32>, oneshot::Sender<()>)>,
    /// When resume data was last written, and how many pieces it held.
    pub(super) resume_saved: Option<(Instant, u32)>,
    pub(super) choker: Choker,
    /// A slot came free: re-run the choker's ranking at the next tick.
    pub(super) rechoke_soon: bool,
    /// A seed's ledger of what it handed out to whom (`handout.rs`); made once every
    /// piece is here.
    pub(super) handout: Option<Handout>,
    pub(super) started: Instant,
    /// Pieces being assembled from blocks and hashed as they arrive.
    pub(super) assembly: Assembler,
    /// Pieces read for uploads, and requests waiting for them.
    pub(super) uploads: Uploads,
    pub(super) disk: mpsc::Sender<Job>,
    /// Where the files are (below a confined root).
    pub(super) layout: Layout,
    /// The torrent's hold on its folder in the session.
    _content: ContentClaim,
    /// BitTorrent v2: layers being fetched, failed pieces' bad blocks being found.
    pub(super) v2: super::v2::V2State,
    /// Web seeds and the requests in flight to them.
    pub(super) web: super::web::Web,
    /// Hole punching (BEP 55): who introduced which address, and what we asked.
    pub(super) punch: super::holepunch::Punch,
}

/// The second phase: check the data, then exchange pieces.
pub(super) async fn transfer(
    mut base: Base,
    meta: Metainfo,
    handed: Vec<(PeerKey, magnet::Connected)>,
) -> Result<Outcome, EngineError> {
    let info = meta.info.clone();
    base.metainfo
        .send_replace(Some(std::sync::Arc::new(meta.clone())));
    base.stats.total.store(info.total_length, Ordering::Relaxed);
    if let Err(e) = priorities::apply_file_filter(&mut base.config, &info) {
        base.stop_trackers().await;
        return Err(e);
    }
    let (layout, claim) = match check::place(&base.ctx, &base.config, &info) {
        Ok(p) => p,
        Err(e) => {
            base.stop_trackers().await;
            return Err(e);
        }
    };
    let (have, found) = {
        base.stats.set_state(crate::State::CheckWait);
        let _turn = base.ctx.checks.clone().acquire_owned().await;
        base.stats.set_state(crate::State::Checking);
        let resume = base.resume_path();
        check::check(
            &layout,
            &meta,
            &base.stats,
            resume.as_deref(),
            base.shared.info_hash.0,
        )
        .await
    };
    let missing: Vec<u32> = (0..info.piece_count()).filter(|&i| !have.get(i)).collect();
    base.notice(Notice::Checked {
        valid: have.count(),
        total: have.len(),
        missing: missing.iter().copied().take(64).collect(),
        found,
    });
    if base.config.seed_only && have.count() == 0 {
        base.stop_trackers().await;
        return Err(EngineError::NothingToSeed(base.config.dir.join(&info.name)));
    }
    let mut store = Store::with_budget(layout.clone(), base.ctx.files.clone());
    // Every file at full length, and BEP 47's executables and symlinks, even when the data
    // is all there already (a seed only serves what it has).
    if !base.config.seed_only {
        let skip = priorities::unwanted_slots(&info, &base.config.wanted);
        if let Err(e) = store.allocate_except(&skip) {
            base.stop_trackers().await;
            return Err(e.into());
        }
    }

    let (jobs_tx, jobs_rx) = mpsc::channel(DISK_QUEUE);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let disk_lane = disk::spawn(
        base.ctx.disk.clone(),
        store,
        jobs_rx,
        done_tx,
        disk::test_slowness(&info.name),
    );
    let mut picker = Picker::new(info.piece_length, info.total_length, have, rand::random());
    let mut assembly = Assembler::new(info.piece_length, base.ctx.memory.clone());
    if !info.v1 {
        assembly = assembly.v2_only();
    }
    // Pieces under way cost their buffers when assembled in memory; written through to the
    // disk they cost little, but each one spreads the peers thinner.
    picker.set_max_partial(if assembly.writes_through() {
        WRITE_THROUGH_PARTIAL
    } else {
        (ASSEMBLY_BUDGET / info.piece_length as u64).clamp(2, 4096) as usize
    });
    picker.set_priorities(priorities::piece_priorities(
        &info,
        &base.config.wanted,
        &base.config.priorities,
    ));
    picker.set_sequential(base.config.sequential);
    base.set_complete(picker.is_done());
    base.start_trackers();
    let v2 = super::v2::V2State::new(&meta);
    let web_urls: Vec<String> = meta
        .url_list
        .iter()
        .chain(&base.web_seeds)
        .cloned()
        .collect();
    let web = super::web::Web::start(
        &web_urls,
        std::sync::Arc::new(info.clone()),
        base.shared.bind_ip,
        base.shared.egress.clone(),
        base.ctx.loopback_only,
        base.token.child_token(),
    );
    let mut choker = Choker::new(base.config.upload_slots, rand::random());
    // A downloading peer's optimistic turn ends after a piece's worth: what a newcomer
    // needs to trade.
    choker.set_optimistic_turn(info.piece_length as u64);
    let mut t = Torrent {
        picker,
        choker,
        rechoke_soon: false,
        handout: None,
        started: Instant::now(),
        assembly,
        uploads: Uploads::new(info.piece_length, base.ctx.memory.clone()),
        disk: jobs_tx,
        info,
        meta,
        peers: HashMap::new(),
        banned_keys: HashSet::new(),
        waiters: Vec::new(),
        resume_saved: None,
        layout,
        _content: claim,
        v2,
        web,
        punch: Default::default(),
        base,
    };
    if t.picker.is_done() {
        t.base.notice(Notice::Complete);
    }
    t.start_handout();
    t.set_state();
    let had_pieces = t.picker.have().count() > 0;
    for (key, c) in handed {
        if had_pieces {
            // It was told we have nothing; simpler to reconnect than to correct that.
            c.token.cancel();
        } else {
            t.adopt(key, c).await;
        }
    }
    t.dial_known();

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failure = None;
    loop {
        if t.base.config.stop_when_complete && t.picker.is_done() {
            break;
        }
        tokio::select! {
            _ = t.base.token.cancelled() => break,
            Some((key, ev)) = t.base.events.recv() => t.on_event(key, ev).await,
            Some(d) = done.recv() => match d {
                Done::Written { index, buf } => {
                    if let Some(old) = t.uploads.insert(index, buf) {
                        t.assembly.recycle(old);
                    }
                    t.on_written(index);
                }
                Done::Stored { index } | Done::Checked { index, ok: true } => t.on_written(index),
                Done::Checked { index, ok: false } => t.on_failed(index),
                Done::Read { unit, data } => t.on_unit_read(unit, data),
                Done::Leaves { key, range, piece, leaves } => t.on_leaves(key, range, piece, leaves),
                Done::Failed(e) => { failure = Some(e); break; }
                Done::Synced => t.save_resume(),
            },
            Some(c) = t.base.cmds.recv() => t.on_command(c).await,
            Some(ev) = t.web.rx.recv() => t.on_web(ev).await,
            Some((source, addrs)) = t.base.found.recv() => {
                t.base.add_found(source, addrs);
                t.dial_known();
            }
            _ = tick.tick() => t.on_tick(),
        }
        t.base.sync_uploaded();
    }

    // Wind down: tell the trackers, flush the disk, then close every connection.
    let complete = t.picker.is_done();
    let stopping = t.base.tracker.take();
    if let Some(s) = &stopping {
        s.stop.cancel();
    }
    if failure.is_none() && t.disk.send(Job::Sync).await.is_ok() {
        while let Some(d) = done.recv().await {
            match d {
                Done::Synced => {
                    t.save_resume();
                    break;
                }
                Done::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                _ => {}
            }
        }
    }
    t.web.log_totals();
    for p in t.peers.values() {
        p.log_totals();
        let _ = p.tx.try_send(Command::Close);
    }
    drop(t.disk);
    // Give writers a moment to flush a last message, then cut everything.
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.base.shared.shutdown.cancel();
    t.base.sync_uploaded();
    let _ = disk_lane.await;
    if let Some(s) = stopping {
        s.wait().await;
    }
    if let Some(e) = failure {
        return Err(EngineError::Disk(e));
    }
    Ok(Outcome { complete })
}

impl Torrent {
    async fn on_event(&mut self, key: PeerKey, ev: Event) {
        match ev {
            Event::Connected(link) => self.on_connected(key, link),
            Event::Closed(reason) => self.on_closed(key, reason),
            Event::Messages(batch, _permit) => {
                for m in batch {
                    // A peer closed or banned by an earlier message: the rest is not read.
                    match self.peers.get(&key) {
                        Some(p) if !p.token.is_cancelled() => {}
                        _ => break,
                    }
                    self.on_message(key, m).await;
                }
                self.turns_over();
            }
        }
    }

    async fn on_command(&mut self, c: TorrentCommand) {
        match c {
            TorrentCommand::Incoming {
                stream,
                addr,
                handshake,
                permit,
                via,
            } => {
                let n = self.peers.len();
                self.base.admit(stream, addr, handshake, permit, via, n);
            }
            TorrentCommand::Pause => {
                if !self.base.paused {
                    self.base.paused = true;
                    for p in self.peers.values() {
                        p.token.cancel();
                    }
                    self.web_pause();
                    self.base.stop_trackers().await;
                }
            }
            TorrentCommand::Resume => {
                if self.base.paused {
                    self.base.paused = false;
                    self.base.start_trackers();
                    self.dial_known();
                }
            }
            TorrentCommand::Files(reply) => {
                let _ = reply.send(self.files());
            }
            TorrentCommand::Status(reply) => {
                let _ = reply.send(self.status());
            }
            TorrentCommand::SetLimits { up, down } => self.base.set_limits(up, down),
            TorrentCommand::SetFiles { wanted, priorities } => self.set_files(wanted, priorities),
            TorrentCommand::Want { pieces, reply } => self.want(pieces, reply),
            TorrentCommand::SetTrackers(tiers) => self.base.set_trackers(tiers),
            TorrentCommand::Reannounce => {
                if !self.base.paused {
                    self.base.ask_for_peers();
                }
            }
            TorrentCommand::SetSequential(on) => {
                self.base.config.sequential = on;
                self.picker.set_sequential(on);
            }
        }
        self.set_state();
    }

    /// Downloading, seeding or paused, as it is now.
    pub(super) fn set_state(&self) {
        let s = if self.base.paused {
            crate::State::Paused
        } else if self.picker.is_done() {
            crate::State::Seeding
        } else {
            crate::State::Downloading
        };
        self.base.stats.set_state(s);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.uploads.trim_idle(now.into_std());
        self.v2_tick();
        self.base.rates.tick(&self.base.stats);
        self.set_state();
        for p in self.peers.values_mut() {
            let sent = p.sent.load(Ordering::Relaxed);
            p.rate_to_peer = crate::smooth(p.rate_to_peer, sent.saturating_sub(p.sent_last));
            p.sent_last = sent;
        }
        self.count_seeds();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &key in &keys {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            if let Some(stalled) = p.state.tick(now.into_std()) {
                // Stalled: its requests go to others.
                for b in &stalled.withdrawn {
                    self.picker.request_dropped(b, key);
                }
                if let Some(offence) = stalled.offence {
                    self.punish(key, offence);
                    continue;
                }
            }
            self.update_interest(key);
        }
        self.rechoke(now);
        for key in keys {
            self.fill(key);
        }
        self.offers_tick();
        self.web_tick();
        self.drop_blocked();
        self.send_pex(now);
        self.dial_known();
        if self.peers.is_empty() && self.base.dialing.is_empty() && !self.picker.is_done() {
            self.base.ask_for_peers();
        }
        // Resume data about every half minute while pieces arrive: sync first (the answer
        // writes it, see `save_resume`).
        let count = self.picker.have().count();
        let due = match self.resume_saved {
            None => count > 0,
            Some((at, n)) => n != count && at.elapsed() >= RESUME_EVERY,
        };
        if due && self.base.config.resume && self.disk.try_send(Job::Sync).is_ok() {
            self.resume_saved = Some((Instant::now(), count));
        }
    }
}
