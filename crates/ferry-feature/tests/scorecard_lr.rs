//! Scorecards from a logistic regression on WOE features, split between a guest and a host:
//! the sum of the parties' partial scores is the scaled log-odds the model predicts.

use ferry_context::Role;
use ferry_feature::binning::{BinningParams, FeatureBinning, fit_categorical, fit_numeric};
use ferry_feature::scorecard::{
    PartyScorecard, ScorecardError, ScorecardFeature, ScorecardParams, score_distribution,
    score_rows, total_scores,
};
use ferry_feature::table::{Column, ColumnValues, Table};
use ferry_feature::transform::{FittedStep, FittedTransform, TransformParams, WoeColumn, WoeInput};
use ferry_feature::woe::{bin_stats, woe_iv};

/// SplitMix64, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

struct Party {
    table: Table,
    binnings: Vec<FeatureBinning>,
    woe_columns: Vec<WoeColumn>,
    /// The WOE-encoded table (what the LR trains on and predicts from).
    encoded: Table,
}

/// A guest (labels, income, city) and a host (age, debt with missing values), 3000 rows.
fn parties() -> (Party, Party, Vec<f64>) {
    let mut rng = Rng(2024);
    let n = 3000;
    let cities = ["north", "south", "east", "west"];
    let (mut income, mut city, mut age, mut debt, mut labels) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let inc = 20.0 + 80.0 * rng.uniform();
        let c = (rng.uniform() * 4.0) as usize;
        let a = 18.0 + 60.0 * rng.uniform();
        let d = if rng.uniform() < 0.1 {
            f64::NAN
        } else {
            rng.uniform() * 50.0
        };
        let risk = -1.5 - 0.03 * (inc - 60.0) + [0.6, -0.2, 0.0, -0.5][c] - 0.02 * (a - 45.0)
            + if d.is_nan() { 0.8 } else { 0.04 * (d - 25.0) };
        labels.push(f64::from(rng.uniform() < sigmoid(risk)));
        income.push(inc);
        city.push(Some(cities[c].to_string()));
        age.push(a);
        debt.push(d);
    }
    let ids: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
    let params = BinningParams {
        max_bins: 6,
        ..BinningParams::default()
    };
    let guest_table = Table {
        ids: ids.clone(),
        id_columns: vec!["id".into()],
        label_name: Some("y".into()),
        labels: Some(labels.clone()),
        columns: vec![
            Column::numeric("income", income.clone()),
            Column {
                name: "city".into(),
                values: ColumnValues::Text(city.clone()),
            },
        ],
    };
    let guest_bins = vec![
        fit_numeric("income", &income, None, &params).unwrap(),
        fit_categorical("city", &city, None, &params).unwrap(),
    ];
    let host_table = Table {
        ids,
        id_columns: vec!["id".into()],
        label_name: None,
        labels: None,
        columns: vec![
            Column::numeric("age", age.clone()),
            Column::numeric("debt", debt.clone()),
        ],
    };
    let host_bins = vec![
        fit_numeric("age", &age, None, &params).unwrap(),
        fit_numeric("debt", &debt, None, &params).unwrap(),
    ];
    let guest = party(guest_table, guest_bins, &labels);
    let host = party(host_table, host_bins, &labels);
    (guest, host, labels)
}

/// WOE from the labels (computed centrally here; federated in a job), then the party's own
/// woe transform.
fn party(table: Table, binnings: Vec<FeatureBinning>, labels: &[f64]) -> Party {
    let inputs: Vec<WoeInput> = binnings
        .iter()
        .map(|b| {
            let column = table.column(&b.feature).unwrap();
            let bins = match &column.values {
                ColumnValues::Numeric(v) => b.bin_numbers(v),
                ColumnValues::Text(v) => b.bin_texts(v),
            };
            let stats = bin_stats(&bins, labels, b.n_bins()).unwrap();
            let fw = woe_iv(&b.feature, "p", &stats, &b.bin_labels()).unwrap();
            WoeInput::from_feature_woe(b.clone(), &fw).unwrap()
        })
        .collect();
    let params = TransformParams::from_json(r#"{"steps": [{"kind": "woe"}]}"#).unwrap();
    let fitted = FittedTransform::fit(&table, &params, Some(&inputs)).unwrap();
    let FittedStep::Woe { columns } = &fitted.steps()[0] else {
        panic!()
    };
    let woe_columns = columns.clone();
    let encoded = fitted.apply(&table).unwrap();
    Party {
        table,
        binnings,
        woe_columns,
        encoded,
    }
}

/// Full-batch gradient descent on the pooled WOE features (the centralised twin of hetero LR).
fn fit_lr(x: &[Vec<f64>], y: &[f64]) -> (f64, Vec<f64>) {
    let d = x[0].len();
    let (mut b, mut w) = (0.0, vec![0.0; d]);
    for _ in 0..400 {
        let (mut gb, mut gw) = (0.0, vec![0.0; d]);
        for (row, &yi) in x.iter().zip(y) {
            let r = sigmoid(b + row.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>()) - yi;
            gb += r;
            for (g, a) in gw.iter_mut().zip(row) {
                *g += r * a;
            }
        }
        let n = y.len() as f64;
        b -= 1.0 * gb / n;
        for (wj, g) in w.iter_mut().zip(&gw) {
            *wj -= 1.0 * g / n;
        }
    }
    (b, w)
}

fn numbers(t: &Table) -> Vec<Vec<f64>> {
    (0..t.n_rows())
        .map(|i| {
            t.columns
                .iter()
                .map(|c| match &c.values {
                    ColumnValues::Numeric(v) => v[i],
                    ColumnValues::Text(_) => panic!("{} is text", c.name),
                })
                .collect()
        })
        .collect()
}

#[test]
fn party_cards_add_up_to_the_scaled_log_odds_of_the_model() {
    let (guest, host, labels) = parties();
    let xg = numbers(&guest.encoded);
    let xh = numbers(&host.encoded);
    let pooled: Vec<Vec<f64>> = xg
        .iter()
        .zip(&xh)
        .map(|(a, b)| a.iter().chain(b).copied().collect())
        .collect();
    let (intercept, w) = fit_lr(&pooled, &labels);
    assert!(
        w.iter().all(|&wj| wj > 0.0),
        "WOE weights are positive: {w:?}"
    );

    // What the LR itself predicts: logit and probability of bad per row.
    let logit: Vec<f64> = pooled
        .iter()
        .map(|row| intercept + row.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>())
        .collect();

    let params = ScorecardParams::default();
    let guest_features: Vec<ScorecardFeature> = guest
        .woe_columns
        .iter()
        .zip(&w[..2])
        .map(|(c, &wj)| ScorecardFeature::from_woe_column(c, wj))
        .collect();
    let host_features: Vec<ScorecardFeature> = host
        .woe_columns
        .iter()
        .zip(&w[2..])
        .map(|(c, &wj)| ScorecardFeature::from_woe_column(c, wj))
        .collect();
    let guest_card =
        PartyScorecard::build(&params, Role::Guest, Some(intercept), &guest_features).unwrap();
    let host_card = PartyScorecard::build(&params, Role::Host, None, &host_features).unwrap();
    assert_eq!(host_card.base_points, 0.0);
    assert_eq!(
        guest_card.base_points,
        params.offset() - params.factor() * intercept
    );
    assert_eq!(
        guest_card.features[1].bin_labels,
        guest.binnings[1].bin_labels()
    );

    // Each party scores its own rows from the raw table through its binnings.
    let g = guest_card
        .score_table(&guest.table, &guest.binnings)
        .unwrap();
    let h = host_card.score_table(&host.table, &host.binnings).unwrap();
    let total = total_scores(&[g.clone(), h.clone()]).unwrap();
    for (i, (&s, &z)) in total.iter().zip(&logit).enumerate() {
        let want = params.offset() - params.factor() * z;
        assert!((s - want).abs() < 1e-9, "row {i}: {s} vs {want}");
        // The same through the predicted probability: offset + factor · ln(good:bad odds).
        let p = sigmoid(z);
        let via_p = params.offset() + params.factor() * ((1.0 - p) / p).ln();
        assert!((s - via_p).abs() < 1e-6, "row {i}: {s} vs {via_p}");
    }

    // score_rows on bin indices gives the same partial scores.
    let host_rows: Vec<Vec<u32>> = (0..host.table.n_rows())
        .map(|i| {
            host.binnings
                .iter()
                .zip(&host.table.columns)
                .map(|(b, c)| match &c.values {
                    ColumnValues::Numeric(v) => b.bin_of_number(v[i]) as u32,
                    ColumnValues::Text(_) => unreachable!(),
                })
                .collect()
        })
        .collect();
    assert_eq!(score_rows(&host_card, &host_rows).unwrap(), h);

    // Higher risk, lower score: ordered by predicted logit, scores never go up.
    let mut order: Vec<usize> = (0..total.len()).collect();
    order.sort_by(|&a, &b| logit[a].total_cmp(&logit[b]));
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if logit[b] > logit[a] + 1e-12 {
            assert!(total[b] < total[a], "logit {} → {}", logit[a], logit[b]);
        }
    }
    // With a positive weight, a bin with a larger WOE (a higher bad share) earns fewer points.
    for (f, c) in guest_card.features.iter().zip(&guest.woe_columns) {
        for a in 0..c.woe.len() {
            for b in 0..c.woe.len() {
                if c.woe[a] > c.woe[b] {
                    assert!(f.points[a] < f.points[b], "{}: bins {a}, {b}", f.feature);
                }
            }
        }
    }

    // The distribution: every row in one band, bad rates falling as scores rise.
    let dist = score_distribution(&total, Some(&labels), params.pdo).unwrap();
    assert_eq!(dist.bands.iter().map(|b| b.count).sum::<u64>(), 3000);
    assert_eq!(
        dist.bands.iter().map(|b| b.bad.unwrap()).sum::<u64>(),
        labels.iter().filter(|&&y| y == 1.0).count() as u64
    );
    let populated: Vec<_> = dist.bands.iter().filter(|b| b.count >= 100).collect();
    assert!(populated.len() >= 3, "{dist:?}");
    let first = populated.first().unwrap().bad_rate.unwrap();
    let last = populated.last().unwrap().bad_rate.unwrap();
    assert!(first > 2.0 * last, "low scores {first}, high scores {last}");
}

#[test]
fn scaling_follows_the_convention() {
    let p = ScorecardParams::default();
    assert_eq!((p.base_score, p.pdo, p.base_odds), (600.0, 20.0, 50.0));
    // Good:bad odds of 50 (log-odds of bad −ln 50) score 600 ...
    assert!((p.score_of_logit(-(50f64.ln())) - 600.0).abs() < 1e-9);
    // ... doubling the good:bad odds adds 20 points, halving them takes 20 away.
    assert!((p.score_of_logit(-(100f64.ln())) - 620.0).abs() < 1e-9);
    assert!((p.score_of_logit(-(25f64.ln())) - 580.0).abs() < 1e-9);
    // factor = 20 / ln 2 = 28.8539…, offset = 600 − factor · ln 50 = 487.1228…
    assert!((p.factor() - 28.853_900_817_779_27).abs() < 1e-12);
    assert!((p.offset() - 487.122_876_204_505).abs() < 1e-9);

    let bad = |p: ScorecardParams| p.validate().unwrap_err().to_string();
    assert!(
        bad(ScorecardParams {
            pdo: 0.0,
            ..ScorecardParams::default()
        })
        .contains("pdo")
    );
    assert!(
        bad(ScorecardParams {
            base_odds: -1.0,
            ..ScorecardParams::default()
        })
        .contains("base_odds")
    );
    assert!(
        bad(ScorecardParams {
            base_score: f64::NAN,
            ..ScorecardParams::default()
        })
        .contains("base_score")
    );
    let e = serde_json::from_str::<ScorecardParams>(r#"{"pdo": 40, "odds": 10}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `odds`"), "{e}");
    let p: ScorecardParams = serde_json::from_str(r#"{"pdo": 40}"#).unwrap();
    assert_eq!((p.base_score, p.pdo, p.base_odds), (600.0, 40.0, 50.0));
}

#[test]
fn cards_refuse_what_does_not_fit() {
    let p = ScorecardParams::default();
    let f = ScorecardFeature {
        feature: "x".into(),
        weight: 0.5,
        woe: vec![-1.0, 1.0, 0.0],
        bin_labels: vec![],
    };
    let card = PartyScorecard::build(&p, Role::Host, None, std::slice::from_ref(&f)).unwrap();
    assert_eq!(card.features[0].bin_labels, ["bin 0", "bin 1", "bin 2"]);
    let factor = p.factor();
    assert_eq!(card.features[0].points, [0.5 * factor, -0.5 * factor, -0.0]);

    let e = PartyScorecard::build(&p, Role::Host, Some(0.1), &[]).unwrap_err();
    assert!(
        e.to_string().contains("a host cannot hold an intercept"),
        "{e}"
    );
    assert!(matches!(
        PartyScorecard::build(&p, Role::Arbiter, None, &[]),
        Err(ScorecardError::Role { .. })
    ));
    let e = PartyScorecard::build(&p, Role::Guest, None, &[f.clone(), f.clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("feature 'x': appears twice"), "{e}");
    let nan = ScorecardFeature {
        woe: vec![f64::NAN],
        ..f.clone()
    };
    let e = PartyScorecard::build(&p, Role::Guest, None, &[nan])
        .unwrap_err()
        .to_string();
    assert!(e.contains("the WOE of bin 0 is NaN"), "{e}");

    // A guest without an intercept still carries the offset.
    let guest = PartyScorecard::build(&p, Role::Guest, None, &[]).unwrap();
    assert_eq!(guest.base_points, p.offset());
    assert_eq!(
        score_rows(&guest, &[vec![], vec![]]).unwrap(),
        [p.offset(), p.offset()]
    );

    let e = score_rows(&card, &[vec![0], vec![3]])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 1 is in bin 3, but the card has 3 bins"),
        "{e}"
    );
    let e = score_rows(&card, &[vec![0, 1]]).unwrap_err().to_string();
    assert!(
        e.contains("row 0 has bins for 2 features, but the card has 1 (x)"),
        "{e}"
    );
    let e = total_scores(&[vec![1.0], vec![1.0, 2.0]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("party 1 scored 2 rows, party 0 scored 1"), "{e}");

    let t = Table {
        ids: vec!["a".into()],
        id_columns: vec!["id".into()],
        label_name: None,
        labels: None,
        columns: vec![Column::numeric("y", vec![1.0])],
    };
    let b = FeatureBinning::numeric("x", vec![0.0, 1.0]).unwrap();
    let e = card.score_table(&t, &[b]).unwrap_err().to_string();
    assert!(e.contains("no column named 'x' (columns are: y)"), "{e}");
    let e = card.score_table(&t, &[]).unwrap_err().to_string();
    assert!(
        e.contains("feature 'x': no binning was given for it"),
        "{e}"
    );
}

#[test]
fn score_distribution_by_hand() {
    // Width 20: bands [560, 580), [580, 600), [600, 620), [620, 640).
    let scores = [575.0, 580.0, 599.9, 612.0, 639.0, 620.0];
    let labels = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let d = score_distribution(&scores, Some(&labels), 20.0).unwrap();
    let bands: Vec<(f64, f64, u64, Option<u64>)> = d
        .bands
        .iter()
        .map(|b| (b.lower, b.upper, b.count, b.bad))
        .collect();
    assert_eq!(
        bands,
        [
            (560.0, 580.0, 1, Some(1)),
            (580.0, 600.0, 2, Some(1)),
            (600.0, 620.0, 1, Some(0)),
            (620.0, 640.0, 2, Some(1)),
        ]
    );
    assert_eq!(d.bands[1].bad_rate, Some(0.5));
    assert_eq!((d.count, d.min, d.max), (6, 575.0, 639.0));
    assert_eq!(d.bad_rate, Some(0.5));

    // Without labels: counts only; empty bands in between are kept.
    let d = score_distribution(&[500.0, 561.0], None, 20.0).unwrap();
    let counts: Vec<u64> = d.bands.iter().map(|b| b.count).collect();
    assert_eq!(counts, [1, 0, 0, 1]);
    assert!(
        d.bands
            .iter()
            .all(|b| b.bad.is_none() && b.bad_rate.is_none())
    );

    assert!(score_distribution(&[], None, 20.0).is_err());
    assert!(score_distribution(&[1.0], None, 0.0).is_err());
    assert!(score_distribution(&[1.0, 1e9], None, 1.0).is_err());
    let e = score_distribution(&[1.0], Some(&[2.0]), 1.0).unwrap_err();
    assert_eq!(e, ScorecardError::BadLabel { row: 0, value: 2.0 });
}
