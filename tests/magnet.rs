//! Magnet links (BEP 9): share fetching the metadata from libtorrent and serving it to
//! libtorrent and aria2, resuming with the metadata it kept, and peers that lie about it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sha1::{Digest, Sha1};
use share_core::ext::{OurHandshake, Registry};
use share_core::metadata::{self, MetadataMsg};
use share_core::wire::{Handshake, Message};
use share_core::InfoHash;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn lt_seed(t: &std::path::Path, dir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut p = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("seed")
            .arg(t)
            .arg(dir)
            .args(["--timeout", "200"])
            .args(extra),
    );
    assert!(
        p.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "libtorrent did not seed: {}",
        p.stderr()
    );
    p
}

fn content(d: &Dir) -> std::path::PathBuf {
    d.data_file("src/tree/a.bin", 700_001, 41);
    d.data_file("src/tree/sub/b.bin", 300_000, 42);
    d.join("src/tree")
}

fn assert_fetched(d: &Dir, fetch: &mut Proc) {
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "share fetch: {}", fetch.stderr());
    for f in ["a.bin", "sub/b.bin"] {
        assert_same_file(&d.join("src/tree").join(f), &d.join("dst/tree").join(f));
    }
    assert!(
        fetch.stderr().contains("metadata: tree, 1000001 bytes"),
        "{}",
        fetch.stderr()
    );
}

#[test]
fn share_fetches_a_magnet_from_libtorrent_through_share_tracker() {
    if !require_libtorrent() {
        return;
    }
    let tracker =
        Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]));
    let d = Dir::new();
    let path = content(&d);
    let url = format!("http://{}/announce", tracker.addr);
    let t = make_torrent(&d, &path, 16384, &["-t", &url]);
    let (_, link) = magnet_of(&t);
    assert!(link.contains("&tr="), "{link}");
    let _seed = lt_seed(&t, &d.join("src"), &[]);
    let mut fetch = start_fetch_of(&link, &d.join("dst"), &[], &[]);
    assert_fetched(&d, &mut fetch);
}

#[test]
fn share_fetches_a_magnet_from_libtorrent_given_only_x_pe() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let seed = lt_seed(&t, &d.join("src"), &[]);
    let (hash, _) = magnet_of(&t);
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={}", seed.addr);
    let mut fetch = start_fetch_of(&link, &d.join("dst"), &[], &[]);
    assert_fetched(&d, &mut fetch);
}

#[test]
fn libtorrent_fetches_a_magnet_from_share_seed() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let (_, link) = magnet_of(&t);
    std::fs::create_dir_all(d.join("dst")).unwrap();
    let mut lt = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("fetch")
            .arg(&link)
            .arg(d.join("dst"))
            .args(["--peer", &seed.addr.to_string(), "--timeout", "80"]),
    );
    assert!(
        lt.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "libtorrent: {}\nshare seed: {}",
        lt.stderr(),
        seed.stderr()
    );
    assert!(lt.stdout.iter().any(|l| l == "metadata"));
    for f in ["a.bin", "sub/b.bin"] {
        assert_same_file(&d.join("src/tree").join(f), &d.join("dst/tree").join(f));
    }
    assert_eq!(seed.stop().0, Some(0));
}

#[test]
fn aria2_fetches_a_magnet_from_share_seed_through_share_tracker() {
    if !require("aria2c", "aria2") {
        return;
    }
    let tracker =
        Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]));
    let d = Dir::new();
    let path = content(&d);
    let url = format!("http://{}/announce", tracker.addr);
    let t = make_torrent(&d, &path, 16384, &["-t", &url]);
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let (_, link) = magnet_of(&t);
    let out = run(Command::new("bash")
        .arg(peer_script("aria2_fetch.sh"))
        .arg(&link)
        .arg(d.join("dst"))
        .arg(&url)
        .args(["--timeout", "80"]));
    assert!(
        out.status.success(),
        "aria2: {}\n{}\nshare seed: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        seed.stderr()
    );
    for f in ["a.bin", "sub/b.bin"] {
        assert_same_file(&d.join("src/tree").join(f), &d.join("dst/tree").join(f));
    }
    assert_eq!(seed.stop().0, Some(0));
}

#[test]
fn a_magnet_fetch_run_again_keeps_its_metadata_and_its_pieces() {
    let d = Dir::new();
    let total = 4 << 20;
    d.data_file("src/big.bin", total, 43);
    let full = std::fs::read(d.join("src/big.bin")).unwrap();
    let t = make_torrent(&d, &d.join("src/big.bin"), 65536, &[]);
    let seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "1M"]);
    let (hash, _) = magnet_of(&t);
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={}", seed.addr);
    let state = d.join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    let mut first = start_fetch_of(&link, &d.join("dst"), &[], &["--state-dir", &state_arg]);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while bytes_in_place(&full, &d.join("dst/big.bin"), 65536) < total / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {}",
            first.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&first.child, "KILL");
    let _ = first.wait(Duration::from_secs(10));
    assert!(state.join(format!("metadata/{hash}.torrent")).exists());

    // The seed is gone and a new one does not offer metadata... it does, but the second
    // run must not need it: no `metadata:` line, and the pieces on disk are kept.
    let mut second = start_fetch_of(&link, &d.join("dst"), &[], &["--state-dir", &state_arg]);
    let (code, _) = second.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", second.stderr());
    let err = second.stderr();
    assert!(
        !err.contains("metadata:"),
        "fetched the metadata again: {err}"
    );
    let checked = err
        .lines()
        .find_map(|l| l.strip_prefix("checked: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(checked > 0, "no pieces kept: {err}");
    assert_same_file(&d.join("src/big.bin"), &d.join("dst/big.bin"));
    let (_, down) = second.transfer_counts();
    assert!(
        down < total as u64,
        "fetched everything again ({down} bytes)"
    );
}

// ---- Peers that lie about the metadata ----

enum Lie {
    /// Claims a `metadata_size` of 4 GiB.
    HugeSize,
    /// Claims the right size, sends pieces of zeros.
    WrongPieces(usize),
    /// Serves these bytes as the metadata, correctly framed.
    Serve(Vec<u8>),
}

/// A peer that offers ut_metadata and answers requests according to `lie`. The flag says
/// the connection ended (share closed it).
fn metadata_peer(hash: InfoHash, lie: Lie) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    std::thread::spawn(move || {
        let Some(mut s) = accept_plaintext(&listener) else {
            return;
        };
        let mut id = *b"-XX0000-metaliar0000";
        id[19] = b'0' + (addr.port() % 10) as u8;
        id[18] = b'0' + (addr.port() / 10 % 10) as u8;
        s.write_all(&Handshake::new(hash, id).encode()).unwrap();
        let size: u64 = match &lie {
            Lie::HugeSize => 4 << 30,
            Lie::WrongPieces(n) => *n as u64,
            Lie::Serve(b) => b.len() as u64,
        };
        let ours = match u32::try_from(size) {
            Ok(small) => OurHandshake {
                registry: Registry::public(),
                port: None,
                version: "metaliar",
                reqq: 10,
                metadata_size: Some(small),
                yourip: None,
            }
            .encode(),
            // 4 GiB does not fit the encoder's u32: write the claim by hand.
            Err(_) => format!("d1:md11:ut_metadatai1ee13:metadata_sizei{size}ee").into_bytes(),
        };
        send(
            &mut s,
            Message::Extended {
                id: 0,
                payload: ours.into(),
            },
        );
        let mut buf = BytesMut::new();
        // share's id for ut_metadata, from its extension handshake.
        let mut their_id = None;
        while let Some(m) = read_until(&mut s, &mut buf, |m| matches!(m, Message::Extended { .. }))
        {
            let Message::Extended { id, payload } = m else {
                continue;
            };
            if id == 0 {
                their_id = share_core::ext::ExtHandshake::parse(&payload)
                    .ok()
                    .and_then(|h| h.metadata_id);
                continue;
            }
            let Ok(MetadataMsg::Request(piece)) = MetadataMsg::parse(&payload) else {
                continue;
            };
            let data = match &lie {
                Lie::HugeSize => vec![0u8; metadata::PIECE],
                Lie::WrongPieces(n) => {
                    vec![0u8; (*n - piece as usize * metadata::PIECE).min(metadata::PIECE)]
                }
                Lie::Serve(b) => metadata::piece_of(b, piece).unwrap_or_default().to_vec(),
            };
            let reply = MetadataMsg::Data {
                piece,
                total_size: Some(size as i64),
                data: &data,
            };
            let mut out = BytesMut::new();
            Message::Extended {
                id: their_id.unwrap_or(1),
                payload: reply.encode().into(),
            }
            .encode(&mut out);
            if s.write_all(&out).is_err() {
                break;
            }
        }
        flag.store(true, Ordering::SeqCst);
    });
    (addr, closed)
}

#[test]
fn peers_that_lie_about_the_metadata_are_banned_and_an_honest_one_completes_the_fetch() {
    let d = Dir::new();
    d.data_file("src/f.bin", 2_000_000, 44);
    let t = make_torrent(&d, &d.join("src/f.bin"), 16384, &[]);
    let meta = share_core::Metainfo::from_bytes(&std::fs::read(&t).unwrap()).unwrap();
    let hash = meta.info_hash;
    let (huge, huge_closed) = metadata_peer(hash, Lie::HugeSize);
    let (wrong, wrong_closed) = metadata_peer(hash, Lie::WrongPieces(meta.info_bytes.len()));
    // The honest seed comes later, on a port the fetch already knows, so that the liars
    // are asked first.
    let port = free_port();
    let honest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={huge}&x.pe={wrong}&x.pe={honest}");
    let mut fetch = start_fetch_of(&link, &d.join("dst"), &[], &[]);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !(huge_closed.load(Ordering::SeqCst) && wrong_closed.load(Ordering::SeqCst)) {
        assert!(
            std::time::Instant::now() < deadline,
            "liars not dropped: {}",
            fetch.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _seed = Proc::start(
        share()
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", &honest.to_string()]),
    );
    let (code, _) = fetch.wait(TIMEOUT);
    let err = fetch.stderr();
    assert_eq!(code, Some(0), "{err}");
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    assert!(
        err.contains(&format!(
            "banned peer {huge}: claims a metadata_size of 4294967296 bytes"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "banned peer {wrong}: sent metadata that does not match the info-hash"
        )),
        "{err}"
    );
    // Nothing near 4 GiB was ever allocated.
    let rss = peak_rss(fetch.child.id());
    assert!(rss == 0 || rss < 200 << 20, "peak RSS {rss}");
}

/// A single-file info dictionary with `extra` spliced in before `length`.
fn info_with(extra: &[u8], name: &str, files: Option<&[u8]>) -> Vec<u8> {
    let data = vec![7u8; 1000];
    let piece: [u8; 20] = Sha1::digest(&data).into();
    let mut out = b"d".to_vec();
    out.extend_from_slice(extra);
    match files {
        Some(f) => out.extend_from_slice(f),
        None => out.extend_from_slice(b"6:lengthi1000e"),
    }
    out.extend_from_slice(format!("4:name{}:{name}", name.len()).as_bytes());
    out.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
    out.extend_from_slice(&piece);
    out.push(b'e');
    out
}

fn refused(info: Vec<u8>, expect: &str) {
    let d = Dir::new();
    let hash = InfoHash(Sha1::digest(&info).into());
    let (liar, _) = metadata_peer(hash, Lie::Serve(info));
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={liar}");
    let mut fetch = start_fetch_of(&link, &d.join("dst"), &[], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    let err = fetch.stderr();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("the metadata for {hash} is not a usable torrent")),
        "{err}"
    );
    assert!(err.contains(expect), "{err}");
    // Nothing written, in the folder or beside it.
    assert!(
        !d.join("dst").exists() || std::fs::read_dir(d.join("dst")).unwrap().next().is_none(),
        "wrote into the download folder"
    );
    let beside: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        beside.iter().all(|n| n == "dst"),
        "wrote beside it: {beside:?}"
    );
}

#[test]
fn a_well_hashed_but_deeply_nested_dictionary_is_refused_clearly() {
    let mut deep = b"1:x".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 5000));
    deep.extend(std::iter::repeat_n(b'e', 5000));
    refused(info_with(&deep, "f.bin", None), "nesting deeper than");
}

#[test]
fn a_well_hashed_dictionary_whose_paths_would_escape_lands_inside_the_folder() {
    let files = b"5:filesld6:lengthi1000e4:pathl2:..2:..4:evileee";
    let info = info_with(b"", "tree", Some(files));
    let d = Dir::new();
    let hash = InfoHash(Sha1::digest(&info).into());
    let (liar, _) = metadata_peer(hash, Lie::Serve(info));
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={liar}");
    let mut fetch = start_fetch_of(&link, &d.join("dst"), &[], &[]);
    // The metadata arrives, is sanitized, and its one file is made inside the folder; the
    // data itself never comes (the peer has only metadata), so the fetch is stopped.
    assert!(
        fetch.wait_stderr("metadata: tree", TIMEOUT),
        "{}",
        fetch.stderr()
    );
    let inside = d.join("dst/tree/evil");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !inside.exists() {
        assert!(std::time::Instant::now() < deadline, "{}", fetch.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = fetch.stop();
    assert_eq!(code, Some(1), "{}", fetch.stderr());
    let beside: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, vec!["dst"], "wrote beside the download folder");
}
