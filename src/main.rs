//! `share`: the command-line shell. Parsing, progress display, exit codes; the work itself
//! lives in the crates under `crates/`.

mod cli;
mod create;
mod inspect;
mod progress;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Create(args) => create::run(args),
        cli::Command::Inspect(args) => inspect::run(args),
        cli::Command::Seed(args) => transfer::seed(args),
        cli::Command::Fetch(args) => transfer::fetch(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
