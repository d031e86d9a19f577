//! The HTTP transport of attempts: `POST {deployment}/invoke/{service}/{handler}` over h2c
//! (prior knowledge), or HTTP/1.1 for deployments registered with `use_http_11`; the request
//! body streamed from a bounded channel, the response body read frame by frame.
//!
//! Invariants: nothing here interprets protocol bytes; the attempt machine does. With a
//! request identity key every request is signed (`aud` = `/invoke/{service}/{handler}`, `sub`
//! = the object/workflow key), after the deployment's additional headers, so those cannot
//! replace the signature.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::ChannelBody;
use super::driver::{Connection, SendError, Target, Transport, TransportError};
use crate::protocol::http::{h2c_client, http1_client, H2cClient};
use crate::protocol::identity::RequestSigner;

/// Request-body chunks (the start message, then one per notification) queued per attempt;
/// an SDK that leaves more unread has stopped reading, and the attempt is failed.
const REQUEST_CHUNKS_QUEUED_MAX: usize = 64;

/// HTTP/2 (h2c) to SDK deployments.
pub struct Http2 {
    client: H2cClient<ChannelBody>,
    /// For deployments registered with `use_http_11` (their `http_version` is `HTTP/1.1`).
    http1: H2cClient<ChannelBody>,
    identity: Option<Arc<RequestSigner>>,
}

impl std::fmt::Debug for Http2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http2")
    }
}

/// Unsigned requests.
impl Default for Http2 {
    fn default() -> Self {
        Http2::new(None)
    }
}

impl Http2 {
    /// Requests signed with `identity`, if given.
    pub fn new(identity: Option<Arc<RequestSigner>>) -> Http2 {
        Http2 { client: h2c_client(), http1: http1_client(), identity }
    }
}

/// One attempt's HTTP/2 stream.
#[derive(Debug)]
pub struct Http2Conn {
    status: u16,
    content_type: String,
    body_tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    body: Incoming,
}

impl Transport for Http2 {
    type Conn = Http2Conn;

    async fn open(
        &self,
        target: &Target,
        initial: Bytes,
        bidi: bool,
    ) -> Result<Http2Conn, TransportError> {
        let (body_tx, body) = ChannelBody::channel(REQUEST_CHUNKS_QUEUED_MAX);
        body_tx.send(initial).await.map_err(|_| TransportError {
            code: 500,
            message: "request body closed early".into(),
        })?;
        let body_tx = bidi.then_some(body_tx);
        let d = &target.deployment;
        let path = format!("/invoke/{}/{}", target.service, target.handler);
        let uri = format!("{}{path}", d.uri.trim_end_matches('/'));
        let ct = target.version.content_type();
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, ct)
            .header(http::header::ACCEPT, ct)
            .header("x-restate-invocation-id", target.invocation_id.as_str());
        if let Some(key) = &target.key {
            req = req.header("x-restate-service-key", percent_encode(key));
        }
        for (k, v) in &d.additional_headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut req = req.body(body).map_err(|e| TransportError {
            code: 503,
            message: format!("bad request for {uri}: {e}"),
        })?;
        if let Some(identity) = &self.identity {
            identity.sign(req.headers_mut(), &path, target.key.as_deref());
        }
        let client = if d.http_version == "HTTP/1.1" { &self.http1 } else { &self.client };
        let resp = client.request(req).await.map_err(|e| TransportError {
            code: 503,
            message: format!("cannot reach deployment {}: {e}", d.uri),
        })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Ok(Http2Conn { status, content_type, body_tx, body: resp.into_body() })
    }
}

impl Connection for Http2Conn {
    fn head(&self) -> (u16, String) {
        (self.status, self.content_type.clone())
    }

    fn send(&mut self, bytes: Bytes) -> Result<(), SendError> {
        use tokio::sync::mpsc::error::TrySendError;
        match &self.body_tx {
            Some(tx) => match tx.try_send(bytes) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(SendError::Full),
                Err(TrySendError::Closed(_)) => {
                    self.body_tx = None;
                    Err(SendError::Closed)
                }
            },
            None => Err(SendError::Closed),
        }
    }

    fn close_request(&mut self) {
        self.body_tx = None;
    }

    async fn recv(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => {
                    return Some(Err(TransportError {
                        code: 503,
                        message: format!("reading from the deployment: {e}"),
                    }))
                }
            }
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
