//! Discovery: the endpoint manifest a deployment returns from `GET {uri}/discover`, its
//! validation, and the client that fetches it.
//!
//! This module owns the manifest's JSON schema (camelCase keys; unknown fields are ignored so
//! newer SDKs keep working), the rules a manifest must satisfy before its services can be
//! registered, and the handler-kind table (service type × handler type → [`HandlerKind`]).
//!
//! Invariants:
//! - [`validate`] accepts a manifest only if every service and handler name matches the
//!   protocol's name grammar, no service name is reserved or duplicated, every handler
//!   resolves to a [`HandlerKind`], and the protocol range overlaps V5..=V7.
//! - [`discover`] returns only validated manifests, never blocks longer than
//!   [`DISCOVERY_TIMEOUT_MS`] and never buffers more than [`MANIFEST_BYTES_MAX`] bytes.
//! - With a request identity key the request is signed (`aud` = `/discover`), after the
//!   deployment's additional headers, so those cannot replace the signature.
//! - Every error says what the operator should do about it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use serde::{Deserialize, Serialize};

use super::http::{h2c_client, H2cClient};
use super::identity::RequestSigner;
use super::version::{is_discoverable_range, ManifestVersion, DISCOVERY_ACCEPT};

/// Upper bound for the whole discovery exchange (connect, request, response body).
pub const DISCOVERY_TIMEOUT_MS: u64 = 30_000;
/// Upper bound for a manifest body.
pub const MANIFEST_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How much of an error response body is quoted in an error message.
pub const ERROR_BODY_QUOTE_BYTES_MAX: usize = 512;

// ---------------------------------------------------------------------------------------------
// Manifest schema.

/// How a deployment is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProtocolMode {
    /// Full-duplex HTTP/2: the server keeps the request stream open and pushes notifications.
    BidiStream,
    /// The server sends the journal and closes the request stream; the SDK suspends early.
    RequestResponse,
}

/// Kind of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    Service,
    VirtualObject,
    Workflow,
}

/// Declared kind of a handler (absent for plain services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HandlerType {
    Exclusive,
    Shared,
    Workflow,
}

/// What happens when the retry policy's attempts are exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnMaxAttempts {
    Pause,
    Kill,
}

/// The manifest's top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Required by this server even though the schema marks it optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_mode: Option<ProtocolMode>,
    pub min_protocol_version: i32,
    pub max_protocol_version: i32,
    /// Lambda only (`"zstd"`); kept for completeness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_compression: Option<String>,
    pub services: Vec<Service>,
}

/// The retry policy override fields shared by services and handlers (manifest v4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(
        rename = "retryPolicyInitialInterval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_interval_ms: Option<u64>,
    #[serde(rename = "retryPolicyMaxInterval", default, skip_serializing_if = "Option::is_none")]
    pub max_interval_ms: Option<u64>,
    /// Attempts including the first; 0 is treated as 1.
    #[serde(rename = "retryPolicyMaxAttempts", default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(
        rename = "retryPolicyExponentiationFactor",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exponentiation_factor: Option<f64>,
    #[serde(rename = "retryPolicyOnMaxAttempts", default, skip_serializing_if = "Option::is_none")]
    pub on_max_attempts: Option<OnMaxAttempts>,
}

/// One service of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    pub ty: ServiceType,
    pub handlers: Vec<Handler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "inactivityTimeout", default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout_ms: Option<u64>,
    #[serde(rename = "abortTimeout", default, skip_serializing_if = "Option::is_none")]
    pub abort_timeout_ms: Option<u64>,
    #[serde(rename = "journalRetention", default, skip_serializing_if = "Option::is_none")]
    pub journal_retention_ms: Option<u64>,
    #[serde(rename = "idempotencyRetention", default, skip_serializing_if = "Option::is_none")]
    pub idempotency_retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_lazy_state: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_private: Option<bool>,
    #[serde(flatten)]
    pub retry_policy: RetryPolicy,
}

/// Ingress input expectations of a handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputPayload {
    /// If true a body and content type must be sent even if empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Accepted content type (may contain wildcards); absent means no body expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

/// Ingress output description of a handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_content_type_if_empty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

/// One handler of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<HandlerType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputPayload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputPayload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "inactivityTimeout", default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout_ms: Option<u64>,
    #[serde(rename = "abortTimeout", default, skip_serializing_if = "Option::is_none")]
    pub abort_timeout_ms: Option<u64>,
    #[serde(rename = "journalRetention", default, skip_serializing_if = "Option::is_none")]
    pub journal_retention_ms: Option<u64>,
    #[serde(rename = "idempotencyRetention", default, skip_serializing_if = "Option::is_none")]
    pub idempotency_retention_ms: Option<u64>,
    /// Only on `WORKFLOW` handlers.
    #[serde(
        rename = "workflowCompletionRetention",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub workflow_completion_retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_lazy_state: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_private: Option<bool>,
    #[serde(flatten)]
    pub retry_policy: RetryPolicy,
}

/// What a handler is, resolved from its service's type and its own declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    /// Handler of a plain service: no key, no state.
    Service,
    /// Virtual object handler holding the key's lock: reads and writes state.
    Exclusive,
    /// Virtual object handler running concurrently: reads state only.
    Shared,
    /// The workflow's `run` handler, once per key: state and promises.
    WorkflowRun,
    /// Other workflow handlers: read state, use promises.
    WorkflowShared,
}

impl HandlerKind {
    /// Resolves the combination table; `None` for an invalid combination.
    pub fn resolve(service: ServiceType, handler: Option<HandlerType>) -> Option<HandlerKind> {
        use HandlerType as H;
        use ServiceType as S;
        match (service, handler) {
            (S::Service, None | Some(H::Shared)) => Some(HandlerKind::Service),
            (S::VirtualObject, None | Some(H::Exclusive)) => Some(HandlerKind::Exclusive),
            (S::VirtualObject, Some(H::Shared)) => Some(HandlerKind::Shared),
            (S::Workflow, Some(H::Workflow)) => Some(HandlerKind::WorkflowRun),
            (S::Workflow, None | Some(H::Shared)) => Some(HandlerKind::WorkflowShared),
            _ => None,
        }
    }

    /// Whether invocations carry an object/workflow key.
    pub fn is_keyed(self) -> bool {
        self != HandlerKind::Service
    }

    /// Whether at most one such invocation runs per key at a time.
    pub fn is_exclusive(self) -> bool {
        matches!(self, HandlerKind::Exclusive | HandlerKind::WorkflowRun)
    }

    pub fn can_read_state(self) -> bool {
        self.is_keyed()
    }

    pub fn can_write_state(self) -> bool {
        self.is_exclusive()
    }

    pub fn can_use_promises(self) -> bool {
        matches!(self, HandlerKind::WorkflowRun | HandlerKind::WorkflowShared)
    }
}

impl Service {
    /// The resolved kind of one of this service's handlers.
    pub fn handler_kind(&self, handler: &Handler) -> Option<HandlerKind> {
        HandlerKind::resolve(self.ty, handler.ty)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// Why a deployment could not be discovered or its manifest was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("invalid deployment uri `{uri}`: {reason}; use an absolute http:// uri such as http://localhost:9080")]
    InvalidUri { uri: String, reason: String },
    #[error(
        "cannot reach the deployment at {uri}: {detail}; make sure the service is running and \
         reachable at {uri}, and that it serves HTTP/2 cleartext (h2c)"
    )]
    Unreachable { uri: String, detail: String },
    #[error(
        "discovery at {uri} did not complete within {timeout_ms} ms; make sure the service is \
         running, reachable and serves HTTP/2 cleartext (h2c)"
    )]
    Timeout { uri: String, timeout_ms: u64 },
    #[error(
        "GET {uri} returned 404 Not Found; check the path: register the base uri under which \
         the SDK serves `/discover`"
    )]
    NotFound { uri: String },
    #[error("GET {uri} returned {status}{body}; check the deployment's logs")]
    BadStatus { uri: String, status: u16, body: String },
    #[error(
        "GET {uri} returned 401 Unauthorized{body}: the deployment accepts only requests signed \
         with a request identity key, and this server signs none; set \
         `worker.invoker.request-identity-private-key-pem-file` to the private key whose public \
         key the SDK was given (identityKeys)"
    )]
    UnauthorizedUnsigned { uri: String, body: String },
    #[error(
        "GET {uri} returned 401 Unauthorized{body}: the deployment refused the request signed \
         with key {key_id}; give the SDK this public key (identityKeys), or configure \
         `worker.invoker.request-identity-private-key-pem-file` with the private key of one it \
         trusts"
    )]
    UnauthorizedSigned { uri: String, body: String, key_id: String },
    #[error(
        "GET {uri} answered with content type `{content_type}`, not an endpoint manifest; make \
         sure the uri points at a Restate SDK endpoint (manifest versions v1 to v4 are supported)"
    )]
    BadContentType { uri: String, content_type: String },
    #[error(
        "reading the manifest from {uri} failed: {detail}; retry, and check the deployment's logs"
    )]
    Body { uri: String, detail: String },
    #[error("the manifest from {uri} is larger than {manifest_bytes_max} bytes; reduce embedded schemas/documentation")]
    TooLarge { uri: String, manifest_bytes_max: usize },
    #[error(
        "the endpoint manifest is not valid: {detail}; upgrade the SDK to a supported version"
    )]
    Json { detail: String },
    #[error("the manifest has no `protocolMode`; upgrade the SDK to a supported version")]
    MissingProtocolMode,
    #[error(
        "the manifest's protocol version range {min}..={max} is malformed (need 1 <= min <= max); \
         upgrade the SDK to a supported version"
    )]
    InvalidVersionRange { min: i32, max: i32 },
    #[error(
        "the deployment supports service protocol versions {min}..={max}, this server needs one \
         of 5..=7; use an SDK version that speaks protocol V5 to V7"
    )]
    UnsupportedVersionRange { min: i32, max: i32 },
    #[error(
        "invalid service name `{name}`: names start with a letter (or `_` and a letter or digit) \
         and contain only letters, digits, `.`, `_` and `-`; rename the service"
    )]
    InvalidServiceName { name: String },
    #[error("service name `{name}` is reserved (names starting with `restate` and `openapi` are); rename the service")]
    ReservedServiceName { name: String },
    #[error(
        "service `{name}` appears more than once in the manifest; give each service a unique name"
    )]
    DuplicateService { name: String },
    #[error(
        "invalid handler name `{service}/{handler}`: names start with a letter (or `_` and a \
         letter or digit) and contain only letters, digits and `_`; rename the handler"
    )]
    InvalidHandlerName { service: String, handler: String },
    #[error(
        "handler `{service}/{handler}` appears more than once; give each handler a unique name"
    )]
    DuplicateHandler { service: String, handler: String },
    #[error(
        "handler `{service}/{handler}` has type {handler_ty:?}, which a {service_ty:?} service \
         cannot have; fix the handler's type"
    )]
    InvalidHandlerType {
        service: String,
        handler: String,
        service_ty: ServiceType,
        handler_ty: Option<HandlerType>,
    },
    #[error(
        "handler `{service}/{handler}` sets workflowCompletionRetention but is not a WORKFLOW \
         handler; remove the option"
    )]
    WorkflowRetentionOnNonWorkflowHandler { service: String, handler: String },
    #[error(
        "handler `{service}/{handler}` is a WORKFLOW handler and cannot set \
         idempotencyRetention; use workflowCompletionRetention"
    )]
    IdempotencyRetentionOnWorkflowHandler { service: String, handler: String },
    #[error(
        "handler `{service}/{handler}` sets ingressPrivate=false in a private service; remove \
         the handler option or make the service public"
    )]
    PublicHandlerInPrivateService { service: String, handler: String },
}

impl DiscoveryError {
    /// A stable code for this kind of error (for APIs and logs).
    pub fn code(&self) -> &'static str {
        match self {
            DiscoveryError::InvalidUri { .. } => "discovery_invalid_uri",
            DiscoveryError::Unreachable { .. } => "discovery_unreachable",
            DiscoveryError::Timeout { .. } => "discovery_timeout",
            DiscoveryError::NotFound { .. } => "discovery_not_found",
            DiscoveryError::BadStatus { .. } => "discovery_bad_status",
            DiscoveryError::UnauthorizedUnsigned { .. }
            | DiscoveryError::UnauthorizedSigned { .. } => "discovery_unauthorized",
            DiscoveryError::BadContentType { .. } => "discovery_bad_content_type",
            DiscoveryError::Body { .. } => "discovery_body",
            DiscoveryError::TooLarge { .. } => "discovery_too_large",
            DiscoveryError::Json { .. } => "manifest_json",
            DiscoveryError::MissingProtocolMode => "manifest_missing_protocol_mode",
            DiscoveryError::InvalidVersionRange { .. } => "manifest_invalid_version_range",
            DiscoveryError::UnsupportedVersionRange { .. } => "manifest_unsupported_versions",
            DiscoveryError::InvalidServiceName { .. } => "manifest_invalid_service_name",
            DiscoveryError::ReservedServiceName { .. } => "manifest_reserved_service_name",
            DiscoveryError::DuplicateService { .. } => "manifest_duplicate_service",
            DiscoveryError::InvalidHandlerName { .. } => "manifest_invalid_handler_name",
            DiscoveryError::DuplicateHandler { .. } => "manifest_duplicate_handler",
            DiscoveryError::InvalidHandlerType { .. } => "manifest_invalid_handler_type",
            DiscoveryError::WorkflowRetentionOnNonWorkflowHandler { .. } => {
                "manifest_workflow_retention_not_allowed"
            }
            DiscoveryError::IdempotencyRetentionOnWorkflowHandler { .. } => {
                "manifest_idempotency_retention_not_allowed"
            }
            DiscoveryError::PublicHandlerInPrivateService { .. } => {
                "manifest_public_handler_in_private_service"
            }
        }
    }

    /// Whether retrying the discovery may help (transport errors, timeouts, body read errors,
    /// and statuses 408, 429, 500, 502, 503, 504).
    pub fn is_retryable(&self) -> bool {
        match self {
            DiscoveryError::Unreachable { .. }
            | DiscoveryError::Timeout { .. }
            | DiscoveryError::Body { .. } => true,
            DiscoveryError::BadStatus { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// `^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*$`
pub fn is_valid_service_name(name: &str) -> bool {
    is_valid_name(name, b"._-")
}

/// `^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]*$`
pub fn is_valid_handler_name(name: &str) -> bool {
    is_valid_name(name, b"_")
}

fn is_valid_name(name: &str, extra: &[u8]) -> bool {
    let rest = match name.as_bytes() {
        [c, rest @ ..] if c.is_ascii_alphabetic() => rest,
        [b'_', c, rest @ ..] if c.is_ascii_alphanumeric() => rest,
        _ => return false,
    };
    rest.iter().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// Names starting with `restate` (any case) and `openapi` are reserved.
pub fn is_reserved_service_name(name: &str) -> bool {
    let prefix = "restate";
    name.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)) || name == "openapi"
}

/// Checks a manifest against the registration rules (see the module invariants).
pub fn validate(endpoint: &Endpoint) -> Result<(), DiscoveryError> {
    if endpoint.protocol_mode.is_none() {
        return Err(DiscoveryError::MissingProtocolMode);
    }
    let (min, max) = (endpoint.min_protocol_version, endpoint.max_protocol_version);
    if !(1 <= min && min <= max) {
        return Err(DiscoveryError::InvalidVersionRange { min, max });
    }
    if !is_discoverable_range(min, max) {
        return Err(DiscoveryError::UnsupportedVersionRange { min, max });
    }
    let mut service_names = HashSet::new();
    for service in &endpoint.services {
        validate_service(service)?;
        if !service_names.insert(service.name.as_str()) {
            return Err(DiscoveryError::DuplicateService { name: service.name.clone() });
        }
    }
    Ok(())
}

fn validate_service(service: &Service) -> Result<(), DiscoveryError> {
    if !is_valid_service_name(&service.name) {
        return Err(DiscoveryError::InvalidServiceName { name: service.name.clone() });
    }
    if is_reserved_service_name(&service.name) {
        return Err(DiscoveryError::ReservedServiceName { name: service.name.clone() });
    }
    let mut handler_names = HashSet::new();
    for handler in &service.handlers {
        let names = || (service.name.clone(), handler.name.clone());
        if !is_valid_handler_name(&handler.name) {
            let (service, handler) = names();
            return Err(DiscoveryError::InvalidHandlerName { service, handler });
        }
        if !handler_names.insert(handler.name.as_str()) {
            let (service, handler) = names();
            return Err(DiscoveryError::DuplicateHandler { service, handler });
        }
        let Some(kind) = service.handler_kind(handler) else {
            let (service_name, handler_name) = names();
            return Err(DiscoveryError::InvalidHandlerType {
                service: service_name,
                handler: handler_name,
                service_ty: service.ty,
                handler_ty: handler.ty,
            });
        };
        if handler.workflow_completion_retention_ms.is_some() && kind != HandlerKind::WorkflowRun {
            let (service, handler) = names();
            return Err(DiscoveryError::WorkflowRetentionOnNonWorkflowHandler { service, handler });
        }
        if handler.idempotency_retention_ms.is_some() && kind == HandlerKind::WorkflowRun {
            let (service, handler) = names();
            return Err(DiscoveryError::IdempotencyRetentionOnWorkflowHandler { service, handler });
        }
        if service.ingress_private == Some(true) && handler.ingress_private == Some(false) {
            let (service, handler) = names();
            return Err(DiscoveryError::PublicHandlerInPrivateService { service, handler });
        }
    }
    Ok(())
}

/// Parses and validates a manifest body.
pub fn parse_manifest(body: &[u8]) -> Result<Endpoint, DiscoveryError> {
    let endpoint: Endpoint =
        serde_json::from_slice(body).map_err(|e| DiscoveryError::Json { detail: e.to_string() })?;
    validate(&endpoint)?;
    Ok(endpoint)
}

// ---------------------------------------------------------------------------------------------
// Client.

/// A validated manifest and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredEndpoint {
    pub manifest_version: ManifestVersion,
    pub endpoint: Endpoint,
    /// HTTP version the response came back on; reuse it for invocations.
    pub http_version: http::Version,
    /// The `x-restate-server` response header (SDK name/version), if sent.
    pub server: Option<String>,
}

/// `{base}/discover`, keeping any path prefix and query of `base`. Only `http://` is accepted.
pub fn discover_uri(base: &Uri) -> Result<Uri, DiscoveryError> {
    let invalid = |reason: &str| DiscoveryError::InvalidUri {
        uri: base.to_string(),
        reason: reason.to_owned(),
    };
    match base.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(invalid("https deployments are not supported yet")),
        Some(_) => return Err(invalid("the scheme must be http")),
        None => return Err(invalid("the uri has no scheme")),
    }
    let Some(authority) = base.authority() else {
        return Err(invalid("the uri has no host"));
    };
    let mut path_and_query = format!("{}/discover", base.path().trim_end_matches('/'));
    if let Some(query) = base.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| invalid(&e.to_string()))
}

/// Fetches, parses and validates the manifest of the deployment at `uri` with a fresh client;
/// the request is signed with `identity`, if given.
pub async fn discover(
    uri: &Uri,
    additional_headers: &HeaderMap,
    identity: Option<&RequestSigner>,
) -> Result<DiscoveredEndpoint, DiscoveryError> {
    discover_with(&h2c_client(), uri, additional_headers, identity).await
}

/// [`discover`] with a caller-provided client.
pub async fn discover_with(
    client: &H2cClient<Empty<Bytes>>,
    uri: &Uri,
    additional_headers: &HeaderMap,
    identity: Option<&RequestSigner>,
) -> Result<DiscoveredEndpoint, DiscoveryError> {
    let target = discover_uri(uri)?;
    let shown = target.to_string();
    let exchange = exchange(client, target, additional_headers, identity);
    match tokio::time::timeout(Duration::from_millis(DISCOVERY_TIMEOUT_MS), exchange).await {
        Ok(result) => result,
        Err(_elapsed) => {
            Err(DiscoveryError::Timeout { uri: shown, timeout_ms: DISCOVERY_TIMEOUT_MS })
        }
    }
}

async fn exchange(
    client: &H2cClient<Empty<Bytes>>,
    target: Uri,
    additional_headers: &HeaderMap,
    identity: Option<&RequestSigner>,
) -> Result<DiscoveredEndpoint, DiscoveryError> {
    let shown = target.to_string();
    let mut request =
        Request::builder().method(Method::GET).uri(target).body(Empty::<Bytes>::new()).map_err(
            |e| DiscoveryError::InvalidUri { uri: shown.clone(), reason: e.to_string() },
        )?;
    let headers = request.headers_mut();
    for (name, value) in additional_headers {
        if name != ACCEPT {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(ACCEPT, HeaderValue::from_static(DISCOVERY_ACCEPT));
    if let Some(identity) = identity {
        // The path relative to the deployment, whatever prefix its uri has.
        identity.sign(headers, "/discover", None);
    }

    let response = client
        .request(request)
        .await
        .map_err(|e| DiscoveryError::Unreachable { uri: shown.clone(), detail: error_chain(&e) })?;
    let status = response.status();
    let http_version = response.version();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let server = response
        .headers()
        .get("x-restate-server")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = Limited::new(response.into_body(), MANIFEST_BYTES_MAX);
    let body = match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(DiscoveryError::TooLarge {
            uri: shown.clone(),
            manifest_bytes_max: MANIFEST_BYTES_MAX,
        }),
        Err(e) => Err(DiscoveryError::Body { uri: shown.clone(), detail: error_chain(&*e) }),
    };

    if status == StatusCode::NOT_FOUND {
        return Err(DiscoveryError::NotFound { uri: shown });
    }
    if !status.is_success() {
        let quoted = match &body {
            Ok(bytes) if !bytes.is_empty() => {
                let end = bytes.len().min(ERROR_BODY_QUOTE_BYTES_MAX);
                format!(": {}", String::from_utf8_lossy(&bytes[..end]).trim())
            }
            _ => String::new(),
        };
        return Err(match (status, identity) {
            (StatusCode::UNAUTHORIZED, None) => {
                DiscoveryError::UnauthorizedUnsigned { uri: shown, body: quoted }
            }
            (StatusCode::UNAUTHORIZED, Some(identity)) => DiscoveryError::UnauthorizedSigned {
                uri: shown,
                body: quoted,
                key_id: identity.key_id().to_string(),
            },
            _ => DiscoveryError::BadStatus { uri: shown, status: status.as_u16(), body: quoted },
        });
    }
    let content_type = content_type.unwrap_or_default();
    let Some(manifest_version) = ManifestVersion::from_content_type(&content_type) else {
        return Err(DiscoveryError::BadContentType { uri: shown, content_type });
    };
    let endpoint = parse_manifest(&body?)?;
    Ok(DiscoveredEndpoint { manifest_version, endpoint, http_version, server })
}

/// An error and all its sources, joined by `: ` (hyper's top-level messages are vague).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_grammar() {
        for ok in ["a", "Counter", "_1", "_a.b-c", "my.pkg.Svc", "a-b_c"] {
            assert!(is_valid_service_name(ok), "{ok}");
        }
        for bad in ["", "_", "1a", "-a", ".a", "a b", "é", "a/b", "__"] {
            assert!(!is_valid_service_name(bad), "{bad}");
        }
        for ok in ["add", "_0", "get_all", "X9"] {
            assert!(is_valid_handler_name(ok), "{ok}");
        }
        for bad in ["", "_", "a.b", "a-b", "9a"] {
            assert!(!is_valid_handler_name(bad), "{bad}");
        }
        assert!(is_reserved_service_name("restate"));
        assert!(is_reserved_service_name("RestateAdmin"));
        assert!(is_reserved_service_name("openapi"));
        assert!(!is_reserved_service_name("rest"));
        assert!(!is_reserved_service_name("Openapi2"));
    }

    #[test]
    fn discover_uri_keeps_prefix_and_rejects_non_http() {
        let u = |s: &str| discover_uri(&s.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(u("http://localhost:9080").unwrap(), "http://localhost:9080/discover");
        assert_eq!(u("http://h:1/prefix/").unwrap(), "http://h:1/prefix/discover");
        assert_eq!(u("http://h:1/p?x=1").unwrap(), "http://h:1/p/discover?x=1");
        assert!(matches!(u("https://h"), Err(DiscoveryError::InvalidUri { .. })));
        assert!(matches!(u("/relative"), Err(DiscoveryError::InvalidUri { .. })));
    }
}
