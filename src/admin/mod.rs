//! The admin API (default port 9070): health, version negotiation, deployment registration,
//! update and removal (over h2c or HTTP/1.1), the schema registry's services, OpenAPI
//! documents, object state replacement, and invocation cancel / kill / purge / pause /
//! resume / restart-as-new, one at a time or in batches, in the shapes the `restate` CLI 1.7
//! and the web UI expect.
//!
//! This module owns the HTTP surface only. Registration runs discovery
//! ([`crate::protocol::discovery`]) and hands the manifest to [`Registry::register`], which
//! owns the rules and the persistence; everything read here comes from one
//! [`Registry::snapshot`] per request, so a response never mixes two schema versions.
//!
//! Invariants:
//! - The same routes are served unprefixed and under `/v2`, `/v3` and `/v4`; `/v1/...` is
//!   refused with 400 plain text. Only deployment registration depends on the version
//!   (`force` defaults to true and re-registration answers 409/201 under V2).
//! - `GET /version` advertises [`ADMIN_COMPAT_VERSION`] and admin API versions
//!   [`ADMIN_API_VERSION_MIN`]..=[`ADMIN_API_VERSION_MAX`].
//! - Every failure is the JSON error body of [`error`]; nothing here panics on request input.
//! - A new deployment id is never the id of a deployment already in the snapshot.
//! - One deployment change that discovers (register, update) is in flight at a time; another
//!   gets 409 at once rather than deciding on the same snapshot. Dry runs and removals (no
//!   discovery) do not take the slot.

mod error;
pub mod format;
pub mod model;
pub mod openapi;
pub mod query;
pub mod ui;
pub mod ui_read;

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Deserialize;

pub use error::{discovery_code, AdminError};
use model::{
    deployment_response, deployment_summary, handler_metadata, service_metadata,
    ListDeploymentsResponse, ListHandlersResponse, ListServicesResponse, RegisterDeploymentRequest,
    RegisterDeploymentResponse, VersionInformation,
};

use crate::protocol::discovery;
use crate::protocol::ids::DeploymentId;
use crate::schema::{Registered, Registration, Registry, Schema};
use crate::timefmt::now_ms;

/// The server version `GET /version` reports. The CLI gates features on it (≥ 1.5 for the
/// current query paths, ≥ 1.7 for the UI's send paths), so it names the Restate release this
/// server is compatible with, not Ratchet's own version.
pub const ADMIN_COMPAT_VERSION: &str = "1.7.12";
/// Lowest admin API version served.
pub const ADMIN_API_VERSION_MIN: u16 = 2;
/// Highest admin API version served.
pub const ADMIN_API_VERSION_MAX: u16 = 4;

/// Everything the admin handlers need.
#[derive(Debug)]
pub struct AdminState {
    pub registry: Arc<Registry>,
    /// The advertised ingress URL, e.g. `http://127.0.0.1:8080/`.
    pub ingress_endpoint: String,
    /// Reported by `GET /version`; normally [`ADMIN_COMPAT_VERSION`].
    pub server_version: String,
    /// The node's partitions, whose liveness `GET /health` reports (none: only the API).
    pub partitions: Option<crate::partition::Router>,
    /// Signs discovery requests when set (`worker.invoker.request-identity-private-key-pem-file`).
    pub request_identity: Option<Arc<crate::protocol::identity::RequestSigner>>,
    /// Answers `POST /query` (none: 503).
    pub query: Option<Arc<dyn query::Engine>>,
    /// Turns true when the node starts stopping: long-lived answers (the UI's event feed)
    /// end then, so they never hold the drain.
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The admin API version a request came in under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// No `/vN` prefix (the UI, curl): behaves like the newest version.
    Unknown,
    V2,
    V3,
    V4,
}

impl ApiVersion {
    /// `force` when the request leaves it unset: true only for V2 (and the unserved V1).
    fn force_default(self) -> bool {
        self == ApiVersion::V2
    }

    /// Whether re-registering answers with the V3+ statuses (200 for unchanged/overwritten).
    fn is_v3_or_newer(self) -> bool {
        self != ApiVersion::V2
    }
}

/// Per-mount handler state.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    state: Arc<AdminState>,
    version: ApiVersion,
}

/// The admin router: the API unprefixed and under `/v2`, `/v3`, `/v4`.
pub fn router(state: Arc<AdminState>) -> Router {
    let mut router = api_routes(Api { state: state.clone(), version: ApiVersion::Unknown });
    for (prefix, version) in
        [("/v2", ApiVersion::V2), ("/v3", ApiVersion::V3), ("/v4", ApiVersion::V4)]
    {
        router = router.nest(prefix, api_routes(Api { state: state.clone(), version }));
    }
    router
        .route("/v1", any(unsupported_v1))
        .route("/v1/{*rest}", any(unsupported_v1))
        .merge(ui::routes(Api { state, version: ApiVersion::Unknown }))
}

fn api_routes(api: Api) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/query", axum::routing::post(query::query))
        .route("/version", get(version))
        .route("/deployments", get(list_deployments).post(register_deployment))
        .route(
            "/deployments/{deployment}",
            get(get_deployment)
                .delete(delete_deployment)
                .patch(update_deployment)
                .put(put_deployment),
        )
        .route("/services", get(list_services))
        .route("/services/{service}", get(get_service).patch(modify_service))
        .route("/services/{service}/handlers", get(list_handlers))
        .route("/services/{service}/openapi", get(service_openapi))
        .route("/openapi", get(admin_openapi))
        .route("/services/{service}/state", axum::routing::post(modify_service_state))
        .route("/services/{service}/handlers/{handler}", get(get_handler))
        .route("/invocations/{id}", axum::routing::delete(delete_invocation))
        .route("/invocations/{id}/{op}", axum::routing::patch(patch_invocation))
        .route(
            "/internal/invocations_batch_operations/{op}",
            axum::routing::post(batch_invocation_op),
        )
        .with_state(api)
}

async fn unsupported_v1() -> Response {
    let message = format!(
        "Unsupported Admin API version V1. This server supports versions between V{ADMIN_API_VERSION_MIN} and \
         V{ADMIN_API_VERSION_MAX}."
    );
    (StatusCode::BAD_REQUEST, [(CONTENT_TYPE, "text/plain; charset=utf-8")], message)
        .into_response()
}

/// 200 with an empty body while every partition runs; 503 naming the ones that do not.
async fn health(State(api): State<Api>) -> Response {
    match api.state.partitions.as_ref().and_then(crate::ingress::not_running) {
        Some(r) => r,
        None => StatusCode::OK.into_response(),
    }
}

/// `GET /openapi`: this API's routes.
async fn admin_openapi(State(api): State<Api>) -> Json<serde_json::Value> {
    Json(openapi::admin_document(&api.state.server_version))
}

/// `GET /services/{service}/openapi`: how to invoke the service through the ingress.
async fn service_openapi(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let schema = api.state.registry.snapshot();
    let service = schema.service(&name).ok_or(AdminError::ServiceNotFound(name))?;
    let doc = openapi::service_document(service, &api.state.ingress_endpoint);
    Ok(Json(doc).into_response())
}

async fn version(State(api): State<Api>) -> Json<VersionInformation> {
    Json(VersionInformation {
        version: api.state.server_version.clone(),
        min_admin_api_version: ADMIN_API_VERSION_MIN,
        max_admin_api_version: ADMIN_API_VERSION_MAX,
        ingress_endpoint: Some(api.state.ingress_endpoint.clone()),
        features: BTreeMap::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Deployments.

async fn register_deployment(State(api): State<Api>, body: Bytes) -> Result<Response, AdminError> {
    let request: RegisterDeploymentRequest =
        serde_json::from_slice(&body).map_err(|e| AdminError::InvalidBody(e.to_string()))?;
    let uri = match (&request.uri, &request.arn) {
        (Some(uri), _) => parse_deployment_uri(uri)?,
        (None, Some(_)) => return Err(AdminError::InvalidField {
            field: "arn",
            reason:
                "Lambda deployments are not supported by this server; register an HTTP deployment \
                         with 'uri'"
                    .to_owned(),
        }),
        (None, None) => return Err(AdminError::InvalidBody("missing field `uri`".to_owned())),
    };
    if request.auth.is_some() {
        return Err(AdminError::InvalidField {
            field: "auth",
            reason:
                "deployment authentication is not supported by this server; use additional_headers"
                    .to_owned(),
        });
    }
    let additional_headers = request.additional_headers.unwrap_or_default();
    let header_map = header_map(&additional_headers)?;
    let force = request.force.unwrap_or(api.version.force_default());
    // A dry run changes nothing, so it needs no slot.
    let _change = match request.dry_run {
        true => None,
        false => Some(begin_change(&api)?),
    };
    let discovered = discover(&api, &uri, &header_map, request.use_http_11).await?;

    // The registry keys deployments by the uri in its normal printed form.
    let uri_key = uri.to_string();
    let snapshot = api.state.registry.snapshot();
    let exists = snapshot
        .deployments
        .values()
        .any(|d| d.uri == uri_key && d.additional_headers == additional_headers);
    // `breaking` allows a service type change without overwriting an existing deployment.
    let allow_breaking = force || (request.breaking && !exists);
    let now_ms = now_ms();
    let new_id = fresh_deployment_id(&snapshot, now_ms);
    let registry = api.state.registry.clone();
    let metadata = request.metadata;
    let dry_run = request.dry_run;
    let (outcome, deployment, services) = tokio::task::spawn_blocking(move || {
        registry.register(
            Registration {
                uri: uri_key,
                additional_headers,
                metadata,
                force: allow_breaking,
                dry_run,
                now_ms,
                new_id,
            },
            &discovered,
        )
    })
    .await
    .map_err(|e| AdminError::Internal(format!("registration task failed: {e}")))??;

    let status = match outcome {
        Registered::Created => StatusCode::CREATED,
        Registered::Unchanged if api.version.is_v3_or_newer() => StatusCode::OK,
        Registered::Unchanged => {
            return Err(AdminError::Conflict(format!(
                "deployment {} already exists",
                deployment.id
            )));
        }
        Registered::Overwritten if api.version.is_v3_or_newer() => StatusCode::OK,
        Registered::Overwritten => StatusCode::CREATED,
    };
    if !dry_run {
        tracing::info!(
            deployment = %deployment.id,
            uri = %deployment.uri,
            outcome = ?outcome,
            services = ?deployment.services,
            "registered deployment"
        );
    }
    let response = RegisterDeploymentResponse {
        id: deployment.id.clone(),
        services: services
            .iter()
            .map(|s| service_metadata(s, deployment.bidi, &api.state.registry.snapshot().retention))
            .collect(),
        min_protocol_version: deployment.min_protocol_version,
        max_protocol_version: deployment.max_protocol_version,
        sdk_version: deployment.sdk_version.clone(),
    };
    let location = format!("deployments/{}", deployment.id);
    Ok((status, [(LOCATION, location)], Json(response)).into_response())
}

/// The slot for one deployment change at a time, or 409 while another is in flight.
fn begin_change(api: &Api) -> Result<crate::schema::ChangeGuard<'_>, AdminError> {
    api.state.registry.begin_change().ok_or_else(|| {
        AdminError::Conflict(
            "another deployment change (register or update) is in progress; retry when it \
             has finished"
                .to_owned(),
        )
    })
}

/// Fetches the manifest at `uri` over h2c, or HTTP/1.1 when `http11`.
async fn discover(
    api: &Api,
    uri: &Uri,
    headers: &HeaderMap,
    http11: bool,
) -> Result<discovery::DiscoveredEndpoint, AdminError> {
    let identity = api.state.request_identity.as_deref();
    Ok(match http11 {
        true => {
            let client = crate::protocol::http::http1_client();
            discovery::discover_with(&client, uri, headers, identity).await?
        }
        false => discovery::discover(uri, headers, identity).await?,
    })
}

/// Parses the registration uri; it must be absolute (scheme and authority).
fn parse_deployment_uri(text: &str) -> Result<Uri, AdminError> {
    let uri: Uri = text.parse().map_err(|e| AdminError::InvalidField {
        field: "uri",
        reason: format!("The provided uri {text} is not a valid uri: {e}"),
    })?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(AdminError::InvalidField {
            field: "uri",
            reason: format!(
                "The provided uri {uri} is not absolute, only absolute URIs can be used."
            ),
        });
    }
    Ok(uri)
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, AdminError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let invalid = |what: &str, e: &dyn std::fmt::Display| AdminError::InvalidField {
            field: "additional_headers",
            reason: format!("header {what} '{name}' is not valid: {e}"),
        };
        let header_name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid("name", &e))?;
        let header_value = HeaderValue::from_str(value).map_err(|e| invalid("value of", &e))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

async fn list_deployments(State(api): State<Api>) -> Json<ListDeploymentsResponse> {
    let schema = api.state.registry.snapshot();
    Json(ListDeploymentsResponse {
        deployments: schema.deployments.values().map(deployment_summary).collect(),
    })
}

async fn get_deployment(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let schema = api.state.registry.snapshot();
    let deployment = find_deployment(&schema, &id)?;
    // Only the revisions this deployment still serves are known in full; services that a
    // newer deployment took over are not listed.
    let services = deployment
        .services
        .iter()
        .filter_map(|(name, _)| schema.service(name))
        .filter(|s| s.deployment_id == deployment.id)
        .map(|s| service_metadata(s, deployment.bidi, &schema.retention))
        .collect();
    Ok(Json(deployment_response(deployment, services)).into_response())
}

#[derive(Debug, Deserialize)]
struct DeleteDeploymentParams {
    force: Option<bool>,
}

/// `DELETE /deployments/{id}?force=true`: 202; the deployment and the services whose
/// latest revision it serves are gone.
async fn delete_deployment(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Query<DeleteDeploymentParams>,
) -> Result<Response, AdminError> {
    if params.force != Some(true) {
        // Only forced removal exists; the reference server answers 501 without a body.
        return Ok(StatusCode::NOT_IMPLEMENTED.into_response());
    }
    let schema = api.state.registry.snapshot();
    let dp = find_deployment(&schema, &id)?.id.clone();
    // No discovery to wait for: the registry's writer lock orders it with any commit, so it
    // needs no change slot (a registration deciding meanwhile re-reads the schema it commits
    // to).
    let registry = api.state.registry.clone();
    let removed = tokio::task::spawn_blocking(move || registry.remove(&dp))
        .await
        .map_err(|e| AdminError::Internal(format!("removal task failed: {e}")))??;
    match removed {
        Some(d) => {
            tracing::info!(deployment = %d.id, uri = %d.uri, "removed deployment");
            Ok(StatusCode::ACCEPTED.into_response())
        }
        None => Err(AdminError::DeploymentNotFound(id)),
    }
}

/// `PATCH /deployments/{id}` (`UpdateDeploymentRequest`): a new address, headers or HTTP
/// version, re-discovered; an empty patch answers the deployment as it is.
async fn update_deployment(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let request: model::UpdateDeploymentRequest =
        serde_json::from_slice(&body).map_err(|e| AdminError::InvalidBody(e.to_string()))?;
    if request.arn.is_some() {
        return Err(AdminError::InvalidField {
            field: "arn",
            reason: "Lambda deployments are not supported by this server".to_owned(),
        });
    }
    let schema = api.state.registry.snapshot();
    let current = find_deployment(&schema, &id)?.clone();
    let empty = request.uri.is_none()
        && request.additional_headers.is_none()
        && request.use_http_11.is_none()
        && !request.overwrite;
    if empty {
        return get_deployment(State(api), Path(id)).await;
    }
    let uri = match &request.uri {
        Some(u) => parse_deployment_uri(u)?,
        None => parse_deployment_uri(&current.uri)?,
    };
    let additional_headers = request.additional_headers.unwrap_or(current.additional_headers);
    let header_map = header_map(&additional_headers)?;
    let http11 = request.use_http_11.unwrap_or(current.http_version == "HTTP/1.1");
    let _change = match request.dry_run {
        true => None,
        false => Some(begin_change(&api)?),
    };
    let discovered = discover(&api, &uri, &header_map, http11).await?;
    let registry = api.state.registry.clone();
    let (overwrite, dry_run, dp) = (request.overwrite, request.dry_run, current.id.clone());
    let uri_key = uri.to_string();
    let updated = tokio::task::spawn_blocking(move || {
        registry.update(&dp, &uri_key, additional_headers, overwrite, dry_run, &discovered)
    })
    .await
    .map_err(|e| AdminError::Internal(format!("update task failed: {e}")))??;
    let Some((deployment, services)) = updated else {
        return Err(AdminError::DeploymentNotFound(id));
    };
    if !dry_run {
        tracing::info!(deployment = %deployment.id, uri = %deployment.uri, "updated deployment");
    }
    let retention = api.state.registry.snapshot().retention;
    let services =
        services.iter().map(|s| service_metadata(s, deployment.bidi, &retention)).collect();
    Ok(Json(deployment_response(&deployment, services)).into_response())
}

async fn put_deployment(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    if api.version.is_v3_or_newer() {
        return Err(AdminError::DeprecatedPutDeployment);
    }
    update_deployment(State(api), Path(id), body).await
}

fn find_deployment<'a>(
    schema: &'a Schema,
    id: &str,
) -> Result<&'a crate::schema::Deployment, AdminError> {
    let parsed: DeploymentId = id.parse().map_err(|e| AdminError::InvalidPathParam {
        param: "deployment",
        reason: format!("{e}"),
    })?;
    schema
        .deployment(&parsed.to_string())
        .ok_or_else(|| AdminError::DeploymentNotFound(id.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Services and handlers.

/// Whether the deployment serving `service` streams bidirectionally (true if unknown).
fn serves_bidi(schema: &Schema, service: &str) -> bool {
    schema.deployment_for(service).is_none_or(|d| d.bidi)
}

async fn list_services(State(api): State<Api>) -> Json<ListServicesResponse> {
    let schema = api.state.registry.snapshot();
    let services = schema
        .services
        .values()
        .map(|s| service_metadata(s, serves_bidi(&schema, &s.name), &schema.retention))
        .collect();
    Json(ListServicesResponse { services })
}

async fn get_service(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let schema = api.state.registry.snapshot();
    let service = schema.service(&name).ok_or_else(|| AdminError::ServiceNotFound(name.clone()))?;
    let bidi = serves_bidi(&schema, &name);
    Ok(Json(service_metadata(service, bidi, &schema.retention)).into_response())
}

/// `PATCH /services/{service}`: Restate's `ModifyServiceRequest`; every field optional, a
/// duration in Restate's friendly or ISO form. A later registration of the service resets
/// them to what its deployment declares.
#[derive(Deserialize)]
struct ModifyServiceRequest {
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    idempotency_retention: Option<String>,
    #[serde(default)]
    workflow_completion_retention: Option<String>,
    #[serde(default)]
    journal_retention: Option<String>,
    #[serde(default)]
    inactivity_timeout: Option<String>,
    #[serde(default)]
    abort_timeout: Option<String>,
}

async fn modify_service(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let request: ModifyServiceRequest = match body.is_empty() {
        true => ModifyServiceRequest {
            public: None,
            idempotency_retention: None,
            workflow_completion_retention: None,
            journal_retention: None,
            inactivity_timeout: None,
            abort_timeout: None,
        },
        false => {
            serde_json::from_slice(&body).map_err(|e| AdminError::InvalidBody(e.to_string()))?
        }
    };
    let ms = |field: &'static str, v: &Option<String>| -> Result<Option<u64>, AdminError> {
        v.as_deref()
            .map(|v| {
                crate::config::parse_duration(field, v)
                    .map(|d| d.as_millis() as u64)
                    .map_err(|e| AdminError::InvalidField { field, reason: e.to_string() })
            })
            .transpose()
    };
    let idempotency = ms("idempotency_retention", &request.idempotency_retention)?;
    let workflow = ms("workflow_completion_retention", &request.workflow_completion_retention)?;
    let journal = ms("journal_retention", &request.journal_retention)?;
    let inactivity = ms("inactivity_timeout", &request.inactivity_timeout)?;
    let abort = ms("abort_timeout", &request.abort_timeout)?;
    let changed = api
        .state
        .registry
        .modify_service(&name, |s| {
            if workflow.is_some() && s.ty != discovery::ServiceType::Workflow {
                return Err(format!(
                    "workflow_completion_retention applies only to workflows; '{}' is not one",
                    s.name
                ));
            }
            // A field left out keeps the current value.
            s.public = request.public.unwrap_or(s.public);
            s.idempotency_retention_ms = idempotency.or(s.idempotency_retention_ms);
            s.journal_retention_ms = journal.or(s.journal_retention_ms);
            s.inactivity_timeout_ms = inactivity.or(s.inactivity_timeout_ms);
            s.abort_timeout_ms = abort.or(s.abort_timeout_ms);
            // Handlers carry the options they run with.
            for h in s.handlers.values_mut() {
                h.public = request.public.unwrap_or(h.public);
                h.idempotency_retention_ms = idempotency.or(h.idempotency_retention_ms);
                h.journal_retention_ms = journal.or(h.journal_retention_ms);
                h.inactivity_timeout_ms = inactivity.or(h.inactivity_timeout_ms);
                h.abort_timeout_ms = abort.or(h.abort_timeout_ms);
                if h.kind == crate::schema::SchemaHandlerKind::WorkflowRun {
                    h.workflow_completion_retention_ms =
                        workflow.or(h.workflow_completion_retention_ms);
                }
            }
            Ok(())
        })
        .map_err(AdminError::Register)?;
    match changed {
        None => Err(AdminError::ServiceNotFound(name)),
        Some(Err(reason)) => {
            Err(AdminError::InvalidField { field: "workflow_completion_retention", reason })
        }
        Some(Ok(_)) => get_service(State(api), Path(name)).await,
    }
}

/// `POST /services/{service}/state`: the body of Restate's `ModifyServiceStateRequest`.
#[derive(Deserialize)]
struct ModifyServiceStateRequest {
    object_key: String,
    /// State key → value bytes (a JSON array of byte integers).
    new_state: BTreeMap<String, Vec<u8>>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Replaces an object's whole state. Accepted (202) once the request is in the log; the
/// partition applies it only if the state still has `version` (when given).
async fn modify_service_state(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let request: ModifyServiceStateRequest =
        serde_json::from_slice(&body).map_err(|e| AdminError::InvalidBody(e.to_string()))?;
    let schema = api.state.registry.snapshot();
    match schema.service(&name) {
        // Nothing to replace and nothing to keep: Restate accepts it.
        None if request.new_state.is_empty() => return Ok(StatusCode::ACCEPTED.into_response()),
        None => return Err(AdminError::ServiceNotFound(name)),
        Some(s) if s.ty == discovery::ServiceType::Service => {
            return Err(AdminError::InvalidField {
                field: "service",
                reason: format!("service '{name}' is a plain service, which has no state"),
            })
        }
        Some(_) => {}
    }
    if request.scope.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(AdminError::InvalidField {
            field: "scope",
            reason: "scoped state needs vqueues, which this server does not have".to_owned(),
        });
    }
    let partitions = api
        .state
        .partitions
        .as_ref()
        .ok_or_else(|| AdminError::Unavailable("this node runs no partitions".to_owned()))?;
    let handle = partitions.for_key(crate::fsm::partition_key_of(&request.object_key));
    let (ack_request, rx, _guard) = partitions.waiters.register();
    let m = crate::fsm::ModifyState {
        service: name,
        key: request.object_key,
        entries: request
            .new_state
            .into_iter()
            .map(|(k, v)| crate::fsm::StateEntry { key: k.into_bytes().into(), value: v.into() })
            .collect(),
        version: request.version.unwrap_or_default(),
        ack_request,
    };
    let kind = crate::fsm::record::Kind::ModifyState(m);
    handle
        .append(vec![crate::fsm::Record { header: None, kind: Some(kind) }])
        .await
        .map_err(|e| AdminError::Unavailable(format!("cannot append the request: {e}")))?;
    // Answered once applied: taken (replaced, or queued behind the object's lock) or refused
    // (too much waiting for the object), so an edit is never lost after a 202.
    let (_, outcome) = rx.await.map_err(|_| {
        AdminError::Unavailable("the server is shutting down; the edit may have been taken".into())
    })?;
    match outcome.result {
        Some(crate::fsm::outcome::Result::Failure(f)) => Err(AdminError::TooMany(f.message)),
        _ => Ok(StatusCode::ACCEPTED.into_response()),
    }
}

async fn list_handlers(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let schema = api.state.registry.snapshot();
    let service = schema.service(&name).ok_or_else(|| AdminError::ServiceNotFound(name.clone()))?;
    let bidi = serves_bidi(&schema, &name);
    let handlers = service.handlers.values().map(|h| handler_metadata(service, h, bidi)).collect();
    Ok(Json(ListHandlersResponse { handlers }).into_response())
}

async fn get_handler(
    State(api): State<Api>,
    Path((name, handler)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let schema = api.state.registry.snapshot();
    let service = schema.service(&name).ok_or_else(|| AdminError::ServiceNotFound(name.clone()))?;
    let h = service
        .handlers
        .get(&handler)
        .ok_or_else(|| AdminError::HandlerNotFound { service: name.clone(), handler })?;
    Ok(Json(handler_metadata(service, h, serves_bidi(&schema, &name))).into_response())
}

// ---------------------------------------------------------------------------------------------
// Ids and time.

/// A deployment id not used in `schema`.
fn fresh_deployment_id(schema: &Schema, now_ms: u64) -> DeploymentId {
    loop {
        let id = new_deployment_id(now_ms);
        if schema.deployment(&id.to_string()).is_none() {
            return id;
        }
    }
}

/// A new random deployment id, laid out like a ULID: the upper 48 bits are `now_ms` (so ids
/// sort by creation time), the lower 80 bits come from hashing a process-wide counter and the
/// clock with a freshly keyed [`RandomState`].
pub fn new_deployment_id(now_ms: u64) -> DeploymentId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const RANDOM_BITS: u32 = 80;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let keys = RandomState::new();
    let mut hasher = keys.build_hasher();
    hasher.write_u64(n);
    hasher.write_u64(now_ms);
    hasher.write_u32(nanos);
    let high = hasher.finish();
    let mut hasher = keys.build_hasher();
    hasher.write_u64(high);
    hasher.write_u64(!n);
    let low = hasher.finish();
    let random = (u128::from(high) << 16) | u128::from(low & 0xFFFF);
    let time = u128::from(now_ms & ((1 << 48) - 1));
    DeploymentId((time << RANDOM_BITS) | random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_distinct_and_time_ordered() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1_000u64 {
            let id = new_deployment_id(1_700_000_000_000 + i / 10);
            assert_eq!(id.0 >> 80, u128::from(1_700_000_000_000 + i / 10));
            assert!(seen.insert(id), "duplicate id {id}");
            let text = id.to_string();
            assert_eq!(text.len(), DeploymentId::STRING_CHARS);
            assert_eq!(text.parse::<DeploymentId>(), Ok(id));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Invocations: cancel, kill, purge.

/// What an invocation operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum InvocationOp {
    Cancel,
    Kill,
    Purge,
    Pause,
    /// With the deployment to pin (empty: keep; `latest`; a `dp_…` id).
    Resume(String),
}

#[derive(Debug, Deserialize)]
struct DeleteInvocationParams {
    mode: Option<String>,
}

/// `DELETE /invocations/{id}?mode=Cancel|Kill|Purge` (deprecated form): 202.
async fn delete_invocation(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Query<DeleteInvocationParams>,
) -> Result<Response, AdminError> {
    let op = match params.mode.as_deref() {
        None | Some("Cancel" | "cancel") => InvocationOp::Cancel,
        Some("Kill" | "kill") => InvocationOp::Kill,
        Some("Purge" | "purge") => InvocationOp::Purge,
        Some(other) => {
            return Err(AdminError::InvalidField {
                field: "mode",
                reason: format!("unknown mode '{other}'; use Cancel, Kill or Purge"),
            })
        }
    };
    invocation_op(&api, &id, op).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Debug, Deserialize)]
struct PatchInvocationParams {
    deployment: Option<String>,
    /// restart-as-new: the last journal entry index kept.
    from: Option<u32>,
}

/// `PATCH /invocations/{id}/cancel|kill|purge|pause|resume|restart-as-new`.
async fn patch_invocation(
    State(api): State<Api>,
    Path((id, op)): Path<(String, String)>,
    Query(params): Query<PatchInvocationParams>,
) -> Result<Response, AdminError> {
    let Some(name) = OpName::parse(&op)? else { return Ok(StatusCode::NOT_FOUND.into_response()) };
    // Only the operations that pin a deployment read the parameter.
    let deployment = match name.deployment_default() {
        Some(default) => deployment_param(&api, params.deployment, default)?,
        None => String::new(),
    };
    Ok(match run_named(&api, &id, name, deployment, params.from.unwrap_or(0)).await? {
        (status, Some(new_id)) => {
            let body = serde_json::json!({ "new_invocation_id": new_id });
            (status, Json(body)).into_response()
        }
        (status, None) => status.into_response(),
    })
}

/// An invocation operation as its path names it (`PATCH /invocations/{id}/{op}` and the UI's
/// batches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpName {
    Cancel,
    Kill,
    Purge,
    Pause,
    Resume,
    RestartAsNew,
}

impl OpName {
    /// `Ok(None)`: no such operation (404); `purge-journal` is not implemented (501).
    pub(super) fn parse(name: &str) -> Result<Option<OpName>, AdminError> {
        Ok(Some(match name {
            "cancel" => OpName::Cancel,
            "kill" => OpName::Kill,
            "purge" => OpName::Purge,
            "pause" => OpName::Pause,
            "resume" => OpName::Resume,
            "restart-as-new" => OpName::RestartAsNew,
            "purge-journal" => return Err(AdminError::NotImplemented("This invocation operation")),
            _ => return Ok(None),
        }))
    }

    /// What an absent `deployment` value means for the operations that pin one: keep the
    /// pinned deployment (resume), or the latest (restart-as-new).
    pub(super) fn deployment_default(self) -> Option<&'static str> {
        match self {
            OpName::Resume => Some(""),
            OpName::RestartAsNew => Some("latest"),
            _ => None,
        }
    }
}

/// Runs operation `name` on invocation `id`: the status to answer and, for restart-as-new,
/// the new invocation's id.
pub(super) async fn run_named(
    api: &Api,
    id: &str,
    name: OpName,
    deployment: String,
    from: u32,
) -> Result<(StatusCode, Option<String>), AdminError> {
    let op = match name {
        OpName::Cancel => InvocationOp::Cancel,
        OpName::Kill => InvocationOp::Kill,
        OpName::Purge => InvocationOp::Purge,
        OpName::Pause => InvocationOp::Pause,
        OpName::Resume => InvocationOp::Resume(deployment),
        OpName::RestartAsNew => {
            let new_id = restart_as_new(api, id, from, deployment).await?;
            return Ok((StatusCode::OK, Some(new_id)));
        }
    };
    Ok((invocation_op(api, id, op).await?, None))
}

/// Most ids one batch operation takes (Restate's limit).
const BATCH_IDS_MAX: usize = 1000;
/// Operations of one batch in flight at once: enough to overlap the log appends, few enough
/// that a batch does not crowd out other admin requests.
const BATCH_CONCURRENCY: usize = 16;

#[derive(Debug, Deserialize)]
struct BatchRequest {
    invocation_ids: Vec<String>,
    #[serde(default)]
    deployment: Option<String>,
}

/// `POST /internal/invocations_batch_operations/{op}` (the UI's): `op` on each id, answered
/// per id in request order as `{"succeeded": [...], "failed": [{"invocation_id", "error"}]}`;
/// restart-as-new's successes are `{"old_invocation_id", "new_invocation_id"}`. A malformed id
/// refuses the whole batch (422) before anything is done.
async fn batch_invocation_op(
    State(api): State<Api>,
    Path(op): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    use futures_util::StreamExt;
    let Some(name) = OpName::parse(&op)? else { return Ok(StatusCode::NOT_FOUND.into_response()) };
    let request: BatchRequest =
        serde_json::from_slice(&body).map_err(|e| AdminError::InvalidBody(e.to_string()))?;
    for (i, id) in request.invocation_ids.iter().enumerate() {
        if let Err(e) = id.parse::<crate::protocol::ids::InvocationId>() {
            let text = format!(
                "Failed to deserialize the JSON body into the target type: invocation_ids[{i}]: {e}"
            );
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, text).into_response());
        }
    }
    if request.invocation_ids.len() > BATCH_IDS_MAX {
        return Err(AdminError::InvalidBody(format!(
            "Batch size {} exceeds maximum allowed size of {BATCH_IDS_MAX}",
            request.invocation_ids.len()
        )));
    }
    // A batch checks the deployment value whatever the operation.
    let default = name.deployment_default().unwrap_or("");
    let deployment = deployment_param(&api, request.deployment, default)?;
    let api = &api;
    let results: Vec<(String, Result<serde_json::Value, AdminError>)> =
        futures_util::stream::iter(request.invocation_ids)
            .map(|id| {
                let deployment = deployment.clone();
                async move {
                    let result = run_named(api, &id, name, deployment, 0).await.map(|r| match r {
                        (_, Some(new_id)) => serde_json::json!({
                            "old_invocation_id": id, "new_invocation_id": new_id,
                        }),
                        (_, None) => serde_json::json!(id),
                    });
                    (id, result)
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await;
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    for (id, result) in results {
        match result {
            Ok(v) => succeeded.push(v),
            Err(e) => failed.push(serde_json::json!({"invocation_id": id, "error": e.to_string()})),
        }
    }
    Ok(Json(serde_json::json!({"succeeded": succeeded, "failed": failed})).into_response())
}

/// The `deployment` query value of resume and restart-as-new: `keep` (empty), `latest`, or a
/// registered `dp_…` id; `default` when absent.
pub(super) fn deployment_param(
    api: &Api,
    value: Option<String>,
    default: &str,
) -> Result<String, AdminError> {
    Ok(match value.as_deref() {
        None => default.to_string(),
        Some("keep" | "Keep") => String::new(),
        Some("latest" | "Latest") => "latest".to_string(),
        Some(d) => {
            if api.state.registry.snapshot().deployment(d).is_none() {
                return Err(AdminError::InvalidField {
                    field: "deployment",
                    reason: format!("deployment '{d}' does not exist"),
                });
            }
            d.to_string()
        }
    })
}

/// The partition handle of an invocation and its status, or the admin error for a malformed
/// id, an unknown invocation or a partition that is not running here.
async fn invocation_status(
    api: &Api,
    id: &str,
) -> Result<
    (crate::protocol::ids::InvocationId, crate::partition::Handle, crate::fsm::Status),
    AdminError,
> {
    use crate::fsm::FsmRead;
    let invocation: crate::protocol::ids::InvocationId = id.parse().map_err(|e| {
        AdminError::InvalidPathParam { param: "invocation_id", reason: format!("{e}") }
    })?;
    let router = api
        .state
        .partitions
        .as_ref()
        .ok_or_else(|| AdminError::Unavailable("this node runs no partitions".into()))?;
    let handle = router.for_key(invocation.partition_key).clone();
    let store = handle.store().ok_or_else(|| {
        AdminError::Unavailable(format!(
            "the partition of invocation '{id}' is not running; retry shortly"
        ))
    })?;
    let read = || {
        store
            .begin_read()
            .and_then(|r| r.status(&invocation))
            .map_err(|e| AdminError::Internal(format!("cannot read the invocation: {e}")))
    };
    if let Some(status) = read()? {
        return Ok((invocation, handle, status));
    }
    // Not there: it may be in the log but not applied yet. Read again once it is.
    handle.applied_caught_up().await;
    let status = read()?.ok_or_else(|| AdminError::InvocationNotFound(id.to_string()))?;
    Ok((invocation, handle, status))
}

/// `PATCH /invocations/{id}/restart-as-new?from=&deployment=`: checks what `apply` will
/// check (completed, not a workflow, journal kept, a complete prefix) so the caller hears why
/// not, then appends the restart with a new id in the same partition; answers that id.
async fn restart_as_new(
    api: &Api,
    id: &str,
    from: u32,
    deployment_id: String,
) -> Result<String, AdminError> {
    use crate::fsm::{record, FsmRead, HandlerKind, Phase, Record, RestartAsNew};
    let (invocation, handle, status) = invocation_status(api, id).await?;
    // Restate's order: not started, running, journal gone, a workflow, an old protocol.
    match status.phase() {
        Phase::Scheduled | Phase::Inboxed => {
            return Err(AdminError::TooEarly(format!("the invocation '{id}' has not started yet")))
        }
        Phase::Completed => {}
        _ => {
            return Err(AdminError::Conflict(format!(
                "the invocation '{id}' is still running; only completed invocations can be \
                 restarted as new"
            )))
        }
    }
    if status.journal_len == 0 {
        return Err(AdminError::Gone(format!(
            "the journal of invocation '{id}' is not retained (journal retention), so it cannot \
             be restarted as new"
        )));
    }
    let schema = api.state.registry.snapshot();
    let workflow = match schema.service(&status.service) {
        Some(s) => s.ty == crate::protocol::discovery::ServiceType::Workflow,
        None => status.kind() == HandlerKind::WorkflowRun,
    };
    if workflow {
        return Err(AdminError::Unprocessable(format!(
            "the invocation '{id}' belongs to workflow '{}'; workflows cannot be restarted as new",
            status.service
        )));
    }
    if from > 0 && (1..6).contains(&status.protocol_version) {
        return Err(AdminError::Unprocessable(format!(
            "the invocation '{id}' ran under service protocol V{}; restarting from a journal \
             entry needs V6 or later (its random seed)",
            status.protocol_version
        )));
    }
    let deployment_id = match deployment_id.as_str() {
        "" => crate::fsm::RESTART_KEEP_DEPLOYMENT.to_string(),
        "latest" => deployment_id,
        d => {
            // The kept entries run under the old protocol version.
            let v = status.protocol_version as i32;
            let fits = schema.deployment(d).is_some_and(|dp| {
                v == 0 || (dp.min_protocol_version..=dp.max_protocol_version).contains(&v)
            });
            if !fits {
                return Err(AdminError::InvalidField {
                    field: "deployment",
                    reason: format!(
                        "deployment '{d}' does not support service protocol V{v}, which the \
                         invocation's journal was written with"
                    ),
                });
            }
            deployment_id
        }
    };
    let store = handle.store().ok_or_else(|| {
        AdminError::Unavailable(format!(
            "the partition of invocation '{id}' is not running; retry shortly"
        ))
    })?;
    let read = store.begin_read().map_err(|e| AdminError::Internal(format!("{e}")))?;
    crate::fsm::restart::plan(status.journal_len, from, |at, n| {
        read.journal_page_of(&invocation, &status, at, n)
    })
    .map_err(|e| AdminError::Internal(format!("cannot read the journal: {e}")))?
    .map_err(|e| AdminError::InvalidField { field: "from", reason: e.to_string() })?;
    drop(read);
    drop(store);
    static IDS: std::sync::OnceLock<crate::protocol::ids::IdSource> = std::sync::OnceLock::new();
    let ids = IDS.get_or_init(|| crate::protocol::ids::IdSource::new(crate::clock::system()));
    let new_id = crate::protocol::ids::InvocationId {
        partition_key: invocation.partition_key,
        uuid: ids.next().1,
    };
    // Answered once applied: the invocation may have been purged since the checks above.
    let partitions = api.state.partitions.as_ref();
    let waiters =
        &partitions.ok_or_else(|| AdminError::Unavailable("no partitions".into()))?.waiters;
    let (ack_request, rx, _guard) = waiters.register();
    let r = RestartAsNew {
        invocation_id: bytes::Bytes::copy_from_slice(&invocation.to_bytes()),
        new_invocation_id: bytes::Bytes::copy_from_slice(&new_id.to_bytes()),
        from,
        deployment_id,
        ack_request,
    };
    handle
        .append(vec![Record { header: None, kind: Some(record::Kind::RestartAsNew(r)) }])
        .await
        .map_err(|e| AdminError::Unavailable(format!("cannot append the request: {e}")))?;
    let (_, outcome) = rx.await.map_err(|_| {
        AdminError::Unavailable("the server is shutting down; the restart may have happened".into())
    })?;
    match outcome.result {
        Some(crate::fsm::outcome::Result::Failure(f)) => Err(match f.code {
            404 => AdminError::InvocationNotFound(id.to_string()),
            400 => AdminError::InvalidField { field: "from", reason: f.message },
            _ => AdminError::Conflict(f.message),
        }),
        _ => Ok(new_id.to_string()),
    }
}

/// Checks the invocation's phase and appends the record that does `op` to its partition.
/// Answers 200 when the operation is done once the record applies, 202 when the handler
/// reacts to it (a cancel of a running invocation).
async fn invocation_op(api: &Api, id: &str, op: InvocationOp) -> Result<StatusCode, AdminError> {
    use crate::fsm::{record, Kill, Phase, Record, Resume, Signal, SIGNAL_CANCEL};
    let (invocation, handle, status) = invocation_status(api, id).await?;
    let completed = status.phase() == Phase::Completed;
    let raw = bytes::Bytes::copy_from_slice(&invocation.to_bytes());
    let (kind, answer) = match op {
        InvocationOp::Cancel | InvocationOp::Kill if completed => {
            return Err(AdminError::Conflict(format!("the invocation '{id}' is completed")))
        }
        InvocationOp::Purge if !completed => {
            return Err(AdminError::Conflict(format!(
                "the invocation '{id}' is not completed; cancel or kill it first"
            )))
        }
        InvocationOp::Cancel => {
            let done_now = matches!(status.phase(), Phase::Scheduled | Phase::Inboxed);
            let sig = Signal { invocation_id: raw, index: SIGNAL_CANCEL, ..Signal::default() };
            let answer = if done_now { StatusCode::OK } else { StatusCode::ACCEPTED };
            (record::Kind::Signal(sig), answer)
        }
        InvocationOp::Kill => (record::Kind::Kill(Kill { invocation_id: raw }), StatusCode::OK),
        InvocationOp::Pause => match status.phase() {
            Phase::Paused => return Ok(StatusCode::OK),
            Phase::Invoked | Phase::Suspended => {
                (record::Kind::Pause(Kill { invocation_id: raw }), StatusCode::ACCEPTED)
            }
            _ => {
                return Err(AdminError::Conflict(format!(
                    "the invocation '{id}' is not running; only running invocations can be paused"
                )))
            }
        },
        InvocationOp::Resume(deployment_id) => match status.phase() {
            // Paused, or backing off (then the retry fires now); a running attempt is left
            // alone by the state machine.
            Phase::Paused | Phase::Invoked => {
                let r = Resume { invocation_id: raw, deployment_id };
                (record::Kind::Resume(r), StatusCode::OK)
            }
            Phase::Scheduled | Phase::Inboxed => {
                return Err(AdminError::TooEarly(format!(
                    "the invocation '{id}' has not started yet"
                )))
            }
            Phase::Suspended => {
                return Err(AdminError::Conflict(format!(
                    "the invocation '{id}' is suspended, not paused; it resumes by itself"
                )))
            }
            _ => return Err(AdminError::Conflict(format!("the invocation '{id}' is completed"))),
        },
        InvocationOp::Purge => (record::Kind::Purge(Kill { invocation_id: raw }), StatusCode::OK),
    };
    handle
        .append(vec![Record { header: None, kind: Some(kind) }])
        .await
        .map_err(|e| AdminError::Unavailable(format!("cannot append the request: {e}")))?;
    Ok(answer)
}
