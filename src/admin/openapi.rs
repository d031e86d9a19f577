//! OpenAPI 3.1 documents: one per registered service describing how to invoke it through the
//! ingress (`GET /services/{name}/openapi`), and one for the admin API itself
//! (`GET /openapi`).
//!
//! Invariants: a service document is a function of the service's schema and the advertised
//! ingress URL alone (same schema, same bytes: objects are emitted with sorted keys); only
//! public handlers appear, since private ones cannot be reached from the ingress; every path
//! listed is one the ingress serves.

use serde_json::{json, Map, Value};

use crate::protocol::discovery::ServiceType;
use crate::schema::{HandlerSchema, SchemaHandlerKind, ServiceSchema};

/// Where users read about invoking over HTTP.
const INVOKE_DOCS: &str = "https://docs.restate.dev/invoke/http";

/// The ingress API of `service`, served at `ingress_url`.
pub fn service_document(service: &ServiceSchema, ingress_url: &str) -> Value {
    let name = &service.name;
    let keyed = service.ty != ServiceType::Service;
    let target = |h: &str| match keyed {
        true => format!("{name}/{{key}}/{h}"),
        false => format!("{name}/{h}"),
    };
    let mut paths = Map::new();
    for h in service.handlers.values().filter(|h| h.public) {
        let params = key_and(keyed, "idempotencyKeyHeader");
        let mut call = operation(
            &h.name,
            h.name.clone(),
            format!("Invoke {name}/{} and answer its result", h.name),
            "Request Response",
            params.clone(),
        );
        call.insert("responses".into(), json!({"200": output(h), "default": generic_error()}));
        let mut send = operation(
            &h.name,
            format!("{}Send", h.name),
            format!("Enqueue an invocation of {name}/{} and answer its id at once", h.name),
            "Send",
            [params, vec![reference("parameters", "delay")]].concat(),
        );
        send.insert(
            "responses".into(),
            json!({
                "200": reference("responses", "Send"),
                "202": reference("responses", "Send"),
                "default": generic_error(),
            }),
        );
        if let Some(body) = request_body(h) {
            call.insert("requestBody".into(), body.clone());
            send.insert("requestBody".into(), body);
        }
        paths.insert(format!("/restate/call/{}", target(&h.name)), json!({"post": call}));
        paths.insert(format!("/restate/send/{}", target(&h.name)), json!({"post": send}));
        if service.ty != ServiceType::Workflow {
            for (verb, tag, what) in [
                ("attach", "Attach", "wait for the result of"),
                ("output", "Get Output", "read the result, if there is one yet, of"),
            ] {
                let params = key_and(keyed, "idempotencyKeyPath");
                let mut get = operation(
                    &h.name,
                    format!("{}{}", h.name, capitalized(verb)),
                    format!(
                        "Deprecated (use /restate/lookup, then /restate/{verb}/{{invocationId}}): \
                         {what} the invocation of {name}/{} sent with this idempotency key",
                        h.name
                    ),
                    tag,
                    params,
                );
                get.insert("deprecated".into(), Value::Bool(true));
                get.insert("responses".into(), result_responses(h, verb));
                let path =
                    format!("/restate/invocation/{}/{{idempotencyKey}}/{verb}", target(&h.name));
                paths.insert(path, json!({"get": get}));
            }
        }
    }
    if service.ty == ServiceType::Workflow {
        let run = service.handlers.values().find(|h| h.kind == SchemaHandlerKind::WorkflowRun);
        for (verb, tag, what) in [
            ("attach", "Attach", "Wait for the result of"),
            ("output", "Get Output", "Read the result, if there is one yet, of"),
        ] {
            let mut get = operation(
                verb,
                format!("workflow{}", capitalized(verb)),
                format!("{what} the workflow {name} with this key"),
                tag,
                vec![reference("parameters", "key")],
            );
            let responses = match run {
                Some(h) => result_responses(h, verb),
                None => json!({"default": generic_error()}),
            };
            get.insert("responses".into(), responses);
            paths.insert(format!("/restate/workflow/{name}/{{key}}/{verb}"), json!({"get": get}));
        }
    }
    let mut info = Map::new();
    info.insert("title".into(), json!(name));
    info.insert("version".into(), json!(service.revision.to_string()));
    if let Some(d) = &service.documentation {
        info.insert("description".into(), json!(d));
    }
    let tags: Vec<Value> = ["Request Response", "Send", "Attach", "Get Output"]
        .iter()
        .map(|t| json!({"name": t, "externalDocs": {"url": INVOKE_DOCS}}))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": ingress_url, "description": "Ingress"}],
        "tags": tags,
        "paths": paths,
        "components": components(),
    })
}

/// The `key` path parameter when the service is keyed, then the parameter named `then`.
fn key_and(keyed: bool, then: &str) -> Vec<Value> {
    let key = keyed.then(|| reference("parameters", "key"));
    key.into_iter().chain([reference("parameters", then)]).collect()
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn reference(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

fn generic_error() -> Value {
    reference("responses", "GenericError")
}

/// An operation's common fields.
fn operation(
    summary: &str,
    operation_id: String,
    description: String,
    tag: &str,
    parameters: Vec<Value>,
) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("summary".into(), json!(summary));
    op.insert("operationId".into(), json!(operation_id));
    op.insert("description".into(), json!(description));
    op.insert("tags".into(), json!([tag]));
    op.insert("parameters".into(), Value::Array(parameters));
    op
}

/// The request body the handler accepts; `None` when it takes none.
fn request_body(h: &HandlerSchema) -> Option<Value> {
    let input = match &h.input {
        // A handler that declares nothing accepts any body (the SDK decides).
        None => return Some(json!({"required": false, "content": {"*/*": {}}})),
        Some(i) => i,
    };
    let content_type = input.content_type.as_deref()?;
    let mut media = Map::new();
    if let Some(schema) = &input.json_schema {
        media.insert("schema".into(), schema.clone());
    }
    Some(json!({
        "required": input.required.unwrap_or(false),
        "content": { content_type: media },
    }))
}

/// The 200 response carrying the handler's output.
fn output(h: &HandlerSchema) -> Value {
    let Some(out) = &h.output else {
        return json!({"description": "The handler's result", "content": {"*/*": {}}});
    };
    match out.content_type.as_deref() {
        None => json!({"description": "The handler answers no body"}),
        Some(ct) => {
            let mut media = Map::new();
            if let Some(schema) = &out.json_schema {
                media.insert("schema".into(), schema.clone());
            }
            json!({"description": "The handler's result", "content": { ct: media }})
        }
    }
}

fn result_responses(h: &HandlerSchema, verb: &str) -> Value {
    let mut r = json!({
        "200": output(h),
        "404": reference("responses", "InvocationNotFoundError"),
        "default": generic_error(),
    });
    if verb == "output" {
        r["470"] = reference("responses", "InvocationNotReadyError");
    }
    r
}

fn components() -> Value {
    let error_content = |example: Value| {
        json!({"application/json": {
            "schema": reference("schemas", "RestateError"),
            "example": example,
        }})
    };
    json!({
        "parameters": {
            "key": {
                "name": "key", "in": "path", "required": true, "schema": {"type": "string"},
                "description": "The key of the virtual object or workflow",
            },
            "idempotencyKeyHeader": {
                "name": "idempotency-key", "in": "header", "required": false,
                "schema": {"type": "string"},
                "description": "Makes the request idempotent: a repeat with the same key gets \
                                the first one's invocation and result",
            },
            "idempotencyKeyPath": {
                "name": "idempotencyKey", "in": "path", "required": true,
                "schema": {"type": "string"},
                "description": "The idempotency key the invocation was sent with",
            },
            "delay": {
                "name": "delay", "in": "query", "required": false,
                "schema": {"type": "string"}, "example": "10s",
                "description": "Run the invocation after this delay (e.g. 10s, 5m, PT1H)",
            },
        },
        "responses": {
            "GenericError": {
                "description": "The invocation or the request failed",
                "content": error_content(json!({"code": 500, "message": "Internal server error"})),
            },
            "InvocationNotFoundError": {
                "description": "No invocation with this key",
                "content": error_content(json!({"message": "invocation not found"})),
            },
            "InvocationNotReadyError": {
                "description": "The invocation is still running",
                "content": error_content(json!({"message": "the invocation has not completed yet"})),
            },
            "Send": {
                "description": "The invocation is enqueued",
                "content": {"application/json": {"schema": {
                    "title": "SendResponse",
                    "type": "object",
                    "required": ["invocationId", "status"],
                    "additionalProperties": false,
                    "properties": {
                        "invocationId": {"type": "string"},
                        "status": {"type": "string", "enum": ["Accepted", "PreviouslyAccepted"]},
                        "executionTime": {
                            "type": "string", "format": "date-time",
                            "description": "When a delayed invocation runs",
                        },
                    },
                }}},
            },
        },
        "schemas": {
            "RestateError": {
                "title": "Error",
                "type": "object",
                "required": ["message"],
                "additionalProperties": false,
                "properties": {
                    "message": {"type": "string"},
                    "code": {"type": "integer", "description": "The failure's code"},
                    "description": {"type": "string"},
                },
            },
        },
    })
}

/// The admin API's routes, for `GET /openapi`: method, path, operation id, summary.
const ADMIN_ROUTES: &[(&str, &str, &str, &str)] = &[
    ("get", "/health", "health", "Whether every partition runs"),
    ("get", "/version", "version", "Server version and supported admin API versions"),
    ("post", "/query", "query", "Run SQL over the introspection tables"),
    ("get", "/deployments", "list_deployments", "List deployments"),
    ("post", "/deployments", "create_deployment", "Register a deployment"),
    ("get", "/deployments/{deployment}", "get_deployment", "Describe a deployment"),
    ("patch", "/deployments/{deployment}", "update_deployment", "Update a deployment"),
    ("delete", "/deployments/{deployment}", "delete_deployment", "Remove a deployment"),
    ("get", "/services", "list_services", "List services"),
    ("get", "/services/{service}", "get_service", "Describe a service"),
    ("patch", "/services/{service}", "modify_service", "Change a service's options"),
    ("get", "/services/{service}/openapi", "get_service_openapi", "A service's OpenAPI"),
    ("post", "/services/{service}/state", "modify_service_state", "Replace an object's state"),
    ("get", "/services/{service}/handlers", "list_service_handlers", "List handlers"),
    ("get", "/services/{service}/handlers/{handler}", "get_service_handler", "Describe a handler"),
    ("delete", "/invocations/{invocation_id}", "delete_invocation", "Cancel, kill or purge"),
    ("patch", "/invocations/{invocation_id}/cancel", "cancel_invocation", "Cancel"),
    ("patch", "/invocations/{invocation_id}/kill", "kill_invocation", "Kill"),
    ("patch", "/invocations/{invocation_id}/purge", "purge_invocation", "Purge"),
    ("patch", "/invocations/{invocation_id}/pause", "pause_invocation", "Pause"),
    ("patch", "/invocations/{invocation_id}/resume", "resume_invocation", "Resume"),
    (
        "patch",
        "/invocations/{invocation_id}/restart-as-new",
        "restart_as_new_invocation",
        "Restart",
    ),
];

/// The admin API, served at `GET /openapi`.
pub fn admin_document(version: &str) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, id, summary) in ADMIN_ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let op = json!({
            "operationId": id,
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "Done"},
                "default": {
                    "description": "Refused",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ErrorDescriptionResponse",
                    }}},
                },
            },
        });
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Admin API", "version": version},
        "paths": paths,
        "components": {"schemas": {"ErrorDescriptionResponse": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "restate_code": {"type": ["string", "null"]},
            },
        }}},
    })
}
