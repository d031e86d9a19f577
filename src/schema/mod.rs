//! The schema registry: deployments, services, handlers and their options.
//!
//! One writer (admin registration) changes it; everyone else reads immutable snapshots
//! (`Arc<Schema>`), so a request sees one consistent version. Every change is persisted with
//! the crash-safe file helper before it becomes visible, and bumps `Schema::version`.
//!
//! Invariants: service names are unique; every service points at the deployment that last
//! registered it; a service's type never changes without `force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::fsm::HandlerKind;
use crate::protocol::discovery::{
    self, DiscoveredEndpoint, InputPayload, OutputPayload, ProtocolMode, ServiceType,
};
use crate::protocol::ids::DeploymentId;

/// Where the schema lives, relative to the base directory.
pub const SCHEMA_FILE: &str = "metadata/schema.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    pub version: u64,
    pub deployments: BTreeMap<String, Deployment>,
    pub services: BTreeMap<String, ServiceSchema>,
    /// The server's retention defaults. Not persisted: the configuration gives them at each
    /// start ([`Registry::set_retention_defaults`]).
    #[serde(skip)]
    pub retention: RetentionDefaults,
}

/// Retention where neither handler nor service sets one: Restate's top-level
/// `default-journal-retention`, `default-idempotency-retention` and
/// `default-workflow-completion-retention` (24 hours each by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionDefaults {
    pub journal_ms: u64,
    pub idempotency_ms: u64,
    pub workflow_completion_ms: u64,
}

impl Default for RetentionDefaults {
    fn default() -> Self {
        RetentionDefaults {
            journal_ms: DEFAULT_RETENTION_MS,
            idempotency_ms: DEFAULT_RETENTION_MS,
            workflow_completion_ms: DEFAULT_RETENTION_MS,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub uri: String,
    pub bidi: bool,
    /// "HTTP/2.0" or "HTTP/1.1".
    pub http_version: String,
    pub min_protocol_version: i32,
    pub max_protocol_version: i32,
    pub sdk_version: Option<String>,
    pub additional_headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub created_ms: u64,
    /// (service name, revision) registered by this deployment.
    pub services: Vec<(String, u32)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceSchema {
    pub name: String,
    pub ty: ServiceType,
    pub revision: u32,
    pub deployment_id: String,
    pub handlers: BTreeMap<String, HandlerSchema>,
    pub public: bool,
    pub documentation: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub inactivity_timeout_ms: Option<u64>,
    pub abort_timeout_ms: Option<u64>,
    pub idempotency_retention_ms: Option<u64>,
    pub journal_retention_ms: Option<u64>,
    pub lazy_state: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HandlerSchema {
    pub name: String,
    pub kind: SchemaHandlerKind,
    pub public: bool,
    pub lazy_state: bool,
    pub input: Option<InputPayload>,
    pub output: Option<OutputPayload>,
    pub documentation: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub inactivity_timeout_ms: Option<u64>,
    pub abort_timeout_ms: Option<u64>,
    /// Retention overrides from the manifest (the handler's, else the service's).
    #[serde(default)]
    pub idempotency_retention_ms: Option<u64>,
    #[serde(default)]
    pub journal_retention_ms: Option<u64>,
    #[serde(default)]
    pub workflow_completion_retention_ms: Option<u64>,
    /// The manifest's retry policy overrides (the handler's fields over the service's).
    #[serde(default)]
    pub retry_policy: discovery::RetryPolicy,
}

/// How long a completed invocation is kept when nothing overrides it (Restate's defaults for
/// idempotency, workflow completion and journal retention are all 24 hours).
pub const DEFAULT_RETENTION_MS: u64 = 24 * 3_600_000;

impl HandlerSchema {
    /// A public handler of `kind` with nothing else declared (what a manifest that says only
    /// a name and a type gives).
    pub fn new(name: &str, kind: SchemaHandlerKind) -> HandlerSchema {
        HandlerSchema {
            name: name.to_string(),
            kind,
            public: true,
            lazy_state: false,
            input: None,
            output: None,
            documentation: None,
            metadata: BTreeMap::new(),
            inactivity_timeout_ms: None,
            abort_timeout_ms: None,
            idempotency_retention_ms: None,
            journal_retention_ms: None,
            workflow_completion_retention_ms: None,
            retry_policy: discovery::RetryPolicy::default(),
        }
    }

    /// The retry policy of this handler's invocations: the manifest's overrides on top of the
    /// server's default.
    pub fn retry(&self, default: &crate::fsm::RetryPolicy) -> crate::fsm::RetryPolicy {
        let p = &self.retry_policy;
        crate::fsm::RetryPolicy {
            initial_ms: p.initial_interval_ms.unwrap_or(default.initial_ms),
            factor: p
                .exponentiation_factor
                .filter(|f| f.is_finite() && *f >= 1.0)
                .unwrap_or(default.factor),
            max_interval_ms: p.max_interval_ms.unwrap_or(default.max_interval_ms),
            attempts_max: p.max_attempts.map(|a| a.max(1)).unwrap_or(default.attempts_max),
            pause_on_max: match p.on_max_attempts {
                Some(discovery::OnMaxAttempts::Pause) => true,
                Some(discovery::OnMaxAttempts::Kill) => false,
                None => default.pause_on_max,
            },
        }
    }

    /// How long a completed invocation of this handler is kept (its result for attach, output
    /// and de-duplication): the workflow completion retention for a workflow `run`, the
    /// idempotency retention for a request with an idempotency key, else the journal
    /// retention. 0: removed when it completes.
    pub fn retention_ms(&self, idempotent: bool, d: &RetentionDefaults) -> u64 {
        if self.kind == SchemaHandlerKind::WorkflowRun {
            return self.workflow_completion_retention_ms.unwrap_or(d.workflow_completion_ms);
        }
        if idempotent {
            return self.idempotency_retention_ms.unwrap_or(d.idempotency_ms);
        }
        self.journal_retention_ms(d)
    }

    /// How long a completed invocation's journal is kept (for restart-as-new and
    /// introspection). 0: dropped when it completes. A kept journal is removed with the
    /// completed invocation, so at most as long as [`Self::retention_ms`].
    pub fn journal_retention_ms(&self, d: &RetentionDefaults) -> u64 {
        self.journal_retention_ms.unwrap_or(d.journal_ms)
    }
}

/// Serializable mirror of [`HandlerKind`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SchemaHandlerKind {
    Service,
    Exclusive,
    Shared,
    WorkflowRun,
    WorkflowShared,
}

impl SchemaHandlerKind {
    pub fn fsm_kind(self) -> HandlerKind {
        match self {
            SchemaHandlerKind::Service => HandlerKind::Service,
            SchemaHandlerKind::Exclusive => HandlerKind::Exclusive,
            SchemaHandlerKind::Shared | SchemaHandlerKind::WorkflowShared => HandlerKind::Shared,
            SchemaHandlerKind::WorkflowRun => HandlerKind::WorkflowRun,
        }
    }
}

impl Schema {
    pub fn service(&self, name: &str) -> Option<&ServiceSchema> {
        self.services.get(name)
    }
    pub fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.deployments.get(id)
    }
    /// The deployment that serves `service` now.
    pub fn deployment_for(&self, service: &str) -> Option<&Deployment> {
        self.services.get(service).and_then(|s| self.deployments.get(&s.deployment_id))
    }
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Discovery(#[from] discovery::DiscoveryError),
    #[error("[META0006] cannot change the type of service '{service}' from {from:?} to {to:?}; register with force to overwrite")]
    TypeChange { service: String, from: ServiceType, to: ServiceType },
    #[error("handler '{handler}' of service '{service}' has an unsupported type for a {ty:?}")]
    BadHandler { service: String, handler: String, ty: ServiceType },
    #[error("cannot persist the schema: {0}")]
    Persist(String),
    #[error("{0}")]
    UpdateChangesServices(String),
}

/// A registration request, as the admin API received it.
#[derive(Clone, Debug)]
pub struct Registration {
    pub uri: String,
    pub additional_headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    /// Overwrite an existing deployment with the same address and headers, and allow
    /// service type changes.
    pub force: bool,
    pub dry_run: bool,
    pub now_ms: u64,
    /// The id a new deployment gets.
    pub new_id: DeploymentId,
}

/// What a registration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// The same address and headers were registered before; nothing changed.
    Unchanged,
    Overwritten,
}

#[derive(Debug)]
pub struct Registry {
    /// Where changes are persisted; `None` for a registry in memory (the simulator).
    path: Option<PathBuf>,
    current: RwLock<Arc<Schema>>,
    writer: Mutex<()>,
    /// Set while a deployment change (discovery, then commit) is in flight.
    changing: std::sync::atomic::AtomicBool,
}

/// Held while a deployment change is in flight; see [`Registry::begin_change`].
#[derive(Debug)]
pub struct ChangeGuard<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Registry {
    /// Loads the schema from `base_dir` (empty if none was saved yet).
    pub fn open(base_dir: &Path) -> Result<Registry, String> {
        let path = base_dir.join(SCHEMA_FILE);
        let schema = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Schema::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Registry {
            path: Some(path),
            current: RwLock::new(Arc::new(schema)),
            writer: Mutex::new(()),
            changing: Default::default(),
        })
    }

    /// A registry in memory that persists nothing.
    pub fn in_memory(schema: Schema) -> Registry {
        Registry {
            path: None,
            current: RwLock::new(Arc::new(schema)),
            writer: Mutex::new(()),
            changing: Default::default(),
        }
    }

    /// Sets the server's retention defaults (from the configuration, before serving).
    pub fn set_retention_defaults(&self, d: RetentionDefaults) {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut schema = Schema::clone(&current);
        schema.retention = d;
        *current = Arc::new(schema);
    }

    /// Claims the one slot for a deployment change (register, update, remove), whose
    /// discovery takes a while; `None` while another change holds it, so two changes never
    /// decide on the same snapshot and the second hears why instead of waiting.
    pub fn begin_change(&self) -> Option<ChangeGuard<'_>> {
        use std::sync::atomic::Ordering;
        self.changing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| ChangeGuard(&self.changing))
    }

    /// The current schema.
    pub fn snapshot(&self) -> Arc<Schema> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes a service's options with `change` (which may refuse with a reason), persists
    /// the schema and returns the new service. `Ok(None)`: no such service.
    pub fn modify_service(
        &self,
        name: &str,
        change: impl FnOnce(&mut ServiceSchema) -> Result<(), String>,
    ) -> Result<Option<Result<ServiceSchema, String>>, RegisterError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut schema = Schema::clone(&self.snapshot());
        let Some(service) = schema.services.get_mut(name) else { return Ok(None) };
        if let Err(reason) = change(service) {
            return Ok(Some(Err(reason)));
        }
        let changed = service.clone();
        self.commit(schema)?;
        Ok(Some(Ok(changed)))
    }

    /// Persists `schema` as the next version and makes it current (the caller holds
    /// `writer`).
    fn commit(&self, mut schema: Schema) -> Result<(), RegisterError> {
        schema.version += 1;
        let bytes = serde_json::to_vec_pretty(&schema)
            .map_err(|e| RegisterError::Persist(e.to_string()))?;
        if let Some(path) = &self.path {
            crate::fsutil::write_atomic(path, &bytes)
                .map_err(|e| RegisterError::Persist(e.to_string()))?;
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(schema);
        Ok(())
    }

    /// Points deployment `id` at a new address or headers (`PATCH /deployments/{id}`), with
    /// the manifest discovered there. Without `overwrite` the update must be compatible (see
    /// [`compatible_update`]); with it, anything may change, and services the new manifest
    /// drops are removed. Services this deployment still serves take the new manifest and
    /// keep their revision; services that moved to a newer deployment since are left alone.
    /// `Ok(None)`: no such deployment.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        id: &str,
        uri: &str,
        additional_headers: BTreeMap<String, String>,
        overwrite: bool,
        dry_run: bool,
        discovered: &DiscoveredEndpoint,
    ) -> Result<Option<(Deployment, Vec<ServiceSchema>)>, RegisterError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut schema = (*self.snapshot()).clone();
        let Some(old) = schema.deployments.get(id).cloned() else { return Ok(None) };
        let ep = &discovered.endpoint;
        let twin = schema
            .deployments
            .values()
            .find(|d| d.id != id && d.uri == uri && d.additional_headers == additional_headers);
        if let Some(twin) = twin {
            return Err(RegisterError::UpdateChangesServices(format!(
                "deployment {} already has this address and these headers",
                twin.id
            )));
        }
        if !overwrite {
            compatible_update(&schema, &old, discovered)
                .map_err(RegisterError::UpdateChangesServices)?;
        }
        let (mut deployment, built) = build_deployment(
            &schema,
            discovered,
            id.to_string(),
            uri,
            additional_headers,
            old.metadata.clone(),
            old.created_ms,
            overwrite,
        )?;
        let mut services = Vec::new();
        for mut service in built {
            match schema.services.get(&service.name) {
                Some(current) if current.deployment_id == id => service.revision = current.revision,
                // A newer deployment serves it now.
                Some(_) => continue,
                None => {}
            }
            services.push(service);
        }
        // Services this deployment served last that the new manifest dropped (only with
        // `overwrite`) are gone: nothing would answer their calls.
        let dropped: Vec<String> = old
            .services
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !ep.services.iter().any(|s| &s.name == n))
            .filter(|n| schema.services.get(n).is_some_and(|s| s.deployment_id == id))
            .collect();
        // Pairs of services that moved on stay as they were registered here.
        deployment.services = old
            .services
            .iter()
            .filter(|(n, _)| !services.iter().any(|s| &s.name == n) && !dropped.contains(n))
            .cloned()
            .chain(services.iter().map(|s| (s.name.clone(), s.revision)))
            .collect();
        if dry_run {
            return Ok(Some((deployment, services)));
        }
        for name in &dropped {
            schema.services.remove(name);
        }
        for s in &services {
            schema.services.insert(s.name.clone(), s.clone());
        }
        schema.deployments.insert(id.to_string(), deployment.clone());
        self.commit(schema)?;
        Ok(Some((deployment, services)))
    }

    /// Removes deployment `id` and the services whose latest revision it serves (Restate's
    /// forced removal); invocations pinned to it can no longer run. `Ok(None)`: no such
    /// deployment.
    pub fn remove(&self, id: &str) -> Result<Option<Deployment>, RegisterError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut schema = (*self.snapshot()).clone();
        let Some(removed) = schema.deployments.remove(id) else { return Ok(None) };
        schema.services.retain(|_, s| s.deployment_id != id);
        self.commit(schema)?;
        Ok(Some(removed))
    }

    /// Adds (or re-registers) a discovered deployment. With `dry_run` nothing is stored.
    pub fn register(
        &self,
        r: Registration,
        discovered: &DiscoveredEndpoint,
    ) -> Result<(Registered, Deployment, Vec<ServiceSchema>), RegisterError> {
        let Registration { uri, additional_headers, metadata, force, dry_run, now_ms, new_id } = r;
        let uri = uri.as_str();
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut schema = (*self.snapshot()).clone();
        let existing = schema
            .deployments
            .values()
            .find(|d| d.uri == uri && d.additional_headers == additional_headers)
            .cloned();
        if let (Some(d), false) = (&existing, force) {
            let services =
                d.services.iter().filter_map(|(n, _)| schema.services.get(n).cloned()).collect();
            return Ok((Registered::Unchanged, d.clone(), services));
        }
        let id = existing.as_ref().map(|d| d.id.clone()).unwrap_or_else(|| new_id.to_string());
        let created_ms = existing.as_ref().map(|d| d.created_ms).unwrap_or(now_ms);
        let (deployment, services) = build_deployment(
            &schema,
            discovered,
            id.clone(),
            uri,
            additional_headers,
            metadata,
            created_ms,
            force,
        )?;
        let outcome =
            if existing.is_some() { Registered::Overwritten } else { Registered::Created };
        if dry_run {
            return Ok((outcome, deployment, services));
        }
        for s in &services {
            schema.services.insert(s.name.clone(), s.clone());
        }
        schema.deployments.insert(id, deployment.clone());
        self.commit(schema)?;
        Ok((outcome, deployment, services))
    }
}

/// The deployment `id` and the services a discovered manifest gives, against `schema`:
/// a service's revision is one more than the registered one, and its type may change only
/// with `force`.
#[allow(clippy::too_many_arguments)]
fn build_deployment(
    schema: &Schema,
    discovered: &DiscoveredEndpoint,
    id: String,
    uri: &str,
    additional_headers: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    created_ms: u64,
    force: bool,
) -> Result<(Deployment, Vec<ServiceSchema>), RegisterError> {
    let ep = &discovered.endpoint;
    let mut services = Vec::new();
    for s in &ep.services {
        let revision = match schema.services.get(&s.name) {
            Some(old) if old.ty != s.ty && !force => {
                return Err(RegisterError::TypeChange {
                    service: s.name.clone(),
                    from: old.ty,
                    to: s.ty,
                })
            }
            Some(old) => old.revision + 1,
            None => 1,
        };
        let service_public = !s.ingress_private.unwrap_or(false);
        let service_lazy = s.enable_lazy_state.unwrap_or(false);
        let mut handlers = BTreeMap::new();
        for h in &s.handlers {
            let kind = match s.handler_kind(h) {
                Some(k) => k,
                None => {
                    return Err(RegisterError::BadHandler {
                        service: s.name.clone(),
                        handler: h.name.clone(),
                        ty: s.ty,
                    })
                }
            };
            let kind = match kind {
                discovery::HandlerKind::Service => SchemaHandlerKind::Service,
                discovery::HandlerKind::Exclusive => SchemaHandlerKind::Exclusive,
                discovery::HandlerKind::Shared => SchemaHandlerKind::Shared,
                discovery::HandlerKind::WorkflowRun => SchemaHandlerKind::WorkflowRun,
                discovery::HandlerKind::WorkflowShared => SchemaHandlerKind::WorkflowShared,
            };
            handlers.insert(
                h.name.clone(),
                HandlerSchema {
                    name: h.name.clone(),
                    kind,
                    public: h.ingress_private.map(|p| !p).unwrap_or(service_public),
                    lazy_state: h.enable_lazy_state.unwrap_or(service_lazy),
                    input: h.input.clone(),
                    output: h.output.clone(),
                    documentation: h.documentation.clone(),
                    metadata: h.metadata.clone(),
                    inactivity_timeout_ms: h.inactivity_timeout_ms.or(s.inactivity_timeout_ms),
                    abort_timeout_ms: h.abort_timeout_ms.or(s.abort_timeout_ms),
                    idempotency_retention_ms: h
                        .idempotency_retention_ms
                        .or(s.idempotency_retention_ms),
                    journal_retention_ms: h.journal_retention_ms.or(s.journal_retention_ms),
                    workflow_completion_retention_ms: h.workflow_completion_retention_ms,
                    retry_policy: discovery::RetryPolicy {
                        initial_interval_ms: h
                            .retry_policy
                            .initial_interval_ms
                            .or(s.retry_policy.initial_interval_ms),
                        max_interval_ms: h
                            .retry_policy
                            .max_interval_ms
                            .or(s.retry_policy.max_interval_ms),
                        max_attempts: h.retry_policy.max_attempts.or(s.retry_policy.max_attempts),
                        exponentiation_factor: h
                            .retry_policy
                            .exponentiation_factor
                            .or(s.retry_policy.exponentiation_factor),
                        on_max_attempts: h
                            .retry_policy
                            .on_max_attempts
                            .or(s.retry_policy.on_max_attempts),
                    },
                },
            );
        }
        services.push(ServiceSchema {
            name: s.name.clone(),
            ty: s.ty,
            revision,
            deployment_id: id.clone(),
            handlers,
            public: service_public,
            documentation: s.documentation.clone(),
            metadata: s.metadata.clone(),
            inactivity_timeout_ms: s.inactivity_timeout_ms,
            abort_timeout_ms: s.abort_timeout_ms,
            idempotency_retention_ms: s.idempotency_retention_ms,
            journal_retention_ms: s.journal_retention_ms,
            lazy_state: service_lazy,
        });
    }
    let http11 = discovered.http_version == http::Version::HTTP_11;
    let deployment = Deployment {
        id: id.clone(),
        uri: uri.to_string(),
        // HTTP/1.1 cannot stream both ways: the request is sent whole whatever the
        // manifest says, and the SDK suspends when it needs what the request lacks.
        bidi: ep.protocol_mode == Some(ProtocolMode::BidiStream) && !http11,
        http_version: if http11 { "HTTP/1.1" } else { "HTTP/2.0" }.into(),
        min_protocol_version: ep.min_protocol_version,
        max_protocol_version: ep.max_protocol_version,
        sdk_version: discovered.server.clone(),
        additional_headers,
        metadata,
        created_ms,
        services: services.iter().map(|s| (s.name.clone(), s.revision)).collect(),
    };
    Ok((deployment, services))
}

/// Whether `discovered` may replace deployment `old` without `overwrite`: invocations pinned
/// to it must still find what they ran on, so every service it registered is still served,
/// with the same type and at least its handlers, and the protocol versions are the same.
/// New services may be added.
fn compatible_update(
    schema: &Schema,
    old: &Deployment,
    discovered: &DiscoveredEndpoint,
) -> Result<(), String> {
    let ep = &discovered.endpoint;
    let (min, max) = (ep.min_protocol_version, ep.max_protocol_version);
    if (min, max) != (old.min_protocol_version, old.max_protocol_version) {
        return Err(format!(
            "the deployment at the new address supports service protocol versions {min}..={max}, \
             not {}..={} as before; update with overwrite to accept that",
            old.min_protocol_version, old.max_protocol_version
        ));
    }
    for (name, _) in &old.services {
        let Some(new) = ep.services.iter().find(|s| &s.name == name) else {
            return Err(format!(
                "the deployment at the new address does not serve service '{name}'; update \
                 with overwrite to remove it"
            ));
        };
        let Some(current) = schema.services.get(name).filter(|s| s.deployment_id == old.id) else {
            continue;
        };
        if new.ty != current.ty {
            return Err(format!(
                "service '{name}' is a {:?} at the new address, not a {:?}; update with \
                 overwrite to accept that",
                new.ty, current.ty
            ));
        }
        for handler in current.handlers.keys() {
            if !new.handlers.iter().any(|h| &h.name == handler) {
                return Err(format!(
                    "service '{name}' at the new address has no handler '{handler}'; update \
                     with overwrite to remove it"
                ));
            }
        }
    }
    Ok(())
}
