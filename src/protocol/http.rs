//! The HTTP client used to talk to deployments: HTTP/2 cleartext with prior knowledge (h2c).
//!
//! This module owns how connections to `http://` deployments are made. The SDKs' built-in
//! servers (Rust SDK, TypeScript `listen()`) speak only HTTP/2, so an HTTP/1.1 client would not
//! even reach them; every `http://` deployment is therefore spoken to with h2c.
//!
//! Invariants: the client never upgrades or falls back to HTTP/1.1; connecting is bounded by
//! [`CONNECT_TIMEOUT_MS`]; it speaks only `http://` (TLS is not supported here); every received
//! segment is acknowledged at once (`TCP_QUICKACK`): SDK servers write a response's HEADERS
//! and DATA frames separately with Nagle on, so a delayed ACK from us would hold the DATA
//! frame back for ~40 ms whenever we have nothing to send.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::body::Body;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// Upper bound for establishing a TCP connection to a deployment.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Idle pooled connections are closed after this long.
pub const POOL_IDLE_TIMEOUT_MS: u64 = 90_000;
/// HTTP/2 keep-alive ping interval on open connections.
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 30_000;

/// A pooled h2c client for request bodies of type `B`.
pub type H2cClient<B> = Client<QuickAckConnector, B>;

/// Connects like [`HttpConnector`]; the connections acknowledge received data at once.
#[derive(Clone, Debug)]
pub struct QuickAckConnector {
    inner: HttpConnector,
}

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAck, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move { Ok(QuickAck(connecting.await?)) })
    }
}

/// A TCP connection that re-arms `TCP_QUICKACK` after every read (Linux leaves quick-ACK
/// mode on its own, so once is not enough).
#[derive(Debug)]
pub struct QuickAck(TokioIo<TcpStream>);

fn quickack(stream: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            quickack(self.0.inner());
        }
        r
    }
}

impl Write for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

/// Builds an h2c client (HTTP/2 prior knowledge) for `http://` URIs. Cheap to clone; clones
/// share the connection pool. Must be used inside a Tokio runtime.
pub fn h2c_client<B>() -> H2cClient<B>
where
    B: Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
        .http2_keep_alive_interval(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS))
        .http2_keep_alive_while_idle(false)
        .build(connector())
}

/// Builds an HTTP/1.1 client for deployments registered with `use_http_11` (request-response
/// only: HTTP/1.1 cannot interleave request and response bodies). Same pooling and timeouts
/// as [`h2c_client`]; one request per connection at a time.
pub fn http1_client<B>() -> H2cClient<B>
where
    B: Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
        .build(connector())
}

/// The plain-`http://` connector both clients share.
fn connector() -> QuickAckConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(true);
    connector.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
    QuickAckConnector { inner: connector }
}
