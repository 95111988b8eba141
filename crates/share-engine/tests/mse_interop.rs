//! MSE/PE against real libtorrent (Debian's python3-libtorrent, driven by
//! tests/peers/lt_mse.py with encryption forced both ways), on 127.0.0.1 only: our initiator
//! dials it, and it dials our responder; each side must see the other's BitTorrent handshake
//! and the messages after it through the negotiated encryption.
//!
//! Like the root interop tests these fail when libtorrent is missing, unless
//! SHARE_SKIP_INTEROP=1 says to skip them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use share_core::wire::{self, Handshake, Message, HANDSHAKE_LEN};
use share_core::InfoHash;
use share_engine::transport::{accept, mse_connect, skey_hash, Method, Policy};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

/// The libtorrent peer: killed when dropped; its stdout lines arrive on `lines`.
struct Libtorrent {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Drop for Libtorrent {
    /// SIGTERM (the script then drains its alerts and exits), SIGKILL after two seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..40 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/lt_mse.py")
}

/// Whether to run: libtorrent must import, unless SHARE_SKIP_INTEROP=1.
fn libtorrent_present() -> bool {
    if std::env::var("SHARE_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("SHARE_SKIP_INTEROP=1: skipping the libtorrent MSE interop test");
        return false;
    }
    let ok = Command::new(python())
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python3 cannot import libtorrent: this test needs the Debian package \
         `python3-libtorrent` (scripts/test installs it)"
    );
    true
}

impl Libtorrent {
    fn start(args: &[&str]) -> Libtorrent {
        let mut child = Command::new(python())
            .arg(script())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lt_mse.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Libtorrent { child, lines }
    }

    /// The next line that starts with `prefix`, without it.
    async fn line(&mut self, prefix: &str) -> String {
        loop {
            let line = timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("libtorrent printed no `{prefix}` line"))
                .unwrap_or_else(|| panic!("libtorrent exited before a `{prefix}` line"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Its port and the torrent's info-hash.
    async fn ready(&mut self) -> (u16, InfoHash) {
        let addr = self.line("listening on ").await;
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        let hex = self.line("info-hash ").await;
        let mut ih = [0u8; 20];
        ih.copy_from_slice(&hex_decode(&hex));
        (port, InfoHash(ih))
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn our_handshake(ih: InfoHash) -> [u8; HANDSHAKE_LEN] {
    let mut id = *b"-SH0001-mse-interop-";
    id[19] = rand::random();
    Handshake::new(ih, id).encode()
}

/// Reads the remote's BitTorrent handshake, then its first real message (libtorrent sends
/// its extension handshake and a bitfield at once): proof the stream decrypts past the
/// handshake too.
async fn read_handshake_and_a_message(s: &mut (impl AsyncRead + Unpin), ih: InfoHash) {
    let mut h = [0u8; HANDSHAKE_LEN];
    timeout(WAIT, s.read_exact(&mut h)).await.unwrap().unwrap();
    let h = Handshake::decode(&h).expect("a BitTorrent handshake through MSE");
    assert_eq!(h.info_hash, ih);
    let mut buf = BytesMut::new();
    loop {
        match wire::decode(&mut buf, wire::max_frame(16)).expect("a valid message") {
            Some(Message::KeepAlive) => {}
            Some(_) => return,
            None => {
                let n = timeout(WAIT, s.read_buf(&mut buf)).await.unwrap().unwrap();
                assert!(n > 0, "libtorrent closed the connection");
            }
        }
    }
}

/// Dials libtorrent; returns the method and what libtorrent says of the connection (read
/// while it is still open).
async fn dial(lt: &mut Libtorrent, policy: Policy) -> (Method, String) {
    let (port, ih) = lt.ready().await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut s = mse_connect(tcp, ih, policy, &our_handshake(ih))
        .await
        .expect("libtorrent accepts our MSE handshake");
    read_handshake_and_a_message(&mut s, ih).await;
    let seen = lt.line("established ").await;
    (s.mse().unwrap(), seen)
}

async fn listen(args: &[&str], policy: Policy) -> (Libtorrent, Method) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = listener.local_addr().unwrap().to_string();
    let mut all = args.to_vec();
    all.extend(["--peer", &peer]);
    let mut lt = Libtorrent::start(&all);
    let (_, ih) = lt.ready().await;
    let (tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let lookup = move |h: &[u8; 20]| (h == &skey_hash(&ih)).then_some(ih);
    let mut a = accept(tcp, lookup, policy)
        .await
        .expect("we accept libtorrent's MSE handshake");
    assert_eq!(a.info_hash, Some(ih));
    a.stream.write_all(&our_handshake(ih)).await.unwrap();
    a.stream.flush().await.unwrap();
    read_handshake_and_a_message(&mut a.stream, ih).await;
    let method = a.stream.mse().unwrap();
    // libtorrent saw our handshake through the encryption too.
    let line = lt.line("established ").await;
    assert!(
        line.starts_with(&format!("{method:?}").to_lowercase()),
        "{line}"
    );
    (lt, method)
}

#[tokio::test]
async fn our_initiator_is_accepted_by_libtorrent_with_rc4_forced() {
    if !libtorrent_present() {
        return;
    }
    let mut lt = Libtorrent::start(&["--enc-level", "rc4"]);
    let (method, seen) = dial(&mut lt, Policy::Require).await;
    assert_eq!(method, Method::Rc4);
    assert!(seen.starts_with("rc4 SH"), "{seen}");
}

#[tokio::test]
async fn libtorrent_selecting_plaintext_for_our_prefer_offer() {
    if !libtorrent_present() {
        return;
    }
    let mut lt = Libtorrent::start(&["--enc-level", "both", "--prefer-plaintext"]);
    let (method, seen) = dial(&mut lt, Policy::Prefer).await;
    assert_eq!(method, Method::Plaintext);
    assert!(seen.starts_with("plaintext SH"), "{seen}");
}

#[tokio::test]
async fn our_responder_accepts_libtorrent_with_rc4_forced() {
    if !libtorrent_present() {
        return;
    }
    let (_lt, method) = listen(&["--enc-level", "rc4"], Policy::Require).await;
    assert_eq!(method, Method::Rc4);
}

#[tokio::test]
async fn our_responder_keeps_the_payload_plaintext_when_libtorrent_offers_both() {
    if !libtorrent_present() {
        return;
    }
    let (_lt, method) = listen(&["--enc-level", "both"], Policy::Prefer).await;
    assert_eq!(method, Method::Plaintext);
    let (_lt, method) = listen(&["--enc-level", "both"], Policy::Require).await;
    assert_eq!(method, Method::Rc4);
}
