//! Model services between two nodes: deployment with approval, online scores equal to the
//! offline `predict` job's for every id (SecureBoost, LR, LR after a fitted transform), version
//! switch and rollback, a host stopped mid-traffic, and refusals.

mod common;

use common::{Cluster, call, register_data, test_policy, wait_done, wait_for};
use ferry_data::{Dataset, DatasetSpec};
use ferry_node::Node;
use ferry_node::serving::online::{PredictError, PredictRequest};
use ferry_store::{GrantTarget, ModelServiceStatus, RegisterDataset, TokenRole};
use ferry_transport::NodeDir;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const TRAIN: &str = r#"
parties: {guest: bank, hosts: [telco]}
timeout_secs: 120
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - name: sb
    component: hetero_secureboost
    inputs: {train: intersect}
    params: {num_trees: 3, max_depth: 3, he: {key_bits: 1024}, model_name: sb}
  - {name: score_sb, component: predict, inputs: {model: sb, data: intersect}}
  - name: lr
    component: hetero_lr
    inputs: {train: intersect}
    params: {max_epochs: 2, he: {key_bits: 1024}, model_name: lr}
  - {name: score_lr, component: predict, inputs: {model: lr, data: intersect}}
  - {name: t, component: feature_transform, inputs: {data: intersect}, params: {steps: [{kind: standard_scale}], model_name: tf}}
  - name: lrt
    component: hetero_lr
    inputs: {train: t.data}
    params: {max_epochs: 2, he: {key_bits: 1024}, model_name: lrt}
  - {name: score_lrt, component: predict, inputs: {model: lrt, data: t.data}}
"#;

fn cluster(auto_approve: bool) -> Cluster {
    let c = Cluster::pinned(&["bank", "telco"], auto_approve, Some(&test_policy()));
    register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    c
}

fn run(c: &Cluster, spec: &str, approve: bool) -> String {
    let job = c.nodes[0].submit(spec).unwrap();
    if approve {
        wait_for("the proposal", Duration::from_secs(30), || {
            c.nodes[1].store().job(&job).ok()
        });
        c.nodes[1].approve(&job).unwrap();
    }
    let row = wait_done(&c.nodes[0], &job, Duration::from_secs(300));
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    job
}

/// id → score of an offline prediction task's output.
fn offline(node: &Node, job: &str, task: &str) -> HashMap<String, f64> {
    let rec = node.store().dataset(&format!("{job}-{task}")).unwrap();
    let spec = DatasetSpec {
        id_columns: rec.id_columns.clone(),
        exclude: rec.label.clone().into_iter().collect(),
        ..DatasetSpec::default()
    };
    let d = Dataset::read_csv(&rec.path, &spec).unwrap();
    let j = d.feature_names.iter().position(|f| f == "score").unwrap();
    (0..d.n_rows())
        .map(|i| (d.ids[i].clone(), d.row(i)[j]))
        .collect()
}

fn wait_active(node: &Node, name: &str) {
    wait_for(
        &format!("service {name} active on {}", node.party()),
        Duration::from_secs(30),
        || {
            let s = node.store().model_service(name).ok()?;
            assert!(
                !s.status.is_ended(),
                "service {name}: {} {:?}",
                s.status,
                s.reason
            );
            (s.status == ModelServiceStatus::Active).then_some(())
        },
    );
}

fn predict(node: &Node, service: &str, ids: &[String]) -> Result<Vec<Option<f64>>, PredictError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        let r = node.predict_online(
            service,
            PredictRequest {
                ids: Some(chunk.to_vec()),
                ..PredictRequest::default()
            },
            "test",
        )?;
        assert_eq!(r.predictions.len(), chunk.len());
        for (p, id) in r.predictions.iter().zip(chunk) {
            assert_eq!(&p.id, id);
            out.push(p.score);
        }
    }
    Ok(out)
}

/// Every id of the offline output scores the same online, bit for bit.
fn assert_online_equals_offline(node: &Node, service: &str, expected: &HashMap<String, f64>) {
    let mut ids: Vec<String> = expected.keys().cloned().collect();
    ids.sort();
    let got = predict(node, service, &ids).unwrap();
    for (id, score) in ids.iter().zip(got) {
        assert_eq!(score, Some(expected[id]), "service {service}, id {id}");
    }
}

#[test]
fn online_scores_equal_offline_for_every_id_after_approval() {
    let c = cluster(false);
    let job = run(&c, TRAIN, true);
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    let bank_api = ferry_node::api::router(bank.clone());
    let telco_api = ferry_node::api::router(telco.clone());
    let bank_token = bank.store().create_token("t", TokenRole::Admin).unwrap().1;
    let telco_token = telco.store().create_token("t", TokenRole::Admin).unwrap().1;

    // SecureBoost through the API, with the host's dataset named: it waits for the telco's
    // approval (no auto_approve), in the approvals list as a deployment.
    let (status, body) = call(
        &bank_api,
        "POST",
        "/api/v1/services",
        Some(&bank_token),
        Some(json!({"name": "sb-svc", "model": "sb", "dataset": "mydata",
                    "host_datasets": {"telco": "mydata"}})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending_approval");
    let item = wait_for("the deployment to approve", Duration::from_secs(30), || {
        let (_, list) = call(
            &telco_api,
            "GET",
            "/api/v1/approvals",
            Some(&telco_token),
            None,
        );
        list.as_array()?
            .iter()
            .find(|i| i["kind"] == "deployment")
            .cloned()
    });
    assert_eq!(item["requested_by"], "bank");
    let security = item["security"].to_string();
    assert!(
        security.contains("'sb'") && security.contains("learns the ids"),
        "{security}"
    );
    let (status, body) = call(
        &telco_api,
        "POST",
        &format!("/api/v1/jobs/{}/approve", item["id"].as_str().unwrap()),
        Some(&telco_token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    wait_active(bank, "sb-svc");
    let sb = offline(bank, &job, "score_sb");
    assert!(sb.len() > 100, "{} ids scored offline", sb.len());
    assert_online_equals_offline(bank, "sb-svc", &sb);

    // LR without a named host dataset: the telco's approver picks it.
    let lr = bank
        .deploy_model(
            &ferry_node::serving::DeployRequest {
                name: "lr-svc".into(),
                model: "lr".into(),
                dataset: Some("mydata".into()),
                ..Default::default()
            },
            "test",
        )
        .unwrap();
    wait_for(
        "the LR deployment on the telco",
        Duration::from_secs(30),
        || telco.store().find_model_service("lr-svc").ok().flatten(),
    );
    let e = telco
        .approve_deployment("lr-svc", None, "test")
        .unwrap_err();
    assert!(e.to_string().contains("names no dataset"), "{e}");
    telco
        .approve_deployment(&lr.deployment_id, Some("mydata"), "test")
        .unwrap();
    wait_active(bank, "lr-svc");
    assert_online_equals_offline(bank, "lr-svc", &offline(bank, &job, "score_lr"));

    // LR after a fitted transform: each party applies its own part of `tf` to its raw rows.
    let (status, body) = call(
        &bank_api,
        "POST",
        "/api/v1/services",
        Some(&bank_token),
        Some(
            json!({"name": "lrt-svc", "model": "lrt", "dataset": "mydata",
                    "host_datasets": {"telco": "mydata"}, "transform": "tf"}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let pending = wait_for("the lrt deployment", Duration::from_secs(30), || {
        telco.store().find_model_service("lrt-svc").ok().flatten()
    });
    telco.approve_deployment("lrt-svc", None, "test").unwrap();
    assert_eq!(pending.dataset.as_deref(), Some("mydata"));
    wait_active(bank, "lrt-svc");
    let lrt = offline(bank, &job, "score_lrt");
    assert_online_equals_offline(bank, "lrt-svc", &lrt);

    // The guest's features inline (raw values; the service's transform is applied).
    let guest_data = Dataset::read_csv(
        &bank.store().dataset("mydata").unwrap().path,
        &DatasetSpec {
            exclude: vec!["y".into()],
            ..DatasetSpec::default()
        },
    )
    .unwrap();
    let i = (0..guest_data.n_rows())
        .find(|&i| lrt.contains_key(&guest_data.ids[i]))
        .unwrap();
    let features: serde_json::Map<String, serde_json::Value> = guest_data
        .feature_names
        .iter()
        .zip(guest_data.row(i))
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let (status, body) = call(
        &bank_api,
        "POST",
        "/api/v1/services/lrt-svc/predict",
        Some(&bank_token),
        Some(json!({"id": guest_data.ids[i], "features": features})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["predictions"][0]["score"].as_f64(),
        Some(lrt[&guest_data.ids[i]])
    );

    // Ids the telco does not have: SecureBoost takes each host split's missing direction
    // (a score), LR has no missing-value rule (an error for that id naming the telco).
    let telco_ids: std::collections::HashSet<String> = Dataset::read_csv(
        &telco.store().dataset("mydata").unwrap().path,
        &DatasetSpec::default(),
    )
    .unwrap()
    .ids
    .into_iter()
    .collect();
    let only_bank: Vec<String> = guest_data
        .ids
        .iter()
        .filter(|id| !telco_ids.contains(*id))
        .take(5)
        .cloned()
        .collect();
    assert!(
        !only_bank.is_empty(),
        "the data should have ids only the bank has"
    );
    assert!(
        predict(bank, "sb-svc", &only_bank)
            .unwrap()
            .iter()
            .all(|s| s.is_some())
    );
    let r = bank
        .predict_online(
            "lr-svc",
            PredictRequest {
                ids: Some(only_bank.clone()),
                ..PredictRequest::default()
            },
            "test",
        )
        .unwrap();
    for p in &r.predictions {
        assert!(p.score.is_none());
        assert!(p.error.as_deref().unwrap().contains("'telco'"), "{p:?}");
    }

    // Refusals: an unknown service, a batch over the limit, and a deployment naming a
    // dataset of the telco's that is not granted to the bank (refused before anything is
    // stored there).
    let (status, body) = call(
        &bank_api,
        "POST",
        "/api/v1/services/nope/predict",
        Some(&bank_token),
        Some(json!({"id": "x"})),
    );
    assert_eq!(status, 404, "{body}");
    let too_many: Vec<String> = (0..1001).map(|i| format!("id{i}")).collect();
    let (status, body) = call(
        &bank_api,
        "POST",
        "/api/v1/services/sb-svc/predict",
        Some(&bank_token),
        Some(json!({ "ids": too_many })),
    );
    assert_eq!(status, 400, "{body}");
    let secret = c.dirs[1].join("secret.csv");
    std::fs::copy(c.dirs[1].join("mydata.csv"), &secret).unwrap();
    telco
        .store()
        .register_dataset(RegisterDataset::new("secret", &secret))
        .unwrap();
    bank.deploy_model(
        &ferry_node::serving::DeployRequest {
            name: "sneaky".into(),
            model: "sb".into(),
            dataset: Some("mydata".into()),
            host_datasets: HashMap::from([("telco".into(), "secret".into())]),
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    let refused = wait_for("the refusal", Duration::from_secs(30), || {
        let s = bank.store().model_service("sneaky").ok()?;
        (s.status == ModelServiceStatus::Rejected).then_some(s)
    });
    let reason = refused.reason.unwrap();
    assert!(reason.contains("'secret' is not granted"), "{reason}");
    assert!(
        telco
            .store()
            .find_model_service("sneaky")
            .unwrap()
            .is_none()
    );
    // A partner cannot take over a name the telco already serves.
    let e = telco.deploy_model(
        &ferry_node::serving::DeployRequest {
            name: "sb-svc".into(),
            model: "sb".into(),
            ..Default::default()
        },
        "test",
    );
    assert!(e.unwrap_err().to_string().contains("already exists"));

    // The telco counted what it answered (requests and ids), the bank logged its requests.
    let (status, body) = call(
        &telco_api,
        "GET",
        "/api/v1/services/sb-svc",
        Some(&telco_token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["service"]["requests"].as_u64().unwrap() >= 2, "{body}");
    assert!(body["service"]["ids"].as_u64().unwrap() >= sb.len() as u64);
    assert!(body["privacy"].to_string().contains("learns the ids"));
    bank.serving().list().unwrap();
    assert!(
        !bank
            .store()
            .service_requests("sb-svc", 10)
            .unwrap()
            .is_empty()
    );
    // The same log through the API (the console's latency chart): newest first, each entry
    // with its time taken and outcome, the refused batch of 1001 ids among them; `limit`
    // bounds it, and a limit that is not a number is refused.
    let (status, log) = call(
        &bank_api,
        "GET",
        "/api/v1/services/sb-svc/requests",
        Some(&bank_token),
        None,
    );
    assert_eq!(status, 200, "{log}");
    let log = log.as_array().unwrap();
    assert!(log.len() >= 3, "{log:?}");
    assert!(
        log.windows(2)
            .all(|w| w[0]["at"].as_str() >= w[1]["at"].as_str())
    );
    assert!(
        log.iter()
            .all(|e| e["millis"].as_f64().is_some_and(|m| m >= 0.0))
    );
    assert!(log.iter().any(|e| e["outcome"] == "ok"));
    assert!(
        log.iter().any(|e| e["ids"] == 1001 && e["outcome"] != "ok"),
        "{log:?}"
    );
    let (status, one) = call(
        &bank_api,
        "GET",
        "/api/v1/services/sb-svc/requests?limit=1",
        Some(&bank_token),
        None,
    );
    assert_eq!(status, 200, "{one}");
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0], log[0]);
    let (status, body) = call(
        &bank_api,
        "GET",
        "/api/v1/services/sb-svc/requests?limit=many",
        Some(&bank_token),
        None,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(
        &bank_api,
        "GET",
        "/api/v1/services/nope/requests",
        Some(&bank_token),
        None,
    );
    assert_eq!(status, 404);
}

const SB_V1: &str = r#"
parties: {guest: bank, hosts: [telco]}
timeout_secs: 120
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - name: sb
    component: hetero_secureboost
    inputs: {train: intersect}
    params: {num_trees: 2, max_depth: 2, he: {key_bits: 1024}, model_name: sb}
  - {name: score, component: predict, inputs: {model: sb, data: intersect}}
"#;

#[test]
fn versions_switch_and_roll_back_and_a_stopped_host_is_named() {
    let mut c = cluster(true);
    let job1 = run(&c, SB_V1, false);
    let job2 = run(&c, &SB_V1.replace("num_trees: 2", "num_trees: 4"), false);
    let bank = c.nodes[0].clone();
    let v1 = offline(&bank, &job1, "score");
    let v2 = offline(&bank, &job2, "score");
    assert_ne!(v1, v2, "the two versions must score differently");
    bank.deploy_model(
        &ferry_node::serving::DeployRequest {
            name: "scoring".into(),
            model: "sb".into(),
            version: Some(1),
            dataset: Some("mydata".into()),
            host_datasets: HashMap::from([("telco".into(), "mydata".into())]),
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    wait_active(&bank, "scoring");
    assert_online_equals_offline(&bank, "scoring", &v1);

    let rec = bank
        .switch_service("scoring", 2, Duration::from_secs(30))
        .unwrap();
    assert_eq!((rec.version, rec.pending_version), (2, None));
    assert_online_equals_offline(&bank, "scoring", &v2);
    let rec = bank
        .switch_service("scoring", 1, Duration::from_secs(30))
        .unwrap();
    assert_eq!(rec.version, 1);
    assert_online_equals_offline(&bank, "scoring", &v1);

    // The bank registers its dataset again without one id: the table is rebuilt in the
    // background and swapped in; the other ids keep their scores throughout.
    let mut ids_sorted: Vec<String> = v1.keys().cloned().collect();
    ids_sorted.sort();
    let (gone, kept) = (ids_sorted[0].clone(), ids_sorted[1..4].to_vec());
    let rec = bank.store().dataset("mydata").unwrap();
    let text = std::fs::read_to_string(&rec.path).unwrap();
    let file = c.dirs[0].join("mydata-again.csv");
    let kept_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split(',').next() != Some(gone.as_str()))
        .collect();
    assert_eq!(kept_lines.len() + 1, text.lines().count());
    std::fs::write(&file, kept_lines.join("\n") + "\n").unwrap();
    let mut req = RegisterDataset::new("mydata", &file);
    req.label = Some("y".into());
    req.label_kind = ferry_store::LabelKind::Binary;
    req.replace = true;
    bank.store().register_dataset(req).unwrap();
    bank.serving().dataset_changed("mydata");
    wait_for("the rebuilt table", Duration::from_secs(30), || {
        let r = bank
            .predict_online(
                "scoring",
                PredictRequest {
                    id: Some(gone.clone()),
                    ..PredictRequest::default()
                },
                "test",
            )
            .unwrap();
        r.predictions[0]
            .error
            .as_ref()
            .filter(|e| e.contains("not in this node's feature table"))
            .cloned()
    });
    for (id, s) in kept.iter().zip(predict(&bank, "scoring", &kept).unwrap()) {
        assert_eq!(s, Some(v1[id]), "{id}");
    }

    // The telco stops: a request fails naming it, never a partial score.
    let ids = kept.clone();
    c.nodes[1].shutdown();
    let e = predict(&bank, "scoring", &ids).unwrap_err();
    assert!(
        matches!(
            &e,
            PredictError::Timeout { party, .. } | PredictError::Host { party, .. }
                if party.as_str() == "telco"
        ),
        "{e}"
    );
    // It comes back (same directory and port): the service resumes with the same scores.
    let telco = Node::start(NodeDir::open(&c.dirs[1]).unwrap()).unwrap();
    c.nodes[1] = telco;
    let scores = wait_for("the service to resume", Duration::from_secs(60), || {
        predict(&bank, "scoring", &ids).ok()
    });
    for (id, s) in ids.iter().zip(scores) {
        assert_eq!(s, Some(v1[id]));
    }
    assert_eq!(
        c.nodes[1].store().model_service("scoring").unwrap().version,
        1,
        "the telco restored the version that answers"
    );

    // Undeploy on the guest: the telco is told, predictions are refused.
    bank.undeploy_service("scoring", "done").unwrap();
    let telco: &Arc<Node> = &c.nodes[1];
    wait_for("the telco to undeploy", Duration::from_secs(30), || {
        let s = telco.store().model_service("scoring").ok()?;
        (s.status == ModelServiceStatus::Undeployed).then_some(())
    });
    assert!(matches!(
        predict(&bank, "scoring", &ids),
        Err(PredictError::Unavailable(_))
    ));
}
