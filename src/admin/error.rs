//! Errors of the admin API and how each becomes an HTTP response.
//!
//! This module owns the status code and the Restate error code (`META00xx`) of every admin
//! failure. The body is always the JSON [`ErrorBody`](super::model::ErrorBody)
//! (`{"message", "restate_code"}`) with `content-type: application/json`, because the CLI
//! prints a protocol error for anything else.
//!
//! Invariants: not-found → 404; invalid request → 400; a service type change → 409
//! (META0006); discovery could not reach or understand the deployment → 500 with the
//! discovery code (META0003 unreachable, META0012 protocol versions, META0013 bad manifest);
//! a manifest whose services break naming rules → 400; internal (persisting) → 500 and is
//! the only kind logged at ERROR (the others are the caller's to fix).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::model::ErrorBody;
use crate::protocol::discovery::DiscoveryError;
use crate::schema::RegisterError;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("The request field '{field}' is invalid. Reason: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("The path parameter '{param}' is invalid. Reason: {reason}")]
    InvalidPathParam { param: &'static str, reason: String },
    #[error("The request body is invalid: {0}")]
    InvalidBody(String),
    #[error("The requested deployment '{0}' does not exist")]
    DeploymentNotFound(String),
    #[error("The requested service '{0}' does not exist")]
    ServiceNotFound(String),
    #[error("The requested handler '{handler}' on service '{service}' does not exist")]
    HandlerNotFound { service: String, handler: String },
    #[error("Conflict: {0}")]
    Conflict(String),
    /// Too much is waiting already (an object's queue behind its lock).
    #[error("{0}")]
    TooMany(String),
    #[error("The requested invocation '{0}' does not exist")]
    InvocationNotFound(String),
    /// More than the route answers at once.
    #[error("{0}")]
    TooLarge(String),
    /// Something else the request names does not exist (a state entry).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooEarly(String),
    /// What the request needs is no longer kept (a journal past its retention).
    #[error("{0}")]
    Gone(String),
    /// Understood but not possible for this target (restart-as-new of a workflow).
    #[error("{0}")]
    Unprocessable(String),
    #[error("PUT deployment is deprecated, use PATCH instead")]
    DeprecatedPutDeployment,
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("{0}")]
    Register(RegisterError),
    #[error("{0} is not supported by this server yet")]
    NotImplemented(&'static str),
    #[error("Internal server error: {0}")]
    Internal(String),
}

impl From<RegisterError> for AdminError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Discovery(d) => AdminError::Discovery(d),
            other => AdminError::Register(other),
        }
    }
}

impl AdminError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::InvalidField { .. }
            | AdminError::InvalidPathParam { .. }
            | AdminError::InvalidBody(_) => StatusCode::BAD_REQUEST,
            AdminError::DeploymentNotFound(_)
            | AdminError::ServiceNotFound(_)
            | AdminError::HandlerNotFound { .. }
            | AdminError::InvocationNotFound(_)
            | AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::TooEarly(_) => StatusCode::TOO_EARLY,
            AdminError::Gone(_) => StatusCode::GONE,
            AdminError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::DeprecatedPutDeployment => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Discovery(d) => discovery_status(d),
            AdminError::Register(RegisterError::TypeChange { .. }) => StatusCode::CONFLICT,
            AdminError::Register(RegisterError::BadHandler { .. }) => StatusCode::BAD_REQUEST,
            AdminError::Register(RegisterError::UpdateChangesServices(_)) => {
                StatusCode::BAD_REQUEST
            }
            AdminError::Register(RegisterError::Discovery(d)) => discovery_status(d),
            AdminError::Register(RegisterError::Persist(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            AdminError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Restate error code, if this kind of error has one.
    pub fn restate_code(&self) -> Option<&'static str> {
        match self {
            AdminError::Discovery(d) | AdminError::Register(RegisterError::Discovery(d)) => {
                discovery_code(d)
            }
            AdminError::Register(RegisterError::TypeChange { .. }) => Some("META0006"),
            _ => None,
        }
    }
}

/// Status of a failed discovery: 400 when the request itself was wrong (bad uri) or the
/// manifest breaks naming rules, 500 when the deployment could not be reached or understood.
fn discovery_status(e: &DiscoveryError) -> StatusCode {
    use DiscoveryError as D;
    match e {
        D::InvalidUri { .. }
        | D::InvalidServiceName { .. }
        | D::ReservedServiceName { .. }
        | D::DuplicateService { .. }
        | D::InvalidHandlerName { .. }
        | D::DuplicateHandler { .. }
        | D::InvalidHandlerType { .. }
        | D::WorkflowRetentionOnNonWorkflowHandler { .. }
        | D::IdempotencyRetentionOnWorkflowHandler { .. }
        | D::PublicHandlerInPrivateService { .. } => StatusCode::BAD_REQUEST,
        D::Unreachable { .. }
        | D::Timeout { .. }
        | D::NotFound { .. }
        | D::BadStatus { .. }
        | D::UnauthorizedUnsigned { .. }
        | D::UnauthorizedSigned { .. }
        | D::BadContentType { .. }
        | D::Body { .. }
        | D::TooLarge { .. }
        | D::Json { .. }
        | D::MissingProtocolMode
        | D::InvalidVersionRange { .. }
        | D::UnsupportedVersionRange { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The Restate code of a failed discovery.
pub fn discovery_code(e: &DiscoveryError) -> Option<&'static str> {
    use DiscoveryError as D;
    match e {
        D::Unreachable { .. }
        | D::Timeout { .. }
        | D::NotFound { .. }
        | D::BadStatus { .. }
        | D::UnauthorizedUnsigned { .. }
        | D::UnauthorizedSigned { .. }
        | D::Body { .. } => Some("META0003"),
        D::BadContentType { .. }
        | D::TooLarge { .. }
        | D::Json { .. }
        | D::MissingProtocolMode
        | D::InvalidVersionRange { .. } => Some("META0013"),
        D::UnsupportedVersionRange { .. } => Some("META0012"),
        D::ReservedServiceName { .. } => Some("META0005"),
        D::InvalidUri { .. }
        | D::InvalidServiceName { .. }
        | D::DuplicateService { .. }
        | D::InvalidHandlerName { .. }
        | D::DuplicateHandler { .. }
        | D::InvalidHandlerType { .. }
        | D::WorkflowRetentionOnNonWorkflowHandler { .. }
        | D::IdempotencyRetentionOnWorkflowHandler { .. }
        | D::PublicHandlerInPrivateService { .. } => None,
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AdminError::Internal(_) | AdminError::Register(RegisterError::Persist(_)) => {
                tracing::error!(status = status.as_u16(), error = %self, "admin request failed")
            }
            _ => tracing::debug!(status = status.as_u16(), error = %self, "admin request refused"),
        }
        let body = ErrorBody {
            message: self.to_string(),
            restate_code: self.restate_code().map(str::to_owned),
        };
        (status, Json(body)).into_response()
    }
}
