//! The swarm's promises, measured in the sim (see the module note).

use super::*;

/// Prints the table for N = 1, 4, 16, 32 and the free-rider case:
/// `cargo test -p share-core sim::tests::table -- --nocapture`.
#[test]
fn table() {
    for rng in 1..=3 {
        for n in [1, 4, 16, 32] {
            let mut c = Config::swarm(n);
            c.rng = rng;
            println!("{}", run(&c).line(&format!("rng {rng} N={n}")));
        }
        let mut c = Config::swarm(16);
        c.rng = rng;
        c.free_riders = 1;
        println!("{}", run(&c).line(&format!("rng {rng} N=16+1 free-rider")));
    }
}
