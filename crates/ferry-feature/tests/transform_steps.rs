//! Fitted transforms: each step against a hand computation, fit on one table and apply to
//! another, JSON round trips, and bad input.

use ferry_feature::table::{Column, ColumnValues, Table};
use ferry_feature::transform::{
    Fill, FittedStep, FittedTransform, ORDINAL_MISSING, ORDINAL_UNSEEN, TransformParams,
};

const NAN: f64 = f64::NAN;

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

fn params(json: &str) -> TransformParams {
    TransformParams::from_json(json).unwrap()
}

fn numbers<'t>(t: &'t Table, name: &str) -> &'t [f64] {
    match &t
        .column(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .values
    {
        ColumnValues::Numeric(v) => v,
        ColumnValues::Text(_) => panic!("column {name} is text"),
    }
}

fn texts<'t>(t: &'t Table, name: &str) -> Vec<Option<&'t str>> {
    match &t.column(name).unwrap().values {
        ColumnValues::Text(v) => v.iter().map(|x| x.as_deref()).collect(),
        ColumnValues::Numeric(_) => panic!("column {name} is numeric"),
    }
}

/// Bitwise equality that treats NaN as equal to NaN.
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.is_nan() && w.is_nan()) || (g - w).abs() < 1e-12,
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn scaling_matches_a_hand_computation_and_missing_values_pass_through() {
    let x = vec![2.0, 4.0, NAN, 4.0, 5.0, 9.0];
    let t = table(vec![
        Column::numeric("x", x.clone()),
        Column::numeric("flat", vec![3.0, 3.0, 3.0, NAN, 3.0, 3.0]),
    ]);
    let f = FittedTransform::fit(
        &t,
        &params(r#"{"steps": [{"kind": "standard_scale", "columns": ["x"]}]}"#),
        None,
    )
    .unwrap();
    // Present values 2, 4, 4, 5, 9: mean 4.8; population variance
    // (2.8² + 0.8² + 0.8² + 0.2² + 4.2²) / 5 = 26.8 / 5.
    let (mean, std) = (4.8, (26.8f64 / 5.0).sqrt());
    let FittedStep::StandardScale { columns } = &f.steps()[0] else {
        panic!()
    };
    assert!((columns[0].mean - mean).abs() < 1e-12 && (columns[0].std - std).abs() < 1e-12);
    let out = f.apply(&t).unwrap();
    let want: Vec<f64> = x.iter().map(|v| (v - mean) / std).collect();
    assert_close(numbers(&out, "x"), &want);
    // Not named: unchanged.
    assert!(same(numbers(&out, "flat"), numbers(&t, "flat")));

    let f = FittedTransform::fit(
        &t,
        &params(r#"{"steps": [{"kind": "min_max_scale"}]}"#),
        None,
    )
    .unwrap();
    let out = f.apply(&t).unwrap();
    assert_close(
        numbers(&out, "x"),
        &[0.0, 2.0 / 7.0, NAN, 2.0 / 7.0, 3.0 / 7.0, 1.0],
    );
    // A constant column becomes 0 (documented), never NaN or infinite.
    assert_close(numbers(&out, "flat"), &[0.0, 0.0, 0.0, NAN, 0.0, 0.0]);
    // Values outside the training range go outside [0, 1].
    let other = table(vec![
        Column::numeric("x", vec![-5.0, 16.0]),
        Column::numeric("flat", vec![7.0, 3.0]),
    ]);
    let out = f.apply(&other).unwrap();
    assert_close(numbers(&out, "x"), &[-1.0, 2.0]);
    assert_close(numbers(&out, "flat"), &[0.0, 0.0]);
}

#[test]
fn standard_scale_of_a_constant_column_only_centres() {
    // 0.1 three times: a naive mean is 0.10000000000000002 and the "std" 1e-17, which would
    // blow rounding noise up to ±1. The fitted std is exactly 0 and values are centred.
    let t = table(vec![Column::numeric("c", vec![0.1, 0.1, NAN, 0.1])]);
    let f = FittedTransform::fit(
        &t,
        &params(r#"{"steps": [{"kind": "standard_scale"}]}"#),
        None,
    )
    .unwrap();
    let FittedStep::StandardScale { columns } = &f.steps()[0] else {
        panic!()
    };
    assert_eq!((columns[0].mean, columns[0].std), (0.1, 0.0));
    let out = f.apply(&t).unwrap();
    assert!(same(numbers(&out, "c"), &[0.0, 0.0, NAN, 0.0]));
    let later = f
        .apply(&table(vec![Column::numeric("c", vec![1.1])]))
        .unwrap();
    assert_close(numbers(&later, "c"), &[1.0]);
    assert!(numbers(&later, "c")[0].is_finite());
}

#[test]
fn imputation_by_mean_median_mode_and_constant() {
    let t = table(vec![
        Column::numeric("a", vec![1.0, NAN, 2.0, 10.0, 2.0]),
        Column::text(
            "city",
            vec![Some("Rome"), None, Some("Oslo"), Some("Rome"), None],
        ),
        Column::text(
            "tie",
            vec![Some("b"), Some("a"), None, Some("b"), Some("a")],
        ),
    ]);
    let fit = |json: &str| FittedTransform::fit(&t, &params(json), None).unwrap();

    let out = fit(r#"{"steps": [{"kind": "impute", "strategy": "mean"}]}"#)
        .apply(&t)
        .unwrap();
    assert_close(numbers(&out, "a"), &[1.0, 15.0 / 4.0, 2.0, 10.0, 2.0]);
    // Mean imputation takes numeric columns only by default.
    assert_eq!(texts(&out, "city")[1], None);

    let out = fit(r#"{"steps": [{"kind": "impute", "strategy": "median"}]}"#)
        .apply(&t)
        .unwrap();
    // Present values 1, 2, 2, 10: median (2 + 2) / 2.
    assert_eq!(numbers(&out, "a")[1], 2.0);

    let f = fit(r#"{"steps": [{"kind": "impute", "strategy": "mode"}]}"#);
    let out = f.apply(&t).unwrap();
    assert_eq!(numbers(&out, "a")[1], 2.0);
    assert_eq!(
        texts(&out, "city"),
        [
            Some("Rome"),
            Some("Rome"),
            Some("Oslo"),
            Some("Rome"),
            Some("Rome")
        ]
    );
    // "a" and "b" both appear twice: the first in byte order wins.
    assert_eq!(texts(&out, "tie")[2], Some("a"));

    let f = fit(r#"{"steps": [
            {"kind": "impute", "strategy": {"constant": -1}},
            {"kind": "impute", "strategy": {"constant": "unknown"}, "columns": ["city"]}
        ]}"#);
    let out = f.apply(&t).unwrap();
    assert_eq!(numbers(&out, "a")[1], -1.0);
    assert_eq!(texts(&out, "city")[1], Some("unknown"));
    assert_eq!(texts(&out, "tie")[2], None);
    let FittedStep::Impute { columns } = &f.steps()[1] else {
        panic!()
    };
    assert_eq!(columns[0].fill, Fill::Text("unknown".into()));

    // A number constant for a text column is refused, naming the column.
    let e = FittedTransform::fit(
        &t,
        &params(
            r#"{"steps": [{"kind": "impute", "strategy": {"constant": 0}, "columns": ["city"]}]}"#,
        ),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("column 'city' is text"), "{e}");
}

/// NumPy's default quantile: linear interpolation at position q·(m−1).
fn hand_quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

#[test]
fn clipping_uses_training_quantiles() {
    // 0..=100 and an outlier: 102 values.
    let mut x: Vec<f64> = (0..=100).map(f64::from).collect();
    x.push(1e6);
    x.push(NAN);
    let t = table(vec![Column::numeric("x", x.clone())]);
    let f = FittedTransform::fit(
        &t,
        &params(r#"{"steps": [{"kind": "clip", "lower_quantile": 0.05, "upper_quantile": 0.95}]}"#),
        None,
    )
    .unwrap();
    let mut sorted: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let (lo, hi) = (hand_quantile(&sorted, 0.05), hand_quantile(&sorted, 0.95));
    // Position 0.95 · 101 = 95.95: between 95 and 96.
    assert!((hi - 95.95).abs() < 1e-9);
    let FittedStep::Clip { columns } = &f.steps()[0] else {
        panic!()
    };
    assert_eq!((columns[0].lower, columns[0].upper), (lo, hi));
    let out = f.apply(&t).unwrap();
    let got = numbers(&out, "x");
    assert_eq!(got[0], lo);
    assert_eq!(got[50], 50.0);
    assert_eq!(got[101], hi);
    assert!(got[102].is_nan());

    // Defaults: 1% and 99%.
    let f = FittedTransform::fit(&t, &params(r#"{"steps": [{"kind": "clip"}]}"#), None).unwrap();
    let FittedStep::Clip { columns } = &f.steps()[0] else {
        panic!()
    };
    assert_eq!(columns[0].lower, hand_quantile(&sorted, 0.01));
    assert_eq!(columns[0].upper, hand_quantile(&sorted, 0.99));
}

fn train_and_later() -> (Table, Table) {
    let train = table(vec![
        Column::numeric("age", vec![30.0, 40.0, NAN, 50.0, 60.0, 20.0]),
        Column::text(
            "city",
            vec![
                Some("Rome"),
                Some("Oslo"),
                Some("Rome"),
                None,
                Some("Lima"),
                Some("Rome"),
            ],
        ),
        Column::text(
            "job",
            vec![
                Some("dev"),
                Some("ops"),
                Some("dev"),
                Some("qa"),
                Some("dev"),
                Some("ops"),
            ],
        ),
    ]);
    let later = table(vec![
        Column::numeric("age", vec![NAN, 35.0, 70.0]),
        Column::text("city", vec![Some("Paris"), None, Some("Oslo")]),
        Column::text("job", vec![None, Some("qa"), Some("ceo")]),
    ]);
    (train, later)
}

#[test]
fn one_hot_keeps_frequent_categories_and_gives_unseen_ones_all_zeros() {
    let (train, later) = train_and_later();
    let f = FittedTransform::fit(
        &train,
        &params(r#"{"steps": [{"kind": "one_hot", "max_categories": 2}]}"#),
        None,
    )
    .unwrap();
    let out = f.apply(&train).unwrap();
    // Rome ×3, then Lima and Oslo ×1 each (tie: byte order) → Rome, Lima; Oslo is "other";
    // one missing value → a missing column. job: dev ×3, ops ×2, qa ×1 → qa is "other".
    assert_eq!(
        out.column_names(),
        [
            "age",
            "city=Rome",
            "city=Lima",
            "city:other",
            "city:missing",
            "job=dev",
            "job=ops",
            "job:other"
        ]
    );
    assert_eq!(numbers(&out, "city=Rome"), [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    assert_eq!(numbers(&out, "city=Lima"), [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(numbers(&out, "city:other"), [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(
        numbers(&out, "city:missing"),
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(numbers(&out, "job:other"), [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    assert!(out.to_dataset().is_ok(), "every column is numeric now");

    let out = f.apply(&later).unwrap();
    assert_eq!(out.column_names().len(), 8);
    // Paris was never seen: all zeros, "other" included. Oslo was seen (as other).
    let row = |i: usize| -> Vec<f64> {
        out.columns[1..5]
            .iter()
            .map(|c| match &c.values {
                ColumnValues::Numeric(v) => v[i],
                ColumnValues::Text(_) => panic!(),
            })
            .collect()
    };
    assert_eq!(row(0), [0.0, 0.0, 0.0, 0.0]);
    assert_eq!(row(1), [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(row(2), [0.0, 0.0, 1.0, 0.0]);
    // job had no missing value in training: a missing one (and the unseen "ceo") is all zeros.
    assert_eq!(numbers(&out, "job=dev"), [0.0, 0.0, 0.0]);
    assert_eq!(numbers(&out, "job=ops"), [0.0, 0.0, 0.0]);
    assert_eq!(numbers(&out, "job:other"), [0.0, 1.0, 0.0]);
    // The numeric column is untouched.
    assert!(same(numbers(&out, "age"), numbers(&later, "age")));
}

#[test]
fn ordinal_codes_are_sorted_categories_with_reserved_missing_and_unseen_codes() {
    let (train, later) = train_and_later();
    let f = FittedTransform::fit(
        &train,
        &params(r#"{"steps": [{"kind": "ordinal", "columns": ["city"]}]}"#),
        None,
    )
    .unwrap();
    let FittedStep::Ordinal { columns } = &f.steps()[0] else {
        panic!()
    };
    assert_eq!(columns[0].categories, ["Lima", "Oslo", "Rome"]);
    let out = f.apply(&train).unwrap();
    assert_eq!(
        numbers(&out, "city"),
        [2.0, 1.0, 2.0, ORDINAL_MISSING, 0.0, 2.0]
    );
    assert_eq!(texts(&out, "job")[0], Some("dev"), "job was not named");
    let out = f.apply(&later).unwrap();
    assert_eq!(
        numbers(&out, "city"),
        [ORDINAL_UNSEEN, ORDINAL_MISSING, 1.0]
    );
}

#[test]
fn a_pipeline_fits_each_step_on_the_output_of_the_previous_ones() {
    let (train, later) = train_and_later();
    let p = params(
        r#"{"steps": [
            {"kind": "impute", "strategy": "median", "columns": ["age"]},
            {"kind": "standard_scale", "columns": ["age"]},
            {"kind": "impute", "strategy": {"constant": "none"}, "columns": ["city"]},
            {"kind": "one_hot"}
        ]}"#,
    );
    let f = FittedTransform::fit(&train, &p, None).unwrap();
    // The scaler saw the imputed column: 30, 40, 40, 50, 60, 20 → mean 40.
    let FittedStep::StandardScale { columns } = &f.steps()[1] else {
        panic!()
    };
    assert!((columns[0].mean - 40.0).abs() < 1e-12);
    let std = (1000.0f64 / 6.0).sqrt();
    assert!((columns[0].std - std).abs() < 1e-12);
    // The "none" filled in by step 3 is a category of its own for one_hot ...
    let FittedStep::OneHot { columns } = &f.steps()[3] else {
        panic!()
    };
    assert!(columns[0].categories.contains(&"none".to_string()));
    assert!(!columns[0].missing);
    // ... and "none" is not a missing marker here: imputed text is text.
    let out = f.apply(&later).unwrap();
    assert_close(numbers(&out, "age"), &[0.0, -5.0 / std, 30.0 / std]);
    assert_eq!(numbers(&out, "city=none"), [0.0, 1.0, 0.0]);
    assert!(out.to_dataset().is_ok());
}

#[test]
fn text_columns_that_come_back_numeric_are_encoded_by_their_text() {
    // In training the column had a word, so it was text; a prediction file holding only
    // numbers reads it as numeric.
    let train = table(vec![Column::text(
        "code",
        vec![Some("1"), Some("2"), Some("x")],
    )]);
    let later = table(vec![Column::numeric("code", vec![2.0, NAN, 7.0])]);
    let f = FittedTransform::fit(
        &train,
        &params(r#"{"steps": [{"kind": "one_hot"}, {"kind": "ordinal"}]}"#),
        None,
    )
    .unwrap();
    let out = f.apply(&later).unwrap();
    assert_eq!(numbers(&out, "code=2"), [1.0, 0.0, 0.0]);
    assert_eq!(numbers(&out, "code=1"), [0.0, 0.0, 0.0]);
}

#[test]
fn bad_input_is_an_error_naming_what_is_wrong() {
    let (train, _) = train_and_later();
    let err = |json: &str| {
        FittedTransform::fit(&train, &params(json), None)
            .unwrap_err()
            .to_string()
    };
    let e = err(r#"{"steps": [{"kind": "min_max_scale", "columns": ["age", "salary"]}]}"#);
    assert!(
        e.contains(
            "step 1 (min_max_scale): no column named 'salary' (columns are: age, city, job)"
        ),
        "{e}"
    );
    // The names a step sees are those after the steps before it.
    let e = err(r#"{"steps": [{"kind": "one_hot"}, {"kind": "ordinal", "columns": ["city"]}]}"#);
    assert!(
        e.contains("step 2 (ordinal): no column named 'city'"),
        "{e}"
    );
    let e = err(r#"{"steps": [{"kind": "standard_scale", "columns": ["city"]}]}"#);
    assert!(
        e.contains("column 'city' is text") && e.contains("one_hot"),
        "{e}"
    );
    let empty = table(vec![Column::numeric("e", vec![NAN, NAN])]);
    let e = FittedTransform::fit(
        &empty,
        &params(r#"{"steps": [{"kind": "impute", "strategy": "mean"}]}"#),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("column 'e' has no value to learn from"), "{e}");
    let e = err(r#"{"steps": [{"kind": "woe"}]}"#);
    assert!(
        e.contains("step 1 (woe): no binning and WOE were given"),
        "{e}"
    );

    // Parameters checked before any data is read.
    let invalid = |json: &str| TransformParams::from_json(json).unwrap_err().to_string();
    let e =
        invalid(r#"{"steps": [{"kind": "clip", "lower_quantile": 0.9, "upper_quantile": 0.1}]}"#);
    assert!(
        e.contains("step 1 (clip)") && e.contains("0.9 and 0.1"),
        "{e}"
    );
    let e = invalid(r#"{"steps": [{"kind": "one_hot", "max_categories": 0}]}"#);
    assert!(
        e.contains("max_categories must be in 1..=1000, got 0"),
        "{e}"
    );
    let e = invalid(r#"{"steps": [{"kind": "ordinal", "columns": []}]}"#);
    assert!(e.contains("columns is empty"), "{e}");
    let e = invalid(r#"{"steps": [{"kind": "ordinal", "columns": ["a", "a"]}]}"#);
    assert!(e.contains("column 'a' is named twice"), "{e}");
    let e = invalid(r#"{"steps": [{"kind": "ordinal", "colums": ["a"]}]}"#);
    assert!(e.contains("unknown field `colums`"), "{e}");
    let e = invalid(r#"{"steps": [{"kind": "log"}]}"#);
    assert!(e.contains("unknown variant `log`"), "{e}");
    let e = invalid(r#"{"steps": [{"kind": "impute", "strategy": "average"}]}"#);
    assert!(e.contains("strategy") || e.contains("average"), "{e}");
    assert_eq!(TransformParams::default().steps.len(), 0);
    TransformParams::default().validate().unwrap();

    // A column numeric in training holding a word at prediction: row id and value.
    let f = FittedTransform::fit(
        &train,
        &params(r#"{"steps": [{"kind": "min_max_scale"}]}"#),
        None,
    )
    .unwrap();
    let later = table(vec![
        Column::text("age", vec![Some("33"), Some("old")]),
        Column::text("city", vec![None::<&str>, None]),
        Column::text("job", vec![None::<&str>, None]),
    ]);
    let e = f.apply(&later).unwrap_err().to_string();
    assert!(
        e.contains("column 'age', row 1 (id 'r1'): 'old' is not a number"),
        "{e}"
    );
    // A column the transform needs is gone.
    let e = f
        .apply(&table(vec![Column::numeric("height", vec![1.0])]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column named 'age'"), "{e}");
}

#[test]
fn one_hot_names_must_not_clash_with_existing_columns() {
    let t = table(vec![
        Column::text("c", vec![Some("a"), Some("b")]),
        Column::numeric("c=a", vec![1.0, 2.0]),
    ]);
    let e = FittedTransform::fit(&t, &params(r#"{"steps": [{"kind": "one_hot"}]}"#), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("step 1 (one_hot): the new column 'c=a' clashes with an existing column"),
        "{e}"
    );
}

#[test]
fn the_parameters_have_a_json_schema_with_their_ranges() {
    let schema = serde_json::to_string(&schemars::schema_for!(TransformParams)).unwrap();
    for word in [
        "one_hot",
        "standard_scale",
        "max_categories",
        "lower_quantile",
    ] {
        assert!(schema.contains(word), "{word} missing from {schema}");
    }
    assert!(schema.contains("\"maximum\":1000"), "{schema}");
    let schema = serde_json::to_string(&schemars::schema_for!(
        ferry_feature::scorecard::ScorecardParams
    ))
    .unwrap();
    assert!(
        schema.contains("base_odds") && schema.contains("pdo"),
        "{schema}"
    );
}
