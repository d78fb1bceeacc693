//! `GET /api/v1/events`: live updates as server-sent events (permission `read`).
//!
//! Each message is `event: job` with a [`JobEvent`] (the job's status, every task's status and
//! progress, every party's status) or `event: service` with a [`ServiceEvent`] (status and
//! counters). On connect the client gets the current state of every job and service, then an
//! event each time one changes; a comment every [`KEEP_ALIVE`] keeps proxies from closing the
//! connection. `?job=ID` follows one job (and no services).
//!
//! **Polling, per connection.** Each connection reads the store every [`POLL`] and sends what
//! differs from what it sent before. The alternative, a broadcast the node publishes to
//! wherever job, task and party state is written, would touch the scheduler thread, every
//! control-plane handler, restart recovery and the serving counters' flush — many writers in
//! `node.rs` and the store — and would still need this full snapshot for a client that
//! connects or falls behind. A poll costs a few indexed reads per second per console (finished
//! jobs whose row did not change are not read again), and a node has a handful of consoles.
//! Service counters are themselves flushed once a second, so a busy service sends about one
//! event per second: that is its throughput summary.
//!
//! **A slow client never blocks the node.** Events wait in a small per-connection buffer; when
//! it is full the connection is ended, and the browser's `EventSource` reconnects and receives
//! the full state again.

use super::{ApiError, recast};
use crate::node::Node;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use ferry_api::events::{JOB_EVENT, JobEvent, SERVICE_EVENT, ServiceEvent, TaskState};
use ferry_api::{JobStatus, PartyStatus};
use futures_util::Stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a connection reads the store.
pub const POLL: Duration = Duration::from_secs(1);
/// How often a quiet connection gets a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events a connection may have waiting before it is ended as too slow.
const BUFFER: usize = 256;

pub(super) async fn stream(
    State(node): State<Arc<Node>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = q.get("job").cloned();
    if let Some(id) = job.clone() {
        // An unknown job is a 404 now, not a stream that stays silent.
        let n = node.clone();
        let _known = super::blocking(move || Ok(n.store().job(&id).map(|_| ())?)).await?;
    }
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(follow(node, job, tx));
    let events =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// What one connection last sent.
#[derive(Default)]
struct Sent {
    jobs: HashMap<String, JobEvent>,
    services: HashMap<String, ServiceEvent>,
}

/// Reads the store every [`POLL`] and sends the changes, until the client goes away or falls
/// behind.
async fn follow(node: Arc<Node>, job: Option<String>, tx: mpsc::Sender<Event>) {
    let mut sent = Sent::default();
    loop {
        let n = node.clone();
        let filter = job.clone();
        let known: HashMap<String, (JobStatus, String)> = sent
            .jobs
            .iter()
            .map(|(id, e)| (id.clone(), (e.status, e.updated_at.clone())))
            .collect();
        let read =
            tokio::task::spawn_blocking(move || snapshot(&n, filter.as_deref(), &known)).await;
        let (jobs, services) = match read {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = e.message(), "event stream: cannot read the store");
                (Vec::new(), Vec::new())
            }
            Err(_) => return,
        };
        for ev in jobs {
            if sent.jobs.get(&ev.id) == Some(&ev) {
                continue;
            }
            if !send(&tx, JOB_EVENT, &ev) {
                return;
            }
            sent.jobs.insert(ev.id.clone(), ev);
        }
        for ev in services {
            if sent.services.get(&ev.name) == Some(&ev) {
                continue;
            }
            if !send(&tx, SERVICE_EVENT, &ev) {
                return;
            }
            sent.services.insert(ev.name.clone(), ev);
        }
        tokio::time::sleep(POLL).await;
        if tx.is_closed() {
            return;
        }
    }
}

/// Queues one event; false when the client is gone or too slow (its buffer is full), which
/// ends the connection.
fn send<T: serde::Serialize>(tx: &mpsc::Sender<Event>, name: &str, data: &T) -> bool {
    let Ok(event) = Event::default().event(name).json_data(data) else {
        return true;
    };
    tx.try_send(event).is_ok()
}

type Snapshot = (Vec<JobEvent>, Vec<ServiceEvent>);

/// The jobs (all, or `job`) and services as events. A finished job whose status and update
/// time are those in `known` is left out: it was sent and cannot have changed.
fn snapshot(
    node: &Node,
    job: Option<&str>,
    known: &HashMap<String, (JobStatus, String)>,
) -> Result<Snapshot, ApiError> {
    let store = node.store();
    let rows = match job {
        Some(id) => vec![store.job(id)?],
        None => store.list_jobs()?,
    };
    let mut jobs = Vec::new();
    for row in rows {
        let status: JobStatus = recast(row.status)?;
        if status.is_terminal() && known.get(&row.id) == Some(&(status, row.updated_at.clone())) {
            continue;
        }
        jobs.push(job_event(node, row, status)?);
    }
    let services = match job {
        Some(_) => Vec::new(),
        None => node
            .serving()
            .list()?
            .into_iter()
            .map(|s| {
                Ok(ServiceEvent {
                    status: recast(s.status)?,
                    name: s.name,
                    reason: s.reason,
                    version: s.version,
                    requests: s.requests,
                    ids: s.ids,
                    errors: s.errors,
                    last_request_at: s.last_request_at,
                })
            })
            .collect::<Result<_, ApiError>>()?,
    };
    Ok((jobs, services))
}

/// One job's state as an event.
pub(crate) fn job_event(
    node: &Node,
    row: ferry_store::JobRow,
    status: JobStatus,
) -> Result<JobEvent, ApiError> {
    let tasks = super::job_tasks(node, &row)?
        .into_iter()
        .map(|t| TaskState {
            task: t.task,
            status: t.status,
            progress: t.progress,
            error: t.error,
        })
        .collect();
    let parties = node
        .store()
        .party_statuses(&row.id)?
        .into_iter()
        .map(|(party, status, reason)| {
            Ok(PartyStatus {
                party,
                status: recast(status)?,
                reason,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(JobEvent {
        id: row.id,
        status,
        reason: row.reason,
        updated_at: row.updated_at,
        tasks,
        parties,
    })
}
