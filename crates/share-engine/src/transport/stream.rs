//! [`EncryptedStream`]: a peer connection after its MSE handshake (or a plaintext one after
//! sniffing), as a plain `AsyncRead + AsyncWrite` so the peer protocol runs on it unchanged.
//!
//! Bytes the handshake already received are replayed first. Reads are decrypted in place in
//! the caller's buffer (no copy); writes are encrypted into one owned buffer of at most
//! [`WRITE_CHUNK`] bytes, which is drained before more is taken. Plaintext passes through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use share_core::mse::{Established, Method, Rc4Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a write encrypts at once (and so the size of a connection's write buffer).
pub const WRITE_CHUNK: usize = 64 * 1024;

/// A connection, RC4 applied on the fly or passed through, with received bytes replayed.
/// After [`EncryptedStream::into_split`] each half carries only its own direction.
#[derive(Debug)]
pub struct EncryptedStream<S> {
    inner: S,
    mse: Option<Method>,
    read: Option<Decrypting>,
    write: Option<Encrypting>,
}

impl<S> EncryptedStream<S> {
    /// A plaintext connection whose first bytes, already read (while sniffing), are `replay`.
    pub fn plaintext(inner: S, replay: Vec<u8>) -> Self {
        EncryptedStream {
            inner,
            mse: None,
            read: Some(Decrypting::new(None, replay)),
            write: Some(Encrypting::new(None)),
        }
    }

    /// The connection after a handshake: the responder's IA, then the bytes past the
    /// handshake, are read first.
    pub(crate) fn established(inner: S, e: Established) -> Self {
        let mut replay = e.initial_payload;
        replay.extend_from_slice(&e.rest);
        let (enc, dec) = match e.ciphers {
            Some(c) => (Some(c.encrypt), Some(c.decrypt)),
            None => (None, None),
        };
        EncryptedStream {
            inner,
            mse: Some(e.method),
            read: Some(Decrypting::new(dec, replay)),
            write: Some(Encrypting::new(enc)),
        }
    }

    /// `None` for a plaintext BitTorrent connection; the selected method after MSE.
    pub fn mse(&self) -> Option<Method> {
        self.mse
    }

    /// Whether the payload is RC4-encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.mse == Some(Method::Rc4)
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Splits into a read half and a write half that can live in different tasks, `split`
    /// dividing the inner stream (`TcpStream::into_split`, or `tokio::io::split` for any
    /// stream). Each half keeps its direction's cipher; the other direction fails on it with
    /// `Unsupported`.
    pub fn into_split<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (EncryptedStream<R>, EncryptedStream<W>) {
        let (r, w) = split(self.inner);
        (
            EncryptedStream {
                inner: r,
                mse: self.mse,
                read: self.read,
                write: None,
            },
            EncryptedStream {
                inner: w,
                mse: self.mse,
                read: None,
                write: self.write,
            },
        )
    }
}

fn other_half() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this half of a split stream goes the other way",
    )
}

#[derive(Debug)]
struct Decrypting {
    cipher: Option<Rc4Stream>,
    replay: Vec<u8>,
    replayed: usize,
}

impl Decrypting {
    fn new(cipher: Option<Rc4Stream>, replay: Vec<u8>) -> Self {
        Decrypting {
            cipher,
            replay,
            replayed: 0,
        }
    }

    fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        inner: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.replayed < self.replay.len() {
            let n = buf.remaining().min(self.replay.len() - self.replayed);
            buf.put_slice(&self.replay[self.replayed..self.replayed + n]);
            self.replayed += n;
            if self.replayed == self.replay.len() {
                self.replay = Vec::new();
                self.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(inner).poll_read(cx, buf))?;
        if let Some(c) = self.cipher.as_mut() {
            c.apply(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug)]
struct Encrypting {
    cipher: Option<Rc4Stream>,
    backlog: Backlog,
}

/// Encrypted bytes accepted from the caller and not yet written.
#[derive(Debug, Default)]
struct Backlog {
    bytes: Vec<u8>,
    /// How many of `bytes` are written.
    written: usize,
    /// An error from a write attempted after the bytes were accepted, kept for the next call.
    error: Option<io::Error>,
}

impl Backlog {
    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Err(e));
        }
        while self.written < self.bytes.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.bytes[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl Encrypting {
    fn new(cipher: Option<Rc4Stream>) -> Self {
        Encrypting {
            cipher,
            backlog: Backlog::default(),
        }
    }

    fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(cipher) = self.cipher.as_mut() else {
            return Pin::new(inner).poll_write(cx, buf);
        };
        let backlog = &mut self.backlog;
        ready!(backlog.poll_drain(inner, cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(WRITE_CHUNK);
        backlog.bytes.clear();
        backlog.bytes.extend_from_slice(&buf[..n]);
        cipher.apply(&mut backlog.bytes);
        backlog.written = 0;
        // The bytes are ours now (the keystream moved on); try to send them at once.
        match Pin::new(inner).poll_write(cx, &backlog.bytes) {
            Poll::Ready(Ok(k)) => backlog.written = k,
            Poll::Ready(Err(e)) => backlog.error = Some(e),
            Poll::Pending => {}
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.backlog.poll_drain(inner, cx))?;
        Pin::new(inner).poll_flush(cx)
    }

    fn poll_shutdown<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.backlog.poll_drain(inner, cx))?;
        Pin::new(inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for EncryptedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.read.as_mut() {
            Some(read) => read.poll_read(&mut this.inner, cx, buf),
            None => Poll::Ready(Err(other_half())),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EncryptedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.write.as_mut() {
            Some(write) => write.poll_write(&mut this.inner, cx, buf),
            None => Poll::Ready(Err(other_half())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.write.as_mut() {
            Some(write) => write.poll_flush(&mut this.inner, cx),
            None => Poll::Ready(Err(other_half())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.write.as_mut() {
            Some(write) => write.poll_shutdown(&mut this.inner, cx),
            None => Poll::Ready(Err(other_half())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use share_core::mse::Ciphers;
    use share_core::InfoHash;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    fn rc4_pair() -> (Established, Established) {
        let e = |enc: u8, dec: u8, replay: &[u8]| Established {
            method: Method::Rc4,
            info_hash: InfoHash([0; 20]),
            ciphers: Some(Ciphers {
                encrypt: Rc4Stream::new(&[enc; 20]),
                decrypt: Rc4Stream::new(&[dec; 20]),
            }),
            initial_payload: b"IA:".to_vec(),
            rest: replay.to_vec(),
        };
        (e(1, 2, b"rest-a"), e(2, 1, b"rest-b"))
    }

    #[tokio::test]
    async fn replays_then_decrypts_both_ways() {
        let (a, b) = duplex(1024);
        let (ea, eb) = rc4_pair();
        let mut a = EncryptedStream::established(a, ea);
        let mut b = EncryptedStream::established(b, eb);
        assert!(a.is_encrypted());
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.flush().await.unwrap();
            let mut back = vec![0u8; 5];
            a.read_exact(&mut back).await.unwrap();
            (a, back)
        });
        let mut got = vec![0u8; 9 + data.len()];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..9], b"IA:rest-b");
        assert_eq!(&got[9..], &data[..]);
        b.write_all(b"thanks").await.unwrap();
        b.flush().await.unwrap();
        let (_a, back) = writer.await.unwrap();
        // A replays its own IA/rest first: what a side has received comes before the wire.
        assert_eq!(&back, b"IA:re");
    }

    #[tokio::test]
    async fn plaintext_passes_through_after_the_replay() {
        let (a, mut b) = duplex(64);
        let mut a = EncryptedStream::plaintext(a, b"sniffed".to_vec());
        assert_eq!(a.mse(), None);
        b.write_all(b" and more").await.unwrap();
        let mut got = vec![0u8; 16];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"sniffed and more");
        a.write_all(b"out").await.unwrap();
        let mut out = [0u8; 3];
        b.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"out");
    }

    #[tokio::test]
    async fn split_halves_keep_their_ciphers() {
        let (a, b) = duplex(4096);
        let (ea, eb) = rc4_pair();
        let (mut ra, mut wa) = EncryptedStream::established(a, ea).into_split(tokio::io::split);
        let (mut rb, mut wb) = EncryptedStream::established(b, eb).into_split(tokio::io::split);
        let big = vec![0x5a; 200_000];
        let expect = big.clone();
        let t = tokio::spawn(async move {
            wa.write_all(&big).await.unwrap();
            wa.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        rb.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..9], b"IA:rest-b");
        assert_eq!(&got[9..], &expect[..]);
        t.await.unwrap();
        wb.write_all(b"x").await.unwrap();
        let mut x = [0u8; 10];
        ra.read_exact(&mut x).await.unwrap();
        assert_eq!(&x, b"IA:rest-ax");
    }

    #[tokio::test]
    async fn each_half_goes_one_way_only() {
        // Halves whose inner streams could do both, to reach the refusals.
        let (a, _b) = duplex(64);
        let (spare, _other) = duplex(64);
        let (mut r, mut w) = EncryptedStream::plaintext(a, Vec::new()).into_split(|s| (s, spare));
        let kind = |e: io::Error| e.kind();
        assert_eq!(
            r.write(b"x").await.map_err(kind),
            Err(io::ErrorKind::Unsupported)
        );
        assert_eq!(
            r.flush().await.map_err(kind),
            Err(io::ErrorKind::Unsupported)
        );
        let mut buf = [0u8; 1];
        assert_eq!(
            w.read(&mut buf).await.map_err(kind),
            Err(io::ErrorKind::Unsupported)
        );
    }
}
