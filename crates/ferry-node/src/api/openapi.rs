//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of the API, generated from the code.
//!
//! Paths and methods come from [`crate::access::ROUTES`] (each operation's description names
//! the permission it needs) and [`PUBLIC_ROUTES`]; request and response schemas from the
//! [`ferry_api`] types' `JsonSchema` derives ([`io_of`] says which type each route takes and
//! answers); every operation's error answer is [`ferry_api::ApiErrorBody`]; and each
//! component's parameters ([`crate::components::describe_all`]) are under
//! `components.schemas` as `ComponentParams_<component>`, which is what the console's job
//! builder draws its forms from. Every route of the permission table answers a `ferry-api`
//! type (or a file, CSV or an event stream); a route added without one falls back to "any
//! JSON" and says so in its description, which the `openapi` test refuses.
//!
//! The document holds no data (no names of datasets, jobs or partners), so like `/health` it
//! needs no credentials.

use crate::access::{Permission, ROUTES};
use ferry_api::events::{JobEvent, ServiceEvent};
use ferry_api::{self as api, ApiErrorBody};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

/// Routes outside the permission table: (method, path under `/api/v1`, what they are).
pub const PUBLIC_ROUTES: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/health",
        "The node's party name and version; no credentials.",
    ),
    (
        "POST",
        "/session",
        "Sign in with a user's name and password: sets the session cookie and answers the CSRF token; no credentials.",
    ),
    ("GET", "/openapi.json", "This document; no credentials."),
];

/// How a route's request body is sent.
enum Body {
    None,
    Json(Schema),
    /// The spec as YAML or JSON text, or `{"spec": text}` ([`api::SubmitJob`]).
    Spec(Schema),
    /// A file's bytes.
    Bytes,
}

/// How a route answers on success.
enum Answer {
    Json(Schema),
    /// JSON with no `ferry-api` type yet.
    Untyped,
    /// A file or CSV, streamed.
    Bytes(&'static str),
    /// Server-sent events.
    Events,
}

fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// What `method path` takes and answers.
fn io_of(g: &mut SchemaGenerator, method: &str, path: &str) -> (Body, Answer) {
    use Answer::Json as A;
    use Body::Json as B;
    match (method, path) {
        ("GET", "/health") => (Body::None, A(of::<api::Health>(g))),
        ("POST", "/session") => (B(of::<api::SignIn>(g)), A(of::<api::Session>(g))),
        ("GET", "/session") => (Body::None, A(of::<api::WhoAmI>(g))),
        ("DELETE", "/session") => (Body::None, A(of::<api::SignedOut>(g))),
        ("GET", "/node") => (Body::None, A(of::<api::NodeInfo>(g))),
        ("GET", "/partners") => (Body::None, A(of::<Vec<api::Partner>>(g))),
        ("POST", "/partners") => (B(of::<api::AddPartner>(g)), A(of::<api::Partner>(g))),
        ("POST", "/partners/{name}/rotate") => {
            (B(of::<api::RotatePartner>(g)), A(of::<api::Partner>(g)))
        }
        ("DELETE", "/partners/{name}") => {
            (B(of::<api::ReasonBody>(g)), A(of::<api::PartnerRemoved>(g)))
        }
        ("GET", "/datasets") => (Body::None, A(of::<Vec<api::Dataset>>(g))),
        ("POST", "/datasets") => (B(of::<api::RegisterDataset>(g)), A(of::<api::Dataset>(g))),
        ("POST", "/datasets/{name}/upload") => (Body::Bytes, A(of::<api::Dataset>(g))),
        ("GET", "/datasets/{name}") => (Body::None, A(of::<api::DatasetDetail>(g))),
        ("DELETE", "/datasets/{name}") => (Body::None, A(of::<api::Deleted>(g))),
        ("POST" | "DELETE", "/datasets/{name}/grants") => {
            (B(of::<api::GrantBody>(g)), A(of::<api::GrantChange>(g)))
        }
        ("GET", "/datasets/{name}/download") => {
            (Body::None, Answer::Bytes("application/octet-stream"))
        }
        ("GET", "/jobs") => (Body::None, A(of::<Vec<api::JobSummary>>(g))),
        ("POST", "/jobs") => (
            Body::Spec(of::<api::SubmitJob>(g)),
            A(of::<api::Submitted>(g)),
        ),
        ("POST", "/jobs/validate") => (
            Body::Spec(of::<api::SubmitJob>(g)),
            A(of::<api::JobValidation>(g)),
        ),
        ("GET", "/jobs/{id}") => (Body::None, A(of::<api::JobDetail>(g))),
        ("GET", "/jobs/{id}/logs") => (Body::None, A(of::<Vec<api::LogLine>>(g))),
        ("GET", "/jobs/{id}/metrics") => (Body::None, A(of::<Vec<api::Metric>>(g))),
        ("GET", "/jobs/{id}/audit") => (Body::None, A(of::<Vec<api::MessageAudit>>(g))),
        ("GET", "/jobs/{id}/privacy") => (Body::None, A(of::<api::PrivacyReport>(g))),
        ("GET", "/approvals") => (Body::None, A(of::<Vec<api::Approval>>(g))),
        ("POST", "/jobs/{id}/approve") => (Body::None, A(of::<api::Approved>(g))),
        ("POST", "/jobs/{id}/reject") => (B(of::<api::ReasonBody>(g)), A(of::<api::Rejected>(g))),
        ("POST", "/jobs/{id}/cancel") => (B(of::<api::ReasonBody>(g)), A(of::<api::Cancelled>(g))),
        ("POST", "/jobs/{id}/rerun") => (B(of::<api::RerunBody>(g)), A(of::<api::Rerun>(g))),
        ("POST", "/jobs/{id}/resume") => (Body::None, A(of::<api::Resumed>(g))),
        ("GET", "/events") => (Body::None, Answer::Events),
        ("GET", "/services") => (Body::None, A(of::<Vec<api::Service>>(g))),
        ("POST", "/services") => (B(of::<api::Deploy>(g)), A(of::<api::Service>(g))),
        ("GET", "/services/{name}") => (Body::None, A(of::<api::ServiceDetail>(g))),
        ("DELETE", "/services/{name}") => (B(of::<api::ReasonBody>(g)), A(of::<api::Service>(g))),
        ("POST", "/services/{name}/switch") => {
            (B(of::<api::SwitchService>(g)), A(of::<api::Service>(g)))
        }
        ("POST", "/services/{name}/approve") => {
            (B(of::<api::ApproveService>(g)), A(of::<api::Service>(g)))
        }
        ("POST", "/services/{name}/reject") => {
            (B(of::<api::ReasonBody>(g)), A(of::<api::Service>(g)))
        }
        ("POST", "/services/{name}/predict") => (
            B(of::<api::PredictRequest>(g)),
            A(of::<api::PredictResponse>(g)),
        ),
        ("GET", "/models") => (Body::None, A(of::<Vec<api::Model>>(g))),
        ("GET", "/models/{name}") => (Body::None, A(of::<api::ModelDetail>(g))),
        ("DELETE", "/models/{name}") => (Body::None, A(of::<api::Deleted>(g))),
        ("GET", "/tokens") => (Body::None, A(of::<Vec<api::Token>>(g))),
        ("POST", "/tokens") => (B(of::<api::NewToken>(g)), A(of::<api::CreatedToken>(g))),
        ("GET", "/users") => (Body::None, A(of::<Vec<api::User>>(g))),
        ("POST", "/users") => (B(of::<api::NewUser>(g)), A(of::<api::User>(g))),
        ("POST", "/users/{name}/roles") => (B(of::<api::SetRoles>(g)), A(of::<api::User>(g))),
        ("POST", "/users/{name}/password") => (
            B(of::<api::SetPassword>(g)),
            A(of::<api::PasswordChanged>(g)),
        ),
        ("POST", "/users/{name}/disable") => (Body::None, A(of::<api::UserDisabled>(g))),
        ("DELETE", "/tokens/{name}") => (Body::None, A(of::<api::TokenRevoked>(g))),
        ("GET", "/schedules") => (Body::None, A(of::<Vec<api::Schedule>>(g))),
        ("POST", "/schedules") => (B(of::<api::NewSchedule>(g)), A(of::<api::Schedule>(g))),
        ("GET", "/schedules/{id}") => (Body::None, A(of::<api::ScheduleDetail>(g))),
        ("DELETE", "/schedules/{id}") => (Body::None, A(of::<api::Schedule>(g))),
        ("POST", "/schedules/{id}/pause" | "/schedules/{id}/resume") => {
            (Body::None, A(of::<api::Schedule>(g)))
        }
        ("POST", "/schedules/{id}/approve") => (Body::None, A(of::<api::Approved>(g))),
        ("POST", "/schedules/{id}/reject") => (
            B(of::<api::ReasonBody>(g)),
            A(of::<api::ScheduleRejected>(g)),
        ),
        ("POST", "/schedules/{id}/revoke") => (
            B(of::<api::ReasonBody>(g)),
            A(of::<api::ScheduleRevoked>(g)),
        ),
        ("GET", "/components") => (Body::None, A(of::<Vec<api::Component>>(g))),
        ("GET", "/templates") => (Body::None, A(of::<Vec<api::Template>>(g))),
        ("GET", "/services/{name}/requests") => (Body::None, A(of::<Vec<api::ServiceRequest>>(g))),
        ("GET", "/projects") => (Body::None, A(of::<Vec<api::Project>>(g))),
        ("POST", "/projects") => (B(of::<api::NewProject>(g)), A(of::<api::Project>(g))),
        ("GET", "/projects/{name}") => (Body::None, A(of::<api::ProjectDetail>(g))),
        ("POST", "/projects/{name}/approve") => (Body::None, A(of::<api::ProjectDecision>(g))),
        ("POST", "/projects/{name}/decline") => (
            B(of::<api::ReasonBody>(g)),
            A(of::<api::ProjectDecision>(g)),
        ),
        ("GET", "/query-services") => (Body::None, A(of::<Vec<api::QueryService>>(g))),
        ("POST", "/query-services") => (
            B(of::<api::PublishQueryService>(g)),
            A(of::<api::QueryService>(g)),
        ),
        ("GET", "/query-services/{name}") => (Body::None, A(of::<api::QueryServiceDetail>(g))),
        ("DELETE", "/query-services/{name}") => (Body::None, A(of::<api::Deleted>(g))),
        ("POST", "/query-services/{name}/refresh") => (Body::None, A(of::<api::QueryService>(g))),
        ("GET", "/queries") => (Body::None, A(of::<Vec<api::QueryRecord>>(g))),
        ("POST", "/queries") => (B(of::<api::RunQuery>(g)), A(of::<api::QueryResult>(g))),
        ("GET", "/queries/{id}") => (Body::None, A(of::<api::QueryRecord>(g))),
        ("GET", "/audit") => (Body::None, A(of::<Vec<api::ActionEntry>>(g))),
        ("GET", "/audit/verify") => (Body::None, A(of::<api::ChainReport>(g))),
        ("GET", "/audit/checkpoints") => (Body::None, A(of::<api::Checkpoints>(g))),
        ("POST", "/audit/checkpoint") => (Body::None, A(of::<Option<api::SentCheckpoint>>(g))),
        ("GET", "/queries/{id}/result") => (Body::None, Answer::Bytes("text/csv")),
        ("GET", "/audit/export") => (Body::None, Answer::Bytes("application/octet-stream")),
        (m, _) if m == "GET" || m == "DELETE" => (Body::None, Answer::Untyped),
        _ => (Body::Json(Schema::default()), Answer::Untyped),
    }
}

/// Query parameters a route reads: (name, description).
fn query_of(method: &str, path: &str) -> &'static [(&'static str, &'static str)] {
    match (method, path) {
        ("GET", "/jobs/{id}/logs" | "/jobs/{id}/metrics") => &[("task", "Only this task's.")],
        ("GET" | "DELETE", "/models/{name}") => &[("version", "A version (default: the newest).")],
        ("POST", "/datasets/{name}/upload") => &[
            ("id_columns", "Comma-separated id columns."),
            ("label", "The label column."),
            ("label_kind", "binary, multiclass or continuous."),
            ("description", "Free text."),
            ("replace", "true: replace a dataset of the same name."),
            ("file_name", "The file's name on the user's machine."),
        ],
        ("GET", "/events") => &[("job", "Only this job's events (and no service events).")],
        ("POST", "/query-services/{name}/refresh") => {
            &[("wait", "true: answer once the table is built.")]
        }
        _ => &[],
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let error = of::<ApiErrorBody>(&mut g);
    // The events' payloads are named in the /events description.
    of::<JobEvent>(&mut g);
    of::<ServiceEvent>(&mut g);

    let mut routes: Vec<(&str, &str, Option<Permission>, &str)> = PUBLIC_ROUTES
        .iter()
        .map(|(m, p, what)| (*m, *p, None, *what))
        .collect();
    routes.extend(ROUTES.iter().map(|(m, p, perm)| (*m, *p, Some(*perm), "")));

    let mut paths = Map::new();
    for (method, path, permission, what) in routes {
        let (body, answer) = io_of(&mut g, method, path);
        let mut op = Map::new();
        let mut description = what.to_string();
        if let Some(p) = permission {
            description = format!("Needs the `{}` permission.", p.as_str());
        }
        if matches!(answer, Answer::Untyped) {
            description.push_str(" The answer has no ferry-api type yet: any JSON.");
        }
        if path == "/events" {
            description.push_str(
                " Server-sent events: `event: job` with a JobEvent, `event: service` with a \
                 ServiceEvent; the current state of everything on connect, then changes; a \
                 comment every 15 s keeps the connection open.",
            );
        }
        op.insert("operationId".into(), json!(operation_id(method, path)));
        op.insert("description".into(), json!(description.trim()));
        op.insert("tags".into(), json!([tag_of(path)]));
        if permission.is_none() {
            op.insert("security".into(), json!([]));
        } else {
            op.insert(
                "x-ferry-permission".into(),
                json!(permission.map(|p| p.as_str())),
            );
        }
        let mut parameters: Vec<Value> = path_params(path)
            .into_iter()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        for (name, what) in query_of(method, path) {
            parameters.push(json!({"name": name, "in": "query", "required": false, "description": what, "schema": {"type": "string"}}));
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        match body {
            Body::None => {}
            Body::Json(s) => {
                op.insert(
                    "requestBody".into(),
                    json!({"required": false, "content": {"application/json": {"schema": s}}}),
                );
            }
            Body::Spec(s) => {
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {
                        "application/json": {"schema": s},
                        "application/yaml": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}},
                    }}),
                );
            }
            Body::Bytes => {
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}),
                );
            }
        }
        let ok = match answer {
            Answer::Json(s) => {
                json!({"description": "OK", "content": {"application/json": {"schema": s}}})
            }
            Answer::Untyped => {
                json!({"description": "OK", "content": {"application/json": {"schema": {}}}})
            }
            Answer::Bytes(media) => {
                json!({"description": "OK", "content": {media: {"schema": {"type": "string"}}}})
            }
            Answer::Events => {
                json!({"description": "An event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}})
            }
        };
        op.insert(
            "responses".into(),
            json!({"200": ok, "default": {"$ref": "#/components/responses/Error"}}),
        );
        let item = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(method.to_ascii_lowercase(), Value::Object(op));
        }
    }

    let mut schemas = g.take_definitions(true);
    for (name, schema) in component_schemas() {
        schemas.insert(name, schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Ferry node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API a Ferry node offers its local users. Every error is an ApiErrorBody. Component parameter schemas are ComponentParams_<component>.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "An error: `error` the message, `code` its kind, `field` where in the request.",
                    "content": {"application/json": {"schema": error}},
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (`ferry token create`)."},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::api::SESSION_COOKIE, "description": "The console's session (POST /api/v1/session); state-changing requests also send X-CSRF-Token."},
            },
        },
    })
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// `get_jobs_id_logs` for `GET /jobs/{id}/logs`: unique per (method, path).
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .filter(|c| *c != '_' || !seg.starts_with('{')),
        );
    }
    id.replace("__", "_")
}

fn tag_of(path: &str) -> &str {
    path.split('/').find(|s| !s.is_empty()).unwrap_or("node")
}

/// Every component's parameter schema as `ComponentParams_<name>`, its own definitions beside
/// it as `ComponentParams_<name>_<definition>`, references rewritten to point there.
fn component_schemas() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let Value::Array(all) = crate::components::describe_all() else {
        return out;
    };
    for c in all {
        let Some(name) = c.get("name").and_then(Value::as_str) else {
            continue;
        };
        let prefix = format!("ComponentParams_{name}");
        let mut schema = c.get("params").cloned().unwrap_or(json!({}));
        let defs = match schema.as_object_mut() {
            Some(o) => {
                o.remove("$schema");
                if let Some(summary) = c.get("summary") {
                    o.entry("description").or_insert(summary.clone());
                }
                o.remove("$defs")
            }
            None => None,
        };
        let local = format!("#/components/schemas/{prefix}_");
        rewrite_refs(&mut schema, &local);
        if let Some(Value::Object(defs)) = defs {
            for (def, mut s) in defs {
                rewrite_refs(&mut s, &local);
                out.push((format!("{prefix}_{def}"), s));
            }
        }
        out.push((prefix, schema));
    }
    out
}

/// `#/$defs/X` → `<local>X` everywhere in `v`.
fn rewrite_refs(v: &mut Value, local: &str) {
    match v {
        Value::Object(o) => {
            for (k, inner) in o.iter_mut() {
                if k == "$ref"
                    && let Value::String(r) = inner
                    && let Some(name) = r.strip_prefix("#/$defs/")
                {
                    *r = format!("{local}{name}");
                } else {
                    rewrite_refs(inner, local);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, local)),
        _ => {}
    }
}

/// The handler: the document, computed once.
pub(super) async fn serve() -> axum::Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    axum::Json(DOC.get_or_init(document).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique_and_path_parameters_found() {
        assert_eq!(operation_id("GET", "/jobs/{id}/logs"), "get_jobs_id_logs");
        assert_eq!(path_params("/datasets/{name}/grants"), vec!["name"]);
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }
}
