//! The action log between two pinned nodes: API actions are recorded with their actor,
//! object, address and outcome; what partners make a node do (proposals, jobs ending) is
//! recorded too; checkpoints reach the partner, which keeps them after checking the signature
//! with the certificate it pinned, and refuses forged ones.

mod common;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use ferry_context::{PartyId, Transport};
use ferry_node::node::CONTROL_SESSION;
use ferry_node::{Control, Node};
use ferry_store::{ActionEntry, ActionQuery, GrantTarget, Outcome, RegisterDataset, TokenRole};
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Pair {
    _tmp: tempfile::TempDir,
    bank: Arc<Node>,
    telco: Arc<Node>,
}

/// Bank and telco, pinned to each other, approving proposals automatically; `audit_toml` is
/// the bank's `[audit]` table.
fn pair(audit_toml: &str) -> Pair {
    pair_with(audit_toml, None)
}

/// [`pair`], with `crypto_toml` as the bank's `[crypto]` table.
fn pair_with(audit_toml: &str, crypto_toml: Option<&str>) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], true, None);
    let mut bank_dir = NodeDir::open(&dirs[0]).unwrap();
    let audit: toml::Table = toml::from_str(audit_toml).unwrap();
    bank_dir.config.other.insert("audit".into(), audit.into());
    if let Some(crypto) = crypto_toml {
        let crypto: toml::Table = toml::from_str(crypto).unwrap();
        bank_dir.config.other.insert("crypto".into(), crypto.into());
    }
    bank_dir.save().unwrap();
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    for (node, dir) in [(&bank, &dirs[0]), (&telco, &dirs[1])] {
        let file = dir.join("rows.csv");
        std::fs::write(&file, "id,x1\na,1\nb,2\nc,3\n").unwrap();
        node.store()
            .register_dataset(RegisterDataset::new("rows", &file))
            .unwrap();
    }
    telco
        .store()
        .grant("rows", GrantTarget::Party("bank".into()))
        .unwrap();
    Pair {
        _tmp: tmp,
        bank,
        telco,
    }
}

/// One request through the router; `from` becomes the client's address as `ferry serve`
/// passes it (`ConnectInfo`).
fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
    from: Option<&str>,
) -> (StatusCode, Value) {
    let mut headers = common::bearer(token);
    if body.is_none() {
        headers.push(("Content-Length", "0".into()));
    }
    let mut req = common::request(method, uri, &headers, body);
    if let Some(addr) = from {
        req.extensions_mut()
            .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    }
    let a = common::oneshot(router, req);
    let body = serde_json::from_slice(&a.bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&a.bytes).into_owned()));
    (a.status, body)
}

fn entries(node: &Node) -> Vec<ActionEntry> {
    node.store().actions(&ActionQuery::default()).unwrap()
}

fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::wait_for(what, Duration::from_secs(60), f)
}

const SPEC: &str = "parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: rows}, telco: {dataset: rows}}}
";

#[test]
fn api_actions_are_recorded_with_actor_object_address_and_outcome() {
    let p = pair("");
    let router = ferry_node::api::router(p.bank.clone());
    let (_, ops) = p
        .bank
        .store()
        .create_token("ops", TokenRole::Admin)
        .unwrap();
    let (_, viewer) = p
        .bank
        .store()
        .create_token("viewer", TokenRole::ReadOnly)
        .unwrap();

    // A failed action: its status and error message are the outcome.
    let (code, _) = call(
        &router,
        "POST",
        "/api/v1/datasets/missing/grants",
        &ops,
        Some(json!({"party": "telco"})),
        Some("10.1.2.3:50123"),
    );
    assert_eq!(code, StatusCode::NOT_FOUND);
    // A successful one.
    let (code, _) = call(
        &router,
        "POST",
        "/api/v1/datasets/rows/grants",
        &ops,
        Some(json!({"party": "telco"})),
        None,
    );
    assert_eq!(code, StatusCode::OK);
    // Reads are not actions; a request refused for lack of permission is one (its outcome the
    // refusal).
    assert_eq!(
        call(&router, "GET", "/api/v1/datasets", &ops, None, None).0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &router,
            "DELETE",
            "/api/v1/datasets/rows",
            &viewer,
            None,
            None
        )
        .0,
        StatusCode::FORBIDDEN
    );
    // A token's secret, answered once, is never recorded.
    let (code, created) = call(
        &router,
        "POST",
        "/api/v1/tokens",
        &ops,
        Some(json!({"name": "ci", "role": "user"})),
        None,
    );
    assert_eq!(code, StatusCode::OK);
    let secret = created["secret"].as_str().unwrap().to_string();
    // A job submitted through the API names the job it created.
    let (code, submitted) = call(
        &router,
        "POST",
        "/api/v1/jobs",
        &ops,
        Some(json!({"spec": SPEC})),
        None,
    );
    assert_eq!(code, StatusCode::OK, "{submitted}");
    let job_id = submitted["job_id"].as_str().unwrap().to_string();

    let log = entries(&p.bank);
    let api: Vec<&ActionEntry> = log
        .iter()
        .filter(|e| e.action.contains("/api/v1"))
        .collect();
    assert_eq!(api.len(), 5, "{api:#?}");
    let failed = api[0];
    assert_eq!(failed.actor, "token:ops");
    assert_eq!(failed.action, "POST /api/v1/datasets/{name}/grants");
    assert_eq!(failed.object, "name=missing; party=telco");
    assert_eq!(failed.address, "10.1.2.3:50123");
    assert_eq!(failed.outcome, Outcome::Error);
    assert_eq!(failed.status, Some(404));
    assert!(
        failed
            .detail
            .as_deref()
            .unwrap()
            .contains("no dataset named 'missing'"),
        "{failed:?}"
    );
    let granted = api[1];
    assert_eq!(
        (
            granted.outcome,
            granted.status,
            granted.object.as_str(),
            granted.address.as_str()
        ),
        (Outcome::Ok, Some(200), "name=rows; party=telco", "unknown")
    );
    let refused = api[2];
    assert_eq!(
        (
            refused.actor.as_str(),
            refused.action.as_str(),
            refused.outcome,
            refused.status
        ),
        (
            "token:viewer",
            "DELETE /api/v1/datasets/{name}",
            Outcome::Error,
            Some(403)
        )
    );
    assert_eq!(refused.object, "path=/api/v1/datasets/rows");
    assert_eq!(api[3].action, "POST /api/v1/tokens");
    assert_eq!(api[3].object, "name=ci; role=user");
    assert_eq!(api[4].action, "POST /api/v1/jobs");
    assert_eq!(api[4].object, format!("job_id={job_id}"));
    let everything = serde_json::to_string(&log).unwrap();
    assert!(
        !everything.contains(&secret),
        "a token secret reached the log"
    );

    // What the partner made each node do: the telco accepted the bank's proposal, and the job
    // ended on both nodes.
    let on_bank = wait_for("the job's end on the bank", finished_of(&p.bank, &job_id));
    let on_telco = wait_for("the job's end on the telco", finished_of(&p.telco, &job_id));
    for e in [&on_bank, &on_telco] {
        assert_eq!(
            (e.actor.as_str(), e.outcome),
            ("node", Outcome::Ok),
            "{e:?}"
        );
        assert_eq!(e.detail.as_deref(), Some("succeeded"));
    }
    let proposal = entries(&p.telco)
        .into_iter()
        .find(|e| e.action == "job.propose")
        .unwrap();
    assert_eq!(proposal.actor, "party:bank");
    assert_eq!(proposal.object, format!("job={job_id}"));
    assert_eq!(proposal.address, "federation");
    assert_eq!(proposal.detail.as_deref(), Some("accepted automatically"));

    // A proposal the telco refuses (its dataset is not granted to the bank): refused there,
    // failed here.
    let refused_spec = SPEC.replace("telco: {dataset: rows}", "telco: {dataset: ungranted}");
    let refused = p.bank.submit(&refused_spec).unwrap();
    let on_bank = wait_for(
        "the refused job's end on the bank",
        finished_of(&p.bank, &refused),
    );
    assert_eq!(on_bank.outcome, Outcome::Error);
    assert!(
        on_bank.detail.as_deref().unwrap().starts_with("failed: "),
        "{on_bank:?}"
    );
    let refusal = entries(&p.telco)
        .into_iter()
        .find(|e| e.action == "job.propose" && e.object == format!("job={refused}"))
        .unwrap();
    assert_eq!(
        (refusal.actor.as_str(), refusal.outcome),
        ("party:bank", Outcome::Error)
    );
    assert!(
        refusal.detail.as_deref().unwrap().contains("ungranted"),
        "{refusal:?}"
    );

    // A failed sign-in is recorded with the name tried, never the password.
    p.bank
        .store()
        .create_user(
            "lin",
            &[ferry_store::UserRole::Auditor],
            "a long enough password",
        )
        .unwrap();
    let (code, _) = call(
        &router,
        "POST",
        "/api/v1/session",
        "",
        Some(json!({"name": "lin", "password": "not her password"})),
        Some("10.9.8.7:40000"),
    );
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let sign_in = entries(&p.bank)
        .into_iter()
        .find(|e| e.action == "POST /api/v1/session")
        .unwrap();
    assert_eq!(
        (
            sign_in.actor.as_str(),
            sign_in.object.as_str(),
            sign_in.address.as_str()
        ),
        ("anonymous", "name=lin", "10.9.8.7:40000")
    );
    assert_eq!(
        (sign_in.outcome, sign_in.status),
        (Outcome::Error, Some(401))
    );
    assert!(
        !serde_json::to_string(&entries(&p.bank))
            .unwrap()
            .contains("not her password")
    );

    // The log reads back through the API and verifies.
    let (code, listed) = call(
        &router,
        "GET",
        "/api/v1/audit?from=2000-01-01",
        &ops,
        None,
        None,
    );
    assert_eq!(code, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), entries(&p.bank).len());
    let (code, report) = call(&router, "GET", "/api/v1/audit/verify", &ops, None, None);
    assert_eq!(code, StatusCode::OK);
    assert_eq!(report["ok"], json!(true), "{report}");
    let (code, csv) = call(
        &router,
        "GET",
        "/api/v1/audit/export?format=csv",
        &ops,
        None,
        None,
    );
    assert_eq!(code, StatusCode::OK);
    let csv = csv.as_str().unwrap().to_string();
    assert!(
        csv.starts_with("seq,at,actor,action,object,address,outcome,status,detail"),
        "{csv}"
    );
    assert!(
        csv.contains("token:ops,POST /api/v1/datasets/{name}/grants"),
        "{csv}"
    );
    let (code, bad) = call(
        &router,
        "GET",
        "/api/v1/audit?from=yesterday",
        &ops,
        None,
        None,
    );
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(bad["error"].as_str().unwrap().contains("'from'"), "{bad}");
    // The read-only token may not read the audit (that is the auditor's).
    assert_eq!(
        call(&router, "GET", "/api/v1/audit", &viewer, None, None).0,
        StatusCode::FORBIDDEN
    );
}

fn finished_of<'a>(node: &'a Node, job: &'a str) -> impl FnMut() -> Option<ActionEntry> + 'a {
    move || {
        entries(node)
            .into_iter()
            .find(|e| e.action == "job.finish" && e.object == format!("job={job}"))
    }
}

#[test]
fn checkpoints_reach_the_partner_which_keeps_only_genuine_ones() {
    // A checkpoint every 3 entries.
    let p = pair("checkpoint_every_entries = 3\n");
    let router = ferry_node::api::router(p.bank.clone());
    let (_, ops) = p
        .bank
        .store()
        .create_token("ops", TokenRole::Admin)
        .unwrap();
    for party in ["telco", "insurer", "reinsurer"] {
        call(
            &router,
            "POST",
            "/api/v1/datasets/rows/grants",
            &ops,
            Some(json!({"party": party})),
            None,
        );
    }
    let kept = wait_for("the bank's automatic checkpoint at the telco", || {
        let kept = p.telco.store().partner_checkpoints(Some("bank")).unwrap();
        (!kept.is_empty()).then_some(kept)
    });
    assert_eq!(kept[0].checkpoint.seq, 3);
    assert_eq!(
        kept[0].checkpoint.hash,
        entries(&p.bank)[2].hash,
        "the checkpoint is of the bank's third entry"
    );

    // Forged ones, sent over the bank's own pinned link: another party's, and the bank's with
    // an edited hash. Then a genuine one on demand; the telco handles one partner's control
    // messages in order, so once that is kept, the forged ones were refused.
    let telco = PartyId::new("telco").unwrap();
    let mut forged = kept[0].checkpoint.clone();
    forged.hash = "ab".repeat(32);
    let mut other = kept[0].checkpoint.clone();
    other.party = "insurer".into();
    for cp in [forged, other] {
        p.bank
            .transport()
            .send(
                CONTROL_SESSION,
                &telco,
                "control",
                serde_json::to_vec(&Control::AuditCheckpoint { checkpoint: cp }).unwrap(),
            )
            .unwrap();
    }
    call(
        &router,
        "DELETE",
        "/api/v1/datasets/rows/grants",
        &ops,
        Some(json!({"party": "reinsurer"})),
        None,
    );
    let (code, sent) = call(
        &router,
        "POST",
        "/api/v1/audit/checkpoint",
        &ops,
        None,
        None,
    );
    assert_eq!(code, StatusCode::OK, "{sent}");
    assert_eq!(sent["sent_to"], json!(["telco"]));
    let seq = sent["checkpoint"]["seq"].as_u64().unwrap();
    assert_eq!(seq, 4, "{sent}");
    let kept = wait_for("the on-demand checkpoint at the telco", || {
        let kept = p.telco.store().partner_checkpoints(None).unwrap();
        kept.iter().any(|k| k.checkpoint.seq == seq).then_some(kept)
    });
    assert_eq!(
        kept.len(),
        2,
        "only the genuine checkpoints are kept: {kept:#?}"
    );
    assert!(kept.iter().all(|k| k.checkpoint.party == "bank"));

    // The telco's copies check the bank's chain: it verifies now …
    let held: Vec<ferry_store::HeldCheckpoint> = kept
        .iter()
        .map(|k| ferry_store::HeldCheckpoint {
            checkpoint: k.checkpoint.clone(),
            holder: "telco".into(),
        })
        .collect();
    assert!(p.bank.store().verify_actions(&held).unwrap().ok);
    // … and the checkpoints partners sent are listed by the API.
    let telco_router = ferry_node::api::router(p.telco.clone());
    let (_, admin) = p
        .telco
        .store()
        .create_token("ops", TokenRole::Admin)
        .unwrap();
    let (code, listed) = call(
        &telco_router,
        "GET",
        "/api/v1/audit/checkpoints?partner=bank",
        &admin,
        None,
        None,
    );
    assert_eq!(code, StatusCode::OK);
    assert_eq!(listed["received"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["party"], json!("telco"));
}

#[test]
fn a_gm_node_signs_checkpoints_with_sm2_and_the_partner_checks_the_key_binding() {
    let p = pair_with("", Some("suite = \"gm\"\n"));
    let router = ferry_node::api::router(p.bank.clone());
    let (_, ops) = p
        .bank
        .store()
        .create_token("ops", TokenRole::Admin)
        .unwrap();
    let grant = |party: &str| {
        call(
            &router,
            "POST",
            "/api/v1/datasets/rows/grants",
            &ops,
            Some(json!({"party": party})),
            None,
        )
    };
    let checkpoint_now = || {
        let (code, sent) = call(
            &router,
            "POST",
            "/api/v1/audit/checkpoint",
            &ops,
            None,
            None,
        );
        assert_eq!(code, StatusCode::OK, "{sent}");
        sent
    };
    grant("telco");
    let sent = checkpoint_now();
    assert_eq!(sent["sent_to"], json!(["telco"]));
    assert_eq!(sent["checkpoint"]["algorithm"], "sm2-sm3", "{sent}");
    assert_eq!(
        sent["checkpoint"]["sm2_key"]["public_key"]
            .as_str()
            .map(str::len),
        Some(130),
        "{sent}"
    );
    let kept = wait_for("the bank's SM2 checkpoint at the telco", || {
        let kept = p.telco.store().partner_checkpoints(Some("bank")).unwrap();
        (!kept.is_empty()).then_some(kept)
    });
    let genuine = kept[0].checkpoint.clone();
    assert_eq!(genuine.algorithm, ferry_store::SignatureAlgorithm::Sm2Sm3);
    assert_eq!(serde_json::to_value(&genuine).unwrap(), sent["checkpoint"]);

    // Forged ones over the bank's own pinned link: the binding signed by the telco's identity
    // key (not the one pinned for the bank), and a tampered body. Then a genuine one; once
    // that is kept, the forged ones were handled (one partner's messages are in order).
    let telco_key = NodeDir::open(p.telco.dir().root())
        .unwrap()
        .identity()
        .unwrap()
        .key_pem;
    let key = genuine.sm2_key.clone().unwrap();
    let mut wrong_binding = genuine.clone();
    wrong_binding.sm2_key.as_mut().unwrap().signature =
        ferry_store::ModelSigner::from_pem(&telco_key)
            .unwrap()
            .sign(&ferry_store::actions::sm2_key_binding_statement(
                "bank",
                &key.public_key,
            ))
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    let mut tampered = genuine.clone();
    tampered.seq += 1;
    tampered.hash = "cd".repeat(32);
    let telco = PartyId::new("telco").unwrap();
    for cp in [wrong_binding, tampered] {
        p.bank
            .transport()
            .send(
                CONTROL_SESSION,
                &telco,
                "control",
                serde_json::to_vec(&Control::AuditCheckpoint { checkpoint: cp }).unwrap(),
            )
            .unwrap();
    }
    grant("insurer");
    let seq = checkpoint_now()["checkpoint"]["seq"].as_u64().unwrap();
    let kept = wait_for("the second SM2 checkpoint at the telco", || {
        let kept = p.telco.store().partner_checkpoints(None).unwrap();
        kept.iter().any(|k| k.checkpoint.seq == seq).then_some(kept)
    });
    assert_eq!(
        kept.len(),
        2,
        "only genuine checkpoints are kept: {kept:#?}"
    );
    assert_eq!(kept[0].checkpoint, genuine);
    assert!(kept.iter().all(|k| {
        k.checkpoint.algorithm == ferry_store::SignatureAlgorithm::Sm2Sm3
            && k.checkpoint.sm2_key.as_ref().map(|k| &k.public_key) == Some(&key.public_key)
    }));
    // What the telco kept checks the bank's chain.
    let held: Vec<ferry_store::HeldCheckpoint> = kept
        .iter()
        .map(|k| ferry_store::HeldCheckpoint {
            checkpoint: k.checkpoint.clone(),
            holder: "telco".into(),
        })
        .collect();
    let report = p.bank.store().verify_actions(&held).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checkpoints_checked, 4);

    // An own SM2 checkpoint edited in the database: `GET /audit/verify` names it.
    let db = p.bank.dir().root().join("state/ferry.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE audit_checkpoints SET signed_at = '2000-01-01T00:00:00.000Z' WHERE seq = ?1",
            [i64::try_from(genuine.seq).unwrap()],
        )
        .unwrap();
    let (code, report) = call(&router, "GET", "/api/v1/audit/verify", &ops, None, None);
    assert_eq!(code, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_problem"]["kind"], "bad_signature", "{report}");
    assert_eq!(report["first_problem"]["seq"], genuine.seq, "{report}");
}
