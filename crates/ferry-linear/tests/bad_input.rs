//! Bad input fails at every party with an error that says what is wrong and where.

mod common;

use common::*;
use ferry_context::{LocalCluster, PartyOutcome, Role, Roster};
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_linear::{EarlyStopping, LinearParams, Mode, Optimizer, Task, Trained, predict};
use std::io::Write;

fn errors(outcomes: &[PartyOutcome<Trained>]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(_) => panic!("party {} should have failed", o.party),
            Err(e) => e.clone(),
        })
        .collect()
}

fn write_csv(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f
}

#[test]
fn a_non_numeric_feature_names_file_row_and_column() {
    let f = write_csv("id,y,age,income\na,0,31,1000\nb,1,forty,2000\n");
    let err = Dataset::read_csv(f.path(), &DatasetSpec::with_label("y", LabelKind::Binary))
        .unwrap_err()
        .to_string();
    let name = f.path().file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name), "{err}");
    assert!(
        err.contains("row 3") && err.contains("'age'") && err.contains("'forty'"),
        "{err}"
    );
}

#[test]
fn a_label_outside_zero_one_is_refused_when_read_and_when_trained() {
    let f = write_csv("id,y,age\na,0,31\nb,2,40\n");
    let err = Dataset::read_csv(f.path(), &DatasetSpec::with_label("y", LabelKind::Binary))
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 3") && err.contains("'y'"), "{err}");

    // A table read as continuous slips past the reader; training refuses it.
    let (mut guest, hosts, _) = synthetic(50, 2, &[2], Task::Logistic, 31);
    guest.labels.as_mut().unwrap()[7] = 2.0;
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &test_params(Mode::Auto),
        None,
    );
    let e = errors(&outcomes);
    assert!(
        e[0].contains("'row7'") && e[0].contains("label 2") && e[0].contains("0 or 1"),
        "{}",
        e[0]
    );
    // The host learns that the guest cannot take part, not which row has which label.
    assert!(
        e[1].contains("guest cannot take part") && e[1].contains("stay with that party"),
        "{}",
        e[1]
    );
    assert!(
        !e[1].contains("label 2") && !e[1].contains("row7"),
        "a guest label reached the host: {}",
        e[1]
    );
}

#[test]
fn mismatched_row_counts_are_detected_by_the_protocol() {
    let (guest, hosts, _) = synthetic(60, 2, &[2], Task::Logistic, 32);
    let short = hosts[0].select_rows(&(0..59).collect::<Vec<_>>());
    for arbiter in [false, true] {
        let outcomes = run_fit(
            LocalCluster::new(roster(1, arbiter)),
            &guest,
            std::slice::from_ref(&short),
            &test_params(Mode::Auto),
            None,
        );
        for e in errors(&outcomes) {
            assert!(
                e.contains("60 training rows") && e.contains("'telco' has 59"),
                "every party, the arbiter too, says what is wrong: {e}"
            );
        }
    }
}

#[test]
fn rows_in_another_order_are_detected() {
    let (guest, hosts, _) = synthetic(40, 2, &[2], Task::Logistic, 33);
    let mut order: Vec<usize> = (0..40).collect();
    order.swap(3, 4);
    let shuffled = hosts[0].select_rows(&order);
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &[shuffled],
        &test_params(Mode::Auto),
        None,
    );
    for e in errors(&outcomes) {
        assert!(
            e.contains("different ids or a different order")
                && e.contains("private set intersection"),
            "{e}"
        );
    }
}

#[test]
fn a_host_with_missing_values_stops_everyone_and_only_the_host_sees_the_cell() {
    let (guest, mut hosts, _) = synthetic(40, 2, &[3], Task::Logistic, 34);
    hosts[0].features[5 * 3 + 1] = f64::NAN;
    let outcomes = run_fit(
        LocalCluster::new(roster(1, true)),
        &guest,
        &hosts,
        &test_params(Mode::Auto),
        None,
    );
    let e = errors(&outcomes);
    assert_eq!(e.len(), 3, "guest, host and arbiter all stop");
    let host = outcomes
        .iter()
        .position(|o| o.party.as_str() == "telco")
        .unwrap();
    assert!(
        e[host].contains("'row5'") && e[host].contains("'h0_1'") && e[host].contains("missing"),
        "{}",
        e[host]
    );
    // The others learn that telco cannot take part, not where its data has a gap.
    for (i, msg) in e.iter().enumerate().filter(|(i, _)| *i != host) {
        assert!(msg.contains("party 'telco' cannot take part"), "{i}: {msg}");
        assert!(
            !msg.contains("row5") && !msg.contains("h0_1"),
            "the host's data reached another party: {msg}"
        );
    }
}

#[test]
fn different_parameters_at_a_host_are_named() {
    let (guest, hosts, _) = synthetic(40, 2, &[2], Task::Logistic, 35);
    let params = test_params(Mode::Auto);
    let mut other = params.clone();
    other.optimizer = Optimizer::Sgd { lr: 0.5 };
    let outcomes = LocalCluster::new(roster(1, false)).run(|ctx| {
        if ctx.role() == Role::Guest {
            ferry_linear::fit(&ctx, Some(&guest), &params, None)
        } else {
            ferry_linear::fit(&ctx, Some(&hosts[0]), &other, None)
        }
    });
    let e = errors(&outcomes);
    assert!(
        e[1].contains("optimizer.lr: 0.5 here vs 0.15 at the guest"),
        "{}",
        e[1]
    );
    assert!(
        e[0].contains("'telco'") && e[0].contains("optimizer.lr"),
        "{}",
        e[0]
    );
}

#[test]
fn validation_sets_must_be_given_everywhere_and_line_up() {
    let (guest, hosts, _) = synthetic(40, 2, &[2], Task::Logistic, 36);
    let mut params = test_params(Mode::Auto);
    params.early_stopping = Some(EarlyStopping {
        patience: 1,
        min_delta: 0.0,
        restore_best: true,
    });
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &params,
        None,
    );
    for e in errors(&outcomes) {
        assert!(e.contains("early_stopping needs a validation set"), "{e}");
    }
    let valid_hosts = vec![hosts[0].select_rows(&(0..30).collect::<Vec<_>>())];
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &params,
        Some((&guest, &valid_hosts)),
    );
    for e in errors(&outcomes) {
        assert!(
            e.contains("40 validation rows") && e.contains("has 30"),
            "{e}"
        );
    }
}

#[test]
fn configuration_errors_are_clear() {
    let (guest, hosts, _) = synthetic(20, 2, &[2], Task::Logistic, 37);
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &test_params(Mode::WithArbiter),
        None,
    );
    for e in errors(&outcomes) {
        assert!(e.contains("needs an arbiter"), "{e}");
    }
    let alone = LocalCluster::new(Roster::of(&[("bank", Role::Guest)]))
        .run(|ctx| ferry_linear::fit(&ctx, Some(&guest), &test_params(Mode::Auto), None));
    assert!(errors(&alone)[0].contains("at least one host"));
    let mut insecure = LinearParams::default();
    insecure.he.key_bits = 512;
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &insecure,
        None,
    );
    for e in errors(&outcomes) {
        assert!(e.contains("he.key_bits") && e.contains("tests only"), "{e}");
    }
}

#[test]
fn a_diverging_model_stops_with_advice() {
    let (guest, hosts, _) = synthetic(100, 3, &[3], Task::Linear, 38);
    let mut params = test_params(Mode::Auto);
    params.task = Task::Linear;
    params.optimizer = Optimizer::Sgd { lr: 5.0 };
    params.max_epochs = 30;
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &params,
        None,
    );
    let diverged = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .find(|e| e.contains("diverging"))
        .expect("one party names the cause");
    assert!(diverged.contains("lower the learning rate"), "{diverged}");
}

#[test]
fn prediction_refuses_misaligned_rows_and_foreign_parts() {
    let (guest, hosts, _) = synthetic(50, 2, &[2], Task::Logistic, 39);
    let params = test_params(Mode::Auto);
    let trained: Vec<Trained> = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &params,
        None,
    )
    .into_iter()
    .map(|o| o.unwrap())
    .collect();
    let short = hosts[0].select_rows(&(0..49).collect::<Vec<_>>());
    let outcomes = LocalCluster::new(roster(1, false)).run(|ctx| {
        if ctx.role() == Role::Guest {
            predict(&ctx, &trained[0].model, &guest)
        } else {
            predict(&ctx, &trained[1].model, &short)
        }
    });
    for o in &outcomes {
        let e = o.result.as_ref().unwrap_err();
        assert!(
            e.contains("50 prediction rows") && e.contains("has 49"),
            "{e}"
        );
    }
    // A host's part used by the guest.
    let outcomes = LocalCluster::new(Roster::of(&[("bank", Role::Guest)]))
        .run(|ctx| predict(&ctx, &trained[1].model, &hosts[0]));
    let e = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        e.contains("trained by a host") && e.contains("guest"),
        "{e}"
    );
}
