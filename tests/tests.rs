//! End-to-end tests: the `share` binary driven as a user or script would, and real clients
//! (mktorrent, libtorrent, aria2, ...) on the other side.

mod craft;
mod util;

mod blocklist;
mod confined;
mod create;
mod daemon;
mod dht;
mod egress;
mod encryption;
mod gateway;
mod hostile;
mod hostile_load;
mod inspect;
mod interop;
mod ipv6;
mod lsd;
mod magnet;
mod netns;
mod odd_torrents;
mod pex;
mod private;
mod qbt;
mod queue;
mod regression;
mod scale;
mod session;
mod swarm;
mod through_trackers;
mod trackers;
mod transfer;
mod trpc;
mod utp;
mod v2;
mod webseed;
