//! Taking a dataset's rows out of the node: `GET /api/v1/datasets/{name}/download` (issue 14),
//! used by `ferry dataset export NAME --out FILE`.
//!
//! Any registered dataset can be downloaded: an uploaded one, and the datasets jobs derive
//! (a PSI result, batch predictions, scorecard scores, selected features). The answer is the
//! stored file's plaintext, byte for byte (CSV or Parquet; decrypted as it is read when the
//! node encrypts its files at rest, see `ferry_store::DataFiles`), streamed in chunks of
//! [`CHUNK_BYTES`], never read into memory whole, with `Content-Length`, a
//! `Content-Disposition` file name and the SHA-256 the node recorded for the plaintext in
//! `X-Ferry-Sha256` (the CLI checks the bytes it wrote against it).
//!
//! **Permission.** A download is a read, but unlike every other read it takes the rows
//! themselves out of the node, where grants, jobs and the policy no longer reach them. So it
//! needs the `export_data` permission ([`crate::access`]): data stewards, and service tokens
//! of role `user` or `admin`; a read-only token or a user who may only read metadata (an
//! auditor, a modeller, an approver) may not.
//!
//! **Record.** Every download, and every refused one (an unknown name), is an entry of the
//! node's action log ([`ferry_store::NewAction`], action [`ACTION`]): who (the principal, as
//! [`crate::api::actor_of`] names it), which dataset, from which address, the status, and the
//! size and SHA-256 of what was served; the API's action layer records only requests that
//! change state, so this route records itself. A download that cannot be recorded is refused.
//! It is also written to the node's log (target `ferry::export`), with a read error
//! mid-stream.

use crate::api::ApiError;
use crate::node::Node;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use ferry_store::{DataFormat, DatasetRecord, NewAction, Store, StoreError};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes read from disk per chunk of the answer.
pub const CHUNK_BYTES: usize = 256 << 10;

/// The header carrying the SHA-256 (hex) the node recorded for the file.
pub const SHA256_HEADER: &str = "x-ferry-sha256";

/// The action the audit log records for a download.
pub const ACTION: &str = "GET /api/v1/datasets/{name}/download";

/// `GET /api/v1/datasets/{name}/download`.
pub async fn api_download_dataset(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let actor = crate::api::actor_of(&req).unwrap_or_else(|| "anonymous".into());
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    let store = node.store().clone();
    let lookup = name.clone();
    // The file is opened before answering: a dataset replaced or deleted meanwhile is either
    // served whole from the open file or not found. Refused and failed downloads are recorded
    // too; a download that cannot be recorded is refused.
    let opened = tokio::task::spawn_blocking(move || {
        let opened = open(&store, &lookup);
        let mut action = NewAction::ok(actor, ACTION, format!("name={lookup}"), address);
        action = match &opened {
            Ok((record, _, length)) => {
                action.status = Some(StatusCode::OK.as_u16());
                action.with_detail(format!("bytes={length}; sha256={}", record.sha256))
            }
            Err(e) => {
                action.status = Some(status_of(e).as_u16());
                action.failed(e.to_string())
            }
        };
        store.record_action(&action).map_err(|e| {
            StoreError::Db(format!(
                "the download could not be recorded in the audit log, so it is refused: {e}"
            ))
        })?;
        tracing::info!(
            target: "ferry::export",
            "dataset download: {} {} '{lookup}' ({})",
            action.actor,
            if opened.is_ok() { "downloads" } else { "was refused" },
            action.detail.as_deref().unwrap_or_default()
        );
        opened
    })
    .await
    .map_err(|e| StoreError::Db(format!("download of dataset '{name}': {e}")))?;
    let (record, file, length) = opened?;
    let (content_type, extension) = match record.format {
        DataFormat::Parquet => ("application/vnd.apache.parquet", "parquet"),
        _ => ("text/csv; charset=utf-8", "csv"),
    };
    let dataset = record.name.clone();
    // Decryption is CPU work and the reads block: each chunk is read on the blocking pool.
    let chunks = futures_util::stream::unfold(Some(file), move |state| {
        let dataset = dataset.clone();
        async move {
            let file = state?;
            let read = tokio::task::spawn_blocking(move || {
                let mut file = file;
                let mut buf = Vec::with_capacity(CHUNK_BYTES);
                let n = (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut buf);
                (file, n.map(|_| buf))
            })
            .await;
            let (file, read) = match read {
                Ok(r) => r,
                Err(e) => (
                    Box::new(std::io::empty()) as ferry_data::DataRead,
                    Err(e.into()),
                ),
            };
            match read {
                Ok(buf) if buf.is_empty() => None,
                Ok(buf) => Some((Ok(Bytes::from(buf)), Some(file))),
                Err(e) => {
                    tracing::warn!(
                        target: "ferry::export",
                        "dataset download of '{dataset}' stopped: {e}"
                    );
                    Some((Err(e), None))
                }
            }
        }
    });
    let disposition = format!("attachment; filename=\"{}.{extension}\"", record.name);
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    // Dataset names are checked identifiers, so both values are valid header text.
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&record.sha256) {
        headers.insert(SHA256_HEADER, v);
    }
    Ok(response)
}

/// The dataset's record, its file opened through the store (decrypted as it is read when it
/// is encrypted at rest), and the length of what will be served.
fn open(
    store: &Store,
    name: &str,
) -> Result<(DatasetRecord, ferry_data::DataRead, u64), StoreError> {
    let record = store.dataset(name)?;
    let io = |e: std::io::Error| StoreError::Io {
        path: record.path.clone(),
        reason: format!("cannot read dataset '{name}': {e}"),
    };
    let (file, length) = match store.source(&record.path).open()? {
        ferry_data::Opened::File(f) => {
            let length = f.metadata().map_err(io)?.len();
            (Box::new(f) as ferry_data::DataRead, length)
        }
        // The plaintext's length is the one recorded: a sealed file whose plaintext is
        // shorter or longer fails authentication before the stream ends.
        sealed @ ferry_data::Opened::Stream(_) => (sealed.into_read(), record.bytes),
    };
    Ok((record, file, length))
}

/// The status the API answers `e` with (as [`ApiError`]'s conversion does).
fn status_of(e: &StoreError) -> StatusCode {
    match e {
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::InvalidInput { .. } | StoreError::NotGranted { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
