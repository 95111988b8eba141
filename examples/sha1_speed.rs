//! Prints single-core SHA-1 throughput of the `sha1` crate on this machine (for benchmarks).
use sha1::{Digest, Sha1};
use std::time::Instant;

fn main() {
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut h = [0u8; 20];
    for _ in 0..1024 {
        h = Sha1::digest(&buf).into();
    }
    let s = start.elapsed().as_secs_f64();
    println!("sha1: {:.0} MiB/s on one core ({:02x})", 1024.0 / s, h[0]);
}
