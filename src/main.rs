//! `share`: the command-line shell. Parsing, progress display, exit codes; the work itself
//! lives in the crates under `crates/`.

mod cli;
mod create;
mod daemon;
mod guard;
mod human;
mod inspect;
mod progress;
mod signals;
mod tracker;
mod transfer;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = cli::Cli::parse();
    // Diagnostics on standard error when asked for: SHARE_LOG=debug (or a filter such as
    // share_engine=debug).
    // The daemon is a service: its warnings (damaged state, refused resume data, failed
    // writes) go to standard error unless SHARE_LOG says otherwise.
    // Where traffic goes (an interface down and back, what a proxy turns off) is said by
    // `seed` and `fetch` too, unless --quiet.
    let quiet = matches!(&cli.command, cli::Command::Seed(a) if a.net.quiet)
        || matches!(&cli.command, cli::Command::Fetch(a) if a.net.quiet);
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHARE_LOG")
        .ok()
        .or_else(|| match cli.command {
            cli::Command::Daemon(_) => Some(tracing_subscriber::EnvFilter::new(
                "warn,share_engine::egress=info",
            )),
            cli::Command::Seed(_) | cli::Command::Fetch(_) if !quiet => Some(
                tracing_subscriber::EnvFilter::new("share_engine::egress=info"),
            ),
            _ => None,
        });
    if let Some(filter) = filter {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    if quiet {
        inspect::quiet_warnings();
    }
    let result = match cli.command {
        cli::Command::Create(args) => create::run(args),
        cli::Command::Inspect(args) => inspect::run(args),
        cli::Command::Seed(args) => transfer::seed(args),
        cli::Command::Fetch(args) => transfer::fetch(args),
        cli::Command::Tracker(args) => tracker::run(args),
        cli::Command::Daemon(args) => daemon::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Tells glibc's allocator to keep freed memory for reuse instead of handing it back to the
/// kernel at once. A transfer frees and allocates receive buffers and piece buffers all the
/// time; returned memory came back as fresh pages, and a leecher spent 7% of its CPU time in
/// page faults and zeroing them.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
