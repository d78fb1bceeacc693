//! The `evaluation` component in a two-node job: its `threshold` decides which scores count as
//! positive, and so accuracy, precision, recall and F1, while AUC and KS do not depend on it.

mod common;

use ferry_node::Node;
use ferry_store::{GrantTarget, LabelKind, RegisterDataset};
use ferry_transport::NodeDir;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Twelve scored rows: (score, label).
const ROWS: [(f64, u8); 12] = [
    (0.05, 0),
    (0.15, 0),
    (0.25, 1),
    (0.35, 0),
    (0.40, 1),
    (0.45, 1),
    (0.55, 0),
    (0.60, 1),
    (0.70, 1),
    (0.80, 0),
    (0.90, 1),
    (0.95, 1),
];

struct Cluster {
    _tmp: tempfile::TempDir,
    bank: Arc<Node>,
    _telco: Arc<Node>,
}

/// `bank` (guest) holds `scored` (a score column and the label), `telco` (host) a dataset
/// without a label, granted to bank.
fn cluster() -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], true, None);
    let nodes: Vec<Arc<Node>> = dirs
        .iter()
        .map(|d| Node::start(NodeDir::open(d).unwrap()).unwrap())
        .collect();
    let mut scored = String::from("id,score,y\n");
    for (i, (score, y)) in ROWS.iter().enumerate() {
        scored.push_str(&format!("r{i},{score},{y}\n"));
    }
    let file = dirs[0].join("scored.csv");
    std::fs::write(&file, scored).unwrap();
    let mut req = RegisterDataset::new("scored", &file);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    nodes[0].store().register_dataset(req).unwrap();
    let file = dirs[1].join("rows.csv");
    std::fs::write(&file, "id,x\nr0,1\nr1,2\n").unwrap();
    nodes[1]
        .store()
        .register_dataset(RegisterDataset::new("rows", &file))
        .unwrap();
    nodes[1]
        .store()
        .grant("rows", GrantTarget::Party("bank".into()))
        .unwrap();
    let mut nodes = nodes.into_iter();
    Cluster {
        _tmp: tmp,
        bank: nodes.next().unwrap(),
        _telco: nodes.next().unwrap(),
    }
}

fn job(eval_params: &str) -> String {
    format!(
        r#"
parties: {{guest: bank, hosts: [telco]}}
timeout_secs: 60
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: scored}}, telco: {{dataset: rows}}}}}}
  - {{name: eval, component: evaluation, inputs: {{data: read}}, params: {eval_params}}}
"#
    )
}

/// Runs the job and returns the evaluation's `metrics` output on bank.
fn evaluate(c: &Cluster, eval_params: &str) -> Value {
    let id = c.bank.submit(&job(eval_params)).unwrap();
    common::wait_succeeded(&c.bank, &id, Duration::from_secs(60));
    let tasks = c.bank.store().tasks(&id).unwrap();
    let eval = tasks.iter().find(|t| t.task == "eval").unwrap();
    eval.outputs.as_ref().unwrap()["metrics"].clone()
}

/// Accuracy, precision, recall and F1 of `ROWS` when scores at or above `threshold` count as
/// positive, counted here without the metrics code.
fn expected(threshold: f64) -> [f64; 4] {
    let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (score, y) in ROWS {
        match (score >= threshold, y == 1) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    [
        (tp + tn) / ROWS.len() as f64,
        tp / (tp + fp),
        tp / (tp + fn_),
        2.0 * tp / (2.0 * tp + fp + fn_),
    ]
}

fn confusion_metrics(metrics: &Value) -> [f64; 4] {
    let report = &metrics["details"]["report"];
    ["accuracy", "precision", "recall", "f1"].map(|k| report[k].as_f64().unwrap())
}

fn close(a: [f64; 4], b: [f64; 4]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

#[test]
fn the_evaluation_threshold_decides_accuracy_precision_recall_and_f1() {
    let c = cluster();
    let default = evaluate(&c, "{}");
    let low = evaluate(&c, "{threshold: 0.4}");
    let high = evaluate(&c, "{threshold: 0.85}");
    // Worked by hand for 0.4 (a score equal to the threshold counts as positive): 6 true and
    // 2 false positives, 3 true and 1 false negatives.
    assert!(close(expected(0.4), [0.75, 0.75, 6.0 / 7.0, 0.8]));
    for (metrics, threshold) in [(&default, 0.5), (&low, 0.4), (&high, 0.85)] {
        assert_eq!(metrics["details"]["threshold"].as_f64(), Some(threshold));
        assert_eq!(
            metrics["details"]["report"]["threshold"].as_f64(),
            Some(threshold)
        );
        let got = confusion_metrics(metrics);
        assert!(
            close(got, expected(threshold)),
            "at {threshold}: {got:?}, expected {:?}",
            expected(threshold)
        );
        // The headline figures are the same numbers.
        assert_eq!(metrics["headline"]["accuracy"].as_f64(), Some(got[0]));
        assert_eq!(metrics["headline"]["f1"].as_f64(), Some(got[3]));
    }
    // The three thresholds give three different sets of confusion metrics ...
    let [d, l, h] = [&default, &low, &high].map(confusion_metrics);
    assert!(
        !close(d, l) && !close(d, h) && !close(l, h),
        "{d:?} {l:?} {h:?}"
    );
    // ... and the same ranking metrics.
    for k in ["auc", "ks", "lift"] {
        assert_eq!(default["headline"][k], low["headline"][k], "{k}");
        assert_eq!(default["headline"][k], high["headline"][k], "{k}");
    }
    // A threshold outside [0, 1] is refused when the job is submitted.
    let e = c
        .bank
        .submit(&job("{threshold: 1.5}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("threshold"), "{e}");
}

/// The console plots the ROC, KS, lift and score distribution from the job's metrics output:
/// they are there, and they agree with the headline figures.
#[test]
fn the_metrics_output_carries_the_curves_the_console_plots() {
    let c = cluster();
    let metrics = evaluate(&c, "{}");
    let details = &metrics["details"];
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let roc = details["roc"].as_array().unwrap();
    assert_eq!(details["roc_exact"], Value::Bool(true));
    let area: f64 = roc
        .windows(2)
        .map(|w| (f(&w[1], "fpr") - f(&w[0], "fpr")) * (f(&w[1], "tpr") + f(&w[0], "tpr")) / 2.0)
        .sum();
    let auc = f(&metrics["headline"], "auc");
    assert!((area - auc).abs() < 1e-9, "ROC area {area}, AUC {auc}");
    let ks = details["ks_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| f(p, "tpr") - f(p, "fpr"))
        .fold(f64::MIN, f64::max);
    assert!((ks - f(&metrics["headline"], "ks")).abs() < 1e-12);
    // The lift curve passes through the headline lift (top 10 %, on its 5 % grid) and ends at
    // every row.
    let lift = details["lift_curve"].as_array().unwrap();
    let at_tenth = lift
        .iter()
        .find(|p| (f(p, "fraction") - 0.1).abs() < 1e-12)
        .unwrap();
    assert!((f(at_tenth, "lift") - f(&metrics["headline"], "lift")).abs() < 1e-12);
    assert_eq!(
        lift.last().unwrap()["rows"].as_u64(),
        Some(ROWS.len() as u64)
    );
    // The score distribution counts the twelve rows by label.
    let dist = &details["score_distribution"];
    let total = |k: &str| {
        dist[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    let positives = ROWS.iter().filter(|(_, y)| *y == 1).count() as u64;
    assert_eq!(total("positive"), positives);
    assert_eq!(total("negative"), ROWS.len() as u64 - positives);
}
