//! The service protocol between this server and Restate SDK deployments, as a sans-IO layer:
//! framing, the protobuf messages of protocol V5–V7, version negotiation, identifiers, and the
//! discovery manifest (plus the one small HTTP client used to fetch it).
//!
//! This module owns the wire formats only; it holds no invocation state and makes no decision
//! about what an invocation does next. The invoker drives an HTTP/2 stream and uses
//! [`framing::Decoder`] + [`codec::decode_message`] on what the SDK sends and
//! [`codec::encode_message`] / [`framing::encode_frame`] for what it sends back.
//!
//! Invariants of the whole module:
//! - Nothing here panics on bytes received from the network; every rejection is a typed error.
//! - Every buffer is bounded: frames by [`framing::MESSAGE_BYTES_MAX`] (configurable per
//!   decoder), manifests by [`discovery::MANIFEST_BYTES_MAX`].
//! - Commands are kept with their exact received bytes; the server replays those bytes.
//! - Only V5, V6 and V7 are ever negotiated; V7 only when enabled.

pub mod codec;
pub mod discovery;
pub mod framing;
pub mod http;
pub mod identity;
pub mod ids;
pub mod messages;
pub mod version;

pub use codec::{
    decode_command, decode_message, decode_notification, encode_message, Command, DecodeError,
    Message, RawCommand,
};
pub use discovery::{
    discover, discover_with, validate, DiscoveredEndpoint, DiscoveryError, Endpoint, Handler,
    HandlerKind, HandlerType, ProtocolMode, Service, ServiceType,
};
pub use framing::{encode_frame, Decoder, Frame, FrameError, MESSAGE_BYTES_MAX};
pub use http::h2c_client;
pub use ids::{random_seed, AwakeableId, DeploymentId, IdError, InvocationId};
pub use messages::{is_command, is_notification, message_name, MessageType, Notification};
pub use version::{negotiate, ManifestVersion, ServiceProtocolVersion, DISCOVERY_ACCEPT};
