//! The scorecard workflow end to end on default_credit, federated and centralised.
//!
//! The guest (`bank`: labels and 13 columns) and the host (`telco`: 10 columns) hold the two
//! files of `test-data/datasets/default_credit_hetero_*.csv`. Each side misses a different
//! tenth of the ids (so the ids only partly overlap); the test aligns the parties on the ids
//! both hold (what PSI would output; PSI itself is tested in ferry-psi) and splits the aligned
//! rows into training and test rows by id (`ferry_data::is_test_row`). All aligned rows are
//! used (about 24,300; about 17,000 for training).
//!
//! * **Federated**: the guest fits optimal (monotonic) bins on its own training columns with
//!   its labels; the host fits fine quantile bins without labels, and `federated_woe` +
//!   `federated_merge` turn them into optimal bins from the counts alone (Paillier-1024, a
//!   test-size key). Each party WOE-encodes its own columns (the host with the WOE the guest
//!   sent it), they train hetero logistic regression (`ferry_linear::fit`, Paillier-1024) and
//!   predict the test rows; each party builds the scorecard of its own features from its
//!   model part.
//! * **Centralised twin**: the same binning functions on the pooled training table with the
//!   labels, WOE from `woe_iv`, and `ferry_linear::reference::train_pooled` (plain logistic
//!   regression, and the Taylor loss the protocol optimises) with the same hyper-parameters.
//!
//! The issue's accuracy target: the federated test AUC within 0.005 of the centralised one.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_data::{Dataset, DatasetSpec, LabelKind, is_test_row};
use ferry_feature::binning::{BinMethod, BinningParams, FeatureBinning, fit_numeric};
use ferry_feature::scorecard::{PartyScorecard, ScorecardFeature, ScorecardParams, total_scores};
use ferry_feature::table::Table;
use ferry_feature::transform::{FittedStep, FittedTransform, TransformParams, WoeInput};
use ferry_feature::woe::{
    BinnedFeature, FeatureWoe, MergeOutcome, WoeOutcome, WoeParams, bin_stats, federated_merge,
    federated_woe, woe_iv,
};
use ferry_linear::reference::{ReferenceLoss, train_pooled};
use ferry_linear::{LinearParams, ModelPart, Optimizer, fit, predict};
use ferry_ml::metrics::auc;
use ferry_testdata::dataset;
use std::collections::HashSet;
use std::time::Instant;

const GUEST: &str = "bank";
const HOST: &str = "telco";
/// Test-size keys (insecure; the same code path as 2048 bits).
const KEY_BITS: u32 = 1024;
/// Each party misses the ids this selects, with its own seed.
const DROP_FRACTION: f64 = 0.1;
const GUEST_DROP_SEED: u64 = 101;
const HOST_DROP_SEED: u64 = 202;
const TEST_FRACTION: f64 = 0.3;
const SPLIT_SEED: u64 = 7;

fn he() -> HeSettings {
    HeSettings::insecure_for_tests(SchemeKind::Paillier, KEY_BITS)
}

/// Optimal bins: ChiMerge from 50 quantile bins to at most 8 bins with a monotonic bad rate.
fn optimal() -> BinningParams {
    BinningParams {
        method: BinMethod::Optimal,
        max_bins: 8,
        fine_bins: 50,
        min_bin_share: 0.05,
        ..BinningParams::default()
    }
}

/// The host's fine bins: quantile bins, as many as optimal binning starts from.
fn fine() -> BinningParams {
    BinningParams {
        method: BinMethod::Quantile,
        max_bins: optimal().fine_bins,
        ..optimal()
    }
}

fn lr_params() -> LinearParams {
    LinearParams {
        optimizer: Optimizer::Sgd { lr: 0.15 },
        batch_size: Some(2000),
        max_epochs: 4,
        tolerance: 0.0,
        seed: 3,
        he: he(),
        insecure_test_rng_seed: Some(19),
        ..LinearParams::default()
    }
}

/// The rows of `data` whose id `keep` accepts, in file order.
fn rows_where(data: &Dataset, keep: impl Fn(&str) -> bool) -> Dataset {
    let rows: Vec<usize> = (0..data.n_rows()).filter(|&i| keep(&data.ids[i])).collect();
    data.select_rows(&rows)
}

/// One party's columns as a table of the given rows.
fn table(data: &Dataset) -> Table {
    Table::from_dataset(data)
}

/// What one party ends up with after the federated run.
struct PartyRun {
    /// Its final binnings (optimal), in column order.
    binnings: Vec<FeatureBinning>,
    /// The WOE per bin of its own columns.
    woe: Vec<Vec<f64>>,
    /// Guest only: WOE/IV of every feature (its own, then the host's).
    all_woe: Vec<FeatureWoe>,
    model: ModelPart,
    /// Guest only: probability of bad for every test row.
    predictions: Option<Vec<f64>>,
    /// The party's scorecard points of every test row.
    partial_scores: Vec<f64>,
}

/// Everything one party does, on its own training and test rows.
fn run_party(
    ctx: &ferry_context::Context,
    train: &Dataset,
    test: &Dataset,
    card: &ScorecardParams,
) -> Result<PartyRun, String> {
    let woe_params = WoeParams {
        he: he(),
        insecure_test_rng_seed: Some(23),
        ..WoeParams::default()
    };
    let guest = ctx.role() == Role::Guest;
    let labels = train.labels();
    let columns: Vec<(String, Vec<f64>)> = (0..train.n_features())
        .map(|j| (train.feature_names[j].clone(), train.column(j)))
        .collect();
    // Bins: the guest's optimal ones directly, the host's fine ones (merged below).
    let bin_params = if guest { optimal() } else { fine() };
    let binnings = columns
        .iter()
        .map(|(name, v)| fit_numeric(name, v, labels, &bin_params))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let binned: Vec<BinnedFeature> = binnings
        .iter()
        .zip(&columns)
        .map(|(b, (_, v))| BinnedFeature::numeric(b, v))
        .collect();
    let e = |e: ferry_feature::woe::WoeError| e.to_string();
    let woe = federated_woe(ctx, &binned, labels, &woe_params).map_err(e)?;
    let merged = federated_merge(
        ctx,
        &woe,
        if guest { &[] } else { &binnings },
        &optimal(),
        &woe_params,
    )
    .map_err(e)?;
    let (binnings, woe_values, all_woe) = match (&woe, merged) {
        (WoeOutcome::Guest(g), MergeOutcome::Guest(host_merged)) => {
            let own: Vec<FeatureWoe> = g.features[..binnings.len()].to_vec();
            let values = own.iter().map(|f| f.woe.clone()).collect();
            let mut all = own;
            all.extend(host_merged);
            (binnings, values, all)
        }
        (WoeOutcome::Host(_), MergeOutcome::Host(merged)) => {
            let values = merged
                .iter()
                .map(|m| {
                    m.woe
                        .clone()
                        .ok_or_else(|| format!("no WOE for '{}'", m.binning.feature))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (
                merged.into_iter().map(|m| m.binning).collect(),
                values,
                vec![],
            )
        }
        _ => return Err("WOE and merge outcomes of different roles".into()),
    };
    // WOE-encode the party's own columns (fitted on its training table).
    let inputs: Vec<WoeInput> = binnings
        .iter()
        .zip(&woe_values)
        .map(|(b, w)| WoeInput {
            binning: b.clone(),
            woe: w.clone(),
        })
        .collect();
    let steps =
        TransformParams::from_json(r#"{"steps": [{"kind": "woe"}]}"#).map_err(|e| e.to_string())?;
    let transform =
        FittedTransform::fit(&table(train), &steps, Some(&inputs)).map_err(|e| e.to_string())?;
    let encode = |d: &Dataset| {
        transform
            .apply(&table(d))
            .and_then(|t| t.to_dataset().map_err(Into::into))
            .map_err(|e| e.to_string())
    };
    let (train_woe, test_woe) = (encode(train)?, encode(test)?);
    let model = fit(ctx, Some(&train_woe), &lr_params(), None)
        .map_err(|e| e.to_string())?
        .model;
    let predictions = predict(ctx, &model, &test_woe).map_err(|e| e.to_string())?;
    // The scorecard of the party's own features, from its model part.
    let FittedStep::Woe {
        columns: woe_columns,
    } = &transform.steps()[0]
    else {
        return Err("the transform's step is not woe".into());
    };
    let features = woe_columns
        .iter()
        .map(|c| {
            let j = model
                .feature_names
                .iter()
                .position(|n| *n == c.name)
                .ok_or_else(|| format!("the model has no weight for '{}'", c.name))?;
            Ok(ScorecardFeature::from_woe_column(c, model.weights[j]))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let party_card = PartyScorecard::build(card, ctx.role(), model.intercept, &features)
        .map_err(|e| e.to_string())?;
    let partial_scores = party_card
        .score_table(&table(test), &binnings)
        .map_err(|e| e.to_string())?;
    Ok(PartyRun {
        binnings,
        woe: woe_values,
        all_woe,
        model,
        predictions,
        partial_scores,
    })
}

/// `name` → `<party>:name`, so that the pooled table's columns are unique.
fn prefixed(data: &Dataset, party: &str) -> Dataset {
    let mut d = data.clone();
    d.feature_names = d
        .feature_names
        .iter()
        .map(|n| format!("{party}:{n}"))
        .collect();
    d
}

#[test]
fn federated_scorecard_pipeline_matches_the_centralised_one_on_default_credit() {
    let guest_all = Dataset::read_csv(
        dataset("default_credit_hetero_guest.csv"),
        &DatasetSpec::with_label("y", LabelKind::Binary),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let host_all = Dataset::read_csv(
        dataset("default_credit_hetero_host.csv"),
        &DatasetSpec::features_only(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Partial overlap: each side misses a different tenth of the ids.
    let guest_held = rows_where(&guest_all, |id| {
        !is_test_row(id, GUEST_DROP_SEED, DROP_FRACTION)
    });
    let host_held = rows_where(&host_all, |id| {
        !is_test_row(id, HOST_DROP_SEED, DROP_FRACTION)
    });
    let host_ids: HashSet<&str> = host_held.ids.iter().map(String::as_str).collect();
    let common: Vec<String> = guest_held
        .ids
        .iter()
        .filter(|id| host_ids.contains(id.as_str()))
        .cloned()
        .collect();
    assert!(common.len() < guest_held.n_rows() && common.len() < host_held.n_rows());
    assert!(common.len() > 20_000, "{} common ids", common.len());
    let guest = guest_held.align_to(&common).unwrap();
    let host = host_held.align_to(&common).unwrap();

    // Training and test rows by id.
    let is_test = |id: &str| is_test_row(id, SPLIT_SEED, TEST_FRACTION);
    let (guest_train, guest_test) = (
        rows_where(&guest, |id| !is_test(id)),
        rows_where(&guest, is_test),
    );
    let (host_train, host_test) = (
        rows_where(&host, |id| !is_test(id)),
        rows_where(&host, is_test),
    );
    let test_labels = guest_test.labels().unwrap().to_vec();
    println!(
        "aligned rows {} of {} (guest) and {} (host); {} training, {} test",
        common.len(),
        guest_held.n_rows(),
        host_held.n_rows(),
        guest_train.n_rows(),
        guest_test.n_rows()
    );

    // (a) Federated.
    let card = ScorecardParams::default();
    let start = Instant::now();
    let outcomes =
        LocalCluster::new(Roster::of(&[(GUEST, Role::Guest), (HOST, Role::Host)])).run(|ctx| {
            if ctx.role() == Role::Guest {
                run_party(&ctx, &guest_train, &guest_test, &card)
            } else {
                run_party(&ctx, &host_train, &host_test, &card)
            }
        });
    println!(
        "federated binning, WOE, LR and prediction: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let mut runs = outcomes
        .into_iter()
        .map(|o| o.result.unwrap_or_else(|e| panic!("{}: {e}", o.party)));
    let (g, h) = (runs.next().unwrap(), runs.next().unwrap());
    let fed_probs = g.predictions.clone().expect("the guest predicts");
    let auc_fed = auc(&fed_probs, &test_labels).unwrap();

    // (b) Centralised twin on the pooled training table.
    let train = prefixed(&guest_train, GUEST)
        .hstack(&prefixed(&host_train, HOST))
        .unwrap();
    let test = prefixed(&guest_test, GUEST)
        .hstack(&prefixed(&host_test, HOST))
        .unwrap();
    let labels = train.labels().unwrap();
    let mut inputs = Vec::new();
    let mut central_woe = Vec::new();
    for j in 0..train.n_features() {
        let name = &train.feature_names[j];
        let values = train.column(j);
        let b = fit_numeric(name, &values, Some(labels), &optimal()).unwrap();
        let stats = bin_stats(&b.bin_numbers(&values), labels, b.n_bins()).unwrap();
        let w = woe_iv(name, "pooled", &stats, &b.bin_labels()).unwrap();
        inputs.push(WoeInput::from_feature_woe(b, &w).unwrap());
        central_woe.push(w);
    }
    // The same bins and WOE as the federated run: the host's optimal bins came from merge
    // plans computed on encrypted counts, yet equal optimal binning with the labels in hand.
    let fed_binnings: Vec<&FeatureBinning> = g.binnings.iter().chain(&h.binnings).collect();
    let fed_woe: Vec<&Vec<f64>> = g.woe.iter().chain(&h.woe).collect();
    assert_eq!(fed_binnings.len(), inputs.len());
    for (j, input) in inputs.iter().enumerate() {
        let pooled_name = &input.binning.feature;
        assert_eq!(
            input.binning.bins, fed_binnings[j].bins,
            "bins of {pooled_name}"
        );
        assert_eq!(&input.woe, fed_woe[j], "WOE of {pooled_name}");
        assert_eq!(
            g.all_woe[j].woe, input.woe,
            "WOE of {pooled_name} at the guest"
        );
        assert!(
            (g.all_woe[j].iv - central_woe[j].iv).abs() < 1e-12,
            "IV of {pooled_name}"
        );
    }
    let value_bins: Vec<usize> = fed_binnings.iter().map(|b| b.n_value_bins()).collect();
    println!("value bins per feature: {value_bins:?}");
    assert!(value_bins.iter().all(|&k| (1..=8).contains(&k)));
    assert!(value_bins.iter().filter(|&&k| k >= 3).count() >= 5);

    let steps = TransformParams::from_json(r#"{"steps": [{"kind": "woe"}]}"#).unwrap();
    let transform = FittedTransform::fit(&Table::from_dataset(&train), &steps, Some(&inputs))
        .unwrap_or_else(|e| panic!("{e}"));
    let encode = |d: &Dataset| {
        transform
            .apply(&Table::from_dataset(d))
            .unwrap()
            .to_dataset()
            .unwrap()
    };
    let (train_woe, test_woe) = (encode(&train), encode(&test));
    let exact = train_pooled(&train_woe, &lr_params(), ReferenceLoss::Exact).unwrap();
    let taylor = train_pooled(&train_woe, &lr_params(), ReferenceLoss::Taylor).unwrap();
    let auc_central = auc(&exact.predict(&test_woe), &test_labels).unwrap();
    let auc_taylor = auc(&taylor.predict(&test_woe), &test_labels).unwrap();
    println!(
        "test AUC: federated {auc_fed:.5}, centralised logistic regression {auc_central:.5}, \
         centralised Taylor loss {auc_taylor:.5}"
    );
    assert!(
        (auc_fed - auc_central).abs() <= 0.005,
        "federated AUC {auc_fed} vs centralised {auc_central}"
    );
    // The protocol optimises the Taylor loss: up to fixed point it is that model.
    assert!(
        (auc_fed - auc_taylor).abs() < 1e-3,
        "federated AUC {auc_fed} vs the pooled Taylor model {auc_taylor}"
    );
    assert!(auc_fed > 0.7, "federated AUC {auc_fed}");

    // The scorecard: every test row's total score is offset − factor · logit of the LR's
    // predicted probability of bad.
    assert_eq!(g.model.feature_names.len(), guest.n_features());
    assert_eq!(h.model.feature_names.len(), host.n_features());
    assert!(h.model.intercept.is_none());
    let total = total_scores(&[g.partial_scores.clone(), h.partial_scores.clone()]).unwrap();
    assert_eq!(total.len(), fed_probs.len());
    for (i, (&s, &p)) in total.iter().zip(&fed_probs).enumerate() {
        let logit = (p / (1.0 - p)).ln();
        let want = card.offset() - card.factor() * logit;
        assert!(
            (s - want).abs() < 1e-6,
            "test row {i}: score {s}, want {want}"
        );
    }
    // Scores rank like the model: the AUC of −score is the model's AUC.
    let negated: Vec<f64> = total.iter().map(|s| -s).collect();
    assert!((auc(&negated, &test_labels).unwrap() - auc_fed).abs() < 1e-9);
}
