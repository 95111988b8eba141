//! Progress bars on standard error, shown only when it is a terminal and not `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress bars are drawn: standard error is a terminal and `--quiet` is off.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A byte progress bar.
pub fn new_bar(total: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
        )
        .expect("valid template")
        // While nothing arrives there is no estimate: `-`, not `0s`.
        .with_key(
            "eta",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = if state.per_sec() < 1.0 || state.len().is_none() {
                    write!(w, "-")
                } else {
                    write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
                };
            },
        )
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A byte progress bar, or nothing when it should not be drawn.
pub fn bytes_bar(total: u64, quiet: bool, prefix: &str) -> Option<ProgressBar> {
    enabled(quiet).then(|| new_bar(total, prefix))
}

/// Runs `work` while a bar follows `counter`; the bar is cleared when the work ends.
pub fn track<T>(bar: Option<ProgressBar>, counter: &AtomicU64, work: impl FnOnce() -> T + Send) -> T
where
    T: Send,
{
    let Some(bar) = bar else {
        return work();
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(counter.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(50));
            }
            bar.finish_and_clear();
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        out
    })
}
