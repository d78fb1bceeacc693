//! The `stability` component in a two-node job: each party computes PSI between two of its
//! own datasets, locally; the same data gives 0, a shifted copy a significant shift, and a
//! column that does not exist fails the task naming it.

mod common;

use common::Cluster;
use ferry_data::Dataset;
use ferry_node::Node;
use ferry_store::{GrantTarget, LabelKind, RegisterDataset};
use serde_json::Value;
use std::time::Duration;

/// `bank` (guest) and `telco` (host), pinned to each other, approving jobs themselves.
fn cluster() -> Cluster {
    Cluster::pinned(&["bank", "telco"], true, None)
}

/// `data` with every feature moved by `shift` standard deviations of the column.
fn shifted(data: &Dataset, shift: f64) -> Dataset {
    let mut out = data.clone();
    for j in 0..data.n_features() {
        let col = data.column(j);
        let n = col.len() as f64;
        let mean = col.iter().sum::<f64>() / n;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let d = data.n_features();
        for i in 0..data.n_rows() {
            out.features[i * d + j] += shift * sd;
        }
    }
    out
}

/// On each node: `base` (its part of a seeded vertical table), `same` (a copy of it under
/// another name) and `moved` (every feature shifted by one standard deviation); the guest's
/// datasets carry the label. The host grants them to the guest.
fn register(c: &Cluster) {
    let parts = common::vertical_parts(1000, &[3, 4], 1.0, 5);
    for (i, (node, part)) in c.nodes.iter().zip(parts).enumerate() {
        for (name, data) in [
            ("base", part.clone()),
            ("same", part.clone()),
            ("moved", shifted(&part, 1.0)),
        ] {
            let file = c.dirs[i].join(format!("{name}.csv"));
            data.write_csv(&file).unwrap();
            let mut req = RegisterDataset::new(name, &file);
            if i == 0 {
                req.label = Some("y".into());
                req.label_kind = LabelKind::Binary;
            }
            node.store().register_dataset(req).unwrap();
            if i == 1 {
                node.store()
                    .grant(name, GrantTarget::Party("bank".into()))
                    .unwrap();
            }
        }
    }
}

fn wait_done(node: &Node, job: &str) -> ferry_store::JobRow {
    common::wait_done(node, job, Duration::from_secs(60))
}

/// The `report` output of task `task` on `node`.
fn report(node: &Node, job: &str, task: &str) -> Value {
    let tasks = node.store().tasks(job).unwrap();
    let t = tasks.iter().find(|t| t.task == task).unwrap();
    t.outputs.as_ref().unwrap()["report"]["report"].clone()
}

/// A job comparing `expected` with `actual` at every party (`bank_actual` / `telco_actual`
/// name each party's actual dataset); `extra` adds to the stability task's parameters.
fn job(bank_actual: &str, telco_actual: &str, extra: &str) -> String {
    format!(
        r#"
name: psi-check
parties: {{guest: bank, hosts: [telco]}}
timeout_secs: 60
tasks:
  - {{name: train_sample, component: reader, party_params: {{bank: {{dataset: base}}, telco: {{dataset: base}}}}}}
  - {{name: this_month, component: reader, party_params: {{bank: {{dataset: {bank_actual}}}, telco: {{dataset: {telco_actual}}}}}}}
  - name: drift
    component: stability
    inputs: {{expected: train_sample, actual: this_month}}
    {extra}
"#
    )
}

#[test]
fn each_party_reports_the_psi_of_its_own_columns() {
    let c = cluster();
    register(&c);
    // The guest compares its data with an identical copy, the host with a shifted one.
    let id = c.nodes[0].submit(&job("same", "moved", "")).unwrap();
    for node in &c.nodes {
        let row = wait_done(node, &id);
        assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
    }
    let bank = report(&c.nodes[0], &id, "drift");
    let telco = report(&c.nodes[1], &id, "drift");
    // Each party's own feature columns, never the label or the other party's columns.
    let names = |r: &Value| -> Vec<String> {
        r["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["column"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&bank).len(), 3, "{bank}");
    assert_eq!(names(&telco).len(), 4, "{telco}");
    assert!(!names(&bank).contains(&"y".to_string()));
    assert!(names(&bank).iter().all(|n| !names(&telco).contains(n)));
    assert_eq!(bank["bins"], 10);
    assert_eq!(
        (bank["expected_rows"].as_u64(), bank["actual_rows"].as_u64()),
        (Some(1000), Some(1000))
    );
    for col in bank["columns"].as_array().unwrap() {
        assert_eq!(col["psi"].as_f64(), Some(0.0), "{col}");
        assert_eq!(col["reading"], "stable");
        let bins = col["bins"].as_array().unwrap();
        assert!(bins.len() >= 2 && bins.len() <= 10, "{col}");
    }
    assert_eq!(bank["shifted_columns"].as_array().unwrap().len(), 0);
    // A one-standard-deviation shift moves about a third of the rows across the quantiles.
    for col in telco["columns"].as_array().unwrap() {
        let p = col["psi"].as_f64().unwrap();
        assert!(p > 0.25, "{col}");
        assert_eq!(col["reading"], "significant_shift");
    }
    assert_eq!(telco["shifted_columns"].as_array().unwrap().len(), 4);
    assert!(telco["max_psi"].as_f64().unwrap() > 0.25);
}

#[test]
fn a_column_that_does_not_exist_fails_naming_it() {
    let c = cluster();
    register(&c);
    let bank_columns = {
        let rec = c.nodes[0].store().dataset("base").unwrap();
        rec.columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| n != "id" && n != "y")
            .collect::<Vec<_>>()
    };
    let extra = format!(
        "party_params: {{bank: {{columns: [{}, no_such_column], bins: 5}}}}",
        bank_columns[0]
    );
    let id = c.nodes[0].submit(&job("same", "same", &extra)).unwrap();
    let row = wait_done(&c.nodes[0], &id);
    assert_eq!(row.status.as_str(), "failed");
    let why = row.reason.unwrap();
    assert!(
        why.contains("task 'drift' failed")
            && why.contains("the expected dataset 'base' has no column 'no_such_column'"),
        "{why}"
    );
    // Invalid parameters are refused when the job is submitted.
    let e = c.nodes[0]
        .submit(&job("same", "same", "params: {bins: 1}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'bins' must be between 2 and 100, got 1"), "{e}");
}
