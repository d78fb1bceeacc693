//! Partners changed on running nodes through the API: a partner added at run time takes part
//! in a job without a restart; a rotation keeps the partnership working (before and after a
//! restart within the overlap); a removed partner is cut off at once and its unfinished jobs
//! are cancelled with the reason.

mod common;

use axum::http::StatusCode;
use common::{Cluster, call};
use ferry_context::PartyId;
use ferry_node::Node;
use ferry_store::{GrantTarget, JobStatus, TokenRole};
use ferry_transport::{Identity, NodeDir};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const PSI_JOB: &str = r#"
name: partner-job
parties: {guest: bank, hosts: [telco]}
timeout_secs: 60
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
"#;

/// Two node directories that do not know each other yet.
fn strangers(root: &Path, auto_approve: [bool; 2]) -> Vec<PathBuf> {
    ["bank", "telco"]
        .iter()
        .zip(auto_approve)
        .map(|(n, auto)| {
            let fed = format!("127.0.0.1:{}", common::free_port());
            let api = format!("127.0.0.1:{}", common::free_port());
            let mut d =
                NodeDir::init(root.join(n), &PartyId::new(*n).unwrap(), &fed, &api).unwrap();
            d.config.auto_approve = auto;
            d.config
                .other
                .insert("policy".into(), common::test_policy().into());
            d.save().unwrap();
            d.root().to_path_buf()
        })
        .collect()
}

fn cert_pem(dir: &Path) -> String {
    let d = NodeDir::open(dir).unwrap();
    std::fs::read_to_string(d.root().join(&d.config.cert_file)).unwrap()
}

fn fed_addr(dir: &Path) -> String {
    NodeDir::open(dir).unwrap().config.federation_listen
}

/// Pins `other` on `node` through the API.
fn add(node: &Arc<Node>, token: &str, name: &str, other: &Path) -> (StatusCode, Value) {
    let api = ferry_node::api::router(node.clone());
    call(
        &api,
        "POST",
        "/api/v1/partners",
        Some(token),
        Some(json!({"name": name, "addr": fed_addr(other), "cert_pem": cert_pem(other)})),
    )
}

fn admin(node: &Node) -> String {
    node.store()
        .create_token("admin", TokenRole::Admin)
        .unwrap()
        .1
}

fn run_psi(c: &Cluster) -> String {
    let job = c.nodes[0].submit(PSI_JOB).unwrap();
    let row = common::wait_done(&c.nodes[0], &job, Duration::from_secs(60));
    assert_eq!(row.status, JobStatus::Succeeded, "{:?}", row.reason);
    job
}

fn partner_names(node: &Arc<Node>, token: &str) -> Vec<String> {
    let (status, list) = call(
        &ferry_node::api::router(node.clone()),
        "GET",
        "/api/v1/partners",
        Some(token),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_partner_added_at_run_time_joins_a_job_and_a_removed_one_is_cut_off_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = strangers(tmp.path(), [true, false]);
    let c = Cluster::start(tmp, dirs.clone());
    common::register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    let (bank_token, telco_token) = (admin(bank), admin(telco));

    // Strangers: the bank's job cannot reach the telco.
    assert!(partner_names(bank, &bank_token).is_empty());
    let Err(err) = bank.run_query("telco", "svc", vec![vec!["1".into()]], "test") else {
        panic!("a stranger was queried");
    };
    assert!(err.to_string().contains("not a partner"), "{err}");

    // Each pins the other on its running node.
    let (status, entry) = add(bank, &bank_token, "telco", &dirs[1]);
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["name"], "telco");
    let (status, _) = add(telco, &telco_token, "bank", &dirs[0]);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(partner_names(bank, &bank_token), vec!["telco"]);
    // Pinned but nothing heard from it yet: not connected (the console's overview).
    let listed = bank.partner_list().unwrap();
    assert_eq!(listed[0].last_heard_secs, None);
    assert!(!listed[0].connected);
    // Adding the same name again is refused (that is a rotation), and nothing changes.
    let (status, err) = add(bank, &bank_token, "telco", &dirs[1]);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"].as_str().unwrap().contains("rotate"), "{err}");
    // A modeller may not change partners.
    let modeller = bank.store().create_token("m", TokenRole::User).unwrap().1;
    let (status, _) = add(bank, &modeller, "intruder", &dirs[1]);
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A job between them runs without a restart (the telco approves it).
    let job = bank.submit(PSI_JOB).unwrap();
    common::wait_for("the telco to see the job", Duration::from_secs(20), || {
        telco.store().job(&job).ok()
    });
    telco.approve(&job).unwrap();
    let row = common::wait_done(bank, &job, Duration::from_secs(60));
    assert_eq!(row.status, JobStatus::Succeeded, "{:?}", row.reason);
    // After working together the telco is connected, heard from within the liveness window.
    let (status, list) = call(
        &ferry_node::api::router(bank.clone()),
        "GET",
        "/api/v1/partners",
        Some(&bank_token),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list[0]["connected"], json!(true), "{list}");
    let secs = list[0]["last_heard_secs"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&secs), "{list}");

    // A second job waits for the telco's approval when the bank removes the telco.
    let waiting = bank.submit(PSI_JOB).unwrap();
    common::wait_for("the telco to see the job", Duration::from_secs(20), || {
        telco.store().job(&waiting).ok()
    });
    let api = ferry_node::api::router(bank.clone());
    let (status, answer) = call(
        &api,
        "DELETE",
        "/api/v1/partners/telco",
        Some(&bank_token),
        Some(json!({"reason": "contract ended"})),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["cancelled_jobs"], json!([waiting]));
    let row = bank.store().job(&waiting).unwrap();
    assert_eq!(row.status, JobStatus::Cancelled);
    let reason = row.reason.unwrap_or_default();
    assert!(
        reason.contains("partner 'telco' was removed") && reason.contains("contract ended"),
        "{reason}"
    );
    assert!(partner_names(bank, &bank_token).is_empty());
    assert!(!bank.is_partner(&PartyId::new("telco").unwrap()));
    // Its certificate is kept for the record; ferry.toml no longer lists it.
    let removed = dirs[0].join("peers").join("removed");
    assert_eq!(std::fs::read_dir(&removed).unwrap().count(), 1);
    assert!(NodeDir::open(&dirs[0]).unwrap().config.peers.is_empty());
    // Removing it again: not found.
    let (status, _) = call(
        &api,
        "DELETE",
        "/api/v1/partners/telco",
        Some(&bank_token),
        None,
    );
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The telco still trusts the bank, but what it sends now is refused at the handshake: its
    // proposal never reaches the bank.
    let before = bank.transport().refusals().len();
    let reverse = PSI_JOB
        .replace("guest: bank, hosts: [telco]", "guest: telco, hosts: [bank]")
        .replace(
            "bank: {dataset: mydata}, telco: {dataset: mydata}",
            "telco: {dataset: mydata}, bank: {dataset: mydata}",
        );
    let proposed = telco.submit(&reverse).unwrap();
    common::wait_for(
        "the bank to refuse the telco's connection",
        Duration::from_secs(20),
        || (bank.transport().refusals().len() > before).then_some(()),
    );
    assert!(
        bank.transport()
            .refusals()
            .iter()
            .any(|l| l.contains("'telco'")),
        "{:?}",
        bank.transport().refusals()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        bank.store().job(&proposed).is_err(),
        "a removed partner's proposal reached the node"
    );
}

#[test]
fn a_rotation_keeps_the_partnership_working_across_a_restart_within_the_overlap() {
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&common::test_policy()));
    common::register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let token = admin(&c.nodes[0]);
    let old_fingerprint = NodeDir::open(&c.dirs[0]).unwrap().config.peers[0]
        .fingerprint
        .clone();

    // The telco announces a new key (it has not switched to it yet).
    let next = Identity::generate(&PartyId::new("telco").unwrap()).unwrap();
    let api = ferry_node::api::router(c.nodes[0].clone());
    let (status, view) = call(
        &api,
        "POST",
        "/api/v1/partners/telco/rotate",
        Some(&token),
        Some(json!({"cert_pem": next.cert_pem, "overlap_hours": 2})),
    );
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["previous_fingerprint"], json!(old_fingerprint));
    assert_ne!(view["fingerprint"], json!(old_fingerprint));
    assert!(view["previous_valid_until"].is_string(), "{view}");
    // A bad overlap or a certificate that is not one are refused.
    for body in [
        json!({"cert_pem": next.cert_pem, "overlap_hours": -1}),
        json!({"cert_pem": next.cert_pem, "overlap_hours": 100000}),
        json!({"cert_pem": "not a certificate"}),
    ] {
        let (status, err) = call(
            &api,
            "POST",
            "/api/v1/partners/telco/rotate",
            Some(&token),
            Some(body),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    }

    // The telco still uses its old key: jobs go on.
    run_psi(&c);

    // The bank restarts within the overlap: the previous certificate is restored from
    // ferry.toml, and jobs still go on.
    let Cluster { tmp, nodes, dirs } = c;
    for n in &nodes {
        n.shutdown();
    }
    drop(nodes);
    let c = Cluster::start(tmp, dirs);
    let listed = c.nodes[0].partner_list().unwrap();
    assert_eq!(
        listed[0].previous_fingerprint.as_deref(),
        Some(old_fingerprint.as_str())
    );
    run_psi(&c);
}

/// The partner `node` lists first, as `GET /api/v1/partners` shows it.
fn first_partner(node: &Arc<Node>, token: &str) -> Value {
    let (status, list) = call(
        &ferry_node::api::router(node.clone()),
        "GET",
        "/api/v1/partners",
        Some(token),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{list}");
    list[0].clone()
}

#[test]
fn idle_partners_are_kept_alive_and_one_that_stops_is_shown_unreachable_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(
        tmp.path(),
        &["bank", "telco"],
        true,
        Some(&common::test_policy()),
    );
    for d in &dirs {
        let mut nd = NodeDir::open(d).unwrap();
        let liveness: toml::Table =
            toml::from_str("window_secs = 3\nheartbeat_secs = 0.5").unwrap();
        nd.config.other.insert("liveness".into(), liveness.into());
        nd.save().unwrap();
    }
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    let bank_token = admin(&bank);
    let telco_token = admin(&telco);

    // No job between them, yet each shows the other connected, heard from just now.
    common::wait_for(
        "both to show the other connected",
        Duration::from_secs(5),
        || {
            let (b, t) = (
                first_partner(&bank, &bank_token),
                first_partner(&telco, &telco_token),
            );
            (b["connected"] == json!(true) && t["connected"] == json!(true)).then_some(())
        },
    );
    assert!(bank.store().list_jobs().unwrap().is_empty());
    let seen = first_partner(&bank, &bank_token);
    assert_eq!(seen["name"], json!("telco"), "{seen}");
    assert!(seen["last_heard_secs"].as_f64().unwrap() < 3.0, "{seen}");
    assert!(seen.get("reachable_error").is_none(), "{seen}");

    // The telco stops: within the window the bank shows it not connected, and why.
    telco.shutdown();
    drop(telco);
    let gone = common::wait_for(
        "the bank to see the telco gone",
        Duration::from_secs(5),
        || {
            let p = first_partner(&bank, &bank_token);
            (p["connected"] == json!(false) && p["reachable_error"].is_string()).then_some(p)
        },
    );
    let reason = gone["reachable_error"].as_str().unwrap().to_lowercase();
    assert!(
        reason.contains("refused") || reason.contains("connect"),
        "{gone}"
    );

    // It comes back: connected again, the reason gone.
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    common::wait_for(
        "the bank to see the telco back",
        Duration::from_secs(8),
        || {
            let p = first_partner(&bank, &bank_token);
            (p["connected"] == json!(true) && p.get("reachable_error").is_none()).then_some(())
        },
    );
    bank.shutdown();
    telco.shutdown();
}
