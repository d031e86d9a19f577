//! The HTTP client used to talk to deployments: HTTP/2 cleartext with prior knowledge (h2c).
//!
//! This module owns how connections to `http://` deployments are made. The SDKs' built-in
//! servers (Rust SDK, TypeScript `listen()`) speak only HTTP/2, so an HTTP/1.1 client would not
//! even reach them; every `http://` deployment is therefore spoken to with h2c.
//!
//! Invariants: the client never upgrades or falls back to HTTP/1.1; connecting is bounded by
//! [`CONNECT_TIMEOUT_MS`]; it speaks only `http://` (TLS is not supported here).

use std::time::Duration;

use hyper::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Upper bound for establishing a TCP connection to a deployment.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Idle pooled connections are closed after this long.
pub const POOL_IDLE_TIMEOUT_MS: u64 = 90_000;
/// HTTP/2 keep-alive ping interval on open connections.
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 30_000;

/// A pooled h2c client for request bodies of type `B`.
pub type H2cClient<B> = Client<HttpConnector, B>;

/// Builds an h2c client (HTTP/2 prior knowledge) for `http://` URIs. Cheap to clone; clones
/// share the connection pool. Must be used inside a Tokio runtime.
pub fn h2c_client<B>() -> H2cClient<B>
where
    B: Body + Send,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(true);
    connector.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
        .http2_keep_alive_interval(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS))
        .http2_keep_alive_while_idle(false)
        .build(connector)
}
