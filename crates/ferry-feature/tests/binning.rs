//! Binning: quantile bins under heavy ties, missing values, equal width, optimal (monotonic)
//! bins, categories with rare and unseen values, merge plans, parameters and serialisation.

use ferry_feature::binning::{
    BinMethod, BinningError, BinningParams, Bins, FeatureBinning, MergePlan, Trend,
    apply_merge_plan, fit_categorical, fit_numeric, merge_plan, merge_to_monotonic,
};
use ferry_feature::woe::{BinStats, bin_stats};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn unit(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn sizes(b: &FeatureBinning, values: &[f64]) -> Vec<usize> {
    let mut out = vec![0; b.n_bins()];
    for &v in values {
        out[b.bin_of_number(v)] += 1;
    }
    out
}

fn edges(b: &FeatureBinning) -> Vec<f64> {
    match &b.bins {
        Bins::Numeric { upper_edges } => upper_edges.clone(),
        Bins::Categorical { .. } => panic!("numeric binning expected"),
    }
}

#[test]
fn eighty_percent_zeros_still_give_informative_bins() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let values: Vec<f64> = (0..5000)
        .map(|_| {
            if unit(&mut rng) < 0.8 {
                0.0
            } else {
                1.0 + 999.0 * unit(&mut rng)
            }
        })
        .collect();
    let zeros = values.iter().filter(|v| **v == 0.0).count();
    let b = fit_numeric("spend", &values, None, &BinningParams::default()).unwrap();
    let s = sizes(&b, &values);
    // The zeros are a bin of their own, the rest is split into the remaining nine bins.
    assert_eq!(s[0], zeros);
    assert_eq!(edges(&b)[0], 0.0);
    assert_eq!(b.n_value_bins(), 10);
    let non_empty = s.iter().filter(|c| **c > 0).count();
    assert!(non_empty >= 3, "{s:?}");
    let rest = values.len() - zeros;
    for &c in &s[1..10] {
        assert!(c.abs_diff(rest / 9) <= 2, "{s:?}");
    }
    assert_eq!(s[10], 0, "no missing values");
}

#[test]
fn a_heavy_value_in_the_middle_does_not_swallow_its_neighbours() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let values: Vec<f64> = (0..4000)
        .map(|_| match unit(&mut rng) {
            u if u < 0.1 => -1.0 - unit(&mut rng),
            u if u < 0.9 => 0.0,
            _ => 1.0 + unit(&mut rng),
        })
        .collect();
    let b = fit_numeric("balance", &values, None, &BinningParams::default()).unwrap();
    let zero_bin = b.bin_of_number(0.0);
    let s = sizes(&b, &values);
    let zeros = values.iter().filter(|v| **v == 0.0).count();
    assert_eq!(s[zero_bin], zeros, "the zeros alone: {s:?} {:?}", edges(&b));
    assert!(zero_bin >= 1, "negative values have bins below the zeros");
    assert!(
        zero_bin < b.n_value_bins() - 1,
        "positive values have bins above"
    );
}

#[test]
fn quantile_cut_points_by_hand() {
    // Six zeros and 1, 2, 3, 4, three bins: target 10/3 → {0}; then 4 rows for 2 bins →
    // {1, 2}; the rest {3, 4}.
    let v = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0];
    let p = BinningParams {
        max_bins: 3,
        ..BinningParams::default()
    };
    let b = fit_numeric("x", &v, None, &p).unwrap();
    assert_eq!(edges(&b), [0.0, 2.0]);
    assert_eq!(
        b.bin_labels(),
        ["(-inf, 0]", "(0, 2]", "(2, +inf)", "missing"]
    );
    // At most max_bins distinct values: one bin each.
    let b = fit_numeric("x", &[5.0, 5.0, 7.0, 9.0], None, &p).unwrap();
    assert_eq!(edges(&b), [5.0, 7.0]);
}

#[test]
fn missing_values_always_have_the_last_bin() {
    let v = [1.0, f64::NAN, 2.0, f64::NAN];
    let b = fit_numeric("x", &v, None, &BinningParams::default()).unwrap();
    assert_eq!(b.bin_numbers(&v), [0, 2, 1, 2]);
    assert_eq!(b.missing_bin(), b.n_bins() - 1);
    // An all-missing column: one (empty) value bin and the missing bin.
    let b = fit_numeric("x", &[f64::NAN; 3], None, &BinningParams::default()).unwrap();
    assert_eq!(b.n_bins(), 2);
    assert_eq!(b.bin_labels(), ["(-inf, +inf)", "missing"]);
    assert_eq!(b.bin_of_number(-1e300), 0);
    // Text through a numeric binning: parsed, unparseable is missing.
    let b = fit_numeric("x", &[1.0, 2.0, 3.0], None, &BinningParams::default()).unwrap();
    assert_eq!(b.bin_of_text(Some(" 2.5 ")), 2);
    assert_eq!(b.bin_of_text(Some("n/a")), b.missing_bin());
    assert_eq!(b.bin_of_text(None), b.missing_bin());
}

/// `P(bad)` rises with x (or follows `shape`), 12% bad overall.
fn labelled(n: usize, seed: u64, shape: impl Fn(f64) -> f64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n).map(|_| unit(&mut rng) * 10.0).collect();
    let y: Vec<f64> = x
        .iter()
        .map(|&x| f64::from(unit(&mut rng) < shape(x)))
        .collect();
    (x, y)
}

fn check_optimal(b: &FeatureBinning, x: &[f64], y: &[f64], p: &BinningParams) -> Vec<f64> {
    let stats = bin_stats(&b.bin_numbers(x), y, b.n_bins()).unwrap();
    let values = &stats[..stats.len() - 1];
    assert!(values.len() <= p.max_bins);
    for s in values {
        assert!(
            s.total as f64 >= p.min_bin_share * x.len() as f64,
            "{stats:?}"
        );
    }
    let rates: Vec<f64> = values
        .iter()
        .map(|s| s.bad as f64 / s.total as f64)
        .collect();
    let up = rates.windows(2).all(|w| w[0] < w[1]);
    let down = rates.windows(2).all(|w| w[0] > w[1]);
    assert!(up || down, "not monotonic: {rates:?}");
    rates
}

#[test]
fn optimal_bins_have_a_monotonic_bad_rate() {
    let p = BinningParams {
        method: BinMethod::Optimal,
        max_bins: 5,
        ..BinningParams::default()
    };
    let (x, y) = labelled(5000, 3, |x| 0.02 + 0.02 * x);
    let b = fit_numeric("age", &x, Some(&y), &p).unwrap();
    let rates = check_optimal(&b, &x, &y, &p);
    assert!(
        rates.len() >= 3 && rates[0] < rates[rates.len() - 1],
        "{rates:?}"
    );

    // Decreasing, asked for explicitly.
    let (x, y) = labelled(5000, 4, |x| 0.3 - 0.025 * x);
    let p_down = BinningParams {
        trend: Trend::Decreasing,
        ..p.clone()
    };
    let b = fit_numeric("income", &x, Some(&y), &p_down).unwrap();
    let rates = check_optimal(&b, &x, &y, &p_down);
    assert!(rates.len() >= 3 && rates[0] > rates[rates.len() - 1]);

    // A U shape cannot be monotonic: merging still ends monotonic, with fewer bins.
    let (x, y) = labelled(5000, 5, |x| 0.05 + 0.01 * (x - 5.0) * (x - 5.0));
    let b = fit_numeric("u", &x, Some(&y), &p).unwrap();
    check_optimal(&b, &x, &y, &p);

    // Missing values keep their own bin.
    let mut x2 = x.clone();
    x2[0] = f64::NAN;
    let b = fit_numeric("u", &x2, Some(&y), &p).unwrap();
    assert_eq!(b.bin_of_number(f64::NAN), b.n_bins() - 1);
}

#[test]
fn optimal_binning_needs_0_1_labels() {
    let p = BinningParams {
        method: BinMethod::Optimal,
        ..BinningParams::default()
    };
    assert_eq!(
        fit_numeric("age", &[1.0, 2.0], None, &p).unwrap_err(),
        BinningError::LabelsRequired {
            feature: "age".into()
        }
    );
    assert_eq!(
        fit_numeric("age", &[1.0, 2.0], Some(&[0.0, 2.0]), &p)
            .unwrap_err()
            .to_string(),
        "feature 'age': label of row 1 is 2; expected 0 (good) or 1 (bad)"
    );
    assert_eq!(
        fit_numeric("age", &[1.0, 2.0], Some(&[0.0]), &p)
            .unwrap_err()
            .to_string(),
        "feature 'age': 2 values but 1 labels"
    );
}

fn texts(counts: &[(&str, usize)]) -> Vec<Option<String>> {
    counts
        .iter()
        .flat_map(|(c, n)| std::iter::repeat_n(Some(c.to_string()), *n))
        .collect()
}

#[test]
fn rare_categories_share_the_other_bin_which_also_takes_unseen_ones() {
    let mut v = texts(&[("a", 50), ("b", 30), ("c", 14), ("d", 3), ("e", 2)]);
    v.push(None);
    let p = BinningParams {
        rare_category_share: 0.05,
        ..BinningParams::default()
    };
    let b = fit_categorical("region", &v, None, &p).unwrap();
    assert_eq!(
        b.bins,
        Bins::Categorical {
            groups: vec![
                vec!["a".into()],
                vec!["b".into()],
                vec!["c".into()],
                vec!["d".into(), "e".into()]
            ],
            other: Some(3)
        }
    );
    assert_eq!(
        b.bin_labels(),
        ["{a}", "{b}", "{c}", "{d, e} + other", "missing"]
    );
    assert_eq!(b.bin_of_text(Some("e")), 3);
    assert_eq!(b.bin_of_text(Some("never seen")), 3);
    assert_eq!(b.bin_of_text(None), 4);
    assert_eq!(b.bin_texts(&[Some("b"), None, Some("zz")]), [1, 4, 3]);

    // No rare category: no other group, and an unseen category counts as missing.
    let p0 = BinningParams {
        rare_category_share: 0.0,
        ..BinningParams::default()
    };
    let b = fit_categorical("region", &v, None, &p0).unwrap();
    assert_eq!(b.n_bins(), 6);
    assert_eq!(b.bin_of_text(Some("never seen")), 5);

    // More categories than max_bins: the least frequent go to other.
    let p3 = BinningParams {
        max_bins: 3,
        rare_category_share: 0.0,
        ..BinningParams::default()
    };
    let b = fit_categorical("region", &v, None, &p3).unwrap();
    assert_eq!(
        b.bin_labels(),
        ["{a}", "{b}", "{c, d, e} + other", "missing"]
    );
    // Numbers are looked up as text.
    let b = fit_categorical("code", &[Some("1"), Some("2")], None, &p0).unwrap();
    assert_eq!(b.bin_of_number(2.0), 1);
    assert_eq!(b.bin_of_number(f64::NAN), 2);
}

#[test]
fn optimal_categorical_groups_follow_the_bad_rate() {
    // a: 10% bad, b: 50%, c: 12%, d: 60%; 100 rows each. Two bins: {a, c} and {b, d}.
    let mut v = Vec::new();
    let mut y = Vec::new();
    for (c, bad) in [("a", 10), ("b", 50), ("c", 12), ("d", 60)] {
        for i in 0..100 {
            v.push(Some(c));
            y.push(f64::from(i < bad));
        }
    }
    let p = BinningParams {
        method: BinMethod::Optimal,
        max_bins: 2,
        ..BinningParams::default()
    };
    let b = fit_categorical("segment", &v, Some(&y), &p).unwrap();
    assert_eq!(b.bin_labels(), ["{a, c}", "{b, d}", "missing"]);
}

#[test]
fn merge_plans_by_hand_and_their_checks() {
    let s = |total, bad| BinStats { total, bad };
    // Rates 10%, 30%, 20%, 50% and a missing bin: (1, 2) violate increasing and are the most
    // alike pair → merged (25%).
    let stats = [s(100, 10), s(100, 30), s(100, 20), s(100, 50), s(10, 5)];
    let p = BinningParams {
        min_bin_share: 0.0,
        trend: Trend::Increasing,
        ..BinningParams::default()
    };
    let plan = merge_plan(&stats, true, &p);
    assert_eq!(plan.groups, vec![vec![0], vec![1, 2], vec![3]]);
    assert_eq!(
        plan.merged_stats(&stats).unwrap(),
        [s(100, 10), s(200, 50), s(100, 50), s(10, 5)]
    );
    // Rates 10%, 20%, 40% (already increasing); the middle bin holds 30 of 430 rows, below
    // min_bin_share 0.1 (43 rows). Its chi-square with the left neighbour is 2.60, with the
    // right one 4.46: it joins the left one.
    let sized = [s(200, 20), s(30, 6), s(200, 80), s(0, 0)];
    let p_share = BinningParams {
        min_bin_share: 0.1,
        ..p.clone()
    };
    assert_eq!(
        merge_plan(&sized, true, &p_share).groups,
        vec![vec![0, 1], vec![2]]
    );
    // With max_bins 2 and no share rule, the same pair is the most alike.
    let p_count = BinningParams {
        max_bins: 2,
        ..p.clone()
    };
    assert_eq!(
        merge_plan(&sized, true, &p_count).groups,
        vec![vec![0, 1], vec![2]]
    );
    // Everything merges when no two bins can satisfy the share: one value bin remains.
    let p_all = BinningParams {
        min_bin_share: 0.5,
        ..p.clone()
    };
    assert_eq!(
        merge_plan(&stats, true, &p_all).groups,
        vec![vec![0, 1, 2, 3]]
    );

    let fine = FeatureBinning::numeric("x", vec![1.0, 2.0, 3.0]).unwrap();
    let merged = apply_merge_plan(
        &fine,
        &MergePlan {
            groups: vec![vec![0], vec![1, 2], vec![3]],
        },
    )
    .unwrap();
    assert_eq!(edges(&merged), [1.0, 3.0]);
    assert_eq!(
        merge_to_monotonic(&fine, &stats, &p).unwrap(),
        merged,
        "the same in one step"
    );
    // A plan received from a peer is checked: runs in order, every bin exactly once.
    let err = |groups: Vec<Vec<usize>>| {
        apply_merge_plan(&fine, &MergePlan { groups })
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(vec![vec![0, 2], vec![1, 3]]),
        "feature 'x': merge plan rejected: group 0 (position 1) is not a run of consecutive \
         bins in order"
    );
    assert_eq!(
        err(vec![vec![0, 1], vec![2]]),
        "feature 'x': merge plan rejected: bin 3 is in no group"
    );
    assert_eq!(
        err(vec![vec![0, 1, 2, 3, 4]]),
        "feature 'x': merge plan rejected: group 0 names bin 4, but there are 4 value bins"
    );
    assert_eq!(
        merge_to_monotonic(&fine, &stats[..3], &p).unwrap_err(),
        BinningError::StatsCount {
            feature: "x".into(),
            expected: 5,
            got: 3
        }
    );
    // Categorical plans may join any groups; the other group follows its categories.
    let cat = FeatureBinning::categorical(
        "c",
        vec![
            vec!["a".into()],
            vec!["b".into()],
            vec!["x".into(), "y".into()],
        ],
        Some(2),
    )
    .unwrap();
    let merged = apply_merge_plan(
        &cat,
        &MergePlan {
            groups: vec![vec![0, 2], vec![1]],
        },
    )
    .unwrap();
    assert_eq!(merged.bin_labels(), ["{a, x, y} + other", "{b}", "missing"]);
}

#[test]
fn params_validation_serde_and_schema() {
    assert!(BinningParams::default().validate().is_ok());
    let bad = |p: BinningParams| p.validate().unwrap_err();
    assert_eq!(
        bad(BinningParams {
            max_bins: 1,
            ..BinningParams::default()
        }),
        "max_bins must be between 2 and 1000, got 1"
    );
    assert_eq!(
        bad(BinningParams {
            min_bin_share: 0.6,
            ..BinningParams::default()
        }),
        "min_bin_share must be between 0 and 0.5, got 0.6"
    );
    assert_eq!(
        bad(BinningParams {
            fine_bins: 5,
            ..BinningParams::default()
        }),
        "fine_bins must be between max_bins (10) and 10000, got 5"
    );
    assert_eq!(
        fit_numeric(
            "x",
            &[1.0],
            None,
            &BinningParams {
                rare_category_share: f64::NAN,
                ..BinningParams::default()
            }
        )
        .unwrap_err()
        .to_string(),
        "binning parameters: rare_category_share must be between 0 and 0.5, got NaN"
    );
    let p: BinningParams =
        serde_json::from_str(r#"{"method": "equal_width", "max_bins": 4}"#).unwrap();
    assert_eq!(p.method, BinMethod::EqualWidth);
    assert_eq!(p.min_bin_share, 0.05);
    assert!(
        serde_json::from_str::<BinningParams>(r#"{"bins": 4}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field `bins`")
    );
    let schema = serde_json::to_string(&schemars::schema_for!(BinningParams)).unwrap();
    for field in [
        "max_bins",
        "min_bin_share",
        "rare_category_share",
        "optimal",
    ] {
        assert!(schema.contains(field), "{field} in {schema}");
    }
}

#[test]
fn binnings_round_trip_through_json_and_are_checked() {
    let b = FeatureBinning::numeric("x", vec![-1.5, 0.0, 2.25]).unwrap();
    let json = serde_json::to_string(&b).unwrap();
    assert_eq!(
        json,
        r#"{"feature":"x","bins":{"numeric":{"upper_edges":[-1.5,0.0,2.25]}}}"#
    );
    assert_eq!(serde_json::from_str::<FeatureBinning>(&json).unwrap(), b);
    let corrupt: FeatureBinning =
        serde_json::from_str(r#"{"feature":"x","bins":{"numeric":{"upper_edges":[2.0,1.0]}}}"#)
            .unwrap();
    assert_eq!(
        corrupt.validate().unwrap_err().to_string(),
        "feature 'x': invalid binning: edge 1 (1) is not finite or not above the previous one"
    );
    assert!(
        FeatureBinning::categorical("c", vec![vec!["a".into()], vec!["a".into()]], None)
            .unwrap_err()
            .to_string()
            .contains("category 'a' is in two groups")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// From any counts, the plan partitions the fine bins into ordered runs, and the merged
    /// bins have a strictly monotonic bad rate, at most max_bins bins, each at least
    /// min_bin_share of the rows (unless one bin is left).
    #[test]
    fn merge_plans_satisfy_every_rule(
        cells in prop::collection::vec((0u64..60, 0u64..60), 1..30),
        missing in (0u64..30, 0u64..30),
        max_bins in 2usize..8,
        share in 0.0f64..0.3,
        trend in prop::sample::select(vec![Trend::Auto, Trend::Increasing, Trend::Decreasing]),
    ) {
        let mut stats: Vec<BinStats> = cells
            .iter()
            .map(|&(good, bad)| BinStats { total: good + bad, bad })
            .collect();
        stats.push(BinStats { total: missing.0 + missing.1, bad: missing.1 });
        let p = BinningParams {
            method: BinMethod::Optimal,
            max_bins,
            min_bin_share: share,
            trend,
            fine_bins: 50,
            ..BinningParams::default()
        };
        let plan = merge_plan(&stats, true, &p);
        prop_assert!(plan.check(cells.len(), true).is_ok(), "{:?}", plan);
        let merged = plan.merged_stats(&stats).unwrap();
        prop_assert_eq!(merged.last(), stats.last());
        let values = &merged[..merged.len() - 1];
        prop_assert!(values.len() <= max_bins);
        let all: u64 = stats.iter().map(|s| s.total).sum();
        if values.len() > 1 {
            for s in values {
                prop_assert!(s.total as f64 >= share * all as f64);
            }
            let rates: Vec<f64> = values.iter().map(|s| s.bad as f64 / s.total as f64).collect();
            let up = rates.windows(2).all(|w| w[0] < w[1]);
            let down = rates.windows(2).all(|w| w[0] > w[1]);
            prop_assert!(up || down, "{:?}", rates);
            match trend {
                Trend::Increasing => prop_assert!(up),
                Trend::Decreasing => prop_assert!(down),
                Trend::Auto => {}
            }
        }
        // Categories: any partition, still monotonic once ordered by rate.
        let plan = merge_plan(&stats, false, &p);
        prop_assert!(plan.check(cells.len(), false).is_ok());
        prop_assert!(plan.groups.len() <= max_bins);
        let merged = plan.merged_stats(&stats).unwrap();
        let rates: Vec<f64> = merged[..merged.len() - 1]
            .iter()
            .map(|s| s.bad as f64 / s.total.max(1) as f64)
            .collect();
        if rates.len() > 1 {
            prop_assert!(rates.windows(2).all(|w| w[0] < w[1]), "{:?}", rates);
        }
    }

    /// Quantile bins: every value falls in a bin whose interval holds it, tied values share
    /// a bin, and there are at most max_bins value bins.
    #[test]
    fn quantile_bins_hold_their_values(
        values in prop::collection::vec(prop_oneof![Just(0.0), -100.0f64..100.0, Just(f64::NAN)], 1..300),
        max_bins in 2usize..20,
    ) {
        let p = BinningParams { max_bins, ..BinningParams::default() };
        let b = fit_numeric("x", &values, None, &p).unwrap();
        prop_assert!(b.n_value_bins() <= max_bins);
        let e = edges(&b);
        for &v in &values {
            let bin = b.bin_of_number(v);
            if v.is_nan() {
                prop_assert_eq!(bin, b.missing_bin());
            } else {
                prop_assert!(bin == 0 || e[bin - 1] < v);
                prop_assert!(bin == e.len() || v <= e[bin]);
            }
        }
        // No empty value bin when there are values.
        if values.iter().any(|v| !v.is_nan()) {
            let s = sizes(&b, &values);
            prop_assert!(s[..b.n_value_bins()].iter().all(|c| *c > 0), "{:?} {:?}", s, e);
        }
    }
}
