//! Fitted transforms stored as JSON and read back give bit-for-bit the same output; the WOE
//! step encodes values through a binning and its WOE.

use ferry_feature::binning::FeatureBinning;
use ferry_feature::table::{Column, ColumnValues, Table};
use ferry_feature::transform::{
    FittedStep, FittedTransform, TRANSFORM_FORMAT, TransformParams, WoeInput,
};
use ferry_feature::woe::{BinStats, FeatureWoe, HostFeatureWoe};

const NAN: f64 = f64::NAN;

/// SplitMix64, seeded: the random tables are the same on every run.
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

fn table(columns: Vec<Column>) -> Table {
    let n = columns.first().map_or(0, |c| c.values.len());
    Table {
        ids: (0..n).map(|i| format!("r{i}")).collect(),
        id_columns: vec!["id".into()],
        label_name: None,
        labels: None,
        columns,
    }
}

fn random_table(rng: &mut Rng, n: usize) -> Table {
    let cities = ["Rome", "Oslo", "Lima", "Kyiv", "Pune", "Baku"];
    let num = |rng: &mut Rng, scale: f64, missing: f64| -> Vec<f64> {
        (0..n)
            .map(|_| {
                if rng.uniform() < missing {
                    NAN
                } else {
                    (rng.uniform() - 0.3) * scale
                }
            })
            .collect()
    };
    let income = num(rng, 12_345.678, 0.1);
    let ratio = num(rng, 0.37, 0.05);
    let score = num(rng, 3.3, 0.0);
    let city: Vec<Option<String>> = (0..n)
        .map(|_| {
            let u = rng.uniform();
            (u > 0.08).then(|| cities[(u * u * cities.len() as f64) as usize].to_string())
        })
        .collect();
    table(vec![
        Column::numeric("income", income),
        Column::numeric("ratio", ratio),
        Column::numeric("score", score),
        Column {
            name: "city".into(),
            values: ColumnValues::Text(city),
        },
    ])
}

/// Every column's values as bits (NaN compares equal to NaN), or the text.
fn fingerprint(t: &Table) -> Vec<(String, Vec<String>)> {
    t.columns
        .iter()
        .map(|c| {
            let cells = match &c.values {
                ColumnValues::Numeric(v) => {
                    v.iter().map(|x| format!("{:016x}", x.to_bits())).collect()
                }
                ColumnValues::Text(v) => v.iter().map(|x| format!("{x:?}")).collect(),
            };
            (c.name.clone(), cells)
        })
        .collect()
}

const EVERY_STEP: &str = r#"{"steps": [
    {"kind": "clip", "columns": ["income"], "lower_quantile": 0.02, "upper_quantile": 0.97},
    {"kind": "impute", "strategy": "mean", "columns": ["income"]},
    {"kind": "impute", "strategy": "median", "columns": ["ratio"]},
    {"kind": "standard_scale", "columns": ["income", "ratio"]},
    {"kind": "min_max_scale", "columns": ["score"]},
    {"kind": "ordinal", "columns": ["city"]}
]}"#;

#[test]
fn a_reloaded_transform_gives_bit_identical_output() {
    let mut rng = Rng(42);
    for case in 0..20 {
        let train = random_table(&mut rng, 50 + case * 7);
        let later = random_table(&mut rng, 31);
        for json in [
            EVERY_STEP,
            r#"{"steps": [{"kind": "one_hot", "max_categories": 3}, {"kind": "impute", "strategy": "mode"}]}"#,
            r#"{"steps": [{"kind": "impute", "strategy": {"constant": "none"}}, {"kind": "standard_scale"}]}"#,
        ] {
            let params = TransformParams::from_json(json).unwrap();
            let fitted = FittedTransform::fit(&train, &params, None).unwrap();
            let stored = fitted.to_json();
            let back = FittedTransform::from_json(&stored).unwrap();
            assert_eq!(back, fitted, "case {case}");
            assert_eq!(back.to_json(), stored);
            for t in [&train, &later] {
                assert_eq!(
                    fingerprint(&back.apply(t).unwrap()),
                    fingerprint(&fitted.apply(t).unwrap()),
                    "case {case}"
                );
            }
        }
    }
}

#[test]
fn the_stored_form_is_versioned_and_checked() {
    let t = table(vec![Column::numeric("x", vec![0.1, 0.7, 2.0 / 3.0])]);
    let f = FittedTransform::fit(
        &t,
        &TransformParams::from_json(r#"{"steps": [{"kind": "standard_scale"}]}"#).unwrap(),
        None,
    )
    .unwrap();
    let json = f.to_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format"], TRANSFORM_FORMAT);
    assert_eq!(v["version"], 1);
    assert_eq!(v["steps"][0]["kind"], "standard_scale");
    assert_eq!(v["steps"][0]["columns"][0]["name"], "x");
    // The learnt numbers are exact strings: they parse back to the same bits.
    let FittedStep::StandardScale { columns } = &f.steps()[0] else {
        panic!()
    };
    let mean: f64 = v["steps"][0]["columns"][0]["mean"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(mean.to_bits(), columns[0].mean.to_bits());

    let err = |json: &str| FittedTransform::from_json(json).unwrap_err().to_string();
    let e = err(&json.replace("\"version\": 1", "\"version\": 2"));
    assert!(e.contains("version 2 is not supported"), "{e}");
    let e = err(&json.replace(TRANSFORM_FORMAT, "ferry-hetero-linear"));
    assert!(
        e.contains("'ferry-hetero-linear' is not a fitted transform"),
        "{e}"
    );
    let e = err("[1, 2]");
    assert!(e.contains("not a fitted transform"), "{e}");

    // Plain numbers (a hand-written file) are accepted; impossible values are not.
    let hand = format!(
        r#"{{"format": "{TRANSFORM_FORMAT}", "version": 1, "steps": [
            {{"kind": "min_max_scale", "columns": [{{"name": "x", "min": 0, "max": 2.5}}]}}
        ]}}"#
    );
    let h = FittedTransform::from_json(&hand).unwrap();
    let out = h.apply(&t).unwrap();
    assert_eq!(
        out.columns[0].values,
        ColumnValues::Numeric(vec![0.1 / 2.5, 0.7 / 2.5, (2.0 / 3.0) / 2.5])
    );
    let e = err(&hand.replace("2.5", "-1"));
    assert!(
        e.contains("step 1 (min_max_scale): column 'x': min > max"),
        "{e}"
    );
    let e = err(&hand.replace("2.5", "\"NaN\""));
    assert!(e.contains("column 'x': max is NaN"), "{e}");
    let e = err(&hand.replace("\"max\"", "\"maximum\""));
    assert!(e.contains("corrupt fitted transform"), "{e}");
}

/// Income bins (-inf, 0.30000000000000004], (.., 5], (5, +inf), missing; the first edge is
/// 0.1 + 0.2, whose shortest decimal is 17 digits long.
fn income_woe() -> WoeInput {
    let binning = FeatureBinning::numeric("income", vec![0.1 + 0.2, 5.0]).unwrap();
    WoeInput {
        binning,
        woe: vec![-0.75, 0.125, 0.5, 1.5],
    }
}

/// City groups {Rome, Oslo}, {Lima} + other (rare and unseen), missing.
fn city_woe() -> WoeInput {
    let binning = FeatureBinning::categorical(
        "city",
        vec![vec!["Rome".into(), "Oslo".into()], vec!["Lima".into()]],
        Some(1),
    )
    .unwrap();
    WoeInput {
        binning,
        woe: vec![0.25, -0.5, 0.0],
    }
}

#[test]
fn woe_replaces_each_value_by_the_woe_of_its_bin() {
    let train = table(vec![
        Column::numeric(
            "income",
            vec![0.1 + 0.2, 0.3000000000000001, 5.0, 7.0, NAN, -1.0],
        ),
        Column::text(
            "city",
            vec![
                Some("Rome"),
                Some("Lima"),
                None,
                Some("Oslo"),
                Some("Rome"),
                Some("Pune"),
            ],
        ),
        Column::numeric("other", vec![1.0; 6]),
    ]);
    let inputs = [income_woe(), city_woe()];
    let params = TransformParams::from_json(r#"{"steps": [{"kind": "woe"}]}"#).unwrap();
    let f = FittedTransform::fit(&train, &params, Some(&inputs)).unwrap();
    // Default columns: those with a WOE ("other" has none and is left alone).
    assert_eq!(f.steps()[0].column_names(), ["income", "city"]);
    let out = f.apply(&train).unwrap();
    // The edge value itself is in the bin it closes; the next float above it is not.
    assert_eq!(
        out.columns[0].values,
        ColumnValues::Numeric(vec![-0.75, 0.125, 0.125, 0.5, 1.5, -0.75])
    );
    // Pune was never seen: the binning sends it to the "other" group (bin 1).
    assert_eq!(
        out.columns[1].values,
        ColumnValues::Numeric(vec![0.25, -0.5, 0.0, 0.25, 0.25, -0.5])
    );
    assert_eq!(out.columns[2].values, train.columns[2].values);
    assert!(out.to_dataset().is_ok());

    // Stored and read back: the 17-digit edge survives, so the edge value stays in its bin.
    let back = FittedTransform::from_json(&f.to_json()).unwrap();
    assert_eq!(back, f);
    assert_eq!(fingerprint(&back.apply(&train).unwrap()), fingerprint(&out));

    // Naming a column without a WOE is an error naming it and those that have one.
    let p = TransformParams::from_json(r#"{"steps": [{"kind": "woe", "columns": ["other"]}]}"#)
        .unwrap();
    let e = FittedTransform::fit(&train, &p, Some(&inputs))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column 'other' has no binning and WOE (features with one: income, city)"),
        "{e}"
    );
}

#[test]
fn woe_inputs_come_from_the_woe_component_and_are_checked() {
    let binning = FeatureBinning::numeric("income", vec![1.0]).unwrap();
    let stats = vec![BinStats { total: 10, bad: 2 }; 3];
    let fw = FeatureWoe {
        feature: "income".into(),
        party: "bank".into(),
        bins: stats,
        woe: vec![0.5, -0.5, 0.0],
        iv_per_bin: vec![0.0; 3],
        iv: 0.0,
        labels: binning.bin_labels(),
    };
    let input = WoeInput::from_feature_woe(binning.clone(), &fw).unwrap();
    assert_eq!(input.woe, fw.woe);

    let short = FeatureWoe {
        woe: vec![0.5, -0.5],
        ..fw.clone()
    };
    let e = WoeInput::from_feature_woe(binning.clone(), &short)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 WOE values for 3 bins"), "{e}");

    let host = HostFeatureWoe {
        name: "income".into(),
        shared_as: "h1:income".into(),
        n_bins: 3,
        woe: None,
    };
    let e = WoeInput::from_host_woe(binning.clone(), &host)
        .unwrap_err()
        .to_string();
    assert!(e.contains("send_woe_to_host"), "{e}");
    let host = HostFeatureWoe {
        woe: Some(vec![0.1, 0.2, 0.3]),
        ..host
    };
    assert_eq!(
        WoeInput::from_host_woe(binning, &host).unwrap().woe,
        [0.1, 0.2, 0.3]
    );
}
