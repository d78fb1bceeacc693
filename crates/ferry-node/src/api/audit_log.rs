//! The API side of the action log ([`crate::audit`]): the layer that records every
//! state-changing request, and the `/api/v1/audit` routes.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | /api/v1/audit?from=&to=&after_seq=&limit= | entries in order (`from`/`to`: a UTC time or a leading part of one, `2024-05-01`) |
//! | GET | /api/v1/audit/verify | the chain recomputed and checked against this node's checkpoints; names the first entry that does not match |
//! | GET | /api/v1/audit/export?from=&to=&format=jsonl\|csv | the entries as JSON lines (exact; what `ferry audit verify --entries` reads) or CSV |
//! | GET | /api/v1/audit/checkpoints?partner= | this node's signed checkpoints and those partners sent |
//! | POST | /api/v1/audit/checkpoint | sign a checkpoint of the head now and send it to every partner |

use super::{ApiError, ApiResult, actor_of, blocking, recast};
use crate::node::Node;
use axum::body::{Body, HttpBody};
use axum::extract::{
    ConnectInfo, FromRequestParts, MatchedPath, Query, RawPathParams, Request, State,
};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_api as api;
use ferry_store::{ActionEntry, ActionQuery, NewAction};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Fields of a JSON request body that name the object of an action. Nothing else of a body is
/// recorded: never passwords, secrets, ids asked in a query, or data.
const REQUEST_FIELDS: &[&str] = &[
    "name", "user", "role", "roles", "party", "job", "path", "dataset", "provider", "service",
    "from", "reason", "version",
];

/// Largest request or response body the layer reads to find those fields (or an error's
/// message); larger bodies (uploads, batches of ids, downloads) are passed on untouched.
const MAX_INSPECTED_BODY: u64 = 64 * 1024;

fn body_size(headers: &HeaderMap, body: &Body) -> Option<u64> {
    body.size_hint().exact().or_else(|| {
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `value` as one short text (strings bare, arrays joined with commas).
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `key=value` for each of `fields` present in a JSON object.
fn named_fields(bytes: &[u8], fields: &[&str]) -> Vec<String> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|f| map.get(*f).map(|v| format!("{f}={}", text_of(v))))
        .collect()
}

/// Records every request that is not a read, after authentication: who (`actor_of`), what
/// (method and route), which object (path parameters, query parameters and the named fields
/// of a small JSON body, and a created job's or query's id), from which address (the client's
/// socket address, `unknown` without `ConnectInfo`), and the outcome (the status; for an
/// error, its message). The entry is written before the response leaves.
pub(super) async fn record_actions(
    State(node): State<Arc<Node>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // A prediction changes nothing and is recorded in the serving request log; one
    // hash-chained action per scored request would swamp the log.
    if req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|m| m.as_str().ends_with("/services/{name}/predict"))
    {
        return next.run(req).await;
    }
    let actor = actor_of(&req).unwrap_or_else(|| "anonymous".to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let route = if route.starts_with("/api/v1") {
        route
    } else {
        format!("/api/v1{route}")
    };
    let method = req.method().clone();
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let (mut parts, body) = req.into_parts();
    let mut object: Vec<String> = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .map(|params| params.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
        object.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    let small = body_size(&parts.headers, &body).is_some_and(|n| n <= MAX_INSPECTED_BODY);
    let body = if small && is_json(&parts.headers) {
        match axum::body::to_bytes(body, MAX_INSPECTED_BODY as usize).await {
            Ok(bytes) => {
                object.extend(named_fields(&bytes, REQUEST_FIELDS));
                Body::from(bytes)
            }
            Err(e) => {
                let error = format!("cannot read the request body: {e}");
                let mut action = NewAction::ok(
                    actor,
                    format!("{method} {route}"),
                    object.join("; "),
                    address,
                )
                .failed(error.clone());
                action.status = Some(StatusCode::BAD_REQUEST.as_u16());
                record(node, action).await;
                return ApiError::new(StatusCode::BAD_REQUEST, error).into_response();
            }
        }
    } else {
        body
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let small = body_size(&parts.headers, &body).is_some_and(|n| n <= MAX_INSPECTED_BODY);
    let (body, error) = if small && is_json(&parts.headers) {
        match axum::body::to_bytes(body, MAX_INSPECTED_BODY as usize).await {
            Ok(bytes) => {
                let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let error = answer.get("error").map(text_of);
                if status.is_success() {
                    // The id of what the request created.
                    object.extend(named_fields(&bytes, &["job_id"]));
                    if route.starts_with("/api/v1/queries") {
                        object.extend(named_fields(&bytes, &["id"]));
                    }
                }
                (Body::from(bytes), error)
            }
            Err(e) => (Body::empty(), Some(format!("cannot read the answer: {e}"))),
        }
    } else {
        (body, None)
    };
    let mut action = NewAction::ok(
        actor,
        format!("{method} {route}"),
        object.join("; "),
        address,
    );
    action.status = Some(status.as_u16());
    if status.is_client_error() || status.is_server_error() {
        action = action.failed(error.unwrap_or_else(|| status.to_string()));
    }
    record(node, action).await;
    Response::from_parts(parts, body)
}

pub(super) async fn record(node: Arc<Node>, action: NewAction) {
    if let Err(e) = tokio::task::spawn_blocking(move || node.record_action(&action)).await {
        tracing::error!("cannot record an action in the audit log: {e}");
    }
}

fn action_query(q: &HashMap<String, String>) -> Result<ActionQuery, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        q.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("'{name}' = '{}' is not a whole number", v.escape_debug()),
                    )
                })
            })
            .transpose()
    };
    Ok(ActionQuery {
        from: q.get("from").cloned(),
        to: q.get("to").cloned(),
        after_seq: number("after_seq")?,
        limit: number("limit")?,
    })
}

pub(super) async fn list(
    State(node): State<Arc<Node>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Vec<api::ActionEntry>> {
    let query = action_query(&q)?;
    blocking(move || recast(node.store().actions(&query)?)).await
}

pub(super) async fn verify(State(node): State<Arc<Node>>) -> ApiResult<api::ChainReport> {
    blocking(move || recast(node.audit_verify()?)).await
}

pub(super) async fn checkpoints(
    State(node): State<Arc<Node>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<api::Checkpoints> {
    blocking(move || {
        let store = node.store();
        Ok(api::Checkpoints {
            party: node.party().to_string(),
            own: recast(store.checkpoints()?)?,
            received: recast(store.partner_checkpoints(q.get("partner").map(String::as_str))?)?,
        })
    })
    .await
}

pub(super) async fn checkpoint_now(
    State(node): State<Arc<Node>>,
) -> ApiResult<Option<api::SentCheckpoint>> {
    blocking(move || recast(node.audit_checkpoint()?)).await
}

/// Columns of the CSV export, in order.
pub const CSV_COLUMNS: [&str; 11] = [
    "seq",
    "at",
    "actor",
    "action",
    "object",
    "address",
    "outcome",
    "status",
    "detail",
    "prev_hash",
    "hash",
];

/// A cell a spreadsheet would run as a formula gets a leading `'` (CSV is for reading; the
/// JSON lines export is the exact one).
fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The entries as CSV (a header, then one row each).
pub fn entries_csv(entries: &[ActionEntry]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(|e| e.to_string())?;
    for e in entries {
        let row = [
            e.seq.to_string(),
            e.at.clone(),
            e.actor.clone(),
            e.action.clone(),
            e.object.clone(),
            e.address.clone(),
            e.outcome.as_str().to_string(),
            e.status.map(|s| s.to_string()).unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        w.write_record(row.iter().map(|c| csv_cell(c)))
            .map_err(|err| format!("entry {}: {err}", e.seq))?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The entries as JSON lines.
pub fn entries_jsonl(entries: &[ActionEntry]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut out, e).map_err(|err| format!("entry {}: {err}", e.seq))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Writes entries in one export format.
type Render = fn(&[ActionEntry]) -> Result<Vec<u8>, String>;

pub(super) async fn export(
    State(node): State<Arc<Node>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let query = action_query(&q)?;
    let format = q
        .get("format")
        .map(String::as_str)
        .unwrap_or("jsonl")
        .to_string();
    let (content_type, render): (&str, Render) = match format.as_str() {
        "jsonl" => ("application/x-ndjson", entries_jsonl),
        "csv" => ("text/csv; charset=utf-8", entries_csv),
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("format '{}' is not jsonl or csv", other.escape_debug()),
            ));
        }
    };
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let entries = node.store().actions(&query)?;
        render(&entries).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_fields_of_a_body_are_kept() {
        let body = br#"{"name":"alice","password":"hunter2","roles":["auditor","approver"],"ids":["13800000001"]}"#;
        assert_eq!(
            named_fields(body, REQUEST_FIELDS),
            vec!["name=alice", "roles=auditor,approver"]
        );
        assert!(named_fields(b"not json", REQUEST_FIELDS).is_empty());
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        let e = ActionEntry {
            seq: 1,
            at: "2024-05-01T00:00:00.000Z".into(),
            actor: "token:a".into(),
            action: "POST /api/v1/jobs".into(),
            object: "=HYPERLINK(\"x\")".into(),
            address: "unknown".into(),
            outcome: ferry_store::Outcome::Error,
            status: Some(400),
            detail: Some("line one\nline \"two\"".into()),
            prev_hash: "0".repeat(64),
            hash: "1".repeat(64),
        };
        let text = String::from_utf8(entries_csv(std::slice::from_ref(&e)).unwrap()).unwrap();
        assert!(text.starts_with("seq,at,actor,"), "{text}");
        assert!(text.contains("'=HYPERLINK"), "{text}");
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[8], "line one\nline \"two\"");
        let line = String::from_utf8(entries_jsonl(std::slice::from_ref(&e)).unwrap()).unwrap();
        let back: ActionEntry = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(back, e);
    }
}
