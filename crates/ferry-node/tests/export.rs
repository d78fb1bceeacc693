//! `GET /api/v1/datasets/{name}/download`: the stored file byte for byte, streamed, for
//! uploaded and derived datasets, only with the `export_data` permission, and recorded in the
//! action log (refusals included).

mod common;

use axum::http::StatusCode;
use common::Cluster;
use ferry_node::Node;
use ferry_store::{ActionQuery, GrantTarget, Outcome, RegisterDataset, TokenRole};
use std::time::Duration;

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

fn download(router: &axum::Router, name: &str, token: &str) -> Answer {
    let uri = format!("/api/v1/datasets/{name}/download");
    let a = common::send(router, "GET", &uri, &common::bearer(token), None);
    Answer {
        status: a.status,
        headers: a.headers,
        body: a.bytes,
    }
}

fn wait_done(node: &Node, job: &str) {
    common::wait_succeeded(node, job, Duration::from_secs(60));
}

#[test]
fn a_download_is_the_stored_file_byte_for_byte_only_with_export_permission_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], true, None);
    let c = Cluster::start(tmp, dirs);
    let bank = &c.nodes[0];

    // A file larger than one chunk of the stream, with text and an odd last line.
    let mut csv = String::from("id,x,city\n");
    for i in 0..40_000 {
        csv.push_str(&format!("c{i},{}.25,\"Zürich, {}\"\n", i % 97, i % 13));
    }
    let file = c.dirs[0].join("loans.csv");
    std::fs::write(&file, &csv).unwrap();
    assert!(csv.len() > ferry_node::export::CHUNK_BYTES * 3);
    let record = bank
        .store()
        .register_dataset(RegisterDataset::new("loans", &file))
        .unwrap();

    let router = ferry_node::api::router(bank.clone());
    let (_, user) = bank
        .store()
        .create_token("steward", TokenRole::User)
        .unwrap();
    let (_, reader) = bank
        .store()
        .create_token("reader", TokenRole::ReadOnly)
        .unwrap();

    let a = download(&router, "loans", &user);
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body == csv.as_bytes(),
        "the download differs from the registered file"
    );
    assert_eq!(a.headers["content-length"], csv.len().to_string().as_str());
    assert_eq!(a.headers["x-ferry-sha256"], record.sha256.as_str());
    assert_eq!(
        a.headers["content-disposition"],
        "attachment; filename=\"loans.csv\""
    );
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );

    // An unknown name: 404 naming it.
    let a = download(&router, "no_such_data", &user);
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let error: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("'no_such_data'"),
        "{error}"
    );

    // A read-only token reads metadata but may not take rows out.
    let a = download(&router, "loans", &reader);
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let error: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("export_data"),
        "{error}"
    );

    // The action log has the download (with what was served) and the refused name.
    let actions = bank.store().actions(&ActionQuery::default()).unwrap();
    let downloads: Vec<_> = actions
        .iter()
        .filter(|e| e.action == ferry_node::export::ACTION && e.actor == "token:steward")
        .collect();
    assert_eq!(downloads.len(), 2, "{actions:?}");
    assert_eq!(downloads[0].object, "name=loans");
    assert_eq!(downloads[0].outcome, Outcome::Ok);
    assert_eq!(downloads[0].status, Some(200));
    assert_eq!(
        downloads[0].detail.as_deref(),
        Some(format!("bytes={}; sha256={}", csv.len(), record.sha256).as_str())
    );
    assert_eq!(downloads[1].object, "name=no_such_data");
    assert_eq!(downloads[1].outcome, Outcome::Error);
    assert_eq!(downloads[1].status, Some(404));
    assert!(
        !actions
            .iter()
            .any(|e| e.actor == "token:reader" && e.outcome == Outcome::Ok),
        "{actions:?}"
    );

    // A dataset a job derived (the PSI result) downloads the same way.
    let telco_file = c.dirs[1].join("loans.csv");
    std::fs::write(&telco_file, "id,y\nc1,1\nc2,0\nc5,1\nnobody,0\n").unwrap();
    c.nodes[1]
        .store()
        .register_dataset(RegisterDataset::new("loans", &telco_file))
        .unwrap();
    c.nodes[1]
        .store()
        .grant("loans", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = bank
        .submit(
            "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  \
             - {name: read, component: reader, party_params: {bank: {dataset: loans}, telco: {dataset: loans}}}\n  \
             - {name: psi, component: psi, inputs: {data: read}}\n",
        )
        .unwrap();
    wait_done(bank, &job);
    let derived = bank.store().dataset(&format!("{job}-psi")).unwrap();
    let a = download(&router, &derived.name, &user);
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, std::fs::read(&derived.path).unwrap());
    let text = String::from_utf8(a.body).unwrap();
    assert_eq!(
        text.lines().count(),
        4,
        "header and three common ids: {text}"
    );
}
