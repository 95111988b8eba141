//! What `seed` and `fetch` show while they run: a progress bar per torrent (on standard
//! error, only when it is a terminal and not `--quiet`) and the notices the engine sends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar};
use share_engine::{Notice, PeerSource, Stats};
use tokio::sync::mpsc;

use crate::progress;
use crate::transfer::Kind;

#[derive(Clone)]
pub struct View {
    multi: Option<MultiProgress>,
    quiet: bool,
    kind: Kind,
    /// More than one torrent: lines name the torrent they are about.
    many: bool,
}

impl View {
    pub fn new(quiet: bool, kind: Kind, torrents: usize) -> View {
        View {
            multi: progress::enabled(quiet).then(MultiProgress::new),
            quiet,
            kind,
            many: torrents > 1,
        }
    }

    fn say(&self, bar: &Option<ProgressBar>, name: &str, text: String) {
        if self.quiet {
            return;
        }
        let text = if self.many {
            format!("{name}: {text}")
        } else {
            text
        };
        match bar {
            Some(b) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// A line about the whole session, above any progress bars (not with `--quiet`).
    pub fn line(&self, text: String) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => m.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Says whether peers outside can reach us, once port mapping has found out, and again
    /// whenever that changes.
    pub async fn follow_reachability(
        self,
        mut r: tokio::sync::watch::Receiver<share_engine::portmap::Reachability>,
    ) {
        use share_engine::portmap::Reachability;
        loop {
            let now = r.borrow_and_update().clone();
            if now != Reachability::Unknown {
                self.line(now.to_string());
            }
            if r.changed().await.is_err() {
                return;
            }
        }
    }

    /// Shows one torrent's notices and progress until its notices end.
    pub async fn follow(
        self,
        name: String,
        total: u64,
        notices: Option<mpsc::Receiver<Notice>>,
        stats: Arc<Stats>,
    ) {
        let Some(mut notices) = notices else {
            return;
        };
        let first = if total == 0 { "metadata" } else { "checking" };
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(progress::new_bar(total, first));
            if self.many {
                b.set_prefix(short(&name));
            }
            b
        });
        let mut checking = true;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                n = notices.recv() => match n {
                    None => break,
                    Some(n) => self.on_notice(&bar, &name, n, &mut checking),
                },
                _ = tick.tick() => if let Some(b) = &bar {
                    let pos = if checking { stats.get(&stats.checked) } else { stats.get(&stats.verified) };
                    b.set_position(pos);
                    b.set_message(status(&stats));
                },
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    }

    fn on_notice(&self, bar: &Option<ProgressBar>, name: &str, n: Notice, checking: &mut bool) {
        match n {
            Notice::Metadata {
                name: real,
                total,
                pieces,
            } => {
                if let Some(b) = bar {
                    b.set_length(total);
                    if !self.many {
                        b.set_prefix("checking");
                    }
                }
                self.say(
                    bar,
                    name,
                    format!("metadata: {real}, {total} bytes in {pieces} pieces"),
                );
            }
            Notice::Checked {
                valid,
                total,
                missing,
                found,
            } => {
                *checking = false;
                if let Some(b) = bar {
                    if !self.many {
                        b.set_prefix(if self.kind == Kind::Seed {
                            "seeding"
                        } else {
                            "fetching"
                        });
                    }
                    b.reset_eta();
                }
                if found {
                    self.say(
                        bar,
                        name,
                        format!("checked: {valid} of {total} pieces valid on disk"),
                    );
                }
                if self.kind == Kind::Seed && valid < total && valid > 0 {
                    let list: Vec<String> = missing.iter().map(u32::to_string).collect();
                    self.say(
                        bar,
                        name,
                        format!(
                            "warning: {} pieces are missing or damaged (first: {}); serving the rest",
                            total - valid,
                            list.join(", ")
                        ),
                    );
                }
            }
            Notice::Banned { addr, reason } => {
                self.say(bar, name, format!("banned peer {addr}: {reason}"))
            }
            Notice::Complete => {
                if self.kind == Kind::Fetch {
                    self.say(bar, name, "complete: every piece verified".to_owned());
                }
            }
            Notice::Warning(w) => self.say(bar, name, format!("warning: {w}")),
        }
    }
}

/// `12 peers (tracker 30, PEX 8), 1 web seed 4.1 MiB/s, up 3.2 MiB`.
fn status(stats: &Stats) -> String {
    let sources: Vec<String> = PeerSource::ALL
        .iter()
        .filter_map(|&s| {
            let n = stats.learned_from(s);
            (n > 0).then(|| format!("{} {n}", s.name()))
        })
        .collect();
    let from = if sources.is_empty() {
        String::new()
    } else {
        format!(" ({})", sources.join(", "))
    };
    let web = match stats.web_seeds.load(Ordering::Relaxed) {
        0 => String::new(),
        n => format!(
            ", {n} web seed{} {}/s",
            if n == 1 { "" } else { "s" },
            indicatif::HumanBytes(stats.get(&stats.rate_web))
        ),
    };
    format!(
        "{} peers{from}{web}, up {}",
        stats.peers.load(Ordering::Relaxed),
        indicatif::HumanBytes(stats.get(&stats.uploaded))
    )
}

fn short(name: &str) -> String {
    if name.chars().count() <= 16 {
        return name.to_owned();
    }
    let head: String = name.chars().take(15).collect();
    format!("{head}…")
}
