//! `GET /api/v1/events`: a job's progress as server-sent events, up to `succeeded`; the full
//! state on connect; the `job` filter; credentials needed.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Cluster, call};
use ferry_api::events::JobEvent;
use ferry_api::{JobStatus, TaskStatus};
use ferry_store::{GrantTarget, RegisterDataset, TokenRole};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const SPEC: &str = "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  \
    - {name: read, component: reader, party_params: {bank: {dataset: loans}, telco: {dataset: loans}}}\n  \
    - {name: psi, component: psi, inputs: {data: read}}\n";

fn cluster() -> Cluster {
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&common::test_policy()));
    for (i, node) in c.nodes.iter().enumerate() {
        let file = c.dirs[i].join("loans.csv");
        std::fs::write(&file, "id,x,y\nc1,1.5,1\nc2,2.5,0\nc3,0.5,1\nc4,3.0,0\n").unwrap();
        node.store()
            .register_dataset(RegisterDataset::new("loans", &file))
            .unwrap();
    }
    c.nodes[1]
        .store()
        .grant("loans", GrantTarget::Party("bank".into()))
        .unwrap();
    c
}

/// The SSE messages of `uri` as (event name, data), read until `done` says enough or
/// `timeout` passes (then the test fails naming what arrived).
async fn read_events(
    router: &axum::Router,
    uri: &str,
    token: &str,
    timeout: Duration,
    mut done: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let req = Request::builder()
        .uri(uri)
        .header("Authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body().into_data_stream();
    let (mut text, mut events) = (String::new(), Vec::new());
    let start = Instant::now();
    while !done(&events) {
        let left = timeout.saturating_sub(start.elapsed());
        let chunk = tokio::time::timeout(left, body.next())
            .await
            .unwrap_or_else(|_| panic!("not within {timeout:?}; got {events:?}"))
            .expect("the stream ended")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        // Messages end with a blank line.
        while let Some(end) = text.find("\n\n") {
            let message: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                message
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                events.push((event, data));
            }
        }
    }
    events
}

fn jobs_in(events: &[(String, String)], id: &str) -> Vec<JobEvent> {
    events
        .iter()
        .filter(|(e, _)| e == "job")
        .map(|(_, d)| serde_json::from_str::<JobEvent>(d).unwrap())
        .filter(|j| j.id == id)
        .collect()
}

#[test]
fn a_job_is_followed_to_succeeded_and_the_state_is_sent_on_connect() {
    let c = cluster();
    let bank = c.nodes[0].clone();
    let router = ferry_node::api::router(bank.clone());
    let (_, reader) = bank
        .store()
        .create_token("reader", TokenRole::ReadOnly)
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Connected before the job exists: its events arrive as it runs.
    let job = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let submitter = {
        let (bank, job) = (bank.clone(), job.clone());
        std::thread::spawn(move || {
            // Let the stream connect and send the (empty) state first.
            std::thread::sleep(Duration::from_millis(300));
            let id = bank.submit(SPEC).unwrap();
            *job.lock().unwrap() = Some(id);
        })
    };
    let events = rt.block_on(read_events(
        &router,
        "/api/v1/events",
        &reader,
        Duration::from_secs(60),
        |events| {
            let Some(id) = job.lock().unwrap().clone() else {
                return false;
            };
            jobs_in(events, &id)
                .iter()
                .any(|j| j.status == JobStatus::Succeeded)
        },
    ));
    submitter.join().unwrap();
    let id = job.lock().unwrap().clone().unwrap();
    let seen = jobs_in(&events, &id);
    let last = seen.last().unwrap();
    assert_eq!(last.status, JobStatus::Succeeded);
    assert_eq!(
        last.tasks
            .iter()
            .map(|t| (t.task.as_str(), t.status))
            .collect::<Vec<_>>(),
        vec![
            ("read", TaskStatus::Succeeded),
            ("psi", TaskStatus::Succeeded)
        ]
    );
    assert!(last.tasks.iter().all(|t| t.progress == 1.0), "{last:?}");
    assert_eq!(last.parties.len(), 2, "{last:?}");
    // Only changes are sent: no two consecutive events of the job are equal.
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");

    // A client connecting afterwards gets the finished job at once, with ?job= only it.
    let (_, other) = call(&router, "GET", "/api/v1/jobs", Some(&reader), None);
    assert_eq!(other.as_array().unwrap().len(), 1);
    let events = rt.block_on(read_events(
        &router,
        &format!("/api/v1/events?job={id}"),
        &reader,
        Duration::from_secs(10),
        |events| !events.is_empty(),
    ));
    assert_eq!(events[0].0, "job");
    let first: JobEvent = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(
        (first.id.as_str(), first.status),
        (id.as_str(), JobStatus::Succeeded)
    );
}

#[test]
fn the_stream_needs_credentials() {
    let c = cluster();
    let router = ferry_node::api::router(c.nodes[0].clone());
    let (status, body) = call(&router, "GET", "/api/v1/events", None, None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let (status, body) = call(&router, "GET", "/api/v1/events", Some("not-a-token"), None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A job that does not exist is refused at once rather than followed in silence.
    let (_, reader) = c.nodes[0]
        .store()
        .create_token("reader", TokenRole::ReadOnly)
        .unwrap();
    let (status, body) = call(
        &router,
        "GET",
        "/api/v1/events?job=job-nope",
        Some(&reader),
        None,
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found");
}
