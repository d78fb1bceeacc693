//! Nodes in one process, each with its own directory, SQLite database and TLS endpoint.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Cluster, call, register_data, test_policy, wait_done};
use ferry_data::synthetic::{VerticalSpec, vertical};
use ferry_node::Node;
use ferry_store::{GrantTarget, LabelKind, RegisterDataset, TokenRole};
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Node directories for `names` (the first is the guest), pinned to each other.
fn node_dirs(root: &Path, names: &[&str], auto_approve: bool) -> Vec<PathBuf> {
    // Tests train with 1024-bit keys: each node's own policy allows them.
    common::pinned_node_dirs(root, names, auto_approve, Some(&test_policy()))
}

fn cluster(names: &[&str], auto_approve: bool) -> Cluster {
    Cluster::pinned(names, auto_approve, Some(&test_policy()))
}

const JOB: &str = r#"
name: test-job
parties: {guest: bank, hosts: [telco]}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: stats, component: statistics, inputs: {data: intersect}}
  - name: train
    component: hetero_secureboost
    inputs: {train: intersect}
    params: {num_trees: 2, max_depth: 2, he: {key_bits: 1024}, model_name: sb}
  - {name: score, component: predict, inputs: {model: train, data: intersect}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;

/// Waits until `node` knows the job (a partner learns of it through the control plane).
fn wait_known(node: &Node, job: &str) {
    let start = Instant::now();
    while node.store().job(job).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{job} never reached {}",
            node.party()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `node` shows every party of `job` in a final state; returns those states.
fn wait_parties_done(node: &Node, job: &str) -> Vec<(String, String, Option<String>)> {
    let start = Instant::now();
    loop {
        let statuses = node.store().party_statuses(job).unwrap();
        if statuses.iter().all(|(_, s, _)| s.is_terminal()) {
            return statuses
                .into_iter()
                .map(|(p, s, r)| (p, s.as_str().to_string(), r))
                .collect();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} still shows {statuses:?}",
            node.party()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_job_runs_across_two_nodes_and_every_node_records_it() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 400);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0].submit(JOB).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    wait_known(&c.nodes[1], &job);
    let telco_row = wait_done(&c.nodes[1], &job, Duration::from_secs(30));
    assert_eq!(telco_row.status.as_str(), "succeeded");

    // Every node sees every party's status.
    let start = Instant::now();
    loop {
        let statuses = c.nodes[1].store().party_statuses(&job).unwrap();
        if statuses.iter().all(|(_, s, _)| s.as_str() == "succeeded") && statuses.len() == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{statuses:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Outputs: the PSI output is a derived dataset with lineage; each party keeps its model part.
    let tasks = c.nodes[0].store().tasks(&job).unwrap();
    let eval = tasks.iter().find(|t| t.task == "eval").unwrap();
    let auc = eval.outputs.as_ref().unwrap()["metrics"]["headline"]["auc"]
        .as_f64()
        .unwrap();
    assert!(auc > 0.6, "the model learned something: AUC {auc}");
    let derived = c.nodes[1]
        .store()
        .dataset(&format!("{job}-intersect"))
        .unwrap();
    assert_eq!(derived.lineage.as_ref().unwrap().task, "intersect");
    for node in &c.nodes {
        let (rec, _) = node.store().load_model("sb", None).unwrap();
        assert_eq!(rec.lineage.job_id, job);
    }
    // Metrics, logs and the audit trail were recorded.
    assert!(
        c.nodes[0]
            .store()
            .metrics(&job, Some("eval"))
            .unwrap()
            .iter()
            .any(|m| m.name == "auc")
    );
    assert!(!c.nodes[0].store().logs(&job, None).unwrap().is_empty());
    let audit = c.nodes[1].store().audit(&job).unwrap();
    assert!(audit.iter().any(|a| a.task == "train" && a.peer == "bank"));

    // Re-running from the model task reuses read and intersect.
    let rerun = c.nodes[0].rerun(&job, "train").unwrap();
    let row = wait_done(&c.nodes[0], &rerun, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    let logs = c.nodes[0].store().logs(&rerun, Some("intersect")).unwrap();
    assert!(logs.iter().any(|l| l.line.contains("reused from job")));
    assert_eq!(c.nodes[0].store().model("sb", None).unwrap().version, 2);
}

#[test]
fn a_host_refuses_a_job_that_reads_an_ungranted_dataset() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 100);
    let job = c.nodes[0].submit(JOB).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(30));
    assert_eq!(row.status.as_str(), "failed");
    let reason = row.reason.unwrap();
    assert!(
        reason.contains("party 'telco' refused the job")
            && reason
                .contains("dataset 'mydata' does not exist on 'telco' or is not granted to 'bank'"),
        "{reason}"
    );
    wait_known(&c.nodes[1], &job);
    let host = c.nodes[1].store().job(&job).unwrap();
    assert_eq!(host.status.as_str(), "failed");
    assert!(host.reason.unwrap().contains("not granted"));
}

/// The guest fails in the middle of the DAG (its data has a text column the model cannot use):
/// the host stops too, and every node shows both parties' final status with the reason, not
/// a partner still "running".
#[test]
fn a_guest_failing_mid_job_stops_the_host_and_every_node_shows_how_each_party_ended() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 200);
    let file = c.dirs[0].join("with_text.csv");
    let original = std::fs::read_to_string(c.dirs[0].join("mydata.csv")).unwrap();
    let mut text = String::new();
    for (i, line) in original.lines().enumerate() {
        let extra = if i == 0 { "segment" } else { "gold" };
        text.push_str(&format!("{line},{extra}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let mut req = RegisterDataset::new("mydata", &file);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    req.replace = true;
    c.nodes[0].store().register_dataset(req).unwrap();
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();

    let job = c.nodes[0].submit(JOB).unwrap();
    let guest = wait_done(&c.nodes[0], &job, Duration::from_secs(60));
    assert_eq!(guest.status.as_str(), "failed");
    // The guest's own record has the whole reason, down to the cell.
    let why = guest.reason.unwrap();
    assert!(
        why.contains("column 'segment'") && why.contains("'gold'"),
        "{why}"
    );
    // The host learns which party failed in which task, and nothing of the guest's data: not
    // the cell value, the column or where the file lives.
    let host = wait_done(&c.nodes[1], &job, Duration::from_secs(20));
    assert_eq!(host.status.as_str(), "failed");
    let told = host.reason.unwrap();
    assert!(
        told.contains("bank") && told.contains("task 'train' failed"),
        "{told}"
    );
    let guest_dir = c.dirs[0].display().to_string();
    for secret in ["gold", "segment", guest_dir.as_str()] {
        assert!(
            !told.contains(secret),
            "the host was told '{secret}': {told}"
        );
    }
    let local = c.nodes[0].store().party_statuses(&job).unwrap();
    for node in &c.nodes {
        let parties = wait_parties_done(node, &job);
        assert_eq!(parties.len(), 2);
        for (party, status, reason) in &parties {
            assert_eq!(
                status,
                "failed",
                "{} shows {party}: {parties:?}",
                node.party()
            );
            let reason = reason.as_deref().unwrap_or("");
            assert!(
                reason.contains("task 'train' failed"),
                "{} shows {party} failing without saying where: {reason}",
                node.party()
            );
            if node.party().as_str() == "telco" {
                assert!(!reason.contains("gold"), "{reason}");
            }
        }
    }
    assert!(
        local
            .iter()
            .any(|(p, _, r)| p == "bank" && r.as_deref().is_some_and(|r| r.contains("'gold'")))
    );
    assert!(
        why.contains("exclude_columns"),
        "the error says what to do: {why}"
    );

    // What the error suggests works: the guest's reader leaves the column out.
    let excluded = JOB.replace(
        "bank: {dataset: mydata}",
        "bank: {dataset: mydata, exclude_columns: [segment]}",
    );
    let job = c.nodes[0].submit(&excluded).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    let read = c.nodes[0].store().dataset(&format!("{job}-read")).unwrap();
    let names: Vec<&str> = read.columns.iter().map(|c| c.name.as_str()).collect();
    assert!(
        !names.contains(&"segment") && names.contains(&"y"),
        "{names:?}"
    );
    assert_eq!(
        names.len() + 1,
        c.nodes[0].store().dataset("mydata").unwrap().columns.len()
    );
    assert_eq!(
        read.lineage.as_ref().unwrap().inputs,
        vec!["mydata".to_string()]
    );

    // A misspelt column is refused with a hint, on the party whose data it names.
    let typo = JOB.replace(
        "bank: {dataset: mydata}",
        "bank: {dataset: mydata, exclude_columns: [segmnt]}",
    );
    let job = c.nodes[0].submit(&typo).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(60));
    assert_eq!(row.status.as_str(), "failed");
    let why = row.reason.unwrap();
    assert!(
        why.contains("no column 'segmnt'") && why.contains("did you mean 'segment'"),
        "{why}"
    );
}

#[test]
fn manual_approval_holds_a_job_until_approved_and_cancel_reaches_partners() {
    let c = cluster(&["bank", "telco"], false);
    register_data(&c, 100);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Job("unknown-job".into()))
        .unwrap();
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0].submit(JOB).unwrap();
    wait_known(&c.nodes[1], &job);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.nodes[1].store().job(&job).unwrap().status.as_str(),
        "pending_approval"
    );
    assert_eq!(
        c.nodes[0].store().job(&job).unwrap().status.as_str(),
        "pending_approval"
    );
    c.nodes[0].cancel(&job, "changed my mind").unwrap();
    let host = wait_done(&c.nodes[1], &job, Duration::from_secs(20));
    assert_eq!(host.status.as_str(), "cancelled");
    assert!(host.reason.unwrap().contains("changed my mind"));
    // The guest no longer shows the host as waiting for approval.
    for node in &c.nodes {
        let parties = wait_parties_done(node, &job);
        assert!(
            parties.iter().all(|(_, s, _)| s == "cancelled"),
            "{}: {parties:?}",
            node.party()
        );
    }

    // A job rejected by hand fails on both nodes with the reason the approver gave.
    let job = c.nodes[0].submit(JOB).unwrap();
    wait_known(&c.nodes[1], &job);
    assert!(
        c.nodes[1].reject(&job, "  ").is_err(),
        "a reason is required"
    );
    c.nodes[1]
        .reject(&job, "the data use is not covered by our agreement")
        .unwrap();
    assert!(
        c.nodes[1].approve(&job).is_err(),
        "a rejected job cannot be approved"
    );
    let guest = wait_done(&c.nodes[0], &job, Duration::from_secs(20));
    assert_eq!(guest.status.as_str(), "failed");
    let reason = guest.reason.unwrap();
    assert!(
        reason.contains("party 'telco' refused the job: the data use is not covered"),
        "{reason}"
    );

    // A second job is approved by hand and runs.
    let job = c.nodes[0].submit(JOB).unwrap();
    wait_known(&c.nodes[1], &job);
    c.nodes[1].approve(&job).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
}

#[test]
fn an_undecided_proposal_is_on_the_to_do_list_then_expires_and_the_proposer_is_told() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = node_dirs(tmp.path(), &["bank", "telco"], false);
    let mut telco = NodeDir::open(&dirs[1]).unwrap();
    let approvals: toml::Table = toml::from_str("expire_hours = 0.0008").unwrap(); // ~3 s
    telco
        .config
        .other
        .insert("approvals".into(), approvals.into());
    telco.save().unwrap();
    let c = Cluster::start(tmp, dirs);
    register_data(&c, 50);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0].submit(JOB).unwrap();
    wait_known(&c.nodes[1], &job);
    let todo = c.nodes[1].pending_approvals().unwrap();
    assert_eq!(todo.len(), 1, "{todo:?}");
    assert_eq!(
        (todo[0].id.as_str(), todo[0].requested_by.as_str()),
        (job.as_str(), "bank")
    );
    assert!(todo[0].expires_at > todo[0].requested_at);
    assert!(
        todo[0].security.iter().any(|l| l.contains("mydata")),
        "the to-do item shows what the job reads: {:?}",
        todo[0].security
    );
    assert!(
        c.nodes[0].pending_approvals().unwrap().is_empty(),
        "the guest waits on no one here"
    );

    let host = wait_done(&c.nodes[1], &job, Duration::from_secs(30));
    assert_eq!(host.status.as_str(), "failed");
    assert!(host.reason.unwrap().contains("expired on telco"));
    let guest = wait_done(&c.nodes[0], &job, Duration::from_secs(30));
    assert!(
        guest
            .reason
            .unwrap()
            .contains("the proposal expired on telco after 0.0008 h")
    );
    assert!(c.nodes[1].pending_approvals().unwrap().is_empty());
    assert!(
        c.nodes[1].approve(&job).is_err(),
        "an expired proposal cannot be approved"
    );
}

#[test]
fn a_tampered_model_is_refused() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0].submit(JOB).unwrap();
    assert_eq!(
        wait_done(&c.nodes[0], &job, Duration::from_secs(120))
            .status
            .as_str(),
        "succeeded"
    );
    let rec = c.nodes[0].store().model("sb", None).unwrap();
    let mut bytes = std::fs::read(&rec.path).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&rec.path, bytes).unwrap();
    let err = c.nodes[0]
        .store()
        .load_model("sb", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refused") && err.contains("the file was altered"),
        "{err}"
    );

    // A prediction job with the stored model fails on the guest with that reason.
    let predict = r#"
parties: {guest: bank, hosts: [telco]}
timeout_secs: 20
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: score, component: predict, inputs: {data: read}, params: {model: sb}}
"#;
    let job = c.nodes[0].submit(predict).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(60));
    assert_eq!(row.status.as_str(), "failed");
    assert!(
        row.reason.unwrap().contains("sb"),
        "the failure names the model"
    );
}

#[test]
fn malformed_specs_and_missing_datasets_are_refused_at_submission() {
    let c = cluster(&["bank", "telco"], true);
    let err = c.nodes[0]
        .submit(
            "parties: {guest: bank, hosts: [telco]}\ntasks:\n  - {name: a, component: reeder}\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tasks[0].component: unknown component 'reeder' (did you mean 'reader'?)"),
        "{err}"
    );
    let err = c.nodes[0].submit(JOB).unwrap_err().to_string();
    assert!(
        err.contains("dataset") && err.contains("mydata"),
        "the guest's own missing dataset is named: {err}"
    );
    let err = c.nodes[1]
        .submit(&JOB.replace("hosts: [telco]", "hosts: [bank]"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listed twice"), "{err}");
    let err = c.nodes[1].submit(JOB).unwrap_err().to_string();
    assert!(err.contains("submitted by their guest"), "{err}");
}

#[test]
fn a_restarted_node_fails_the_jobs_it_left_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = node_dirs(tmp.path(), &["bank", "telco"], true);
    {
        let node = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
        let mut row = ferry_store::JobRow::new(
            "job-old",
            "{}",
            "bank",
            "guest",
            ferry_store::JobStatus::Running,
        );
        row.reason = None;
        node.store().insert_job(&row).unwrap();
        node.store()
            .upsert_task(
                "job-old",
                "train",
                ferry_store::TaskStatus::Running,
                0.4,
                None,
            )
            .unwrap();
        node.shutdown();
    }
    let node = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let row = node.store().job("job-old").unwrap();
    assert_eq!(row.status.as_str(), "failed");
    assert!(row.reason.unwrap().contains("restarted"));
    assert_eq!(
        node.store().tasks("job-old").unwrap()[0].status.as_str(),
        "failed"
    );
}

// ------------------------------------------------------------------------------------------
// REST API (through the router, against the node's real SQLite file).

/// Sends `bytes` as the raw body of `uri` (with a Content-Length header when `declare_length`).
fn upload(
    router: &axum::Router,
    uri: &str,
    token: &str,
    bytes: &[u8],
    declare_length: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/octet-stream");
    if declare_length {
        req = req.header("Content-Length", bytes.len().to_string());
    }
    let a = common::oneshot(router, req.body(Body::from(bytes.to_vec())).unwrap());
    (a.status, a.body)
}

#[test]
fn api_requires_tokens_and_manages_datasets() {
    let c = cluster(&["bank", "telco"], true);
    let node = &c.nodes[0];
    let router = ferry_node::api::router(node.clone());
    let (_, admin) = node
        .store()
        .create_token("admin", TokenRole::Admin)
        .unwrap();
    let (_, reader) = node
        .store()
        .create_token("viewer", TokenRole::ReadOnly)
        .unwrap();

    assert_eq!(
        call(&router, "GET", "/api/v1/health", None, None).0,
        StatusCode::OK
    );
    let (code, body) = call(&router, "GET", "/api/v1/datasets", None, None);
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing credentials: send 'Authorization: Bearer <token>'")
    );
    assert_eq!(
        call(
            &router,
            "GET",
            "/api/v1/datasets",
            Some("fry_not-a-token"),
            None
        )
        .0,
        StatusCode::UNAUTHORIZED
    );

    let csv = b"id,y,x\na,1,0.5\nb,0,1.5\nc,1,2.5\n";
    let add = "/api/v1/datasets/small/upload?label=y&file_name=small.csv";
    assert_eq!(
        upload(&router, add, &reader, csv, true).0,
        StatusCode::FORBIDDEN
    );
    let (code, rec) = upload(&router, add, &admin, csv, true);
    assert_eq!(code, StatusCode::OK, "{rec}");
    assert_eq!(rec["rows"], 3);
    assert_eq!(
        upload(&router, add, &admin, csv, true).0,
        StatusCode::CONFLICT
    );

    let (code, shown) = call(
        &router,
        "GET",
        "/api/v1/datasets/small",
        Some(&reader),
        None,
    );
    assert_eq!(code, StatusCode::OK);
    let x = shown["stats"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "x")
        .unwrap();
    assert_eq!(x["mean"], 1.5);

    let (code, body) = upload(
        &router,
        "/api/v1/datasets/bad/upload?label=target",
        &admin,
        csv,
        true,
    );
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("target"), "{body}");

    let (code, body) = call(
        &router,
        "POST",
        "/api/v1/datasets/small/grants",
        Some(&admin),
        Some(json!({"party": "telco"})),
    );
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(node.store().is_granted("small", "telco", "any").unwrap());

    // A malformed job is refused with its precise problems.
    let (code, body) = call(
        &router,
        "POST",
        "/api/v1/jobs",
        Some(&admin),
        Some(
            json!({"spec": "parties: {guest: bank, hosts: [telco]}\ntasks:\n  - {name: r, component: reader, params: {datset: small}}\n"}),
        ),
    );
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("unknown parameter 'datset' (did you mean 'dataset'?)"),
        "{msg}"
    );

    let (code, _) = call(&router, "GET", "/api/v1/jobs/job-nope", Some(&admin), None);
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&router, "GET", "/api/v1/tokens", Some(&reader), None).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &router,
            "DELETE",
            "/api/v1/datasets/small",
            Some(&admin),
            None
        )
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&router, "GET", "/api/v1/datasets/small", Some(&admin), None).0,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_stored_model_predicts_as_a_job() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 300);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0].submit(JOB).unwrap();
    assert_eq!(
        wait_done(&c.nodes[0], &job, Duration::from_secs(120))
            .status
            .as_str(),
        "succeeded"
    );
    let batch = r#"
parties: {guest: bank, hosts: [telco]}
timeout_secs: 30
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: align, component: psi, inputs: {data: read}}
  - {name: score, component: predict, inputs: {data: align}, params: {model: sb, version: 1}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;
    let job2 = c.nodes[0].submit(batch).unwrap();
    let row = wait_done(&c.nodes[0], &job2, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    let scores = c.nodes[0]
        .store()
        .dataset(&format!("{job2}-score"))
        .unwrap();
    assert!(scores.rows > 0);
    assert!(
        scores
            .lineage
            .unwrap()
            .inputs
            .iter()
            .any(|i| i.contains("sb v1"))
    );
    // The same evaluation as the training job's, from the stored model.
    let auc = |j: &str| {
        let t = c.nodes[0].store().tasks(j).unwrap();
        t.iter()
            .find(|t| t.task == "eval")
            .unwrap()
            .outputs
            .as_ref()
            .unwrap()["metrics"]["headline"]["auc"]
            .as_f64()
            .unwrap()
    };
    assert!((auc(&job) - auc(&job2)).abs() < 1e-12);
}

#[test]
fn fedavg_runs_as_a_job_with_an_arbiter() {
    let c = cluster(&["clinic_a", "clinic_b", "server"], true);
    // Horizontal split: same columns, different people, labels at every client.
    let parts = common::vertical_parts(1200, &[5], 1.0, 3);
    c.register_halves("patients", &parts[0]);
    let job = r#"
parties: {guest: clinic_a, hosts: [clinic_b], arbiter: server}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {clinic_a: {dataset: patients}, clinic_b: {dataset: patients}}}
  - name: fed
    component: fedavg
    inputs: {train: read}
    params: {rounds: 5, secure_aggregation: {}, model_name: fedlr}
  - {name: score, component: predict, inputs: {model: fed, data: read}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;
    let id = c.nodes[0].submit(job).unwrap();
    let row = wait_done(&c.nodes[0], &id, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    // Every party, the server included, holds the global model.
    for node in &c.nodes {
        assert_eq!(node.store().model("fedlr", None).unwrap().kind, "fedavg");
    }
    let tasks = c.nodes[0].store().tasks(&id).unwrap();
    let auc = tasks
        .iter()
        .find(|t| t.task == "eval")
        .unwrap()
        .outputs
        .as_ref()
        .unwrap()["metrics"]["headline"]["auc"]
        .as_f64()
        .unwrap();
    assert!(auc > 0.7, "FedAvg learned: AUC {auc}");
}

/// `data_split` splits every party's aligned rows alike, with no message, and the model is
/// trained on one side and scored on the other.
#[test]
fn a_split_by_id_trains_on_one_side_and_evaluates_on_the_other_at_every_party() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 400);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let spec = r#"
parties: {guest: bank, hosts: [telco]}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: split, component: data_split, inputs: {data: intersect}, params: {test_fraction: 0.3, seed: 5}}
  - name: train
    component: hetero_secureboost
    inputs: {train: split.train, validate: split.test}
    params: {num_trees: 2, max_depth: 2, he: {key_bits: 1024}, model_name: sb}
  - {name: score, component: predict, inputs: {model: train, data: split.test}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;
    let job = c.nodes[0].submit(spec).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    wait_done(&c.nodes[1], &job, Duration::from_secs(30));

    let ids_of = |node: &Node, name: &str| -> Vec<String> {
        let rec = node.store().dataset(name).unwrap();
        let mut r = csv_rows(&rec.path);
        r.sort();
        r
    };
    let intersect = ids_of(&c.nodes[0], &format!("{job}-intersect"));
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, node) in c.nodes.iter().enumerate() {
        let tr = ids_of(node, &format!("{job}-split-train"));
        let te = ids_of(node, &format!("{job}-split-test"));
        assert!(
            tr.iter().all(|id| !te.contains(id)),
            "party {i}: a row on both sides"
        );
        assert_eq!(
            tr.len() + te.len(),
            intersect.len(),
            "party {i}: every row once"
        );
        train.push(tr);
        test.push(te);
    }
    assert_eq!(train[0], train[1], "both parties train on the same people");
    assert_eq!(test[0], test[1], "both parties hold out the same people");
    let share = test[0].len() as f64 / intersect.len() as f64;
    assert!((0.15..0.45).contains(&share), "test share {share}");
    // The predictions (what the evaluation scored) cover exactly the held-out rows.
    assert_eq!(ids_of(&c.nodes[0], &format!("{job}-score")), test[0]);
    let tasks = c.nodes[0].store().tasks(&job).unwrap();
    let eval = tasks.iter().find(|t| t.task == "eval").unwrap();
    let auc = eval.outputs.as_ref().unwrap()["metrics"]["headline"]["auc"]
        .as_f64()
        .unwrap();
    assert!(auc > 0.6, "held-out AUC {auc}");
}

/// The first column of every data row of a CSV file.
fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------------------------------
// Where datasets may come from (issue 11, item 9).

const SMALL_CSV: &str = "id,y,x\na,1,0.5\nb,0,1.5\nc,1,2.5\n";

/// Started nodes `bank` (no import directories) and `telco` (whose `[datasets] import_dirs`
/// is the directory holding both node directories), and an admin token for each.
fn import_cluster() -> (Cluster, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(tmp.path()).unwrap();
    let dirs = node_dirs(&top, &["bank", "telco"], false);
    let mut telco = NodeDir::open(&dirs[1]).unwrap();
    let mut datasets = toml::Table::new();
    datasets.insert(
        "import_dirs".into(),
        toml::Value::Array(vec![toml::Value::String(top.display().to_string())]),
    );
    telco
        .config
        .other
        .insert("datasets".into(), toml::Value::Table(datasets));
    telco.save().unwrap();
    let c = Cluster::start(tmp, dirs);
    let tokens = c
        .nodes
        .iter()
        .map(|n| n.store().create_token("admin", TokenRole::Admin).unwrap().1)
        .collect();
    (c, tokens)
}

fn uploads_left(node: &Node) -> Vec<PathBuf> {
    match std::fs::read_dir(node.store().data_dir().join(ferry_node::api::UPLOAD_DIR)) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn dataset_paths_inside_the_node_directory_are_refused() {
    let (c, tokens) = import_cluster();
    for (i, node) in c.nodes.iter().enumerate() {
        let router = ferry_node::api::router(node.clone());
        let key = c.dirs[i].join("identity/key.pem");
        // Through `..` from outside and directly; telco's import dir contains its node dir.
        let around = c.dirs[i].parent().unwrap().join(format!(
            "x/../{}/identity/key.pem",
            if i == 0 { "bank" } else { "telco" }
        ));
        std::fs::create_dir_all(c.dirs[i].parent().unwrap().join("x")).unwrap();
        for path in [&key, &around] {
            let (code, body) = call(
                &router,
                "POST",
                "/api/v1/datasets",
                Some(&tokens[i]),
                Some(json!({"name": "x", "path": path})),
            );
            assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
            let msg = body["error"].as_str().unwrap();
            assert!(msg.contains("inside the node directory"), "{msg}");
            assert!(msg.contains("ferry dataset add NAME --file F"), "{msg}");
            assert!(
                !msg.contains("BEGIN"),
                "no key material in the answer: {msg}"
            );
        }
        // The node's database too.
        let db = c.dirs[i].join("state/ferry.db");
        let (code, _) = call(
            &router,
            "POST",
            "/api/v1/datasets",
            Some(&tokens[i]),
            Some(json!({"name": "x", "path": db})),
        );
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(node.store().list_datasets().unwrap().is_empty());
    }
}

#[cfg(unix)]
#[test]
fn dataset_paths_register_only_inside_import_dirs() {
    let (c, tokens) = import_cluster();
    let top = c.dirs[0].parent().unwrap().to_path_buf();
    let file = top.join("exports/small.csv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, SMALL_CSV).unwrap();

    // bank has no import directories: refused, naming the setting.
    let bank = ferry_node::api::router(c.nodes[0].clone());
    let (code, body) = call(
        &bank,
        "POST",
        "/api/v1/datasets",
        Some(&tokens[0]),
        Some(json!({"name": "small", "path": file})),
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("[datasets] import_dirs"), "{msg}");
    assert!(msg.contains("ferry.toml"), "{msg}");
    assert!(c.nodes[0].store().list_datasets().unwrap().is_empty());

    // telco's import directory holds the file: registered from its resolved path.
    let telco = ferry_node::api::router(c.nodes[1].clone());
    let (code, rec) = call(
        &telco,
        "POST",
        "/api/v1/datasets",
        Some(&tokens[1]),
        Some(json!({"name": "small", "path": file, "label": "y"})),
    );
    assert_eq!(code, StatusCode::OK, "{rec}");
    assert_eq!(rec["rows"], 3);
    // A link in the import directory to the node's key is refused.
    let link = top.join("exports/key.csv");
    std::os::unix::fs::symlink(c.dirs[1].join("identity/key.pem"), &link).unwrap();
    let (code, body) = call(
        &telco,
        "POST",
        "/api/v1/datasets",
        Some(&tokens[1]),
        Some(json!({"name": "linked", "path": link})),
    );
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("inside the node directory")
    );
    let names: Vec<String> = c.nodes[1]
        .store()
        .list_datasets()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["small"]);
}

#[test]
fn an_upload_registers_the_same_rows_as_the_file() {
    let (c, tokens) = import_cluster();
    let node = &c.nodes[0];
    let router = ferry_node::api::router(node.clone());
    // The file name is reduced to one safe component; the extension stays.
    let (code, rec) = upload(
        &router,
        "/api/v1/datasets/uploaded/upload?id_columns=id&label=y&label_kind=binary&description=hi&file_name=..%2F..%2Fsecret%2Fsmall.csv",
        &tokens[0],
        SMALL_CSV.as_bytes(),
        false,
    );
    assert_eq!(code, StatusCode::OK, "{rec}");
    let file = c.dirs[0].parent().unwrap().join("direct.csv");
    std::fs::write(&file, SMALL_CSV).unwrap();
    let mut req = RegisterDataset::new("direct", &file);
    req.id_columns = vec!["id".into()];
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    let direct = node.store().register_dataset(req).unwrap();
    let uploaded = node.store().dataset("uploaded").unwrap();
    assert_eq!(uploaded.rows, direct.rows);
    assert_eq!(uploaded.columns, direct.columns);
    assert_eq!(uploaded.sha256, direct.sha256);
    assert_eq!(uploaded.label_kind, Some(LabelKind::Binary));
    assert_eq!(uploaded.description, "hi");
    assert_eq!(uploaded.path.file_name().unwrap(), "small.csv");
    assert!(
        uploaded
            .path
            .starts_with(node.store().data_dir().join("datasets"))
    );
    assert_eq!(csv_rows(&uploaded.path), csv_rows(&file));
    assert!(uploads_left(node).is_empty(), "{:?}", uploads_left(node));

    // A file the store refuses leaves nothing either, and the error names the upload, not
    // its temporary path.
    let (code, body) = upload(
        &router,
        "/api/v1/datasets/bad/upload?label=target&file_name=small.csv",
        &tokens[0],
        SMALL_CSV.as_bytes(),
        true,
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("target"), "{msg}");
    assert!(!msg.contains(".upload-"), "{msg}");
    assert!(uploads_left(node).is_empty(), "{:?}", uploads_left(node));
    // An empty body and unknown parameters are refused.
    let (code, _) = upload(&router, "/api/v1/datasets/e/upload", &tokens[0], b"", true);
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = upload(
        &router,
        "/api/v1/datasets/e/upload?path=/etc/passwd",
        &tokens[0],
        SMALL_CSV.as_bytes(),
        true,
    );
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(node.store().dataset("e").is_err());
    assert!(uploads_left(node).is_empty());
}

#[test]
fn an_upload_over_the_limit_is_refused_and_leaves_nothing() {
    let (c, tokens) = import_cluster();
    let node = &c.nodes[0];
    let limit = SMALL_CSV.len() as u64;
    let router = ferry_node::api::router_with_limits(
        node.clone(),
        ferry_node::api::ApiLimits {
            max_upload_bytes: limit,
        },
    );
    let big = format!("{SMALL_CSV}d,0,3.5\n");
    for declare_length in [true, false] {
        let (code, body) = upload(
            &router,
            "/api/v1/datasets/big/upload?file_name=big.csv",
            &tokens[0],
            big.as_bytes(),
            declare_length,
        );
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(&format!("larger than {limit} bytes")), "{msg}");
        assert!(node.store().dataset("big").is_err());
        assert!(uploads_left(node).is_empty(), "{:?}", uploads_left(node));
    }
    // Exactly the limit is accepted.
    let (code, rec) = upload(
        &router,
        "/api/v1/datasets/fits/upload",
        &tokens[0],
        SMALL_CSV.as_bytes(),
        false,
    );
    assert_eq!(code, StatusCode::OK, "{rec}");
    assert!(uploads_left(node).is_empty());
    // The default router takes far more than axum's 2 MB body default.
    let router = ferry_node::api::router(node.clone());
    let mut large = String::from("id,x\n");
    for i in 0..200_000 {
        large += &format!("row{i},{}.25\n", i % 97);
    }
    assert!(large.len() > 2 << 20);
    let (code, rec) = upload(
        &router,
        "/api/v1/datasets/large/upload?file_name=large.csv",
        &tokens[0],
        large.as_bytes(),
        true,
    );
    assert_eq!(code, StatusCode::OK, "{rec}");
    assert_eq!(rec["rows"], 200_000);
}

#[test]
fn dataset_names_reserved_for_job_outputs_are_refused() {
    let (c, tokens) = import_cluster();
    let node = &c.nodes[1];
    let router = ferry_node::api::router(node.clone());
    let (code, body) = upload(
        &router,
        "/api/v1/datasets/job-1234/upload",
        &tokens[1],
        SMALL_CSV.as_bytes(),
        true,
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("reserved"),
        "{body}"
    );
    let file = c.dirs[1].parent().unwrap().join("small.csv");
    std::fs::write(&file, SMALL_CSV).unwrap();
    let (code, body) = call(
        &router,
        "POST",
        "/api/v1/datasets",
        Some(&tokens[1]),
        Some(json!({"name": "job-1234", "path": file})),
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("reserved"),
        "{body}"
    );
    assert!(node.store().list_datasets().unwrap().is_empty());
    assert!(uploads_left(node).is_empty());
}

// ------------------------------------------------------------------------------------------
// Components as one trait (issue 12, part 1).

#[test]
fn the_components_endpoint_lists_every_component_with_its_parameter_schema() {
    let c = cluster(&["bank"], true);
    let token = c.nodes[0]
        .store()
        .create_token("reader", TokenRole::ReadOnly)
        .unwrap()
        .1;
    let router = ferry_node::api::router(c.nodes[0].clone());
    let (code, body) = call(&router, "GET", "/api/v1/components", Some(&token), None);
    assert_eq!(code, StatusCode::OK, "{body}");
    let list = body.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let registry: Vec<&str> = ferry_node::components::REGISTRY
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, registry);
    let sb = list
        .iter()
        .find(|c| c["name"] == "hetero_secureboost")
        .unwrap();
    // Generated from the parameter type: defaults, nested HE settings, the model name.
    let props = &sb["params"]["properties"];
    assert_eq!(props["max_depth"]["default"], 3, "{props}");
    assert!(props.get("model_name").is_some());
    assert!(sb["params"].to_string().contains("key_bits"));
    assert!(!sb["params"].to_string().contains("allow_insecure"));
    assert_eq!(sb["inputs"][0]["name"], "train");
    assert_eq!(sb["inputs"][0]["kind"], "dataset");
    assert_eq!(sb["allowed"], true);
    let (code, _) = call(&router, "GET", "/api/v1/components", None, None);
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

#[test]
fn an_input_of_the_wrong_artifact_kind_is_refused_at_submission() {
    let c = cluster(&["bank", "telco"], true);
    let spec = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: stats, component: statistics, inputs: {data: read}}
  - {name: train, component: hetero_lr, inputs: {train: stats}}
"#;
    let e = c.nodes[0].submit(spec).unwrap_err().to_string();
    assert!(
        e.contains("tasks[2].inputs.train")
            && e.contains("takes a Dataset")
            && e.contains("Report"),
        "{e}"
    );
}

#[test]
fn a_continuous_label_trains_a_regression_and_the_job_reports_rmse() {
    // The trial from issue 12: a regression label with default SecureBoost parameters and an
    // evaluation without a kind. Both follow the label now.
    let c = cluster(&["bank", "telco"], true);
    let mut parts = common::vertical_parts(300, &[3, 4], 1.0, 5);
    let guest = &mut parts[0];
    let y: Vec<f64> = (0..guest.n_rows())
        .map(|i| 10.0 * guest.value(i, 0) + 3.0 + (i % 7) as f64)
        .collect();
    guest.labels = Some(y);
    c.register_parts("mydata", &parts, LabelKind::Continuous);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let spec = r#"
parties: {guest: bank, hosts: [telco]}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - {name: train, component: hetero_secureboost, inputs: {train: intersect}, params: {num_trees: 3, he: {key_bits: 1024}}}
  - {name: score, component: predict, inputs: {model: train, data: intersect}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;
    let job = c.nodes[0].submit(spec).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(120));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    let tasks = c.nodes[0].store().tasks(&job).unwrap();
    let eval = tasks.iter().find(|t| t.task == "eval").unwrap();
    let metrics = &eval.outputs.as_ref().unwrap()["metrics"];
    assert_eq!(metrics["kind"], "regression", "{metrics}");
    let rmse = metrics["headline"]["rmse"].as_f64().unwrap();
    let r2 = metrics["headline"]["r2"].as_f64().unwrap();
    assert!(rmse.is_finite() && r2 > 0.5, "rmse {rmse}, r2 {r2}");
}

/// Writes `part` as CSV with a text column `plan` derived from its first feature (missing
/// where that feature is missing), as a telco's raw export would have.
fn write_with_text_column(part: &ferry_data::Dataset, file: &Path) {
    part.write_csv(file).unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        out.push_str(line);
        if i == 0 {
            out.push_str(",plan\n");
            continue;
        }
        let v = part.value(i - 1, 0);
        let plan = if v.is_nan() {
            ""
        } else if v < 0.0 {
            "basic"
        } else {
            "premium"
        };
        out.push_str(&format!(",{plan}\n"));
    }
    std::fs::write(file, out).unwrap();
}

#[test]
fn the_scorecard_template_runs_end_to_end_on_raw_data_with_missing_values_and_text() {
    let c = cluster(&["bank", "telco"], true);
    let parts = vertical(&VerticalSpec {
        rows: 1500,
        features: vec![3, 4],
        coverage: 0.9,
        missing: 0.05,
        seed: 17,
    });
    // The host's part has a text column.
    c.register_parts_with("raw", &parts, LabelKind::Binary, |i, part, file| {
        if i == 0 {
            part.write_csv(file).unwrap();
        } else {
            write_with_text_column(part, file);
        }
    });
    c.nodes[1]
        .store()
        .grant("raw", GrantTarget::Party("bank".into()))
        .unwrap();
    let spec = ferry_node::templates::find("scorecard")
        .unwrap()
        .render(&ferry_node::templates::Fill {
            guest: "bank",
            hosts: &["telco"],
            datasets: &[("bank", "raw"), ("telco", "raw")],
            scheme: "paillier",
        })
        .unwrap()
        // Test keys: each node's policy allows 1024 bits.
        .replace(
            "he: {scheme: paillier}",
            "he: {scheme: paillier, key_bits: 1024}",
        );
    let job = c.nodes[0].submit(&spec).unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(300));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    let outputs = |node: usize, task: &str| -> Value {
        c.nodes[node]
            .store()
            .tasks(&job)
            .unwrap()
            .into_iter()
            .find(|t| t.task == task)
            .and_then(|t| t.outputs)
            .unwrap_or(Value::Null)
    };
    // IV of every feature of both parties at the guest; the text column is among them under
    // an anonymous name, and the telco's real column names never reach the bank.
    let binning = outputs(0, "binning");
    let features = binning["report"]["report"]["features"].as_array().unwrap();
    assert_eq!(features.len(), 3 + 4 + 1, "{features:?}");
    assert!(features.iter().all(|f| f["iv"].as_f64().unwrap() >= 0.0));
    assert!(!binning.to_string().contains("plan"));
    assert!(outputs(1, "binning").to_string().contains("plan"));
    // The held-out evaluation of the card, with its KS table.
    let eval = outputs(0, "eval");
    let headline = &eval["metrics"]["headline"];
    let auc = headline["auc"].as_f64().unwrap();
    // The same bar as the other jobs on this generator's weak signal.
    assert!(auc > 0.6, "held-out {headline}");
    let table = eval["metrics"]["details"]["score_bins"].as_array().unwrap();
    assert!(table.len() >= 5, "{table:?}");
    // Each party keeps the points of its own features; the bank has the base points.
    let bank_card = &outputs(0, "card")["report"]["report"]["card"];
    let telco_card = &outputs(1, "card")["report"]["report"]["card"];
    assert!(bank_card["base_points"].as_f64().unwrap() != 0.0);
    assert_eq!(telco_card["base_points"].as_f64().unwrap(), 0.0);
    assert!(
        outputs(1, "card")["data"].is_null(),
        "only the guest gets scores"
    );
    let scored = c.nodes[0].store().dataset(&format!("{job}-card")).unwrap();
    assert!(scored.rows > 100);
    // Score stability between train and test rows of one population: stable.
    let stability = &outputs(0, "stability")["report"]["report"];
    let points = stability["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "points")
        .unwrap_or_else(|| panic!("no PSI of the points: {stability}"));
    let psi = points["psi"].as_f64().unwrap();
    assert!((0.0..0.25).contains(&psi), "PSI {psi}");
}

#[test]
fn feature_components_refuse_bad_input_naming_the_field_or_column() {
    let c = cluster(&["bank", "telco"], true);
    register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let head = "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}\n";
    // Refused at submission, naming the parameter.
    for (task, expected) in [
        (
            "  - {name: b, component: feature_binning, inputs: {data: read}, params: {binning: {max_bins: 1}}}",
            "max_bins",
        ),
        (
            "  - {name: b, component: feature_binning, inputs: {data: read}, params: {binning: {method: best}}}",
            "method",
        ),
        (
            "  - {name: t, component: feature_transform, inputs: {data: read}, params: {steps: [{kind: clip, lower_quantile: 0.9, upper_quantile: 0.1}]}}",
            "quantile",
        ),
        (
            "  - {name: s, component: scorecard, inputs: {model: read, binning: read, data: read}, params: {pdo: -5}}",
            "inputs",
        ),
    ] {
        let e = c.nodes[0]
            .submit(&format!("{head}{task}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{task}: {e}");
    }
    // Refused when the task runs: a column the data does not have.
    let job = c.nodes[0]
        .submit(&format!(
            "{head}  - {{name: b, component: feature_binning, inputs: {{data: read}}, params: {{he: {{key_bits: 1024}}}}, party_params: {{bank: {{columns: [no_such_column]}}}}}}\n"
        ))
        .unwrap();
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(60));
    assert_eq!(row.status.as_str(), "failed");
    let reason = row.reason.unwrap_or_default();
    assert!(reason.contains("no_such_column"), "{reason}");
    // Nothing was stored for the failed task.
    assert!(c.nodes[0].store().list_models().unwrap().is_empty());
}
