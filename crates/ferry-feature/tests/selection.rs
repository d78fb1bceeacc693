//! Feature selection against hand-computed expectations, and the federated exchange in which
//! host values never cross.

mod woe_support;

use ferry_context::{LocalCluster, Role};
use ferry_feature::binning::{BinningParams, fit_numeric};
use ferry_feature::selection::{
    Candidate, DropReason, HostCandidates, KeptList, SelectionError, SelectionOutcome,
    SelectionParams, federated_selection, select,
};
use ferry_feature::woe::{BinnedFeature, WoeOutcome, federated_woe, synthetic};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use woe_support::*;

fn cand<'a>(name: &str, iv: Option<f64>, values: Option<&'a [f64]>) -> Candidate<'a> {
    Candidate {
        name: name.into(),
        party: "bank".into(),
        iv,
        values,
    }
}

#[test]
fn every_rule_by_hand() {
    let a: Vec<f64> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b: Vec<f64> = a.iter().map(|x| 2.0 * x + 1.0).collect(); // correlation 1 with a
    let f = vec![1.0, -1.0, 1.0, -1.0, 1.0, -1.0]; // correlation with a: -0.29…
    let mostly_missing = vec![f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, 1.0];
    let constant = vec![7.0; 6];
    let tiny_variance = vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.001];
    let candidates = [
        cand("a", Some(0.30), Some(&a)),
        cand("b", Some(0.25), Some(&b)),
        cand("c", Some(0.01), Some(&f)),
        cand("d", Some(0.40), Some(&mostly_missing)),
        cand("e", Some(0.40), Some(&constant)),
        cand("f", Some(0.10), Some(&f)),
        cand("g", None, Some(&f)),
        cand("h", Some(0.80), None),
        cand("i", Some(0.05), Some(&tiny_variance)),
    ];
    let params = SelectionParams {
        min_iv: 0.02,
        max_iv: Some(0.5),
        max_missing_rate: 0.5,
        min_variance: 0.001,
        ..SelectionParams::default()
    };
    let out = select(&candidates, &[], &params).unwrap();
    assert_eq!(out.kept, ["a", "f"]);
    // variance of (0,0,0,0,0,0.001): mean 1/6000, (5·(1/6000)² + (5/6000)²)/6 = 1.389e-7.
    let expected = vec![
        (
            "b".to_string(),
            DropReason::Correlated {
                with: "a".into(),
                correlation: Some(1.0),
            },
        ),
        (
            "c".into(),
            DropReason::LowIv {
                iv: 0.01,
                min: 0.02,
            },
        ),
        (
            "d".into(),
            DropReason::MissingRate {
                rate: 5.0 / 6.0,
                max: 0.5,
            },
        ),
        (
            "e".into(),
            DropReason::FewDistinct {
                distinct: 1,
                min: 2,
            },
        ),
        ("g".into(), DropReason::NoIv),
        ("h".into(), DropReason::HighIv { iv: 0.8, max: 0.5 }),
    ];
    assert_eq!(out.dropped.len(), 7);
    for (got, want) in out.dropped.iter().zip(&expected) {
        match (&got.1, &want.1) {
            (
                DropReason::Correlated { with, correlation },
                DropReason::Correlated {
                    with: w,
                    correlation: Some(r),
                },
            ) => {
                assert_eq!(with, w);
                assert!((correlation.unwrap() - r).abs() < 1e-12);
            }
            _ => assert_eq!(got, want),
        }
    }
    match &out.dropped[6] {
        (name, DropReason::LowVariance { variance, min }) => {
            assert_eq!(name, "i");
            assert!((variance - 5.0 / 36.0 * 1e-6).abs() < 1e-15, "{variance}");
            assert_eq!(*min, 0.001);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        out.dropped[0].1.to_string(),
        "correlation 1.0000 with 'a', which has a higher IV"
    );

    // top_k 1: of a (0.30) and f (0.10) only a.
    let top = SelectionParams {
        top_k: Some(1),
        ..params.clone()
    };
    let out = select(&candidates, &[], &top).unwrap();
    assert_eq!(out.kept, ["a"]);
    assert!(
        out.dropped
            .contains(&("f".into(), DropReason::NotInTopK { rank: 2, k: 1 }))
    );
}

#[test]
fn correlation_is_compared_within_one_party_and_known_pairs_count() {
    let a = vec![1.0, 2.0, 3.0, 4.0];
    let candidates = [
        cand("a", Some(0.2), Some(&a)),
        Candidate {
            name: "telco:feature_0".into(),
            party: "telco".into(),
            iv: Some(0.3),
            values: Some(&a),
        },
        Candidate {
            name: "telco:feature_1".into(),
            party: "telco".into(),
            iv: Some(0.4),
            values: None,
        },
    ];
    let p = SelectionParams::default();
    // Identical columns, but of different parties: both kept.
    let out = select(&candidates[..2], &[], &p).unwrap();
    assert_eq!(out.kept, ["a", "telco:feature_0"]);
    // A known pair: the lower IV (feature_0, 0.3 < 0.4) goes.
    let pairs = [("telco:feature_0".to_string(), "telco:feature_1".to_string())];
    let out = select(&candidates, &pairs, &p).unwrap();
    assert_eq!(out.kept, ["a", "telco:feature_1"]);
    assert_eq!(
        out.dropped,
        [(
            "telco:feature_0".to_string(),
            DropReason::Correlated {
                with: "telco:feature_1".into(),
                correlation: None
            }
        )]
    );
    // With every rule off, everything stays.
    let off = SelectionParams {
        min_iv: 0.0,
        max_missing_rate: 1.0,
        min_distinct: 0,
        min_variance: 0.0,
        max_correlation: 1.0,
        ..SelectionParams::default()
    };
    let out = select(&candidates, &[], &off).unwrap();
    assert_eq!(out.kept.len(), 3);
}

#[test]
fn bad_input_is_named() {
    let a = [1.0, 2.0];
    let short = [1.0];
    let p = SelectionParams::default();
    assert_eq!(
        select(
            &[cand("a", Some(0.1), None), cand("a", Some(0.1), None)],
            &[],
            &p
        )
        .unwrap_err()
        .to_string(),
        "feature 'a' is offered twice"
    );
    assert_eq!(
        select(
            &[
                cand("a", Some(0.1), Some(&a)),
                cand("b", Some(0.1), Some(&short))
            ],
            &[],
            &p
        )
        .unwrap_err()
        .to_string(),
        "feature 'b' has 1 rows, but 'a' of the same party has 2"
    );
    assert_eq!(
        select(&[cand("a", Some(f64::NAN), None)], &[], &p)
            .unwrap_err()
            .to_string(),
        "feature 'a' has IV NaN; an IV must be a finite number ≥ 0"
    );
    assert!(matches!(
        select(
            &[cand("a", Some(0.1), None)],
            &[("a".into(), "zz".into())],
            &p
        ),
        Err(SelectionError::UnknownFeature(n)) if n == "zz"
    ));
    let p: SelectionParams = serde_json::from_str(r#"{"top_k": 5}"#).unwrap();
    assert_eq!(p.top_k, Some(5));
    assert_eq!(p.min_iv, 0.02);
    assert!(serde_json::from_str::<SelectionParams>(r#"{"topk": 5}"#).is_err());
    assert_eq!(
        SelectionParams {
            top_k: Some(0),
            ..SelectionParams::default()
        }
        .validate()
        .unwrap_err(),
        "top_k must be at least 1"
    );
    let schema = serde_json::to_string(&schemars::schema_for!(SelectionParams)).unwrap();
    assert!(schema.contains("max_correlation"));
}

#[test]
fn federated_selection_decides_host_features_by_iv_and_values_never_cross() {
    let rows = 2000;
    let data = synthetic(rows, 4, &[], 21);
    let labels = data.labels.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // Host columns: a copy of the guest's strongest signal (column 3: 0.75·z + noise, 10%
    // missing), an increasing transform of it (correlation 1, same bins, same IV), a
    // constant, and a coin flip (IV ~0).
    let signal = data.guest[3].1.clone();
    let host_cols: Vec<(String, Vec<f64>)> = vec![
        ("spend".into(), signal.clone()),
        (
            "spend_scaled".into(),
            signal.iter().map(|x| 3.0 * x - 1.0).collect(),
        ),
        ("plan_fee".into(), vec![5.0; rows]),
        (
            "coin".into(),
            (0..rows)
                .map(|_| f64::from(rng.next_u64() & 1 == 1))
                .collect(),
        ),
    ];
    let bp = BinningParams::default();
    let bin = |cols: &[(String, Vec<f64>)]| -> Vec<BinnedFeature> {
        cols.iter()
            .map(|(n, v)| BinnedFeature::numeric(&fit_numeric(n, v, None, &bp).unwrap(), v))
            .collect()
    };
    let guest_binned = bin(&data.guest);
    let host_binned = bin(&host_cols);
    let p = params(512);
    let sp = SelectionParams::default();
    let outcomes = LocalCluster::new(roster(1)).capture_transcripts().run(
        |ctx| -> Result<(WoeOutcome, SelectionOutcome), String> {
            if ctx.role() == Role::Host {
                let woe = federated_woe(&ctx, &host_binned, None, &p).map_err(|e| e.to_string())?;
                let own: Vec<Candidate> = host_cols
                    .iter()
                    .map(|(n, v)| Candidate {
                        name: n.clone(),
                        party: String::new(),
                        iv: None,
                        values: Some(v),
                    })
                    .collect();
                let out = federated_selection(&ctx, &own, &woe, &sp).map_err(|e| e.to_string())?;
                Ok((woe, out))
            } else {
                let woe = federated_woe(&ctx, &guest_binned, Some(&labels), &p)
                    .map_err(|e| e.to_string())?;
                let own: Vec<Candidate> = data
                    .guest
                    .iter()
                    .map(|(n, v)| Candidate {
                        name: n.clone(),
                        party: String::new(),
                        iv: None, // taken from the WOE outcome
                        values: Some(v),
                    })
                    .collect();
                let out = federated_selection(&ctx, &own, &woe, &sp).map_err(|e| e.to_string())?;
                Ok((woe, out))
            }
        },
    );
    let (gw, guest_out) = outcomes[0].result.as_ref().unwrap();
    let (_, host_out) = outcomes[1].result.as_ref().unwrap();
    let g = gw.guest().unwrap();
    let iv = |name: &str| g.features.iter().find(|f| f.feature == name).unwrap().iv;
    assert_eq!(iv("telco:feature_0"), iv("telco:feature_1"));
    assert!(iv("telco:feature_0") > 0.1);
    assert!(
        iv("telco:feature_3") < sp.min_iv,
        "{}",
        iv("telco:feature_3")
    );

    // The host: the scaled copy goes for the copy (equal IV, earlier feature first), the
    // constant by its own check, the coin by the guest's IV rule.
    assert_eq!(host_out.kept, ["spend"]);
    assert_eq!(
        host_out.dropped,
        [
            ("spend_scaled".to_string(), DropReason::ByGuest),
            (
                "plan_fee".to_string(),
                DropReason::FewDistinct {
                    distinct: 1,
                    min: 2
                }
            ),
            ("coin".to_string(), DropReason::ByGuest),
        ]
    );
    // The guest: the same decisions under the names it knows, and its own features by its
    // own rules (computed here centrally for comparison).
    assert!(guest_out.kept.contains(&"telco:feature_0".to_string()));
    let reason = |name: &str| {
        guest_out
            .dropped
            .iter()
            .find(|d| d.0 == name)
            .map(|d| d.1.clone())
    };
    assert_eq!(
        reason("telco:feature_1"),
        Some(DropReason::Correlated {
            with: "telco:feature_0".into(),
            correlation: None
        })
    );
    assert_eq!(reason("telco:feature_2"), Some(DropReason::ByOwner));
    assert!(matches!(
        reason("telco:feature_3"),
        Some(DropReason::LowIv { .. })
    ));
    let guest_only: Vec<Candidate> = data
        .guest
        .iter()
        .map(|(n, v)| Candidate {
            name: n.clone(),
            party: "bank".into(),
            iv: Some(iv(n)),
            values: Some(v),
        })
        .collect();
    let central = select(&guest_only, &[], &sp).unwrap();
    for name in &central.kept {
        assert!(guest_out.kept.contains(name), "{name}");
    }

    // What crossed: the host sent indices only; the guest sent the kept indices.
    let host_sent = outcomes[1].transcript.as_ref().unwrap().sent();
    let candidates: HostCandidates = host_sent
        .iter()
        .find(|e| e.tag == "selection/candidates")
        .and_then(|e| e.decode())
        .unwrap();
    assert_eq!(candidates.eligible, [0, 1, 3]);
    assert_eq!(candidates.correlated, [(0, 1)]);
    let kept: KeptList = outcomes[0]
        .transcript
        .as_ref()
        .unwrap()
        .sent()
        .iter()
        .find(|e| e.tag == "selection/kept")
        .and_then(|e| e.decode())
        .unwrap();
    assert_eq!(kept.kept, [0]);
    for e in host_sent.iter().filter(|e| e.tag.starts_with("selection/")) {
        for (name, values) in &host_cols {
            assert!(!e.payload_contains(name.as_bytes()));
            for v in values.iter().take(50) {
                assert!(!e.payload_contains(&v.to_le_bytes()) || *v == 0.0 || *v == 1.0);
            }
        }
    }
}
