//! A partner node restarts while this node keeps running: control messages and queries flow
//! again between the two (the transport notices the partner's new incarnation and starts its
//! sessions afresh instead of refusing or silently dropping their messages).

mod common;

use ferry_node::Node;
use ferry_store::{GrantTarget, QueryStatus, RegisterDataset};
use ferry_transport::NodeDir;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SUBSCRIBERS: &str = "\
phone,tenure_months,city
13800000001,24,Beijing
13800000002,3,Shanghai
13800000003,120,Shenzhen
";

const CUSTOMERS: &str = "\
phone,income
13800000001,5000
13800000003,7000
13800000009,1000
";

fn register(node: &Node, dir: &Path, name: &str, csv: &str) {
    let file = dir.join(format!("{name}-input.csv"));
    std::fs::write(&file, csv).unwrap();
    let mut req = RegisterDataset::new(name, &file);
    req.id_columns = vec!["phone".into()];
    node.store().register_dataset(req).unwrap();
}

fn publish(node: &Node) {
    node.queries()
        .publish(
            ferry_store::NewQueryService {
                name: "attrs".into(),
                dataset: "subscribers".into(),
                key_columns: vec!["phone".into()],
                value_columns: vec!["tenure_months".into(), "city".into()],
                description: String::new(),
            },
            true,
        )
        .unwrap();
}

/// Queries `ids` on the telco's `attrs` service; the answers as (found, values).
fn query(bank: &Arc<Node>, ids: &[&str]) -> Vec<(bool, Vec<String>)> {
    let result = bank
        .run_query(
            "telco",
            "attrs",
            ids.iter().map(|s| vec![s.to_string()]).collect(),
            "token:ops",
        )
        .unwrap();
    assert_eq!(result.query.status, QueryStatus::Succeeded);
    result
        .answers
        .into_iter()
        .map(|a| (a.found, a.values))
        .collect()
}

fn found(values: &[&str]) -> (bool, Vec<String>) {
    (true, values.iter().map(|s| s.to_string()).collect())
}

#[test]
fn queries_and_jobs_work_again_after_the_partner_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], true, None);
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    register(&telco, &dirs[1], "subscribers", SUBSCRIBERS);
    telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    publish(&telco);
    register(&bank, &dirs[0], "customers", CUSTOMERS);

    // Before the restart: control messages and a PIR session in both directions.
    assert_eq!(
        query(&bank, &["13800000002", "19900000000"]),
        vec![found(&["3", "Shanghai"]), (false, vec![])]
    );

    // The telco restarts alone (same directory, same port); the bank keeps running.
    telco.shutdown();
    drop(telco);
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();

    // The bank's next query reaches the new telco, and its answer comes back.
    let start = Instant::now();
    assert_eq!(
        query(&bank, &["13800000003", "13800000001"]),
        vec![found(&["120", "Shenzhen"]), found(&["24", "Beijing"])]
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the query took {:?}",
        start.elapsed()
    );
    assert_eq!(bank.transport().stats().peer_restarts, 1);
    // The telco's store (which survived the restart) records both sessions, 2 ids each.
    let usage = &telco.queries().show("attrs").unwrap().usage[0];
    assert_eq!((usage.sessions, usage.ids), (2, 4));

    // Job control after the restart: the proposal reaches the telco, its acceptance the bank,
    // and the job runs to the end on both nodes.
    let job = bank
        .submit(
            "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  - {name: read, \
             component: reader, party_params: {bank: {dataset: customers}, telco: {dataset: \
             subscribers}}}\n",
        )
        .unwrap();
    for node in [&bank, &telco] {
        common::wait_succeeded(node, &job, Duration::from_secs(60));
    }
    bank.shutdown();
    telco.shutdown();
}

#[test]
fn a_job_waiting_for_approval_survives_a_restart_of_either_node() {
    let tmp = tempfile::tempdir().unwrap();
    // The telco approves by hand.
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], false, None);
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    register(&telco, &dirs[1], "subscribers", SUBSCRIBERS);
    telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    register(&bank, &dirs[0], "customers", CUSTOMERS);
    let spec = "parties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  - {name: read, \
                component: reader, party_params: {bank: {dataset: customers}, telco: {dataset: \
                subscribers}}}\n";

    // 1. The telco restarts while a proposal waits for its approval; approving it afterwards
    //    starts the job (before, the approval was sent but the guest's start was ignored).
    let job = bank.submit(spec).unwrap();
    common::wait_for("the proposal on the telco", Duration::from_secs(20), || {
        telco.store().job(&job).ok()
    });
    telco.shutdown();
    drop(telco);
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    assert_eq!(telco.pending_approvals().unwrap().len(), 1);
    telco.approve(&job).unwrap();
    for node in [&bank, &telco] {
        common::wait_succeeded(node, &job, Duration::from_secs(60));
    }

    // 2. The bank (the guest) restarts while its job waits; the telco's approval afterwards
    //    still starts it.
    let job = bank.submit(spec).unwrap();
    common::wait_for("the proposal on the telco", Duration::from_secs(20), || {
        telco.store().job(&job).ok()
    });
    bank.shutdown();
    drop(bank);
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    telco.approve(&job).unwrap();
    for node in [&bank, &telco] {
        common::wait_succeeded(node, &job, Duration::from_secs(60));
    }
    bank.shutdown();
    telco.shutdown();
}

#[test]
fn at_start_a_node_asks_partners_how_jobs_ended_that_it_still_shows_them_running() {
    let c = common::Cluster::pinned(&["bank", "telco"], true, Some(&common::test_policy()));
    common::register_data(&c, 200);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let job = c.nodes[0]
        .submit(
            r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
"#,
        )
        .unwrap();
    let row = common::wait_done(&c.nodes[0], &job, Duration::from_secs(60));
    assert_eq!(row.status.as_str(), "succeeded");
    common::wait_done(&c.nodes[1], &job, Duration::from_secs(30));
    let telco_of = |node: &Node| {
        node.store()
            .party_statuses(&job)
            .unwrap()
            .into_iter()
            .find(|(p, _, _)| p == "telco")
            .map(|(_, s, _)| s.as_str().to_string())
    };
    common::wait_for(
        "the bank to record the telco's end",
        Duration::from_secs(20),
        || (telco_of(&c.nodes[0]).as_deref() == Some("succeeded")).then_some(()),
    );

    // The telco's final status is lost on the bank (as in a crash between the two writes):
    // the bank shows the telco still running a job that ended.
    let common::Cluster { tmp, nodes, dirs } = c;
    nodes[0].shutdown();
    let telco = nodes[1].clone();
    drop(nodes);
    {
        let conn = rusqlite::Connection::open(dirs[0].join("state/ferry.db")).unwrap();
        conn.execute(
            "UPDATE job_parties SET status = 'running', reason = NULL WHERE job_id = ?1 AND party = 'telco'",
            [&job],
        )
        .unwrap();
    }
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    // At start the bank asks; the telco answers how the job ended for it.
    common::wait_for(
        "the bank to learn the telco's end",
        Duration::from_secs(20),
        || (telco_of(&bank).as_deref() == Some("succeeded")).then_some(()),
    );
    assert_eq!(telco_of(&telco).as_deref(), Some("succeeded"));
    drop(tmp);
}
