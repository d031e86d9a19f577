//! The admin API's JSON bodies and their derivation from the schema registry's types.
//!
//! This module owns the wire shapes the `restate` CLI deserializes (`VersionInformation`,
//! `RegisterDeploymentRequest`/`Response`, deployment and service descriptors, the error
//! body) and the defaults filled in where a service leaves an option unset.
//!
//! Invariants:
//! - Field names, optional-field omission and value forms follow the Restate admin API
//!   (`docs/reference/http-apis.md` §2): enums as `"VirtualObject"`, durations in the compact
//!   friendly form, timestamps RFC 3339 UTC with `Z`.
//! - Every handler carries `name`, `input_description` and `output_description` (the CLI
//!   refuses a handler without them).
//! - Converting never fails: a schema value that cannot be shown exactly is shown with the
//!   same fallback the CLI would accept (a stored uri that no longer parses is printed as is).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::{friendly_duration_ms, input_description, output_description, rfc3339_utc_ms};
use crate::protocol::discovery::ServiceType;
use crate::schema::{
    Deployment, HandlerSchema, RetentionDefaults, SchemaHandlerKind, ServiceSchema,
};

/// Inactivity timeout when the service sets none.
pub const INACTIVITY_TIMEOUT_MS_DEFAULT: u64 = 60 * 1_000;
/// Abort timeout when the service sets none.
pub const ABORT_TIMEOUT_MS_DEFAULT: u64 = 10 * 60 * 1_000;
/// Default retry policy: first retry delay.
pub const RETRY_INITIAL_INTERVAL_MS_DEFAULT: u64 = 500;
/// Default retry policy: delay growth per attempt.
pub const RETRY_EXPONENTIATION_FACTOR_DEFAULT: f64 = 2.0;
/// Default retry policy: attempts including the first.
pub const RETRY_ATTEMPTS_MAX_DEFAULT: u32 = 70;
/// Default retry policy: longest delay between attempts.
pub const RETRY_INTERVAL_MS_MAX_DEFAULT: u64 = 60 * 1_000;

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInformation {
    pub version: String,
    pub min_admin_api_version: u16,
    pub max_admin_api_version: u16,
    pub ingress_endpoint: Option<String>,
    pub features: BTreeMap<String, bool>,
}

/// The error body of every JSON error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    /// Always present; `null` when the error has no code.
    pub restate_code: Option<String>,
}

/// `POST /deployments`. Only the HTTP form (`uri`) is served; `arn` is recognised so that a
/// Lambda registration gets a clear refusal instead of "missing field".
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegisterDeploymentRequest {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub additional_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub use_http_11: bool,
    #[serde(default)]
    pub breaking: bool,
    /// `None` means the API version's default (true only for V1/V2).
    #[serde(default)]
    pub force: Option<bool>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub auth: Option<serde_json::Value>,
}

/// Body of `PATCH /deployments/{id}`; unset fields keep their value.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdateDeploymentRequest {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    /// Replaces all headers when set.
    #[serde(default)]
    pub additional_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub use_http_11: Option<bool>,
    /// Re-discover and accept any change of the services served.
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// Body of a successful `POST /deployments`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterDeploymentResponse {
    pub id: String,
    pub services: Vec<ServiceMetadata>,
    pub min_protocol_version: i32,
    pub max_protocol_version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
}

/// `GET /deployments`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListDeploymentsResponse {
    pub deployments: Vec<DeploymentResponse<ServiceNameRevision>>,
}

/// One service of a deployment in the list form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceNameRevision {
    pub name: String,
    pub revision: u32,
}

/// An HTTP deployment; `S` is [`ServiceNameRevision`] in lists and [`ServiceMetadata`] in
/// `GET /deployments/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentResponse<S> {
    pub id: String,
    pub uri: String,
    /// `"BidiStream"` or `"RequestResponse"`.
    pub protocol_type: &'static str,
    /// `"HTTP/2.0"` or `"HTTP/1.1"`.
    pub http_version: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub min_protocol_version: i32,
    pub max_protocol_version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    pub services: Vec<S>,
}

/// `GET /services`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListServicesResponse {
    pub services: Vec<ServiceMetadata>,
}

/// `GET /services/{name}/handlers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListHandlersResponse {
    pub handlers: Vec<HandlerMetadata>,
}

/// A registered service with its effective options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceMetadata {
    pub name: String,
    /// `"Service"`, `"VirtualObject"` or `"Workflow"`.
    pub ty: &'static str,
    pub handlers: Vec<HandlerMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub deployment_id: String,
    pub revision: u32,
    pub public: bool,
    pub idempotency_retention: String,
    /// Workflows only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_completion_retention: Option<String>,
    /// Omitted when the effective retention is zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_retention: Option<String>,
    pub inactivity_timeout: String,
    pub abort_timeout: String,
    pub enable_lazy_state: bool,
    pub retry_policy: ServiceRetryPolicy,
}

/// The effective retry policy of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRetryPolicy {
    pub initial_interval: String,
    pub exponentiation_factor: f64,
    /// `null` = unlimited.
    pub max_attempts: Option<u32>,
    /// `null` = unset.
    pub max_interval: Option<String>,
    /// `"Pause"` or `"Kill"`.
    pub on_max_attempts: &'static str,
}

/// Retry overrides of a handler: only set fields, except `max_attempts` (always present).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HandlerRetryPolicy {
    pub max_attempts: Option<u32>,
}

/// One handler of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerMetadata {
    pub name: String,
    /// `"Exclusive"`, `"Shared"` or `"Workflow"`; omitted for plain services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ty: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Set only where the handler overrides its service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout: Option<String>,
    /// Set only where the handler overrides its service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_timeout: Option<String>,
    /// Set only where the handler overrides its service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_lazy_state: Option<bool>,
    pub public: bool,
    pub input_description: String,
    pub output_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_json_schema: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_json_schema: Option<serde_json::Value>,
    pub retry_policy: HandlerRetryPolicy,
}

/// The admin API's name of a service type.
pub fn service_type_name(ty: ServiceType) -> &'static str {
    match ty {
        ServiceType::Service => "Service",
        ServiceType::VirtualObject => "VirtualObject",
        ServiceType::Workflow => "Workflow",
    }
}

/// The admin API's name of a handler type (`None` for plain-service handlers).
pub fn handler_type_name(kind: SchemaHandlerKind) -> Option<&'static str> {
    match kind {
        SchemaHandlerKind::Service => None,
        SchemaHandlerKind::Exclusive => Some("Exclusive"),
        SchemaHandlerKind::Shared | SchemaHandlerKind::WorkflowShared => Some("Shared"),
        SchemaHandlerKind::WorkflowRun => Some("Workflow"),
    }
}

/// The descriptor of `service`, whose deployment speaks bidirectional streaming iff `bidi`.
/// Retention the service sets none of is the server's (`d`).
pub fn service_metadata(
    service: &ServiceSchema,
    bidi: bool,
    d: &RetentionDefaults,
) -> ServiceMetadata {
    let journal_retention_ms = service.journal_retention_ms.unwrap_or(d.journal_ms);
    ServiceMetadata {
        name: service.name.clone(),
        ty: service_type_name(service.ty),
        handlers: service.handlers.values().map(|h| handler_metadata(service, h, bidi)).collect(),
        documentation: service.documentation.clone(),
        metadata: service.metadata.clone(),
        deployment_id: service.deployment_id.clone(),
        revision: service.revision,
        public: service.public,
        idempotency_retention: friendly_duration_ms(
            service.idempotency_retention_ms.unwrap_or(d.idempotency_ms),
        ),
        // Stored on the workflow's run handler (where the PATCH puts it).
        workflow_completion_retention: (service.ty == ServiceType::Workflow).then(|| {
            let run = service.handlers.values().find_map(|h| h.workflow_completion_retention_ms);
            friendly_duration_ms(run.unwrap_or(d.workflow_completion_ms))
        }),
        journal_retention: (journal_retention_ms > 0)
            .then(|| friendly_duration_ms(journal_retention_ms)),
        inactivity_timeout: if bidi {
            friendly_duration_ms(
                service.inactivity_timeout_ms.unwrap_or(INACTIVITY_TIMEOUT_MS_DEFAULT),
            )
        } else {
            friendly_duration_ms(0)
        },
        abort_timeout: friendly_duration_ms(
            service.abort_timeout_ms.unwrap_or(ABORT_TIMEOUT_MS_DEFAULT),
        ),
        enable_lazy_state: service.lazy_state,
        retry_policy: ServiceRetryPolicy {
            initial_interval: friendly_duration_ms(RETRY_INITIAL_INTERVAL_MS_DEFAULT),
            exponentiation_factor: RETRY_EXPONENTIATION_FACTOR_DEFAULT,
            max_attempts: Some(RETRY_ATTEMPTS_MAX_DEFAULT),
            max_interval: Some(friendly_duration_ms(RETRY_INTERVAL_MS_MAX_DEFAULT)),
            on_max_attempts: "Pause",
        },
    }
}

/// The descriptor of one handler of `service`.
///
/// The registry stores handler options already merged with the service's, so an option
/// counts as a handler override only where it differs from the service's value.
pub fn handler_metadata(
    service: &ServiceSchema,
    handler: &HandlerSchema,
    bidi: bool,
) -> HandlerMetadata {
    let overridden =
        |h: Option<u64>, s: Option<u64>| h.filter(|_| h != s).map(friendly_duration_ms);
    HandlerMetadata {
        name: handler.name.clone(),
        ty: handler_type_name(handler.kind),
        documentation: handler.documentation.clone(),
        metadata: handler.metadata.clone(),
        inactivity_timeout: if bidi {
            overridden(handler.inactivity_timeout_ms, service.inactivity_timeout_ms)
        } else {
            None
        },
        abort_timeout: overridden(handler.abort_timeout_ms, service.abort_timeout_ms),
        enable_lazy_state: (handler.lazy_state != service.lazy_state).then_some(handler.lazy_state),
        public: handler.public,
        input_description: input_description(handler.input.as_ref()),
        output_description: output_description(handler.output.as_ref()),
        input_json_schema: handler
            .input
            .as_ref()
            .filter(|i| i.content_type.is_some())
            .and_then(|i| i.json_schema.clone()),
        output_json_schema: handler
            .output
            .as_ref()
            .filter(|o| o.content_type.is_some())
            .and_then(|o| o.json_schema.clone()),
        retry_policy: HandlerRetryPolicy::default(),
    }
}

/// The list form of a deployment.
pub fn deployment_summary(deployment: &Deployment) -> DeploymentResponse<ServiceNameRevision> {
    let services = deployment
        .services
        .iter()
        .map(|(name, revision)| ServiceNameRevision { name: name.clone(), revision: *revision })
        .collect();
    deployment_response(deployment, services)
}

/// A deployment with the given service entries.
pub fn deployment_response<S>(deployment: &Deployment, services: Vec<S>) -> DeploymentResponse<S> {
    DeploymentResponse {
        id: deployment.id.clone(),
        uri: display_uri(&deployment.uri),
        protocol_type: if deployment.bidi { "BidiStream" } else { "RequestResponse" },
        http_version: deployment.http_version.clone(),
        additional_headers: deployment.additional_headers.clone(),
        metadata: deployment.metadata.clone(),
        created_at: rfc3339_utc_ms(deployment.created_ms),
        min_protocol_version: deployment.min_protocol_version,
        max_protocol_version: deployment.max_protocol_version,
        sdk_version: deployment.sdk_version.clone(),
        services,
    }
}

/// A uri in the normal form `http::Uri` prints (`http://host:port/`), or as stored if it no
/// longer parses.
pub fn display_uri(uri: &str) -> String {
    uri.parse::<http::Uri>().map(|u| u.to_string()).unwrap_or_else(|_| uri.to_owned())
}
