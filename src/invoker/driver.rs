//! Runs one attempt: resolves its deployment, opens the stream through a [`Transport`] and
//! pumps bytes, notifications, effect appends and timeouts through the sans-IO
//! [`Machine`](super::machine::Machine). The only I/O of an attempt lives here and in the
//! transport.
//!
//! Invariants:
//! - An `Append` output is awaited before the machine gets more input, so effects of one
//!   attempt are durable in the order the SDK sent them.
//! - An attempt whose effects cannot be appended ends without a verdict in the log: fenced
//!   (a newer leader: quietly), a full disk (retried later by the invoker), anything else
//!   (the process stops).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::machine::{Config, Machine, Output, Verdict};
use super::Ctx;
use crate::fsm::{InvokeAttempt, Pin};
use crate::partition::AppendError;
use crate::protocol::version::{negotiate, ServiceProtocolVersion};
use crate::schema::{Deployment, Schema};

/// Where an attempt goes.
#[derive(Clone, Debug)]
pub struct Target {
    pub deployment: Deployment,
    pub version: ServiceProtocolVersion,
    pub service: String,
    pub handler: String,
    pub invocation_id: String,
    /// The object or workflow key, for keyed handlers.
    pub key: Option<String>,
}

/// Why a transport could not open or carry a stream.
#[derive(Clone, Debug)]
pub struct TransportError {
    pub code: u32,
    pub message: String,
}

/// Why bytes could not go on the request stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The request stream is closed (noticed through the response).
    Closed,
    /// The SDK does not read what was sent: the queue is full.
    Full,
}

/// One open attempt stream.
pub trait Connection: Send {
    /// Status code and content type of the response head.
    fn head(&self) -> (u16, String);
    /// Queues bytes on the request stream without waiting: an SDK that stops reading its
    /// request must not wedge the attempt (its timeouts would never run).
    fn send(&mut self, bytes: Bytes) -> Result<(), SendError>;
    /// Closes the request stream.
    fn close_request(&mut self);
    /// The next bytes of the response stream; `None` at its end.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Bytes, TransportError>>> + Send;
}

/// Opens attempt streams to deployments: HTTP/2 in the server, an in-process SDK in the
/// simulator.
pub trait Transport: Send + Sync + 'static {
    type Conn: Connection;
    /// Opens the stream and sends `initial` (start message and journal); in
    /// request-response mode (`!bidi`) the request stream is closed after it.
    fn open(
        &self,
        target: &Target,
        initial: Bytes,
        bidi: bool,
    ) -> impl Future<Output = Result<Self::Conn, TransportError>> + Send;
}

/// How an attempt ended, for the invoker.
#[derive(Debug)]
pub enum AttemptEnd {
    /// The verdict is in the log (ended, suspended, failed with a decision).
    Logged,
    /// Nothing could be logged because the disk is full: try again after a while.
    RetryLater,
    /// A newer leader took over; drop it.
    Fenced,
    /// The log failed for good.
    Fatal(AppendError),
    /// The attempt's task panicked: a bug of this server; the process stops.
    Panicked(String),
}

/// Resolves the deployment of an attempt (pinned after its first attempt).
fn resolve(
    schema: &Schema,
    a: &InvokeAttempt,
    v7: bool,
) -> Result<(Deployment, ServiceProtocolVersion, Option<Pin>), String> {
    let service = schema
        .service(&a.service)
        .ok_or_else(|| format!("service '{}' is not registered", a.service))?;
    service
        .handlers
        .get(&a.handler)
        .ok_or_else(|| format!("handler '{}/{}' is not registered", a.service, a.handler))?;
    let d = match &a.pinned {
        Some((dp, _)) => {
            schema.deployment(dp).ok_or_else(|| format!("pinned deployment {dp} was removed"))?
        }
        None => schema
            .deployment_for(&a.service)
            .ok_or_else(|| format!("no deployment serves '{}'", a.service))?,
    };
    match a.pinned {
        Some((_, v)) if v != 0 => {
            let v = ServiceProtocolVersion::from_i32(v as i32)
                .ok_or_else(|| format!("pinned protocol version {v} is unknown"))?;
            Ok((d.clone(), v, None))
        }
        // Not pinned yet, or a deployment chosen (resume, restart-as-new) before any attempt
        // fixed a version: negotiate, and pin what was chosen.
        _ => {
            let v =
                negotiate(d.min_protocol_version, d.max_protocol_version, v7).ok_or_else(|| {
                    format!("[RT0013] no common protocol version with deployment {}", d.id)
                })?;
            let pin = Pin { deployment_id: d.id.clone(), protocol_version: v.as_i32() as u32 };
            Ok((d.clone(), v, Some(pin)))
        }
    }
}

/// Runs one attempt to its end.
pub async fn run_attempt<T: Transport>(
    ctx: &Ctx<T>,
    epoch: u64,
    a: InvokeAttempt,
    notify_rx: mpsc::Receiver<(u32, u16, Bytes)>,
) -> AttemptEnd {
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    let span =
        crate::otel::enabled().then(|| (a.id, a.attempt, format!("{}/{}", a.service, a.handler)));
    let mut verdict: Option<&'static str> = None;
    let end = attempt(ctx, epoch, a, notify_rx, &mut verdict).await;
    let partition = ctx.partition.id.to_string();
    metrics::histogram!(crate::metrics::INVOKER_ATTEMPT_DURATION, "partition" => partition.clone())
        .record(started.elapsed().as_secs_f64());
    let outcome = match &end {
        // The machine's verdict, logged.
        AttemptEnd::Logged => verdict.unwrap_or("finished"),
        AttemptEnd::RetryLater => "disk_full",
        AttemptEnd::Fenced => "fenced",
        AttemptEnd::Fatal(_) | AttemptEnd::Panicked(_) => "fatal",
    };
    metrics::counter!(crate::metrics::INVOKER_ATTEMPTS, "partition" => partition, "outcome" => outcome)
        .increment(1);
    if let Some((id, n, target)) = span {
        use crate::otel::{kind, Span, Value};
        let what = [b"attempt".as_slice(), &n.to_be_bytes()].concat();
        let mut span = Span::for_invocation(
            &id,
            &what,
            format!("attempt {n} {target}"),
            kind::CLIENT,
            started_at,
        );
        span.attributes.extend([
            ("restate.invocation.target", Value::Str(target)),
            ("restate.attempt", Value::Int(i64::from(n))),
            ("restate.partition.id", Value::Int(i64::from(ctx.partition.id))),
        ]);
        span.error = match &end {
            AttemptEnd::Logged => None,
            other => Some(format!("{other:?}")),
        };
        crate::otel::emit(span);
    }
    end
}

async fn attempt<T: Transport>(
    ctx: &Ctx<T>,
    epoch: u64,
    a: InvokeAttempt,
    mut notify_rx: mpsc::Receiver<(u32, u16, Bytes)>,
    verdict: &mut Option<&'static str>,
) -> AttemptEnd {
    let schema = ctx.registry.snapshot();
    let now_ms = ctx.clock.now_ms();
    let resolved = resolve(&schema, &a, ctx.opts.protocol_v7);
    let handler = schema.service(&a.service).and_then(|s| s.handlers.get(&a.handler));
    let (inactivity, abort) = match handler {
        Some(h) => (
            h.inactivity_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(ctx.opts.inactivity_timeout),
            h.abort_timeout_ms.map(Duration::from_millis).unwrap_or(ctx.opts.abort_timeout),
        ),
        None => (ctx.opts.inactivity_timeout, ctx.opts.abort_timeout),
    };
    let (version, bidi, pin) = match &resolved {
        Ok((d, v, p)) => (*v, d.bidi, p.clone()),
        Err(_) => (ServiceProtocolVersion::V5, true, None),
    };
    let cfg = Config {
        version,
        bidi,
        inactivity_timeout: inactivity,
        abort_timeout: abort,
        message_bytes_max: ctx.opts.message_bytes_max,
        journal_entries_max: ctx.opts.journal_entries_max,
        retry: ctx.opts.retry.clone(),
        suspend: ctx.opts.suspend.clone(),
    };
    let (mut m, initial) = Machine::new(cfg, &a, schema.clone(), pin, Instant::now(), now_ms);
    let mut conn: Option<T::Conn> = None;
    match resolved {
        Err(e) => m.on_setup_error(e),
        Ok((d, version, _)) => {
            let target = Target {
                deployment: d.clone(),
                version,
                service: a.service.clone(),
                handler: a.handler.clone(),
                invocation_id: a.id.to_string(),
                key: a.kind.is_keyed().then(|| a.key.clone()),
            };
            match tokio::time::timeout(abort, ctx.transport.open(&target, initial, bidi)).await {
                Err(_) => m.on_transport_error(
                    504,
                    format!("deployment {} did not answer within {abort:?}", d.uri),
                ),
                Ok(Err(e)) => m.on_transport_error(e.code, e.message),
                Ok(Ok(c)) => {
                    let (status, content_type) = c.head();
                    m.on_response_head(status, &content_type);
                    conn = Some(c);
                }
            }
        }
    }
    let mut notifications_open = true;
    loop {
        while let Some(out) = m.poll_output() {
            match out {
                Output::Send(bytes) => {
                    if let Some(c) = conn.as_mut() {
                        // A closed request stream is noticed through the response.
                        if c.send(bytes) == Err(SendError::Full) {
                            m.on_transport_error(
                                503,
                                "the deployment stopped reading its request stream".into(),
                            );
                        }
                    }
                }
                Output::CloseRequest => {
                    if let Some(c) = conn.as_mut() {
                        c.close_request();
                    }
                }
                Output::Append(records) => {
                    match ctx.partition.append_as(epoch, records).await {
                        Ok(_) => {}
                        Err(AppendError::Fenced { .. }) => return AttemptEnd::Fenced,
                        Err(e) if e.is_retryable() => return AttemptEnd::RetryLater,
                        Err(AppendError::TooLarge { bytes, limit_bytes }) => {
                            // A single effect over the log's limit: the invocation cannot go
                            // on; log the failure alone.
                            let failed = m.too_large(bytes, limit_bytes);
                            *verdict = Some("gave_up");
                            return match ctx.partition.append_as(epoch, vec![failed]).await {
                                Ok(_) => AttemptEnd::Logged,
                                Err(AppendError::Fenced { .. }) => AttemptEnd::Fenced,
                                Err(e) if e.is_retryable() => AttemptEnd::RetryLater,
                                Err(e) => AttemptEnd::Fatal(e),
                            };
                        }
                        Err(e) => return AttemptEnd::Fatal(e),
                    }
                }
                Output::Done(v) => {
                    *verdict = Some(match v {
                        // Ended or suspended.
                        Verdict::Finished => "finished",
                        Verdict::Failed { give_up: true, .. } => "gave_up",
                        Verdict::Failed { .. } => "retrying",
                    });
                    return AttemptEnd::Logged;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            // Without a stream the machine has reached its verdict already.
            return AttemptEnd::Logged;
        };
        let deadline = m.deadline(ctx.clock.now_ms(), Instant::now());
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            r = c.recv() => match r {
                Some(Ok(bytes)) => m.on_data(&bytes, Instant::now()),
                Some(Err(e)) => m.on_transport_error(e.code, e.message),
                None => m.on_end_of_stream(),
            },
            n = notify_rx.recv(), if notifications_open => match n {
                Some((index, ty, payload)) => m.on_notification(index, ty, payload, Instant::now()),
                None => notifications_open = false,
            },
            _ = sleep => m.on_tick(Instant::now(), ctx.clock.now_ms()),
        }
    }
}
