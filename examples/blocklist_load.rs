//! Reads blocklists (P2P text, eMule DAT, CIDR; plain or gzip) as `--blocklist` does and
//! prints the ranges kept, the bytes they take and the time taken (for the numbers in
//! docs/engine.md; run under `/usr/bin/time -v` for the peak RSS).
use std::time::Instant;

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: blocklist_load LIST...");
        std::process::exit(2);
    }
    let start = Instant::now();
    let mut b = share_core::blocklist::Builder::new();
    for p in &paths {
        let f = std::fs::File::open(p).unwrap_or_else(|e| {
            eprintln!("{p}: {e}");
            std::process::exit(1)
        });
        match b.add(f) {
            Ok(l) => println!("{p}: {} entries, {} bad lines", l.entries, l.bad_lines),
            Err(e) => {
                eprintln!("{p}: {e}");
                std::process::exit(1)
            }
        }
    }
    let list = b.finish();
    println!(
        "{} ranges, {} KiB held, in {:.3} s",
        list.len(),
        list.heap_size() / 1024,
        start.elapsed().as_secs_f64()
    );
}
