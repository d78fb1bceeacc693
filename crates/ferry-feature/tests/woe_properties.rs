//! Identities of WOE and IV on arbitrary counts.

use ferry_feature::woe::{BinStats, WOE_SMOOTHING, bin_stats, woe_iv};
use proptest::prelude::*;

fn stats_strategy() -> impl Strategy<Value = Vec<BinStats>> {
    prop::collection::vec((0u64..500, 0u64..500), 1..15)
        .prop_map(|cells| {
            cells
                .into_iter()
                .map(|(good, bad)| BinStats {
                    total: good + bad,
                    bad,
                })
                .collect::<Vec<_>>()
        })
        .prop_filter("both classes", |s: &Vec<BinStats>| {
            s.iter().any(|b| b.bad > 0) && s.iter().any(|b| b.good() > 0)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// IV ≥ 0 bin by bin, the total is the sum, every WOE is finite, and its sign is the sign
    /// of (bin bad rate − overall bad rate); an empty bin has WOE 0.
    #[test]
    fn iv_is_non_negative_and_woe_follows_the_bad_rate(stats in stats_strategy()) {
        let w = woe_iv("x", "bank", &stats, &[]).unwrap();
        let bad: u64 = stats.iter().map(|s| s.bad).sum();
        let total: u64 = stats.iter().map(|s| s.total).sum();
        let overall = bad as f64 / total as f64;
        prop_assert!(w.iv >= 0.0);
        prop_assert!((w.iv - w.iv_per_bin.iter().sum::<f64>()).abs() < 1e-9);
        for (i, s) in stats.iter().enumerate() {
            prop_assert!(w.woe[i].is_finite());
            prop_assert!(w.iv_per_bin[i] >= 0.0);
            match s.bad_rate() {
                None => {
                    prop_assert_eq!(w.woe[i], 0.0);
                    prop_assert_eq!(w.iv_per_bin[i], 0.0);
                }
                // Compare exactly in integers: bad_i · total vs bad · total_i.
                Some(_) => match (s.bad as u128 * total as u128).cmp(&(bad as u128 * s.total as u128)) {
                    std::cmp::Ordering::Greater => prop_assert!(w.woe[i] > 0.0, "bin {} {:?} overall {}", i, s, overall),
                    std::cmp::Ordering::Less => prop_assert!(w.woe[i] < 0.0, "bin {} {:?} overall {}", i, s, overall),
                    std::cmp::Ordering::Equal => prop_assert!(w.woe[i].abs() < 1e-12),
                },
            }
        }
    }

    /// Bins with both classes are not smoothed: their WOE is exactly ln((b/B)/(g/G)), so
    /// scaling every count leaves it unchanged.
    #[test]
    fn woe_of_unsmoothed_bins_is_scale_free(stats in stats_strategy(), k in 2u64..10) {
        prop_assume!(stats.iter().all(|s| s.bad > 0 && s.good() > 0));
        let scaled: Vec<BinStats> = stats.iter().map(|s| BinStats { total: s.total * k, bad: s.bad * k }).collect();
        let (a, b) = (woe_iv("x", "p", &stats, &[]).unwrap(), woe_iv("x", "p", &scaled, &[]).unwrap());
        for (x, y) in a.woe.iter().zip(&b.woe) {
            prop_assert!((x - y).abs() < 1e-9);
        }
        prop_assert!((a.iv - b.iv).abs() < 1e-9);
    }

    /// Merging two bins never increases IV (the log-sum inequality) when neither needs
    /// smoothing, and keeps it when their bad rates are equal.
    #[test]
    fn merging_bins_never_adds_information(stats in stats_strategy(), at in 0usize..14) {
        prop_assume!(stats.len() >= 2 && stats.iter().all(|s| s.bad > 0 && s.good() > 0));
        let at = at % (stats.len() - 1);
        let mut merged = stats.clone();
        let right = merged.remove(at + 1);
        merged[at].total += right.total;
        merged[at].bad += right.bad;
        let (a, b) = (woe_iv("x", "p", &stats, &[]).unwrap(), woe_iv("x", "p", &merged, &[]).unwrap());
        prop_assert!(b.iv <= a.iv + 1e-9, "{} > {}", b.iv, a.iv);
    }

    /// bin_stats counts every row once.
    #[test]
    fn bin_stats_partition_the_rows(rows in prop::collection::vec((0u32..6, any::<bool>()), 0..300)) {
        let bins: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let labels: Vec<f64> = rows.iter().map(|r| f64::from(r.1)).collect();
        let s = bin_stats(&bins, &labels, 6).unwrap();
        prop_assert_eq!(s.iter().map(|b| b.total).sum::<u64>(), rows.len() as u64);
        prop_assert_eq!(s.iter().map(|b| b.bad).sum::<u64>(), rows.iter().filter(|r| r.1).count() as u64);
        for (i, b) in s.iter().enumerate() {
            prop_assert_eq!(b.total, bins.iter().filter(|x| **x as usize == i).count() as u64);
        }
    }
}

#[test]
fn smoothing_is_half_a_row_at_the_overall_rate() {
    assert_eq!(WOE_SMOOTHING, 0.5);
    // 20 bad / 80 good overall. Bin 1: 10 good, no bad → 0.5·0.2 = 0.1 bad and 10.4 good.
    let stats = [
        BinStats { total: 90, bad: 20 },
        BinStats { total: 10, bad: 0 },
    ];
    let w = woe_iv("x", "bank", &stats, &["low".into(), "high".into()]).unwrap();
    let expected = ((0.1f64 / 20.0) / (10.4 / 80.0)).ln();
    assert!((w.woe[1] - expected).abs() < 1e-12);
    assert_eq!(w.labels, ["low", "high"]);
    assert_eq!(
        woe_iv("x", "bank", &stats, &["one".into()])
            .unwrap_err()
            .to_string(),
        "feature 'x': 1 bin labels for 2 bins"
    );
}
